//! Balancing by the servers' load reports against a real etcd: with every
//! count even, a server holding a huge tablet and a small one gives the
//! small one away, keeps the huge one, and nothing moves after.

use crate::{eventually, Recorder};
use std::collections::BTreeMap;
use std::time::Duration;
use strata_cluster::load::{publish, TabletLoad};
use strata_cluster::master::{owner_name, run, MasterOptions};
use strata_cluster::schema_store::create_table;
use strata_cluster::tablet_map::{TabletMap, TabletState};
use strata_cluster::tablet_store::load;
use strata_cluster::testkit::EtcdServer;
use strata_cluster::{campaign, register, Lease, Registration};

const TTL: Duration = Duration::from_secs(2);
const WAIT: Duration = Duration::from_secs(15);

fn owned(map: &TabletMap, owner: &str) -> Vec<u64> {
    map.all()
        .filter(|t| t.owner.as_deref() == Some(owner))
        .map(|t| t.id)
        .collect()
}

/// Publishes for `server` its tablets' sizes from `sizes` (1 byte if not
/// listed).
async fn report(
    etcd: &strata_cluster::Etcd,
    server: &Registration,
    map: &TabletMap,
    sizes: &BTreeMap<u64, u64>,
) {
    let me = owner_name(server.info());
    let loads = owned(map, &me)
        .into_iter()
        .map(|id| {
            let size_bytes = sizes.get(&id).copied().unwrap_or(1);
            (
                id,
                TabletLoad {
                    size_bytes,
                    requests_per_sec: 0.0,
                },
            )
        })
        .collect();
    publish(etcd, "c", &me, server.lease().id(), &loads)
        .await
        .unwrap();
}

#[tokio::test]
async fn the_master_balances_by_reported_size() {
    let server = EtcdServer::start().await;
    let etcd = server.connect().await;
    let s1 = register(&etcd, "c", "s1", "127.0.0.1:1", TTL)
        .await
        .unwrap();
    let s2 = register(&etcd, "c", "s2", "127.0.0.1:2", TTL)
        .await
        .unwrap();
    let (o1, o2) = (owner_name(s1.info()), owner_name(s2.info()));
    let lease = Lease::grant(&etcd, TTL).await.unwrap();
    let master = campaign(&etcd, "c", "m", &lease).await.unwrap();
    create_table(
        &etcd,
        "c",
        "t",
        &[b"b".to_vec(), b"c".to_vec(), b"d".to_vec()],
        b"s",
    )
    .await
    .unwrap();
    let task = {
        let etcd = etcd.clone();
        let collector = Recorder::default();
        tokio::spawn(async move {
            run(&etcd, "c", &master, &collector, &MasterOptions::default()).await
        })
    };
    let map = eventually(WAIT, "two tablets each", || async {
        let (map, _) = load(&etcd, "c").await.unwrap();
        let even = map.all().all(|t| t.state == TabletState::Serving)
            && owned(&map, &o1).len() == 2
            && owned(&map, &o2).len() == 2;
        even.then_some(map)
    })
    .await;
    // s1's first tablet is huge.
    let huge = owned(&map, &o1)[0];
    let small = owned(&map, &o1)[1];
    let sizes = BTreeMap::from([(huge, 1u64 << 30)]);
    report(&etcd, &s1, &map, &sizes).await;
    report(&etcd, &s2, &map, &sizes).await;
    // The master moves s1's small tablet; s1 lets go of it (as a server
    // does once it has closed it).
    let map = eventually(WAIT, "the small tablet moved to s2", || async {
        let (map, _) = load(&etcd, "c").await.unwrap();
        if let Some(t) = map.get(small).filter(|t| t.state == TabletState::Moving) {
            strata_cluster::moves::release(&etcd, "c", t.id, t.epoch, s1.lease().id())
                .await
                .unwrap();
        }
        let done = map.get(small).is_some_and(|t| {
            t.state == TabletState::Serving && t.owner.as_deref() == Some(o2.as_str())
        });
        done.then_some(map)
    })
    .await;
    assert_eq!(owned(&map, &o1), vec![huge], "the huge tablet stays");
    // Reported again: balanced within the tolerance, nothing moves.
    report(&etcd, &s1, &map, &sizes).await;
    report(&etcd, &s2, &map, &sizes).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (after, _) = load(&etcd, "c").await.unwrap();
    assert!(after.all().all(|t| t.state == TabletState::Serving));
    assert_eq!(owned(&after, &o1), vec![huge]);
    task.abort();
}
