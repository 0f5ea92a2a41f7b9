//! Kill -9 test: clients write rows and record each acknowledgement; the
//! server process is killed with SIGKILL mid-stream and restarted on the
//! same directory; every acknowledged row must read back with its value.
//! Cycles: STRATA_KILL9_CYCLES (default 3).

mod common;

use common::{connect, free_port};
use googleapis_tonic_google_bigtable_admin_v2::google::bigtable::admin::v2 as admin;
use googleapis_tonic_google_bigtable_v2::google::bigtable::v2;
use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use admin::bigtable_table_admin_client::BigtableTableAdminClient;
use v2::bigtable_client::BigtableClient;

const TABLE: &str = "projects/p/instances/i/tables/kill9";
const WRITERS: usize = 8;
/// The default log segment size: a live segment this long at a kill was
/// zero-filled ahead of use (written with direct I/O on Linux).
const SEGMENT_BYTES: u64 = 64 << 20;

fn start(dir: &std::path::Path, port: u16) -> Child {
    let log = std::fs::File::create(dir.with_extension(format!("{port}.log"))).expect("log");
    Command::new(env!("CARGO_BIN_EXE_strata"))
        .args(["serve", "--data-dir"])
        .arg(dir)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start strata serve")
}

fn set(row: &str, value: &str) -> v2::MutateRowRequest {
    common::set_cell(TABLE, row, value)
}

async fn read_all(ch: tonic::transport::Channel) -> BTreeMap<String, String> {
    common::read_all(ch, TABLE).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledged_writes_survive_kill_9() {
    let cycles: usize = std::env::var("STRATA_KILL9_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("data");
    // Every acknowledged (row -> value); a row's later write overwrites.
    let acked: Arc<Mutex<BTreeMap<String, String>>> = Arc::default();
    // The one write per writer that was in flight at a kill: it may or may
    // not have landed, so its row may hold it instead of the acked value.
    let in_flight: Arc<Mutex<BTreeMap<String, String>>> = Arc::default();
    for cycle in 0..cycles {
        let port = free_port();
        let mut child = start(&dir, port);
        let ch = connect(port).await;
        if cycle == 0 {
            let mut families = BTreeMap::new();
            families.insert("cf".to_string(), admin::ColumnFamily::default());
            BigtableTableAdminClient::new(ch.clone())
                .create_table(admin::CreateTableRequest {
                    parent: "projects/p/instances/i".into(),
                    table_id: "kill9".into(),
                    table: Some(admin::Table {
                        column_families: families,
                        ..Default::default()
                    }),
                    ..Default::default()
                })
                .await
                .expect("create table");
        } else {
            // Everything acknowledged before the last kill is there.
            let got = read_all(ch.clone()).await;
            check(&got, &acked, &in_flight, cycle);
        }
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut tasks = Vec::new();
        for w in 0..WRITERS {
            let (ch, acked, stop) = (ch.clone(), acked.clone(), stop.clone());
            let in_flight = in_flight.clone();
            tasks.push(tokio::spawn(async move {
                let mut client = BigtableClient::new(ch);
                let mut i = 0u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    // Rows are rewritten across cycles, so old values must
                    // not come back either.
                    let row = format!("w{w}-r{:05}", i % 2000);
                    // Padded (1 KiB of spaces) so the log soon moves to zero-filled segments,
                    // which are written with direct I/O.
                    let value = format!("c{cycle}-i{i}-{:1024}", "");
                    match client.mutate_row(set(&row, &value)).await {
                        Ok(_) => {
                            in_flight.lock().expect("lock").remove(&row);
                            acked.lock().expect("lock").insert(row, value);
                        }
                        // The kill: an unacknowledged write may or may not land.
                        Err(_) => {
                            in_flight.lock().expect("lock").insert(row, value);
                            break;
                        }
                    }
                    i += 1;
                }
            }));
        }
        tokio::time::sleep(Duration::from_millis(700 + 300 * cycle as u64)).await;
        child.kill().expect("kill -9");
        child.wait().expect("reap");
        let preallocated = std::fs::read_dir(&dir)
            .expect("list the data directory")
            .filter_map(|e| e.ok())
            .any(|e| {
                e.file_name().to_string_lossy().ends_with(".log")
                    && e.metadata().is_ok_and(|m| m.len() >= SEGMENT_BYTES)
            });
        println!("kill {cycle}: the live log segment was zero-filled: {preallocated}");
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for t in tasks {
            t.await.expect("writer");
        }
        // A write acknowledged just as the process died and then retried by
        // nobody is still in `acked`: the check above covers it.
    }
    let port = free_port();
    let mut child = start(&dir, port);
    let got = read_all(connect(port).await).await;
    let n = acked.lock().expect("lock").len();
    assert!(n > 100, "the writers made progress: {n} rows");
    check(&got, &acked, &in_flight, cycles);
    child.kill().expect("kill");
    child.wait().expect("reap");
}

fn check(
    got: &BTreeMap<String, String>,
    acked: &Mutex<BTreeMap<String, String>>,
    in_flight: &Mutex<BTreeMap<String, String>>,
    cycle: usize,
) {
    let (acked, in_flight) = (acked.lock().expect("lock"), in_flight.lock().expect("lock"));
    for (row, value) in acked.iter() {
        let v = got.get(row);
        let ok = v == Some(value) || (v.is_some() && v == in_flight.get(row));
        assert!(
            ok,
            "after kill {cycle}: acknowledged {row}={value} reads back as {v:?}"
        );
    }
}
