//! Background threads shared by engines: a cluster server's tablets, each an
//! engine of its own (docs/cluster.md), flush, compact and maintain on one
//! pool of threads instead of three or more threads each.
//!
//! An engine joins the pool (`EngineOptions::background_pool`) with a slot.
//! The pool's flush threads take flush steps and its compaction threads
//! take tablet-maintenance and compaction steps (`background.rs`), one step
//! of one engine at a time, round robin over the engines. A slot allows one
//! flush step, one maintenance step and `max_background_compactions`
//! compaction steps of its engine at once, as the engine's own threads
//! would.
//!
//! Waking: an engine's `notify_bg` marks its slot's roles dirty and wakes
//! the pool; a thread looks only at dirty slots, except once every
//! `FULL_SCAN_INTERVAL`, when it looks at every slot (timed work: retries
//! of a failed flush, the tablet policy). A step that worked leaves its
//! role dirty, since more may be due.
//!
//! Closing: `Slot::leave` (at the engine's shutdown) refuses further steps
//! and waits for the steps running; a thread holds a strong reference to
//! the engine only within a step, so the engine's last reference is never
//! a pool thread's. The pool holds weak references to the slots, which
//! drop with their engines.
//!
//! Locks: a slot's `state`, then nothing; the pool's `slots` and `wake`
//! alone. An engine wakes the pool with its `bg` lock held, so the pool
//! takes no engine lock while holding `wake`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use super::background::{self, FlushProgress, Step};
use super::Inner;
use crate::error::{Error, Result};

/// How often a pool thread looks at every engine, dirty or not.
const FULL_SCAN_INTERVAL: Duration = Duration::from_secs(1);

/// The longest a pool thread sleeps without being woken.
const IDLE_WAIT: Duration = Duration::from_millis(200);

/// Threads of either kind a pool may have.
const THREADS_MAX: usize = 256;

/// Threads that flush, compact and maintain the tablets of many engines
/// (`EngineOptions::background_pool`).
pub struct BackgroundPool {
    shared: Arc<Shared>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    flush_threads: usize,
    compaction_threads: usize,
}

impl std::fmt::Debug for BackgroundPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BackgroundPool")
            .field("flush_threads", &self.flush_threads)
            .field("compaction_threads", &self.compaction_threads)
            .field("engines", &self.engines())
            .finish()
    }
}

struct Shared {
    slots: Mutex<Vec<Weak<Slot>>>,
    /// Bumped by every wake: a thread sleeps only if nothing woke it since
    /// it last looked.
    wake: Mutex<u64>,
    wake_cv: Condvar,
    shutdown: AtomicBool,
}

/// The roles of a pool thread's steps; indexes `Slot::dirty`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Flush = 0,
    Maintain = 1,
    Compact = 2,
}

/// One engine's place in a pool.
pub(crate) struct Slot {
    shared: Arc<Shared>,
    engine: Mutex<Weak<Inner>>,
    /// Roles with possible work since their last idle step.
    dirty: [AtomicBool; 3],
    state: Mutex<SlotState>,
    /// Signalled when a step of this engine ends.
    idle_cv: Condvar,
    compactions_max: usize,
    flush: Mutex<FlushProgress>,
}

#[derive(Default)]
struct SlotState {
    /// The engine is closing: no more steps.
    left: bool,
    flushing: bool,
    maintaining: bool,
    compactions: usize,
    /// Roles that returned `Step::Stop`.
    stopped: [bool; 3],
}

impl SlotState {
    fn busy(&self) -> bool {
        self.flushing || self.maintaining || self.compactions > 0
    }
}

impl BackgroundPool {
    /// Starts `flush_threads` threads that flush and `compaction_threads`
    /// that compact and maintain tablets, for every engine that joins.
    pub fn new(flush_threads: usize, compaction_threads: usize) -> Result<Arc<BackgroundPool>> {
        for (what, n) in [("flush", flush_threads), ("compaction", compaction_threads)] {
            if n == 0 || n > THREADS_MAX {
                return Err(Error::InvalidArgument(format!(
                    "a background pool's {what} threads must be within 1 ..= {THREADS_MAX}, not {n}"
                )));
            }
        }
        let shared = Arc::new(Shared {
            slots: Mutex::new(Vec::new()),
            wake: Mutex::new(0),
            wake_cv: Condvar::new(),
            shutdown: AtomicBool::new(false),
        });
        let pool = BackgroundPool {
            shared: shared.clone(),
            threads: Mutex::new(Vec::new()),
            flush_threads,
            compaction_threads,
        };
        let roles = std::iter::repeat_n(Role::Flush, flush_threads)
            .chain(std::iter::repeat_n(Role::Compact, compaction_threads));
        for (n, role) in roles.enumerate() {
            let s = shared.clone();
            let name = match role {
                Role::Flush => format!("strata-pool-flush-{n}"),
                Role::Compact => format!("strata-pool-compact-{}", n - flush_threads),
            };
            let handle = std::thread::Builder::new()
                .name(name.clone())
                .spawn(move || run(&s, role))
                .map_err(|e| Error::io(format!("spawn thread {name}"), e))?;
            pool.threads.lock().push(handle);
        }
        Ok(Arc::new(pool))
    }

    /// Engines in the pool now (open, not closing).
    pub fn engines(&self) -> usize {
        let slots: Vec<Arc<Slot>> = self
            .shared
            .slots
            .lock()
            .iter()
            .filter_map(Weak::upgrade)
            .collect();
        slots.iter().filter(|s| !s.state.lock().left).count()
    }

    /// The pool's threads.
    pub fn threads(&self) -> usize {
        self.flush_threads + self.compaction_threads
    }

