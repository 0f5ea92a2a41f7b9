//! A cluster server (`strata serve --etcd`, docs/cluster.md): the Bigtable
//! APIs served by any of many servers over one object store, with etcd
//! for membership, the master's election, the tablet map and the schemas.
//!
//! | module | concept |
//! |---|---|
//! | `view` | what this server knows of the cluster, kept by watches |
//! | `host` | the tablets it serves, each a database over its own prefix |
//! | `route` | a request's parts sent to their tablets' owners |
//! | `rows` | row sets cut by tablet |
//! | `data` | the data API: requests cut by tablet, sent to their owners |
//! | `admin` | the table-admin API on the schemas in etcd |
//! | `catalog` | the instance-admin API's records in etcd |
//! | `tablets` | StrataAdmin's ListTablets: the map's tablets with owners and sizes |
//! | `node` | joining, following the cluster, the master's loop, leaving |

mod admin;
mod catalog;
mod data;
mod handover;
mod host;
mod load_report;
mod merge;
mod node;
mod route;
mod rows;
mod split;
mod tablets;
mod view;

pub use host::{tablet_prefix, TabletStore};
pub use node::{run, NodeOptions};

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;
use strata_cluster::{schema_store, Etcd};
use tonic::transport::{Channel, Endpoint};
use tonic::Status;

use crate::admin_pb::bigtable_table_admin_client::BigtableTableAdminClient;
use crate::data_pb::bigtable_client::BigtableClient;

/// Bounds on a call forwarded to another server.
const FORWARD_CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);
const FORWARD_PING_EVERY: std::time::Duration = std::time::Duration::from_secs(1);
const FORWARD_PING_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);
const FORWARD_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Connections to the other servers, one channel per address (HTTP/2
/// carries every request to a server over it).
pub(crate) struct Pool {
    channels: Mutex<HashMap<String, Channel>>,
    message_bytes_max: usize,
}

impl Pool {
    pub(crate) fn channel(&self, addr: &str) -> Result<Channel, Status> {
        if let Some(c) = self.channels.lock().get(addr) {
            return Ok(c.clone());
        }
        let endpoint = Endpoint::from_shared(format!("http://{addr}"))
            .map_err(|e| Status::internal(format!("server address {addr:?}: {e}")))?
            .tcp_nodelay(true)
            .connect_timeout(FORWARD_CONNECT_TIMEOUT)
            // A server that stops answering (frozen, partitioned) is
            // noticed by its missed pings, and every call to it fails,
            // rather than waiting for it forever.
            .http2_keep_alive_interval(FORWARD_PING_EVERY)
            .keep_alive_timeout(FORWARD_PING_TIMEOUT)
            .keep_alive_while_idle(true)
            .timeout(FORWARD_TIMEOUT);
        let channel = endpoint.connect_lazy();
        self.channels
            .lock()
            .insert(addr.to_string(), channel.clone());
        Ok(channel)
    }

    pub(crate) fn data(&self, addr: &str) -> Result<BigtableClient<Channel>, Status> {
        Ok(BigtableClient::new(self.channel(addr)?)
            .max_decoding_message_size(self.message_bytes_max)
            .max_encoding_message_size(self.message_bytes_max))
    }

    pub(crate) fn admin(&self, addr: &str) -> Result<BigtableTableAdminClient<Channel>, Status> {
        Ok(BigtableTableAdminClient::new(self.channel(addr)?)
            .max_decoding_message_size(self.message_bytes_max)
            .max_encoding_message_size(self.message_bytes_max))
    }
}

/// What the services of a cluster server share.
pub(crate) struct Cluster {
    pub etcd: Etcd,
    /// The cluster's name: its etcd keys are under `/<name>/`.
    pub name: String,
    pub view: view::View,
    pub host: Arc<host::TabletHost>,
    pub pool: Pool,
    /// What this server did as master, over all its terms.
    pub master_totals: Arc<strata_cluster::master::PassTotals>,
}

impl crate::observe::ClusterFacts for Cluster {
    fn cluster_status(&self) -> crate::observe::ClusterStatus {
        let mut st = self.view.cluster_status();
        st.master_changes = self
            .master_totals
            .all()
            .iter()
            .map(|(action, n)| (action.to_string(), *n))
            .collect();
        st
    }

    fn databases(&self) -> Vec<Arc<strata_table::Database>> {
        self.host.all().into_iter().map(|h| h.db.clone()).collect()
    }
}

/// A table's schema record from etcd as the table's info (its schema in
/// the catalog's encoding, decoded).
pub(crate) fn table_info(
    s: &schema_store::TableSchema,
) -> strata_table::Result<strata_table::TableInfo> {
    let schema = strata_table::Schema::decode(&s.schema).map_err(|e| {
        strata_table::TableError::Corrupt(format!("table {}: its schema in etcd: {e}", s.table))
    })?;
    Ok(strata_table::TableInfo {
        name: s.table.clone(),
        schema: Arc::new(schema),
    })
}

/// An etcd failure as the status a client sees.
pub(crate) fn etcd_status(e: strata_cluster::Error) -> Status {
    use strata_cluster::Error as E;
    match e {
        E::AlreadyExists(m) => Status::already_exists(m),
        E::InvalidArgument(m) => Status::invalid_argument(m),
        E::Conflict(m) => Status::aborted(m),
        e if e.is_retryable() => Status::unavailable(format!("etcd: {e}")),
        e => Status::internal(format!("etcd: {e}")),
    }
}

impl Cluster {
    /// `table`'s tablets in row order, after checking it exists.
    pub async fn tablets_of(
        &self,
        table: &str,
    ) -> Result<Vec<strata_cluster::tablet_map::TabletRecord>, Status> {
        self.ensure_table(table).await?;
        Ok(self.view.map().tablets(table).cloned().collect())
    }

    /// NOT_FOUND unless `table` exists; a table this server has not seen
    /// yet (created through another server a moment ago) is read from
    /// etcd, so a client never misses its own CreateTable.
    pub async fn ensure_table(&self, table: &str) -> Result<(), Status> {
        if self.view.has_schema(table) {
            return Ok(());
        }
        match schema_store::get(&self.etcd, &self.name, table).await {
            Ok(Some(s)) => {
                self.view.put_schema(s);
                Ok(())
            }
            Ok(None) => Err(Status::not_found(format!("table {table:?} not found"))),
            Err(strata_cluster::Error::InvalidArgument(_)) => {
                Err(Status::not_found(format!("table {table:?} not found")))
            }
            Err(e) => Err(etcd_status(e)),
        }
    }
}
