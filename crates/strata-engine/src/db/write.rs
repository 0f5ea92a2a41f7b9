//! The write path: group commit.
//!
//! Writers queue up; the writer at the front becomes the leader, takes the
//! queued batches (up to `GROUP_BYTES_MAX`), makes room in the memtables,
//! assigns sequence numbers, appends one log record per batch, syncs once
//! for the whole group, inserts into the memtables, publishes the new last
//! sequence number (readers see the whole group at once) and wakes the
//! others with their results. Each writer sleeps on its own condition
//! variable, so a finished group wakes only its members and the next
//! leader, not every queued writer.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::{Mutex, MutexGuard};

use super::{Inner, TabletState};
use crate::batch::{TreeId, WriteBatch};
use crate::error::{Error, Result};
use crate::key::{SeqNo, SEQ_MAX};
use crate::memtable::Memtable;

use super::options::SyncMode;

/// Bytes of batches one leader commits together.
const GROUP_BYTES_MAX: usize = 4 << 20;

/// How long a stalled writer sleeps between checks of the background state.
pub(crate) const STALL_WAIT: Duration = Duration::from_millis(100);

/// What an asynchronous writer is told when its group commits.
pub type WriteCallback = Box<dyn FnOnce(Result<SeqNo>) + Send>;

pub(crate) struct Writer {
    pub(super) batch: WriteBatch,
    result: Mutex<Option<Result<SeqNo>>>,
    /// Waited on with the queue's mutex held; notified when this writer's
    /// result is set or it reaches the front of the queue.
    wake: parking_lot::Condvar,
    /// Set for `write_async` writers: no thread waits for them; the
    /// committer thread leads their groups and calls this.
    done: Mutex<Option<WriteCallback>>,
    asynchronous: bool,
}

#[derive(Default)]
pub(crate) struct WriteQueue {
    waiting: VecDeque<Arc<Writer>>,
    leader_active: bool,
    /// A committer thread is running (started on demand by the first
    /// asynchronous writer; it ends once none has been queued for a while).
    committer: bool,
}

/// Checks a batch before it is queued.
fn admit(inner: &Inner, batch: &WriteBatch) -> Result<()> {
    if batch.size_bytes() > inner.opts.batch_bytes_max {
        return Err(Error::InvalidArgument(format!(
            "write batch of {} bytes exceeds batch_bytes_max {}",
            batch.size_bytes(),
            inner.opts.batch_bytes_max
        )));
    }
    {
        let trees = inner.trees.read();
        for id in batch.trees() {
            if !trees.by_id.contains_key(&id) {
                return Err(Error::TreeNotFound(format!("tree id {id}")));
            }
        }
    }
    inner.check_bg_error()
}

pub(crate) fn write(inner: &Inner, batch: WriteBatch) -> Result<SeqNo> {
    if batch.is_empty() {
        return Ok(inner.last_seq.load(Ordering::Acquire));
    }
    admit(inner, &batch)?;
    // Uncontended fast path: nobody queued and nobody committing, so this
    // writer commits alone without queueing. (Log uploads in flight go
    // through the queue: their writers are answered by the publisher.)
    if inner.pipeline.is_none() && inner.queue.lock().waiting.is_empty() {
        if let Some(guard) = inner.write_mutex.try_lock() {
            let alone = std::slice::from_ref(&batch);
            return commit_group(inner, guard, alone).map(|first| first + batch.len() as u64 - 1);
        }
    }
    let me = Arc::new(Writer {
        batch,
        result: Mutex::new(None),
        wake: parking_lot::Condvar::new(),
        done: Mutex::new(None),
        asynchronous: false,
    });
    let mut q = inner.queue.lock();
    q.waiting.push_back(me.clone());
    loop {
        if let Some(r) = me.result.lock().take() {
            return r;
        }
        let at_front = q.waiting.front().is_some_and(|w| Arc::ptr_eq(w, &me));
        if !q.leader_active && at_front {
            q = lead(inner, q, true);
            continue;
        }
        me.wake.wait(&mut q);
    }
}