    /// A slot for an engine about to open; `attach` makes it take steps.
    pub(crate) fn join(&self, compactions_max: usize) -> Arc<Slot> {
        let slot = Arc::new(Slot {
            shared: self.shared.clone(),
            engine: Mutex::new(Weak::new()),
            dirty: std::array::from_fn(|_| AtomicBool::new(true)),
            state: Mutex::new(SlotState::default()),
            idle_cv: Condvar::new(),
            compactions_max: compactions_max.max(1),
            flush: Mutex::new(FlushProgress::default()),
        });
        let mut slots = self.shared.slots.lock();
        slots.retain(|s| s.strong_count() > 0);
        slots.push(Arc::downgrade(&slot));
        slot
    }
}

impl Drop for BackgroundPool {
    fn drop(&mut self) {
        self.shared.shutdown.store(true, Ordering::Release);
        self.shared.wake();
        let me = std::thread::current().id();
        for t in self.threads.lock().drain(..) {
            // The last handle may go with an engine a pool thread let go.
            if t.thread().id() != me {
                let _ = t.join();
            }
        }
    }
}

impl Shared {
    fn wake(&self) {
        let mut generation = self.wake.lock();
        *generation = generation.wrapping_add(1);
        self.wake_cv.notify_all();
    }
}

impl Slot {
    /// Sets the engine the slot's steps work on.
    pub(crate) fn attach(&self, inner: &Arc<Inner>) {
        *self.engine.lock() = Arc::downgrade(inner);
        self.wake();
    }

    /// Marks every role of this engine as having work and wakes the pool.
    pub(crate) fn wake(&self) {
        for d in &self.dirty {
            d.store(true, Ordering::Release);
        }
        self.shared.wake();
    }

    /// Refuses further steps and waits for those running to end.
    pub(crate) fn leave(&self) {
        let mut st = self.state.lock();
        st.left = true;
        while st.busy() {
            self.idle_cv.wait(&mut st);
        }
    }

    /// Takes a step of `kind` if this engine may take one now. Returns
    /// whether it did work.
    fn step(&self, kind: Kind, full_scan: bool) -> bool {
        let i = kind as usize;
        if !full_scan && !self.dirty[i].load(Ordering::Acquire) {
            return false;
        }
        {
            let mut st = self.state.lock();
            if st.left || st.stopped[i] {
                return false;
            }
            let free = match kind {
                Kind::Flush => !std::mem::replace(&mut st.flushing, true),
                Kind::Maintain => !std::mem::replace(&mut st.maintaining, true),
                Kind::Compact if st.compactions < self.compactions_max => {
                    st.compactions += 1;
                    true
                }
                Kind::Compact => false,
            };
            if !free {
                return false;
            }
        }
        // Cleared before the step: a wake during it marks it again.
        self.dirty[i].store(false, Ordering::Release);
        let engine = self.engine.lock().upgrade();
        let outcome = match &engine {
            Some(inner) => match kind {
                Kind::Flush => background::flush_step(inner, &mut self.flush.lock()),
                Kind::Maintain => background::tablet_step(inner),
                Kind::Compact => background::compaction_step(inner),
            },
            None => Step::Idle,
        };
        if outcome == Step::Stop && kind == Kind::Flush {
            if let Some(inner) = &engine {
                super::budget::leave_pool(inner);
            }
        }
        // The strong reference goes before the step is counted as ended
        // (see `leave`).
        drop(engine);
        let mut st = self.state.lock();
        match kind {
            Kind::Flush => st.flushing = false,
            Kind::Maintain => st.maintaining = false,
            Kind::Compact => st.compactions -= 1,
        }
        match outcome {
            Step::Worked => self.dirty[i].store(true, Ordering::Release),
            Step::Stop => st.stopped[i] = true,
            Step::Idle => {}
        }
        if !st.busy() {
            self.idle_cv.notify_all();
        }
        outcome == Step::Worked
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    Flush,
    Compact,
}

/// A pool thread: steps of its role, round robin over the engines.
fn run(shared: &Shared, role: Role) {
    let mut cursor = 0usize;
    let mut last_full_scan = Instant::now();
    loop {
        if shared.shutdown.load(Ordering::Acquire) {
            return;
        }
        let generation = *shared.wake.lock();
        let full_scan = last_full_scan.elapsed() >= FULL_SCAN_INTERVAL;
        if full_scan {
            last_full_scan = Instant::now();
        }
        let slots: Vec<Arc<Slot>> = shared
            .slots
            .lock()
            .iter()
            .filter_map(Weak::upgrade)
            .collect();
        let n = slots.len();
        let mut worked = false;
        for k in 0..n {
            let slot = &slots[(cursor + k) % n];
            let did = match role {
                Role::Flush => slot.step(Kind::Flush, full_scan),
                Role::Compact => {
                    // Maintenance is timed (the tablet policy): it runs on
                    // wakes and full scans, and before compactions.
                    slot.step(Kind::Maintain, full_scan) | slot.step(Kind::Compact, full_scan)
                }
            };
            if did {
                // The next pass starts after this engine: no engine's
                // backlog starves another's.
                cursor = (cursor + k + 1) % n;
                worked = true;
                break;
            }
        }
        drop(slots);
        if !worked {
            let mut g = shared.wake.lock();
            if *g == generation && !shared.shutdown.load(Ordering::Acquire) {
                let until_scan = FULL_SCAN_INTERVAL.saturating_sub(last_full_scan.elapsed());
                shared.wake_cv.wait_for(
                    &mut g,
                    IDLE_WAIT.min(until_scan).max(Duration::from_millis(1)),
                );
            }
        }
    }
}
