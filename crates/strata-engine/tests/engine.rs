//! Engine behaviours a user relies on, beyond the model: log segments are
//! deleted once flushed past (an idle tree does not pin them), memory stays
//! bounded under a write burst, trees can be dropped, bad input is refused.

mod common;

use common::{tiny_engine_options, tiny_tree_options};
use strata_engine::storage::{MemStorage, Storage};
use strata_engine::{Direction, Engine, EngineOptions, Error, TreeOptions, WriteBatch};

fn log_files(s: &MemStorage) -> usize {
    s.list()
        .expect("list")
        .iter()
        .filter(|n| n.ends_with(".log"))
        .count()
}

#[test]
fn log_segments_are_deleted_once_every_tree_has_flushed() {
    let storage = MemStorage::new();
    let engine = Engine::open(storage.clone(), tiny_engine_options()).expect("open");
    let busy = engine.open_tree("busy", tiny_tree_options()).expect("busy");
    let idle = engine.open_tree("idle", tiny_tree_options()).expect("idle");
    idle.put(b"once", b"written before everything else")
        .expect("put");
    idle.flush().expect("flush idle");
    for i in 0..5000u32 {
        busy.put(format!("k{i:06}").as_bytes(), &[b'v'; 100])
            .expect("put");
    }
    busy.flush().expect("flush busy");
    // 16 KiB segments: ~600 KiB of log was written; only the live segment
    // and at most the one being flushed past may remain.
    let left = log_files(&storage);
    assert!(
        left <= 3,
        "{left} log segments left after flushing every tree"
    );
    assert_eq!(
        idle.get(b"once").expect("get"),
        Some(b"written before everything else".to_vec())
    );
    drop((busy, idle));
    engine.close().expect("close");
    let engine = Engine::open(storage.clone(), tiny_engine_options()).expect("reopen");
    let busy = engine.open_tree("busy", tiny_tree_options()).expect("busy");
    assert_eq!(busy.iter(Direction::Forward).expect("iter").count(), 5000);
}

#[test]
fn memtables_stay_bounded_under_a_write_burst() {
    let engine = Engine::open(MemStorage::new(), tiny_engine_options()).expect("open");
    let opts = tiny_tree_options();
    let bound = opts.memtable_bytes_max * (opts.immutable_memtables_max + 1);
    let t = engine.open_tree("t", opts).expect("tree");
    let mut peak = 0;
    for i in 0..20_000u32 {
        t.put(
            format!("k{:08}", i.wrapping_mul(2_654_435_761)).as_bytes(),
            &[b'x'; 64],
        )
        .expect("put");
        peak = peak.max(t.stats().memtable_bytes as usize);
    }
    // One entry may overshoot the active memtable before it is sealed.
    assert!(
        peak <= bound + 4096,
        "memtables held {peak} bytes, bound {bound}"
    );
    assert!(engine.stats().flushes > 10);
}

#[test]
fn a_batch_across_trees_lands_in_each() {
    // Ops alternate between three trees, in groups with other writers'
    // batches: each op reaches its own tree, and only its own.
    let storage = MemStorage::new();
    let engine = Engine::open(storage.clone(), tiny_engine_options()).expect("open");
    let trees: Vec<_> = ["a", "b", "c"]
        .iter()
        .map(|n| engine.open_tree(n, tiny_tree_options()).expect("tree"))
        .collect();
    std::thread::scope(|s| {
        for w in 0..4u32 {
            let (engine, trees) = (&engine, &trees);
            s.spawn(move || {
                for i in 0..300u32 {
                    let mut b = WriteBatch::new();
                    for (j, t) in [0, 1, 0, 2, 1].iter().enumerate() {
                        let key = format!("w{w}-{i:04}-{j}");
                        b.put(trees[*t].id(), key.as_bytes(), &[b'0' + *t as u8; 8]);
                    }
                    engine.write(b).expect("write");
                }
            });
        }
    });
    for (t, want) in trees.iter().zip([2 * 4 * 300, 2 * 4 * 300, 4 * 300]) {
        let got: Vec<_> = t.iter(Direction::Forward).expect("iter").collect();
        assert_eq!(got.len(), want, "entries in tree {}", t.id());
    }
    assert_eq!(
        trees[2].get(b"w3-0299-3").expect("get"),
        Some(vec![b'2'; 8])
    );
    assert_eq!(
        trees[1].get(b"w0-0000-1").expect("get"),
        Some(vec![b'1'; 8])
    );
    assert_eq!(trees[0].get(b"w0-0000-1").expect("get"), None);
}

