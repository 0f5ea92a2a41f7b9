//! One cluster server's life (docs/cluster.md): serve the APIs, follow the
//! cluster (servers, schemas, the tablet map), join as a new incarnation,
//! open and close tablets as the map says, campaign for master and run the
//! master's loop while elected, and leave cleanly at shutdown.
//!
//! A server whose lease is lost (etcd unreachable past the TTL, or the
//! process paused past it) stops serving at once (`View::serving` reads
//! the lease's deadline on every request), closes its tablets, and joins
//! again as a new incarnation; the master has meanwhile given its tablets
//! to others, whose opens fenced this server's writes in the store.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::future::join_all;
use strata_cluster::assignments::{Assignments, Change};
use strata_cluster::master::{self, owner_name, MasterOptions};
use strata_cluster::moves;
use strata_cluster::schema_store::{self, SchemaChange, SchemaFollower};
use strata_cluster::tablet_map::{TabletRecord, TabletState};
use strata_cluster::{campaign, register, servers, watch_servers, Etcd, Registration, ServerEvent};
use strata_table::DatabaseOptions;

use super::admin::ClusterAdmin;
use super::catalog::EtcdCatalog;
use super::data::ClusterData;
use super::host::{ClusterSchema, TabletHost, TabletStore};
use super::tablets::ClusterTablets;
use super::view::{Incarnation, View};
use super::{Cluster, Pool};
use crate::instance_admin::InstanceAdminService;
use crate::observe::RpcMetricsLayer;
use crate::operations::{OperationStore, OperationsService};
use crate::pb::bigtable_instance_admin_server::BigtableInstanceAdminServer;
use crate::pb::bigtable_server::BigtableServer;
use crate::pb::bigtable_table_admin_server::BigtableTableAdminServer;
use crate::pb::operations_server::OperationsServer;
use crate::pb::strata_admin_server::StrataAdminServer;
use crate::ServerOptions;

/// Tablets opened at once (after a failover a server may get many).
const OPENS_IN_FLIGHT: usize = 8;

/// How often failed opens are tried again, and watches restarted.
const RETRY_EVERY: Duration = Duration::from_secs(1);

/// Settings of a cluster server.
pub struct NodeOptions {
    /// etcd's endpoints, comma-separated `http://host:port`.
    pub etcd: String,
    /// The cluster's name: its keys live under `/<cluster>/` in etcd.
    pub cluster: String,
    /// This server's id (stable across restarts; each run is a new
    /// incarnation of it).
    pub server_id: String,
    /// Where other servers reach this one (`host:port`).
    pub advertise: String,
    /// The membership lease's TTL: how long a dead server's tablets wait.
    pub lease_ttl: Duration,
    /// Options of each tablet's database.
    pub db: DatabaseOptions,
    /// The cluster's object store (a tablet's storage is a prefix of it).
    pub store: Arc<dyn TabletStore>,
    /// A tablet this large (on disk and in memory) splits in two; 0:
    /// never.
    pub split_size_bytes: u64,
    /// Two neighbouring tablets whose sizes add up to at most this merge
    /// into one (decided by the master); 0: never.
    pub merge_size_bytes: u64,
    /// How long two neighbours must stay that small before they merge.
    pub merge_delay: Duration,
    pub server: ServerOptions,
}

