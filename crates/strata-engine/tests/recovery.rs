//! Leaving a storage failure by itself: a full disk or an unreachable
//! object store makes the engine refuse writes (NoSpace, Unavailable),
//! never acknowledge one it did not persist, and resume once the storage
//! works again, with nothing acknowledged lost and no damage left behind.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{tiny_engine_options, tiny_tree_options};
use strata_engine::storage::{FaultOp, FaultStorage, MemStorage, Storage, TornWrite};
use strata_engine::{Direction, Engine, Error, Tree};

fn key(i: u32) -> Vec<u8> {
    format!("key{i:06}").into_bytes()
}

fn open(storage: Arc<dyn Storage>) -> (Engine, Tree) {
    let engine = Engine::open(storage, tiny_engine_options()).expect("open");
    let tree = engine.open_tree("t", tiny_tree_options()).expect("tree");
    (engine, tree)
}

/// Puts `key(i)` until it is acknowledged (the engine recovering), at
/// most 10 s.
fn put_until_resumed(tree: &Tree, i: u32) -> Duration {
    let started = Instant::now();
    loop {
        match tree.put(&key(i), b"after") {
            Ok(()) => return started.elapsed(),
            Err(e) => assert!(
                matches!(e, Error::NoSpace(_) | Error::Unavailable(_)),
                "while recovering: {e}"
            ),
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "writes did not resume"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn check(storage: Arc<dyn Storage>, acked: &[u32], refused: &[u32]) {
    let (_e, tree) = open(storage);
    for &i in acked {
        assert!(
            tree.get(&key(i)).unwrap().is_some(),
            "acknowledged key {i} lost"
        );
    }
    for &i in refused {
        assert_eq!(tree.get(&key(i)).unwrap(), None, "refused key {i} present");
    }
}

/// Refused keys are not there for readers of the live engine.
fn assert_absent(tree: &Tree, refused: &[u32], when: &str) {
    for &i in refused {
        assert_eq!(tree.get(&key(i)).unwrap(), None, "refused key {i} {when}");
    }
    use std::ops::Bound::Unbounded;
    for dir in [Direction::Forward, Direction::Reverse] {
        let scanned = tree.range(Unbounded, Unbounded, dir, None).unwrap();
        for entry in scanned {
            let (k, _) = entry.unwrap();
            assert!(
                refused.iter().all(|&i| key(i) != k),
                "refused key {} scanned {when}",
                String::from_utf8_lossy(&k)
            );
        }
    }
}

fn full_then_free(fail: FaultOp, objects: bool) {
    let mem = if objects {
        MemStorage::objects()
    } else {
        MemStorage::new()
    };
    let faulty = FaultStorage::new(mem.clone());
    let (engine, tree) = open(faulty.clone());
    let mut acked: Vec<u32> = (0..200).collect();
    for &i in &acked {
        tree.put(&key(i), b"before").unwrap();
    }
    faulty.set_no_space(!objects);
    faulty.fail_after(0, fail);
    let mut refused = Vec::new();
    // Writes until one fails (a flush may have to come first), then a few
    // more that must fail the same way.
    for i in 200..2000 {
        match tree.put(&key(i), b"during") {
            Ok(()) => acked.push(i),
            Err(e) => {
                let expected = if objects {
                    matches!(e, Error::Unavailable(_))
                } else {
                    matches!(e, Error::NoSpace(_))
                };
                assert!(expected, "{e}");
                refused.push(i);
                if refused.len() == 5 {
                    break;
                }
            }
        }
    }
    assert_eq!(refused.len(), 5, "the fault never stopped a write");
    assert_absent(&tree, &refused, "while writes are refused");
    faulty.heal();
    let waited = put_until_resumed(&tree, 5000);
    assert!(waited < Duration::from_secs(5), "resumed after {waited:?}");
    acked.push(5000);
    for i in 5001..5300 {
        tree.put(&key(i), b"after").unwrap();
        acked.push(i);
    }
    // The engine's sequence numbers are past the refused writes now.
    assert_absent(&tree, &refused, "after writes resumed");
    tree.flush().unwrap();
    assert_absent(&tree, &refused, "after a flush");
    // A power loss now, then an open: everything acknowledged is there,
    // nothing refused, and no damage is reported.
    let crashed = mem.crash_copy(TornWrite::None);
    drop((tree, engine));
    check(crashed, &acked, &refused);
}

#[test]
fn a_full_disk_at_the_log_stops_writes_until_space_returns() {
    full_then_free(FaultOp::SYNC, false);
}

#[test]
fn a_full_disk_at_a_flush_stops_writes_until_space_returns() {
    full_then_free(FaultOp::CREATE.union(FaultOp::WRITE), false);
}

#[test]
fn an_unreachable_store_stops_writes_until_it_returns() {
    full_then_free(FaultOp::PUT, true);
}

#[test]
fn a_failure_that_persists_keeps_writes_refused() {
    let mem = MemStorage::new();
    let faulty = FaultStorage::new(mem.clone());
    let (_engine, tree) = open(faulty.clone());
    tree.put(&key(1), b"v").unwrap();
    faulty.set_no_space(true);
    faulty.fail_after(0, FaultOp::SYNC);
    assert!(matches!(tree.put(&key(2), b"v"), Err(Error::NoSpace(_))));
    std::thread::sleep(Duration::from_millis(2500)); // two recovery attempts
    assert!(matches!(tree.put(&key(3), b"v"), Err(Error::NoSpace(_))));
    assert_eq!(
        tree.get(&key(1)).unwrap().as_deref(),
        Some(&b"v"[..]),
        "reads go on"
    );
}
