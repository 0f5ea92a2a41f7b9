//! Model-based test: random operation sequences against the engine and a
//! BTreeMap model, compared after every read. Covers put, delete, merge,
//! cross-tree batches, snapshots, bounded iteration both ways, flush,
//! compaction, clean reopen and simulated power loss (every acknowledged
//! write must survive it).
//!
//! The same runs over a memory object store (`MemStorage::objects`), where
//! the engine keeps its manifest and log as numbered objects.
//!
//! STRATA_MODEL_CASES sets the number of cases (default 2000, a quarter of
//! it over objects), STRATA_MODEL_SEED replays one case (with
//! STRATA_MODEL_OBJECTS=1 over objects).

mod common;

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::Arc;

use common::{concat, tiny_engine_options, tiny_tree_options};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use strata_engine::storage::{MemStorage, Storage, TornWrite};
use strata_engine::{Direction, Engine, Snapshot, Tree, WriteBatch};

type Model = Vec<BTreeMap<Vec<u8>, Vec<u8>>>;

const TREES: usize = 2;

struct World {
    storage: Arc<MemStorage>,
    engine: Engine,
    trees: Vec<Tree>,
    model: Model,
    snapshots: Vec<(Snapshot, Model)>,
}

fn open(storage: &Arc<MemStorage>) -> (Engine, Vec<Tree>) {
    let s: Arc<dyn Storage> = storage.clone();
    let engine = Engine::open(s, tiny_engine_options()).expect("open");
    let trees = (0..TREES)
        .map(|i| {
            engine
                .open_tree(&format!("t{i}"), tiny_tree_options())
                .expect("open tree")
        })
        .collect();
    (engine, trees)
}

fn key(rng: &mut SmallRng) -> Vec<u8> {
    // A small key space so that overwrites, deletes and merges collide.
    let n = rng.gen_range(0..200u32);
    format!("k{n:04}").into_bytes()
}

fn value(rng: &mut SmallRng) -> Vec<u8> {
    let len = match rng.gen_range(0..20) {
        0 => 0,
        1 => rng.gen_range(300..2000),
        _ => rng.gen_range(1..40),
    };
    (0..len).map(|_| rng.gen_range(b'a'..=b'z')).collect()
}

fn bound(rng: &mut SmallRng) -> Bound<Vec<u8>> {
    match rng.gen_range(0..3) {
        0 => Bound::Unbounded,
        1 => Bound::Included(key(rng)),
        _ => Bound::Excluded(key(rng)),
    }
}

fn as_ref(b: &Bound<Vec<u8>>) -> Bound<&[u8]> {
    match b {
        Bound::Included(k) => Bound::Included(k.as_slice()),
        Bound::Excluded(k) => Bound::Excluded(k.as_slice()),
        Bound::Unbounded => Bound::Unbounded,
    }
}

