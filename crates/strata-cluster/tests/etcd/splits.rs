//! Splits against a real etcd and the master's loop: a ready split
//! replaces its parent by its children in one step, and a split withdrawn
//! by its owner or abandoned by the master (its parent recovered) leaves
//! the parent as it was, with the children's copies collected.

use crate::{eventually, Recorder};

use std::sync::Arc;
use std::time::Duration;
use strata_cluster::master::{owner_name, run, MasterOptions};
use strata_cluster::schema_store::{self, create_table};
use strata_cluster::splits;
use strata_cluster::tablet_map::{TabletMap, TabletRecord, TabletState};
use strata_cluster::tablet_store::load;
use strata_cluster::testkit::EtcdServer;
use strata_cluster::{campaign, register, Error, Etcd, Lease};

const TTL: Duration = Duration::from_secs(2);
const WAIT: Duration = Duration::from_secs(15);

/// The map once `check` holds of it.
async fn map_where(etcd: &Etcd, what: &str, check: impl Fn(&TabletMap) -> bool) -> TabletMap {
    eventually(WAIT, what, || async {
        let (map, _) = load(etcd, "c").await.unwrap();
        check(&map).then_some(map)
    })
    .await
}

fn rows(t: &TabletRecord) -> (&[u8], Option<&[u8]>) {
    (t.start.as_slice(), t.end.as_deref())
}

#[tokio::test]
async fn splits_replace_their_parent_or_leave_it_as_it_was() {
    let server = EtcdServer::start().await;
    let etcd = server.connect().await;
    let s1 = register(&etcd, "c", "s1", "127.0.0.1:1", TTL)
        .await
        .unwrap();
    let o1 = owner_name(s1.info());
    let lease = Lease::grant(&etcd, TTL).await.unwrap();
    let master = campaign(&etcd, "c", "m", &lease).await.unwrap();
    create_table(&etcd, "c", "t", &[], b"schema").await.unwrap();
    let recorder = Arc::new(Recorder::default());
    let opts = MasterOptions {
        garbage_delay: Duration::from_millis(200),
        ..MasterOptions::default()
    };
    let task = {
        let (etcd, recorder) = (etcd.clone(), recorder.clone());
        tokio::spawn(async move { run(&etcd, "c", &master, &*recorder, &opts).await })
    };
    let map = map_where(&etcd, "the tablet served", |m| {
        m.all().all(|t| t.state == TabletState::Serving)
    })
    .await;
    let parent = map.tablets("t").next().unwrap().clone();

    // Bad split rows are refused; a second split of one tablet too.
    let refused = splits::request(&etcd, "c", &parent, b"").await;
    assert!(
        matches!(refused, Err(Error::InvalidArgument(_))),
        "{refused:?}"
    );
    let split = splits::request(&etcd, "c", &parent, b"m").await.unwrap();
    let again = splits::request(&etcd, "c", &parent, b"p").await;
    assert!(matches!(again, Err(Error::Conflict(_))), "{again:?}");

    // Prepared: the master waits (the owner copies).
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (now, _) = load(&etcd, "c").await.unwrap();
    assert_eq!(now.get(parent.id), Some(&parent));

    // Ready: the parent is replaced by both children, on its owner, and
    // its data is collected.
    splits::mark_ready(&etcd, "c", &split).await.unwrap();
    let map = map_where(&etcd, "the split recorded", |m| m.get(parent.id).is_none()).await;
    map.check().unwrap();
    let [left, right] = split.children.map(|id| map.get(id).unwrap().clone());
    assert_eq!(rows(&left), (&b""[..], Some(&b"m"[..])));
    assert_eq!(rows(&right), (&b"m"[..], None));
    for c in [&left, &right] {
        assert_eq!(c.owner.as_deref(), Some(o1.as_str()));
        assert_eq!((c.state, c.epoch), (TabletState::Serving, 1));
    }
    assert_eq!(map.route("t", b"a").unwrap().id, left.id);
    assert_eq!(map.route("t", b"z").unwrap().id, right.id);
    recorder.collected(&[parent.id]).await;
    assert!(splits::load(&etcd, "c").await.unwrap().is_empty());

    // Withdrawn by the owner: the tablet stays; the copies are collected.
    let withdrawn = splits::request(&etcd, "c", &left, b"f").await.unwrap();
    assert!(splits::withdraw(&etcd, "c", &withdrawn).await.unwrap());
    recorder.collected(&withdrawn.children).await;
    assert!(splits::mark_ready(&etcd, "c", &withdrawn).await.is_err());

    // Abandoned by the master: the owner dies mid-split; the tablet is
    // recovered whole, the copies collected, and a late "ready" refused.
    let orphaned = splits::request(&etcd, "c", &right, b"t").await.unwrap();
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
    assert_eq!(rows(map.get(right.id).unwrap()), rows(&right));
    recorder.collected(&orphaned.children).await;
    assert!(splits::mark_ready(&etcd, "c", &orphaned).await.is_err());
    assert!(splits::load(&etcd, "c").await.unwrap().is_empty());

    // Deleting the table deletes the children it has now.
    let schema = schema_store::get(&etcd, "c", "t").await.unwrap().unwrap();
    schema_store::delete_table(&etcd, "c", &schema)
        .await
        .unwrap();
    recorder.collected(&[left.id, right.id]).await;
    task.abort();
}
