//! Committer wake-ups deferred to the end of a burst of writes.
//!
//! A server thread that decodes requests in bursts (the requests that
//! arrived together on its connections) queues one write after another
//! with `write_async`. Woken at the first of them, the engine's committer
//! takes that one write alone into a group and syncs it while the rest of
//! the burst queues behind, waiting a whole sync longer; the wake-up itself
//! costs a futex call and, on a virtual machine whose other core sleeps, a
//! few tens of microseconds before the committer runs.
//!
//! A thread that calls [`defer_commit_wakeups`] instead notes which
//! engines it queued writes for and wakes their committers when it calls
//! [`wake_deferred_commits`], which a serving thread does each time it has
//! nothing left to run (its runtime's park hook): the whole burst then
//! goes in one group. Limits, so that a write never waits on a busy
//! thread: a write queued more than `DEFER_MICROS_MAX` after the first
//! deferred one wakes the committer at once (and so does every later one
//! until the thread wakes its committers), and once any thread of the
//! process defers, a committer never sleeps longer than `COMMITTER_NAP`
//! between looks at its queue. Threads that never ask (blocking pools,
//! embedded users) wake the committer at once, as before.

use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Condvar;

/// Longest a thread defers a committer's wake-up, from its first deferred
/// write.
const DEFER_MICROS_MAX: u64 = 100;

/// Longest a committer sleeps once any thread defers its wake-ups: the
/// bound on a deferred write's wait should its thread never flush.
const COMMITTER_NAP: Duration = Duration::from_millis(1);

/// Most engines one thread defers wake-ups for at once; a write for one
/// more wakes its committer at once.
const ENGINES_MAX: usize = 8;

#[derive(Default)]
struct Deferred {
    enabled: bool,
    /// The committers to wake, one entry per engine.
    committers: Vec<Arc<Condvar>>,
    /// When the first write now deferred was queued.
    since: Option<Instant>,
}

/// Some thread of the process defers wake-ups.
static ANY_DEFERS: AtomicBool = AtomicBool::new(false);

thread_local! {
    static DEFERRED: RefCell<Deferred> = RefCell::new(Deferred::default());
}

/// From now on this thread defers the committer wake-ups of its
/// asynchronous writes until it calls [`wake_deferred_commits`] (see the
/// module doc); it must call that whenever it runs out of work.
pub fn defer_commit_wakeups() {
    ANY_DEFERS.store(true, Ordering::Relaxed);
    DEFERRED.with(|d| d.borrow_mut().enabled = true);
}

/// Wakes the committers this thread deferred wake-ups for. Cheap when
/// there are none.
pub fn wake_deferred_commits() {
    DEFERRED.with(|d| {
        let mut d = d.borrow_mut();
        d.since = None;
        for cv in d.committers.drain(..) {
            cv.notify_one();
        }
    });
}

/// How long a committer may sleep before it looks at its queue again:
/// short once any thread of the process defers wake-ups.
pub(super) fn committer_nap(otherwise: Duration) -> Duration {
    match ANY_DEFERS.load(Ordering::Relaxed) {
        true => COMMITTER_NAP.min(otherwise),
        false => otherwise,
    }
}

/// Whether the caller may leave waking `committer` to this thread's next
/// [`wake_deferred_commits`]; if so it is noted. False: wake it now.
pub(super) fn defer(committer: &Arc<Condvar>) -> bool {
    defer_at(committer, Instant::now())
}

/// `defer` at `now` (the tests choose the time).
fn defer_at(committer: &Arc<Condvar>, now: Instant) -> bool {
    DEFERRED.with(|d| {
        let mut d = d.borrow_mut();
        if !d.enabled {
            return false;
        }
        let since = *d.since.get_or_insert(now);
        if now.saturating_duration_since(since) > Duration::from_micros(DEFER_MICROS_MAX) {
            return false;
        }
        if d.committers.iter().any(|c| Arc::ptr_eq(c, committer)) {
            return true;
        }
        if d.committers.len() >= ENGINES_MAX {
            return false;
        }
        d.committers.push(committer.clone());
        true
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_thread_that_never_asked_wakes_at_once() {
        let cv = Arc::new(Condvar::new());
        assert!(!defer(&cv));
    }

    #[test]
    fn deferred_wakeups_are_noted_once_per_engine_and_flushed() {
        std::thread::spawn(|| {
            defer_commit_wakeups();
            // Once a thread defers, no committer sleeps past the nap.
            assert_eq!(committer_nap(Duration::from_secs(1)), COMMITTER_NAP);
            assert_eq!(
                committer_nap(Duration::from_micros(10)),
                Duration::from_micros(10)
            );
            // The times are chosen, not measured: a test thread that the
            // machine holds up for longer than the limit must not fail.
            let t0 = Instant::now();
            let limit = Duration::from_micros(DEFER_MICROS_MAX);
            let (a, b) = (Arc::new(Condvar::new()), Arc::new(Condvar::new()));
            assert!(defer_at(&a, t0));
            assert!(defer_at(&a, t0));
            assert!(defer_at(&b, t0 + limit));
            DEFERRED.with(|d| assert_eq!(d.borrow().committers.len(), 2));
            wake_deferred_commits();
            DEFERRED.with(|d| {
                let d = d.borrow();
                assert!(d.committers.is_empty() && d.since.is_none());
            });
            // Past the time limit a write wakes its committer itself.
            assert!(defer_at(&a, t0));
            assert!(!defer_at(&a, t0 + 2 * limit));
            wake_deferred_commits();
            // More engines than the limit: the extra one wakes at once.
            let many: Vec<_> = (0..=ENGINES_MAX)
                .map(|_| Arc::new(Condvar::new()))
                .collect();
            let deferred = many.iter().filter(|cv| defer_at(cv, t0)).count();
            assert_eq!(deferred, ENGINES_MAX);
        })
        .join()
        .expect("test thread");
    }
}
