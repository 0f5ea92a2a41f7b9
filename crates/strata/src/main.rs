//! The `strata` command: `strata serve` runs the Bigtable-API server on the
//! embedded default (local files, no other service); `strata tablets`
//! lists a table's tablets on a running server.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use strata_engine::{EngineOptions, SyncMode};
use strata_object_store::ObjectStorage;
use strata_server::observe::{ObserveOptions, Observer, ServerFacts};
use strata_server::ServerOptions;
use strata_table::{Database, DatabaseOptions};

/// mimalloc instead of the system allocator: a request allocates and
/// frees many small buffers (decoded messages, cells, responses), and
/// glibc's malloc took a fifth of the server's CPU on reads
/// (docs/benchmarks.md, "the allocator").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod check_cmd;
mod cluster_cmd;
mod compact_cmd;
mod dump_cmd;
mod http_listen;
mod listen;
mod logging;
mod report;
mod serve_cluster;
mod size;
mod status_cmd;
mod tablets_cmd;

#[derive(Parser)]
#[command(
    name = "strata",
    version,
    about = "Strata: a wide-column database in the line of Bigtable"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// How to write log lines to stderr (RUST_LOG picks which).
    #[arg(long, global = true, value_enum, default_value_t = logging::LogFormat::Text)]
    log_format: logging::LogFormat,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the Cloud Bigtable data and table-admin APIs over gRPC.
    /// Clients find it with BIGTABLE_EMULATOR_HOST=<listen address>.
    #[command(after_help = logging::HELP)]
    Serve(Box<ServeArgs>),
    /// List a table's tablets on a running server: row range, size on
    /// disk, memtable size and files per level.
    Tablets(tablets_cmd::TableArgs),
    /// Verify every checksum of a stopped server's data: the manifest,
    /// every table and the commit log. Exits non-zero on damage, naming
    /// each damaged file.
    Check(check_cmd::CheckArgs),
    /// Run a major compaction of a table on a running server (flush, then
    /// every tablet down to one sorted level; GC rules applied) and wait.
    Compact(tablets_cmd::TableArgs),
    /// Print one of the engine's files in readable form: an SSTable
    /// (properties, index, entries), a commit-log segment (records and
    /// their operations) or the manifest (version edits).
    Dump(dump_cmd::DumpArgs),
    /// Print a running server's status (what its status page shows) from
    /// its HTTP listener.
    Status(status_cmd::StatusArgs),
    /// Inspect a cluster through its etcd (docs/cluster.md).
    #[command(subcommand)]
    Cluster(cluster_cmd::ClusterCommand),
}

