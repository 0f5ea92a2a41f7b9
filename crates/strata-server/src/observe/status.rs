//! What the status page shows, gathered once per look: the server, its
//! engine, the flushes and compactions running, recent slow requests, the
//! RPCs served, the tables with their tablets and, on a cluster server,
//! the cluster. The page (`status_page`) renders it as HTML,
//! `/status.json` serializes it, and `strata status` prints it in the
//! terminal.

use std::collections::HashMap;
use std::fmt::Write;

use serde::{Deserialize, Serialize};

use super::rpc::SlowRequest;
use super::{Observer, Phase};

/// Tablets listed per table; the rest are counted.
pub const TABLETS_SHOWN_MAX: usize = 1000;

/// The whole status of a server at one moment.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Status {
    pub version: String,
    /// `starting` (opening the database), `serving` or `stopping`.
    pub state: String,
    pub uptime_secs: u64,
    /// Where the data lives: a directory or a storage URL.
    pub storage: String,
    /// The engine, when the server has one database (not on a cluster
    /// server, whose tablets are engines of their own).
    pub engine: Option<EngineStatus>,
    /// Flushes and compactions running now.
    pub jobs: Vec<JobStatus>,
    /// The last slow requests, newest last.
    pub slow_requests: Vec<SlowRequest>,
    pub slow_request_threshold_ms: Option<u64>,
    pub rpcs: Vec<RpcStatus>,
    pub tables: Vec<TableStatus>,
    pub cluster: Option<ClusterStatus>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct EngineStatus {
    pub memtable_active_bytes: u64,
    pub memtable_sealed_bytes: u64,
    pub memtable_budget_bytes: u64,
    pub write_stalls: u64,
    pub write_stall_micros: u64,
    pub block_cache_usage_bytes: u64,
    pub block_cache_capacity_bytes: u64,
    pub block_cache_hits: u64,
    pub block_cache_misses: u64,
    pub log_segments: usize,
    pub log_bytes_retained: u64,
    pub log_bytes_written: u64,
    pub commit_groups: u64,
    pub commit_batches: u64,
    pub commit_durable_groups: u64,
    pub commit_log_micros: u64,
    /// The bucket bound (µs) under which 99% of durable groups wrote and
    /// made durable their log records.
    pub commit_log_p99_micros_bound: Option<f64>,
    pub flushes: u64,
    pub flush_bytes_written: u64,
    pub flush_micros: u64,
    pub compactions: u64,
    pub compaction_bytes_read: u64,
    pub compaction_bytes_written: u64,
    pub compaction_micros: u64,
    pub user_bytes_written: u64,
    pub storage_bytes_written: u64,
    pub write_amplification: f64,
}

