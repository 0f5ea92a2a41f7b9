//! The engine: trees sharing one commit log, one block cache and one
//! manifest, with background flush and compaction.
//!
//! Locks, in the order they may be taken: the write mutex (held by the
//! write leader), a tablet's `flush_lock`, `log`, `versions`, a tree's
//! `tablets`, a tablet's `sv`, `bg`. Readers take only a tree's `tablets`
//! and a tablet's `sv` briefly, to clone the current list and
//! super-version.

mod background;
mod budget;
mod deferred;
mod group_in_flight;
mod ingest;
mod iter;
mod jobs;
mod open;
mod options;
mod pipeline;
mod pool;
mod read;
mod split;
mod table_file;
mod tablet;
mod tree_iter;
mod workers;
mod write;

pub use budget::MemtableUsage;
pub use deferred::{defer_commit_wakeups, wake_deferred_commits};
pub use ingest::Ingested;
pub use iter::Direction;
pub(crate) use jobs::JobGuard;
pub use jobs::{JobInfo, JobKind};
pub use options::{EngineOptions, SplitBoundary, SyncMode, TreeOptions};
pub use pool::MemtablePool;
pub use split::TabletInfo;
pub(crate) use table_file::TableFile;
pub(crate) use tablet::{TabletState, TreeState};
pub use tree_iter::TreeIter;
pub use workers::BackgroundPool;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use parking_lot::{Condvar, Mutex, RwLock};

use crate::batch::{TreeId, WriteBatch};
use crate::error::{Error, Result};
use crate::histogram::{Histogram, HistogramSnapshot};
use crate::key::SeqNo;
use crate::log::CommitLog;
use crate::manifest::{Version, VersionSet, NUM_LEVELS};
use crate::memtable::Memtable;
use crate::sst::BlockCache;
use crate::storage::{LocalStorage, Storage};

/// What a tree reads from: its active memtable, the sealed ones waiting for
/// flush (oldest first), and its files. Replaced whole, never mutated.
pub(crate) struct SuperVersion {
    pub mem: Arc<Memtable>,
    pub imms: Vec<Arc<Memtable>>,
    pub version: Arc<Version>,
}

#[derive(Default)]
pub(crate) struct Trees {
    /// Looked up for every write (its admission and its routing): keyed
    /// by a multiplicative hash, not SipHash (ids are the engine's own).
    pub by_id: HashMap<TreeId, Arc<TreeState>, TreeIdHash>,
    pub by_name: HashMap<String, TreeId>,
}

/// Hashes a tree id by one multiplication (Fibonacci hashing): ids are
/// small numbers the engine assigns, not input an attacker chooses.
pub(crate) type TreeIdHash = std::hash::BuildHasherDefault<TreeIdHasher>;

#[derive(Default)]
pub(crate) struct TreeIdHasher(u64);