/// Server settings from the command line.
#[derive(Args)]
struct ServeArgs {
    /// Where the data lives (created if missing). With --storage, only a
    /// cache of tables fetched from the store: deleting it loses nothing.
    #[arg(long, default_value = "./strata-data")]
    data_dir: PathBuf,
    /// Keep everything in an object store instead of the data directory:
    /// s3://BUCKET/PREFIX (AWS or any S3-compatible server; credentials,
    /// region and endpoint from AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
    /// AWS_REGION, AWS_ENDPOINT_URL, and AWS_ALLOW_HTTP=true for a plain
    /// HTTP endpoint), gs://BUCKET/PREFIX, az://CONTAINER/PREFIX,
    /// file:///DIR (a directory used as an object store) or memory://
    /// (lost at exit; for tests). One server owns a storage at a time: a
    /// second one opened on it takes it over, and the first stops writing.
    #[arg(long, value_name = "URL")]
    storage: Option<String>,
    /// With --storage: the most the data directory may hold of tables
    /// fetched from the store (least recently used evicted first).
    #[arg(long, default_value = "10GiB", value_parser = size::parse_size)]
    cache_size: u64,
    /// With --storage: group commits whose log objects may upload at once,
    /// 1 to 64 (writes are acknowledged in order as their objects land;
    /// more helps when each upload takes long, as on a distant store).
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=64))]
    log_uploads: u16,
    /// Without --storage and --sync-interval-ms: group commits whose
    /// fsyncs may be in flight at once, 0 to 64 (the next group is written
    /// and synced while earlier ones sync; writes are acknowledged in
    /// order as they become durable). 0: one group syncs at a time. More
    /// helps on a disk whose syncs are slow and run in parallel (a
    /// network block device), at the price of more, smaller syncs.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u16).range(0..=64))]
    log_syncs: u16,
    /// Address to listen on: HOST:PORT with an IP address or host name,
    /// or :PORT for every interface (8086 is the Bigtable emulator's
    /// default port).
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:8086")]
    listen: listen::ListenAddr,
    /// Where to serve metrics (/metrics, Prometheus' text format), health
    /// probes (/healthz, /readyz) and the status page (/) over HTTP:
    /// HOST:PORT, :PORT, or `off`. Default 127.0.0.1:8087; if that port
    /// is taken, the server starts without it (a warning says so).
    #[arg(long, value_name = "HOST:PORT|off")]
    http_listen: Option<http_listen::HttpListen>,
    /// Log every request that takes this many milliseconds or longer (a
    /// warning naming the RPC, its status, table, rows and time); 0: none.
    #[arg(long, default_value_t = 1000, value_name = "MS")]
    slow_request_ms: u64,
    /// Sync the commit log every this many milliseconds instead of
    /// before every acknowledgement (0, the default: sync before
    /// acknowledging; a crash then loses nothing acknowledged).
    #[arg(long, default_value_t = 0)]
    sync_interval_ms: u64,
    /// Write the commit log into segments zero-filled ahead of use (on a
    /// local directory, syncing before every acknowledgement), so each
    /// sync flushes data without a file-system journal commit. `off`
    /// appends instead (no second write of the log's size in zeros).
    #[arg(long, default_value = "on", value_parser = ["on", "off"])]
    log_preallocate: String,
    /// Transparent huge pages for the server's memory: `off` (the
    /// default) turns them off for this process; `system` leaves them as
    /// the system and the allocator set them (which can suit a long-running,
    /// read-mostly server with a large block cache; docs/benchmarks.md,
    /// "Transparent huge pages off").
    #[arg(long, default_value = "off", value_parser = ["off", "system"])]
    transparent_huge_pages: String,
    /// Block cache size in MiB.
    #[arg(long, default_value_t = 256)]
    cache_mib: usize,
    /// A tablet larger than this splits in two at a middle row (`off`:
    /// tablets split only at a table's initial splits). In a cluster
    /// (--etcd), the two halves are tablets of the cluster, which the
    /// master may then place on different servers.
    #[arg(long, default_value = "512MiB", value_parser = size::parse_size_or_off)]
    tablet_split_size: size::Limit,
    /// In a cluster (--etcd): two neighbouring tablets of a table whose
    /// sizes add up to at most this merge into one, once they have stayed
    /// so small for --tablet-merge-delay-secs (`off`: never). Default: a
    /// quarter of --tablet-split-size, so that a merged tablet is far
    /// from splitting again.
    #[arg(long, value_parser = size::parse_size_or_off)]
    tablet_merge_size: Option<size::Limit>,
    /// In a cluster: how long two neighbours must stay under
    /// --tablet-merge-size before they merge (a new table's initial
    /// splits are small at first).
    #[arg(long, default_value_t = 600)]
    tablet_merge_delay_secs: u64,
    /// Memory for memtables across every tablet; past it the largest
    /// are flushed, and writes wait while it is exceeded.
    #[arg(long, default_value = "256MiB", value_parser = size::parse_size)]
    memtable_budget: u64,
    /// Compactions that may run at once across every tablet (the most
    /// urgent go first), 1 to 64.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=64))]
    compaction_threads: u16,
    /// Threads serving gRPC connections (default: one per CPU core). Each
    /// connection and its requests run on one of them, the one with the
    /// fewest connections when it opened, so a client wanting more than
    /// one core opens more than one connection. Not used with --etcd.
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=1024))]
    serving_threads: Option<u16>,
    /// Join a cluster whose coordination is in this etcd (comma-separated
    /// http://HOST:PORT endpoints); needs --storage, shared by every
    /// server of the cluster (docs/cluster.md).
    #[arg(long, value_name = "URLS")]
    etcd: Option<String>,
    /// With --etcd: the cluster's name (its keys in etcd are under
    /// /NAME/).
    #[arg(long, default_value = "strata", value_name = "NAME")]
    cluster: String,
    /// With --etcd: where the other servers reach this one, HOST:PORT
    /// (default: the --listen address, unless that is every interface).
    #[arg(long, value_name = "HOST:PORT")]
    advertise: Option<String>,
    /// With --etcd: this server's id in the cluster (default: its
    /// advertised address). Each run is a new incarnation of the id.
    #[arg(long, value_name = "ID")]
    server_id: Option<String>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    logging::init(cli.log_format);
    let done = match cli.command {
        Command::Serve(args) => serve(*args),
        Command::Tablets(args) => tablets_cmd::run(args),
        Command::Check(args) => check_cmd::run(args),
        Command::Compact(args) => compact_cmd::run(args),
        Command::Dump(args) => dump_cmd::run(args),
        Command::Status(args) => status_cmd::run(args),
        Command::Cluster(cmd) => cluster_cmd::run(cmd),
    };
    match done {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", report::message(&e));
            ExitCode::FAILURE
        }
    }
}

