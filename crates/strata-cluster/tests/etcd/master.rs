//! The master's loop against a real etcd: tablets assigned to live
//! servers, a dead server's tablets marked recovering, then moved, a server
//! restarted under its id treated as a new owner, the loop ending with the
//! leadership.

use crate::{eventually, within, Recorder};
use std::time::Duration;
use strata_cluster::master::{owner_name, run, Collector, MasterOptions};
use strata_cluster::schema_store::create_table;
use strata_cluster::tablet_map::{TabletMap, TabletState};
use strata_cluster::tablet_store::load;
use strata_cluster::testkit::EtcdServer;
use strata_cluster::{campaign, register, Etcd, LeadershipLoss, Lease, Registration};
use tokio::task::JoinHandle;

const TTL: Duration = Duration::from_secs(2);
const WAIT: Duration = Duration::from_secs(15);

/// A collector for tests that delete no table.
struct NoGarbage;

impl Collector for NoGarbage {
    fn delete_tablet(
        &self,
        id: u64,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), String>> + Send + '_>> {
        Box::pin(async move { panic!("nothing to collect, asked for tablet {id}") })
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

/// Two registered servers, s1 and s2, and their owner names.
async fn two_servers(etcd: &Etcd) -> (Registration, Registration, String, String) {
    let s1 = register(etcd, "c", "s1", "127.0.0.1:1", TTL).await.unwrap();
    let s2 = register(etcd, "c", "s2", "127.0.0.1:2", TTL).await.unwrap();
    let (o1, o2) = (owner_name(s1.info()), owner_name(s2.info()));
    (s1, s2, o1, o2)
}

/// A master (lease, running loop) with table `t` split at `splits`.
async fn start_master(etcd: &Etcd, splits: &[&[u8]]) -> (Lease, JoinHandle<LeadershipLoss>) {
    let lease = Lease::grant(etcd, TTL).await.unwrap();
    let master = campaign(etcd, "c", "m", &lease).await.unwrap();
    let splits: Vec<Vec<u8>> = splits.iter().map(|s| s.to_vec()).collect();
    create_table(etcd, "c", "t", &splits, b"schema")
        .await
        .unwrap();
    let loop_task = {
        let etcd = etcd.clone();
        tokio::spawn(async move {
            run(&etcd, "c", &master, &NoGarbage, &MasterOptions::default()).await
        })
    };
    (lease, loop_task)
}

#[tokio::test]
async fn the_master_keeps_every_tablet_on_a_live_server() {
    let server = EtcdServer::start().await;
    let etcd = server.connect().await;
    let (s1, s2, o1, o2) = two_servers(&etcd).await;
    let (lease, loop_task) = start_master(&etcd, &[b"b", b"d", b"f", b"h"]).await;

    // New tablets go to the live servers, evenly.
    let map = settled(&etcd, &[&o1, &o2]).await;
    map.check().unwrap();
    let on_s1: Vec<u64> = map
        .all()
        .filter(|t| t.owner.as_deref() == Some(o1.as_str()))
        .map(|t| t.id)
        .collect();
    assert!((2..=3).contains(&on_s1.len()), "{on_s1:?}");

    // s1 dies (its lease ends): its tablets are marked recovering, then
    // served by s2, each two epochs on.
    s1.lease().revoke().await.unwrap();
    let after = settled(&etcd, &[&o2]).await;
    for id in &on_s1 {
        assert_eq!(
            after.get(*id).unwrap().epoch,
            map.get(*id).unwrap().epoch + 2
        );
    }

    // s1 comes back under its id: a new incarnation, a new owner name,
    // which the balancing gives its share (nothing goes to the old name).
    let s1b = register(&etcd, "c", "s1", "127.0.0.1:1", TTL)
        .await
        .unwrap();
    let o1b = owner_name(s1b.info());
    assert_ne!(o1b, o1);
    // s2 lets go of each tablet the master moves away (as a server does
    // once it has closed it): the moves finish at once.
    let started = std::time::Instant::now();
    let released = std::sync::atomic::AtomicUsize::new(0);
    let (etcd_r, s2_r, o2_r, o1b_r, released_r) = (&etcd, &s2, &o2, &o1b, &released);
    let balanced = eventually(WAIT, "the tablets balanced", || {
        let (etcd, s2, o2, o1b, released) = (etcd_r, s2_r, o2_r, o1b_r, released_r);
        async move {
            let (map, _) = load(etcd, "c").await.unwrap();
            for t in map.all() {
                if t.state == TabletState::Moving && t.owner.as_deref() == Some(o2.as_str()) {
                    strata_cluster::moves::release(etcd, "c", t.id, t.epoch, s2.lease().id())
                        .await
                        .unwrap();
                    released.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            }
            let on = |o: &str| map.all().filter(|t| t.owner.as_deref() == Some(o)).count();
            let serving = map.all().all(|t| t.state == TabletState::Serving);
            (serving && on(o1b) == 2 && on(o2) == 3).then_some(map)
        }
    })
    .await;
    assert!(
        released.into_inner() >= 2,
        "moved by release, not by timeout"
    );
    assert!(
        started.elapsed() < strata_cluster::moves::MOVE_RELEASE_WAIT,
        "the moves waited for the timeout"
    );
    balanced.check().unwrap();
    assert!(balanced.all().all(|t| t.state == TabletState::Serving));

    // The master's lease ends: the loop stops.
    lease.revoke().await.unwrap();
    let why = within(WAIT, "the loop ends", loop_task).await.unwrap();
    assert!(
        matches!(why, LeadershipLoss::Lease(_) | LeadershipLoss::KeyGone),
        "{why:?}"
    );
    drop(s2);
}

/// Each server follows its assignments: what the master gives it opens,
/// what it takes away closes, and after a server dies the survivor opens
/// its tablets (after their recovery).
#[tokio::test]
async fn servers_follow_the_masters_assignments() {
    use std::collections::BTreeMap;
    use strata_cluster::assignments::{Assignments, Change};

    let server = EtcdServer::start().await;
    let etcd = server.connect().await;
    let (s1, _s2, o1, o2) = two_servers(&etcd).await;
    let (mut v1, first1) = Assignments::start(&etcd, "c", &o1).await.unwrap();
    let (mut v2, first2) = Assignments::start(&etcd, "c", &o2).await.unwrap();
    assert!(first1.is_empty() && first2.is_empty());

    let (_lease, loop_task) = start_master(&etcd, &[b"c", b"f", b"i"]).await;

    // What each server is told to open, applied to what it holds.
    async fn follow(view: &mut Assignments, held: &mut BTreeMap<u64, u64>, until: usize) {
        within(WAIT, "assignments arrive", async {
            while held.len() != until {
                for change in view.next().await.unwrap().unwrap() {
                    match change {
                        Change::Open(t) => assert!(held.insert(t.id, t.epoch).is_none()),
                        Change::Close { id, epoch } => assert_eq!(held.remove(&id), Some(epoch)),
                    }
                }
            }
        })
        .await;
    }
    let (mut h1, mut h2) = (BTreeMap::new(), BTreeMap::new());
    follow(&mut v1, &mut h1, 2).await;
    follow(&mut v2, &mut h2, 2).await;
    assert!(
        h1.keys().all(|id| !h2.contains_key(id)),
        "one server per tablet"
    );
    assert_eq!(&h1, v1.held());

    // s1 dies; s2 ends up with all four, each opened at its new epoch.
    s1.lease().revoke().await.unwrap();
    follow(&mut v2, &mut h2, 4).await;
    let (map, _) = load(&etcd, "c").await.unwrap();
    for (id, epoch) in &h2 {
        assert_eq!(map.get(*id).unwrap().epoch, *epoch);
    }
    assert_eq!(
        v2.map().route("t", b"zz").unwrap().owner.as_deref(),
        Some(o2.as_str())
    );
    loop_task.abort();
}

/// A deleted table's tablets are recorded as garbage in the deletion's
/// txn, and the master has their data deleted once the delay has passed,
/// then forgets them.
#[tokio::test]
async fn the_master_deletes_the_data_of_deleted_tables() {
    use strata_cluster::schema_store;
    let server = EtcdServer::start().await;
    let etcd = server.connect().await;
    let lease = Lease::grant(&etcd, TTL).await.unwrap();
    let master = campaign(&etcd, "c", "m", &lease).await.unwrap();
    let (tablets, _) = create_table(&etcd, "c", "t", &[b"m".to_vec()], b"s")
        .await
        .unwrap();
    let (keep, _) = create_table(&etcd, "c", "keep", &[], b"s").await.unwrap();
    let schema = schema_store::get(&etcd, "c", "t").await.unwrap().unwrap();
    schema_store::delete_table(&etcd, "c", &schema)
        .await
        .unwrap();
    let garbage = etcd.get_prefix(b"/c/garbage/").await.unwrap();
    assert_eq!(garbage.kvs.len(), 2);
    let recorder = std::sync::Arc::new(Recorder::default());
    let opts = MasterOptions {
        garbage_delay: Duration::from_millis(300),
        ..MasterOptions::default()
    };
    let task = {
        let (etcd, recorder) = (etcd.clone(), recorder.clone());
        tokio::spawn(async move { run(&etcd, "c", &master, &*recorder, &opts).await })
    };
    eventually(WAIT, "the garbage collected", || async {
        let left = etcd.get_prefix(b"/c/garbage/").await.unwrap();
        left.kvs.is_empty().then_some(())
    })
    .await;
    let mut ids = recorder.0.lock().unwrap().clone();
    ids.sort();
    assert_eq!(ids, tablets.iter().map(|t| t.id).collect::<Vec<_>>());
    assert!(!ids.contains(&keep[0].id));
    task.abort();
}
