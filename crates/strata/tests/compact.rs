//! `strata compact TABLE` against a running server: three flushed files
//! become one, the rows stay; an unknown table is NOT_FOUND.

mod common;

use std::collections::BTreeMap;
use std::process::Stdio;

use strata_table::mutation::Mutation;
use strata_table::schema::Family;
use strata_table::{Database, DatabaseOptions};

const TABLE: &str = "projects/p/instances/i/tables/c";

#[tokio::test]
async fn compact_merges_a_tables_files_into_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let db = Database::open(dir.path(), DatabaseOptions::default()).expect("open");
        let families = BTreeMap::from([("cf".to_string(), Family::default())]);
        db.create_table(TABLE, families, false).expect("create");
        for flush in 0..3 {
            for i in 0..200 {
                let m = Mutation::SetCell {
                    family: "cf".into(),
                    qualifier: b"v".to_vec(),
                    timestamp_micros: 1000,
                    value: format!("{flush}").into_bytes(),
                };
                db.mutate_row(TABLE, format!("row{i:04}").as_bytes(), &[m])
                    .expect("write");
            }
            db.engine().flush_all().expect("flush");
        }
        db.close().expect("close");
    }
    let port = common::free_port();
    let _server = common::serve(dir.path(), &format!("127.0.0.1:{port}"), Stdio::null());
    let ch = common::connect(port).await;
    let server = format!("127.0.0.1:{port}");
    let out = common::strata()
        .args(["compact", TABLE, "--server", &server])
        .output()
        .expect("strata compact");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(stdout.contains("in 3 files before"), "{stdout}");
    assert!(stdout.contains("in 1 file after"), "{stdout}");
    let rows = common::read_all(ch, TABLE).await;
    assert_eq!(rows.len(), 200);
    assert!(rows.values().all(|v| v == "2"), "the newest version wins");

    let out = common::strata()
        .args(["compact", "nosuch", "--server", &server])
        .output()
        .expect("strata compact");
    assert!(!out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("NotFound"),
        "{out:?}"
    );
}