impl std::hash::Hasher for TreeIdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }

    fn write_u32(&mut self, id: u32) {
        self.write_u64(u64::from(id));
    }

    fn write_u64(&mut self, v: u64) {
        self.0 = (self.0.rotate_left(5) ^ v).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

/// The error writers get while the engine is stopped by `bg.error` (`e`).
pub(crate) fn bg_error(bg: &BgState, e: &str) -> Error {
    match bg.retry {
        _ if bg.fenced => Error::Fenced(e.to_string()),
        Some(crate::error::RetryClass::NoSpace) => Error::NoSpace(e.to_string()),
        Some(crate::error::RetryClass::Unavailable) => Error::Unavailable(e.to_string()),
        None => Error::Closed(e.to_string()),
    }
}

/// Background coordination, under `Inner::bg`.
#[derive(Default)]
pub(crate) struct BgState {
    pub shutdown: bool,
    /// A background failure: the engine refuses writes from then on.
    pub error: Option<String>,
    /// The failure was a newer owner taking the storage over.
    pub fenced: bool,
    /// The failure is one the engine retries (`background::recover`):
    /// writes are refused meanwhile with this class of error.
    pub retry: Option<crate::error::RetryClass>,
    /// Files that a running compaction reads or moves.
    pub busy_files: HashSet<u64>,
    pub compactions_running: usize,
    pub flushes_running: usize,
    /// Trees whose compaction must run even below the usual triggers.
    pub manual_compactions: HashSet<TreeId>,
}

#[derive(Default)]
pub(crate) struct Stats {
    pub user_bytes_written: AtomicU64,
    pub flush_bytes_written: AtomicU64,
    pub compaction_bytes_written: AtomicU64,
    pub compaction_bytes_read: AtomicU64,
    pub flushes: AtomicU64,
    pub compactions: AtomicU64,
    pub write_stalls: AtomicU64,
    pub commit_groups: AtomicU64,
    pub commit_batches: AtomicU64,
    pub commit_durable_groups: AtomicU64,
    pub commit_log_micros: AtomicU64,
    /// Batches per group commit.
    pub commit_group_batches: Histogram,
    /// Microseconds to write and make durable a durable group's records.
    pub commit_log_latency_micros: Histogram,
    /// Time writers waited in stalls and slowdowns.
    pub write_stall_micros: AtomicU64,
    pub flush_micros: AtomicU64,
    pub compaction_micros: AtomicU64,
    /// Bloom filter answers of point lookups.
    pub bloom: crate::manifest::BloomStats,
}

pub(crate) struct Inner {
    pub storage: Arc<dyn Storage>,
    pub opts: EngineOptions,
    pub cache: Arc<BlockCache>,
    pub log: Mutex<CommitLog>,
    pub versions: Mutex<VersionSet>,
    pub trees: RwLock<Trees>,
    pub queue: Mutex<write::WriteQueue>,
    /// Wakes the committer thread (asynchronous writers queued, no leader);
    /// shared with threads that defer its wake-ups (`deferred.rs`).
    pub commit_cv: Arc<Condvar>,
    /// Held by the write leader for a whole group; also taken to switch
    /// memtables from outside the write path.
    pub write_mutex: Mutex<()>,
    /// The last sequence number visible to readers.
    pub last_seq: AtomicU64,
    pub snapshots: Mutex<BTreeMap<SeqNo, usize>>,
    pub bg: Mutex<BgState>,
    pub bg_cv: Condvar,
    /// Set with `BgState::error` or `shutdown`: the write path's fast check.
    pub stopped: AtomicBool,
    pub stats: Stats,
    /// The flushes and compactions running now.
    pub jobs: jobs::Jobs,
    pub budget: budget::BudgetState,
    /// The memtable budget shared with other engines, if any.
    pub pool: Option<pool::Membership>,
    /// Groups in flight (log uploads on an object store; syncs of
    /// segments in `SyncMode::Always` unless `log_syncs_in_flight_max` is 0).
    pub pipeline: Option<pipeline::Pipeline>,
    /// This engine's place in a shared background pool, if any: its
    /// flushes, compactions and tablet maintenance run on the pool's
    /// threads instead of its own.
    pub workers: Option<Arc<workers::Slot>>,
    /// This engine, for threads it starts on demand.
    pub me: std::sync::Weak<Inner>,
    /// Threads started on demand (`background::spawn_on_demand`).
    pub spawned: Mutex<Vec<JoinHandle<()>>>,
}

impl Inner {
    /// Wakes whoever waits on `bg_cv` and the background pool's threads,
    /// if the engine is in one. Called with `bg` held (or not).
    pub fn notify_bg(&self) {
        self.bg_cv.notify_all();
        if let Some(w) = &self.workers {
            w.wake();
        }
    }

    pub fn tree_by_id(&self, id: TreeId) -> Option<Arc<TreeState>> {
        self.trees.read().by_id.get(&id).cloned()
    }

    /// Every live tablet of every tree.
    pub fn all_tablets(&self) -> Vec<Arc<TabletState>> {
        let trees: Vec<Arc<TreeState>> = self.trees.read().by_id.values().cloned().collect();
        trees
            .iter()
            .flat_map(|t| t.tablets().iter().cloned().collect::<Vec<_>>())
            .collect()
    }

    /// Takes the write mutex and waits until no group is in flight: for
    /// whatever switches memtables or tablets outside the write path.
    pub fn lock_writes(&self) -> parking_lot::MutexGuard<'_, ()> {
        self.drained(self.write_mutex.lock())
    }

    /// `lock_writes`, unless the write mutex stays taken for `wait`.
    pub fn try_lock_writes_for(
        &self,
        wait: std::time::Duration,
    ) -> Option<parking_lot::MutexGuard<'_, ()>> {
        Some(self.drained(self.write_mutex.try_lock_for(wait)?))
    }

    /// The write mutex `w`, once no group is in flight.
    fn drained<'a>(&self, w: parking_lot::MutexGuard<'a, ()>) -> parking_lot::MutexGuard<'a, ()> {
        if let Some(p) = &self.pipeline {
            p.drain(self);
        }
        w
    }

    pub fn check_bg_error(&self) -> Result<()> {
        if !self.stopped.load(Ordering::Acquire) {
            return Ok(());
        }
        let bg = self.bg.lock();
        if let Some(e) = &bg.error {
            return Err(bg_error(&bg, e));
        }
        if bg.shutdown {
            return Err(Error::Closed("engine is shutting down".into()));
        }
        Ok(())
    }

    pub fn set_bg_error(&self, e: &Error) {
        let mut bg = self.bg.lock();
        if bg.error.is_none() {
            let retry = e.retry_class();
            if e.is_fenced() {
                tracing::error!(
                    "{e}: this server no longer owns its storage and answers no more writes"
                );
            } else if retry.is_some() {
                tracing::error!("{e}: refusing writes, and retrying until the storage works again");
            } else {
                tracing::error!("background failure, engine now refuses writes: {e}");
            }
            bg.error = Some(e.to_string());
            bg.fenced = e.is_fenced();
            bg.retry = retry;
        }
        self.stopped.store(true, Ordering::Release);
        self.notify_bg();
    }

    /// Makes a flush's or compaction's edit of tablet `t` durable, then
    /// swaps in the tablet's new super-version (without `flushed`, the
    /// oldest sealed memtable, when a flush wrote it). If the tablet was
    /// split, merged or dropped meanwhile, the new tables are discarded
    /// instead: its successors redo the work.
    pub fn apply_tree_edit(
        &self,
        t: &TabletState,
        edit: crate::manifest::VersionEdit,
        new_tables: Vec<Arc<crate::manifest::FileMeta>>,
        flushed: Option<&Arc<Memtable>>,
    ) -> Result<()> {
        let mut versions = self.versions.lock();
        // A compaction's inputs may have been dropped meanwhile (a drop of
        // whole files): its outputs would bring their keys back.
        let inputs_gone = edit.removed_files.iter().any(|&(id, level, number)| {
            versions.tablet(id).is_none_or(|f| {
                !f.version.levels[level as usize]
                    .iter()
                    .any(|x| x.number == number)
            })
        });
        if t.is_retired() || inputs_gone {
            for f in &new_tables {
                f.mark_obsolete();
            }
            return Ok(());
        }
        versions.log_and_apply(edit, new_tables)?;
        let version = versions
            .tablet(t.id)
            .map(|f| f.version.clone())
            .unwrap_or_default();
        let mut sv = t.sv.write();
        let imms = match flushed {
            Some(imm) => {
                debug_assert!(sv.imms.first().is_some_and(|first| Arc::ptr_eq(first, imm)));
                sv.imms[1..].to_vec()
            }
            None => sv.imms.clone(),
        };
        *sv = Arc::new(SuperVersion {
            mem: sv.mem.clone(),
            imms,
            version,
        });
        Ok(())
    }

    /// Sequence numbers pinned by live snapshots, ascending.
    pub fn snapshot_seqs(&self) -> Vec<SeqNo> {
        self.snapshots.lock().keys().copied().collect()
    }
}

