//! `strata serve --slow-request-ms`: a request that takes longer is a
//! warning naming the RPC, its status, table, rows and time, and `strata
//! status` lists it among the recent slow requests, with the table.

mod common;

use std::collections::BTreeMap;
use std::io::Read;
use std::process::Stdio;
use std::time::{Duration, Instant};

use strata_table::mutation::Mutation;
use strata_table::schema::Family;
use strata_table::{Database, DatabaseOptions};

const TABLE: &str = "projects/p/instances/i/tables/slow";
const ROWS: usize = 20_000;

#[tokio::test]
async fn a_slow_read_is_logged_and_listed_by_strata_status() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let db = Database::open(dir.path(), DatabaseOptions::default()).expect("open");
        let families = BTreeMap::from([("cf".to_string(), Family::default())]);
        db.create_table(TABLE, families, false).expect("create");
        let rows: Vec<(Vec<u8>, Vec<Mutation>)> = (0..ROWS)
            .map(|i| {
                let m = Mutation::SetCell {
                    family: "cf".into(),
                    qualifier: b"v".to_vec(),
                    timestamp_micros: 1000,
                    value: vec![b'x'; 100],
                };
                (format!("row{i:06}").into_bytes(), vec![m])
            })
            .collect();
        for r in db.mutate_rows(TABLE, &rows).expect("write") {
            r.expect("row written");
        }
        db.close().expect("close");
    }
    let port = common::free_port();
    let http = format!("127.0.0.1:{}", common::free_port());
    let mut server = common::Serve(
        common::strata()
            .args(["serve", "--data-dir"])
            .arg(dir.path())
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(["--http-listen", &http, "--slow-request-ms", "1"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start strata serve"),
    );
    let ch = common::connect(port).await;
    // A whole-table read of 20,000 rows takes well over a millisecond.
    assert_eq!(common::read_all(ch, TABLE).await.len(), ROWS);
    let mut stderr = server.0.stderr.take().expect("stderr");
    let deadline = Instant::now() + Duration::from_secs(30);
    let log = tokio::task::spawn_blocking(move || {
        let mut log = String::new();
        let mut buf = [0u8; 4096];
        while Instant::now() < deadline {
            let n = stderr.read(&mut buf).expect("read stderr");
            if n == 0 {
                break;
            }
            log.push_str(&String::from_utf8_lossy(&buf[..n]));
            if log.contains("ReadRows") && log[log.find("ReadRows").unwrap()..].contains('\n') {
                break;
            }
        }
        log
    })
    .await
    .expect("reader");
    let line = log
        .lines()
        .find(|l| l.contains("slow request") && l.contains("ReadRows"))
        .unwrap_or_else(|| panic!("no slow ReadRows logged:\n{log}"));
    assert!(line.contains(&format!("table={TABLE}")), "{line}");
    assert!(line.contains(&format!("rows={ROWS}")), "{line}");
    assert!(line.contains("code=OK"), "{line}");

    let out = common::strata()
        .args(["status", "--http", &http])
        .output()
        .expect("run strata status");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(text.contains(": serving"), "{text}");
    let slow = text
        .lines()
        .find(|l| l.contains("Bigtable/ReadRows OK"))
        .unwrap_or_else(|| panic!("no slow ReadRows listed:\n{text}"));
    assert!(slow.contains(&format!("table {TABLE}")), "{slow}");
    assert!(slow.contains(&format!("rows {ROWS}")), "{slow}");
    assert!(
        text.lines()
            .any(|l| l.trim_start().starts_with(TABLE) && l.contains("rows read 20000")),
        "{text}"
    );
    let out = common::strata()
        .args(["status", "--json", "--http", &http])
        .output()
        .expect("run strata status --json");
    let json = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(
        json.contains("\"slow_requests\"") && json.contains("\"engine\""),
        "{json}"
    );

    // No server there: a clear error, not a hang.
    let out = common::strata()
        .args([
            "status",
            "--http",
            &format!("127.0.0.1:{}", common::free_port()),
        ])
        .output()
        .expect("run strata status");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("is a server running"),
        "{out:?}"
    );
}
