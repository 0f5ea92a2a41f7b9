//! Syncs in flight on log segments (`db/pipeline.rs`,
//! docs/formats/commit-log.md, "Syncs in flight"): the next group is
//! written and synced while earlier ones sync; a write is acknowledged
//! only once its group and every earlier one are synced, and is visible
//! when acknowledged; a failed sync fails every later group in flight,
//! and the repair cuts their records, so a write told of a failure never
//! reappears.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{tiny_engine_options, tiny_tree_options, Writers};
use strata_engine::storage::{FaultOp, FaultStorage, MemStorage, Storage, TornWrite};
use strata_engine::{Engine, EngineOptions, Tree};

fn open_with(storage: Arc<dyn Storage>, opts: EngineOptions) -> (Engine, Tree) {
    let engine = Engine::open(storage, opts).expect("open");
    let tree = engine.open_tree("t", tiny_tree_options()).expect("tree");
    (engine, tree)
}

/// A tree whose memtable holds the whole test: the only file syncs are
/// the log's.
fn open_unflushed(storage: Arc<dyn Storage>) -> (Engine, Tree) {
    let engine = Engine::open(storage, options()).expect("open");
    let opts = strata_engine::TreeOptions {
        memtable_bytes_max: 64 << 20,
        ..tiny_tree_options()
    };
    let tree = engine.open_tree("t", opts).expect("tree");
    (engine, tree)
}

/// Options with two syncs in flight.
fn options() -> EngineOptions {
    EngineOptions {
        log_syncs_in_flight_max: 2,
        ..tiny_engine_options()
    }
}

fn open(storage: Arc<dyn Storage>) -> (Engine, Tree) {
    open_with(storage, options())
}

fn key(writer: u64, i: u64) -> Vec<u8> {
    format!("w{writer}-{i:08}").into_bytes()
}

fn assert_all_present(storage: Arc<dyn Storage>, acked: &[Vec<u8>]) {
    let (_e, t) = open(storage);
    for k in acked {
        assert!(
            t.get(k).unwrap().is_some(),
            "acknowledged {:?} lost",
            String::from_utf8_lossy(k)
        );
    }
}

/// `writers` threads each put `count` keys; returns the keys in the
/// order they were acknowledged.
fn write_concurrently(tree: &Tree, writers: u64, count: u64) -> Vec<Vec<u8>> {
    let acked = Arc::new(Mutex::new(Vec::new()));
    let threads: Vec<_> = (0..writers)
        .map(|w| {
            let (tree, acked) = (tree.clone(), acked.clone());
            std::thread::spawn(move || {
                for i in 0..count {
                    let k = key(w, i);
                    tree.put(&k, b"v").unwrap();
                    // Acknowledged means visible.
                    assert!(tree.get(&k).unwrap().is_some());
                    acked.lock().unwrap().push(k);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    acked
}

#[test]
fn syncs_overlap_and_every_acknowledged_write_survives_a_power_loss() {
    let mem = MemStorage::new();
    let slow = FaultStorage::new(mem.clone());
    slow.set_sync_delay(Duration::from_millis(3));
    let (engine, tree) = open(slow.clone());
    let acked = write_concurrently(&tree, 8, 30);
    assert!(
        slow.syncs_in_flight_max() >= 2,
        "syncs overlap: at most {} at once",
        slow.syncs_in_flight_max()
    );
    assert_eq!(acked.len(), 240);
    // Power loss with the engine still open: only synced bytes remain.
    let lost_power = mem.crash_copy(TornWrite::None);
    drop((tree, engine));
    assert_all_present(lost_power, &acked);
}

#[test]
fn with_no_syncs_in_flight_each_group_syncs_alone() {
    let mem = MemStorage::new();
    let slow = FaultStorage::new(mem.clone());
    slow.set_sync_delay(Duration::from_millis(2));
    let opts = EngineOptions {
        log_syncs_in_flight_max: 0,
        ..options()
    };
    let (engine, tree) = open_with(slow.clone(), opts);
    let acked = write_concurrently(&tree, 6, 20);
    // Flushes and compactions sync their files beside the log, so only
    // the log's syncs are one at a time: more than 2 means the log's
    // overlapped.
    assert!(slow.syncs_in_flight_max() <= 2);
    let lost_power = mem.crash_copy(TornWrite::None);
    drop((tree, engine));
    assert_all_present(lost_power, &acked);
}

/// Power is lost at random moments while writers run: every write
/// acknowledged before the moment is in the copy, whatever survives of
/// the unsynced tail (lost, kept, or torn and garbled).
#[test]
fn a_power_loss_at_any_moment_keeps_every_write_acknowledged_before_it() {
    let mem = MemStorage::new();
    let slow = FaultStorage::new(mem.clone());
    slow.set_sync_delay(Duration::from_micros(300));
    let (engine, tree) = open(slow.clone());
    let acked = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..6u64)
        .map(|w| {
            let (tree, acked, stop) = (tree.clone(), acked.clone(), stop.clone());
            std::thread::spawn(move || {
                for i in 0.. {
                    if stop.load(Ordering::Acquire) {
                        break;
                    }
                    let k = key(w, i);
                    tree.put(&k, &[b'v'; 40]).unwrap();
                    acked.lock().unwrap().push(k);
                }
            })
        })
        .collect();
    let torn = [
        TornWrite::None,
        TornWrite::Prefix {
            keep_per_mille: 500,
            garble: false,
        },
        TornWrite::Prefix {
            keep_per_mille: 900,
            garble: true,
        },
        TornWrite::Prefix {
            keep_per_mille: 1000,
            garble: false,
        },
    ];
    let mut copies = Vec::new();
    for round in 0..12 {
        std::thread::sleep(Duration::from_millis(15));
        let before: Vec<Vec<u8>> = acked.lock().unwrap().clone();
        copies.push((mem.crash_copy(torn[round % torn.len()]), before));
    }
    stop.store(true, Ordering::Release);
    for w in writers {
        w.join().unwrap();
    }
    drop((tree, engine));
    for (copy, before) in copies {
        assert!(!before.is_empty());
        assert_all_present(copy, &before);
    }
}

#[test]
fn a_failed_sync_fails_the_groups_behind_it_and_their_writes_never_reappear() {
    let mem = MemStorage::new();
    let slow = FaultStorage::new(mem.clone());
    slow.set_sync_delay(Duration::from_millis(2));
    let (engine, tree) = open_unflushed(slow.clone());
    let writers = Writers::start(&tree, 6);
    writers.wait_acked(60, Duration::from_secs(30));
    slow.fail_once_after(0, FaultOp::SYNC);
    // The engine repairs the log by itself (once a second) and writes
    // resume.
    writers.wait_resumed(60, Duration::from_secs(60));
    let (acked, failed) = writers.stop();
    assert!(!failed.is_empty());
    let lost_power = mem.crash_copy(TornWrite::None);
    drop((tree, engine));
    assert_all_present(lost_power.clone(), &acked);
    // The repair cut every record after the last acknowledged group.
    let (_e, t) = open(lost_power);
    for k in &failed {
        assert!(
            t.get(k).unwrap().is_none(),
            "{:?} was told of a failure and reappeared",
            String::from_utf8_lossy(k)
        );
    }
}