/// Why a cluster server stopped.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("etcd: {0}")]
    Etcd(#[from] strata_cluster::Error),
    #[error("serving: {0}")]
    Serve(#[from] tonic::transport::Error),
}

/// Runs a cluster server on `listener` until `shutdown` resolves; then
/// closes its tablets (flushed: their next owners replay nothing), leaves
/// the cluster and returns.
pub async fn run(
    opts: NodeOptions,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), NodeError> {
    let etcd = Etcd::connect(&opts.etcd).await?;
    let cluster = Arc::new(Cluster {
        etcd: etcd.clone(),
        name: opts.cluster.clone(),
        view: View::default(),
        host: Arc::new(TabletHost::new(opts.store.clone(), opts.db.clone())),
        pool: Pool {
            channels: Default::default(),
            message_bytes_max: opts.server.message_bytes_max,
        },
        master_totals: Default::default(),
    });
    if let Some(o) = &opts.server.observer {
        o.set_cluster_facts(cluster.clone());
    }
    let (stop_serving, serving_stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve(
        cluster.clone(),
        listener,
        opts.server.clone(),
        async move {
            let _ = serving_stopped.await;
        },
    ));
    let followers = [
        tokio::spawn(follow_servers(cluster.clone())),
        tokio::spawn(follow_schemas(cluster.clone())),
        tokio::spawn(follow_master(cluster.clone())),
    ];
    tokio::pin!(shutdown);
    let outcome = loop {
        match incarnation(&cluster, &opts, &mut shutdown).await {
            Ok(Ended::Shutdown) => break Ok(()),
            Ok(Ended::LeaseLost) => {
                tracing::warn!("joining the cluster again as a new incarnation");
            }
            Err(e) => break Err(e),
        }
    };
    for f in followers {
        f.abort();
    }
    let _ = stop_serving.send(());
    match server.await {
        Ok(r) => r?,
        Err(e) => tracing::error!("the server task failed: {e}"),
    }
    outcome
}

/// Serves the data, table-admin and operations APIs.
async fn serve(
    cluster: Arc<Cluster>,
    listener: tokio::net::TcpListener,
    opts: ServerOptions,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), tonic::transport::Error> {
    let tablets_cluster = cluster.clone();
    let data = BigtableServer::new(ClusterData {
        cluster: cluster.clone(),
        tables: opts.observer.as_ref().and_then(|o| o.table_metrics()),
        paths: opts.observer.as_ref().and_then(|o| o.request_paths()),
    })
    .max_decoding_message_size(opts.message_bytes_max)
    .max_encoding_message_size(opts.message_bytes_max);
    let ops = Arc::new(OperationStore::default());
    let catalog: Arc<dyn crate::catalog::Catalog> = Arc::new(EtcdCatalog {
        cluster: cluster.clone(),
        runtime: tokio::runtime::Handle::current(),
    });
    let admin = BigtableTableAdminServer::new(ClusterAdmin {
        cluster,
        ops: ops.clone(),
        catalog: catalog.clone(),
    })
    .max_decoding_message_size(opts.message_bytes_max)
    .max_encoding_message_size(opts.message_bytes_max);
    let instance_admin = BigtableInstanceAdminServer::new(InstanceAdminService {
        db: catalog,
        ops: ops.clone(),
        changes: Arc::new(parking_lot::Mutex::new(())),
    })
    .max_decoding_message_size(opts.message_bytes_max)
    .max_encoding_message_size(opts.message_bytes_max);
    let operations = OperationsServer::new(OperationsService { store: ops });
    let strata_admin = StrataAdminServer::new(ClusterTablets {
        cluster: tablets_cluster,
    });
    let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
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

enum Ended {
    Shutdown,
    LeaseLost,
}

/// Registers, retrying while the previous incarnation's key lives on.
async fn join(cluster: &Cluster, opts: &NodeOptions) -> Result<Registration, NodeError> {
    loop {
        match register(
            &cluster.etcd,
            &cluster.name,
            &opts.server_id,
            &opts.advertise,
            opts.lease_ttl,
        )
        .await
        {
            Ok(r) => return Ok(r),
            Err(strata_cluster::Error::AlreadyRegistered { .. }) => {
                tracing::info!(
                    "server id {:?} is still registered (a previous run's lease); waiting for it to end",
                    opts.server_id
                );
            }
            Err(e) if e.is_retryable() => tracing::warn!("joining the cluster: {e}; retrying"),
            Err(e) => return Err(e.into()),
        }
        tokio::time::sleep(RETRY_EVERY).await;
    }
}

/// One incarnation: from joining to shutdown or the loss of its lease.
async fn incarnation(
    cluster: &Arc<Cluster>,
    opts: &NodeOptions,
    shutdown: &mut std::pin::Pin<&mut impl Future<Output = ()>>,
) -> Result<Ended, NodeError> {
    let reg = join(cluster, opts).await?;
    let owner = owner_name(reg.info());
    cluster.view.set_me(Some(Incarnation {
        owner: owner.clone(),
        lease: reg.lease().clone(),
    }));
    tracing::info!(
        owner = %owner,
        cluster = %cluster.name,
        "joined the cluster as {owner}, reachable at {}",
        opts.advertise
    );
    let master_opts = MasterOptions {
        merge_size_bytes: opts.merge_size_bytes,
        merge_delay: opts.merge_delay,
        totals: cluster.master_totals.clone(),
        ..MasterOptions::default()
    };
    let master_task = tokio::spawn(master_role(
        cluster.clone(),
        owner.clone(),
        reg.lease().clone(),
        master_opts,
    ));
    let splitter = tokio::spawn(super::split::run(cluster.clone(), opts.split_size_bytes));
    let merger = tokio::spawn(super::merge::run(cluster.clone()));
    let reporter = tokio::spawn(super::load_report::run(cluster.clone()));
    let mut failed: BTreeMap<u64, TabletRecord> = BTreeMap::new();
    let mut assignments = None;
    let ended = loop {
        if assignments.is_none() {
            match Assignments::start(&cluster.etcd, &cluster.name, &owner).await {
                Ok((a, changes)) => {
                    cluster.view.set_map(a.map().clone());
                    apply(cluster, changes, &mut failed).await;
                    assignments = Some(a);
                }
                Err(e) => tracing::warn!("reading the tablet map: {e}; retrying"),
            }
        }
        tokio::select! {
            _ = &mut *shutdown => break Ended::Shutdown,
            why = reg.lost() => {
                tracing::error!("lost this server's lease ({why}): it stops serving its tablets");
                break Ended::LeaseLost;
            }
            next = async {
                match assignments.as_mut() {
                    Some(a) => a.next().await,
                    None => std::future::pending().await,
                }
            } => match next {
                Some(Ok(changes)) => {
                    if let Some(a) = &assignments {
                        cluster.view.set_map(a.map().clone());
                    }
                    apply(cluster, changes, &mut failed).await;
                }
                Some(Err(e)) => tracing::warn!("following the tablet map: {e}"),
                None => {
                    // The watch ended: what this server holds may be out of
                    // date. Close everything and read the map anew.
                    tracing::warn!("the tablet map's watch ended; reopening from a fresh read");
                    close_all(cluster).await;
                    assignments = None;
                }
            },
            _ = tokio::time::sleep(RETRY_EVERY), if !failed.is_empty() || assignments.is_none() => {
                let still: Vec<TabletRecord> = std::mem::take(&mut failed)
                    .into_values()
                    .filter(|t| assignments.as_ref().is_some_and(|a| a.held().get(&t.id) == Some(&t.epoch)))
                    .collect();
                apply(cluster, still.into_iter().map(Change::Open).collect(), &mut failed).await;
            }
        }
    };
    // Stop serving first, then flush and close (the next owners replay
    // nothing), then leave so that the master reassigns at once.
    cluster.view.set_me(None);
    master_task.abort();
    splitter.abort();
    merger.abort();
    reporter.abort();
    close_all(cluster).await;
    if let Ended::Shutdown = ended {
        if let Err(e) = reg.deregister().await {
            tracing::warn!("leaving the cluster: {e} (the lease ends by itself)");
        } else {
            tracing::info!("left the cluster");
        }
    }
    Ok(ended)
}

async fn close_all(cluster: &Arc<Cluster>) {
    let host = cluster.host.clone();
    let _ = tokio::task::spawn_blocking(move || host.close_all()).await;
}

/// Carries out `changes`: closes, then opens (`OPENS_IN_FLIGHT` at once,
/// each with its table's schema read from etcd). Opens that fail go to
/// `failed`, tried again later.
async fn apply(
    cluster: &Arc<Cluster>,
    changes: Vec<Change>,
    failed: &mut BTreeMap<u64, TabletRecord>,
) {
    let mut opens = Vec::new();
    for c in changes {
        match c {
            Change::Close { id, .. } => {
                failed.remove(&id);
                let host = cluster.host.clone();
                let _ = tokio::task::spawn_blocking(move || host.close(id)).await;
                release_if_moving(cluster, id).await;
            }
            Change::Open(t) => opens.push(t),
        }
    }
    for batch in opens.chunks(OPENS_IN_FLIGHT) {
        let results = join_all(batch.iter().cloned().map(|t| {
            let cluster = cluster.clone();
            async move {
                let r = open(&cluster, &t).await;
                (t, r)
            }
        }))
        .await;
        for (t, r) in results {
            if let Err(e) = r {
                tracing::error!(tablet = t.id, table = %t.table, "cannot open tablet: {e}; trying again");
                failed.insert(t.id, t);
            }
        }
    }
}

/// Tells the master a tablet moving away from here is closed (flushed):
/// its target may open it now (`strata_cluster::moves`).
async fn release_if_moving(cluster: &Arc<Cluster>, id: u64) {
    let Some(me) = cluster.view.me() else { return };
    let map = cluster.view.map();
    let Some(t) = map.get(id) else { return };
    if t.state != TabletState::Moving || t.owner.as_deref() != Some(me.owner.as_str()) {
        return;
    }
    match moves::release(&cluster.etcd, &cluster.name, id, t.epoch, me.lease.id()).await {
        Ok(()) => tracing::info!(tablet = id, "released tablet for its move"),
        // The master moves it after a while anyway.
        Err(e) => tracing::warn!(tablet = id, "releasing tablet for its move: {e}"),
    }
}

pub(super) async fn open(cluster: &Arc<Cluster>, t: &TabletRecord) -> Result<(), String> {
    let s = schema_store::get(&cluster.etcd, &cluster.name, &t.table)
        .await
        .map_err(|e| format!("reading the schema: {e}"))?
        .ok_or_else(|| format!("table {} has no schema", t.table))?;
    let schema = ClusterSchema::decode(&s.schema, s.mod_revision)?;
    cluster.view.put_schema(s);
    let host = cluster.host.clone();
    let t = t.clone();
    tokio::task::spawn_blocking(move || host.open(&t, &schema))
        .await
        .map_err(|e| format!("the open task failed: {e}"))?
}

/// Campaigns for master with this incarnation's lease and runs the
/// master's loop while elected.
async fn master_role(
    cluster: Arc<Cluster>,
    owner: String,
    lease: strata_cluster::Lease,
    opts: MasterOptions,
) {
    loop {
        let leadership = match campaign(&cluster.etcd, &cluster.name, &owner, &lease).await {
            Ok(l) => l,
            Err(strata_cluster::Error::LeaseLost { .. }) => return,
            Err(e) => {
                tracing::warn!("campaigning for master: {e}; retrying");
                tokio::time::sleep(RETRY_EVERY).await;
                continue;
            }
        };
        tracing::info!(term = leadership.term(), "this server is now the master");
        let collector = StoreCollector {
            host: cluster.host.clone(),
        };
        cluster.view.set_master_term(Some(leadership.term()));
        let why = master::run(&cluster.etcd, &cluster.name, &leadership, &collector, &opts).await;
        cluster.view.set_master_term(None);
        tracing::warn!("no longer the master: {why:?}");
        if !lease.is_alive() {
            return;
        }
    }
}

/// Deletes a deleted tablet's prefix from the store, for the master.
struct StoreCollector {
    host: Arc<TabletHost>,
}

impl master::Collector for StoreCollector {
    fn delete_tablet(
        &self,
        id: u64,
    ) -> std::pin::Pin<Box<dyn Future<Output = Result<(), String>> + Send + '_>> {
        let host = self.host.clone();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || {
                if host.get(id).is_some() {
                    return Err(format!("tablet {id} is still open here"));
                }
                let storage = host.store().storage(id)?;
                let names = storage.list().map_err(|e| e.to_string())?;
                storage.remove_many(&names).map_err(|e| e.to_string())?;
                tracing::info!(
                    tablet = id,
                    objects = names.len(),
                    "deleted a deleted tablet's data"
                );
                Ok(())
            })
            .await
            .map_err(|e| format!("the delete task failed: {e}"))?
        })
    }
}