/// Queues a batch without blocking: `done` is called (on the engine's
/// committer thread, or at once for a rejected or empty batch) with the
/// outcome once the batch's group is committed — durably in
/// `SyncMode::Always`. Batches from `write` and `write_async` share groups.
pub(crate) fn write_async(inner: &Inner, batch: WriteBatch, done: WriteCallback) {
    if batch.is_empty() {
        return done(Ok(inner.last_seq.load(Ordering::Acquire)));
    }
    if let Err(e) = admit(inner, &batch) {
        return done(Err(e));
    }
    let w = Arc::new(Writer {
        batch,
        result: Mutex::new(None),
        wake: parking_lot::Condvar::new(),
        done: Mutex::new(Some(done)),
        asynchronous: true,
    });
    let mut q = inner.queue.lock();
    // The committer decides to exit under this lock once shutdown is set,
    // so checking here means a queued writer always has a committer.
    if shutting_down(inner) {
        drop(q);
        let done = w.done.lock().take().expect("set above");
        return done(Err(Error::Closed("engine is shutting down".into())));
    }
    q.waiting.push_back(w);
    if !q.committer {
        q.committer = true;
        let started = super::background::spawn_on_demand(inner, "strata-commit", commit_loop);
        if let Err(e) = started {
            q.committer = false;
            let w = q.waiting.pop_back().expect("pushed above");
            drop(q);
            let done = w.done.lock().take().expect("set above");
            return done(Err(e));
        }
    }
    if !q.leader_active && !super::deferred::defer(&inner.commit_cv) {
        inner.commit_cv.notify_one();
    }
}

/// The committer thread: leads every group whose front writer is
/// asynchronous; ends at shutdown, or after `ON_DEMAND_IDLE_EXIT` without
/// leading, once no asynchronous writer is queued (the next starts one).
pub(crate) fn commit_loop(inner: &Inner) {
    let mut q = inner.queue.lock();
    let mut led_at = std::time::Instant::now();
    loop {
        let async_front = q.waiting.front().is_some_and(|w| w.asynchronous);
        if async_front && !q.leader_active {
            // After a shutdown or failure `commit_group` fails fast, so
            // queued writers still get their answer.
            q = lead(inner, q, false);
            led_at = std::time::Instant::now();
            continue;
        }
        // An asynchronous writer queued behind others needs this thread
        // when it reaches the front.
        let idle = || !q.waiting.iter().any(|w| w.asynchronous);
        if (shutting_down(inner) || led_at.elapsed() >= super::background::ON_DEMAND_IDLE_EXIT)
            && idle()
        {
            q.committer = false;
            return;
        }
        inner
            .commit_cv
            .wait_for(&mut q, super::deferred::committer_nap(STALL_WAIT));
    }
}

fn shutting_down(inner: &Inner) -> bool {
    inner.stopped.load(Ordering::Acquire) && inner.bg.lock().shutdown
}

