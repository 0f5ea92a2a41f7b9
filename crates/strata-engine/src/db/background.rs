//! Background work: the flush thread, the compaction threads, the periodic
//! log sync, and the waits that foreground calls use to join them.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::options::SyncMode;
use super::{Inner, TabletState, TreeState};
use crate::compaction;
use crate::error::{Error, Result};
use crate::iter::InternalIterator;
use crate::key::{lookup_key, user_key, SeqNo, SEQ_MAX};
use crate::manifest::{new_file_of, VersionEdit};

/// Longest a background thread sleeps before looking for work again.
const IDLE_WAIT: Duration = Duration::from_millis(200);

pub(crate) fn start(inner: &Arc<Inner>) -> Result<Vec<JoinHandle<()>>> {
    let mut threads = Vec::new();
    let spawn = |name: String, f: Box<dyn FnOnce() + Send>| {
        std::thread::Builder::new()
            .name(name.clone())
            .spawn(f)
            .map_err(|e| Error::io(format!("spawn thread {name}"), e))
    };
    match &inner.workers {
        // Flushes, compactions and tablet maintenance run on the pool's
        // threads (`db/workers.rs`).
        Some(slot) => slot.attach(inner),
        None => {
            let i = inner.clone();
            threads.push(spawn(
                "strata-flush".into(),
                Box::new(move || flush_loop(&i)),
            )?);
            for n in 0..inner.opts.max_background_compactions.max(1) {
                let i = inner.clone();
                threads.push(spawn(
                    format!("strata-compact-{n}"),
                    Box::new(move || run_private(&i, IDLE_WAIT, || compaction_step(&i))),
                )?);
            }
            let i = inner.clone();
            threads.push(spawn(
                "strata-tablets".into(),
                Box::new(move || run_private(&i, TABLET_CHECK_INTERVAL, || tablet_step(&i))),
            )?);
        }
    }
    // The committer and the log uploaders start on demand and end when
    // idle (`spawn_on_demand`): an engine with nothing to write has none.
    if let SyncMode::Periodic(interval) = inner.opts.sync_mode {
        let i = inner.clone();
        threads.push(spawn(
            "strata-log-sync".into(),
            Box::new(move || sync_loop(&i, interval)),
        )?);
    }
    Ok(threads)
}

/// How long a thread started on demand (the committer, a log uploader)
/// stays with nothing to do before it ends.
pub(crate) const ON_DEMAND_IDLE_EXIT: Duration = Duration::from_secs(2);

/// Starts a thread of the engine that ends by itself once idle for
/// `ON_DEMAND_IDLE_EXIT` (or at shutdown); shutdown joins it.
pub(crate) fn spawn_on_demand(
    inner: &Inner,
    name: &str,
    f: impl FnOnce(&Inner) + Send + 'static,
) -> Result<()> {
    let Some(me) = inner.me.upgrade() else {
        return Err(Error::Closed("engine is shutting down".into()));
    };
    let handle = std::thread::Builder::new()
        .name(name.to_string())
        .spawn(move || f(&me))
        .map_err(|e| Error::io(format!("spawn thread {name}"), e))?;
    let mut spawned = inner.spawned.lock();
    // Threads that ended by themselves need no join.
    spawned.retain(|h| !h.is_finished());
    spawned.push(handle);
    Ok(())
}

/// What one step of background work did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Step {
    /// It did some work; there may be more.
    Worked,
    /// Nothing to do now.
    Idle,
    /// The engine is shutting down or stopped by a failure it does not
    /// retry: no more steps of this kind.
    Stop,
}

/// Runs `step` on an engine's own thread until it stops, waiting up to
/// `idle_wait` (or until woken) while it has nothing to do.
fn run_private(inner: &Inner, idle_wait: Duration, mut step: impl FnMut() -> Step) {
    loop {
        match step() {
            Step::Worked => {}
            Step::Idle => {
                let mut bg = inner.bg.lock();
                if !bg.shutdown {
                    inner.bg_cv.wait_for(&mut bg, idle_wait);
                }
            }
            Step::Stop => return,
        }
    }
}

/// Whether background threads should end: at shutdown, or after a failure
/// the engine does not retry.
fn shutting_down(inner: &Inner) -> bool {
    let bg = inner.bg.lock();
    bg.shutdown || (bg.error.is_some() && bg.retry.is_none())
}

/// Whether a failure the engine retries is in force (the flush step
/// retries it): other background work waits meanwhile.
fn retry_in_force(inner: &Inner) -> bool {
    let bg = inner.bg.lock();
    bg.error.is_some() && bg.retry.is_some() && !bg.shutdown
}

