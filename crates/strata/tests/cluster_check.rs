//! `strata check --storage URL --cluster` on a stopped cluster's store:
//! every tablet's prefix is checked as an engine of its own; clean after a
//! clean stop, and a flipped byte in one tablet's table is damage naming
//! that tablet and file, with a non-zero exit.

mod common;
#[path = "common/cluster.rs"]
mod harness;

use common::connect;
use googleapis_tonic_google_bigtable_v2::google::bigtable::v2;
use harness::{create_table_split_at, set, Cluster, ONE_AT_A_TIME};

use v2::bigtable_client::BigtableClient;

fn check(store: &std::path::Path) -> std::process::Output {
    common::strata()
        .args(["check", "--cluster", "--storage"])
        .arg(format!("file://{}", store.display()))
        .output()
        .expect("run strata check")
}

/// The files of the tablets' tables in the store.
fn tables(store: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for tablet in std::fs::read_dir(store.join("tablets")).expect("tablets") {
        let dir = tablet.expect("entry").path().join("sst");
        if let Ok(files) = std::fs::read_dir(&dir) {
            out.extend(files.map(|f| f.expect("entry").path()));
        }
    }
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn check_of_a_cluster_store_covers_every_tablet() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let mut cluster = Cluster::start(2).await;
    let ch = connect(cluster.nodes[0].port).await;
    create_table_split_at(ch.clone(), &["m"]).await;
    cluster.settled().await;
    let mut client = BigtableClient::new(ch);
    for row in ["a", "b", "x", "y"] {
        client.mutate_row(set(row, "v")).await.expect("write");
    }
    // A clean stop closes every tablet flushed: tables in the store.
    for n in &mut cluster.nodes {
        n.stop();
    }
    let store = cluster.store.clone();
    let out = tokio::task::spawn_blocking(move || check(&store))
        .await
        .expect("check");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(stdout.contains("2 tablets checked; no damage"), "{stdout}");

    let files = tables(&cluster.store);
    let victim = files
        .first()
        .expect("a tablet's table in the store")
        .clone();
    let mut data = std::fs::read(&victim).expect("read");
    let at = data.len() / 3;
    data[at] ^= 0x40;
    std::fs::write(&victim, data).expect("write");
    let store = cluster.store.clone();
    let out = tokio::task::spawn_blocking(move || check(&store))
        .await
        .expect("check");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "damage passed: {stdout}");
    let tablet_dir = victim
        .parent()
        .and_then(|p| p.parent())
        .and_then(|p| p.file_name())
        .expect("tablet dir")
        .to_string_lossy()
        .into_owned();
    let id: u64 = tablet_dir.parse().expect("tablet id");
    let line = stdout
        .lines()
        .find(|l| l.contains("DAMAGED"))
        .unwrap_or_else(|| panic!("no damage reported:\n{stdout}"));
    assert!(line.starts_with(&format!("tablet {id}: ")), "{line}");
}
