//! The servers directory.

use crate::{eventually, within};
use std::time::Duration;
use strata_cluster::testkit::EtcdServer;
use strata_cluster::{
    register, servers, watch_servers, Error, LeaseLoss, ServerEvent, ServerWatch,
};

const TTL: Duration = Duration::from_secs(2);
const WAIT: Duration = Duration::from_secs(10);

async fn next(w: &mut ServerWatch) -> ServerEvent {
    within(WAIT, "server event", w.next())
        .await
        .expect("watch ended")
        .expect("watch failed")
}

#[tokio::test]
async fn servers_register_list_and_leave() {
    let server = EtcdServer::start().await;
    let etcd = server.connect().await;
    let a = register(&etcd, "c1", "a", "127.0.0.1:7001", TTL)
        .await
        .unwrap();
    let b = register(&etcd, "c1", "b", "127.0.0.1:7002", TTL)
        .await
        .unwrap();
    register(&etcd, "other", "z", "127.0.0.1:7999", TTL)
        .await
        .unwrap();
    assert_eq!(a.key(), "/c1/servers/a");

    let (list, revision) = servers(&etcd, "c1").await.unwrap();
    let ids: Vec<_> = list
        .iter()
        .map(|s| (s.id.as_str(), s.addr.as_str()))
        .collect();
    assert_eq!(ids, [("a", "127.0.0.1:7001"), ("b", "127.0.0.1:7002")]);
    assert_eq!(list[0].lease, a.lease().id().0);
    assert_eq!(list[1].create_revision, b.info().create_revision);

    // One id, one live holder.
    match register(&etcd, "c1", "a", "127.0.0.1:7003", TTL).await {
        Err(Error::AlreadyRegistered { id, lease }) => {
            assert_eq!((id.as_str(), lease), ("a", a.lease().id().0));
        }
        other => panic!(
            "expected AlreadyRegistered, got {:?}",
            other.map(|r| r.info().clone())
        ),
    }

    // Changes after the listing, in order.
    let mut watch = watch_servers(&etcd, "c1", revision + 1);
    let c = register(&etcd, "c1", "c", "127.0.0.1:7004", TTL)
        .await
        .unwrap();
    b.deregister().await.unwrap();
    assert_eq!(
        next(&mut watch).await,
        ServerEvent::Joined(c.info().clone())
    );
    assert!(matches!(next(&mut watch).await, ServerEvent::Left { id, .. } if id == "b"));
    let (list, _) = servers(&etcd, "c1").await.unwrap();
    let ids: Vec<_> = list.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(ids, ["a", "c"]);
}

#[tokio::test]
async fn lease_expiry_deletes_the_registration() {
    let server = EtcdServer::start().await;
    let etcd = server.connect().await;
    let reg = register(&etcd, "c2", "s1", "127.0.0.1:7001", TTL)
        .await
        .unwrap();
    let observer = server.connect().await;
    let mut watch = watch_servers(&observer, "c2", reg.info().create_revision + 1);

    // The server stops renewing (it froze): it learns first...
    reg.lease().stop_renewing();
    let why = within(
        TTL + Duration::from_secs(3),
        "server sees its loss",
        reg.lost(),
    )
    .await;
    assert_eq!(why, LeaseLoss::Deadline);
    assert!(!reg.is_alive());
    // ...then etcd expires the lease, deletes the key, and watchers see it.
    let event = within(WAIT, "watcher sees the server leave", watch.next()).await;
    assert!(
        matches!(event, Some(Ok(ServerEvent::Left { ref id, .. })) if id == "s1"),
        "{event:?}"
    );
    eventually(WAIT, "servers() without s1", || async {
        servers(&observer, "c2")
            .await
            .unwrap()
            .0
            .is_empty()
            .then_some(())
    })
    .await;

    // The id is free again: a new incarnation registers.
    let again = register(&etcd, "c2", "s1", "127.0.0.1:7001", TTL)
        .await
        .unwrap();
    assert!(again.info().create_revision > reg.info().create_revision);
}
