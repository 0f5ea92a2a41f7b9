//! The instance-admin API on a cluster: two servers creating one instance
//! at the same moment, over and over; exactly one creation succeeds each
//! time and the other gets ALREADY_EXISTS (the record is created in an
//! etcd txn that requires its absence).

mod common;
#[path = "common/cluster.rs"]
mod harness;

use common::connect;
use googleapis_tonic_google_bigtable_admin_v2::google::bigtable::admin::v2 as admin;
use harness::{Cluster, ONE_AT_A_TIME};

use admin::bigtable_instance_admin_client::BigtableInstanceAdminClient;

const ROUNDS: usize = 8;

fn create(id: &str) -> admin::CreateInstanceRequest {
    let mut clusters = std::collections::BTreeMap::new();
    clusters.insert(
        "race-cluster".to_string(),
        admin::Cluster {
            location: "projects/p/locations/here".into(),
            ..Default::default()
        },
    );
    admin::CreateInstanceRequest {
        parent: "projects/p".into(),
        instance_id: id.into(),
        instance: Some(admin::Instance {
            display_name: id.into(),
            ..Default::default()
        }),
        clusters,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_servers_creating_one_instance_at_once_create_it_once() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let cluster = Cluster::start(2).await;
    let mut a = BigtableInstanceAdminClient::new(connect(cluster.nodes[0].port).await);
    let mut b = BigtableInstanceAdminClient::new(connect(cluster.nodes[1].port).await);
    for k in 0..ROUNDS {
        let id = format!("race-instance-{k}");
        let (ra, rb) = tokio::join!(
            a.create_instance(create(&id)),
            b.create_instance(create(&id))
        );
        let codes: Vec<tonic::Code> = [&ra, &rb]
            .iter()
            .map(|r| r.as_ref().map_or_else(|e| e.code(), |_| tonic::Code::Ok))
            .collect();
        let ok = codes.iter().filter(|c| **c == tonic::Code::Ok).count();
        let exists = codes
            .iter()
            .filter(|c| **c == tonic::Code::AlreadyExists)
            .count();
        assert_eq!(
            (ok, exists),
            (1, 1),
            "round {k}: {ra:?} / {rb:?}\n{}",
            cluster.logs()
        );
    }
}
