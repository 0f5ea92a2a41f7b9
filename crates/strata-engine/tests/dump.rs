//! `dump::dump` round-trips what the engine wrote: the entries of a
//! table and the operations of the log, parsed back from the dump, are
//! exactly the ones written; the manifest dumps its edits; a damaged
//! table fails as corruption.

mod common;

use std::collections::BTreeMap;

use common::{tiny_engine_options, tiny_tree_options};
use strata_engine::dump::{dump, escape, DumpOptions};
use strata_engine::storage::{MemStorage, Storage};
use strata_engine::Engine;

fn text(storage: &dyn Storage, name: &str) -> strata_engine::Result<String> {
    let mut out = Vec::new();
    dump(storage, name, &DumpOptions::default(), &mut out)?;
    Ok(String::from_utf8(out).expect("utf-8"))
}

fn names(storage: &dyn Storage, suffix: &str) -> Vec<String> {
    let mut v: Vec<String> = storage
        .list()
        .expect("list")
        .into_iter()
        .filter(|n| n.ends_with(suffix))
        .collect();
    v.sort();
    v
}

/// `key => value` of the dump's lines that contain `marker`. A table's
/// line is `KEY @SEQ KIND => VALUE`, a log's `@SEQ KIND tree ID KEY =>
/// VALUE` (the test's keys have no spaces).
fn pairs(dump: &str, marker: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for line in dump.lines().filter(|l| l.contains(marker)) {
        let (left, v) = line.trim().split_once(" => ").expect("a pair");
        let words: Vec<&str> = left.split(' ').collect();
        let key = if left.starts_with('@') {
            words[words.len() - 1]
        } else {
            words[0]
        };
        out.insert(key.to_string(), v.to_string());
    }
    out
}

#[test]
fn dump_round_trips_tables_log_and_manifest() {
    let storage = MemStorage::new();
    let engine = Engine::open(storage.clone(), tiny_engine_options()).expect("open");
    let tree = engine.open_tree("t", tiny_tree_options()).expect("tree");
    let mut flushed = BTreeMap::new();
    for i in 0..300u32 {
        let (k, v) = (format!("k{i:04}"), format!("v{i}\\\n"));
        tree.put(k.as_bytes(), v.as_bytes()).expect("put");
        flushed.insert(escape(k.as_bytes()), escape(v.as_bytes()));
    }
    engine.flush_all().expect("flush");
    let mut logged = BTreeMap::new();
    for i in 0..20u32 {
        let (k, v) = (format!("late{i:02}"), vec![0u8, 255, i as u8]);
        tree.put(k.as_bytes(), &v).expect("put");
        logged.insert(escape(k.as_bytes()), escape(&v));
    }
    // The flushes above start compactions, which replace tables, and a
    // replaced table is removed when its last reader lets go of it: close
    // the engine so that every listed table is still there when it is
    // dumped (a close on local storage flushes nothing; the late writes
    // stay in the log).
    engine.wait_for_compactions().expect("compactions");
    drop(tree);
    engine.close().expect("close");

    let mut in_tables = BTreeMap::new();
    for name in names(&*storage, ".sst") {
        let d = text(&*storage, &name).expect("dump table");
        assert!(d.contains("properties:") && d.contains("index:"), "{d}");
        in_tables.extend(pairs(&d, " put =>"));
    }
    assert_eq!(in_tables, flushed);

    let mut in_log = BTreeMap::new();
    for name in names(&*storage, ".log") {
        let d = text(&*storage, &name).expect("dump log");
        in_log.extend(pairs(&d, " put tree "));
    }
    for (k, v) in &logged {
        assert_eq!(in_log.get(k), Some(v), "{k} missing from the log dump");
    }

    let manifest = names(&*storage, "")
        .into_iter()
        .find(|n| n.starts_with("MANIFEST-"))
        .expect("manifest");
    let d = text(&*storage, &manifest).expect("dump manifest");
    assert!(d.contains("edit 0:") && d.contains("create tree"), "{d}");
    // Every table the engine holds was added by an edit, with its keys.
    for name in names(&*storage, ".sst") {
        let added = d
            .lines()
            .find(|l| l.trim_start().starts_with(&format!("add {name} ")))
            .unwrap_or_else(|| panic!("no edit adds {name}:\n{d}"));
        assert!(
            added.contains("keys \"k") && added.contains(" put"),
            "{added}"
        );
    }

    let table = names(&*storage, ".sst").remove(0);
    storage.corrupt_byte(&table, 40).expect("corrupt");
    let err = text(&*storage, &table).expect_err("damaged table dumped");
    assert!(err.is_corruption(), "{err}");
}