/// Leads one group from the front of the queue: commits it, hands each
/// writer its result, and wakes whoever leads next. With groups in flight
/// (`pipeline.rs`) the group is queued to be made durable instead, and
/// if the leader is a writer (`by_writer`, not the committer thread) it
/// makes a queued group durable itself once the next leader may start.
fn lead<'a>(
    inner: &'a Inner,
    mut q: MutexGuard<'a, WriteQueue>,
    by_writer: bool,
) -> MutexGuard<'a, WriteQueue> {
    q.leader_active = true;
    if let Some(p) = &inner.pipeline {
        // Uploads in flight: gather until this group's upload may start.
        drop(q);
        p.wait_turn();
        q = inner.queue.lock();
    }
    let mut group = Vec::new();
    let mut bytes = 0;
    while let Some(w) = q.waiting.front() {
        if !group.is_empty() && bytes + w.batch.size_bytes() > GROUP_BYTES_MAX {
            break;
        }
        bytes += w.batch.size_bytes();
        group.push(q.waiting.pop_front().expect("front exists"));
    }
    drop(q);
    if let Some(p) = &inner.pipeline {
        let submitted =
            super::group_in_flight::begin_group(inner, inner.write_mutex.lock(), group, by_writer);
        let mut q = inner.queue.lock();
        q.leader_active = false;
        wake_next_leader(inner, &q);
        if submitted && by_writer {
            drop(q);
            p.help(inner);
            q = inner.queue.lock();
        }
        return q;
    }
    let batches: Vec<&WriteBatch> = group.iter().map(|w| &w.batch).collect();
    let outcome = commit_group(inner, inner.write_mutex.lock(), &batches);
    let mut seq = outcome.as_ref().map_or(0, |first| first - 1);
    for w in &group {
        seq += w.batch.len() as u64;
        let r = match &outcome {
            Ok(_) => Ok(seq),
            Err(e) => Err(e.for_writers()),
        };
        match w.done.lock().take() {
            Some(done) => done(r),
            None => *w.result.lock() = Some(r),
        }
    }
    let mut q = inner.queue.lock();
    q.leader_active = false;
    for w in group.iter().filter(|w| !w.asynchronous) {
        w.wake.notify_one();
    }
    wake_next_leader(inner, &q);
    q
}

/// Wakes whoever leads the next group: the committer thread for an
/// asynchronous writer, else the writer itself.
fn wake_next_leader(inner: &Inner, q: &WriteQueue) {
    match q.waiting.front() {
        Some(next) if next.asynchronous => {
            inner.commit_cv.notify_one();
        }
        Some(next) => {
            next.wake.notify_one();
        }
        None => {}
    }
}

/// Hands each writer of a group its result and wakes the synchronous ones.
pub(super) fn deliver(inner: &Inner, group: &[Arc<Writer>], results: Vec<Result<SeqNo>>) {
    debug_assert_eq!(group.len(), results.len());
    for (w, r) in group.iter().zip(results) {
        match w.done.lock().take() {
            Some(done) => done(r),
            None => *w.result.lock() = Some(r),
        }
    }
    let _q = inner.queue.lock();
    for w in group.iter().filter(|w| !w.asynchronous) {
        w.wake.notify_one();
    }
}

/// Where each operation of a group goes: the active memtables of the
/// tablets it writes to, and for each op the index of its memtable (None:
/// its tree was dropped since the batch was admitted). Most groups write
/// to one memtable: they need no allocation for it.
pub(crate) struct Routes {
    /// The memtable of the first routed op's tablet (index 0).
    first: Option<(TreeId, Arc<Memtable>)>,
    /// The other memtables, at indexes 1, 2, … in `targets`.
    more: Vec<(TreeId, Arc<Memtable>)>,
    /// For each op, its memtable's index; empty when every op goes to
    /// `first`.
    targets: Vec<Option<usize>>,
}

impl Routes {
    fn memtable(&self, i: usize) -> &Memtable {
        match i {
            0 => {
                &self
                    .first
                    .as_ref()
                    .expect("index 0 is the first memtable")
                    .1
            }
            _ => &self.more[i - 1].1,
        }
    }

    /// The index of `tablet`'s memtable, if the group already writes to it.
    fn index_of(&self, tablet: TreeId) -> Option<usize> {
        if self.first.as_ref().is_some_and(|(id, _)| *id == tablet) {
            return Some(0);
        }
        let i = self.more.iter().position(|(id, _)| *id == tablet)?;
        Some(i + 1)
    }

    /// Records that op number `op` (counted from 0) goes to `target`.
    fn push(&mut self, op: usize, target: Option<usize>) {
        if self.targets.is_empty() && target == Some(0) {
            return; // still every op to the first memtable
        }
        if self.targets.is_empty() {
            self.targets = vec![Some(0); op];
        }
        debug_assert_eq!(self.targets.len(), op);
        self.targets.push(target);
    }

