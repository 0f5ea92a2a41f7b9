//! The engine over a storage of whole objects (a memory object store):
//! the manifest and log object protocols, takeover and fencing of an old
//! owner, failed and ambiguous uploads, damaged objects
//! (docs/formats/object-store.md).

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use common::{tiny_engine_options, tiny_tree_options};
use strata_engine::storage::{FaultOp, FaultStorage, MemStorage, Storage};
use strata_engine::{Engine, Error, Tree};

fn open(storage: Arc<dyn Storage>) -> (Engine, Tree) {
    let engine = Engine::open(storage, tiny_engine_options()).expect("open");
    let tree = engine.open_tree("t", tiny_tree_options()).expect("tree");
    (engine, tree)
}

fn key(i: u64) -> Vec<u8> {
    format!("k{i:08}").into_bytes()
}

fn names(s: &MemStorage, prefix: &str) -> Vec<String> {
    let mut n = s.list_prefix(prefix).unwrap();
    n.sort();
    n
}

#[test]
fn manifest_and_log_are_numbered_objects() {
    let mem = MemStorage::objects();
    let (engine, tree) = open(mem.clone());
    for i in 0..300 {
        tree.put(&key(i), b"v").unwrap();
    }
    let wal = names(&mem, "wal/");
    assert!(wal.len() > 1, "a fence and an object per group: {wal:?}");
    tree.flush().unwrap();
    engine.close().unwrap();
    let manifests = names(&mem, "manifest/");
    assert!(
        manifests.len() >= 2,
        "takeover snapshot and edits: {manifests:?}"
    );
    assert!(mem.list().unwrap().iter().any(|n| n.ends_with(".sst")));
    assert!(
        !mem.list()
            .unwrap()
            .iter()
            .any(|n| n == "CURRENT" || n.ends_with(".log")),
        "no local-file protocol objects"
    );
    // A second owner: a new epoch, everything there.
    let (engine, tree) = open(mem.clone());
    for i in 0..300 {
        assert_eq!(tree.get(&key(i)).unwrap().as_deref(), Some(&b"v"[..]));
    }
    engine.close().unwrap();
}

#[test]
fn an_old_owner_is_fenced_and_loses_nothing_it_acknowledged() {
    let mem = MemStorage::objects();
    let (old, old_tree) = open(mem.clone());
    for i in 0..100 {
        old_tree.put(&key(i), b"old").unwrap();
    }
    // A second server opens the same storage while the first still runs.
    let (new, new_tree) = open(mem.clone());
    let err = old_tree.put(&key(1000), b"zombie").unwrap_err();
    assert!(matches!(err, Error::Fenced(_)), "{err}");
    let again = old_tree.put(&key(1001), b"zombie").unwrap_err();
    assert!(matches!(again, Error::Fenced(_)), "stays fenced: {again}");
    assert!(old_tree.flush().is_err(), "no manifest edit either");
    for i in 0..100 {
        assert_eq!(new_tree.get(&key(i)).unwrap().as_deref(), Some(&b"old"[..]));
    }
    assert_eq!(new_tree.get(&key(1000)).unwrap(), None);
    new_tree.put(&key(2000), b"new").unwrap();
    new_tree.flush().unwrap();
    drop((old_tree, old));
    new.close().unwrap();
    let (_e, t) = open(mem.clone());
    assert_eq!(t.get(&key(2000)).unwrap().as_deref(), Some(&b"new"[..]));
    assert_eq!(t.get(&key(99)).unwrap().as_deref(), Some(&b"old"[..]));
}

