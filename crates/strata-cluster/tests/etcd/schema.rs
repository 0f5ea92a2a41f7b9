//! Schemas in etcd: a table created with its tablets in one txn by any
//! server, updated with compare-and-swap, deleted with its tablets, and
//! followed by watch.

use crate::within;
use std::time::Duration;
use strata_cluster::schema_store::{self, SchemaChange, SchemaFollower};
use strata_cluster::tablet_store::load;
use strata_cluster::testkit::EtcdServer;
use strata_cluster::Error;

const WAIT: Duration = Duration::from_secs(10);
const T: &str = "projects/p/instances/i/tables/users";

#[tokio::test]
async fn tables_are_created_changed_and_deleted_with_their_tablets() {
    let server = EtcdServer::start().await;
    let etcd = server.connect().await;
    let (none, rev) = schema_store::list(&etcd, "c").await.unwrap();
    assert!(none.is_empty());
    let mut follower = SchemaFollower::new(&etcd, "c", rev);

    let (tablets, created_at) =
        schema_store::create_table(&etcd, "c", T, &[b"m".to_vec()], b"\x01v1")
            .await
            .unwrap();
    assert_eq!(tablets.len(), 2);
    let err = schema_store::create_table(&etcd, "c", T, &[], b"other")
        .await
        .unwrap_err();
    assert!(matches!(err, Error::AlreadyExists(_)), "{err}");
    for bad in ["", "/x", "x/", "a//b", "a b"] {
        let err = schema_store::create_table(&etcd, "c", bad, &[], b"s")
            .await
            .unwrap_err();
        assert!(matches!(err, Error::InvalidArgument(_)), "{bad:?}: {err}");
    }
    let v1 = schema_store::get(&etcd, "c", T).await.unwrap().unwrap();
    assert_eq!(v1.schema, b"\x01v1");
    assert_eq!(v1.mod_revision, created_at);
    let (map, _) = load(&etcd, "c").await.unwrap();
    assert_eq!(map.tablets(T).count(), 2);
    map.check().unwrap();

    // Compare-and-swap: the second writer from the same version loses.
    let v2 = schema_store::update(&etcd, "c", &v1, b"v2").await.unwrap();
    let err = schema_store::update(&etcd, "c", &v1, b"v2b")
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Conflict(_)), "{err}");
    assert!(v2.mod_revision > v1.mod_revision);
    let err = schema_store::delete_table(&etcd, "c", &v1)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Conflict(_)), "{err}");
    schema_store::delete_table(&etcd, "c", &v2).await.unwrap();
    assert!(schema_store::get(&etcd, "c", T).await.unwrap().is_none());
    let (map, _) = load(&etcd, "c").await.unwrap();
    assert!(map.is_empty(), "the tablets go with the table");

    // The follower saw it all, in order.
    let mut seen = Vec::new();
    within(WAIT, "three schema events", async {
        while seen.len() < 3 {
            seen.push(follower.next().await.unwrap().unwrap());
        }
    })
    .await;
    assert!(matches!(&seen[0], SchemaChange::Put(s) if s.schema == b"\x01v1"));
    assert!(matches!(&seen[1], SchemaChange::Put(s) if s.schema == b"v2"));
    assert!(matches!(&seen[2], SchemaChange::Deleted { table, .. } if table == T));
}
