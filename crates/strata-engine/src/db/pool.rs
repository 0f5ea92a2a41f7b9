//! A memtable budget shared by engines: a cluster server's tablets, each an
//! engine of its own (docs/cluster.md), hold their memtables within one
//! budget, not a share each.
//!
//! Each engine is a member: it adds the bytes it inserts to its active
//! count as it commits them, and replaces both counts (active and sealed)
//! with what it measures at its checks and after each flush; the pool
//! keeps the sums. The rule is the engine's own (`budget.rs`), on the
//! sums: while they are over it, the member with the most active bytes
//! seals its largest memtables, at once if it is the one checking, else
//! when asked (its flush thread looks at the request), and writers of
//! every member wait while the total exceeds the budget.
//!
//! Locks: the members list is taken alone (never with an engine's lock
//! held inside it); a request wakes its target after the list's lock is
//! let go.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};

use parking_lot::Mutex;

use super::Inner;

/// A memtable budget for several engines (`EngineOptions::memtable_pool`).
pub struct MemtablePool {
    budget_bytes: usize,
    active_bytes: AtomicUsize,
    sealed_bytes: AtomicUsize,
    members: Mutex<Vec<Weak<Member>>>,
}

impl std::fmt::Debug for MemtablePool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemtablePool")
            .field("budget_bytes", &self.budget_bytes)
            .field("active_bytes", &self.active_bytes())
            .field("sealed_bytes", &self.sealed_bytes())
            .finish()
    }
}

/// One engine's part of a pool.
pub(crate) struct Member {
    active_bytes: AtomicUsize,
    sealed_bytes: AtomicUsize,
    /// The pool asks this engine to seal its largest memtable.
    seal_requested: AtomicBool,
    /// The engine, to wake its flush thread.
    engine: Mutex<Weak<Inner>>,
}

impl MemtablePool {
    pub fn new(budget_bytes: usize) -> Arc<MemtablePool> {
        Arc::new(MemtablePool {
            budget_bytes,
            active_bytes: AtomicUsize::new(0),
            sealed_bytes: AtomicUsize::new(0),
            members: Mutex::new(Vec::new()),
        })
    }

    pub fn budget_bytes(&self) -> usize {
        self.budget_bytes
    }

    /// Bytes in the members' active memtables, as last counted.
    pub fn active_bytes(&self) -> usize {
        self.active_bytes.load(Ordering::Relaxed)
    }

    /// Bytes in their sealed memtables waiting for a flush.
    pub fn sealed_bytes(&self) -> usize {
        self.sealed_bytes.load(Ordering::Relaxed)
    }

    /// Engines in the pool.
    pub fn members(&self) -> usize {
        self.members
            .lock()
            .iter()
            .filter(|m| m.strong_count() > 0)
            .count()
    }

    /// Whether memtables must be sealed (the engine's rule, on the sums).
    pub(crate) fn over(&self) -> bool {
        let (active, sealed) = (self.active_bytes(), self.sealed_bytes());
        let budget = self.budget_bytes;
        active > budget / 8 * 7 || (active + sealed > budget && active >= budget / 2)
    }

    /// Whether writers must wait.
    pub(crate) fn exceeded(&self) -> bool {
        self.active_bytes() + self.sealed_bytes() > self.budget_bytes
    }

    pub(crate) fn join(self: &Arc<Self>) -> Membership {
        let me = Arc::new(Member {
            active_bytes: AtomicUsize::new(0),
            sealed_bytes: AtomicUsize::new(0),
            seal_requested: AtomicBool::new(false),
            engine: Mutex::new(Weak::new()),
        });
        let mut members = self.members.lock();
        members.retain(|m| m.strong_count() > 0);
        members.push(Arc::downgrade(&me));
        Membership {
            pool: self.clone(),
            me,
        }
    }

    fn adjust(total: &AtomicUsize, old: usize, new: usize) {
        if new >= old {
            total.fetch_add(new - old, Ordering::Relaxed);
        } else {
            total.fetch_sub(old - new, Ordering::Relaxed);
        }
    }

    /// The member with the most active bytes.
    fn largest(&self) -> Option<Arc<Member>> {
        let members = self.members.lock();
        members
            .iter()
            .filter_map(Weak::upgrade)
            .max_by_key(|m| m.active_bytes.load(Ordering::Relaxed))
    }
}

/// An engine's membership: it leaves the pool (its bytes no longer
/// counted) when dropped with the engine.
pub(crate) struct Membership {
    pool: Arc<MemtablePool>,
    me: Arc<Member>,
}

impl Membership {
    pub(crate) fn pool(&self) -> &MemtablePool {
        &self.pool
    }

    /// Sets the engine to wake on a request.
    pub(crate) fn attach(&self, inner: &Arc<Inner>) {
        *self.me.engine.lock() = Arc::downgrade(inner);
    }