/// Turns transparent huge pages off for this process
/// (`prctl(PR_SET_THP_DISABLE)`, checked by the kernel at each page fault,
/// so it holds for memory mapped before this call too). mimalloc asks for
/// huge pages on its arenas (`MADV_HUGEPAGE`), and then the first touch
/// of any 2 MiB of them (a new blocking thread's heap, memory mimalloc
/// gave back to the system and uses again) has the kernel find, and
/// zero, a whole huge page: 16% of the server's CPU under a zipfian
/// read-modify-write load, and writes' p99 at 16 in flight 3 times as
/// long (docs/benchmarks.md, "Transparent huge pages off").
fn disable_transparent_huge_pages() -> std::io::Result<()> {
    // SAFETY: prctl with integer arguments only; it changes a flag of
    // this process and touches no memory of ours.
    let r = unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) };
    match r {
        0 => Ok(()),
        _ => Err(std::io::Error::last_os_error()),
    }
}

/// Memtables grow in 1 MiB arena chunks and are freed whole after their
/// flush. glibc's default mmap threshold adapts upwards once such a chunk
/// is freed, after which chunks come from the heap and freed ones stay in
/// the process: with many tablets sealing and freeing memtables at
/// different times, the peak RSS of a 1,000,000-row load with 64 MiB
/// tablets went from 262 MiB with a fixed 512 KiB threshold to 337 MiB
/// without (`scripts/dev/rss_load.sh`, docs/benchmarks.md). A fixed threshold keeps every chunk in
/// its own mapping, returned to the OS when freed.
fn release_large_frees_to_the_os() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets an allocator parameter; called before any
    // other thread exists.
    unsafe {
        if libc::mallopt(libc::M_MMAP_THRESHOLD, 512 << 10) != 1 {
            tracing::warn!("could not set the malloc mmap threshold");
        }
    }
}

