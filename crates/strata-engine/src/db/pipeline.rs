//! Log uploads in flight, on log objects (an object store).
//!
//! A group's log object is uploaded while the next groups are written:
//! the write leader appends a group, takes its object from the log
//! (`CommitLog::commit_start`), queues it here and lets the next leader
//! in. Uploader threads (started as groups come, up to
//! `log_uploads_in_flight_max`, each ending after a while without one)
//! upload that many objects at once; groups are *published* strictly in
//! id order (whoever finishes the oldest upload publishes it and every
//! later one already uploaded):
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
//! How many upload at once adapts (`Pace`): more than one only while the
//! store's upload time stays near its floor (a store that queues, such as
//! a single busy server, gains nothing from a second upload and loses the
//! bigger group), and new uploads are spaced by the recent upload time
//! over that count, so each group gathers what arrived meanwhile rather
//! than one upload per write (a PUT costs money on a cloud store).
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

/// Upload times above the floor by more than this factor mean the store
/// queues: fewer uploads at once.
const QUEUEING_FACTOR: f64 = 1.5;
/// One more upload in flight after this many uploads per upload in flight
/// stayed near the floor (time for the average to show queueing).
const INCREASE_AFTER: usize = 4;
/// The floor rises by this factor per upload, so it follows a store that
/// became slower for good.
const FLOOR_DECAY: f64 = 1.002;

/// The adaptive count of uploads in flight (additive increase while
/// upload times stay near their floor, halved when they rise) and the
/// spacing of upload starts.
struct Pace {
    /// Uploads allowed in flight now, 1 ..= the configured maximum.
    limit: usize,
    /// A slowly rising minimum of upload times.
    floor_micros: f64,
    /// Upload times, exponentially averaged.
    recent_micros: f64,
    /// Uploads finished since `limit` last changed.
    since_change: usize,
    last_start: Option<Instant>,
}

impl Pace {
    fn new() -> Pace {
        Pace {
            limit: 1,
            floor_micros: 0.0,
            recent_micros: 0.0,
            since_change: 0,
            last_start: None,
        }
    }

    fn on_upload(&mut self, took: Duration, limit_max: usize) {
        let m = took.as_secs_f64() * 1e6;
        if self.floor_micros == 0.0 {
            self.floor_micros = m;
            self.recent_micros = m;
        }
        self.floor_micros = (self.floor_micros * FLOOR_DECAY).min(m);
        self.recent_micros = 0.8 * self.recent_micros + 0.2 * m;
        self.since_change += 1;
        if self.recent_micros > QUEUEING_FACTOR * self.floor_micros {
            if self.limit > 1 {
                self.limit = (self.limit / 2).max(1);
                self.since_change = 0;
            }
        } else if self.since_change >= INCREASE_AFTER * self.limit && self.limit < limit_max {
            self.limit += 1;
            self.since_change = 0;
        }
        debug_assert!((1..=limit_max).contains(&self.limit));
        tracing::trace!(
            "log upload took {m:.0} µs (recent {:.0}, floor {:.0}): up to {} in flight",
            self.recent_micros,
            self.floor_micros,
            self.limit
        );
    }

    /// The least time between two upload starts while others are in flight.
    fn spacing(&self) -> Duration {
        Duration::from_secs_f64(self.recent_micros / 1e6 / self.limit as f64)
    }
}

