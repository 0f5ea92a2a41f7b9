//! Tablets: splits and merges under concurrent reads and writes checked
//! against a model, automatic splits and merges, faults at every storage
//! step of a split and a merge, and a thousand tablets under one memtable
//! budget.

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{tiny_engine_options, tiny_tree_options, Rng};
use strata_engine::storage::{FaultOp, FaultStorage, MemStorage, Storage, TornWrite};
use strata_engine::{Direction, Engine, EngineOptions, Tree, TreeOptions};

type Model = BTreeMap<Vec<u8>, Vec<u8>>;
/// The write in flight when a fault stopped the workload.
type Failed = Option<(Vec<u8>, Vec<u8>)>;

fn key(i: u64) -> Vec<u8> {
    format!("k{i:05}").into_bytes()
}

/// Keys written once and never changed: any scan that starts after one
/// was acknowledged must see it.
fn stable_key(i: usize) -> Vec<u8> {
    format!("s{i:05}").into_bytes()
}

fn scan(tree: &Tree, dir: Direction) -> Model {
    let mut out = Model::new();
    let mut last: Option<Vec<u8>> = None;
    for kv in tree.iter(dir).expect("iter") {
        let (k, v) = kv.expect("scan");
        if let Some(l) = &last {
            let ordered = match dir {
                Direction::Forward => *l < k,
                Direction::Reverse => *l > k,
            };
            assert!(ordered, "{dir:?} scan out of order or repeated at {k:?}");
        }
        last = Some(k.clone());
        out.insert(k, v);
    }
    out
}

fn check_against(tree: &Tree, model: &Model, what: &str) {
    assert_eq!(&scan(tree, Direction::Forward), model, "{what}: forward");
    assert_eq!(&scan(tree, Direction::Reverse), model, "{what}: reverse");
    for (k, v) in model.iter().step_by(7) {
        assert_eq!(tree.get(k).expect("get").as_ref(), Some(v), "{what}: get");
    }
}