/// Writers keep writing to the old owner while a new one takes over; every
/// write the old owner acknowledged is in the new owner's state.
#[test]
fn takeover_under_concurrent_writes() {
    for round in 0..50 {
        let mem = MemStorage::objects();
        let (old, old_tree) = open(mem.clone());
        let acked = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let writers: Vec<_> = (0..3u64)
            .map(|w| {
                let (tree, acked, stop) = (old_tree.clone(), acked.clone(), stop.clone());
                std::thread::spawn(move || {
                    for i in 0.. {
                        if stop.load(Ordering::Acquire) {
                            break;
                        }
                        let k = key(w * 1_000_000 + i);
                        match tree.put(&k, b"x") {
                            Ok(_) => acked.lock().unwrap().push(k),
                            Err(e) => {
                                assert!(matches!(e, Error::Fenced(_)), "round {round}: {e}");
                                break;
                            }
                        }
                    }
                })
            })
            .collect();
        while acked.lock().unwrap().len() < 50 + round * 20 {
            std::thread::yield_now();
        }
        let (new, new_tree) = open(mem.clone());
        stop.store(true, Ordering::Release);
        for w in writers {
            w.join().unwrap();
        }
        let acked = acked.lock().unwrap().clone();
        for k in &acked {
            assert!(
                new_tree.get(k).unwrap().is_some(),
                "round {round}: acknowledged {k:?} lost in the takeover"
            );
        }
        drop((old_tree, old));
        new.close().unwrap();
    }
}

#[test]
fn failed_uploads_are_never_acknowledged() {
    let mem = MemStorage::objects();
    let faulty = FaultStorage::new(mem.clone());
    let (engine, tree) = open(faulty.clone());
    for i in 0..50 {
        tree.put(&key(i), b"v").unwrap();
    }
    faulty.fail_after(0, FaultOp::PUT);
    assert!(tree.put(&key(50), b"v").is_err());
    faulty.heal();
    assert!(
        tree.put(&key(51), b"v").is_err(),
        "the engine stopped at the failure"
    );
    drop((tree, engine));
    let (_e, t) = open(mem.clone());
    for i in 0..50 {
        assert!(t.get(&key(i)).unwrap().is_some(), "acknowledged {i}");
    }
    assert_eq!(t.get(&key(51)).unwrap(), None);
}

#[test]
fn an_upload_whose_answer_was_lost_is_recognised_as_done() {
    let mem = MemStorage::objects();
    let faulty = FaultStorage::new(mem.clone());
    let (engine, tree) = open(faulty.clone());
    faulty.set_ambiguous(true);
    faulty.fail_after(0, FaultOp::PUT);
    // The upload lands but reports failure; reading it back shows it is
    // this owner's object, so the write is acknowledged.
    tree.put(&key(1), b"v").unwrap();
    faulty.heal();
    tree.put(&key(2), b"v").unwrap();
    drop((tree, engine));
    let (_e, t) = open(mem.clone());
    assert!(t.get(&key(1)).unwrap().is_some());
    assert!(t.get(&key(2)).unwrap().is_some());
}

#[test]
fn a_damaged_log_object_is_corruption() {
    let mem = MemStorage::objects();
    let (engine, tree) = open(mem.clone());
    for i in 0..20 {
        tree.put(&key(i), b"value").unwrap();
    }
    drop((tree, engine)); // no close: the writes live only in the log
    let wal = names(&mem, "wal/");
    let with_records = wal
        .iter()
        .find(|n| mem.file_len(n).unwrap() > 40)
        .expect("a log object with records")
        .clone();
    let len = mem.file_len(&with_records).unwrap();
    mem.corrupt_byte(&with_records, len - 3).unwrap();
    let err = Engine::open(mem.clone(), tiny_engine_options())
        .err()
        .expect("damage detected");
    assert!(err.is_corruption(), "{err}");
    assert!(err.to_string().contains(&with_records), "{err}");
}

#[test]
fn a_damaged_manifest_object_is_corruption() {
    let mem = MemStorage::objects();
    let (engine, tree) = open(mem.clone());
    tree.put(b"a", b"b").unwrap();
    engine.close().unwrap();
    drop(tree);
    let newest = names(&mem, "manifest/").pop().unwrap();
    mem.corrupt_byte(&newest, 30).unwrap();
    let err = Engine::open(mem.clone(), tiny_engine_options())
        .err()
        .expect("damage detected");
    assert!(err.is_corruption(), "{err}");
}

