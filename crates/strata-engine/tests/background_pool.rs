//! Engines sharing one background pool (`strata_engine::BackgroundPool`),
//! as a cluster server's tablets do: their flushes, compactions and tablet
//! maintenance run on the pool's few threads, none of their own; a failing
//! engine neither stops the others nor is left behind when its storage
//! recovers; closing an engine waits for its steps and lets the pool go on.
//!
//! Every engine in this file is on a pool, so no thread of the process may
//! carry a private background role's name.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{tiny_engine_options, tiny_tree_options};
use strata_engine::storage::{FaultOp, FaultStorage, MemStorage, Storage};
use strata_engine::{BackgroundPool, Engine, EngineOptions, Error, Tree};

fn key(i: u32) -> Vec<u8> {
    format!("key{i:06}").into_bytes()
}

fn pooled(pool: &Arc<BackgroundPool>) -> EngineOptions {
    EngineOptions {
        background_pool: Some(pool.clone()),
        ..tiny_engine_options()
    }
}

fn open(storage: Arc<dyn Storage>, opts: EngineOptions) -> (Engine, Tree) {
    let engine = Engine::open(storage, opts).expect("open");
    let tree = engine.open_tree("t", tiny_tree_options()).expect("tree");
    (engine, tree)
}

fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < Duration::from_secs(20), "{what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Names of this process's threads (Linux keeps 15 bytes of each).
fn thread_names() -> Vec<String> {
    let mut names = Vec::new();
    for t in std::fs::read_dir("/proc/self/task").expect("/proc/self/task") {
        let comm = t.expect("task").path().join("comm");
        if let Ok(name) = std::fs::read_to_string(comm) {
            names.push(name.trim().to_string());
        }
    }
    names
}

#[test]
fn many_engines_flush_and_compact_on_two_threads() {
    let pool = BackgroundPool::new(1, 1).unwrap();
    let stores: Vec<Arc<MemStorage>> = (0..12).map(|_| MemStorage::new()).collect();
    let opened: Vec<(Engine, Tree)> = stores
        .iter()
        .map(|s| open(s.clone(), pooled(&pool)))
        .collect();
    assert_eq!(pool.engines(), 12);
    let names = thread_names();
    for role in ["strata-flush", "strata-compact-", "strata-tablets"] {
        assert!(
            !names.iter().any(|n| n.starts_with(role)),
            "a pooled engine started a thread of its own: {role} in {names:?}"
        );
    }
    assert!(
        names
            .iter()
            .filter(|n| n.starts_with("strata-pool"))
            .count()
            >= 2
    );
    // Writers on every engine at once: each fills many memtables (8 KiB)
    // and L0 tables (compacted from 2).
    std::thread::scope(|s| {
        for (_, tree) in &opened {
            s.spawn(move || {
                for i in 0..3000 {
                    tree.put(&key(i), &[b'v'; 100]).unwrap();
                }
            });
        }
    });
    for (engine, tree) in &opened {
        tree.flush().unwrap();
        eventually("compactions on every engine", || {
            engine.stats().compactions > 0
        });
        for i in (0..3000).step_by(97) {
            assert_eq!(
                tree.get(&key(i)).unwrap().as_deref(),
                Some(&[b'v'; 100][..])
            );
        }
    }
    for (engine, tree) in opened {
        drop(tree);
        engine.close().unwrap();
    }
    assert_eq!(pool.engines(), 0);
    // What the pool flushed is what a reopen, with threads of its own,
    // reads.
    let (_e, tree) = open(stores[3].clone(), reopen_options());
    assert_eq!(
        tree.get(&key(2999)).unwrap().as_deref(),
        Some(&[b'v'; 100][..])
    );
}

/// A reopen on a pool of its own (every engine of this file is on a pool).
fn reopen_options() -> EngineOptions {
    pooled(&BackgroundPool::new(1, 1).unwrap())
}

