//! Tablets of a three-server cluster splitting under load: real
//! processes, a real etcd, a shared `file://` store, a split size of
//! 256 KiB. Writers put rows through one server while the tablets they
//! fill split (and the master spreads the children over the servers).
//! Every acknowledged write must read back through every server, clients
//! must see nothing but UNAVAILABLE, and reads that span tablets, reversed
//! reads and SampleRowKeys must see the table whole and in order.

mod common;
#[path = "common/cluster.rs"]
mod harness;

use common::connect;
use googleapis_tonic_google_bigtable_v2::google::bigtable::v2;
use harness::{
    check, create_table, row_keys, Cluster, Load, ONE_AT_A_TIME, SERVED_AGAIN_MAX, TABLE,
};
use std::time::Instant;
use strata_cluster::tablet_store::load as load_map;
use v2::bigtable_client::BigtableClient;

/// The table starts with 6 tablets; wait for this many.
const TABLETS_WANTED: usize = 14;
const VALUE_BYTES: usize = 1024;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tablets_split_under_load_and_lose_no_acknowledged_write() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let cluster = Cluster::start_with(3, &["--tablet-split-size", "256KiB"]).await;
    let front = 0;
    create_table(connect(cluster.nodes[front].port).await).await;
    cluster.settled().await;
    let load = Load::start_sized(connect(cluster.nodes[front].port).await, VALUE_BYTES);
    let etcd = cluster.etcd.connect().await;
    let deadline = Instant::now() + 4 * SERVED_AGAIN_MAX;
    loop {
        let (map, _) = load_map(&etcd, "strata").await.expect("load map");
        map.check().expect("the map covers the table");
        if map.tablets(TABLE).count() >= TABLETS_WANTED {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "only {} tablets\n{}",
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
    // The children of each split opened on their copies and dropped the
    // other half: no row twice, in order both ways, a limit across
    // tablets honoured.
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
    let limited = row_keys(port, false, 1000).await;
    assert_eq!(limited.as_slice(), &forward[..1000]);
    // SampleRowKeys: increasing keys and offsets, ending with the table's
    // end and size (on disk: the padded values compress well).
    let mut client = BigtableClient::new(connect(port).await);
    let mut stream = client
        .sample_row_keys(v2::SampleRowKeysRequest {
            table_name: TABLE.into(),
            ..Default::default()
        })
        .await
        .expect("sample_row_keys")
        .into_inner();
    let mut samples = Vec::new();
    while let Some(s) = stream.message().await.expect("samples") {
        samples.push((s.row_key, s.offset_bytes));
    }
    let (last, rest) = samples.split_last().expect("samples");
    assert!(last.0.is_empty() && last.1 > 0, "{last:?}");
    assert!(rest.windows(2).all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1));
    assert!(rest.len() >= TABLETS_WANTED - 1, "{} samples", rest.len());

    let logs: Vec<String> = cluster
        .nodes
        .iter()
        .map(|n| std::fs::read_to_string(&n.log).unwrap_or_default())
        .collect();
    let splits = logs
        .iter()
        .map(|l| l.matches("split done in").count())
        .sum::<usize>();
    assert!(
        splits >= TABLETS_WANTED - 6,
        "{splits} splits\n{}",
        cluster.logs()
    );
    // Nothing here makes a split fail: none is abandoned (a split the
    // owner misjudged as abandoned would serve its parent again).
    assert!(
        !logs
            .iter()
            .any(|l| l.contains("abandoned the split") || l.contains("split not done")),
        "{}",
        cluster.logs()
    );
    // How long each split's parent was closed before the master's step.
    let closed: Vec<&str> = logs
        .iter()
        .flat_map(|l| l.lines())
        .filter_map(|l| l.split("unavailable for ").nth(1)?.split(' ').next())
        .collect();
    println!(
        "{} rows, {splits} splits, {} tablets, {} samples; each parent closed for {closed:?}",
        acked.len(),
        load_map(&etcd, "strata")
            .await
            .expect("map")
            .0
            .tablets(TABLE)
            .count(),
        samples.len()
    );
}
