//! The process-wide memtable budget and the commit-log bound across many
//! trees (the tablets of issue 4): memory stays within the budget under a
//! write load spread over a thousand trees, no write is lost to the seals
//! it causes, and an idle tree does not keep log segments alive.

mod common;

use common::Rng;

use strata_engine::{Engine, EngineOptions, TreeOptions};

/// Per-tree memtables so large that only the engine-wide rules seal them.
fn big_memtables() -> TreeOptions {
    TreeOptions {
        memtable_bytes_max: 64 << 20,
        ..TreeOptions::default()
    }
}

/// Waits (at most a minute) until no sealed memtable awaits its flush:
/// the log bound is met once the flushes it asked for are done.
fn wait_for_flushes(engine: &Engine) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while engine.memtable_usage().sealed_bytes > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "flushes never caught up"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

#[test]
fn a_thousand_trees_share_one_memtable_budget() {
    let dir = tempfile::tempdir().unwrap();
    let budget = 4 << 20;
    let opts = EngineOptions {
        memtable_budget_bytes: budget,
        log_segment_bytes_max: 256 << 10,
        log_bytes_max: 6 << 20,
        ..EngineOptions::default()
    };
    let engine = Engine::open_dir(dir.path(), opts).unwrap();
    let trees: Vec<_> = (0..1000)
        .map(|i| {
            engine
                .open_tree(&format!("t{i:04}"), big_memtables())
                .unwrap()
        })
        .collect();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let value = vec![7u8; 1000];
    let mut latest = vec![None; trees.len()];
    let mut peak = 0;
    // 12 MiB of writes, three times the budget, spread over every tree.
    for i in 0..12_000u64 {
        let t = (rng.next() % trees.len() as u64) as usize;
        let key = format!("k{:03}", i % 50);
        let mut v = value.clone();
        v[..8].copy_from_slice(&i.to_be_bytes());
        trees[t].put(key.as_bytes(), &v).unwrap();
        latest[t] = Some((key, i));
        if i % 200 == 0 {
            peak = peak.max(engine.memtable_usage().total_bytes());
        }
    }
    let slack = budget / 4;
    assert!(
        peak <= budget + slack,
        "memtables peaked at {peak} bytes, budget {budget}"
    );
    wait_for_flushes(&engine);
    let stats = engine.stats();
    assert!(stats.flushes > 0, "the budget made trees flush");
    assert!(
        stats.log_bytes_retained <= (6 << 20) + (512 << 10),
        "log kept {} bytes",
        stats.log_bytes_retained
    );
    // Every tree's last write reads back, through memtables and files.
    for (t, last) in trees.iter().zip(&latest) {
        if let Some((key, i)) = last {
            let got = t.get(key.as_bytes()).unwrap().expect("written key");
            assert_eq!(&got[..8], &i.to_be_bytes());
        }
    }
}

#[test]
fn an_idle_tree_does_not_pin_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let opts = EngineOptions {
        memtable_budget_bytes: 256 << 20,
        log_segment_bytes_max: 128 << 10,
        log_bytes_max: 1 << 20,
        ..EngineOptions::default()
    };
    let engine = Engine::open_dir(dir.path(), opts).unwrap();
    let idle = engine.open_tree("idle", big_memtables()).unwrap();
    let hot = engine.open_tree("hot", big_memtables()).unwrap();
    idle.put(b"once", b"written first").unwrap();
    let value = vec![1u8; 1000];
    for i in 0..8_000u32 {
        hot.put(format!("k{i:06}").as_bytes(), &value).unwrap();
    }
    wait_for_flushes(&engine);
    let stats = engine.stats();
    assert!(
        stats.log_bytes_retained <= (1 << 20) + (256 << 10),
        "log kept {} bytes over {} segments",
        stats.log_bytes_retained,
        stats.log_segments
    );
    assert!(idle.stats().files_per_level.iter().sum::<usize>() >= 1);
    assert_eq!(
        idle.get(b"once").unwrap().as_deref(),
        Some(&b"written first"[..])
    );
    drop((idle, hot));
    engine.close().unwrap();
    // And it all survives a reopen with the shorter log.
    let engine = Engine::open_dir(dir.path(), EngineOptions::default()).unwrap();
    let idle = engine.open_tree("idle", big_memtables()).unwrap();
    let hot = engine.open_tree("hot", big_memtables()).unwrap();
    assert_eq!(
        idle.get(b"once").unwrap().as_deref(),
        Some(&b"written first"[..])
    );
    assert_eq!(hot.get(b"k007999").unwrap().as_deref(), Some(&value[..]));
}