#[test]
fn a_failing_engine_stops_neither_the_pool_nor_itself_for_good() {
    let pool = BackgroundPool::new(1, 1).unwrap();
    let mem = MemStorage::new();
    let faulty = FaultStorage::new(mem.clone());
    let (_sick_engine, sick) = open(faulty.clone(), pooled(&pool));
    let (_well_engine, well) = open(MemStorage::new(), pooled(&pool));
    for i in 0..100 {
        sick.put(&key(i), b"before").unwrap();
    }
    // The sick engine's flushes fail: its disk is full.
    faulty.set_no_space(true);
    faulty.fail_after(0, FaultOp::CREATE.union(FaultOp::WRITE));
    let mut refused = false;
    for i in 100..5000 {
        match sick.put(&key(i), b"during") {
            Ok(()) => {}
            Err(e) => {
                assert!(matches!(e, Error::NoSpace(_)), "{e}");
                refused = true;
                break;
            }
        }
    }
    assert!(refused, "the fault never stopped a write");
    // The other engine flushes and compacts on the same threads meanwhile.
    let flushed = well.engine().stats().flushes;
    for i in 0..2000 {
        well.put(&key(i), &[b'w'; 100]).unwrap();
    }
    well.flush().unwrap();
    assert!(well.engine().stats().flushes > flushed + 5);
    // Space returns: the pool's flush step recovers the sick engine.
    faulty.heal();
    let started = Instant::now();
    loop {
        match sick.put(&key(9000), b"after") {
            Ok(()) => break,
            Err(e) => assert!(matches!(e, Error::NoSpace(_)), "{e}"),
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "writes did not resume"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    sick.flush().unwrap();
    assert_eq!(
        sick.get(&key(9000)).unwrap().as_deref(),
        Some(&b"after"[..])
    );
    assert_eq!(sick.get(&key(5)).unwrap().as_deref(), Some(&b"before"[..]));
}

#[test]
fn an_engine_closes_while_others_keep_the_pool_busy() {
    let pool = BackgroundPool::new(1, 1).unwrap();
    let (busy_engine, busy) = open(MemStorage::new(), pooled(&pool));
    std::thread::scope(|s| {
        let writer = s.spawn(|| {
            for i in 0..20_000 {
                busy.put(&key(i % 4000), &[b'b'; 100]).unwrap();
            }
        });
        // Engines open, write enough to flush, and close, again and again,
        // while the pool works for the busy one.
        for round in 0..20 {
            let (e, t) = open(MemStorage::new(), pooled(&pool));
            for i in 0..300 {
                t.put(&key(i), &[b'c'; 100]).unwrap();
            }
            drop(t);
            e.close()
                .unwrap_or_else(|err| panic!("close {round}: {err}"));
        }
        writer.join().unwrap();
    });
    assert_eq!(pool.engines(), 1);
    assert!(busy_engine.stats().flushes > 0);
    drop(busy);
    drop(busy_engine);
    eventually("the last engine leaves", || pool.engines() == 0);
}

#[test]
fn a_pool_refuses_nonsense_sizes() {
    assert!(matches!(
        BackgroundPool::new(0, 1),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        BackgroundPool::new(1, 100_000),
        Err(Error::InvalidArgument(_))
    ));
}

#[test]
fn the_committer_and_uploaders_start_with_writes_and_end_when_idle() {
    let pool = BackgroundPool::new(1, 1).unwrap();
    let mem = MemStorage::objects();
    let (engine, tree) = open(mem.clone(), pooled(&pool));
    let on_demand = || {
        thread_names()
            .iter()
            .filter(|n| n.starts_with("strata-commit") || n.starts_with("strata-upload"))
            .count()
    };
    // Only this test writes asynchronously or to log objects.
    assert_eq!(on_demand(), 0, "an idle engine has no thread of its own");
    let (tx, rx) = std::sync::mpsc::channel();
    for i in 0..500 {
        let mut b = strata_engine::WriteBatch::default();
        b.put(tree.id(), &key(i), b"async");
        let tx = tx.clone();
        engine.write_async(b, move |r| tx.send(r.map(|_| ())).unwrap());
    }
    for _ in 0..500 {
        rx.recv_timeout(Duration::from_secs(10)).unwrap().unwrap();
    }
    assert!(on_demand() >= 2, "a committer and an uploader ran");
    eventually("the on-demand threads end once idle", || on_demand() == 0);
    // And start again.
    tree.put(&key(1000), b"sync").unwrap();
    let mut b = strata_engine::WriteBatch::default();
    b.put(tree.id(), &key(1001), b"async");
    engine.write_async(b, move |r| tx.send(r.map(|_| ())).unwrap());
    rx.recv_timeout(Duration::from_secs(10)).unwrap().unwrap();
    drop(tree);
    engine.close().unwrap();
    let (_e, tree) = open(mem, reopen_options());
    for i in (0..500).chain([1000, 1001]) {
        assert!(tree.get(&key(i)).unwrap().is_some(), "acknowledged {i}");
    }
}