#[test]
fn dropped_trees_vanish_with_their_data() {
    let storage = MemStorage::new();
    let engine = Engine::open(storage.clone(), tiny_engine_options()).expect("open");
    let t = engine.open_tree("gone", tiny_tree_options()).expect("tree");
    for i in 0..2000u32 {
        t.put(format!("k{i:05}").as_bytes(), b"value").expect("put");
    }
    t.flush().expect("flush");
    let id = t.id();
    drop(t);
    engine.drop_tree("gone").expect("drop");
    assert!(engine.tree("gone").is_none());
    assert!(matches!(
        engine.drop_tree("gone"),
        Err(Error::TreeNotFound(_))
    ));
    let mut b = WriteBatch::new();
    b.put(id, b"k", b"v");
    assert!(
        matches!(engine.write(b), Err(Error::TreeNotFound(_))),
        "writes to a dropped tree are refused"
    );
    engine.close().expect("close");
    let engine = Engine::open(storage.clone(), tiny_engine_options()).expect("reopen");
    assert!(engine.tree_names().is_empty());
    let t = engine
        .open_tree("gone", tiny_tree_options())
        .expect("recreate");
    assert_eq!(
        t.iter(Direction::Forward).expect("iter").count(),
        0,
        "a recreated tree starts empty"
    );
    assert!(
        !storage
            .list()
            .expect("list")
            .iter()
            .any(|n| n.ends_with(".sst")),
        "its tables were deleted"
    );
}

#[test]
fn bad_options_and_batches_are_refused() {
    let bad_engine = EngineOptions {
        batch_bytes_max: 0,
        ..EngineOptions::default()
    };
    assert!(matches!(
        Engine::open(MemStorage::new(), bad_engine),
        Err(Error::InvalidArgument(_))
    ));
    let engine = Engine::open(
        MemStorage::new(),
        EngineOptions {
            batch_bytes_max: 1 << 20,
            ..tiny_engine_options()
        },
    )
    .expect("open");
    let bad_tree = TreeOptions {
        l0_compaction_trigger: 0,
        ..TreeOptions::default()
    };
    assert!(matches!(
        engine.open_tree("t", bad_tree),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        engine.open_tree("", TreeOptions::default()),
        Err(Error::InvalidArgument(_))
    ));
    let t = engine.open_tree("t", tiny_tree_options()).expect("tree");
    let big = vec![0u8; 2 << 20];
    assert!(
        matches!(t.put(b"k", &big), Err(Error::InvalidArgument(_))),
        "batch over the limit"
    );
    assert_eq!(
        t.get(b"k").expect("get"),
        None,
        "a refused write changes nothing"
    );
    t.merge(b"m", b"1").expect("merge");
    let plain = engine
        .open_tree("t", TreeOptions::default())
        .expect("reopen without operator");
    assert!(
        matches!(plain.get(b"m"), Err(Error::InvalidArgument(_))),
        "merge operands need an operator"
    );
}

