//! Durable writes per second against syncs in flight, on a modelled disk
//! whose every fsync takes a fixed time and runs in parallel with others
//! (a network block device): `cargo run --release -p strata-engine
//! --example log_syncs [WRITERS] [SYNC_MICROS] [SECONDS]` runs
//! `log_syncs_in_flight_max` 0, 1, 2 and 4 in turn, three rounds, and
//! prints each run's writes per second, groups per second and the median
//! of each setting. The storage is memory behind `FaultStorage`'s sync
//! delay, so only the log's pipeline is measured, not a file system.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use strata_engine::storage::{FaultStorage, MemStorage};
use strata_engine::{Engine, EngineOptions, TreeOptions};

const SETTINGS: [usize; 4] = [0, 1, 2, 4];
const ROUNDS: usize = 3;

fn arg(n: usize, default: u64, what: &str) -> u64 {
    std::env::args().nth(n).map_or(default, |s| {
        s.parse().unwrap_or_else(|_| panic!("{what}: a number"))
    })
}

/// One run: (writes per second, groups per second).
fn run(in_flight: usize, writers: u64, sync: Duration, time: Duration) -> (f64, f64) {
    let storage = FaultStorage::new(MemStorage::new());
    storage.set_sync_delay(sync);
    let opts = EngineOptions {
        log_syncs_in_flight_max: in_flight,
        log_preallocate: false,
        ..EngineOptions::default()
    };
    let engine = Engine::open(storage, opts).expect("open");
    let tree = engine.open_tree("t", TreeOptions::default()).expect("tree");
    let stop = Arc::new(AtomicBool::new(false));
    let written = Arc::new(AtomicU64::new(0));
    let groups_before = engine.stats().commit_groups;
    let started = Instant::now();
    let threads: Vec<_> = (0..writers)
        .map(|w| {
            let (tree, stop, written) = (tree.clone(), stop.clone(), written.clone());
            std::thread::spawn(move || {
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let key = format!("w{w:03}-{i:012}");
                    tree.put(key.as_bytes(), &[b'v'; 100]).expect("put");
                    written.fetch_add(1, Ordering::Relaxed);
                    i += 1;
                }
            })
        })
        .collect();
    std::thread::sleep(time);
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().expect("writer");
    }
    let secs = started.elapsed().as_secs_f64();
    let groups = engine.stats().commit_groups - groups_before;
    let writes = written.load(Ordering::Relaxed) as f64 / secs;
    (writes, groups as f64 / secs)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let writers = arg(1, 16, "WRITERS");
    let sync = Duration::from_micros(arg(2, 1000, "SYNC_MICROS"));
    let time = Duration::from_secs(arg(3, 3, "SECONDS"));
    println!("writers={writers} sync={sync:?} per run: {time:?}");
    let mut results: Vec<Vec<f64>> = vec![Vec::new(); SETTINGS.len()];
    for round in 1..=ROUNDS {
        for (i, &n) in SETTINGS.iter().enumerate() {
            let (writes, groups) = run(n, writers, sync, time);
            println!(
                "round {round} syncs_in_flight={n} writes_per_s={writes:.0} groups_per_s={groups:.0} writes_per_group={:.1}",
                writes / groups.max(1.0)
            );
            results[i].push(writes);
        }
    }
    let base = median(results[0].clone());
    for (i, &n) in SETTINGS.iter().enumerate() {
        let m = median(results[i].clone());
        println!(
            "median syncs_in_flight={n} writes_per_s={m:.0} ratio_to_0={:.2}",
            m / base
        );
    }
}