/// Pause between attempts at leaving a retried failure.
const RECOVERY_INTERVAL: Duration = Duration::from_secs(1);

/// Tries to leave a retried failure (a full disk, an unreachable store):
/// repairs the commit log (`CommitLog::repair`), flushes every sealed
/// memtable, and if all that worked, clears the failure so writes resume.
fn recover(inner: &Inner) -> Result<()> {
    {
        // Groups in flight meet the failure first (they are not
        // acknowledged); then the log may be repaired and groups pass again.
        let _w = inner.lock_writes();
        inner.log.lock().repair()?;
        if let Some(p) = &inner.pipeline {
            p.clear_failure();
        }
    }
    for t in inner.all_tablets() {
        while !t.super_version().imms.is_empty() && !t.is_retired() {
            flush_oldest(inner, &t)?;
        }
    }
    remove_obsolete_logs(inner)?;
    let mut bg = inner.bg.lock();
    if bg.retry.is_some() {
        if let Some(e) = bg.error.take() {
            tracing::info!("the storage works again; writes resume (the failure was: {e})");
        }
        bg.retry = None;
        if !bg.shutdown {
            inner.stopped.store(false, Ordering::Release);
        }
        inner.notify_bg();
    }
    Ok(())
}

fn flush_loop(inner: &Arc<Inner>) {
    let mut progress = FlushProgress::default();
    run_private(inner, IDLE_WAIT, || flush_step(inner, &mut progress));
    super::budget::leave_pool(inner);
}

/// What the flush step remembers between steps: its attempts at leaving a
/// retried failure.
#[derive(Debug, Default)]
pub(crate) struct FlushProgress {
    attempts: u64,
    next_recovery: Option<Instant>,
}

/// One step of the flush role: an attempt at leaving a retried failure
/// (once per `RECOVERY_INTERVAL`), or a seal another engine of the memtable
/// pool asked for and the flush of the oldest sealed memtable.
pub(crate) fn flush_step(inner: &Inner, progress: &mut FlushProgress) -> Step {
    if shutting_down(inner) {
        return Step::Stop;
    }
    if inner.bg.lock().retry.is_some() {
        let now = Instant::now();
        match progress.next_recovery {
            Some(at) if now >= at => {}
            Some(_) => return Step::Idle,
            None => {
                progress.next_recovery = Some(now + RECOVERY_INTERVAL);
                return Step::Idle;
            }
        }
        progress.attempts += 1;
        progress.next_recovery = Some(now + RECOVERY_INTERVAL);
        return match recover(inner) {
            Ok(()) => {
                *progress = FlushProgress::default();
                Step::Worked
            }
            Err(e) if e.retry_class().is_some() => {
                if progress.attempts.is_multiple_of(10) {
                    tracing::warn!(
                        "the storage still fails ({} retries): {e}",
                        progress.attempts
                    );
                }
                Step::Idle
            }
            Err(e) => {
                // No longer a failure to retry: stop for good with it.
                inner.bg.lock().error = None;
                inner.set_bg_error(&e);
                Step::Stop
            }
        };
    }
    progress.next_recovery = None;
    super::budget::seal_if_asked(inner);
    // The tree whose oldest sealed memtable is the oldest: it pins the
    // oldest log segment.
    let pending = inner
        .all_tablets()
        .into_iter()
        .filter_map(|t| {
            let sealed_at = t.super_version().imms.first()?.sealed_at_seq();
            Some((sealed_at, t))
        })
        .min_by_key(|(sealed_at, _)| *sealed_at)
        .map(|(_, t)| t);
    let Some(t) = pending else {
        return Step::Idle;
    };
    let flushed = flush_oldest(inner, &t);
    super::budget::publish(inner);
    if let Err(e) = flushed {
        inner.set_bg_error(&e);
        if e.retry_class().is_none() {
            return Step::Stop;
        }
    }
    Step::Worked
}

/// How often the tablet policy looks for tablets to split or merge.
pub(crate) const TABLET_CHECK_INTERVAL: Duration = Duration::from_millis(500);

/// One pass of the tablet policy (splits and merges inside the engine).
pub(crate) fn tablet_step(inner: &Inner) -> Step {
    if shutting_down(inner) {
        return Step::Stop;
    }
    if retry_in_force(inner) {
        return Step::Idle;
    }
    match super::split::maintain(inner) {
        Ok(true) => Step::Worked,
        Ok(false) => Step::Idle,
        Err(e) => {
            // A tree dropped meanwhile, or a failure the engine
            // already reports as its background error.
            tracing::warn!("tablet maintenance: {e}");
            Step::Idle
        }
    }
}