/// Stops the background threads when the last engine handle goes away.
struct Lifecycle {
    inner: Arc<Inner>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

impl Lifecycle {
    fn shutdown(&self) -> Result<()> {
        {
            let mut bg = self.inner.bg.lock();
            bg.shutdown = true;
            self.inner.stopped.store(true, Ordering::Release);
            self.inner.notify_bg();
            self.inner.commit_cv.notify_all();
        }
        if let Some(p) = &self.inner.pipeline {
            // Writes now fail before they reach the log: once the groups in
            // flight are published, the uploaders may end.
            let _w = self.inner.lock_writes();
            p.close();
        }
        if let Some(w) = &self.inner.workers {
            // Steps of this engine under way end (they see the shutdown);
            // no other starts.
            w.leave();
            budget::leave_pool(&self.inner);
        }
        for t in self.threads.lock().drain(..) {
            let _ = t.join();
        }
        // Started on demand: each ends at the shutdown (uploaders once the
        // groups in flight are published); none starts after it.
        loop {
            let spawned: Vec<JoinHandle<()>> = self.inner.spawned.lock().drain(..).collect();
            if spawned.is_empty() {
                break;
            }
            for t in spawned {
                let _ = t.join();
            }
        }
        // Make every acknowledged write durable in the periodic mode.
        self.inner.log.lock().sync()
    }
}

impl Drop for Lifecycle {
    fn drop(&mut self) {
        if let Err(e) = self.shutdown() {
            tracing::error!("engine shutdown: {e}");
        }
    }
}

/// An open engine. Cheap to clone; the background threads stop when the
/// last clone (and every `Tree` handle) is dropped, or at `close`.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
    life: Arc<Lifecycle>,
}

