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
    // Seal the largest active memtables until the rule no longer asks for
    // it; each seal moves bytes from active to sealed.
    let over = |u: &MemtableUsage| {
        u.active_bytes > budget / 8 * 7
            || (u.total_bytes() > budget && u.active_bytes >= budget / 2)
    };
    if over(&usage) {
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
    while inner.budget.total_bytes.load(Ordering::Relaxed) > budget {
        inner.check_bg_error()?;
        inner.stats.write_stalls.fetch_add(1, Ordering::Relaxed);
        {
            let mut bg = inner.bg.lock();
            inner.bg_cv.notify_all();
            inner.bg_cv.wait_for(&mut bg, super::write::STALL_WAIT);
        }
        enforce(inner);
    }
    Ok(())
}
