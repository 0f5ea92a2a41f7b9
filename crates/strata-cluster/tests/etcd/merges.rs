//! Merges against a real etcd and the master's loop: two small
//! neighbours on one server are merged once they have stayed small; a
//! merge excludes a split and a move of its tablets; a ready merge
//! replaces both tablets in one step; a withdrawn or abandoned one leaves
//! them as they were, with the merged tablet's copy collected.

use crate::{eventually, Recorder};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use strata_cluster::load::{publish, TabletLoad};
use strata_cluster::master::{owner_name, run, MasterOptions};
use strata_cluster::merges::{self, MergeRecord};
use strata_cluster::schema_store::create_table;
use strata_cluster::splits;
use strata_cluster::tablet_map::{TabletMap, TabletState};
use strata_cluster::tablet_store::load;
use strata_cluster::testkit::EtcdServer;
use strata_cluster::{campaign, register, Error, Etcd, Lease, Registration};

const TTL: Duration = Duration::from_secs(2);
const WAIT: Duration = Duration::from_secs(15);

async fn map_where(etcd: &Etcd, what: &str, check: impl Fn(&TabletMap) -> bool) -> TabletMap {
    eventually(WAIT, what, || async {
        let (map, _) = load(etcd, "c").await.unwrap();
        check(&map).then_some(map)
    })
    .await
}

/// Reports every tablet `server` owns in `map` with the size `sizes`
/// gives by start row (1 byte if not listed).
async fn report(etcd: &Etcd, server: &Registration, map: &TabletMap, sizes: &[(&str, u64)]) {
    let me = owner_name(server.info());
    let loads: BTreeMap<u64, TabletLoad> = map
        .all()
        .filter(|t| t.owner.as_deref() == Some(me.as_str()))
        .map(|t| {
            let size_bytes = sizes
                .iter()
                .find(|(start, _)| start.as_bytes() == t.start.as_slice())
                .map_or(1, |(_, s)| *s);
            (
                t.id,
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

async fn merge_recorded(etcd: &Etcd) -> MergeRecord {
    eventually(WAIT, "a merge recorded", || async {
        merges::load(etcd, "c").await.unwrap().into_values().next()
    })
    .await
}

#[tokio::test]
async fn merges_replace_two_tablets_or_leave_them_as_they_were() {
    let server = EtcdServer::start().await;
    let etcd = server.connect().await;
    let s1 = register(&etcd, "c", "s1", "127.0.0.1:1", TTL)
        .await
        .unwrap();
    let o1 = owner_name(s1.info());
    let lease = Lease::grant(&etcd, TTL).await.unwrap();
    let master = campaign(&etcd, "c", "m", &lease).await.unwrap();
    let splits_at = vec![b"g".to_vec(), b"p".to_vec()];
    create_table(&etcd, "c", "t", &splits_at, b"schema")
        .await
        .unwrap();
    let recorder = Arc::new(Recorder::default());
    let opts = MasterOptions {
        garbage_delay: Duration::from_millis(200),
        merge_size_bytes: 100,
        merge_delay: Duration::from_millis(300),
        ..MasterOptions::default()
    };
    let task = {
        let (etcd, recorder) = (etcd.clone(), recorder.clone());
        tokio::spawn(async move { run(&etcd, "c", &master, &*recorder, &opts).await })
    };
    let map = map_where(&etcd, "three tablets served", |m| {
        m.len() == 3 && m.all().all(|t| t.state == TabletState::Serving)
    })
    .await;
    let by_start = |m: &TabletMap, s: &str| {
        m.all()
            .find(|t| t.start.as_slice() == s.as_bytes())
            .unwrap()
            .clone()
    };
    let (a, b, c) = (by_start(&map, ""), by_start(&map, "g"), by_start(&map, "p"));

    // Sizes 10, 10, 500: the first two merge; the third stays alone.
    report(&etcd, &s1, &map, &[("", 10), ("g", 10), ("p", 500)]).await;
    let rec = merge_recorded(&etcd).await;
    assert_eq!((rec.left, rec.right), ((a.id, a.epoch), (b.id, b.epoch)));
    assert_eq!((rec.owner.as_str(), rec.ready), (o1.as_str(), false));
    // Neither tablet splits nor merges again meanwhile.
    let split = splits::request(&etcd, "c", &a, b"c").await;
    assert!(matches!(split, Err(Error::Conflict(_))), "{split:?}");
    let split = splits::request(&etcd, "c", &b, b"k").await;
    assert!(matches!(split, Err(Error::Conflict(_))), "{split:?}");
    // Prepared: the master waits (the owner builds).
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (now, _) = load(&etcd, "c").await.unwrap();
    assert_eq!(now.get(a.id), Some(&a));

    // Ready: both replaced by the merged tablet, on their owner; their
    // data collected.
    merges::mark_ready(&etcd, "c", &rec).await.unwrap();
    let map = map_where(&etcd, "the merge recorded", |m| m.get(a.id).is_none()).await;
    map.check().unwrap();
    assert_eq!(map.len(), 2);
    let m = map.get(rec.merged).unwrap().clone();
    assert_eq!(
        (m.start.as_slice(), m.end.as_deref()),
        (&b""[..], Some(&b"p"[..]))
    );
    assert_eq!(m.owner.as_deref(), Some(o1.as_str()));
    assert_eq!((m.state, m.epoch), (TabletState::Serving, 1));
    assert_eq!(map.get(c.id), Some(&c));
    recorder.collected(&[a.id, b.id]).await;
    assert!(merges::load(&etcd, "c").await.unwrap().is_empty());

    // Withdrawn by the owner: the tablets stay; the copy is collected.
    report(&etcd, &s1, &map, &[("", 10), ("p", 10)]).await;
    let rec = merge_recorded(&etcd).await;
    assert_eq!((rec.left.0, rec.right.0), (m.id, c.id));
    assert!(merges::withdraw(&etcd, "c", &rec).await.unwrap());
    recorder.collected(&[rec.merged]).await;
    assert!(merges::mark_ready(&etcd, "c", &rec).await.is_err());
    let (now, _) = load(&etcd, "c").await.unwrap();
    assert_eq!((now.get(m.id), now.get(c.id)), (Some(&m), Some(&c)));

    // Abandoned by the master: the owner dies mid-merge; both tablets
    // are recovered whole, the copy collected, a late "ready" refused.
    let rec = merge_recorded(&etcd).await;
    s1.lease().revoke().await.unwrap();
    let s2 = register(&etcd, "c", "s2", "127.0.0.1:2", TTL)
        .await
        .unwrap();
    let o2 = owner_name(s2.info());
    let map = map_where(&etcd, "the tablets recovered on s2", |m| {
        m.all()
            .all(|t| t.state == TabletState::Serving && t.owner.as_deref() == Some(o2.as_str()))
    })
    .await;
    assert_eq!(map.len(), 2);
    recorder.collected(&[rec.merged]).await;
    assert!(merges::mark_ready(&etcd, "c", &rec).await.is_err());
    assert!(merges::load(&etcd, "c").await.unwrap().is_empty());
    task.abort();
}
