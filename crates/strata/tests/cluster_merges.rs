//! Tablets of a three-server cluster merging under load: real processes,
//! a real etcd, a shared `file://` store. The table starts with 3 tablets
//! spread over the servers; all are far below the merge size, so the
//! master moves neighbours together and merges them, pair by pair, until
//! one tablet is left, while writers put rows into every one of them
//! through one server. Every acknowledged write must read back through
//! every server, clients must see nothing but UNAVAILABLE, no merge may
//! be abandoned, and reads must see the table whole and in order.

mod common;
#[path = "common/cluster.rs"]
mod harness;

use harness::{
    check, create_table_split_at, row_keys, Cluster, Load, ONE_AT_A_TIME, SERVED_AGAIN_MAX, TABLE,
};
use std::time::Instant;
use strata_cluster::tablet_store::load as load_map;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tablets_merge_under_load_and_lose_no_acknowledged_write() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let cluster = Cluster::start_with(
        3,
        &[
            "--tablet-merge-size",
            "8MiB",
            "--tablet-merge-delay-secs",
            "1",
        ],
    )
    .await;
    let front = 0;
    // Writers put rows w0-… to w5-…: every tablet is written.
    create_table_split_at(
        common::connect(cluster.nodes[front].port).await,
        &["w2", "w4"],
    )
    .await;
    cluster.settled().await;
    let load = Load::start(common::connect(cluster.nodes[front].port).await);
    let etcd = cluster.etcd.connect().await;
    // Servers report their tablets' sizes every 10 s; each merge waits
    // for the merged tablet's first report.
    let deadline = Instant::now() + 8 * SERVED_AGAIN_MAX;
    loop {
        let (map, _) = load_map(&etcd, "strata").await.expect("load map");
        map.check().expect("the map covers the table");
        if map.tablets(TABLE).count() == 1 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "still {} tablets\n{}",
            map.tablets(TABLE).count(),
            cluster.logs()
        );
        load.progress(50, &cluster).await;
    }
    load.progress(200, &cluster).await;
    let acked = load.finish().await;
    cluster.settled().await;

    // Every acknowledged write, through every server.
    check(&cluster, &acked).await;
    // The merged tablet holds each row once, in order both ways.
    let port = cluster.nodes[1].port;
    let forward = row_keys(port, false, 0).await;
    assert!(
        forward.windows(2).all(|w| w[0] < w[1]),
        "rows out of order or doubled"
    );
    assert_eq!(forward.len(), acked.len());
    let mut backward = row_keys(port, true, 0).await;
    backward.reverse();
    assert_eq!(backward, forward);

    let logs: Vec<String> = cluster
        .nodes
        .iter()
        .map(|n| std::fs::read_to_string(&n.log).unwrap_or_default())
        .collect();
    let merges = logs
        .iter()
        .map(|l| l.matches("merge done in").count())
        .sum::<usize>();
    assert_eq!(merges, 2, "{}", cluster.logs());
    assert!(
        !logs.iter().any(|l| l.contains("merge not done")
            || l.contains("merge abandoned")
            || l.contains("abandoned the merge")),
        "{}",
        cluster.logs()
    );
    let closed: Vec<&str> = logs
        .iter()
        .flat_map(|l| l.lines())
        .filter(|l| l.contains("merge done in"))
        .filter_map(|l| l.split("unavailable for ").nth(1)?.split(' ').next())
        .collect();
    println!(
        "{} rows, {merges} merges; the tablets of each were closed for {closed:?}",
        acked.len()
    );
}