    /// The memtable of op number `op`, if its tree still exists.
    fn target(&self, op: usize) -> Option<&Memtable> {
        match self.targets.is_empty() {
            true => Some(self.memtable(0)),
            false => self.targets[op].map(|i| self.memtable(i)),
        }
    }
}

/// Checks the engine, waits out stalls and makes room in the memtables the
/// group writes to; returns where each op goes. Caller holds the write
/// mutex.
pub(super) fn route<B: std::borrow::Borrow<WriteBatch>>(
    inner: &Inner,
    group: &[B],
) -> Result<Routes> {
    inner.check_bg_error()?;
    super::budget::stall_while_over(inner)?;
    // The tablet list of each tree the group touches (taken once: lists
    // change only under the write mutex, which the group holds; the last
    // one used apart, as most groups touch one tree), the active
    // memtables of the tablets it writes to, and for each op the index of
    // its tablet's memtable.
    let mut last: Option<(TreeId, Arc<Vec<Arc<TabletState>>>)> = None;
    let mut others: Vec<(TreeId, Arc<Vec<Arc<TabletState>>>)> = Vec::new();
    let mut routes = Routes {
        first: None,
        more: Vec::new(),
        targets: Vec::new(),
    };
    let mut n = 0;
    for w in group {
        for op in w.borrow().iter() {
            let op_index = n;
            n += 1;
            if last.as_ref().is_none_or(|(id, _)| *id != op.tree) {
                let found = match others.iter().position(|(id, _)| *id == op.tree) {
                    Some(i) => Some(others.swap_remove(i)),
                    None => inner.tree_by_id(op.tree).map(|t| (op.tree, t.tablets())),
                };
                let Some(found) = found else {
                    routes.push(op_index, None); // dropped since admitted
                    continue;
                };
                if let Some(previous) = last.replace(found) {
                    others.push(previous);
                }
            }
            let tablets = &last.as_ref().expect("set above").1;
            let tablet = &tablets[super::tablet::index_for(tablets, op.key)];
            debug_assert!(tablet.contains(op.key));
            let i = match routes.index_of(tablet.id) {
                Some(i) => i,
                None => {
                    let mem = make_room(inner, tablet)?;
                    if routes.first.is_none() {
                        routes.first = Some((tablet.id, mem));
                        0
                    } else {
                        routes.more.push((tablet.id, mem));
                        routes.more.len()
                    }
                }
            };
            routes.push(op_index, Some(i));
        }
    }
    Ok(routes)
}

/// Inserts a logged group into its memtables, its ops numbered from
/// `first_seq`; returns the user bytes (keys and values) it wrote.
pub(super) fn insert<B: std::borrow::Borrow<WriteBatch>>(
    group: &[B],
    first_seq: SeqNo,
    routes: &Routes,
) -> u64 {
    let mut user_bytes = 0u64;
    let mut s = first_seq;
    let mut n = 0;
    for w in group {
        for op in w.borrow().iter() {
            user_bytes += (op.key.len() + op.value.len()) as u64;
            if let Some(mem) = routes.target(n) {
                mem.insert(op.key, s, op.kind, op.value);
            }
            s += 1;
            n += 1;
        }
    }
    user_bytes
}

/// Appends a group's records to the log (`group` in order, from
/// `first_seq`); returns the group's last sequence number.
pub(super) fn append<B: std::borrow::Borrow<WriteBatch>>(
    log: &mut crate::log::CommitLog,
    group: &[B],
    first_seq: SeqNo,
) -> Result<SeqNo> {
    debug_assert!(!group.is_empty());
    let mut seq = first_seq;
    for w in group {
        let w = w.borrow();
        let n = w.len() as u64;
        log.append(seq, seq + n - 1, w.payload())?;
        seq += n;
    }
    Ok(seq - 1)
}

/// Each batch's last sequence number, for a group numbered from
/// `first_seq`.
pub(super) fn batch_seqs<B: std::borrow::Borrow<WriteBatch>>(
    group: &[B],
    first_seq: SeqNo,
) -> Vec<SeqNo> {
    let mut seq = first_seq;
    group
        .iter()
        .map(|w| {
            seq += w.borrow().len() as u64;
            seq - 1
        })
        .collect()
}