/// Keeps the view's server addresses up to date.
/// How often the view asks etcd who is master (for the status only).
const MASTER_POLL_EVERY: std::time::Duration = std::time::Duration::from_secs(2);

/// Keeps the view's master (who etcd says it is) up to date, for the
/// status page; nothing routes by it.
async fn follow_master(cluster: Arc<Cluster>) {
    loop {
        match strata_cluster::election::master(&cluster.etcd, &cluster.name).await {
            Ok(m) => cluster.view.set_master(m.map(|m| (m.id, m.term))),
            Err(e) => tracing::debug!("asking etcd for the master: {e}"),
        }
        tokio::time::sleep(MASTER_POLL_EVERY).await;
    }
}

async fn follow_servers(cluster: Arc<Cluster>) {
    loop {
        let (list, revision) = match servers(&cluster.etcd, &cluster.name).await {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!("reading the servers: {e}; retrying");
                tokio::time::sleep(RETRY_EVERY).await;
                continue;
            }
        };
        let mut known: HashMap<String, String> = list
            .iter()
            .map(|s| (owner_name(s), s.addr.clone()))
            .collect();
        cluster.view.set_servers(known.clone());
        let mut watch = watch_servers(&cluster.etcd, &cluster.name, revision + 1);
        while let Some(event) = watch.next().await {
            match event {
                Ok(ServerEvent::Joined(s)) => {
                    known.retain(|o, _| !o.starts_with(&format!("{}@", s.id)));
                    known.insert(owner_name(&s), s.addr.clone());
                }
                Ok(ServerEvent::Left { id, .. }) => {
                    known.retain(|o, _| !o.starts_with(&format!("{id}@")));
                }
                Err(e) => {
                    tracing::warn!("following the servers: {e}");
                    break;
                }
            }
            cluster.view.set_servers(known.clone());
        }
        tokio::time::sleep(RETRY_EVERY).await;
    }
}

