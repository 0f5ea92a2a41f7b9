//! The master's loop against a real etcd: tablets assigned to live
//! servers, a dead server's tablets recovered before they move, a server
//! restarted under its id treated as a new owner, the loop ending with the
//! leadership.

use crate::{eventually, within};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use strata_cluster::master::{owner_name, run, MasterOptions, Recovery};
use strata_cluster::tablet_map::{TabletMap, TabletRecord, TabletState};
use strata_cluster::tablet_store::{create_table, load};
use strata_cluster::testkit::EtcdServer;
use strata_cluster::{campaign, register, Etcd, LeadershipLoss, Lease, Result};

const TTL: Duration = Duration::from_secs(2);
const WAIT: Duration = Duration::from_secs(15);

/// Records what it was asked to recover.
#[derive(Default)]
struct Recorder(Mutex<Vec<(String, Vec<u64>)>>);

impl Recovery for Recorder {
    fn recover<'a>(
        &'a self,
        dead: &'a str,
        tablets: &'a [TabletRecord],
    ) -> Pin<Box<dyn Future<Output = Result<()>> + Send + 'a>> {
        Box::pin(async move {
            assert!(tablets
                .iter()
                .all(|t| t.state == TabletState::Recovering && t.owner.as_deref() == Some(dead)));
            let ids = tablets.iter().map(|t| t.id).collect();
            self.0.lock().unwrap().push((dead.to_string(), ids));
            Ok(())
        })
    }
}

/// The map once every tablet is serving on one of `owners`.
async fn settled(etcd: &Etcd, owners: &[&str]) -> TabletMap {
    eventually(WAIT, "every tablet serving on a live server", || async {
        let (map, _) = load(etcd, "c").await.unwrap();
        let done = map.all().all(|t| {
            t.state == TabletState::Serving && owners.contains(&t.owner.as_deref().unwrap_or(""))
        });
        done.then_some(map)
    })
    .await
}

#[tokio::test]
async fn the_master_keeps_every_tablet_on_a_live_server() {
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
    let splits: Vec<Vec<u8>> = [b"b", b"d", b"f", b"h"]
        .iter()
        .map(|s| s.to_vec())
        .collect();
    create_table(&master, &etcd, "c", "t", &splits)
        .await
        .unwrap();

    let recorder = Arc::new(Recorder::default());
    let loop_task = {
        let (etcd, recorder) = (etcd.clone(), recorder.clone());
        tokio::spawn(async move {
            let opts = MasterOptions::default();
            run(&etcd, "c", &master, &*recorder, &opts).await
        })
    };

    // New tablets go to the live servers, evenly.
    let map = settled(&etcd, &[&o1, &o2]).await;
    map.check().unwrap();
    let on_s1: Vec<u64> = map
        .all()
        .filter(|t| t.owner.as_deref() == Some(o1.as_str()))
        .map(|t| t.id)
        .collect();
    assert!((2..=3).contains(&on_s1.len()), "{on_s1:?}");
    assert!(recorder.0.lock().unwrap().is_empty());

    // s1 dies (its lease ends): its tablets are recovered, then served by
    // s2, each two epochs on (recovering, then serving).
    s1.lease().revoke().await.unwrap();
    let after = settled(&etcd, &[&o2]).await;
    for id in &on_s1 {
        assert_eq!(
            after.get(*id).unwrap().epoch,
            map.get(*id).unwrap().epoch + 2
        );
    }
    assert_eq!(
        *recorder.0.lock().unwrap(),
        vec![(o1.clone(), on_s1.clone())]
    );

    // s1 comes back under its id: a new incarnation, a new owner name;
    // nothing is handed back (no balancing yet) and nothing is recovered
    // again.
    let s1b = register(&etcd, "c", "s1", "127.0.0.1:1", TTL)
        .await
        .unwrap();
    assert_ne!(owner_name(s1b.info()), o1);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(recorder.0.lock().unwrap().len(), 1);
    let (now, _) = load(&etcd, "c").await.unwrap();
    assert!(now.all().all(|t| t.owner.as_deref() == Some(o2.as_str())));

    // The master's lease ends: the loop stops.
    lease.revoke().await.unwrap();
    let why = within(WAIT, "the loop ends", loop_task).await.unwrap();
    assert!(
        matches!(why, LeadershipLoss::Lease(_) | LeadershipLoss::KeyGone),
        "{why:?}"
    );
    drop(s2);
}
