//! Master election and writes fenced by the master's term.

use crate::within;
use std::time::Duration;
use strata_cluster::testkit::EtcdServer;
use strata_cluster::{
    campaign, master, Error, Etcd, Leadership, LeadershipLoss, Lease, LeaseLoss, Op, Txn,
};
use tokio::task::JoinHandle;

const TTL: Duration = Duration::from_secs(5);
const WAIT: Duration = Duration::from_secs(10);

fn candidate(etcd: &Etcd, id: &'static str, lease: &Lease) -> JoinHandle<Leadership> {
    let (etcd, lease) = (etcd.clone(), lease.clone());
    tokio::spawn(async move { campaign(&etcd, "c", id, &lease).await.unwrap() })
}

#[tokio::test]
async fn one_master_at_a_time_and_the_deposed_one_is_fenced() {
    let server = EtcdServer::start().await;
    let etcd = server.connect().await;
    let lease_a = Lease::grant(&etcd, TTL).await.unwrap();
    let lease_b = Lease::grant(&etcd, TTL).await.unwrap();
    let mut a = candidate(&etcd, "a", &lease_a);
    let mut b = candidate(&etcd, "b", &lease_b);

    // Exactly one wins; the other keeps waiting.
    let first_done = within(WAIT, "a first winner", async {
        tokio::select! {
            w = &mut a => (w.unwrap(), true),
            w = &mut b => (w.unwrap(), false),
        }
    });
    let (first, a_won) = first_done.await;
    let (mut loser, winner_lease, loser_lease, loser_id) = if a_won {
        (b, lease_a, lease_b, "b")
    } else {
        (a, lease_b, lease_a, "a")
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!loser.is_finished(), "two masters at once");
    let info = master(&etcd, "c").await.unwrap().expect("a master");
    assert_eq!(
        (info.id.as_str(), info.term),
        (first.candidate(), first.term())
    );
    assert_eq!(info.lease, winner_lease.id().0);

    // The master writes under its term.
    let write = |v: &'static [u8]| Txn::new().and_then([Op::put(b"/c/tablets/t1", v)]);
    assert!(first.txn(write(b"by-first")).await.unwrap().succeeded);

    // The winner's lease ends in etcd (revoked by someone else: what a
    // pause past its TTL looks like) and the loser takes over.
    etcd.lease_revoke(winner_lease.id()).await.unwrap();
    let second = within(WAIT, "the loser takes over", &mut loser)
        .await
        .unwrap();
    assert_eq!(second.candidate(), loser_id);
    assert!(second.term() > first.term(), "terms grow");
    assert!(second.txn(write(b"by-second")).await.unwrap().succeeded);

    // The deposed master's writes fail in etcd itself, whatever it
    // believes; the raw guarded txn too.
    match first.txn(write(b"by-deposed")).await {
        Err(Error::NotLeader { term, current }) => {
            assert_eq!((term, current), (first.term(), second.term()));
        }
        other => panic!("expected NotLeader, got {other:?}"),
    }
    assert!(
        !etcd
            .txn(first.guard(write(b"raw")))
            .await
            .unwrap()
            .succeeded
    );
    assert_eq!(
        etcd.get(b"/c/tablets/t1").await.unwrap().unwrap().value,
        b"by-second"
    );

    // And it learns it lost the role.
    let why = within(WAIT, "deposed master notices", first.lost()).await;
    assert!(
        matches!(
            why,
            LeadershipLoss::Lease(LeaseLoss::Expired) | LeadershipLoss::KeyGone
        ),
        "{why:?}"
    );
    assert!(!first.is_leader());
    assert!(second.is_leader());
    assert!(loser_lease.is_alive());
}

#[tokio::test]
async fn resign_hands_over_and_campaigns_are_idempotent() {
    let server = EtcdServer::start().await;
    let etcd = server.connect().await;
    let lease_a = Lease::grant(&etcd, TTL).await.unwrap();
    let lease_b = Lease::grant(&etcd, TTL).await.unwrap();
    let a = campaign(&etcd, "c", "a", &lease_a).await.unwrap();
    // The same lease campaigning again (a retry) resumes the same term.
    let again = campaign(&etcd, "c", "a", &lease_a).await.unwrap();
    assert_eq!(again.term(), a.term());
    drop(again);

    let b = candidate(&etcd, "b", &lease_b);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!b.is_finished());
    let term_a = a.term();
    a.resign().await.unwrap();
    let b = within(WAIT, "b takes over after a resigns", b)
        .await
        .unwrap();
    assert!(b.term() > term_a);
    assert!(lease_a.is_alive(), "resigning keeps the lease");

    // A master whose own lease is lost notices.
    lease_b.stop_renewing();
    let why = within(
        TTL + Duration::from_secs(3),
        "lease loss ends leadership",
        b.lost(),
    )
    .await;
    // Normally the lease's deadline; the key's deletion if etcd was first.
    assert!(
        matches!(
            why,
            LeadershipLoss::Lease(LeaseLoss::Deadline) | LeadershipLoss::KeyGone
        ),
        "{why:?}"
    );
    // A lost lease cannot campaign.
    match campaign(&etcd, "c", "b", &lease_b).await {
        Err(Error::LeaseLost { .. }) => {}
        other => panic!("expected LeaseLost, got {:?}", other.map(|l| l.term())),
    }
}
