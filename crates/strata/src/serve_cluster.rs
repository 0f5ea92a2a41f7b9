//! `strata serve --etcd …`: a server of a cluster (docs/cluster.md).

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use strata_engine::storage::Storage;
use strata_object_store::MirrorScope;
use strata_object_store::ObjectStorage;
use strata_server::cluster::{tablet_prefix, NodeOptions, TabletStore};
use strata_server::observe::Observer;
use strata_server::ServerOptions;
use strata_table::DatabaseOptions;

/// Log uploads in flight per tablet.
const TABLET_LOG_UPLOADS_MAX: usize = 4;
/// Threads that flush the memtables of every tablet of a server.
const FLUSH_THREADS: usize = 2;
/// How long a dead server's tablets wait before they move.
const LEASE_TTL: Duration = Duration::from_secs(3);

pub struct ClusterArgs {
    pub etcd: String,
    pub cluster: String,
    pub advertise: Option<String>,
    pub server_id: Option<String>,
    pub storage: Option<String>,
    pub cache_dir: std::path::PathBuf,
    pub cache_size: u64,
    /// See `NodeOptions::merge_size_bytes`.
    pub merge_size_bytes: u64,
    pub merge_delay: Duration,
}

pub fn run(
    args: ClusterArgs,
    listener: TcpListener,
    mut opts: DatabaseOptions,
    observer: Arc<Observer>,
) -> Result<()> {
    let Some(url) = args.storage else {
        anyhow::bail!(
            "--etcd needs --storage URL: a cluster keeps every tablet in one shared object store"
        );
    };
    let local = listener
        .local_addr()
        .context("reading the listening address")?;
    let advertise = match args.advertise {
        Some(a) => a,
        None if !local.ip().is_unspecified() => local.to_string(),
        None => anyhow::bail!(
            "listening on every interface ({local}): say with --advertise HOST:PORT where the other servers reach this one"
        ),
    };
    let server_id = args.server_id.unwrap_or_else(|| advertise.clone());
    // Every tablet is an engine of its own (docs/cluster.md): they share
    // one memtable budget, --memtable-budget, and one block cache,
    // --cache-mib (each engine a handle on it with keys of its own).
    opts.engine.memtable_pool = Some(strata_engine::MemtablePool::new(
        opts.engine.memtable_budget_bytes,
    ));
    opts.engine.shared_block_cache = Some(strata_engine::sst::BlockCache::new(
        opts.engine.block_cache_bytes,
    ));
    // ... and one pool of threads for their flushes, compactions
    // (--compaction-threads at once across every tablet) and tablet
    // maintenance, instead of three or more threads each.
    opts.engine.background_pool = Some(
        strata_engine::BackgroundPool::new(FLUSH_THREADS, opts.engine.max_background_compactions)
            .context("starting the background threads")?,
    );
    opts.engine.log_uploads_in_flight_max = opts
        .engine
        .log_uploads_in_flight_max
        .min(TABLET_LOG_UPLOADS_MAX);
    let parsed = strata_object_store::parse_storage_url(&url)?;
    let root = ObjectStorage::open(parsed, Some(&args.cache_dir), args.cache_size)?;
    observer.set_object_store(root.clone());
    let split_size_bytes = opts.table.tablet_split_bytes.unwrap_or(0);
    let node = NodeOptions {
        etcd: args.etcd,
        cluster: args.cluster,
        server_id,
        advertise,
        lease_ttl: LEASE_TTL,
        db: opts,
        store: Arc::new(ClusterStore { root }),
        split_size_bytes,
        merge_size_bytes: args.merge_size_bytes,
        merge_delay: args.merge_delay,
        server: ServerOptions {
            observer: Some(observer.clone()),
            ..ServerOptions::default()
        },
    };
    tracing::info!(
        storage = %url,
        cluster = %node.cluster,
        "serving the Bigtable API on {local} as a cluster server; clients: export BIGTABLE_EMULATOR_HOST={}",
        crate::listen::client_addr(local)
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(async {
        let listener = tokio::net::TcpListener::from_std(listener)
            .context("registering the listening socket")?;
        observer.serving(None).await;
        let shutdown = async move {
            crate::shutdown_signal().await;
            observer.stopping().await;
        };
        strata_server::cluster::run(node, listener, shutdown)
            .await
            .context("running the cluster server")
    })?;
    tracing::info!("stopped");
    Ok(())
}

/// The cluster's object store: a tablet's storage is its prefix.
struct ClusterStore {
    root: Arc<ObjectStorage>,
}

impl ClusterStore {
    fn child(&self, id: u64) -> Result<Arc<ObjectStorage>, String> {
        self.root
            .child(&tablet_prefix(id))
            .map_err(|e| e.to_string())
    }
}

impl TabletStore for ClusterStore {
    fn storage(&self, id: u64) -> Result<Arc<dyn Storage>, String> {
        self.child(id).map(|s| s as Arc<dyn Storage>)
    }

    fn mirror(&self, from: u64, to: u64, everything: bool) -> Result<usize, String> {
        let scope = if everything {
            MirrorScope::All
        } else {
            MirrorScope::Tables
        };
        let done = self
            .child(from)?
            .mirror_to(&*self.child(to)?, scope)
            .map_err(|e| format!("copying tablet {from} into {to}: {e}"))?;
        Ok(done.copied)
    }

    fn copy_table(&self, from: u64, number: u64, to: u64, to_number: u64) -> Result<(), String> {
        let name = strata_engine::manifest::table_file_name(number);
        let to_name = strata_engine::manifest::table_file_name(to_number);
        self.child(from)?
            .copy_to(&name, &*self.child(to)?, &to_name)
            .map_err(|e| format!("copying table {name} of tablet {from} into {to}: {e}"))
    }
}
