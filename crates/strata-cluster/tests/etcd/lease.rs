//! Leases kept alive, and every way of losing one.

use crate::{eventually, within};
use std::time::{Duration, Instant};
use strata_cluster::testkit::EtcdServer;
use strata_cluster::{Lease, LeaseLoss, LeaseStatus};

const TTL: Duration = Duration::from_secs(2);

#[tokio::test]
async fn keep_alive_holds_a_lease_past_its_ttl() {
    let server = EtcdServer::start().await;
    let etcd = server.connect().await;
    let lease = Lease::grant(&etcd, TTL).await.unwrap();
    assert_eq!(lease.ttl(), TTL);
    etcd.put(b"/l/k", b"v", Some(lease.id())).await.unwrap();
    tokio::time::sleep(TTL * 3).await;
    assert_eq!(lease.status(), LeaseStatus::Alive);
    assert!(
        etcd.get(b"/l/k").await.unwrap().is_some(),
        "the key outlives 3 TTLs"
    );
    let left = etcd
        .lease_time_to_live(lease.id())
        .await
        .unwrap()
        .expect("lease exists");
    assert!(left <= TTL, "{left:?}");

    // Revoking through the handle: reported at once, keys gone at once.
    lease.revoke().await.unwrap();
    assert_eq!(lease.status(), LeaseStatus::Lost(LeaseLoss::Revoked));
    assert!(etcd.get(b"/l/k").await.unwrap().is_none());
    assert_eq!(etcd.lease_time_to_live(lease.id()).await.unwrap(), None);
}

#[tokio::test]
async fn stopped_keep_alive_reports_loss_and_etcd_deletes_the_key() {
    let server = EtcdServer::start().await;
    let etcd = server.connect().await;
    let lease = Lease::grant(&etcd, TTL).await.unwrap();
    etcd.put(b"/l/k", b"v", Some(lease.id())).await.unwrap();
    assert!(lease.held_now());
    let stopped = Instant::now();
    lease.stop_renewing();

    // etcd deletes the key after the TTL; by then the holder has been told
    // (its local deadline runs from the send time of its last renewal, and
    // etcd's from when it handled it: later).
    eventually(
        TTL + Duration::from_secs(5),
        "etcd deletes the key",
        || async { etcd.get(b"/l/k").await.unwrap().is_none().then_some(()) },
    )
    .await;
    let deleted = stopped.elapsed();
    assert_eq!(
        lease.status(),
        LeaseStatus::Lost(LeaseLoss::Deadline),
        "told before etcd deleted the key"
    );
    let why = within(Duration::from_secs(1), "loss reported", lease.lost()).await;
    assert_eq!(why, LeaseLoss::Deadline);
    println!(
        "key deleted by etcd {deleted:?} after the renewals stopped, the loss reported before"
    );
    assert!(!lease.is_alive());
    assert!(!lease.held_now());
}

/// `held_now` reads the deadline itself: a thread that never yields to the
/// keeper (a process paused, then resumed) still sees the lease end.
#[test]
fn held_now_turns_false_at_the_deadline_without_the_keeper() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let server = rt.block_on(EtcdServer::start());
    let lease = rt.block_on(async {
        let etcd = server.connect().await;
        Lease::grant(&etcd, TTL).await.unwrap()
    });
    assert!(lease.held_now());
    // The runtime does not run while this thread sleeps: no renewal, no
    // report of the loss.
    std::thread::sleep(TTL + Duration::from_millis(200));
    assert!(lease.is_alive(), "the keeper has not run");
    assert!(!lease.held_now());
}

#[tokio::test]
async fn lease_revoked_elsewhere_is_reported_expired() {
    let server = EtcdServer::start().await;
    let etcd = server.connect().await;
    let lease = Lease::grant(&etcd, Duration::from_secs(6)).await.unwrap();
    let mut status = lease.subscribe();
    // Another client (an operator, or etcd expiring it while we were
    // paused) ends the lease: the next renewal (within TTL/3) learns it.
    let other = server.connect().await;
    other.lease_revoke(lease.id()).await.unwrap();
    within(Duration::from_secs(15), "loss reported", status.changed())
        .await
        .unwrap();
    assert_eq!(*status.borrow(), LeaseStatus::Lost(LeaseLoss::Expired));
}

#[tokio::test]
async fn unreachable_etcd_loses_the_lease_at_its_deadline() {
    let server = EtcdServer::start().await;
    let etcd = server.connect().await;
    let lease = Lease::grant(&etcd, TTL).await.unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(lease.is_alive());

    // etcd frozen: renewals hang; the lease is lost when its TTL runs out
    // (within 4 s), not when the RPC timeout (5 s) would end a renewal.
    server.pause();
    let paused = Instant::now();
    let why = within(TTL + Duration::from_secs(2), "loss reported", lease.lost()).await;
    let after = paused.elapsed();
    server.resume();
    assert_eq!(why, LeaseLoss::Deadline);
    println!("loss reported {after:?} after etcd froze");

    // Final: etcd answering again does not revive it.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(lease.status(), LeaseStatus::Lost(LeaseLoss::Deadline));
}
