//! The write path with groups in flight (`pipeline.rs`): a group is
//! routed and logged under the write mutex, queued to be made durable,
//! and published (inserted, made visible, acknowledged) in log order once
//! it and every earlier group are durable.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use parking_lot::MutexGuard;

use super::write::{append, batch_seqs, count_group, deliver, insert, log_failed, route, Writer};
use super::Inner;
use crate::batch::WriteBatch;
use crate::error::{Error, Result};
use crate::key::{SeqNo, SEQ_MAX};
use crate::log::PendingGroup;

/// With groups in flight (log objects, or segments synced on every
/// group): routes and logs a group under the write mutex, then queues it
/// to be made durable (`pipeline.rs`) and returns, so the next group can
/// be written meanwhile. The publisher answers the writers; a failure
/// before the group is queued is answered here (and false returned).
pub(super) fn begin_group(
    inner: &Inner,
    _write_guard: MutexGuard<'_, ()>,
    group: Vec<Arc<Writer>>,
    by_writer: bool,
) -> bool {
    let pipeline = inner.pipeline.as_ref().expect("only on log objects");
    let batches: Vec<&WriteBatch> = group.iter().map(|w| &w.batch).collect();
    let routes = match route(inner, &batches) {
        Ok(r) => r,
        Err(e) => {
            let results = group.iter().map(|_| Err(e.for_writers())).collect();
            deliver(inner, &group, results);
            return false;
        }
    };
    pipeline.wait_for_room(inner);
    let started = {
        let mut log = inner.log.lock();
        // Groups in flight have numbers above the visible last one.
        let first_seq = inner.last_seq.load(Ordering::Acquire).max(log.seq_last()) + 1;
        let logged = append(&mut log, &batches, first_seq).and_then(|_| {
            let seqs = batch_seqs(&batches, first_seq);
            let pending = if log.objects() {
                log.commit_start().map(PendingGroup::Object)
            } else {
                log.commit_flush().map(PendingGroup::Sync)
            };
            pending.map(|p| (p, seqs))
        });
        logged
            .map(|(object, seqs)| (object, seqs, first_seq))
            .map_err(|e| (e, log.seq_last()))
    };
    let (object, seqs, first_seq) = match started {
        Ok(s) => s,
        Err((e, burned)) => {
            // Groups in flight land (or fail) first: the spent numbers,
            // made visible, lie above theirs.
            pipeline.drain(inner);
            log_failed(inner, burned, &e);
            let results = group.iter().map(|_| Err(e.for_writers())).collect();
            deliver(inner, &group, results);
            return false;
        }
    };
    let user_bytes: u64 = batches
        .iter()
        .flat_map(|b| b.iter())
        .map(|op| (op.key.len() + op.value.len()) as u64)
        .sum();
    drop(batches);
    pipeline.submit(
        inner,
        super::pipeline::InFlight::new(object, group, seqs, first_seq, routes, user_bytes),
        by_writer,
    );
    // After the submit: a seal here waits for this group to land in the
    // memtable it chose.
    super::budget::after_commit(inner, user_bytes as usize);
    true
}

/// Publishes a group made durable (called in log order by the pipeline):
/// records the outcome in the log, and if it and every earlier group
/// succeeded (`failed_before` is false), inserts the group into its
/// memtables, makes it visible and acknowledges it; else answers its
/// writers with the failure. Returns whether the group was acknowledged.
pub(crate) fn finish_group(
    inner: &Inner,
    group: &super::pipeline::InFlight,
    failed_before: bool,
) -> bool {
    let outcome = group
        .take_outcome()
        .unwrap_or_else(|| Err(Error::Closed("log upload without an outcome".into())));
    let seq_last = *group.seqs.last().expect("a group holds a batch");
    let acknowledged = outcome.is_ok() && !failed_before && seq_last <= SEQ_MAX;
    inner
        .log
        .lock()
        .complete_group(&group.pending, outcome.as_ref().map(|_| ()), acknowledged);
    let results: Vec<Result<SeqNo>> = match outcome {
        Ok(()) if acknowledged => {
            let batches: Vec<&WriteBatch> = group.writers.iter().map(|w| &w.batch).collect();
            let user_bytes = insert(&batches, group.first_seq, &group.routes);
            debug_assert_eq!(user_bytes, group.user_bytes);
            count_group(inner, batches.len(), Some(group.started));
            inner
                .stats
                .user_bytes_written
                .fetch_add(user_bytes, Ordering::Relaxed);
            let previous = inner.last_seq.swap(seq_last, Ordering::AcqRel);
            debug_assert!(previous < group.first_seq);
            group.seqs.iter().map(|&s| Ok(s)).collect()
        }
        Ok(()) => {
            // Durable, but an earlier group failed: not acknowledged (the
            // records replay at the next open: an unknown outcome).
            let e = if seq_last > SEQ_MAX {
                Error::Closed("sequence numbers exhausted".into())
            } else {
                inner
                    .check_bg_error()
                    .err()
                    .unwrap_or_else(|| Error::Unavailable("an earlier log upload failed".into()))
            };
            log_failed(inner, seq_last, &e);
            group.writers.iter().map(|_| Err(e.for_writers())).collect()
        }
        Err(e) => {
            log_failed(inner, seq_last, &e);
            group.writers.iter().map(|_| Err(e.for_writers())).collect()
        }
    };
    let acknowledged = results.iter().all(|r| r.is_ok());
    deliver(inner, &group.writers, results);
    acknowledged
}