struct State {
    /// Groups submitted and not yet published, in log object id order.
    in_flight: VecDeque<Arc<InFlight>>,
    /// Groups no uploader has taken yet.
    to_upload: VecDeque<Arc<InFlight>>,
    /// An upload failed: later groups fail too until `clear_failure`.
    failed: bool,
    /// No group will be submitted again: uploaders end once idle.
    closed: bool,
    /// Uploader threads running, and how many of them wait for a group.
    uploaders: usize,
    idle: usize,
    pace: Pace,
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
            state: Mutex::new(State {
                in_flight: VecDeque::new(),
                to_upload: VecDeque::new(),
                failed: false,
                closed: false,
                uploaders: 0,
                idle: 0,
                pace: Pace::new(),
            }),
            cv: Condvar::new(),
            publish: Mutex::new(()),
            in_flight_max,
            epoch,
        }
    }

    /// Waits, before a leader takes its group from the queue, until its
    /// upload may start: at once when nothing is in flight, else once
    /// fewer than the current limit are and the spacing since the last
    /// start has passed. Writers queue meanwhile and join the group.
    pub fn wait_turn(&self) {
        let mut st = self.state.lock();
        loop {
            if st.in_flight.is_empty() || st.closed {
                return;
            }
            let wait = if st.in_flight.len() < st.pace.limit {
                let since = st.pace.last_start.map_or(Duration::MAX, |t| t.elapsed());
                match st.pace.spacing().checked_sub(since) {
                    None => return,
                    Some(rest) => rest,
                }
            } else {
                IDLE_WAIT
            };
            self.cv.wait_for(&mut st, wait);
        }
    }

    /// Waits while `log_uploads_in_flight_max` groups are in flight.
    /// Caller holds the write mutex.
    pub fn wait_for_room(&self) {
        let mut st = self.state.lock();
        while st.in_flight.len() >= self.in_flight_max {
            self.cv.wait(&mut st);
        }
    }

    /// Queues a group for upload, and starts an uploader if none waits
    /// and fewer than `log_uploads_in_flight_max` run. Caller holds the
    /// write mutex (so groups are submitted in id order).
    pub fn submit(&self, inner: &Inner, group: InFlight) {
        let group = Arc::new(group);
        let mut st = self.state.lock();
        debug_assert!(!st.closed, "a group submitted after shutdown");
        debug_assert!(st
            .in_flight
            .back()
            .is_none_or(|g| g.object.info.number < group.object.info.number));
        st.in_flight.push_back(group.clone());
        st.to_upload.push_back(group);
        st.pace.last_start = Some(Instant::now());
        let start = st.idle == 0 && st.uploaders < self.in_flight_max;
        if start {
            st.uploaders += 1;
        }
        self.cv.notify_all();
        drop(st);
        if !start {
            return;
        }
        let started = super::background::spawn_on_demand(inner, "strata-upload", |i| {
            if let Some(p) = &i.pipeline {
                p.upload_loop(i);
            }
        });
        if let Err(e) = started {
            let mut st = self.state.lock();
            st.uploaders -= 1;
            if st.uploaders > 0 {
                tracing::warn!("log uploads go on with fewer threads: {e}");
                return;
            }
            // No thread to upload: the queued groups fail (unacknowledged),
            // as after a failed upload, and the engine recovers from it.
            tracing::error!("no log uploader: {e}");
            for g in st.to_upload.drain(..) {
                *g.outcome.lock() = Some(Err(crate::Error::Unavailable(format!(
                    "could not start a log upload: {e}"
                ))));
            }
            drop(st);
            self.publish(inner);
        }
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

    /// An uploader thread: uploads queued groups and publishes what it can;
    /// ends once none is queued and the pipeline is closed, or it has
    /// waited `ON_DEMAND_IDLE_EXIT` for one. (A group in flight is
    /// published by whichever uploader finishes last among it and those
    /// before it.)
    pub fn upload_loop(&self, inner: &Inner) {
        loop {
            let group = {
                let mut st = self.state.lock();
                let idle_since = Instant::now();
                loop {
                    if let Some(g) = st.to_upload.pop_front() {
                        break g;
                    }
                    if st.closed || idle_since.elapsed() >= super::background::ON_DEMAND_IDLE_EXIT {
                        st.uploaders -= 1;
                        return;
                    }
                    st.idle += 1;
                    self.cv.wait_for(&mut st, IDLE_WAIT);
                    st.idle -= 1;
                }
            };
            let started = Instant::now();
            let outcome = crate::log::objects::upload(&*inner.storage, &group.object, self.epoch);
            if outcome.is_ok() {
                let took = started.elapsed();
                self.state.lock().pace.on_upload(took, self.in_flight_max);
            }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `n` uploads whose time is `time(limit)` given the limit in force.
    fn run(pace: &mut Pace, n: usize, max: usize, time: impl Fn(usize) -> Duration) {
        for _ in 0..n {
            let took = time(pace.limit);
            pace.on_upload(took, max);
        }
    }

    #[test]
    fn a_store_that_only_adds_latency_gets_every_upload_slot() {
        let mut pace = Pace::new();
        run(&mut pace, 200, 8, |_| Duration::from_millis(30));
        assert_eq!(pace.limit, 8);
        // Spaced so that the eight slots cover one upload time.
        let spacing = pace.spacing().as_secs_f64();
        assert!((spacing - 0.030 / 8.0).abs() < 1e-4, "{spacing}");
    }

    #[test]
    fn a_store_that_queues_keeps_one_or_two_uploads_in_flight() {
        // Each upload in flight adds a full service time (one busy server).
        let mut pace = Pace::new();
        let mut limits = Vec::new();
        for _ in 0..200 {
            let took = Duration::from_millis(8 * pace.limit as u64);
            pace.on_upload(took, 8);
            limits.push(pace.limit);
        }
        assert!(limits.iter().all(|&l| l <= 2), "{limits:?}");
    }

    #[test]
    fn the_floor_follows_a_store_that_became_slower() {
        let mut pace = Pace::new();
        run(&mut pace, 50, 4, |_| Duration::from_millis(5));
        run(&mut pace, 50, 4, |_| Duration::from_millis(50));
        assert_eq!(pace.limit, 1, "the slowdown looks like queueing at first");
        run(&mut pace, 2000, 4, |_| Duration::from_millis(50));
        assert_eq!(pace.limit, 4, "then the floor catches up");
    }
}