fn check_range(world: &World, rng: &mut SmallRng, ctx: &str) {
    let t = rng.gen_range(0..TREES);
    let (lo, hi) = (bound(rng), bound(rng));
    let dir = if rng.gen_bool(0.5) {
        Direction::Forward
    } else {
        Direction::Reverse
    };
    let snap = if !world.snapshots.is_empty() && rng.gen_bool(0.3) {
        Some(rng.gen_range(0..world.snapshots.len()))
    } else {
        None
    };
    let model = snap.map_or(&world.model, |i| &world.snapshots[i].1);
    // BTreeMap::range panics on inverted or equal-excluded ranges; those are empty.
    let valid = match (&lo, &hi) {
        (Bound::Included(a) | Bound::Excluded(a), Bound::Included(b) | Bound::Excluded(b)) => {
            a < b || (a == b && matches!((&lo, &hi), (Bound::Included(_), Bound::Included(_))))
        }
        _ => true,
    };
    let mut expected: Vec<(Vec<u8>, Vec<u8>)> = if valid {
        model[t]
            .range((lo.clone(), hi.clone()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    } else {
        Vec::new()
    };
    if dir == Direction::Reverse {
        expected.reverse();
    }
    let it = world.trees[t]
        .range(
            as_ref(&lo),
            as_ref(&hi),
            dir,
            snap.map(|i| &world.snapshots[i].0),
        )
        .expect("range");
    let got: Vec<(Vec<u8>, Vec<u8>)> = it.map(|r| r.expect("iterate")).collect();
    assert_eq!(
        got, expected,
        "{ctx}: range {lo:?}..{hi:?} {dir:?} tree {t} snapshot {snap:?}"
    );
}

fn run_case(seed: u64, ops: usize, objects: bool) {
    let mut rng = SmallRng::seed_from_u64(seed);
    let storage = if objects {
        MemStorage::objects()
    } else {
        MemStorage::new()
    };
    let (engine, trees) = open(&storage);
    let mut w = World {
        storage,
        engine,
        trees,
        model: vec![BTreeMap::new(); TREES],
        snapshots: Vec::new(),
    };
    for step in 0..ops {
        let ctx = format!("seed {seed} step {step}");
        match rng.gen_range(0..100) {
            0..=34 => {
                let (t, k, v) = (rng.gen_range(0..TREES), key(&mut rng), value(&mut rng));
                w.trees[t].put(&k, &v).expect("put");
                w.model[t].insert(k, v);
            }
            35..=44 => {
                let (t, k) = (rng.gen_range(0..TREES), key(&mut rng));
                w.trees[t].delete(&k).expect("delete");
                w.model[t].remove(&k);
            }
            45..=52 => {
                let (t, k, v) = (rng.gen_range(0..TREES), key(&mut rng), value(&mut rng));
                w.trees[t].merge(&k, &v).expect("merge");
                let new = concat(w.model[t].get(&k).map(|v| v.as_slice()), &v);
                w.model[t].insert(k, new);
            }
            53..=57 => {
                let mut b = WriteBatch::new();
                for _ in 0..rng.gen_range(1..20) {
                    let (t, k) = (rng.gen_range(0..TREES), key(&mut rng));
                    if rng.gen_bool(0.8) {
                        let v = value(&mut rng);
                        b.put(w.trees[t].id(), &k, &v);
                        w.model[t].insert(k, v);
                    } else {
                        b.delete(w.trees[t].id(), &k);
                        w.model[t].remove(&k);
                    }
                }
                w.engine.write(b).expect("batch");
            }
            58..=71 => {
                let (t, k) = (rng.gen_range(0..TREES), key(&mut rng));
                if !w.snapshots.is_empty() && rng.gen_bool(0.3) {
                    let i = rng.gen_range(0..w.snapshots.len());
                    let (snap, m) = &w.snapshots[i];
                    assert_eq!(
                        w.trees[t].get_at(&k, snap).expect("get_at"),
                        m[t].get(&k).cloned(),
                        "{ctx}: get_at"
                    );
                } else {
                    assert_eq!(
                        w.trees[t].get(&k).expect("get"),
                        w.model[t].get(&k).cloned(),
                        "{ctx}: get {k:?}"
                    );
                }
            }
            72..=81 => check_range(&w, &mut rng, &ctx),
            82..=85 => {
                if w.snapshots.len() < 4 {
                    w.snapshots.push((w.engine.snapshot(), w.model.clone()));
                } else {
                    w.snapshots.remove(rng.gen_range(0..w.snapshots.len()));
                }
            }
            86..=89 => w.trees[rng.gen_range(0..TREES)].flush().expect("flush"),
            90..=92 => w.trees[rng.gen_range(0..TREES)].compact().expect("compact"),
            93..=95 => {
                // Clean reopen: snapshots die with the engine.
                w.snapshots.clear();
                let (engine, trees) = (w.engine.clone(), std::mem::take(&mut w.trees));
                drop(trees);
                engine.close().expect("close");
                let (e, t) = open(&w.storage);
                w.engine = e;
                w.trees = t;
            }
            _ => {
                // Power loss: only synced bytes and fsynced names survive.
                w.snapshots.clear();
                let torn = match rng.gen_range(0..3) {
                    0 => TornWrite::None,
                    n => TornWrite::Prefix {
                        keep_per_mille: rng.gen_range(0..1000),
                        garble: n == 2,
                    },
                };
                let crashed = w.storage.crash_copy(torn);
                drop(std::mem::take(&mut w.trees));
                let old = std::mem::replace(&mut w.engine, open(&crashed).0);
                drop(old);
                w.storage = crashed;
                w.trees = (0..TREES)
                    .map(|i| {
                        w.engine
                            .open_tree(&format!("t{i}"), tiny_tree_options())
                            .expect("tree")
                    })
                    .collect();
                assert_whole_trees(&w, &format!("{ctx}: after power loss ({torn:?})"));
            }
        }
    }
    assert_whole_trees(&w, &format!("seed {seed}: final"));
}

/// Every tree, scanned whole, equals its model.
fn assert_whole_trees(w: &World, ctx: &str) {
    for t in 0..TREES {
        let all: Vec<(Vec<u8>, Vec<u8>)> = w.trees[t]
            .iter(Direction::Forward)
            .expect("iter")
            .map(|r| r.expect("item"))
            .collect();
        let want: Vec<(Vec<u8>, Vec<u8>)> = w.model[t].clone().into_iter().collect();
        assert_eq!(all, want, "{ctx}: tree {t}");
    }
}

fn run_cases(objects: bool, share: u64) {
    if let Ok(seed) = std::env::var("STRATA_MODEL_SEED") {
        if std::env::var("STRATA_MODEL_OBJECTS").is_ok() == objects {
            run_case(seed.parse().expect("numeric seed"), 400, objects);
        }
        return;
    }
    let cases: u64 = std::env::var("STRATA_MODEL_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000)
        / share;
    let base: u64 = rand::random();
    for i in 0..cases {
        let seed = base.wrapping_add(i);
        let r = std::panic::catch_unwind(|| run_case(seed, 150, objects));
        if r.is_err() {
            let env = if objects {
                " STRATA_MODEL_OBJECTS=1"
            } else {
                ""
            };
            panic!("model case failed; replay with STRATA_MODEL_SEED={seed}{env}");
        }
    }
}

#[test]
fn engine_matches_btreemap_model() {
    run_cases(false, 1);
}

#[test]
fn engine_over_objects_matches_btreemap_model() {
    run_cases(true, 4);
}