/// A handle to one tree of an engine.
#[derive(Clone)]
pub struct Tree {
    engine: Engine,
    state: Arc<TreeState>,
}

/// A consistent view of every tree as of one sequence number. Data it can
/// see is kept by compaction until it is dropped.
pub struct Snapshot {
    seq: SeqNo,
    inner: Arc<Inner>,
}

impl Snapshot {
    pub fn seq(&self) -> SeqNo {
        self.seq
    }
}

impl Drop for Snapshot {
    fn drop(&mut self) {
        let mut s = self.inner.snapshots.lock();
        if let Some(n) = s.get_mut(&self.seq) {
            *n -= 1;
            if *n == 0 {
                s.remove(&self.seq);
            }
        }
    }
}

/// Counters of the engine's work, for write amplification and monitoring.
#[derive(Clone, Debug, Default)]
pub struct EngineStats {
    /// Key and value bytes of every operation written by users.
    pub user_bytes_written: u64,
    pub log_bytes_written: u64,
    pub flush_bytes_written: u64,
    pub compaction_bytes_written: u64,
    pub compaction_bytes_read: u64,
    pub manifest_bytes_written: u64,
    /// Everything the engine wrote to storage.
    pub storage_bytes_written: u64,
    pub flushes: u64,
    pub compactions: u64,
    pub write_stalls: u64,
    pub block_cache_hits: u64,
    pub block_cache_misses: u64,
    pub block_cache_usage_bytes: u64,
    pub last_seq: SeqNo,
    pub log_segments: usize,
    /// Bytes of the log segments still on disk.
    pub log_bytes_retained: u64,
    /// Group commits and the batches they carried.
    pub commit_groups: u64,
    pub commit_batches: u64,
    /// Groups made durable before they were acknowledged (synced, or
    /// uploaded as log objects), and the time spent writing their log
    /// records and making them durable.
    pub commit_durable_groups: u64,
    pub commit_log_micros: u64,
    /// Batches per group commit.
    pub commit_group_batches: HistogramSnapshot,
    /// Microseconds to write and make durable each durable group's log
    /// records (with `SyncMode::Always`: dominated by the fsync).
    pub commit_log_latency_micros: HistogramSnapshot,
    /// Microseconds writers waited in stalls and slowdowns.
    pub write_stall_micros: u64,
    /// Microseconds spent in flushes and compactions.
    pub flush_micros: u64,
    pub compaction_micros: u64,
    /// Point lookups' bloom filter answers: tables skipped ("absent") and
    /// tables read ("maybe"). The table layer reads rows by seeks, which
    /// no filter answers: these count the engine's point lookups only.
    pub bloom_useful: u64,
    pub bloom_positive: u64,
}

impl EngineStats {
    /// Adds the counters of another engine (a cluster server's tablets as
    /// one). The block cache figures are taken from `self` when it has any:
    /// engines that share one cache report the same cache.
    pub fn add(&mut self, o: &EngineStats) {
        self.user_bytes_written += o.user_bytes_written;
        self.log_bytes_written += o.log_bytes_written;
        self.flush_bytes_written += o.flush_bytes_written;
        self.compaction_bytes_written += o.compaction_bytes_written;
        self.compaction_bytes_read += o.compaction_bytes_read;
        self.manifest_bytes_written += o.manifest_bytes_written;
        self.storage_bytes_written += o.storage_bytes_written;
        self.flushes += o.flushes;
        self.compactions += o.compactions;
        self.write_stalls += o.write_stalls;
        if self.block_cache_hits + self.block_cache_misses == 0 {
            self.block_cache_hits = o.block_cache_hits;
            self.block_cache_misses = o.block_cache_misses;
            self.block_cache_usage_bytes = o.block_cache_usage_bytes;
        }
        self.last_seq = self.last_seq.max(o.last_seq);
        self.log_segments += o.log_segments;
        self.log_bytes_retained += o.log_bytes_retained;
        self.commit_groups += o.commit_groups;
        self.commit_batches += o.commit_batches;
        self.commit_durable_groups += o.commit_durable_groups;
        self.commit_log_micros += o.commit_log_micros;
        self.commit_group_batches.add(&o.commit_group_batches);
        self.commit_log_latency_micros
            .add(&o.commit_log_latency_micros);
        self.write_stall_micros += o.write_stall_micros;
        self.flush_micros += o.flush_micros;
        self.compaction_micros += o.compaction_micros;
        self.bloom_useful += o.bloom_useful;
        self.bloom_positive += o.bloom_positive;
    }