#[test]
fn a_store_with_tables_but_no_manifest_is_refused() {
    let mem = MemStorage::objects();
    let (engine, tree) = open(mem.clone());
    tree.put(b"a", b"b").unwrap();
    tree.flush().unwrap();
    engine.close().unwrap();
    drop(tree);
    for n in names(&mem, "manifest/") {
        mem.remove(&n).unwrap();
    }
    let err = Engine::open(mem.clone(), tiny_engine_options())
        .err()
        .expect("refused");
    assert!(err.to_string().contains("refusing to start empty"), "{err}");
}

#[test]
fn old_log_objects_and_manifest_versions_are_deleted() {
    let mem = MemStorage::objects();
    let (engine, tree) = open(mem.clone());
    for round in 0..30u64 {
        for i in 0..100 {
            tree.put(&key(round * 100 + i), b"v").unwrap();
        }
        tree.flush().unwrap();
    }
    let wal = names(&mem, "wal/");
    assert!(
        wal.len() < 50,
        "flushed log objects are deleted: {}",
        wal.len()
    );
    engine.close().unwrap();
    drop(tree);
    let (_e, t) = open(mem.clone());
    assert!(t.get(&key(2999)).unwrap().is_some());
}

#[test]
fn log_objects_are_bounded_and_a_close_leaves_nothing_to_replay() {
    let mem = MemStorage::objects();
    let opts = strata_engine::EngineOptions {
        log_objects_max: 50,
        ..tiny_engine_options()
    };
    let engine = Engine::open(mem.clone(), opts.clone()).unwrap();
    let tree = engine
        .open_tree(
            "t",
            strata_engine::TreeOptions {
                memtable_bytes_max: 1 << 20, // large: only the log bound flushes
                ..tiny_tree_options()
            },
        )
        .unwrap();
    for i in 0..2000 {
        tree.put(&key(i), b"v").unwrap();
    }
    // Flushes run behind the writes: give them a moment.
    let started = std::time::Instant::now();
    let mut kept = names(&mem, "wal/").len();
    while kept >= 200 && started.elapsed() < std::time::Duration::from_secs(5) {
        std::thread::sleep(std::time::Duration::from_millis(50));
        tree.put(b"tick", b"v").unwrap(); // a write looks at the bound
        kept = names(&mem, "wal/").len();
    }
    assert!(
        kept < 200,
        "{kept} log objects kept with log_objects_max 50"
    );
    drop(tree);
    engine.close().unwrap();
    let engine = Engine::open(mem.clone(), opts).unwrap();
    let records = names(&mem, "wal/")
        .iter()
        .filter(|n| mem.file_len(n).unwrap() > 25)
        .count();
    // The newest object stays (the fencing rule), its records flushed.
    assert!(
        records <= 1,
        "a closed engine left {records} log objects to replay"
    );
    let tree = engine.open_tree("t", tiny_tree_options()).unwrap();
    assert!(tree.get(&key(1999)).unwrap().is_some());
}

/// Each owner numbers its tables from its epoch's own range, so that an
/// old owner still uploading never writes a name the new owner uses.
#[test]
fn each_owner_numbers_its_tables_apart() {
    use strata_engine::manifest::objects::FILE_NUMBERS_PER_EPOCH;
    let mem = MemStorage::objects();
    let table_numbers = |mem: &MemStorage| -> Vec<u64> {
        let mut n: Vec<u64> = names(mem, "")
            .iter()
            .filter_map(|n| n.strip_suffix(".sst")?.parse().ok())
            .collect();
        n.sort_unstable();
        n
    };
    for epoch in 1..=3u64 {
        let (engine, tree) = open(mem.clone());
        let before = table_numbers(&mem);
        tree.put(&key(epoch), b"v").unwrap();
        tree.flush().unwrap();
        let new: Vec<u64> = table_numbers(&mem)
            .into_iter()
            .filter(|n| !before.contains(n))
            .collect();
        assert!(!new.is_empty());
        for n in new {
            assert_eq!(
                n / FILE_NUMBERS_PER_EPOCH,
                epoch,
                "table {n} of epoch {epoch}"
            );
        }
        drop(tree);
        engine.close().unwrap();
    }
}