#[test]
fn splits_and_merges_under_concurrent_reads_and_writes_match_a_model() {
    let mem = MemStorage::new();
    let engine = Engine::open(mem.clone(), tiny_engine_options()).expect("open");
    let tree = engine.open_tree("t", tiny_tree_options()).expect("tree");
    let model = Arc::new(Mutex::new(Model::new()));
    let stable_written = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));

    let writing = Arc::new(AtomicBool::new(true));
    let writer = {
        let (tree, model, stable_written) = (tree.clone(), model.clone(), stable_written.clone());
        let writing = writing.clone();
        std::thread::spawn(move || {
            let mut rng = Rng(0x2545_f491_4f6c_dd1d);
            let mut i = 0u64;
            while writing.load(Ordering::Acquire) {
                i += 1;
                let k = key(rng.below(1500));
                let mut m = model.lock().unwrap();
                match rng.below(10) {
                    0 => {
                        tree.delete(&k).expect("delete");
                        m.remove(&k);
                    }
                    1 => {
                        tree.merge(&k, b"m").expect("merge");
                        let v = match m.get(&k) {
                            Some(old) => [old.as_slice(), b",m"].concat(),
                            None => b"m".to_vec(),
                        };
                        m.insert(k, v);
                    }
                    _ => {
                        let v = format!("v{i}-{}", "x".repeat(rng.below(60) as usize)).into_bytes();
                        tree.put(&k, &v).expect("put");
                        m.insert(k, v);
                    }
                }
                if i.is_multiple_of(4) {
                    let s = stable_written.load(Ordering::Acquire);
                    tree.put(&stable_key(s), b"stable").expect("put");
                    m.insert(stable_key(s), b"stable".to_vec());
                    stable_written.store(s + 1, Ordering::Release);
                }
            }
        })
    };
    let readers: Vec<_> = [Direction::Forward, Direction::Reverse]
        .into_iter()
        .map(|dir| {
            let (tree, stable_written, stop) = (tree.clone(), stable_written.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut scans = 0;
                while !stop.load(Ordering::Acquire) {
                    let before = stable_written.load(Ordering::Acquire);
                    let seen = scan(&tree, dir);
                    for i in 0..before {
                        assert!(seen.contains_key(&stable_key(i)), "{dir:?} scan lost s{i}");
                    }
                    scans += 1;
                }
                scans
            })
        })
        .collect();
    // The operator: splits at random keys, merges at random boundaries.
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let (mut splits, mut merges) = (0, 0);
    for _ in 0..300 {
        match rng.below(3) {
            0 | 1 => {
                let k = if rng.below(2) == 0 {
                    key(rng.below(1500))
                } else {
                    stable_key(rng.below(1500) as usize)
                };
                splits += usize::from(tree.split_at(&k).expect("split"));
            }
            _ => {
                let tablets = tree.tablets();
                if tablets.len() > 1 {
                    let b = &tablets[1 + rng.below(tablets.len() as u64 - 1) as usize];
                    merges += usize::from(tree.merge_at(&b.lo).expect("merge"));
                }
            }
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    writing.store(false, Ordering::Release);
    writer.join().expect("writer");
    stop.store(true, Ordering::Release);
    for r in readers {
        assert!(r.join().expect("reader") > 0);
    }
    assert!(splits >= 5, "only {splits} splits ({merges} merges)");
    assert!(merges >= 2, "only {merges} merges ({splits} splits)");
    let model = model.lock().unwrap().clone();
    check_against(&tree, &model, "live");
    tree.compact().expect("compact");
    check_against(&tree, &model, "compacted");
    let tablets = tree.tablets().len();
    drop(tree);
    engine.close().expect("close");

    let engine =
        Engine::open(mem.crash_copy(TornWrite::None), tiny_engine_options()).expect("reopen");
    let tree = engine.open_tree("t", tiny_tree_options()).expect("tree");
    assert_eq!(tree.tablets().len(), tablets);
    check_against(&tree, &model, "reopened");
}

#[test]
fn tablets_split_when_large_and_merge_when_small() {
    let mem = MemStorage::new();
    let engine = Engine::open(mem.clone(), tiny_engine_options()).expect("open");
    let opts = TreeOptions {
        tablet_split_bytes: Some(64 << 10),
        // Boundaries at the start of a "row": the key up to its '/'.
        split_boundary: Some(Arc::new(|k: &[u8]| {
            let end = k.iter().position(|&b| b == b'/').unwrap_or(k.len());
            k[..end].to_vec()
        })),
        ..tiny_tree_options()
    };
    let tree = engine.open_tree("t", opts.clone()).expect("tree");
    let mut model = Model::new();
    let mut rng = Rng(7);
    for i in 0..6000u64 {
        let k = format!("r{:04}/c{}", rng.below(800), i % 3).into_bytes();
        // Incompressible, so that sizes on disk grow with the data.
        let v: Vec<u8> = (0..100).map(|_| rng.next() as u8).collect();
        tree.put(&k, &v).expect("put");
        model.insert(k, v);
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while tree.tablets().len() < 4 {
        assert!(
            Instant::now() < deadline,
            "no splits: {:?}",
            tree.tablets().len()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // Every boundary is a row boundary.
    for t in tree.tablets().iter().skip(1) {
        assert!(!t.lo.contains(&b'/'), "split inside a row at {:?}", t.lo);
    }
    check_against(&tree, &model, "after splits");
    // Cleanup compactions rewrite the shared files.
    engine.wait_for_compactions().expect("compactions");
    let deadline = Instant::now() + Duration::from_secs(60);
    while tree.tablets().iter().any(|t| t.shared_files > 0) {
        assert!(Instant::now() < deadline, "shared files never rewritten");
        std::thread::sleep(Duration::from_millis(50));
    }
    // Sample keys include every boundary, with growing offsets (taken
    // while no split or merge ran in between: the policy keeps working).
    let (samples, total) = loop {
        let before: Vec<Vec<u8>> = tree.tablets().into_iter().map(|t| t.lo).collect();
        let sampled = tree.sample_keys(16 << 10);
        let after: Vec<Vec<u8>> = tree.tablets().into_iter().map(|t| t.lo).collect();
        if before == after {
            for lo in &before[1..] {
                assert!(
                    sampled.0.iter().any(|(k, _)| k == lo),
                    "boundary not sampled"
                );
            }
            break sampled;
        }
    };
    assert!(samples
        .windows(2)
        .all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1));
    assert!(samples.last().is_some_and(|s| s.1 <= total));

    // Drop everything: whole tablets go without a read, then the tablets,
    // small and idle, merge.
    let (tablets, _) = tree.drop_whole_files(b"", None).expect("drop");
    assert!(tablets >= 4, "{tablets} tablets emptied");
    assert_eq!(scan(&tree, Direction::Forward), Model::new());
    let deadline = Instant::now() + Duration::from_secs(60);
    while tree.tablets().len() > 1 {
        assert!(
            Instant::now() < deadline,
            "small tablets never merged: {}",
            tree.tablets().len()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    tree.put(b"after", b"drop").expect("put");
    drop(tree);
    engine.close().expect("close");
    let engine =
        Engine::open(mem.crash_copy(TornWrite::None), tiny_engine_options()).expect("reopen");
    let tree = engine.open_tree("t", opts).expect("tree");
    let expected: Model = [(b"after".to_vec(), b"drop".to_vec())]
        .into_iter()
        .collect();
    assert_eq!(scan(&tree, Direction::Forward), expected);
}

#[test]
fn initial_splits_are_pinned_and_drops_keep_older_data_hidden() {
    let engine = Engine::open(MemStorage::new(), tiny_engine_options()).expect("open");
    let opts = TreeOptions {
        tablet_split_bytes: Some(1 << 20),
        ..tiny_tree_options()
    };
    let splits = vec![b"k00500".to_vec(), b"k01000".to_vec()];
    let tree = engine
        .open_tree_with_splits("t", opts, &splits)
        .expect("tree");
    assert_eq!(tree.tablets().len(), 3);
    let mut model = Model::new();
    for round in 0..2u8 {
        for i in 0..1500u64 {
            tree.put(&key(i), &[b'0' + round; 50]).expect("put");
            model.insert(key(i), vec![b'0' + round; 50]);
        }
        tree.flush().expect("flush");
    }
    // Drop [k00200, k01200): the middle tablet whole, whole files of the
    // others only where nothing older would show through.
    tree.drop_whole_files(b"k00200", Some(b"k01200"))
        .expect("drop");
    for (k, v) in &model {
        let got = tree.get(k).expect("get");
        let inside = k.as_slice() >= b"k00500".as_slice() && k.as_slice() < b"k01000".as_slice();
        if inside {
            assert_eq!(got, None, "{k:?} survived the drop of its tablet");
        } else if got.is_some() {
            // Whatever is still visible is the newest value, never an older one.
            assert_eq!(got.as_ref(), Some(v), "{k:?} shows an older value");
        }
    }
    // Pinned boundaries stay, even with tablets this small and idle.
    std::thread::sleep(Duration::from_millis(1500));
    let los: Vec<Vec<u8>> = tree.tablets().iter().map(|t| t.lo.clone()).collect();
    assert_eq!(los, vec![Vec::new(), splits[0].clone(), splits[1].clone()]);
    assert!(engine
        .open_tree_with_splits("u", TreeOptions::default(), &[b"b".to_vec(), b"a".to_vec()])
        .is_err());
}

/// Writes, a split, more writes, a merge, more writes. Returns the model
/// of acknowledged writes and the write in flight when something failed.
fn split_merge_workload(engine: &Engine) -> (Model, Failed) {
    let mut model = Model::new();
    let Ok(tree) = engine.open_tree("t", tiny_tree_options()) else {
        return (model, None);
    };
    let mut i = 0u64;
    let mut put = |model: &mut Model, n: u64| -> Failed {
        for _ in 0..n {
            let (k, v) = (key(i * 7 % 400), format!("v{i}").into_bytes());
            i += 1;
            if tree.put(&k, &v).is_err() {
                return Some((k, v));
            }
            model.insert(k, v);
        }
        None
    };
    if let Some(f) = put(&mut model, 300) {
        return (model, Some(f));
    }
    if tree.flush().is_err() {
        return (model, None);
    }
    if let Some(f) = put(&mut model, 100) {
        return (model, Some(f));
    }
    if tree.split_at(&key(200)).is_err() {
        return (model, None);
    }
    if let Some(f) = put(&mut model, 100) {
        return (model, Some(f));
    }
    if tree.merge_at(&key(200)).is_err() {
        return (model, None);
    }
    let failed = put(&mut model, 50);
    (model, failed)
}

#[test]
fn a_fault_at_any_step_of_a_split_or_merge_loses_nothing() {
    let probe = FaultStorage::new(MemStorage::new());
    {
        let e = Engine::open(probe.clone(), tiny_engine_options()).expect("open");
        let (_, failed) = split_merge_workload(&e);
        assert!(failed.is_none());
        let t = e.tree("t").expect("tree");
        assert_eq!(t.tablets().len(), 1, "the merge undid the split");
        drop(t);
        e.close().expect("close");
    }
    let total_ops = probe.ops_seen();
    let step = (total_ops / 200).max(1);
    let mut n = 0;
    while n < total_ops {
        let mem = MemStorage::new();
        let faulty = FaultStorage::new(mem.clone());
        faulty.fail_after(n, FaultOp::ALL_MUTATING);
        let (model, failed) = match Engine::open(faulty.clone(), tiny_engine_options()) {
            Ok(e) => split_merge_workload(&e),
            Err(_) => (Model::new(), None),
        };
        faulty.heal();
        let after: Arc<dyn Storage> = mem.crash_copy(TornWrite::None);
        let e = Engine::open(after, tiny_engine_options())
            .unwrap_or_else(|err| panic!("fault after {n} ops: reopen failed: {err}"));
        let got = match e.tree("t") {
            Some(_) => {
                let t = e.open_tree("t", tiny_tree_options()).expect("tree");
                scan(&t, Direction::Forward)
            }
            None => Model::new(),
        };
        let mut expected = model;
        if let Some((k, v)) = &failed {
            if got.get(k) == Some(v) {
                expected.insert(k.clone(), v.clone());
            }
        }
        assert_eq!(got, expected, "fault after {n} of {total_ops} ops");
        n += step;
    }
}

#[test]
fn a_thousand_tablets_share_one_memtable_budget() {
    let dir = tempfile::tempdir().expect("dir");
    let budget = 4 << 20;
    let opts = EngineOptions {
        memtable_budget_bytes: budget,
        log_segment_bytes_max: 256 << 10,
        log_bytes_max: 6 << 20,
        ..EngineOptions::default()
    };
    let engine = Engine::open_dir(dir.path(), opts.clone()).expect("open");
    let splits: Vec<Vec<u8>> = (1..1000u64)
        .map(|i| format!("t{i:04}").into_bytes())
        .collect();
    let tree_opts = TreeOptions {
        memtable_bytes_max: 64 << 20,
        ..TreeOptions::default()
    };
    let tree = engine
        .open_tree_with_splits("t", tree_opts.clone(), &splits)
        .expect("tree");
    assert_eq!(tree.tablets().len(), 1000);
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut latest = BTreeMap::new();
    let mut peak = 0;
    let mut segments_deleted = false;
    for i in 0..12_000u64 {
        let k = format!("t{:04}/{:02}", rng.below(1000), i % 40).into_bytes();
        let mut v = vec![7u8; 1000];
        v[..8].copy_from_slice(&i.to_be_bytes());
        tree.put(&k, &v).expect("put");
        latest.insert(k, v);
        if i % 200 == 0 {
            peak = peak.max(engine.memtable_usage().total_bytes());
            let st = engine.stats();
            segments_deleted |= st.log_bytes_written > st.log_bytes_retained + (1 << 20);
        }
    }
    assert!(
        peak <= budget + budget / 4,
        "memtables peaked at {peak}, budget {budget}"
    );
    assert!(segments_deleted, "no log segment was ever deleted");
    // Once the flushes the bound asked for are done, the log is within it.
    let deadline = Instant::now() + Duration::from_secs(60);
    while engine.stats().log_bytes_retained > (6 << 20) + (256 << 10) {
        assert!(Instant::now() < deadline, "the log stayed over its bound");
        std::thread::sleep(Duration::from_millis(20));
    }
    for (k, v) in latest.iter().step_by(13) {
        assert_eq!(tree.get(k).expect("get").as_ref(), Some(v));
    }
    drop(tree);
    engine.close().expect("close");
    let engine = Engine::open_dir(dir.path(), opts).expect("reopen");
    let tree = engine.open_tree("t", tree_opts).expect("tree");
    assert_eq!(tree.tablets().len(), 1000);
    assert_eq!(scan(&tree, Direction::Forward), latest);
}
