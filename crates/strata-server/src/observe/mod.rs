//! What an operator sees of a running server (docs/observability.md):
//! metrics in Prometheus' text format, liveness and readiness probes and
//! a status page on an HTTP listener (`http`), the gRPC health service,
//! and per-RPC and per-table counters gathered on the request path
//! (`rpc`, `tables`). The engine's own figures are read from the
//! database at each scrape (`engine_metrics`), costing requests nothing.

mod cluster_metrics;
mod engine_metrics;
mod http;
mod paths;
mod rpc;
mod status;
mod status_page;
mod status_text;
mod store_metrics;
mod tables;

pub use http::{serve_http, HttpError};
pub use paths::{DataRpc, RequestPaths};
pub use rpc::{RequestNote, RpcMetricsLayer, SlowRequest};
pub use status::{
    row_text, ClusterFacts, ClusterStatus, ClusterTableStatus, ClusterTabletStatus, EngineStatus,
    JobStatus, RpcStatus, ServerStatus, Status, TableStatus, TabletStatus, TABLETS_SHOWN_MAX,
};
pub use status_text::render_text;
pub use tables::{TableCounters, TableMetrics, TableTally};

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use parking_lot::RwLock;
use prometheus_client::registry::Registry;
use strata_table::Database;
use tonic_health::pb::health_server::HealthServer;
use tonic_health::server::{HealthReporter, HealthService};
use tonic_health::ServingStatus;

/// Facts about the server that do not change while it runs.
#[derive(Clone, Debug)]
pub struct ServerFacts {
    pub version: &'static str,
    /// Where the data lives: a directory or a storage URL.
    pub storage: String,
    pub memtable_budget_bytes: u64,
    pub block_cache_bytes: u64,
    pub(crate) start_unix_secs: f64,
}

impl ServerFacts {
    pub fn new(storage: String, memtable_budget_bytes: u64, block_cache_bytes: u64) -> Self {
        ServerFacts {
            version: env!("CARGO_PKG_VERSION"),
            storage,
            memtable_budget_bytes,
            block_cache_bytes,
            start_unix_secs: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64()),
        }
    }
}

/// Where the server is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Phase {
    /// Opening the database (replaying the commit log).
    Starting = 0,
    Serving = 1,
    /// Shutting down: no new requests, in-flight ones finishing.
    Stopping = 2,
}

/// The databases whose engines a server runs (see `Observer::databases`).
pub(crate) fn databases(
    slot: &DbSlot,
    cluster: &cluster_metrics::ClusterSlot,
) -> Vec<Arc<Database>> {
    if let Some(db) = slot.get() {
        return vec![db];
    }
    cluster
        .read()
        .as_ref()
        .map_or_else(Vec::new, |c| c.databases())
}

/// The engine figures of `dbs` added up (None for none): a cluster
/// server's tablets are engines sharing one block cache and memtable
/// budget, whose own counters add.
pub(crate) fn engine_figures(
    dbs: &[Arc<Database>],
) -> Option<(strata_engine::EngineStats, strata_engine::MemtableUsage)> {
    let (first, rest) = dbs.split_first()?;
    let mut st = first.engine().stats();
    let mut mem = first.engine().memtable_usage();
    for db in rest {
        st.add(&db.engine().stats());
        let m = db.engine().memtable_usage();
        mem.active_bytes += m.active_bytes;
        mem.sealed_bytes += m.sealed_bytes;
        mem.active_trees += m.active_trees;
    }
    Some((st, mem))
}

/// The database the HTTP listener reports on, once it is open. Held
/// weakly, so that the server can still take the database back whole to
/// close it.
#[derive(Debug, Default)]
pub(crate) struct DbSlot {
    db: RwLock<Option<Weak<Database>>>,
    phase: AtomicU8,
}

impl DbSlot {
    pub(crate) fn get(&self) -> Option<Arc<Database>> {
        self.db.read().as_ref().and_then(Weak::upgrade)
    }

    pub(crate) fn phase(&self) -> Phase {
        match self.phase.load(Ordering::Acquire) {
            0 => Phase::Starting,
            1 => Phase::Serving,
            _ => Phase::Stopping,
        }
    }

    pub(crate) fn serving(&self) -> bool {
        self.phase() == Phase::Serving
    }
}

/// The metrics, health and state of one server, shared by its serving
/// threads and its HTTP listener.
pub struct Observer {
    started: Instant,
    facts: Arc<ServerFacts>,
    slot: Arc<DbSlot>,
    registry: Registry,
    rpc: Arc<rpc::RpcMetrics>,
    tables: Arc<TableMetrics>,
    paths: Arc<RequestPaths>,
    health: HealthReporter,
    health_server: HealthServer<HealthService>,
    opts: ObserveOptions,
    /// A cluster server's view of its cluster, once it has joined.
    cluster: cluster_metrics::ClusterSlot,
    /// The object store the server keeps its data in, if any.
    store: store_metrics::StoreSlot,
}

/// What the observer does on the request path.
#[derive(Clone, Copy, Debug, Default)]
pub struct ObserveOptions {
    /// Whether requests are counted (the per-RPC and per-table metrics):
    /// without an HTTP listener nothing reads them.
    pub counting: bool,
    /// RPCs that take this long or longer are logged (a warning with the
    /// RPC, its status, table, rows and time).
    pub slow_request: Option<std::time::Duration>,
}