/// Keeps the view's schemas up to date, and the tablets here in step.
async fn follow_schemas(cluster: Arc<Cluster>) {
    loop {
        let (all, revision) = match schema_store::list(&cluster.etcd, &cluster.name).await {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!("reading the schemas: {e}; retrying");
                tokio::time::sleep(RETRY_EVERY).await;
                continue;
            }
        };
        cluster.view.replace_schemas(all);
        let mut follower = SchemaFollower::new(&cluster.etcd, &cluster.name, revision);
        while let Some(change) = follower.next().await {
            match change {
                Ok(SchemaChange::Put(s)) => {
                    let table = s.table.clone();
                    match ClusterSchema::decode(&s.schema, s.mod_revision) {
                        Ok(schema) => {
                            cluster.view.put_schema(s);
                            let host = cluster.host.clone();
                            let _ = tokio::task::spawn_blocking(move || {
                                host.apply_schema(&table, &schema)
                            })
                            .await;
                        }
                        Err(e) => tracing::error!("the schema of {table} in etcd: {e}"),
                    }
                }
                Ok(SchemaChange::Deleted { table, .. }) => cluster.view.remove_schema(&table),
                Err(e) => {
                    tracing::warn!("following the schemas: {e}");
                    break;
                }
            }
        }
        tokio::time::sleep(RETRY_EVERY).await;
    }
}
