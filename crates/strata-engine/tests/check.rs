//! `check::check`: clean on what the engine wrote; a flipped byte in each
//! kind of file (an SSTable, the manifest, a commit-log segment) is damage
//! naming that file; a torn tail of the newest segment is only a note;
//! and the check writes nothing.

mod common;

use std::path::Path;

use common::{tiny_engine_options, tiny_tree_options};
use strata_engine::check::{check, CheckReport};
use strata_engine::storage::LocalStorage;
use strata_engine::Engine;

/// An engine directory with flushed tables and, after them, log records.
fn populate(dir: &Path) {
    let engine = Engine::open_dir(dir, tiny_engine_options()).expect("open");
    let tree = engine.open_tree("t", tiny_tree_options()).expect("tree");
    for i in 0..2000u32 {
        tree.put(format!("key{i:06}").as_bytes(), &[b'v'; 100])
            .expect("put");
    }
    engine.flush_all().expect("flush");
    for i in 0..50u32 {
        tree.put(format!("late{i:04}").as_bytes(), b"in the log")
            .expect("put");
    }
    drop(tree);
    engine.close().expect("close");
}

fn run(dir: &Path) -> CheckReport {
    let storage = LocalStorage::open(dir).expect("storage");
    check(&*storage, &mut |_| {}).expect("check")
}

fn files(dir: &Path, suffix: &str) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .expect("read dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.to_string_lossy().ends_with(suffix))
        .collect();
    v.sort();
    v
}

fn flip(path: &Path, at: usize) {
    let mut data = std::fs::read(path).expect("read");
    data[at] ^= 0x40;
    std::fs::write(path, data).expect("write");
}

fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .expect("read dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| !p.ends_with("LOCK"))
        .map(|p| (p.display().to_string(), std::fs::read(&p).expect("read")))
        .collect();
    v.sort();
    v
}

#[test]
fn clean_directory_passes_and_is_left_as_it_was() {
    let dir = tempfile::tempdir().expect("tempdir");
    populate(dir.path());
    let before = snapshot(dir.path());
    let r = run(dir.path());
    assert!(r.is_clean(), "{:?}", r.damage);
    assert!(r.tables_checked >= 1, "{r:?}");
    assert!(r.log_records_checked >= 1, "{r:?}");
    assert_eq!(snapshot(dir.path()), before, "the check wrote something");
}

#[test]
fn flipped_byte_in_a_table_is_damage_naming_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    populate(dir.path());
    let table = files(dir.path(), ".sst")
        .into_iter()
        .next()
        .expect("a table");
    flip(&table, 100); // inside the first data block
    let r = run(dir.path());
    let name = table.file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        r.damage.iter().any(|d| d.file == name),
        "{name} not reported: {:?}",
        r.damage
    );
}

#[test]
fn flipped_byte_in_the_manifest_is_damage() {
    let dir = tempfile::tempdir().expect("tempdir");
    populate(dir.path());
    let manifest = files(dir.path(), "")
        .into_iter()
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("MANIFEST-")
        })
        .expect("a manifest");
    flip(&manifest, 20);
    let r = run(dir.path());
    assert!(
        r.damage.iter().any(|d| d.file.starts_with("MANIFEST-")),
        "{:?}",
        r.damage
    );
}

#[test]
fn flipped_byte_in_a_synced_log_record_is_damage() {
    let dir = tempfile::tempdir().expect("tempdir");
    populate(dir.path());
    let segment = files(dir.path(), ".log").pop().expect("a log segment");
    // The first record of the newest segment: records after it show it
    // was synced, so it cannot be a torn write.
    flip(&segment, 30);
    let r = run(dir.path());
    let name = segment.file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        r.damage
            .iter()
            .any(|d| d.file == name && d.detail.contains("byte 0")),
        "{:?} / {:?}",
        r.damage,
        r.notes
    );
}

#[test]
fn torn_tail_of_the_newest_segment_is_a_note() {
    let dir = tempfile::tempdir().expect("tempdir");
    populate(dir.path());
    let segment = files(dir.path(), ".log").pop().expect("a log segment");
    let mut data = std::fs::read(&segment).expect("read");
    // Half a record after the last one, as a crash mid-write leaves.
    data.extend_from_slice(&[0x5a; 17]);
    std::fs::write(&segment, data).expect("write");
    let r = run(dir.path());
    assert!(r.is_clean(), "{:?}", r.damage);
    assert!(
        r.notes.iter().any(|n| n.contains("torn tail")),
        "{:?}",
        r.notes
    );
}