#[test]
fn async_and_blocking_writers_share_group_commits() {
    let storage = MemStorage::new();
    let engine = Engine::open(storage.clone(), tiny_engine_options()).unwrap();
    let tree = engine.open_tree("t", tiny_tree_options()).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let (engine, tree, tx) = (engine.clone(), tree.clone(), tx.clone());
            std::thread::spawn(move || {
                for i in 0..500u32 {
                    let mut b = WriteBatch::new();
                    let key = format!("w{w}-{i:04}");
                    b.put(tree.id(), key.as_bytes(), b"v");
                    if (w + i) % 2 == 0 {
                        let tx = tx.clone();
                        engine.write_async(b, move |r| tx.send(r.map(|_| ())).unwrap());
                    } else {
                        engine.write(b).unwrap();
                        tx.send(Ok(())).unwrap();
                    }
                }
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    for _ in 0..2000 {
        rx.recv_timeout(std::time::Duration::from_secs(30))
            .expect("every write is answered")
            .expect("every write commits");
    }
    assert_eq!(tree.iter(Direction::Forward).unwrap().count(), 2000);
    // Acknowledged async writes are durable: they survive a power loss.
    let crashed = storage.crash_copy(strata_engine::storage::TornWrite::None);
    drop(tree);
    engine.close().unwrap();
    let engine = Engine::open(crashed, tiny_engine_options()).unwrap();
    let tree = engine.open_tree("t", tiny_tree_options()).unwrap();
    assert_eq!(tree.iter(Direction::Forward).unwrap().count(), 2000);
    // After close, an async write is answered with an error, not dropped.
    let id = tree.id();
    let e2 = engine.clone();
    drop(tree);
    engine.close().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let mut b = WriteBatch::new();
    b.put(id, b"late", b"v");
    e2.write_async(b, move |r| tx.send(r.is_err()).unwrap());
    assert!(rx.recv_timeout(std::time::Duration::from_secs(5)).unwrap());
}

#[test]
fn writes_whose_thread_defers_the_committer_still_commit() {
    // A thread that defers the committer's wake-up (as a serving thread
    // does) has its writes committed once it wakes the committer, and
    // also if it never does (the committer looks at its queue on its own).
    let storage = MemStorage::new();
    let engine = Engine::open(storage.clone(), tiny_engine_options()).unwrap();
    let tree = engine.open_tree("t", tiny_tree_options()).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let writer = {
        let (engine, id) = (engine.clone(), tree.id());
        std::thread::spawn(move || {
            strata_engine::defer_commit_wakeups();
            for round in 0..2 {
                for i in 0..50u32 {
                    let mut b = WriteBatch::new();
                    b.put(id, format!("r{round}-{i:03}").as_bytes(), b"v");
                    let tx = tx.clone();
                    engine.write_async(b, move |r| tx.send(r).unwrap());
                }
                if round == 0 {
                    strata_engine::wake_deferred_commits();
                }
            }
            // Round 1 is never woken for: the thread ends.
        })
    };
    writer.join().unwrap();
    let mut seqs = Vec::new();
    for _ in 0..100 {
        let seq = rx
            .recv_timeout(std::time::Duration::from_secs(30))
            .expect("every write is answered")
            .expect("every write commits");
        seqs.push(seq);
    }
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]),
        "answered in queue order"
    );
    let crashed = storage.crash_copy(strata_engine::storage::TornWrite::None);
    drop(tree);
    engine.close().unwrap();
    let engine = Engine::open(crashed, tiny_engine_options()).unwrap();
    let tree = engine.open_tree("t", tiny_tree_options()).unwrap();
    assert_eq!(tree.iter(Direction::Forward).unwrap().count(), 100);
}