fn sync_loop(inner: &Arc<Inner>, interval: Duration) {
    loop {
        {
            let mut bg = inner.bg.lock();
            if bg.shutdown {
                return;
            }
            inner.bg_cv.wait_for(&mut bg, interval);
            if bg.shutdown {
                return;
            }
        }
        if retry_in_force(inner) {
            continue; // the flush step repairs the log
        }
        if let Err(e) = inner.log.lock().sync() {
            inner.set_bg_error(&e);
            if e.retry_class().is_none() {
                return;
            }
        }
    }
}

/// Flushes the oldest sealed memtable of `t` into an L0 table.
fn flush_oldest(inner: &Inner, t: &TabletState) -> Result<()> {
    // One flush of a tablet at a time (the flush thread, or a merge
    // flushing on its own thread).
    let _flushing = t.flush_lock.lock();
    let sv = t.super_version();
    let Some(imm) = sv.imms.first().cloned() else {
        return Ok(());
    };
    inner.bg.lock().flushes_running += 1;
    let job = inner.jobs.start(
        super::JobKind::Flush,
        &t.name,
        u64::from(t.id),
        imm.size_bytes() as u64,
    );
    let result = (|| -> Result<()> {
        let opts = t.options();
        let mut new_tables = Vec::new();
        let mut edit = VersionEdit {
            flushed_seqs: vec![(t.id, imm.sealed_at_seq())],
            last_seq: Some(inner.last_seq.load(Ordering::Acquire)),
            ..Default::default()
        };
        // A memtable sealed before a split holds its neighbour's keys too:
        // only the tablet's own range is written.
        let mut it = imm.iter();
        if t.lo.is_empty() {
            it.seek_to_first()?;
        } else {
            it.seek(&lookup_key(&t.lo, SEQ_MAX))?;
        }
        let in_range = |it: &crate::memtable::MemIter| {
            it.valid()
                && t.hi
                    .as_ref()
                    .is_none_or(|hi| user_key(it.key()) < hi.as_slice())
        };
        if in_range(&it) {
            let mut file = super::TableFile::create(inner, &opts)?;
            let mut keys = 0u64;
            while in_range(&it) {
                file.add(it.key(), it.value())?;
                it.next()?;
                keys += 1;
            }
            job.keys_done(keys);
            let meta = file.finish(inner, &inner.stats.flush_bytes_written)?;
            inner.storage.sync_dir()?;
            edit.added_files.push(new_file_of(t.id, 0, &meta));
            new_tables.push(meta);
        }
        inner.apply_tree_edit(t, edit, new_tables, Some(&imm))?;
        Ok(())
    })();
    inner
        .stats
        .flush_micros
        .fetch_add(job.running_for().as_micros() as u64, Ordering::Relaxed);
    drop(job);
    inner.bg.lock().flushes_running -= 1;
    result?;
    inner.stats.flushes.fetch_add(1, Ordering::Relaxed);
    remove_obsolete_logs(inner)?;
    let _bg = inner.bg.lock();
    inner.notify_bg();
    Ok(())
}

/// The sequence number below which no tree needs the log any more.
fn log_needed_above(inner: &Inner) -> SeqNo {
    // Read before looking at memtables: a write logged after this point
    // has a larger sequence number, whatever the memtables show.
    let last = inner.last_seq.load(Ordering::Acquire);
    let versions = inner.versions.lock();
    let mut min = last;
    for t in inner.all_tablets() {
        let sv = t.super_version();
        if !sv.imms.is_empty() || !sv.mem.is_empty() {
            let flushed = versions.tablet(t.id).map_or(0, |f| f.flushed_seq);
            min = min.min(flushed);
        }
    }
    min
}

fn remove_obsolete_logs(inner: &Inner) -> Result<()> {
    let upto = log_needed_above(inner);
    // Deleted without the log's lock: on an object store a deletion is a
    // request, and writers need the lock for every group.
    let (obsolete, names) = {
        let mut log = inner.log.lock();
        let obsolete = log.take_obsolete(upto);
        let names = log.names_of(&obsolete);
        (obsolete, names)
    };
    if let Err(e) = inner.storage.remove_many(&names) {
        inner.log.lock().restore(obsolete);
        return Err(e);
    }
    let removed: Vec<u64> = obsolete.iter().map(|s| s.number).collect();
    if !removed.is_empty() {
        tracing::debug!("removed log segments {removed:?}");
    }
    Ok(())
}

/// Seals the tree's memtable (if it holds anything) and waits until every
/// sealed memtable is flushed.
pub(crate) fn flush_tree(inner: &Inner, t: &TabletState) -> Result<()> {
    let w = inner.lock_writes();
    inner.check_bg_error()?;
    if !t.super_version().mem.is_empty() {
        super::write::seal_memtable(inner, t);
    }
    drop(w);
    wait_flushed(inner, t)
}

