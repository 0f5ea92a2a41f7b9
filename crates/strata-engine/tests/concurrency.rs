//! Concurrent writers (through group commit) and readers: every batch
//! writes the same counter value under one key in each of two trees, and
//! readers holding snapshots must always see both trees agree (atomic,
//! cross-tree batches) while flushes and compactions run underneath.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use common::{tiny_engine_options, tiny_tree_options};
use strata_engine::storage::MemStorage;
use strata_engine::{Direction, Engine, WriteBatch};

const WRITERS: u64 = 4;
const KEYS: u64 = 50;
const ROUNDS: u64 = 5000;

fn key(k: u64) -> Vec<u8> {
    format!("key{k:03}").into_bytes()
}

#[test]
fn batches_are_atomic_across_trees_under_concurrency() {
    let engine = Engine::open(MemStorage::new(), tiny_engine_options()).expect("open");
    let a = engine.open_tree("a", tiny_tree_options()).expect("a");
    let b = engine.open_tree("b", tiny_tree_options()).expect("b");
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let (engine, a, b) = (engine.clone(), a.clone(), b.clone());
            std::thread::spawn(move || {
                for round in 0..ROUNDS {
                    let k = (round * 7 + w * 13) % KEYS;
                    let v = format!("w{w}-r{round:05}-{}", "p".repeat((round % 40) as usize))
                        .into_bytes();
                    let mut batch = WriteBatch::new();
                    batch.put(a.id(), &key(k), &v);
                    batch.put(b.id(), &key(k), &v);
                    engine.write(batch).expect("write");
                }
            })
        })
        .collect();
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let (engine, a, b, stop) = (engine.clone(), a.clone(), b.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut checks = 0u64;
                while !stop.load(Ordering::Acquire) {
                    let snap = engine.snapshot();
                    let scan = |t: &strata_engine::Tree| -> Vec<(Vec<u8>, Vec<u8>)> {
                        t.range(std::ops::Bound::Unbounded, std::ops::Bound::Unbounded, Direction::Forward, Some(&snap))
                            .expect("range")
                            .map(|r| r.expect("item"))
                            .collect()
                    };
                    let sa = scan(&a);
                    assert_eq!(sa, scan(&b), "trees disagree at snapshot {}", snap.seq());
                    let from_scan: std::collections::BTreeMap<Vec<u8>, Vec<u8>> = sa.into_iter().collect();
                    for k in 0..KEYS {
                        for (name, t) in [("a", &a), ("b", &b)] {
                            let got = t.get_at(&key(k), &snap).expect("get");
                            assert_eq!(
                                got.as_ref().map(|v| String::from_utf8_lossy(v).to_string()),
                                from_scan.get(&key(k)).map(|v| String::from_utf8_lossy(v).to_string()),
                                "tree {name} key {k} snapshot {}: get disagrees with scan; stats {:?}",
                                snap.seq(),
                                t.stats()
                            );
                        }
                    }
                    checks += 1;
                }
                checks
            })
        })
        .collect();
    let flusher = {
        let (a, stop) = (a.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Acquire) {
                a.flush().expect("flush");
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
        })
    };
    for w in writers {
        w.join().expect("writer");
    }
    stop.store(true, Ordering::Release);
    let checks: u64 = readers.into_iter().map(|r| r.join().expect("reader")).sum();
    flusher.join().expect("flusher");
    assert!(checks > 0);
    let final_a: Vec<_> = a
        .iter(Direction::Forward)
        .expect("iter")
        .map(|r| r.expect("item"))
        .collect();
    let final_b: Vec<_> = b
        .iter(Direction::Forward)
        .expect("iter")
        .map(|r| r.expect("item"))
        .collect();
    assert_eq!(final_a, final_b);
    assert_eq!(final_a.len() as u64, KEYS);
    let st = engine.stats();
    assert_eq!(
        st.last_seq,
        WRITERS * ROUNDS * 2,
        "every op got one sequence number"
    );
    assert!(st.flushes > 0);
}
