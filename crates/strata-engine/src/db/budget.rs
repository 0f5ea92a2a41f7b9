//! One memtable budget for the whole process, and a bound on the commit
//! log, so that many trees (a table's tablets) neither hold a full
//! memtable each nor let one idle tree pin the log forever.
//!
//! The write leader calls `after_commit` under the write mutex. Every
//! `check_interval` bytes written it measures every tree's memtables and:
//! - seals the largest active memtable (the flusher then writes it out)
//!   while the active memtables hold more than 7/8 of the budget, or the
//!   total is over the budget and the active half or more of it;
//! - while the log's segments exceed `log_bytes_max`, seals the active
//!   memtable of every tree that may hold a write from the oldest segments
//!   beyond that bound.
//!
//! `stall_while_over` holds writers while the memtables together exceed the
//! budget; the rule above has sealed enough by then that the flushes under
//! way bring them back under it. Memtable bytes are the bytes their entries
//! take (arena chunks are touched, and so resident, only as they fill).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use super::{Inner, TabletState};
use crate::error::Result;

/// Bytes an engine of a pool writes between two of its checks while the
/// pool is over its budget.
const POOL_CHECK_BYTES: usize = 64 << 10;

/// The longest a write waits for a shared memtable budget (the flushes of
/// other engines) before it goes on.
const POOL_STALL_MAX: std::time::Duration = std::time::Duration::from_secs(10);

/// How long a flush step waits for the write mutex to seal on request.
const SEAL_LOCK_WAIT: std::time::Duration = std::time::Duration::from_millis(5);

/// Seals the largest active memtable if another engine of the pool asked;
/// with the write mutex taken (the flush thread's check).
pub(crate) fn seal_if_asked(inner: &Inner) {
    let Some(m) = &inner.pool else { return };
    if !m.take_request() {
        return;
    }
    // A writer may hold the write mutex for long, stalled on the pool's
    // budget: a flush thread (shared by every engine of a background pool)
    // must not wait for it. That writer seals what is due itself
    // (`stall_while_over` enforces the rule); else the request waits for
    // the next step.
    let Some(_w) = inner.try_lock_writes_for(SEAL_LOCK_WAIT) else {
        m.ask_again();
        return;
    };
    let largest = inner
        .all_tablets()
        .into_iter()
        .filter_map(|t| {
            let mem = t.super_version().mem.clone();
            (!mem.is_empty()).then(|| (mem.size_bytes(), t))
        })
        .max_by_key(|(bytes, _)| *bytes);
    if let Some((_, t)) = largest {
        super::write::seal_memtable(inner, &t);
    }
    let usage = measure(inner);
    m.publish(usage.active_bytes, usage.sealed_bytes);
}

/// Counts nothing of this engine in its pool any more (its flush thread
/// ended: at close, or after a failure that stops it).
pub(crate) fn leave_pool(inner: &Inner) {
    if let Some(m) = &inner.pool {
        m.publish(0, 0);
    }
}

/// Measures this engine's memtables into its pool (after a flush).
pub(crate) fn publish(inner: &Inner) {
    if let Some(m) = &inner.pool {
        let usage = measure(inner);
        m.publish(usage.active_bytes, usage.sealed_bytes);
    }
}

/// Budget state shared by the write leaders.
#[derive(Default)]
pub(crate) struct BudgetState {
    /// Bytes inserted since the last measurement.
    since_check: AtomicUsize,
    /// Group commits since then (on an object store, each is a log object).
    groups_since_check: AtomicUsize,
    /// Active and sealed memtable bytes at the last measurement.
    total_bytes: AtomicUsize,
}

/// Memtable memory of every tree, as measured now.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MemtableUsage {
    /// Bytes in active memtables (taking writes).
    pub active_bytes: usize,
    /// Bytes in sealed memtables waiting for their flush.
    pub sealed_bytes: usize,
    /// Trees whose active memtable holds anything.
    pub active_trees: usize,
}

impl MemtableUsage {
    pub fn total_bytes(&self) -> usize {
        self.active_bytes + self.sealed_bytes
    }
}

pub(crate) fn measure(inner: &Inner) -> MemtableUsage {
    let mut u = MemtableUsage::default();
    // The halves of a split share their parent's sealed memtables.
    let mut seen = std::collections::HashSet::new();
    for t in inner.all_tablets() {
        let sv = t.super_version();
        if !sv.mem.is_empty() {
            u.active_bytes += sv.mem.size_bytes();
            u.active_trees += 1;
        }
        for m in &sv.imms {
            if seen.insert(Arc::as_ptr(m)) {
                u.sealed_bytes += m.size_bytes();
            }
        }
    }
    u
}

/// How many bytes may be written between two measurements.
fn check_interval(inner: &Inner) -> usize {
    let log = usize::try_from(inner.opts.log_bytes_max / 16).unwrap_or(usize::MAX);
    (inner.opts.memtable_budget_bytes / 32)
        .min(log)
        .max(64 << 10)
}