    /// Storage bytes written per user byte written.
    pub fn write_amplification(&self) -> f64 {
        if self.user_bytes_written == 0 {
            return 0.0;
        }
        self.storage_bytes_written as f64 / self.user_bytes_written as f64
    }
}

/// Per-tree figures for operators.
#[derive(Clone, Debug, Default)]
pub struct TreeStats {
    pub memtable_bytes: u64,
    pub immutable_memtables: usize,
    pub files_per_level: [usize; NUM_LEVELS],
    pub bytes_per_level: [u64; NUM_LEVELS],
}

impl Engine {
    /// Opens (or creates) an engine in a local directory.
    pub fn open_dir(dir: impl AsRef<Path>, opts: EngineOptions) -> Result<Engine> {
        Engine::open(LocalStorage::open(dir)?, opts)
    }

    /// Opens (or creates) an engine on any storage: recovers the manifest,
    /// replays the commit log, and starts the background threads.
    pub fn open(storage: Arc<dyn Storage>, opts: EngineOptions) -> Result<Engine> {
        let inner = open::recover(storage, opts)?;
        if let Some(m) = &inner.pool {
            m.attach(&inner);
        }
        inner.storage.recovered();
        let threads = background::start(&inner)?;
        Ok(Engine {
            life: Arc::new(Lifecycle {
                inner: inner.clone(),
                threads: Mutex::new(threads),
            }),
            inner,
        })
    }

    /// Opens the tree `name`, creating it if missing, with `opts` (which
    /// apply from now on: options are not stored on disk).
    pub fn open_tree(&self, name: &str, opts: TreeOptions) -> Result<Tree> {
        self.open_tree_with_splits(name, opts, &[])
    }

    /// Opens the tree `name`; if it is missing, creates it as one tablet per
    /// range between the (sorted, distinct, non-empty) `splits`. Those
    /// boundaries are pinned: merges never remove them.
    pub fn open_tree_with_splits(
        &self,
        name: &str,
        opts: TreeOptions,
        splits: &[Vec<u8>],
    ) -> Result<Tree> {
        opts.validate()?;
        if name.is_empty() || name.len() > 1024 {
            return Err(Error::InvalidArgument(
                "tree name must be 1..=1024 bytes".into(),
            ));
        }
        if splits.iter().any(|k| k.is_empty()) || splits.windows(2).any(|w| w[0] >= w[1]) {
            return Err(Error::InvalidArgument(
                "split keys must be non-empty, sorted and distinct".into(),
            ));
        }
        let opts = Arc::new(opts);
        if let Some(t) = self.tree_state(name) {
            *t.opts.write() = opts;
            return Ok(self.tree_handle(t));
        }
        let _w = self.inner.lock_writes();
        let mut versions = self.inner.versions.lock();
        if let Some(t) = self.tree_state(name) {
            *t.opts.write() = opts;
            return Ok(self.tree_handle(t));
        }
        let id = versions.allocate_id()?;
        let last_seq = self.inner.last_seq.load(Ordering::Acquire);
        let mut edit = crate::manifest::VersionEdit {
            created_trees: vec![(id, name.to_string())],
            ..Default::default()
        };
        if splits.is_empty() {
            edit.flushed_seqs.push((id, last_seq));
        } else {
            let mut lo = Vec::new();
            for i in 0..=splits.len() {
                let tablet = versions.allocate_id()?;
                let hi = splits.get(i).cloned();
                edit.created_tablets.push(crate::manifest::NewTablet {
                    id: tablet,
                    tree: id,
                    lo: std::mem::take(&mut lo),
                    hi: hi.clone(),
                    pinned_lo: i > 0,
                });
                edit.flushed_seqs.push((tablet, last_seq));
                lo = hi.unwrap_or_default();
            }
        }
        versions.log_and_apply(edit, Vec::new())?;
        let state = open::tree_state(&versions, id, name, opts);
        let mut trees = self.inner.trees.write();
        trees.by_name.insert(name.to_string(), id);
        trees.by_id.insert(id, state.clone());
        drop(trees);
        Ok(self.tree_handle(state))
    }

