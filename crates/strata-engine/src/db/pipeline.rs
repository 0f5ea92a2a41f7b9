//! Groups in flight: written to the log, not yet durable.
//!
//! A group's log object is uploaded (on an object store), or its segment
//! bytes fsynced (`SyncMode::Always` on a file system), while the next
//! groups are written: the write leader appends a group, takes what makes
//! it durable from the log (`CommitLog::commit_start` or `commit_flush`),
//! queues it here and lets the next leader in. Each group is made durable
//! by its own leader if that is a writer waiting for it anyway, else by
//! a durability thread (started as groups come, up to the in-flight
//! limit, each ending after a while without one); groups are *published*
//! strictly in order (whoever finishes the oldest one publishes it and
//! every later one already done): the log records the outcome
//! (`CommitLog::complete_group`), the group's writes go into the
//! memtables, the last visible sequence number moves past them and the
//! writers get their answers. So a write is acknowledged only once its
//! group and every earlier one are durable, and readers never see a write
//! before it is durable.
//!
//! After a failure every later group fails too (never acknowledged, even
//! if it was made durable itself) until `background::recover` drains the
//! pipeline and repairs the log (`CommitLog::repair`).
//!
//! How many groups are in flight at once: for syncs, up to the limit;
//! for uploads it adapts (`Pace`): more than one only while the store's
//! upload time stays near its floor (a store that queues, such as a
//! single busy server, gains nothing from a second upload and loses the
//! bigger group). New groups are spaced by the recent time to make one
//! durable over that count, so each gathers what arrived meanwhile rather
//! than one sync or upload per write (a PUT costs money on a cloud store).
//!
//! Anything that switches memtables or tablets (a seal, a split or merge,
//! a dropped tree) first waits until nothing is in flight (`drain`, which
//! makes queued groups durable itself), with the write mutex held so that
//! no new group starts: groups in flight have chosen their memtables
//! already.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use super::write::{Routes, Writer};
use super::Inner;
use crate::error::Result;
use crate::key::SeqNo;
use crate::log::PendingGroup;

/// How long an idle uploader sleeps before looking at the shutdown flag.
const IDLE_WAIT: Duration = Duration::from_millis(200);

