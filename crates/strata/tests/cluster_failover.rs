//! A three-server cluster, real processes on loopback, a real etcd, the
//! store a shared `file://` directory: clients write through one server
//! (recording every acknowledgement) while another is killed with
//! SIGKILL, the master is killed, a server is frozen with SIGSTOP past its
//! lease, or every server is restarted in turn. Every acknowledged write
//! must read back through any server. The time until a killed server's
//! tablets serve again is printed and bounded generously (the target is a
//! benchmark figure, docs/benchmarks.md).

mod common;
#[path = "common/cluster.rs"]
mod harness;

use common::connect;
use googleapis_tonic_google_bigtable_v2::google::bigtable::v2;
use harness::{
    check, create_table, Cluster, Load, ONE_AT_A_TIME, SERVED_AGAIN_MAX, TABLE, WRITERS,
};
use std::collections::BTreeSet;
use std::time::{Duration, Instant};
use v2::bigtable_client::BigtableClient;

/// The time until a read of every tablet through `front` succeeds.
async fn time_until_every_tablet_reads(front: u16) -> Duration {
    let started = Instant::now();
    let ch = connect(front).await;
    let mut client = BigtableClient::new(ch);
    for w in 0..WRITERS {
        loop {
            let req = v2::ReadRowsRequest {
                table_name: TABLE.into(),
                rows: Some(v2::RowSet {
                    row_keys: vec![format!("w{w}-000000").into_bytes()],
                    row_ranges: vec![],
                }),
                ..Default::default()
            };
            let ok = match client.read_rows(req).await {
                Ok(s) => {
                    let mut s = s.into_inner();
                    let mut ok = true;
                    while let Some(m) = s.message().await.transpose() {
                        ok &= m.is_ok();
                    }
                    ok
                }
                Err(_) => false,
            };
            if ok {
                break;
            }
            assert!(
                started.elapsed() < SERVED_AGAIN_MAX,
                "tablet w{w} never served again"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    started.elapsed()
}

/// A node other than `not` that serves at least one tablet.
async fn owner_other_than(cluster: &Cluster, not: &BTreeSet<usize>) -> usize {
    let owners = cluster.owners().await;
    *owners
        .keys()
        .find(|i| !not.contains(i))
        .expect("another node serves tablets")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_killed_server_and_a_killed_master_lose_no_acknowledged_write() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let mut cluster = Cluster::start(3).await;
    let front = 0;
    create_table(connect(cluster.nodes[front].port).await).await;
    cluster.settled().await;
    cluster.balanced().await;
    let load = Load::start(connect(cluster.nodes[front].port).await);
    load.progress(200, &cluster).await;

    // A server with tablets, not the one the clients talk to.
    let victim = owner_other_than(&cluster, &BTreeSet::from([front])).await;
    cluster.nodes[victim].kill9();
    let served = time_until_every_tablet_reads(cluster.nodes[front].port).await;
    println!("kill -9 of a tablet server: every tablet served again after {served:?}");
    load.progress(200, &cluster).await;

    // Now the master (restarting the victim first, so two stay), with
    // clients on a server that is not the master (a client of a killed
    // server sees its own connection fail, not a failover).
    cluster.nodes[victim].start(cluster.etcd.endpoint(), &cluster.store.clone());
    cluster.settled().await;
    let mut acked = load.finish().await;
    let master = cluster.master().await;
    let front2 = if master == front {
        (front + 1) % 3
    } else {
        front
    };
    let load2 = Load::start(connect(cluster.nodes[front2].port).await);
    load2.progress(100, &cluster).await;
    cluster.nodes[master].kill9();
    let served = time_until_every_tablet_reads(cluster.nodes[front2].port).await;
    println!("kill -9 of the master: every tablet served again after {served:?}");
    load2.progress(200, &cluster).await;
    let new_master = cluster.master().await;
    assert_ne!(new_master, master);

    acked.extend(load2.finish().await);
    check(&cluster, &acked).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_frozen_server_past_its_lease_acknowledges_nothing_and_rejoins() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let cluster = Cluster::start(3).await;
    let front = 0;
    create_table(connect(cluster.nodes[front].port).await).await;
    cluster.settled().await;
    cluster.balanced().await;
    let load = Load::start(connect(cluster.nodes[front].port).await);
    load.progress(200, &cluster).await;

    let victim = owner_other_than(&cluster, &BTreeSet::from([front])).await;
    let held_before = cluster.owners().await[&victim];
    let frozen_at = Instant::now();
    cluster.nodes[victim].signal(libc::SIGSTOP);
    // Its tablets move while it is frozen, once its lease runs out. (The
    // reads below touch one row of each writer, which need not be in the
    // frozen server's tablets: they alone do not show the move.)
    while cluster.owners().await.contains_key(&victim) {
        assert!(
            frozen_at.elapsed() < SERVED_AGAIN_MAX,
            "the frozen server's {held_before} tablets were never given to others\n{}",
            cluster.logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    time_until_every_tablet_reads(cluster.nodes[front].port).await;
    let served = frozen_at.elapsed();
    println!("SIGSTOP of a tablet server: every tablet served again after {served:?}");
    load.progress(200, &cluster).await;
    assert!(
        !cluster.owners().await.contains_key(&victim),
        "the frozen server was given tablets while frozen"
    );
    cluster.nodes[victim].signal(libc::SIGCONT);
    // It notices, drops what it held, and joins again.
    let log = cluster.nodes[victim].log.clone();
    let deadline = Instant::now() + SERVED_AGAIN_MAX;
    loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.contains("lost this server's lease")
            && text.matches("joined the cluster as").count() >= 2
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the resumed server did not rejoin\n{}",
            cluster.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    load.progress(200, &cluster).await;
    let acked = load.finish().await;
    check(&cluster, &acked).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rolling_restart_of_every_server_loses_no_acknowledged_write() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let mut cluster = Cluster::start(3).await;
    create_table(connect(cluster.nodes[0].port).await).await;
    cluster.settled().await;
    // Clients on node 2 while 0 and 1 restart, then on node 0.
    let load = Load::start(connect(cluster.nodes[2].port).await);
    load.progress(100, &cluster).await;
    for i in 0..2 {
        cluster.nodes[i].stop();
        cluster.settled().await;
        load.progress(100, &cluster).await;
        cluster.nodes[i].start(cluster.etcd.endpoint(), &cluster.store.clone());
        load.progress(100, &cluster).await;
    }
    let mut acked = load.finish().await;
    let load = Load::start(connect(cluster.nodes[0].port).await);
    load.progress(100, &cluster).await;
    cluster.nodes[2].stop();
    cluster.settled().await;
    load.progress(100, &cluster).await;
    cluster.nodes[2].start(cluster.etcd.endpoint(), &cluster.store.clone());
    load.progress(100, &cluster).await;
    // Writers of the second load reuse row names; keep the later values.
    acked.extend(load.finish().await);
    check(&cluster, &acked).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tablets_moving_under_load_lose_no_acknowledged_write() {
    let _serial = ONE_AT_A_TIME.lock().await;
    // Two servers take the table; a third joins under load and the master
    // moves its share to it, each source flushing and releasing first.
    let mut cluster = Cluster::start(3).await;
    cluster.nodes[2].kill9();
    create_table(connect(cluster.nodes[0].port).await).await;
    cluster.settled().await;
    cluster.balanced().await;
    let load = Load::start(connect(cluster.nodes[0].port).await);
    load.progress(200, &cluster).await;
    cluster.nodes[2].start(cluster.etcd.endpoint(), &cluster.store.clone());
    cluster.balanced().await;
    cluster.settled().await;
    load.progress(200, &cluster).await;
    let released: usize = cluster.nodes[..2]
        .iter()
        .map(|n| {
            std::fs::read_to_string(&n.log)
                .unwrap_or_default()
                .matches("released tablet for its move")
                .count()
        })
        .sum();
    assert!(
        released >= 1,
        "no move went through a release\n{}",
        cluster.logs()
    );
    println!("{released} tablets moved to the new server, each released by its source");
    let acked = load.finish().await;
    check(&cluster, &acked).await;
}