/// Accounts for `bytes` just inserted and, every check interval, enforces
/// the budget and the log bound. Caller holds the write mutex.
pub(crate) fn after_commit(inner: &Inner, bytes: usize) {
    let since = inner.budget.since_check.fetch_add(bytes, Ordering::Relaxed) + bytes;
    if let Some(m) = &inner.pool {
        // The pool's sums are checked at every commit (two loads), and
        // acted on at most every POOL_CHECK_BYTES this engine writes.
        m.inserted(bytes);
        if m.pool().over() && since >= POOL_CHECK_BYTES {
            inner.budget.since_check.store(0, Ordering::Relaxed);
            inner.budget.groups_since_check.store(0, Ordering::Relaxed);
            enforce(inner);
            return;
        }
    }
    let groups = inner
        .budget
        .groups_since_check
        .fetch_add(1, Ordering::Relaxed)
        + 1;
    let objects_due =
        inner.storage.whole_objects() && groups >= (inner.opts.log_objects_max / 8).max(1);
    if since < check_interval(inner) && !objects_due {
        return;
    }
    inner.budget.since_check.store(0, Ordering::Relaxed);
    inner.budget.groups_since_check.store(0, Ordering::Relaxed);
    enforce(inner);
}

fn enforce(inner: &Inner) {
    let budget = inner.opts.memtable_budget_bytes;
    let mut usage = measure(inner);
    if let Some(m) = &inner.pool {
        m.publish(usage.active_bytes, usage.sealed_bytes);
    }
    // Seal the largest active memtables until the rule no longer asks for
    // it; each seal moves bytes from active to sealed. In a pool, the rule
    // is on the pool's sums, and the member with the most active bytes
    // seals (this one, or another asked to).
    let over = |u: &MemtableUsage| match &inner.pool {
        Some(m) => m.pool().over(),
        None => {
            u.active_bytes > budget / 8 * 7
                || (u.total_bytes() > budget && u.active_bytes >= budget / 2)
        }
    };
    let seal_here = inner
        .pool
        .as_ref()
        .is_none_or(|m| !m.pool().over() || m.seal_here_or_ask());
    if seal_here && over(&usage) {
        let mut active: Vec<(usize, Arc<TabletState>)> = inner
            .all_tablets()
            .into_iter()
            .filter_map(|t| {
                let mem = t.super_version().mem.clone();
                (!mem.is_empty()).then(|| (mem.size_bytes(), t))
            })
            .collect();
        active.sort_unstable_by_key(|(bytes, _)| std::cmp::Reverse(*bytes));
        for (bytes, t) in active {
            if !over(&usage) {
                break;
            }
            super::write::seal_memtable(inner, &t);
            usage.active_bytes = usage.active_bytes.saturating_sub(bytes);
            usage.sealed_bytes += bytes;
            if let Some(m) = &inner.pool {
                m.publish(usage.active_bytes, usage.sealed_bytes);
            }
        }
    }
    inner
        .budget
        .total_bytes
        .store(usage.total_bytes(), Ordering::Relaxed);
    bound_log(inner);
}

/// While the log holds more than `log_bytes_max` (or, on an object store,
/// more than `log_objects_max` objects), seals the active memtable of every
/// tree that may hold a write from the segments that must go (its flushed
/// sequence number is below their last one), so the flushes let those
/// segments be deleted.
fn bound_log(inner: &Inner) {
    let segments = inner.log.lock().segments();
    let objects_max = if inner.storage.whole_objects() {
        inner.opts.log_objects_max
    } else {
        usize::MAX
    };
    let mut kept = 0u64;
    let mut must_go_below = None;
    for (count, s) in segments.iter().rev().enumerate() {
        kept += s.size_bytes;
        if kept > inner.opts.log_bytes_max || count >= objects_max {
            must_go_below = Some(s.seq_last);
            break;
        }
    }
    let Some(seq) = must_go_below else {
        return;
    };
    let versions = inner.versions.lock();
    let pinning: Vec<Arc<TabletState>> = inner
        .all_tablets()
        .into_iter()
        .filter(|t| {
            let sv = t.super_version();
            // A tree with sealed memtables is the flusher's already.
            !sv.mem.is_empty()
                && sv.imms.is_empty()
                && versions.tablet(t.id).map_or(0, |f| f.flushed_seq) < seq
        })
        .collect();
    drop(versions);
    for t in pinning {
        super::write::seal_memtable(inner, &t);
    }
}

/// Waits while the memtables exceed the budget, re-measuring as flushes
/// finish. Caller holds the write mutex (as a stall in `make_room` does);
/// the flusher needs no engine lock the caller holds.
pub(crate) fn stall_while_over(inner: &Inner) -> Result<()> {
    let budget = inner.opts.memtable_budget_bytes;
    let exceeded = || match &inner.pool {
        Some(m) => m.pool().exceeded(),
        None => inner.budget.total_bytes.load(Ordering::Relaxed) > budget,
    };
    if !exceeded() {
        return Ok(());
    }
    let started = std::time::Instant::now();
    let result = wait_for_budget(inner, exceeded, started);
    inner
        .stats
        .write_stall_micros
        .fetch_add(started.elapsed().as_micros() as u64, Ordering::Relaxed);
    result
}

/// Stalls while the budget is exceeded (at most `POOL_STALL_MAX` for a
/// pool's).
fn wait_for_budget(
    inner: &Inner,
    exceeded: impl Fn() -> bool,
    started: std::time::Instant,
) -> Result<()> {
    while exceeded() {
        inner.check_bg_error()?;
        if inner.pool.is_some() && started.elapsed() > POOL_STALL_MAX {
            // Another engine of the pool does not flush (it failed, or is
            // closing): this one's writes go on rather than wait for it.
            tracing::warn!(
                "writes waited {POOL_STALL_MAX:?} for the shared memtable budget; going on over it"
            );
            return Ok(());
        }
        inner.stats.write_stalls.fetch_add(1, Ordering::Relaxed);
        {
            let mut bg = inner.bg.lock();
            inner.notify_bg();
            inner.bg_cv.wait_for(&mut bg, super::write::STALL_WAIT);
        }
        enforce(inner);
    }
    Ok(())
}