    /// The tree `name`, if it exists (with the options it was last opened with).
    pub fn tree(&self, name: &str) -> Option<Tree> {
        self.tree_state(name).map(|t| self.tree_handle(t))
    }

    /// Names of every tree.
    pub fn tree_names(&self) -> Vec<String> {
        let mut v: Vec<String> = self.inner.trees.read().by_name.keys().cloned().collect();
        v.sort();
        v
    }

    /// Removes a tree and all its data: its tablets and files go in one
    /// manifest edit.
    pub fn drop_tree(&self, name: &str) -> Result<()> {
        let _w = self.inner.lock_writes();
        let state = self
            .tree_state(name)
            .ok_or_else(|| Error::TreeNotFound(name.to_string()))?;
        let edit = crate::manifest::VersionEdit {
            dropped_trees: vec![state.id],
            ..Default::default()
        };
        self.inner.versions.lock().log_and_apply(edit, Vec::new())?;
        state.dropped.store(true, Ordering::Release);
        for t in state.tablets().iter() {
            t.retired.store(true, Ordering::Release);
        }
        let mut trees = self.inner.trees.write();
        trees.by_name.remove(name);
        trees.by_id.remove(&state.id);
        Ok(())
    }

    fn tree_state(&self, name: &str) -> Option<Arc<TreeState>> {
        let trees = self.inner.trees.read();
        trees
            .by_name
            .get(name)
            .and_then(|id| trees.by_id.get(id))
            .cloned()
    }

    fn tree_handle(&self, state: Arc<TreeState>) -> Tree {
        Tree {
            engine: self.clone(),
            state,
        }
    }

    /// Queues a batch without blocking the caller; `done` gets the outcome
    /// (on the engine's committer thread) once the batch is committed —
    /// synced in `SyncMode::Always` — exactly as `write` would return it.
    /// For async servers: no thread waits per write.
    pub fn write_async(
        &self,
        batch: WriteBatch,
        done: impl FnOnce(Result<SeqNo>) + Send + 'static,
    ) {
        write::write_async(&self.inner, batch, Box::new(done))
    }

    /// Writes a batch atomically (across trees) and returns the sequence
    /// number of its last operation. In `SyncMode::Always` the batch is
    /// durable when this returns.
    pub fn write(&self, batch: WriteBatch) -> Result<SeqNo> {
        write::write(&self.inner, batch)
    }

    /// Pins the current state of every tree.
    pub fn snapshot(&self) -> Snapshot {
        let mut s = self.inner.snapshots.lock();
        let seq = self.inner.last_seq.load(Ordering::Acquire);
        *s.entry(seq).or_insert(0) += 1;
        Snapshot {
            seq,
            inner: self.inner.clone(),
        }
    }

    /// Flushes every tree's memtables to tables and waits for it.
    pub fn flush_all(&self) -> Result<()> {
        let trees: Vec<Arc<TreeState>> = self.inner.trees.read().by_id.values().cloned().collect();
        for t in trees {
            background::flush_whole_tree(&self.inner, &t)?;
        }
        Ok(())
    }

    /// The flushes and compactions running now.
    pub fn jobs(&self) -> Vec<JobInfo> {
        self.inner.jobs.list()
    }

    /// Waits until no compaction is needed or running.
    pub fn wait_for_compactions(&self) -> Result<()> {
        background::wait_idle(&self.inner)
    }

    /// `Error::Fenced` once a newer owner has taken the storage over (this
    /// engine found out at a write or an edit): reads may be stale from then
    /// on, so a server stops answering them too.
    pub fn check_owner(&self) -> Result<()> {
        let bg = self.inner.bg.lock();
        match &bg.error {
            Some(e) if bg.fenced => Err(Error::Fenced(e.clone())),
            _ => Ok(()),
        }
    }

    /// fsyncs the commit log (useful in the periodic mode).
    pub fn sync_log(&self) -> Result<()> {
        self.inner.log.lock().sync()
    }

    /// The memtable memory of every tree, measured now.
    pub fn memtable_usage(&self) -> MemtableUsage {
        budget::measure(&self.inner)
    }

