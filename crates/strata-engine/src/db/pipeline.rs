//! Log uploads in flight, on log objects (an object store).
//!
//! A group's log object is uploaded while the next groups are written:
//! the write leader appends a group, takes its object from the log
//! (`CommitLog::commit_start`), queues it here and lets the next leader
//! in. Uploader threads upload up to `log_uploads_in_flight_max` objects
//! at once; groups are *published* strictly in id order (whoever finishes
//! the oldest upload publishes it and every later one already uploaded):
//! the log records the outcome (`CommitLog::complete`), the group's
//! writes go into the memtables, the last visible sequence number moves
//! past them and the writers get their answers. So a write is
//! acknowledged only once its object and every earlier one are in the
//! store, and readers never see a write before it is durable.
//!
//! After a failed upload every later group fails too (never acknowledged,
//! even if its own upload landed) until `background::recover` drains the
//! pipeline and repairs the log (`CommitLog::repair` fills the failed ids).
//!
//! Anything that switches memtables or tablets (a seal, a split or merge,
//! a dropped tree) first waits until nothing is in flight (`drain`), with
//! the write mutex held so that no new group starts: groups in flight have
//! chosen their memtables already.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use super::write::{Routes, Writer};
use super::Inner;
use crate::error::Result;
use crate::key::SeqNo;
use crate::log::PendingObject;

/// How long an idle uploader sleeps before looking at the shutdown flag.
const IDLE_WAIT: Duration = Duration::from_millis(200);

/// One group whose log object is uploading.
pub(crate) struct InFlight {
    pub object: PendingObject,
    pub writers: Vec<Arc<Writer>>,
    /// Each batch's last sequence number, in group order.
    pub seqs: Vec<SeqNo>,
    pub first_seq: SeqNo,
    pub routes: Routes,
    pub user_bytes: u64,
    pub started: Instant,
    outcome: Mutex<Option<Result<()>>>,
}

impl InFlight {
    pub fn new(
        object: PendingObject,
        writers: Vec<Arc<Writer>>,
        seqs: Vec<SeqNo>,
        first_seq: SeqNo,
        routes: Routes,
        user_bytes: u64,
    ) -> InFlight {
        debug_assert_eq!(writers.len(), seqs.len());
        InFlight {
            object,
            writers,
            seqs,
            first_seq,
            routes,
            user_bytes,
            started: Instant::now(),
            outcome: Mutex::new(None),
        }
    }

    /// The upload's outcome, once (the publisher takes it).
    pub fn take_outcome(&self) -> Option<Result<()>> {
        self.outcome.lock().take()
    }
}

#[derive(Default)]
struct State {
    /// Groups submitted and not yet published, in log object id order.
    in_flight: VecDeque<Arc<InFlight>>,
    /// Groups no uploader has taken yet.
    to_upload: VecDeque<Arc<InFlight>>,
    /// An upload failed: later groups fail too until `clear_failure`.
    failed: bool,
    /// No group will be submitted again: uploaders end once idle.
    closed: bool,
}

pub(crate) struct Pipeline {
    state: Mutex<State>,
    /// Signalled on every submit, upload and publish.
    cv: Condvar,
    /// Held while publishing, so groups are published one at a time, in order.
    publish: Mutex<()>,
    in_flight_max: usize,
    /// The owner epoch stamped on log objects (for messages).
    epoch: u64,
}

impl Pipeline {
    pub fn new(in_flight_max: usize, epoch: u64) -> Pipeline {
        assert!(in_flight_max >= 1);
        Pipeline {
            state: Mutex::new(State::default()),
            cv: Condvar::new(),
            publish: Mutex::new(()),
            in_flight_max,
            epoch,
        }
    }

    pub fn uploaders(&self) -> usize {
        self.in_flight_max
    }

    /// Waits while `log_uploads_in_flight_max` groups are in flight.
    /// Caller holds the write mutex.
    pub fn wait_for_room(&self) {
        let mut st = self.state.lock();
        while st.in_flight.len() >= self.in_flight_max {
            self.cv.wait(&mut st);
        }
    }

    /// Queues a group for upload. Caller holds the write mutex (so groups
    /// are submitted in id order).
    pub fn submit(&self, group: InFlight) {
        let group = Arc::new(group);
        let mut st = self.state.lock();
        debug_assert!(!st.closed, "a group submitted after shutdown");
        debug_assert!(st
            .in_flight
            .back()
            .is_none_or(|g| g.object.info.number < group.object.info.number));
        st.in_flight.push_back(group.clone());
        st.to_upload.push_back(group);
        self.cv.notify_all();
    }

    /// Waits until every group submitted is published. Caller holds the
    /// write mutex, and no lock the publisher takes.
    pub fn drain(&self) {
        let mut st = self.state.lock();
        while !st.in_flight.is_empty() {
            self.cv.wait(&mut st);
        }
    }

    /// Lets groups be acknowledged again, once the log is repaired.
    pub fn clear_failure(&self) {
        self.state.lock().failed = false;
    }

    /// Ends the uploaders once the groups in flight are published. Caller
    /// holds the write mutex with the engine stopped: no group follows.
    pub fn close(&self) {
        self.state.lock().closed = true;
        self.cv.notify_all();
    }

    /// An uploader thread: uploads queued groups and publishes what it can.
    pub fn upload_loop(&self, inner: &Inner) {
        loop {
            let group = {
                let mut st = self.state.lock();
                loop {
                    if let Some(g) = st.to_upload.pop_front() {
                        break g;
                    }
                    if st.closed && st.in_flight.is_empty() {
                        return;
                    }
                    self.cv.wait_for(&mut st, IDLE_WAIT);
                }
            };
            let outcome = crate::log::objects::upload(&*inner.storage, &group.object, self.epoch);
            *group.outcome.lock() = Some(outcome);
            self.publish(inner);
        }
    }

    /// Publishes, in order, every group at the front whose upload is done.
    fn publish(&self, inner: &Inner) {
        let _turn = self.publish.lock();
        loop {
            let (group, failed_before) = {
                let st = self.state.lock();
                match st.in_flight.front() {
                    Some(g) if g.outcome.lock().is_some() => (g.clone(), st.failed),
                    _ => return,
                }
            };
            let ok = super::write::finish_group(inner, &group, failed_before);
            let mut st = self.state.lock();
            let front = st.in_flight.pop_front();
            debug_assert!(front.is_some_and(|f| Arc::ptr_eq(&f, &group)));
            st.failed |= !ok;
            self.cv.notify_all();
        }
    }
}
