//! `strata check` on a stopped server's data directory: exit 0 and "no
//! damage" on what the database wrote; non-zero, naming the file, after a
//! byte of a table is flipped; a refusal while the directory is in use.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use strata_table::mutation::Mutation;
use strata_table::schema::Family;
use strata_table::{Database, DatabaseOptions};

const TABLE: &str = "projects/p/instances/i/tables/t";

fn populate(dir: &Path) {
    let db = Database::open(dir, DatabaseOptions::default()).expect("open");
    let families = BTreeMap::from([("cf".to_string(), Family::default())]);
    db.create_table(TABLE, families, false).expect("create");
    for i in 0..500 {
        let m = Mutation::SetCell {
            family: "cf".into(),
            qualifier: b"q".to_vec(),
            timestamp_micros: 1000,
            value: vec![b'v'; 200],
        };
        db.mutate_row(TABLE, format!("row{i:05}").as_bytes(), &[m])
            .expect("write");
    }
    db.engine().flush_all().expect("flush");
    db.close().expect("close");
}

fn check(dir: &Path) -> std::process::Output {
    common::strata()
        .args(["check", "--data-dir"])
        .arg(dir)
        .output()
        .expect("run strata check")
}

#[test]
fn check_passes_clean_data_and_names_a_damaged_table() {
    let dir = tempfile::tempdir().expect("tempdir");
    populate(dir.path());
    let out = check(dir.path());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(stdout.contains("no damage"), "{stdout}");

    let table = std::fs::read_dir(dir.path())
        .expect("read dir")
        .map(|e| e.expect("entry").path())
        .find(|p| p.extension().is_some_and(|e| e == "sst"))
        .expect("a table file");
    let mut data = std::fs::read(&table).expect("read");
    data[64] ^= 1;
    std::fs::write(&table, data).expect("write");
    let out = check(dir.path());
    let stdout = String::from_utf8_lossy(&out.stdout);
    let name = table.file_name().unwrap().to_string_lossy().into_owned();
    assert!(!out.status.success(), "{out:?}");
    assert!(stdout.contains(&format!("DAMAGED {name}")), "{stdout}");
}

#[test]
fn check_refuses_a_directory_in_use() {
    let dir = tempfile::tempdir().expect("tempdir");
    let _db = Database::open(dir.path(), DatabaseOptions::default()).expect("open");
    let out = check(dir.path());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{out:?}");
    assert!(stderr.contains("is a server running on it?"), "{stderr}");
}

#[test]
fn dump_prints_a_table_and_the_manifest_and_refuses_other_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    populate(dir.path());
    let paths: Vec<_> = std::fs::read_dir(dir.path())
        .expect("read dir")
        .map(|e| e.expect("entry").path())
        .collect();
    // The largest table: the rows' (the catalog has a small one).
    let table = paths
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "sst"))
        .max_by_key(|p| std::fs::metadata(p).map_or(0, |m| m.len()))
        .expect("a table");
    let out = common::strata()
        .arg("dump")
        .arg(table)
        .output()
        .expect("dump");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(
        stdout.contains("entries:") && stdout.contains("row00042"),
        "{stdout}"
    );
    let manifest = paths
        .iter()
        .find(|p| p.to_string_lossy().contains("MANIFEST-"))
        .expect("a manifest");
    let out = common::strata()
        .arg("dump")
        .arg(manifest)
        .output()
        .expect("dump");
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("edit 0:"));
    let out = common::strata()
        .arg("dump")
        .arg(dir.path().join("CURRENT"))
        .output()
        .expect("dump");
    assert!(!out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not a file of the engine"));
}