#[test]
fn a_memory_only_read_answers_from_memory_or_says_it_would_block() {
    use strata_engine::sst::memory_only;
    let engine = Engine::open(MemStorage::new(), tiny_engine_options()).expect("open");
    let tree = engine.open_tree("t", tiny_tree_options()).expect("tree");
    tree.put(b"in-memtable", b"m").expect("put");
    // From the memtable: no block needed, even with none allowed.
    let got = memory_only(0, || tree.get(b"in-memtable")).expect("memtable read");
    assert_eq!(got.as_deref(), Some(&b"m"[..]));
    for i in 0..2000u32 {
        tree.put(format!("k{i:06}").as_bytes(), &[b'v'; 100])
            .expect("put");
    }
    tree.flush().expect("flush");
    engine.wait_for_compactions().expect("idle");
    // In a table, its block not cached (a flush does not fill the cache).
    let key = b"k001234";
    let refused = memory_only(64, || tree.get(key));
    assert!(
        matches!(refused, Err(Error::WouldBlock)),
        "an uncached block: {refused:?}"
    );
    // A normal read caches the block; the memory-only read then succeeds.
    let stored = tree.get(key).expect("read").expect("present");
    let got = memory_only(64, || tree.get(key)).expect("cached read");
    assert_eq!(got, Some(stored));
    // Past its block budget, a memory-only read refuses too.
    assert!(matches!(
        memory_only(0, || tree.get(key)),
        Err(Error::WouldBlock)
    ));
    // A scan across many blocks: refused within a small budget, whatever
    // it found so far; the same scan outside the scope reads every row.
    let scan = || -> Result<usize, Error> {
        let mut n = 0;
        for entry in tree.iter(Direction::Forward)? {
            entry?;
            n += 1;
        }
        Ok(n)
    };
    assert!(matches!(memory_only(4, scan), Err(Error::WouldBlock)));
    assert_eq!(scan().expect("scan"), 2001);
}

/// In the default sync mode on a directory, once the log holds a few MiB
/// it is written over zero-filled segments (the live segment's file is
/// the full segment size, its tail zeros); after a reopen every write is
/// there and no prepared file is left behind.
#[test]
fn the_log_moves_to_zero_filled_segments_and_reopens_whole() {
    const SEGMENT_BYTES: u64 = 1 << 20;
    const KEYS: u32 = 3000;
    let dir = tempfile::tempdir().unwrap();
    let opts = EngineOptions {
        log_segment_bytes_max: SEGMENT_BYTES,
        ..EngineOptions::default()
    };
    let key = |i: u32| format!("key{i:06}").into_bytes();
    let value = |i: u32| vec![(i % 251) as u8; 1000];
    let files = |suffix: &str| -> Vec<(String, Vec<u8>)> {
        std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.to_string_lossy().ends_with(suffix))
            .map(|p| (p.display().to_string(), std::fs::read(&p).unwrap()))
            .collect()
    };
    let written = {
        let engine = Engine::open_dir(dir.path(), opts.clone()).unwrap();
        let tree = engine.open_tree("t", TreeOptions::default()).unwrap();
        let zero_filled = || {
            files(".log").into_iter().any(|(_, data)| {
                data.len() as u64 == SEGMENT_BYTES
                    && data[data.len() - 4096..].iter().all(|&b| b == 0)
            })
        };
        // Write KEYS keys, then more until the live segment is one written
        // over zeros (the thread writing them may lag on a busy machine).
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        let mut i = 0;
        while i < KEYS || !zero_filled() {
            assert!(
                std::time::Instant::now() < deadline,
                "the live segment is written over zeros"
            );
            tree.put(&key(i), &value(i)).unwrap();
            if i % 100 == 0 {
                // Time for the thread writing the next segment's zeros.
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            i += 1;
        }
        engine.close().unwrap();
        i
    };
    let engine = Engine::open_dir(dir.path(), opts).unwrap();
    let tree = engine.open_tree("t", TreeOptions::default()).unwrap();
    for i in 0..written {
        assert_eq!(tree.get(&key(i)).unwrap(), Some(value(i)), "key {i}");
    }
    assert!(files(".logzero").is_empty(), "prepared files are removed");
    for (name, data) in files(".log") {
        assert!(
            data.last() != Some(&0) || data.len() as u64 != SEGMENT_BYTES,
            "{name}: recovery cut the zero tail"
        );
    }
}