/// A flush or compaction running now.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct JobStatus {
    /// `flush` or `compaction L<from> to L<to>`.
    pub kind: String,
    /// The table (or, for a tree that is no table's, the tree's name).
    pub table: String,
    pub tablet: u64,
    pub input_bytes: u64,
    pub keys_done: u64,
    pub running_millis: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RpcStatus {
    /// `package.Service/Method`.
    pub rpc: String,
    pub started: u64,
    pub ok: u64,
    /// gRPC code name and count, for the codes other than OK that
    /// happened.
    pub errors: Vec<(String, u64)>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TableStatus {
    pub name: String,
    pub size_bytes: u64,
    pub memtable_bytes: u64,
    pub rows_read: u64,
    pub rows_written: u64,
    pub tablet_count: usize,
    /// The first `TABLETS_SHOWN_MAX` tablets.
    pub tablets: Vec<TabletStatus>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TabletStatus {
    pub id: u64,
    /// Row keys as text: printable ASCII as it is, other bytes as `\xNN`.
    /// Empty: the start of the table.
    pub start_row: String,
    /// None: the end of the table.
    pub end_row: Option<String>,
    pub size_bytes: u64,
    pub memtable_bytes: u64,
    pub files_per_level: Vec<usize>,
    pub shared_files: usize,
}

/// A cluster server's view of its cluster.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ClusterStatus {
    /// This server's owner name (`id@incarnation`), while it has a lease.
    pub me: Option<String>,
    /// Whether this server runs the master's loop now.
    pub is_master: bool,
    /// The master (`id@incarnation`) as etcd says (polled every few
    /// seconds), and its term.
    pub master: Option<String>,
    pub master_term: Option<i64>,
    /// What this server changed as master, over all its terms: tablets
    /// marked recovering (a lost server's), assigned, moves, splits and
    /// merges, by action.
    pub master_changes: Vec<(String, u64)>,
    pub servers: Vec<ServerStatus>,
    /// Tablets by table, in the tablet map's order (at most
    /// `TABLETS_SHOWN_MAX` per table).
    pub tables: Vec<ClusterTableStatus>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ServerStatus {
    pub owner: String,
    pub address: String,
    /// Tablets the map says it serves.
    pub tablets: usize,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ClusterTableStatus {
    pub name: String,
    pub tablet_count: usize,
    pub tablets: Vec<ClusterTabletStatus>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ClusterTabletStatus {
    pub id: u64,
    pub start_row: String,
    pub end_row: Option<String>,
    pub owner: Option<String>,
    /// `unassigned`, `serving`, `moving` or `recovering`.
    pub state: String,
    pub epoch: u64,
}

impl ClusterStatus {
    /// The master changes that happened, as `assigned 4, move started 1`;
    /// None if none did.
    pub fn master_changes_text(&self) -> Option<String> {
        let changes: Vec<String> = self
            .master_changes
            .iter()
            .filter(|(_, n)| *n > 0)
            .map(|(a, n)| format!("{} {n}", a.replace('_', " ")))
            .collect();
        (!changes.is_empty()).then(|| changes.join(", "))
    }
}

/// What a cluster server tells the observer about its cluster.
pub trait ClusterFacts: Send + Sync {
    fn cluster_status(&self) -> ClusterStatus;
    /// The databases of the tablets this server serves now.
    fn databases(&self) -> Vec<std::sync::Arc<strata_table::Database>>;
}

/// A row key as text: printable ASCII as it is, other bytes (and `\`) as
/// `\xNN`.
pub fn row_text(key: &[u8]) -> String {
    let mut out = String::with_capacity(key.len());
    for &b in key {
        if (0x20..0x7f).contains(&b) && b != b'\\' {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "\\x{b:02x}");
        }
    }
    out
}

impl Status {
    /// The status of the server `obs` observes, now.
    pub fn gather(obs: &Observer) -> Status {
        let f = obs.facts();
        let state = match obs.phase() {
            Phase::Starting => "starting",
            Phase::Serving => "serving",
            Phase::Stopping => "stopping",
        };
        let mut st = Status {
            version: f.version.to_string(),
            state: state.to_string(),
            uptime_secs: obs.uptime().as_secs(),
            storage: f.storage.clone(),
            engine: None,
            jobs: Vec::new(),
            slow_requests: obs.rpc.recent_slow.list(),
            slow_request_threshold_ms: obs.opts.slow_request.map(|d| d.as_millis() as u64),
            rpcs: rpcs(obs),
            tables: Vec::new(),
            cluster: obs.cluster_facts().map(|c| c.cluster_status()),
        };
        let dbs = obs.databases();
        if let Some(figures) = super::engine_figures(&dbs) {
            st.engine = Some(engine(obs, figures));
        }
        for db in &dbs {
            let tables = db.list_tables("");
            let by_tree: HashMap<&str, &str> = tables
                .iter()
                .map(|t| (t.schema.tree.as_str(), t.name.as_str()))
                .collect();
            st.jobs.extend(db.engine().jobs().into_iter().map(|j| {
                JobStatus {
                    kind: match j.kind {
                        strata_engine::JobKind::Flush => "flush".to_string(),
                        strata_engine::JobKind::Compaction { from, to } => {
                            format!("compaction L{from} to L{to}")
                        }
                    },
                    table: by_tree
                        .get(j.tree.as_str())
                        .map_or_else(|| j.tree.clone(), |t| t.to_string()),
                    tablet: j.tablet,
                    input_bytes: j.input_bytes,
                    keys_done: j.keys_done,
                    running_millis: j.running_for.as_millis() as u64,
                }
            }));
        }
        // Tables and their tablets: a single-process server's (a cluster
        // server lists the cluster's tablets instead).
        if let Some(db) = obs.database() {
            st.tables = db
                .list_tables("")
                .iter()
                .filter_map(|t| table(obs, &db, &t.name))
                .collect();
        }
        st
    }
}

fn engine(
    obs: &Observer,
    (s, mem): (strata_engine::EngineStats, strata_engine::MemtableUsage),
) -> EngineStatus {
    let f = obs.facts();
    EngineStatus {
        memtable_active_bytes: mem.active_bytes as u64,
        memtable_sealed_bytes: mem.sealed_bytes as u64,
        memtable_budget_bytes: f.memtable_budget_bytes,
        write_stalls: s.write_stalls,
        write_stall_micros: s.write_stall_micros,
        block_cache_usage_bytes: s.block_cache_usage_bytes,
        block_cache_capacity_bytes: f.block_cache_bytes,
        block_cache_hits: s.block_cache_hits,
        block_cache_misses: s.block_cache_misses,
        log_segments: s.log_segments,
        log_bytes_retained: s.log_bytes_retained,
        log_bytes_written: s.log_bytes_written,
        commit_groups: s.commit_groups,
        commit_batches: s.commit_batches,
        commit_durable_groups: s.commit_durable_groups,
        commit_log_micros: s.commit_log_micros,
        commit_log_p99_micros_bound: s.commit_log_latency_micros.quantile_bound(0.99),
        flushes: s.flushes,
        flush_bytes_written: s.flush_bytes_written,
        flush_micros: s.flush_micros,
        compactions: s.compactions,
        compaction_bytes_read: s.compaction_bytes_read,
        compaction_bytes_written: s.compaction_bytes_written,
        compaction_micros: s.compaction_micros,
        user_bytes_written: s.user_bytes_written,
        storage_bytes_written: s.storage_bytes_written,
        write_amplification: s.write_amplification(),
    }
}

fn rpcs(obs: &Observer) -> Vec<RpcStatus> {
    obs.rpc
        .all()
        .iter()
        .map(|m| RpcStatus {
            rpc: format!("{}/{}", m.service, m.method),
            started: m.started.get(),
            ok: m.ok_count(),
            errors: m
                .error_counts()
                .into_iter()
                .map(|(code, n)| (code.to_string(), n))
                .collect(),
        })
        .collect()
}

/// A table's status; None if it was deleted meanwhile.
fn table(obs: &Observer, db: &strata_table::Database, name: &str) -> Option<TableStatus> {
    let tablets = db.tablets(name).ok()?;
    let c = obs.tables.table_if_known(name);
    let (rows_read, rows_written) = c.map_or((0, 0), |c| (c.rows_read(), c.rows_written()));
    Some(TableStatus {
        name: name.to_string(),
        size_bytes: tablets.iter().map(|t| t.size_bytes).sum(),
        memtable_bytes: tablets.iter().map(|t| t.memtable_bytes).sum(),
        rows_read,
        rows_written,
        tablet_count: tablets.len(),
        tablets: tablets
            .iter()
            .take(TABLETS_SHOWN_MAX)
            .map(|t| TabletStatus {
                id: u64::from(t.id),
                start_row: row_text(&t.start_row),
                end_row: t.end_row.as_deref().map(row_text),
                size_bytes: t.size_bytes,
                memtable_bytes: t.memtable_bytes,
                files_per_level: t.files_per_level.clone(),
                shared_files: t.shared_files,
            })
            .collect(),
    })
}