    pub fn stats(&self) -> EngineStats {
        let s = &self.inner.stats;
        let ld = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let (log_bytes, segments, retained) = {
            let log = self.inner.log.lock();
            let segs = log.segments();
            let retained = segs.iter().map(|s| s.size_bytes).sum();
            (log.bytes_written(), segs.len(), retained)
        };
        let manifest_bytes = self.inner.versions.lock().bytes_written();
        let mut st = EngineStats {
            user_bytes_written: ld(&s.user_bytes_written),
            log_bytes_written: log_bytes,
            flush_bytes_written: ld(&s.flush_bytes_written),
            compaction_bytes_written: ld(&s.compaction_bytes_written),
            compaction_bytes_read: ld(&s.compaction_bytes_read),
            manifest_bytes_written: manifest_bytes,
            flushes: ld(&s.flushes),
            compactions: ld(&s.compactions),
            write_stalls: ld(&s.write_stalls),
            commit_groups: ld(&s.commit_groups),
            commit_batches: ld(&s.commit_batches),
            commit_durable_groups: ld(&s.commit_durable_groups),
            commit_log_micros: ld(&s.commit_log_micros),
            commit_group_batches: s.commit_group_batches.snapshot(),
            commit_log_latency_micros: s.commit_log_latency_micros.snapshot(),
            write_stall_micros: ld(&s.write_stall_micros),
            flush_micros: ld(&s.flush_micros),
            compaction_micros: ld(&s.compaction_micros),
            bloom_useful: ld(&s.bloom.useful),
            bloom_positive: ld(&s.bloom.positive),
            block_cache_hits: self.inner.cache.hits(),
            block_cache_misses: self.inner.cache.misses(),
            block_cache_usage_bytes: self.inner.cache.usage_bytes() as u64,
            last_seq: self.inner.last_seq.load(Ordering::Acquire),
            log_segments: segments,
            log_bytes_retained: retained,
            ..Default::default()
        };
        st.storage_bytes_written = st.log_bytes_written
            + st.flush_bytes_written
            + st.compaction_bytes_written
            + st.manifest_bytes_written;
        st
    }

    /// Stops background work and syncs the log. Other handles to the
    /// engine fail their writes afterwards.
    pub fn close(self) -> Result<()> {
        // On an object store every group is an object, and the next owner
        // would fetch each one to replay it: flush instead, so that it
        // replays nothing. (On local files replay reads one sequential
        // file, and a close stays quick.)
        if self.inner.storage.whole_objects() && !self.inner.stopped.load(Ordering::Acquire) {
            if let Err(e) = self.flush_all() {
                tracing::warn!(
                    "closing: could not flush the memtables ({e}); the next open replays the log"
                );
            }
        }
        self.life.shutdown()
    }
}

impl Tree {
    pub fn id(&self) -> TreeId {
        self.state.id
    }

    pub fn name(&self) -> &str {
        &self.state.name
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    pub fn put(&self, key: &[u8], value: &[u8]) -> Result<()> {
        let mut b = WriteBatch::with_capacity(key.len() + value.len() + 16);
        b.put(self.state.id, key, value);
        self.engine.write(b).map(|_| ())
    }

    pub fn delete(&self, key: &[u8]) -> Result<()> {
        let mut b = WriteBatch::with_capacity(key.len() + 16);
        b.delete(self.state.id, key);
        self.engine.write(b).map(|_| ())
    }

    /// Writes a merge operand (needs the tree's merge operator to read back).
    pub fn merge(&self, key: &[u8], operand: &[u8]) -> Result<()> {
        let mut b = WriteBatch::with_capacity(key.len() + operand.len() + 16);
        b.merge(self.state.id, key, operand);
        self.engine.write(b).map(|_| ())
    }

    /// The newest value of `key`.
    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let seq = self.engine.inner.last_seq.load(Ordering::Acquire);
        read::get(
            &self.state.tablet_for(key),
            key,
            seq,
            &self.engine.inner.stats.bloom,
        )
    }

    /// The value of `key` as of a snapshot.
    pub fn get_at(&self, key: &[u8], snapshot: &Snapshot) -> Result<Option<Vec<u8>>> {
        read::get(
            &self.state.tablet_for(key),
            key,
            snapshot.seq,
            &self.engine.inner.stats.bloom,
        )
    }

    /// Key-ordered entries within bounds, forward or reversed, as of a
    /// snapshot (or now), streamed across tablet boundaries.
    pub fn range(
        &self,
        lower: std::ops::Bound<&[u8]>,
        upper: std::ops::Bound<&[u8]>,
        dir: Direction,
        snapshot: Option<&Snapshot>,
    ) -> Result<TreeIter> {
        tree_iter::new(&self.engine, &self.state, lower, upper, dir, snapshot)
    }