/// After a failed log write: the group's sequence numbers are spent (its
/// records may have reached the log, as with a lost answer from an object
/// store, and the log takes only higher ones after it), and the engine
/// stops writing until the failure is repaired or for good.
pub(super) fn log_failed(inner: &Inner, seq_last: SeqNo, e: &Error) {
    inner.last_seq.fetch_max(seq_last, Ordering::AcqRel);
    inner.set_bg_error(e);
}

/// Counts a group; `log_started`: when its log write began, if it was
/// timed (durable groups only: a group handed to the OS takes a system
/// call, and two clock reads would be a noticeable share of it).
pub(super) fn count_group(inner: &Inner, batches: usize, log_started: Option<std::time::Instant>) {
    let stats = &inner.stats;
    stats.commit_groups.fetch_add(1, Ordering::Relaxed);
    stats
        .commit_batches
        .fetch_add(batches as u64, Ordering::Relaxed);
    stats.commit_group_batches.record(batches as u64);
    if let Some(started) = log_started {
        let micros = started.elapsed().as_micros() as u64;
        stats.commit_durable_groups.fetch_add(1, Ordering::Relaxed);
        stats.commit_log_micros.fetch_add(micros, Ordering::Relaxed);
        stats.commit_log_latency_micros.record(micros);
    }
}

/// Commits a group under the write mutex; returns its first sequence
/// number (the batches are numbered in order from it).
fn commit_group<B: std::borrow::Borrow<WriteBatch>>(
    inner: &Inner,
    _write_guard: MutexGuard<'_, ()>,
    group: &[B],
) -> Result<SeqNo> {
    let routes = route(inner, group)?;
    let first_seq = inner.last_seq.load(Ordering::Acquire) + 1;
    let sync = inner.opts.sync_mode == SyncMode::Always;
    let log_started = sync.then(std::time::Instant::now);
    let seq_last = {
        let mut log = inner.log.lock();
        let logged =
            append(&mut log, group, first_seq).and_then(|last| log.commit(sync).map(|()| last));
        match logged {
            Ok(last) => last,
            Err(e) => {
                log_failed(inner, log.seq_last(), &e);
                return Err(e.for_writers());
            }
        }
    };
    count_group(inner, group.len(), log_started);
    if seq_last > SEQ_MAX {
        let e = Error::Closed("sequence numbers exhausted".into());
        inner.set_bg_error(&e);
        return Err(e);
    }
    let user_bytes = insert(group, first_seq, &routes);
    inner
        .stats
        .user_bytes_written
        .fetch_add(user_bytes, Ordering::Relaxed);
    inner.last_seq.store(seq_last, Ordering::Release);
    super::budget::after_commit(inner, user_bytes as usize);
    Ok(first_seq)
}

/// Makes sure the tree's active memtable has room, sealing it when full,
/// and stalls while flushes or L0 compactions lag behind; returns the
/// active memtable (which keeps it until the write mutex is released).
fn make_room(inner: &Inner, t: &Arc<TabletState>) -> Result<Arc<Memtable>> {
    let (memtable_bytes_max, l0_slowdown, l0_stop, imms_max) = {
        let o = t.opts.read();
        (
            o.memtable_bytes_max,
            o.l0_slowdown_trigger,
            o.l0_stop_trigger,
            o.immutable_memtables_max,
        )
    };
    let mut slowed = false;
    // When the writer first waited (a slowdown or a stall).
    let mut waited_since: Option<std::time::Instant> = None;
    let count_wait = |since: Option<std::time::Instant>| {
        if let Some(at) = since {
            inner
                .stats
                .write_stall_micros
                .fetch_add(at.elapsed().as_micros() as u64, Ordering::Relaxed);
        }
    };
    loop {
        if let Err(e) = inner.check_bg_error() {
            count_wait(waited_since);
            return Err(e);
        }
        let sv = t.super_version();
        let l0_files = sv.version.levels[0].len();
        if sv.mem.size_bytes() < memtable_bytes_max {
            if l0_files >= l0_slowdown && !slowed {
                slowed = true;
                waited_since.get_or_insert_with(std::time::Instant::now);
                std::thread::sleep(Duration::from_millis(1));
                continue;
            }
            count_wait(waited_since);
            return Ok(sv.mem.clone());
        }
        if sv.imms.len() >= imms_max || l0_files >= l0_stop {
            waited_since.get_or_insert_with(std::time::Instant::now);
            inner.stats.write_stalls.fetch_add(1, Ordering::Relaxed);
            let mut bg = inner.bg.lock();
            inner.notify_bg();
            inner.bg_cv.wait_for(&mut bg, STALL_WAIT);
            continue;
        }
        seal_memtable(inner, t);
        count_wait(waited_since);
        return Ok(t.super_version().mem.clone());
    }
}