impl std::fmt::Debug for Observer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Observer")
            .field("facts", &self.facts)
            .field("phase", &self.slot.phase())
            .finish_non_exhaustive()
    }
}

/// The gRPC services whose health the health service reports ("" is the
/// whole server).
const HEALTH_SERVICES: [&str; 3] = [
    "",
    "google.bigtable.v2.Bigtable",
    "google.bigtable.admin.v2.BigtableTableAdmin",
];

impl Observer {
    /// A server starting up: not ready, not serving.
    pub fn new(facts: ServerFacts, opts: ObserveOptions) -> Arc<Observer> {
        let facts = Arc::new(facts);
        let slot = Arc::new(DbSlot::default());
        let rpc = Arc::new(rpc::RpcMetrics::default());
        let tables = Arc::new(TableMetrics::default());
        let paths = Arc::new(RequestPaths::default());
        let mut registry = Registry::default();
        let cluster = cluster_metrics::ClusterSlot::default();
        registry.register_collector(Box::new(engine_metrics::EngineCollector {
            db: slot.clone(),
            cluster: cluster.clone(),
            facts: facts.clone(),
        }));
        registry.register_collector(Box::new(rpc::RpcCollector(rpc.clone())));
        registry.register_collector(Box::new(tables::TableCollector(tables.clone())));
        registry.register_collector(Box::new(paths::PathsCollector(paths.clone())));
        registry.register_collector(Box::new(cluster_metrics::ClusterCollector(cluster.clone())));
        let store = store_metrics::StoreSlot::default();
        registry.register_collector(Box::new(store_metrics::StoreCollector(store.clone())));
        let health = HealthReporter::new();
        let health_server = HealthServer::new(HealthService::from_health_reporter(health.clone()));
        Arc::new(Observer {
            started: Instant::now(),
            facts,
            slot,
            registry,
            rpc,
            tables,
            paths,
            health,
            health_server,
            opts,
            cluster,
            store,
        })
    }

    pub fn phase(&self) -> Phase {
        self.slot.phase()
    }

    pub fn facts(&self) -> &ServerFacts {
        &self.facts
    }

    pub fn uptime(&self) -> std::time::Duration {
        self.started.elapsed()
    }

    /// The database is open and about to serve: ready. A cluster server
    /// has no one database (its tablets are engines of their own): None.
    pub async fn serving(&self, db: Option<&Arc<Database>>) {
        *self.slot.db.write() = db.map(Arc::downgrade);
        self.slot
            .phase
            .store(Phase::Serving as u8, Ordering::Release);
        self.set_health(ServingStatus::Serving).await;
    }

    /// Shutting down: not ready, NOT_SERVING.
    pub async fn stopping(&self) {
        self.slot
            .phase
            .store(Phase::Stopping as u8, Ordering::Release);
        self.set_health(ServingStatus::NotServing).await;
    }

    async fn set_health(&self, status: ServingStatus) {
        for s in HEALTH_SERVICES {
            self.health.set_service_status(s, status).await;
        }
    }

    /// The metrics in Prometheus' text format (version 0.0.4).
    pub fn metrics_text(&self) -> String {
        let mut out = String::new();
        if let Err(e) =
            prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry)
        {
            tracing::warn!("encoding metrics: {e}");
        }
        out
    }

    /// Tells the observer the object store the server keeps its data in
    /// (its requests become metrics).
    pub fn set_object_store(&self, store: Arc<strata_object_store::ObjectStorage>) {
        *self.store.write() = Some(store);
    }

    /// Tells the observer what a cluster server knows of its cluster.
    pub fn set_cluster_facts(&self, facts: Arc<dyn ClusterFacts>) {
        *self.cluster.write() = Some(facts);
    }

    pub(crate) fn cluster_facts(&self) -> Option<Arc<dyn ClusterFacts>> {
        self.cluster.read().clone()
    }

    /// The status as `/status.json` serves it.
    pub fn status(&self) -> Status {
        Status::gather(self)
    }

    pub(crate) fn database(&self) -> Option<Arc<Database>> {
        self.slot.get()
    }

    /// The databases whose engines the server runs: its one database, or
    /// a cluster server's tablets.
    pub(crate) fn databases(&self) -> Vec<Arc<Database>> {
        databases(&self.slot, &self.cluster)
    }

    pub(crate) fn rpc_layer(&self) -> RpcMetricsLayer {
        RpcMetricsLayer {
            metrics: Some(self.rpc.clone()),
            counting: self.opts.counting,
            slow: self.opts.slow_request,
        }
    }

    pub(crate) fn table_metrics(&self) -> Option<Arc<TableMetrics>> {
        self.opts.counting.then(|| self.tables.clone())
    }

    pub(crate) fn request_paths(&self) -> Option<Arc<RequestPaths>> {
        self.opts.counting.then(|| self.paths.clone())
    }

    pub(crate) fn health_server(&self) -> HealthServer<HealthService> {
        self.health_server.clone()
    }
}
