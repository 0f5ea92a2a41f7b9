//! Log uploads in flight on an object store (`db/pipeline.rs`): several
//! groups upload at once; a write is acknowledged only once its object and
//! every earlier one landed, and is visible when acknowledged; a failed
//! upload fails every later group in flight; and the id of a failed upload
//! is filled before anything later is acknowledged, so an old owner can
//! never acknowledge a write past a new owner's fence
//! (docs/formats/object-store.md).

mod common;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{tiny_engine_options, tiny_tree_options, Writers};
use strata_engine::log::objects::parse_object_name;
use strata_engine::storage::{FaultOp, FaultStorage, MemStorage, Storage};
use strata_engine::{Engine, Error, Tree};

fn open(storage: Arc<dyn Storage>) -> (Engine, Tree) {
    let engine = Engine::open(storage, tiny_engine_options()).expect("open");
    let tree = engine.open_tree("t", tiny_tree_options()).expect("tree");
    (engine, tree)
}

fn key(writer: u64, i: u64) -> Vec<u8> {
    format!("w{writer}-{i:08}").into_bytes()
}

/// The ids of the log objects in the store.
fn log_ids(mem: &MemStorage) -> BTreeSet<u64> {
    mem.list_prefix("wal/")
        .unwrap()
        .iter()
        .filter_map(|n| parse_object_name(n))
        .collect()
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

#[test]
fn uploads_overlap_and_every_acknowledged_write_is_visible_and_durable() {
    let mem = MemStorage::objects();
    let slow = FaultStorage::new(mem.clone());
    slow.set_put_delay(Duration::from_millis(5));
    let (engine, tree) = open(slow.clone());
    let acked = Arc::new(Mutex::new(Vec::new()));
    let writers: Vec<_> = (0..8u64)
        .map(|w| {
            let (tree, acked) = (tree.clone(), acked.clone());
            std::thread::spawn(move || {
                for i in 0..30 {
                    let k = key(w, i);
                    tree.put(&k, b"v").unwrap();
                    // Acknowledged means visible.
                    assert!(tree.get(&k).unwrap().is_some());
                    acked.lock().unwrap().push(k);
                }
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    assert!(
        slow.puts_in_flight_max() >= 2,
        "uploads overlap: at most {} at once",
        slow.puts_in_flight_max()
    );
    drop((tree, engine)); // no close: the writes live in the log
    let acked = acked.lock().unwrap().clone();
    assert_eq!(acked.len(), 240);
    assert_all_present(mem, &acked);
}

#[test]
fn a_failed_upload_fails_the_groups_behind_it_until_the_log_is_repaired() {
    let mem = MemStorage::objects();
    let slow = FaultStorage::new(mem.clone());
    slow.set_put_delay(Duration::from_millis(10));
    let (engine, tree) = open(slow.clone());
    let writers = Writers::start(&tree, 6);
    writers.wait_acked(60, Duration::from_secs(30));
    slow.fail_once_after(0, FaultOp::PUT);
    // The engine repairs the log by itself (once a second) and writes
    // resume.
    writers.wait_resumed(60, Duration::from_secs(60));
    let (acked, failed) = writers.stop();
    assert!(!failed.is_empty());
    // Every id from the lowest to the highest holds an object: the failed
    // upload's id was filled before later writes were acknowledged.
    let ids = log_ids(&mem);
    let (lo, hi) = (*ids.first().unwrap(), *ids.last().unwrap());
    assert_eq!(ids.len() as u64, hi - lo + 1, "no gap among {ids:?}");
    drop((tree, engine));
    assert_all_present(mem, &acked);
}

#[test]
fn an_owner_that_gave_up_a_log_object_cannot_pass_a_new_owners_fence() {
    let mem = MemStorage::objects();
    let faulty = FaultStorage::new(mem.clone());
    let (old, old_tree) = open(faulty.clone());
    let acked: Vec<Vec<u8>> = (0..20).map(|i| key(0, i)).collect();
    for k in &acked {
        old_tree.put(k, b"v").unwrap();
    }
    // The next upload fails and does not land: its id is given up.
    faulty.fail_once_after(0, FaultOp::PUT);
    let err = old_tree.put(&key(1, 0), b"v").unwrap_err();
    assert!(matches!(err, Error::Unavailable(_)), "{err}");
    // A new owner takes over before the old one repairs its log: its
    // fence takes the given-up id.
    let (new, new_tree) = open(mem.clone());
    // The old owner's repair finds the fence and stops; until then it
    // refuses writes. It never acknowledges one.
    let deadline = Instant::now() + Duration::from_secs(30);
    for i in 1.. {
        match old_tree.put(&key(1, i), b"zombie") {
            Ok(_) => panic!("the old owner acknowledged a write after the takeover"),
            Err(Error::Fenced(_)) => break,
            Err(e) => assert!(matches!(e, Error::Unavailable(_)), "{e}"),
        }
        assert!(
            Instant::now() < deadline,
            "the old owner never saw the fence"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    for k in &acked {
        assert!(new_tree.get(k).unwrap().is_some());
    }
    drop((old_tree, old));
    drop((new_tree, new));
    assert_all_present(mem, &acked);
}