fn serve(args: ServeArgs) -> Result<()> {
    release_large_frees_to_the_os();
    if args.transparent_huge_pages == "off" {
        if let Err(e) = disable_transparent_huge_pages() {
            tracing::warn!("could not turn transparent huge pages off: {e}");
        }
    }
    let ServeArgs {
        data_dir: dir,
        storage,
        cache_size,
        log_uploads,
        log_syncs,
        listen,
        http_listen,
        slow_request_ms,
        sync_interval_ms,
        log_preallocate,
        transparent_huge_pages: _,
        cache_mib,
        tablet_split_size: size::Limit(tablet_split_size),
        tablet_merge_size,
        tablet_merge_delay_secs,
        memtable_budget,
        compaction_threads,
        serving_threads,
        etcd,
        cluster,
        advertise,
        server_id,
    } = args;
    if tablet_split_size.is_some_and(|b| b < 64 << 10) {
        anyhow::bail!("--tablet-split-size must be at least 64KiB (or off)");
    }
    let merge_size_bytes = match tablet_merge_size {
        None => tablet_split_size.map_or(0, |b| b / 4),
        Some(size::Limit(limit)) => limit.unwrap_or(0),
    };
    if let Some(split) = tablet_split_size {
        if merge_size_bytes > split / 2 {
            anyhow::bail!(
                "--tablet-merge-size must be at most half of --tablet-split-size (a merged tablet would split again)"
            );
        }
    }
    let memtable_budget = usize::try_from(memtable_budget)
        .ok()
        .filter(|&b| b >= 1 << 20)
        .context("--memtable-budget must be at least 1MiB")?;
    let engine = EngineOptions {
        sync_mode: if sync_interval_ms == 0 {
            SyncMode::Always
        } else {
            SyncMode::Periodic(Duration::from_millis(sync_interval_ms))
        },
        block_cache_bytes: cache_mib << 20,
        memtable_budget_bytes: memtable_budget,
        max_background_compactions: usize::from(compaction_threads),
        log_uploads_in_flight_max: usize::from(log_uploads),
        log_syncs_in_flight_max: usize::from(log_syncs),
        log_preallocate: log_preallocate == "on",
        ..EngineOptions::default()
    };
    let mut opts = DatabaseOptions {
        engine,
        ..DatabaseOptions::default()
    };
    opts.table.tablet_split_bytes = tablet_split_size;
    tracing::info!("strata {} starting", env!("CARGO_PKG_VERSION"));
    // Bound before the data directory is touched, so a taken port leaves
    // nothing behind.
    let listener = listen.bind()?;
    let http_listener = http_listen::bind(http_listen.as_ref())?;
    let observer = Observer::new(
        ServerFacts::new(
            storage.clone().unwrap_or_else(|| dir.display().to_string()),
            memtable_budget as u64,
            (cache_mib as u64) << 20,
        ),
        ObserveOptions {
            counting: http_listener.is_some(),
            slow_request: (slow_request_ms > 0).then(|| Duration::from_millis(slow_request_ms)),
        },
    );
    let http = match http_listener {
        Some(l) => Some(http_listen::start(l, observer.clone())?),
        None => None,
    };
    if let Some(etcd) = etcd {
        if serving_threads.is_some() {
            tracing::warn!("--serving-threads has no effect with --etcd");
        }
        let args = serve_cluster::ClusterArgs {
            etcd,
            cluster,
            advertise,
            server_id,
            storage,
            cache_dir: dir,
            cache_size,
            merge_size_bytes,
            merge_delay: Duration::from_secs(tablet_merge_delay_secs),
        };
        let done = serve_cluster::run(args, listener, opts, observer);
        if let Some(http) = http {
            http.stop();
        }
        return done;
    }
    let opened = Instant::now();
    let (db, objects) = match &storage {
        None => (
            Database::open(&dir, opts).map_err(|e| report::open_error(&dir, e))?,
            None,
        ),
        Some(url) => {
            if sync_interval_ms != 0 {
                tracing::warn!(
                    "--sync-interval-ms has no effect with --storage: every group commit is uploaded before it is acknowledged"
                );
            }
            let parsed = strata_object_store::parse_storage_url(url)?;
            let objects = ObjectStorage::open(parsed, Some(&dir), cache_size)?;
            observer.set_object_store(objects.clone());
            let db = Database::open_storage(objects.clone(), opts)
                .map_err(|e| report::open_storage_error(url, e))?;
            (db, Some(objects))
        }
    };
    let tables = db.list_tables("").len();
    match &storage {
        None => tracing::info!(
            dir = %dir.display(),
            tables,
            "database open in {:.2?}",
            opened.elapsed()
        ),
        Some(url) => tracing::info!(
            storage = %url,
            cache = %dir.display(),
            tables,
            "database open in {:.2?}",
            opened.elapsed()
        ),
    }
    let db = Arc::new(db);
    let serving_threads = serving_threads.map_or_else(
        || {
            std::thread::available_parallelism()
                .map_or(1, usize::from)
                .min(strata_server::SERVING_THREADS_MAX)
        },
        usize::from,
    );
    // The acceptor and the signal handlers; connections run on the
    // serving threads (`serve_on_threads`).
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(async {
        let listener = tokio::net::TcpListener::from_std(listener)
            .context("registering the listening socket")?;
        let addr = listener
            .local_addr()
            .context("reading the listening address")?;
        tracing::info!(
            "serving the Bigtable API on {addr}; clients: export BIGTABLE_EMULATOR_HOST={}",
            listen::client_addr(addr)
        );
        tracing::info!("{serving_threads} serving threads");
        observer.serving(Some(&db)).await;
        let opts = ServerOptions {
            observer: Some(observer.clone()),
            ..ServerOptions::default()
        };
        let shutdown = async {
            shutdown_signal().await;
            observer.stopping().await;
        };
        strata_server::serve_on_threads(db.clone(), listener, opts, serving_threads, shutdown)
            .await
            .context("serving")
    })?;
    tracing::info!("stopped accepting requests; closing the database");
    // Requests still running on the blocking pool hold the database; give
    // them a moment, then close (every acknowledged write is already in
    // the synced log, so closing only saves replay time at the next open).
    drop(rt);
    let st = db.engine().stats();
    if st.commit_groups > 0 {
        let durable = if st.commit_durable_groups > 0 {
            format!(
                ", {:.0} µs each in the log (append and sync)",
                st.commit_log_micros as f64 / st.commit_durable_groups as f64
            )
        } else {
            String::new()
        };
        tracing::info!(
            "group commits: {} groups of {:.1} batches on average{durable}",
            st.commit_groups,
            st.commit_batches as f64 / st.commit_groups as f64,
        );
    }
    match Arc::try_unwrap(db) {
        Ok(db) => db.close().context("closing the database")?,
        Err(db) => {
            tracing::warn!("requests still running at shutdown; syncing the log only");
            db.engine().sync_log().context("syncing the log")?;
        }
    }
    if let Some(objects) = objects {
        let c = objects.counters();
        tracing::info!("object store: {c}");
        let load = |n: &std::sync::atomic::AtomicU64| n.load(std::sync::atomic::Ordering::Relaxed);
        if st.commit_batches > 0 && st.user_bytes_written > 0 {
            // The costs of this run's writes (their flushes and compactions
            // included): what a store charges for, per write and per byte.
            tracing::info!(
                "object store costs: {:.1} PUTs per 1,000 acknowledged write batches, {:.2} bytes uploaded per user byte",
                load(&c.puts) as f64 * 1000.0 / st.commit_batches as f64,
                load(&c.put_bytes) as f64 / st.user_bytes_written as f64,
            );
        }
    }
    if let Some(http) = http {
        http.stop();
    }
    tracing::info!("stopped");
    Ok(())
}

/// Resolves on Ctrl-C or SIGTERM.
pub(crate) async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!("cannot listen for Ctrl-C: {e}");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!("cannot listen for SIGTERM: {e}");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => tracing::info!("Ctrl-C: shutting down"),
        _ = term => tracing::info!("SIGTERM: shutting down"),
    }
}