    /// Counts `bytes` just inserted into an active memtable.
    pub(crate) fn inserted(&self, bytes: usize) {
        self.me.active_bytes.fetch_add(bytes, Ordering::Relaxed);
        self.pool.active_bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    /// Replaces this engine's counts with what it measured.
    pub(crate) fn publish(&self, active_bytes: usize, sealed_bytes: usize) {
        let old = self.me.active_bytes.swap(active_bytes, Ordering::Relaxed);
        MemtablePool::adjust(&self.pool.active_bytes, old, active_bytes);
        let old = self.me.sealed_bytes.swap(sealed_bytes, Ordering::Relaxed);
        MemtablePool::adjust(&self.pool.sealed_bytes, old, sealed_bytes);
    }

    /// Whether this engine holds the most active bytes of the pool (it
    /// seals its own); else the one that does is asked to, and woken.
    pub(crate) fn seal_here_or_ask(&self) -> bool {
        let Some(largest) = self.pool.largest() else {
            return true;
        };
        if Arc::ptr_eq(&largest, &self.me) {
            return true;
        }
        if !largest.seal_requested.swap(true, Ordering::AcqRel) {
            let engine = largest.engine.lock().upgrade();
            if let Some(inner) = engine {
                let _bg = inner.bg.lock();
                inner.notify_bg();
            }
        }
        false
    }

    /// Takes a request to seal (the flush thread's check).
    pub(crate) fn take_request(&self) -> bool {
        self.me.seal_requested.swap(false, Ordering::AcqRel)
    }

    /// Puts back a request taken and not acted on.
    pub(crate) fn ask_again(&self) {
        self.me.seal_requested.store(true, Ordering::Release);
    }
}

impl Drop for Membership {
    fn drop(&mut self) {
        self.publish(0, 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_follow_the_members_and_their_departure() {
        let pool = MemtablePool::new(1000);
        let (a, b) = (pool.join(), pool.join());
        assert_eq!(pool.members(), 2);
        a.inserted(300);
        b.publish(200, 100);
        assert_eq!((pool.active_bytes(), pool.sealed_bytes()), (500, 100));
        assert!(!pool.over() && !pool.exceeded());
        a.publish(800, 0);
        assert!(pool.over() && pool.exceeded());
        // a holds the most: it seals its own; b asks a.
        assert!(a.seal_here_or_ask());
        assert!(!b.seal_here_or_ask());
        assert!(a.take_request() && !a.take_request() && !b.take_request());
        drop(a);
        assert_eq!((pool.active_bytes(), pool.sealed_bytes()), (200, 100));
        assert_eq!(pool.members(), 1);
    }
}

#[cfg(test)]
mod engine_tests {
    use std::time::{Duration, Instant};

    use super::MemtablePool;
    use crate::db::{Engine, EngineOptions, TreeOptions};

    fn open(dir: &std::path::Path, pool: &std::sync::Arc<MemtablePool>) -> Engine {
        let opts = EngineOptions {
            memtable_budget_bytes: pool.budget_bytes(),
            memtable_pool: Some(pool.clone()),
            ..EngineOptions::default()
        };
        Engine::open_dir(dir, opts).unwrap()
    }

    fn eventually(what: &str, mut check: impl FnMut() -> bool) {
        let started = Instant::now();
        while !check() {
            assert!(started.elapsed() < Duration::from_secs(20), "{what}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    #[test]
    fn an_idle_engine_is_made_to_flush_when_another_fills_the_pool() {
        let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let pool = MemtablePool::new(1 << 20);
        let (a, b) = (open(da.path(), &pool), open(db.path(), &pool));
        let (ta, tb) = (
            a.open_tree("t", TreeOptions::default()).unwrap(),
            b.open_tree("t", TreeOptions::default()).unwrap(),
        );
        let value = vec![7u8; 1000];
        // b: 700 KB in its memtable, under the budget alone; then idle.
        for i in 0..700 {
            tb.put(format!("b{i:05}").as_bytes(), &value).unwrap();
        }
        assert_eq!(b.stats().flushes, 0);
        // a writes until the pool is over: b holds the most, and is asked.
        for i in 0..400 {
            ta.put(format!("a{i:05}").as_bytes(), &value).unwrap();
        }
        eventually("b flushed on the pool's request", || b.stats().flushes >= 1);
        eventually("b's memtable counted empty", || {
            b.memtable_usage().total_bytes() == 0
        });
        // a writes on, far past the budget: the pool stays bounded.
        for i in 400..5000 {
            ta.put(format!("a{i:05}").as_bytes(), &value).unwrap();
            let total = pool.active_bytes() + pool.sealed_bytes();
            assert!(total < 2 << 20, "the pool holds {total} bytes");
        }
        for i in (0..5000).step_by(97) {
            assert_eq!(
                ta.get(format!("a{i:05}").as_bytes()).unwrap(),
                Some(value.clone())
            );
        }
        for i in (0..700).step_by(31) {
            assert_eq!(
                tb.get(format!("b{i:05}").as_bytes()).unwrap(),
                Some(value.clone())
            );
        }
        assert_eq!(pool.members(), 2);
        drop((ta, tb));
        a.close().unwrap();
        b.close().unwrap();
        assert_eq!(pool.active_bytes() + pool.sealed_bytes(), 0);
    }
}
