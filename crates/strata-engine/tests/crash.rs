//! Crash test: a child process writes with acknowledged (fsynced) writes
//! from several threads and is killed with SIGKILL at a random moment, many
//! times over one directory. After each kill the parent reopens the engine
//! and checks that every acknowledged write is present and that each
//! writer's keys form a gap-free prefix (nothing unacknowledged appears out
//! of order).
//!
//! The child is this test binary itself, re-run with STRATA_CRASH_CHILD set.
//! STRATA_CRASH_CYCLES sets the number of kill cycles (default 20). Every
//! other cycle the child writes with two log syncs in flight
//! (`log_syncs_in_flight_max`).

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use strata_engine::{Direction, Engine, EngineOptions, TreeOptions};

const WRITERS: usize = 4;
const CHILD_ENV: &str = "STRATA_CRASH_CHILD";
/// Set for the child: its `log_syncs_in_flight_max`.
const SYNCS_ENV: &str = "STRATA_CRASH_SYNCS";

fn options() -> (EngineOptions, TreeOptions) {
    let mut tree = common::tiny_tree_options();
    tree.memtable_bytes_max = 64 << 10;
    tree.target_file_size_bytes = 64 << 10;
    tree.level_base_bytes = 256 << 10;
    let mut engine = common::tiny_engine_options();
    engine.log_segment_bytes_max = 128 << 10;
    (engine, tree)
}

fn key(writer: usize, i: u64) -> Vec<u8> {
    format!("w{writer}-{i:010}").into_bytes()
}

fn value(writer: usize, i: u64) -> Vec<u8> {
    format!("value {writer} {i} {}", "x".repeat((i % 97) as usize)).into_bytes()
}

/// The child: resumes each writer after the highest key present, writes
/// forever, prints "writer index" after every acknowledged write.
fn child(dir: &str) {
    let (mut eo, to) = options();
    eo.log_syncs_in_flight_max = std::env::var(SYNCS_ENV)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let engine = Engine::open_dir(dir, eo).expect("child open");
    let tree = engine.open_tree("crash", to).expect("child tree");
    let starts: Vec<u64> = (0..WRITERS).map(|w| next_index(&tree, w)).collect();
    let out = Arc::new(std::sync::Mutex::new(std::io::stdout()));
    let handles: Vec<_> = (0..WRITERS)
        .map(|w| {
            let (tree, out, start) = (tree.clone(), out.clone(), starts[w]);
            std::thread::spawn(move || {
                for i in start.. {
                    tree.put(&key(w, i), &value(w, i)).expect("child put");
                    let mut o = out.lock().expect("stdout");
                    writeln!(o, "{w} {i}").expect("report");
                    o.flush().expect("flush stdout");
                }
            })
        })
        .collect();
    for h in handles {
        let _ = h.join();
    }
}

fn next_index(tree: &strata_engine::Tree, w: usize) -> u64 {
    let prefix = format!("w{w}-");
    let upper = format!("w{w}.");
    let mut it = tree
        .range(
            std::ops::Bound::Included(prefix.as_bytes()),
            std::ops::Bound::Excluded(upper.as_bytes()),
            Direction::Reverse,
            None,
        )
        .expect("range");
    match it.next() {
        Some(Ok((k, _))) => {
            let s = std::str::from_utf8(&k[prefix.len()..]).expect("utf8");
            s.parse::<u64>().expect("index") + 1
        }
        Some(Err(e)) => panic!("scan: {e}"),
        None => 0,
    }
}

#[test]
fn acknowledged_writes_survive_sigkill() {
    if let Ok(dir) = std::env::var(CHILD_ENV) {
        child(&dir);
        return;
    }
    let cycles: usize = std::env::var("STRATA_CRASH_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let dir = tempfile::tempdir().expect("tempdir");
    let dir_s = dir.path().to_str().expect("utf8 path").to_string();
    let exe = std::env::current_exe().expect("current exe");
    let mut rng = rand::rngs::SmallRng::seed_from_u64(rand::random());
    let mut acked: HashMap<usize, u64> = HashMap::new();
    let mut total_acked = 0u64;
    for cycle in 0..cycles {
        let mut child = Command::new(&exe)
            .args([
                "--exact",
                "acknowledged_writes_survive_sigkill",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, &dir_s)
            .env(SYNCS_ENV, if cycle % 2 == 1 { "2" } else { "0" })
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn child");
        let stdout = child.stdout.take().expect("child stdout");
        let kill_after = Duration::from_millis(rng.gen_range(200..1500));
        let reader = std::thread::spawn(move || {
            let mut last: HashMap<usize, u64> = HashMap::new();
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let mut parts = line.split_whitespace();
                let (Some(w), Some(i)) = (parts.next(), parts.next()) else {
                    continue;
                };
                if let (Ok(w), Ok(i)) = (w.parse::<usize>(), i.parse::<u64>()) {
                    last.insert(w, i);
                }
            }
            last
        });
        let start = Instant::now();
        while start.elapsed() < kill_after {
            std::thread::sleep(Duration::from_millis(20));
        }
        child.kill().expect("SIGKILL child");
        let _ = child.wait();
        let last = reader.join().expect("reader");
        for (w, i) in last {
            let e = acked.entry(w).or_insert(0);
            *e = (*e).max(i + 1);
        }
        // Verify: every writer's keys are exactly 0..n with n >= acked.
        let (eo, to) = options();
        let engine = Engine::open_dir(dir.path(), eo).expect("reopen after kill");
        let tree = engine.open_tree("crash", to).expect("tree");
        let mut present: HashMap<usize, u64> = HashMap::new();
        for item in tree.iter(Direction::Forward).expect("iter") {
            let (k, v) = item.expect("scan after kill");
            let s = std::str::from_utf8(&k).expect("utf8 key");
            let (w, i) = s[1..].split_once('-').expect("key shape");
            let (w, i): (usize, u64) = (w.parse().expect("w"), i.parse().expect("i"));
            let n = present.entry(w).or_insert(0);
            assert_eq!(
                i, *n,
                "cycle {cycle}: writer {w} has a gap before index {i}"
            );
            assert_eq!(v, value(w, i), "cycle {cycle}: wrong value for {s}");
            *n += 1;
        }
        for (w, &n) in &acked {
            let have = present.get(w).copied().unwrap_or(0);
            assert!(have >= n, "cycle {cycle}: writer {w} lost acknowledged writes: {have} present, {n} acknowledged");
        }
        total_acked = acked.values().sum();
        engine.close().expect("close");
    }
    assert!(total_acked > 0, "the child never acknowledged a write");
    eprintln!("crash test: {cycles} kills, {total_acked} acknowledged writes, all present");
}
