//! Starting and stopping the gRPC server.

use crate::admin::AdminService;
use crate::data::DataService;
use crate::instance_admin::InstanceAdminService;
use crate::observe::{Observer, RpcMetricsLayer};
use crate::operations::{OperationStore, OperationsService};
use crate::pb::bigtable_instance_admin_server::BigtableInstanceAdminServer;
use crate::pb::bigtable_server::BigtableServer;
use crate::pb::bigtable_table_admin_server::BigtableTableAdminServer;
use crate::pb::operations_server::OperationsServer;
use crate::pb::strata_admin_server::StrataAdminServer;
use crate::tablets::StrataAdminService;
use std::future::Future;
use std::sync::Arc;
use strata_table::Database;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_stream::Stream;
use tonic::transport::server::Connected;

/// Server limits.
#[derive(Clone, Debug)]
pub struct ServerOptions {
    /// Largest request or response message, in bytes (a 100 MiB cell plus
    /// framing fits).
    pub message_bytes_max: usize,
    /// Concurrent streams (requests) per HTTP/2 connection.
    pub streams_per_connection_max: u32,
    /// Metrics and health (`observe`): None serves neither the health
    /// service nor counts anything.
    pub observer: Option<Arc<Observer>>,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            message_bytes_max: 256 << 20,
            streams_per_connection_max: 1024,
            observer: None,
        }
    }
}

/// What the services of every serving thread share: the database, the
/// long-running operations, and the lock that serializes admin changes.
#[derive(Clone)]
pub(crate) struct Shared {
    db: Arc<Database>,
    ops: Arc<OperationStore>,
    /// Admin changes that read, check and write catalog records go one at
    /// a time, across both admin services (and every thread).
    changes: Arc<parking_lot::Mutex<()>>,
    opts: ServerOptions,
}

impl Shared {
    pub(crate) fn new(db: Arc<Database>, opts: ServerOptions) -> Shared {
        Shared {
            db,
            ops: Arc::new(OperationStore::default()),
            changes: Arc::new(parking_lot::Mutex::new(())),
            opts,
        }
    }

    /// Serves every service on the connections `incoming` yields until
    /// `shutdown` resolves (or `incoming` ends), then lets in-flight
    /// requests finish and returns. Connections and their requests run as
    /// tasks of the calling runtime.
    pub(crate) async fn serve<I, IO, IE>(
        self,
        incoming: I,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), tonic::transport::Error>
    where
        I: Stream<Item = Result<IO, IE>>,
        IO: AsyncRead + AsyncWrite + Connected + Unpin + Send + 'static,
        IE: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let Shared {
            db,
            ops,
            changes,
            opts,
        } = self;
        let data = BigtableServer::new(DataService {
            db: db.clone(),
            tables: opts.observer.as_ref().and_then(|o| o.table_metrics()),
            paths: opts.observer.as_ref().and_then(|o| o.request_paths()),
        })
        .max_decoding_message_size(opts.message_bytes_max)
        .max_encoding_message_size(opts.message_bytes_max);
        let admin = BigtableTableAdminServer::new(AdminService {
            db: db.clone(),
            ops: ops.clone(),
            changes: changes.clone(),
        })
        .max_decoding_message_size(opts.message_bytes_max)
        .max_encoding_message_size(opts.message_bytes_max);
        let instance_admin = BigtableInstanceAdminServer::new(InstanceAdminService {
            db: db.clone(),
            ops: ops.clone(),
            changes,
        })
        .max_decoding_message_size(opts.message_bytes_max)
        .max_encoding_message_size(opts.message_bytes_max);
        let operations = OperationsServer::new(OperationsService { store: ops });
        let strata_admin = StrataAdminServer::new(StrataAdminService { db })
            .max_decoding_message_size(opts.message_bytes_max)
            .max_encoding_message_size(opts.message_bytes_max);
        let metrics = opts
            .observer
            .as_ref()
            .map_or_else(RpcMetricsLayer::default, |o| o.rpc_layer());
        let health = opts.observer.as_ref().map(|o| o.health_server());
        let (reflection, reflection_alpha) = crate::reflection::services()
            .expect("the descriptors built in (proto/descriptors.bin) resolve");
        tonic::transport::Server::builder()
            .max_concurrent_streams(Some(opts.streams_per_connection_max))
            .layer(metrics)
            .layer(crate::unimplemented::NameUnimplemented)
            .add_optional_service(health)
            .add_service(reflection)
            .add_service(reflection_alpha)
            .add_service(data)
            .add_service(admin)
            .add_service(instance_admin)
            .add_service(operations)
            .add_service(strata_admin)
            .serve_with_incoming_shutdown(incoming, shutdown)
            .await
    }
}

/// Serves the data, table-admin and instance-admin APIs, long-running
/// operations, and StrataAdmin, on `listener` until `shutdown`
/// resolves, then stops accepting, lets in-flight requests finish, and
/// returns. Every connection runs on the calling runtime
/// (`serve_on_threads` gives each its own thread instead).
pub async fn serve(
    db: Arc<Database>,
    listener: tokio::net::TcpListener,
    opts: ServerOptions,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), tonic::transport::Error> {
    // Small unary replies must not wait for delayed ACKs (Nagle): every
    // accepted socket gets TCP_NODELAY.
    let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
    Shared::new(db, opts).serve(incoming, shutdown).await
}
