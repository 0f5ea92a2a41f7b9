//! Fault injection and corruption at the engine level.
//!
//! - Every mutating storage operation of a workload with flushes and
//!   compactions is made to fail in turn (a disk that dies at that step);
//!   the engine must report errors, never panic, and after a power loss
//!   every acknowledged write must be present with its value.
//! - Every byte of every file of an engine is flipped in turn (sampled):
//!   opening and reading must give an error or exactly the right data,
//!   never a wrong value.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;

use common::{tiny_engine_options, tiny_tree_options};
use strata_engine::storage::{FaultOp, FaultStorage, MemStorage, Storage, TornWrite};
use strata_engine::{Direction, Engine};

type Model = BTreeMap<Vec<u8>, Vec<u8>>;
type KeyValue = (Vec<u8>, Vec<u8>);

fn k(i: u32) -> Vec<u8> {
    format!("key{:05}", i * 7919 % 1000).into_bytes()
}

fn v(i: u32) -> Vec<u8> {
    format!("value-{i}-{}", "y".repeat((i % 50) as usize)).into_bytes()
}

/// Writes until the engine refuses; returns the model of acknowledged
/// writes and the key of the write that failed, if any.
fn workload(engine: &Engine) -> (Model, Option<KeyValue>) {
    let mut model = BTreeMap::new();
    let Ok(tree) = engine.open_tree("t", tiny_tree_options()) else {
        return (model, None);
    };
    for i in 0..600u32 {
        let (key, val) = (k(i), v(i));
        match tree.put(&key, &val) {
            Ok(()) => {
                model.insert(key, val);
            }
            Err(_) => return (model, Some((key, val))),
        }
        if i % 150 == 149 && tree.flush().is_err() {
            return (model, None);
        }
    }
    (model, None)
}

fn contents(engine: &Engine) -> strata_engine::Result<BTreeMap<Vec<u8>, Vec<u8>>> {
    let Some(tree) = engine.tree("t") else {
        return Ok(BTreeMap::new());
    };
    tree.iter(Direction::Forward)?.collect()
}

#[test]
fn every_failing_write_step_loses_no_acknowledged_write() {
    failing_write_steps(MemStorage::new);
}

/// The same sweep over a memory object store: failed uploads, manifest
/// versions and log objects at every step.
#[test]
fn every_failing_upload_step_loses_no_acknowledged_write() {
    failing_write_steps(MemStorage::objects);
}

fn failing_write_steps(new_storage: fn() -> Arc<MemStorage>) {
    // Count the mutating operations of a fault-free run to size the sweep.
    let probe = FaultStorage::new(new_storage());
    {
        let e = Engine::open(probe.clone(), tiny_engine_options()).expect("open");
        workload(&e);
        e.close().expect("close");
    }
    let total_ops = probe.ops_seen();
    let step = (total_ops / 150).max(1);
    let mut n = 0;
    let mut failed_runs = 0;
    while n < total_ops {
        let mem = new_storage();
        let faulty = FaultStorage::new(mem.clone());
        faulty.fail_after(n, FaultOp::ALL_MUTATING);
        let (model, failed) = match Engine::open(faulty.clone(), tiny_engine_options()) {
            Ok(e) => {
                let r = workload(&e);
                drop(e);
                r
            }
            Err(_) => (BTreeMap::new(), None),
        };
        if failed.is_some() {
            failed_runs += 1;
        }
        faulty.heal();
        let after: Arc<dyn Storage> = mem.crash_copy(TornWrite::None);
        let e = Engine::open(after, tiny_engine_options())
            .unwrap_or_else(|err| panic!("fault after {n} ops: reopen failed: {err}"));
        let got =
            contents(&e).unwrap_or_else(|err| panic!("fault after {n} ops: scan failed: {err}"));
        let mut expected = model.clone();
        if let Some((key, val)) = &failed {
            // The write that failed may or may not have become durable.
            if got.get(key) == Some(val) {
                expected.insert(key.clone(), val.clone());
            }
        }
        assert_eq!(got, expected, "fault after {n} of {total_ops} ops");
        n += step;
    }
    assert!(
        failed_runs > 10,
        "the sweep should make writes fail ({failed_runs} did)"
    );
}

/// Builds an engine with flushed tables, log records and a manifest, closed
/// cleanly. Returns the storage, the expected contents, and the keys
/// written by the last log record.
fn build_reference() -> (Arc<MemStorage>, Model, Vec<Vec<u8>>) {
    let mem = MemStorage::new();
    let e = Engine::open(mem.clone(), tiny_engine_options()).expect("open");
    let t = e.open_tree("t", tiny_tree_options()).expect("tree");
    let mut model = BTreeMap::new();
    for i in 0..400u32 {
        t.put(&k(i), &v(i)).expect("put");
        model.insert(k(i), v(i));
    }
    t.flush().expect("flush");
    let mut last = Vec::new();
    for i in 400..430u32 {
        t.put(&k(i), &v(i)).expect("put");
        model.insert(k(i), v(i));
        last = vec![k(i)];
    }
    drop(t);
    e.close().expect("close");
    // No reopen in between: a compaction cut short by close() must leave
    // no file behind, so every file here is one the engine reads.
    (mem, model, last)
}

#[test]
fn flipped_bytes_give_errors_never_wrong_values() {
    let (reference, model, last_record_keys) = build_reference();
    let mut names = reference.list().expect("list");
    names.sort();
    assert!(names.iter().any(|n| n.ends_with(".sst")) && names.iter().any(|n| n.ends_with(".log")));
    for name in names {
        let len = reference.file_len(&name).expect("len");
        if len == 0 {
            continue; // the fresh live log segment
        }
        if strata_engine::log::prealloc::is_prepared(&name) {
            // Zeros prepared for a next log segment: never read (an open
            // removes them), so damage there changes nothing.
            continue;
        }
        let stride = (len / 400).max(1);
        let mut errors = 0;
        for offset in (0..len).step_by(stride) {
            let copy = reference.process_crash_copy();
            copy.corrupt_byte(&name, offset).expect("corrupt");
            let outcome = Engine::open(copy, tiny_engine_options()).and_then(|e| contents(&e));
            match outcome {
                Err(_) => errors += 1,
                Ok(got) => {
                    let mut expected = model.clone();
                    if got.len() + last_record_keys.len() == model.len() && name.ends_with(".log") {
                        // A damaged final record reads as a torn tail.
                        for key in &last_record_keys {
                            expected.remove(key);
                        }
                    }
                    for (key, val) in &got {
                        assert_eq!(
                            Some(val),
                            expected.get(key),
                            "{name} byte {offset}: wrong value for {key:?}"
                        );
                    }
                    assert_eq!(
                        got.len(),
                        expected.len(),
                        "{name} byte {offset}: rows lost without an error"
                    );
                    assert!(
                        !name.ends_with(".sst"),
                        "{name} byte {offset}: table damage went unnoticed"
                    );
                }
            }
        }
        assert!(errors > 0, "{name}: no flipped byte was detected");
    }
}