/// One group in flight.
pub(crate) struct InFlight {
    pub pending: PendingGroup,
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
        pending: PendingGroup,
        writers: Vec<Arc<Writer>>,
        seqs: Vec<SeqNo>,
        first_seq: SeqNo,
        routes: Routes,
        user_bytes: u64,
    ) -> InFlight {
        debug_assert_eq!(writers.len(), seqs.len());
        InFlight {
            pending,
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

    /// Records a group's time; `adaptive`: the limit follows it.
    fn on_upload(&mut self, took: Duration, limit_max: usize, adaptive: bool) {
        let m = took.as_secs_f64() * 1e6;
        if self.floor_micros == 0.0 {
            self.floor_micros = m;
            self.recent_micros = m;
        }
        self.floor_micros = (self.floor_micros * FLOOR_DECAY).min(m);
        self.recent_micros = 0.8 * self.recent_micros + 0.2 * m;
        self.since_change += 1;
        if !adaptive {
            return;
        }
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
    /// Groups submitted and not yet published, in log order.
    in_flight: VecDeque<Arc<InFlight>>,
    /// Groups no thread has started to make durable yet.
    to_upload: VecDeque<Arc<InFlight>>,
    /// A group failed: later groups fail too until `clear_failure`.
    failed: bool,
    /// No group will be submitted again: durability threads end once idle.
    closed: bool,
    /// Durability threads running, and how many of them wait for a group.
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
    /// Whether the count in flight adapts to the time a group takes
    /// (uploads), or stays at `in_flight_max` (syncs).
    adaptive: bool,
    /// The owner epoch stamped on log objects (0 for segments).
    epoch: u64,
}

impl Pipeline {
    /// Uploads of log objects stamped with `epoch`, up to
    /// `in_flight_max` at once as the store allows.
    pub fn uploads(in_flight_max: usize, epoch: u64) -> Pipeline {
        Pipeline::new(in_flight_max, true, epoch)
    }

    /// Segment syncs, `in_flight_max` at once.
    pub fn syncs(in_flight_max: usize) -> Pipeline {
        Pipeline::new(in_flight_max, false, 0)
    }

    fn new(in_flight_max: usize, adaptive: bool, epoch: u64) -> Pipeline {
        assert!(in_flight_max >= 1);
        let mut pace = Pace::new();
        if !adaptive {
            pace.limit = in_flight_max;
        }
        Pipeline {
            state: Mutex::new(State {
                in_flight: VecDeque::new(),
                to_upload: VecDeque::new(),
                failed: false,
                closed: false,
                uploaders: 0,
                idle: 0,
                pace,
            }),
            cv: Condvar::new(),
            publish: Mutex::new(()),
            in_flight_max,
            adaptive,
            epoch,
        }
    }

    /// Waits, before a leader takes its group from the queue, until the
    /// group may start: at once when nothing is in flight, else once
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

    /// Waits while the in-flight limit is reached, making queued groups
    /// durable meanwhile. Caller holds the write mutex.
    pub fn wait_for_room(&self, inner: &Inner) {
        self.help_until(inner, |st| st.in_flight.len() < self.in_flight_max);
    }

    /// Queues a group to be made durable. `by_writer`: the caller, a
    /// writer that waits for the group anyway, takes a queued group
    /// itself (`help`) once it has let the next leader in; else a
    /// durability thread is started if none waits and fewer than the
    /// limit run. Caller holds the write mutex (so groups are submitted
    /// in log order).
    pub fn submit(&self, inner: &Inner, group: InFlight, by_writer: bool) {
        let group = Arc::new(group);
        let mut st = self.state.lock();
        debug_assert!(!st.closed, "a group submitted after shutdown");
        debug_assert!(st
            .in_flight
            .back()
            .is_none_or(|g| g.pending.info().seq_last < group.first_seq));
        st.in_flight.push_back(group.clone());
        st.to_upload.push_back(group);
        st.pace.last_start = Some(Instant::now());
        let start = !by_writer && st.idle == 0 && st.uploaders < self.in_flight_max;
        if start {
            st.uploaders += 1;
        }
        self.cv.notify_all();
        drop(st);
        if !start {
            return;
        }
        let name = if self.adaptive {
            "strata-upload"
        } else {
            "strata-sync"
        };
        let started = super::background::spawn_on_demand(inner, name, |i| {
            if let Some(p) = &i.pipeline {
                p.upload_loop(i);
            }
        });
        if let Err(e) = started {
            let mut st = self.state.lock();
            st.uploaders -= 1;
            if st.uploaders > 0 {
                tracing::warn!("log groups go on with fewer threads: {e}");
                return;
            }
            // No thread to make them durable: the queued groups fail
            // (unacknowledged), as after a failed upload or sync, and the
            // engine recovers from it.
            tracing::error!("no thread for log groups: {e}");
            for g in st.to_upload.drain(..) {
                *g.outcome.lock() = Some(Err(crate::Error::Unavailable(format!(
                    "could not start a thread for the commit log: {e}"
                ))));
            }
            drop(st);
            self.publish(inner);
        }
    }

    /// Takes the oldest queued group, makes it durable and publishes what
    /// it can; false if none was queued.
    pub fn help(&self, inner: &Inner) -> bool {
        let group = self.state.lock().to_upload.pop_front();
        match group {
            Some(g) => {
                self.run(inner, &g);
                true
            }
            None => false,
        }
    }

    /// Waits until every group submitted is published, making queued
    /// groups durable meanwhile. Caller holds the write mutex, and no lock
    /// the publisher takes.
    pub fn drain(&self, inner: &Inner) {
        self.help_until(inner, |st| st.in_flight.is_empty());
    }

    /// Makes queued groups durable, or waits for others to, until `done`.
    fn help_until(&self, inner: &Inner, done: impl Fn(&State) -> bool) {
        loop {
            let mut st = self.state.lock();
            if done(&st) {
                return;
            }
            match st.to_upload.pop_front() {
                Some(g) => {
                    drop(st);
                    self.run(inner, &g);
                }
                None => self.cv.wait(&mut st),
            }
        }
    }

    /// Lets groups be acknowledged again, once the log is repaired.
    pub fn clear_failure(&self) {
        self.state.lock().failed = false;
    }

    /// Ends the durability threads once the groups in flight are
    /// published. Caller holds the write mutex with the engine stopped:
    /// no group follows.
    pub fn close(&self) {
        self.state.lock().closed = true;
        self.cv.notify_all();
    }

    /// A durability thread: makes queued groups durable and publishes what
    /// it can; ends once none is queued and the pipeline is closed, or it
    /// has waited `ON_DEMAND_IDLE_EXIT` for one. (A group in flight is
    /// published by whichever thread finishes last among it and those
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
            self.run(inner, &group);
        }
    }

    /// Makes one group durable (an upload or a sync), then publishes what
    /// it can.
    fn run(&self, inner: &Inner, group: &InFlight) {
        let started = Instant::now();
        let outcome = group.pending.persist(&*inner.storage, self.epoch);
        if outcome.is_ok() {
            let took = started.elapsed();
            let adaptive = self.adaptive;
            self.state
                .lock()
                .pace
                .on_upload(took, self.in_flight_max, adaptive);
        }
        *group.outcome.lock() = Some(outcome);
        self.publish(inner);
    }

    /// Publishes, in order, every group at the front that is done.
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
            let ok = super::group_in_flight::finish_group(inner, &group, failed_before);
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
            pace.on_upload(took, max, true);
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
            pace.on_upload(took, 8, true);
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