/// `flush_tree` for a caller that holds the write mutex: flushes on the
/// calling thread, so writes wait only for this tablet's memtables, not for
/// whatever the flush thread is writing.
pub(crate) fn flush_tree_locked(inner: &Inner, t: &TabletState) -> Result<()> {
    if !t.super_version().mem.is_empty() {
        super::write::seal_memtable(inner, t);
    }
    while !t.super_version().imms.is_empty() && !t.is_retired() {
        inner.check_bg_error()?;
        flush_oldest(inner, t)?;
    }
    Ok(())
}

fn wait_flushed(inner: &Inner, t: &TabletState) -> Result<()> {
    let mut bg = inner.bg.lock();
    loop {
        if let Some(e) = &bg.error {
            return Err(super::bg_error(&bg, e));
        }
        // A retired tablet's sealed memtables belong to its successors.
        if t.super_version().imms.is_empty() || t.is_retired() {
            return Ok(());
        }
        if bg.shutdown {
            return Err(Error::Closed("engine is shutting down".into()));
        }
        inner.notify_bg();
        inner.bg_cv.wait_for(&mut bg, IDLE_WAIT);
    }
}

/// Flushes every tablet of a tree and waits.
pub(crate) fn flush_whole_tree(inner: &Inner, tree: &TreeState) -> Result<()> {
    loop {
        let tablets = tree.tablets();
        for t in tablets.iter() {
            flush_tree(inner, t)?;
        }
        // A split meanwhile hands sealed memtables to new tablets.
        if Arc::ptr_eq(&tablets, &tree.tablets()) {
            return Ok(());
        }
    }
}

/// One compaction, if any tablet needs one.
pub(crate) fn compaction_step(inner: &Inner) -> Step {
    if shutting_down(inner) {
        return Step::Stop;
    }
    if retry_in_force(inner) {
        return Step::Idle;
    }
    match compaction::run_one(inner) {
        Ok(true) => {
            let _bg = inner.bg.lock();
            inner.notify_bg();
            Step::Worked
        }
        Ok(false) => Step::Idle,
        Err(e) => {
            if !inner.bg.lock().shutdown {
                inner.set_bg_error(&e);
            }
            if e.retry_class().is_none() {
                Step::Stop
            } else {
                Step::Idle
            }
        }
    }
}

/// Asks for every tablet of the tree to be compacted into its last level
/// and waits.
pub(crate) fn compact_tree(inner: &Inner, tree: &TreeState) -> Result<()> {
    loop {
        let tablets = tree.tablets();
        inner
            .bg
            .lock()
            .manual_compactions
            .extend(tablets.iter().map(|t| t.id));
        inner.notify_bg();
        wait_for(inner, |bg| {
            tablets
                .iter()
                .all(|t| !bg.manual_compactions.contains(&t.id))
        })?;
        // A split meanwhile made tablets nobody compacted yet.
        if Arc::ptr_eq(&tablets, &tree.tablets()) {
            return Ok(());
        }
    }
}

/// Waits until no compaction is needed or running.
pub(crate) fn wait_idle(inner: &Inner) -> Result<()> {
    wait_for(inner, |bg| {
        bg.compactions_running == 0 && bg.flushes_running == 0 && bg.manual_compactions.is_empty()
    })?;
    // Also wait until no tree needs a compaction.
    let deadline = Instant::now() + Duration::from_secs(3600);
    loop {
        let needed = inner.all_tablets().iter().any(|t| {
            let sv = t.super_version();
            !sv.imms.is_empty() || compaction::needs_compaction(&sv.version, &t.options())
        });
        if !needed {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(Error::Closed("timed out waiting for compactions".into()));
        }
        let mut bg = inner.bg.lock();
        if let Some(e) = &bg.error {
            return Err(super::bg_error(&bg, e));
        }
        inner.notify_bg();
        inner.bg_cv.wait_for(&mut bg, IDLE_WAIT);
    }
}

fn wait_for(inner: &Inner, done: impl Fn(&super::BgState) -> bool) -> Result<()> {
    let mut bg = inner.bg.lock();
    loop {
        if let Some(e) = &bg.error {
            return Err(super::bg_error(&bg, e));
        }
        if done(&bg) {
            return Ok(());
        }
        if bg.shutdown {
            return Err(Error::Closed("engine is shutting down".into()));
        }
        inner.bg_cv.wait_for(&mut bg, IDLE_WAIT);
    }
}