/// Moves the active memtable to the immutable list and wakes the flusher.
/// Caller holds the write mutex.
pub(crate) fn seal_memtable(inner: &Inner, t: &TabletState) {
    // Groups in flight hold the memtables they chose: let them land first.
    if let Some(p) = &inner.pipeline {
        p.drain(inner);
    }
    // A retired tablet's memtables belong to its successors; sealing one
    // again would move its flushed sequence number past writes it lacks.
    if t.is_retired() {
        return;
    }
    let mut sv = t.sv.write();
    let old = sv.mem.clone();
    old.seal(inner.last_seq.load(Ordering::Acquire));
    let mut imms = sv.imms.clone();
    imms.push(old);
    *sv = Arc::new(super::SuperVersion {
        mem: Memtable::new(),
        imms,
        version: sv.version.clone(),
    });
    drop(sv);
    let _bg = inner.bg.lock();
    inner.notify_bg();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn routes() -> Routes {
        Routes {
            first: None,
            more: Vec::new(),
            targets: Vec::new(),
        }
    }

    #[test]
    fn one_memtable_needs_no_targets() {
        let mut r = routes();
        r.first = Some((3, Memtable::new()));
        for op in 0..5 {
            r.push(op, Some(0));
        }
        assert!(r.targets.is_empty());
        let first: *const Memtable = r.memtable(0);
        for op in 0..5 {
            assert!(std::ptr::eq(r.target(op).expect("routed"), first));
        }
        assert_eq!(r.index_of(3), Some(0));
        assert_eq!(r.index_of(4), None);
    }

    #[test]
    fn a_second_memtable_or_a_dropped_tree_lists_every_op() {
        // Ops 0-1 to the first memtable, 2 to a dropped tree, 3 to a
        // second memtable, 4 to the first again.
        let mut r = routes();
        r.first = Some((1, Memtable::new()));
        r.push(0, Some(0));
        r.push(1, Some(0));
        r.push(2, None);
        r.more.push((2, Memtable::new()));
        r.push(3, Some(1));
        r.push(4, Some(0));
        assert_eq!(r.targets, [Some(0), Some(0), None, Some(1), Some(0)]);
        let (a, b): (*const Memtable, *const Memtable) = (r.memtable(0), r.memtable(1));
        assert!(std::ptr::eq(r.target(0).expect("routed"), a));
        assert!(r.target(2).is_none());
        assert!(std::ptr::eq(r.target(3).expect("routed"), b));
        assert!(std::ptr::eq(r.target(4).expect("routed"), a));
        assert_eq!(r.index_of(2), Some(1));
    }

    #[test]
    fn a_dropped_first_tree_leaves_the_rest_routed() {
        let mut r = routes();
        r.push(0, None);
        r.first = Some((9, Memtable::new()));
        r.push(1, Some(0));
        assert_eq!(r.targets, [None, Some(0)]);
        assert!(r.target(0).is_none());
        assert!(r.target(1).is_some());
    }
}