    /// Every entry, in the given direction.
    pub fn iter(&self, dir: Direction) -> Result<TreeIter> {
        use std::ops::Bound::Unbounded;
        self.range(Unbounded, Unbounded, dir, None)
    }

    /// Flushes every tablet's memtables and waits.
    pub fn flush(&self) -> Result<()> {
        background::flush_whole_tree(&self.engine.inner, &self.state)
    }

    /// Compacts every tablet down to one sorted level and waits.
    pub fn compact(&self) -> Result<()> {
        self.flush()?;
        background::compact_tree(&self.engine.inner, &self.state)
    }

    /// Splits the tablet holding `key` at `key` (online: one manifest edit;
    /// both halves share the parent's files until compaction rewrites
    /// them). Returns false if `key` is already a boundary.
    pub fn split_at(&self, key: &[u8]) -> Result<bool> {
        split::split_at(&self.engine.inner, &self.state, key)
    }

    /// Merges the tablet starting at `key` into its left neighbour, once
    /// both are flushed (one manifest edit). Returns false if `key` is not
    /// a boundary, or writes kept arriving.
    pub fn merge_at(&self, key: &[u8]) -> Result<bool> {
        split::merge_at(&self.engine.inner, &self.state, key)
    }

    /// Replaces this tree's tablets over `[lo, hi)` (`hi` None: to the
    /// last key), which must hold no data, by the parts within the range
    /// of `source`: the tablets of a closed engine's tree
    /// (`manifest::read_stored`), whose last sequence number was
    /// `source_last_seq`. Each of their tables is placed in this engine's
    /// storage by `place(source number, number here)` (a copy made by the
    /// caller), then opened (checking it) and added at its level, in one
    /// manifest edit. See `ingest.rs`.
    pub fn ingest(
        &self,
        lo: &[u8],
        hi: Option<&[u8]>,
        source: &[crate::manifest::StoredTablet],
        source_last_seq: SeqNo,
        place: &mut dyn FnMut(u64, u64) -> Result<()>,
    ) -> Result<Ingested> {
        ingest::ingest(
            &self.engine.inner,
            &self.state,
            lo,
            hi,
            source,
            source_last_seq,
            place,
        )
    }

    /// Drops every key in [lo, hi) held by whole tablets and whole files
    /// inside the range, without reading them. Keys in memtables and in
    /// files that reach outside the range are left for the caller to
    /// delete. Returns the number of tablets emptied and files dropped.
    pub fn drop_whole_files(&self, lo: &[u8], hi: Option<&[u8]>) -> Result<(usize, usize)> {
        split::drop_whole_files(&self.engine.inner, &self.state, lo, hi)
    }

    /// The tablets in key order, with their figures.
    pub fn tablets(&self) -> Vec<TabletInfo> {
        split::tablet_infos(&self.state)
    }

    /// Keys that split the tree's data into pieces of about
    /// `step_bytes_min` or more, in key order, each with the approximate
    /// number of bytes (on disk, in SSTables) before it, plus the total.
    /// Every tablet boundary is among them; the others come from the
    /// SSTable indexes (no data block is read) and are index separators
    /// (possibly shortened), not always keys that exist. Memtable data is
    /// counted in its tablet.
    pub fn sample_keys(&self, step_bytes_min: u64) -> (Vec<(Vec<u8>, u64)>, u64) {
        split::sample_keys(&self.state, step_bytes_min)
    }

    /// Figures of the whole tree. A file or sealed memtable that two
    /// tablets share since a split counts once.
    pub fn stats(&self) -> TreeStats {
        let mut st = TreeStats::default();
        let mut files = HashSet::new();
        let mut imms = HashSet::new();
        for t in self.state.tablets().iter() {
            let sv = t.super_version();
            st.memtable_bytes += sv.mem.size_bytes() as u64;
            for m in &sv.imms {
                if imms.insert(Arc::as_ptr(m)) {
                    st.memtable_bytes += m.size_bytes() as u64;
                    st.immutable_memtables += 1;
                }
            }
            for (l, level) in sv.version.levels.iter().enumerate() {
                for f in level.iter().filter(|f| files.insert(f.number)) {
                    st.files_per_level[l] += 1;
                    st.bytes_per_level[l] += f.size_bytes;
                }
            }
        }
        st
    }
}
