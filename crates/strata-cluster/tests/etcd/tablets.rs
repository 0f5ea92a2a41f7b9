//! The tablet map in etcd: a table's tablets created by the master,
//! assigned by its policy, followed by a watch, and every write fenced by
//! the master's term and by what it replaces.

use crate::{eventually, within};
use std::collections::BTreeSet;
use std::time::Duration;
use strata_cluster::assign::assign_orphans;
use strata_cluster::schema_store::create_table;
use strata_cluster::tablet_map::{TabletMap, TabletState};
use strata_cluster::tablet_store::{load, reassign, TabletFollower};
use strata_cluster::testkit::EtcdServer;
use strata_cluster::{campaign, Error, Lease};

const TTL: Duration = Duration::from_secs(5);
const WAIT: Duration = Duration::from_secs(10);

#[tokio::test]
async fn the_master_creates_and_assigns_tablets_and_followers_see_it() {
    let server = EtcdServer::start().await;
    let etcd = server.connect().await;
    let lease = Lease::grant(&etcd, TTL).await.unwrap();
    let master = campaign(&etcd, "c", "m", &lease).await.unwrap();

    // A server following the map from the start.
    let (mut seen, rev) = load(&etcd, "c").await.unwrap();
    assert!(seen.is_empty());
    let mut follower = TabletFollower::new(&etcd, "c", rev);

    let splits = vec![b"g".to_vec(), b"p".to_vec()];
    let (created, _) = create_table(&etcd, "c", "users", &splits, b"s")
        .await
        .unwrap();
    assert_eq!(created.len(), 3);
    assert!(created.iter().all(|t| t.state == TabletState::Unassigned));
    let err = create_table(&etcd, "c", "users", &[], b"s")
        .await
        .unwrap_err();
    assert!(matches!(err, Error::AlreadyExists(_)), "{err}");
    for bad in [vec![b"p".to_vec(), b"g".to_vec()], vec![Vec::new()]] {
        let err = create_table(&etcd, "c", "t2", &bad, b"s")
            .await
            .unwrap_err();
        assert!(matches!(err, Error::InvalidArgument(_)), "{err}");
    }
    // Ids are never reused across tables.
    let (other, _) = create_table(&etcd, "c", "other", &[], b"s").await.unwrap();
    assert_eq!(other[0].id, created[2].id + 1);

    // The policy's plan, carried out.
    let (map, _) = load(&etcd, "c").await.unwrap();
    map.check().unwrap();
    let live: BTreeSet<String> = ["s1", "s2"].iter().map(|s| s.to_string()).collect();
    let plan = assign_orphans(&map, &live);
    assert_eq!(plan.len(), 4);
    for a in &plan {
        let t = map.get(a.tablet).unwrap();
        let next = reassign(&master, "c", t, Some(&a.to), TabletState::Serving)
            .await
            .unwrap();
        assert_eq!(next.epoch, t.epoch + 1);
    }
    // A write from a stale read conflicts.
    let stale = map.get(plan[0].tablet).unwrap();
    let err = reassign(&master, "c", stale, Some("s2"), TabletState::Serving)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Conflict(_)), "{err}");

    // The follower's map converges on etcd's.
    within(WAIT, "the follower catches up", async {
        while seen.tablets("users").filter(|t| t.owner.is_some()).count() < 3
            || seen.tablets("other").count() < 1
        {
            follower.apply_next(&mut seen).await.unwrap().unwrap();
        }
    })
    .await;
    seen.check().unwrap();
    let (now, _) = load(&etcd, "c").await.unwrap();
    assert_eq!(owners(&seen), owners(&now));
    assert_eq!(seen.route("users", b"hello").unwrap().start, b"g".to_vec());

    // A deposed master can change nothing.
    etcd.lease_revoke(lease.id()).await.unwrap();
    let t = now.route("users", b"a").unwrap().clone();
    let err = eventually(WAIT, "the old master is refused", || {
        let (master, t) = (&master, t.clone());
        async move {
            match reassign(master, "c", &t, None, TabletState::Unassigned).await {
                Err(e @ Error::NotLeader { .. }) => Some(e),
                _ => None,
            }
        }
    })
    .await;
    assert!(err.to_string().contains("not the master"), "{err}");
    let (after, _) = load(&etcd, "c").await.unwrap();
    assert_eq!(owners(&after), owners(&now));
}

fn owners(map: &TabletMap) -> Vec<(u64, Option<String>, u64)> {
    map.all()
        .map(|t| (t.id, t.owner.clone(), t.epoch))
        .collect()
}
