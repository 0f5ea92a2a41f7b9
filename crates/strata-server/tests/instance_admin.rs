//! The instance admin API over gRPC: instances (created and implicit),
//! the one cluster, app profiles, IAM policies, long-running operations,
//! persistence across a restart, and UNIMPLEMENTED answers that name
//! their RPC.

mod common;

use common::*;
use googleapis_tonic_google_bigtable_admin_v2::google::bigtable::admin::v2 as a;
use googleapis_tonic_google_bigtable_admin_v2::google::iam::v1 as iam;
use googleapis_tonic_google_bigtable_admin_v2::google::longrunning as lr;
use prost::Message;
use std::collections::BTreeMap;
use tonic::transport::Channel;
use tonic::Code;

type Instances = a::bigtable_instance_admin_client::BigtableInstanceAdminClient<Channel>;
type Ops = lr::operations_client::OperationsClient<Channel>;

async fn clients(s: &Server) -> (Instances, Ops) {
    let ch = Channel::from_shared(format!("http://{}", s.addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    (Instances::new(ch.clone()), Ops::new(ch))
}

const PROJECT: &str = "projects/p";

fn create_req(id: &str, cluster: &str) -> a::CreateInstanceRequest {
    let mut clusters = BTreeMap::new();
    clusters.insert(
        cluster.to_string(),
        a::Cluster {
            location: "projects/p/locations/us-east1-b".into(),
            serve_nodes: 3,
            ..Default::default()
        },
    );
    a::CreateInstanceRequest {
        parent: PROJECT.into(),
        instance_id: id.into(),
        instance: Some(a::Instance {
            display_name: "My instance".into(),
            labels: [("env".to_string(), "test".to_string())].into(),
            ..Default::default()
        }),
        clusters,
    }
}

fn unpack<M: Message + Default>(op: &lr::Operation, type_name: &str) -> M {
    assert!(op.done, "{op:?}");
    match &op.result {
        Some(lr::operation::Result::Response(any)) => {
            assert_eq!(any.type_url, format!("type.googleapis.com/{type_name}"));
            M::decode(any.value.as_slice()).unwrap()
        }
        other => panic!("not a response: {other:?}"),
    }
}

#[tokio::test]
async fn instances_clusters_and_operations() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start_in(dir.path()).await;
    let (mut ia, mut ops) = clients(&s).await;
    let op = ia
        .create_instance(create_req("my-instance", "my-cluster"))
        .await
        .unwrap()
        .into_inner();
    let inst: a::Instance = unpack(&op, "google.bigtable.admin.v2.Instance");
    assert_eq!(inst.name, "projects/p/instances/my-instance");
    assert_eq!(inst.display_name, "My instance");
    assert_eq!(inst.state, a::instance::State::Ready as i32);
    assert_eq!(inst.r#type, a::instance::Type::Production as i32);
    let meta = op.metadata.as_ref().unwrap();
    assert_eq!(
        meta.type_url,
        "type.googleapis.com/google.bigtable.admin.v2.CreateInstanceMetadata"
    );
    // The operation service knows it.
    let got = ops
        .get_operation(lr::GetOperationRequest {
            name: op.name.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got, op);
    let waited = ops
        .wait_operation(lr::WaitOperationRequest {
            name: op.name.clone(),
            timeout: None,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(waited.done);
    let listed = ops
        .list_operations(lr::ListOperationsRequest {
            name: "operations/projects/p/instances/my-instance".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.operations.len(), 1);
    let e = ops
        .cancel_operation(lr::CancelOperationRequest {
            name: op.name.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition);
    ops.delete_operation(lr::DeleteOperationRequest {
        name: op.name.clone(),
    })
    .await
    .unwrap();
    let e = ops
        .get_operation(lr::GetOperationRequest { name: op.name })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);

    // Creating it again, bad ids, two clusters.
    let e = ia
        .create_instance(create_req("my-instance", "my-cluster"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::AlreadyExists);
    for (id, cluster) in [("bad", "my-cluster"), ("my-instance-2", "c1")] {
        let e = ia
            .create_instance(create_req(id, cluster))
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument, "{id} {cluster}: {e:?}");
    }
    let mut two = create_req("two-clusters", "cluster-one");
    two.clusters
        .insert("cluster-two".into(), two.clusters["cluster-one"].clone());
    let e = ia.create_instance(two).await.unwrap_err();
    assert_eq!(e.code(), Code::Unimplemented);
    assert!(
        e.message().starts_with(
            "google.bigtable.admin.v2.BigtableInstanceAdmin/CreateInstance: clusters: 2 given; \
             replication is not implemented by Strata"
        ),
        "{e:?}"
    );

    // An instance that only holds tables exists too.
    let mut admin = s.admin.clone();
    admin
        .create_table(a::CreateTableRequest {
            parent: "projects/p/instances/implicit".into(),
            table_id: "t".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let list = ia
        .list_instances(a::ListInstancesRequest {
            parent: PROJECT.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let names: Vec<&str> = list.instances.iter().map(|i| i.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "projects/p/instances/implicit",
            "projects/p/instances/my-instance"
        ]
    );
    let e = ia
        .get_instance(a::GetInstanceRequest {
            name: "projects/p/instances/nothing-here".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);

    // Clusters: one per instance, the server count as nodes.
    let clusters = ia
        .list_clusters(a::ListClustersRequest {
            parent: "projects/p/instances/-".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .clusters;
    let names: Vec<&str> = clusters.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "projects/p/instances/implicit/clusters/implicit-c1",
            "projects/p/instances/my-instance/clusters/my-cluster"
        ]
    );
    assert!(clusters.iter().all(|c| c.serve_nodes == 1));
    assert_eq!(clusters[1].location, "projects/p/locations/us-east1-b");
    let cname = "projects/p/instances/my-instance/clusters/my-cluster";
    let e = ia
        .delete_cluster(a::DeleteClusterRequest { name: cname.into() })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition);
    let e = ia
        .update_cluster(a::Cluster {
            name: cname.into(),
            serve_nodes: 5,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition);
    let e = ia
        .create_cluster(a::CreateClusterRequest {
            parent: "projects/p/instances/my-instance".into(),
            cluster_id: "second-cluster".into(),
            cluster: Some(clusters[1].clone()),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Unimplemented);

    // Partial update, then a restart: everything persists.
    let op = ia
        .partial_update_instance(a::PartialUpdateInstanceRequest {
            instance: Some(a::Instance {
                name: "projects/p/instances/my-instance".into(),
                display_name: "Renamed".into(),
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["display_name".into()],
            }),
        })
        .await
        .unwrap()
        .into_inner();
    let inst: a::Instance = unpack(&op, "google.bigtable.admin.v2.Instance");
    assert_eq!(inst.display_name, "Renamed");
    assert_eq!(inst.labels["env"], "test");
    drop((ia, ops, admin));
    s.shutdown().await;
    let s = Server::start_in(dir.path()).await;
    let (mut ia, _) = clients(&s).await;
    let got = ia
        .get_instance(a::GetInstanceRequest {
            name: "projects/p/instances/my-instance".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.display_name, "Renamed");
    let c = ia
        .get_cluster(a::GetClusterRequest { name: cname.into() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(c.location, "projects/p/locations/us-east1-b");

    // Deleting an instance deletes its tables; deletion protection stops it.
    let mut admin = s.admin.clone();
    admin
        .create_table(a::CreateTableRequest {
            parent: "projects/p/instances/my-instance".into(),
            table_id: "kept".into(),
            table: Some(a::Table {
                deletion_protection: true,
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap();
    let e = ia
        .delete_instance(a::DeleteInstanceRequest {
            name: "projects/p/instances/my-instance".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition);
    admin
        .update_table(a::UpdateTableRequest {
            table: Some(a::Table {
                name: "projects/p/instances/my-instance/tables/kept".into(),
                deletion_protection: false,
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["deletion_protection".into()],
            }),
            ..Default::default()
        })
        .await
        .unwrap();
    ia.delete_instance(a::DeleteInstanceRequest {
        name: "projects/p/instances/my-instance".into(),
    })
    .await
    .unwrap();
    let tables = admin
        .list_tables(a::ListTablesRequest {
            parent: "projects/p/instances/my-instance".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .tables;
    assert!(tables.is_empty());
    let e = ia
        .get_cluster(a::GetClusterRequest { name: cname.into() })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
    drop((ia, admin));
    s.shutdown().await;
}

#[tokio::test]
async fn app_profiles_and_iam_policies() {
    let s = Server::start().await;
    let (mut ia, _) = clients(&s).await;
    ia.create_instance(create_req("profiles", "profiles-c1"))
        .await
        .unwrap();
    let parent = "projects/p/instances/profiles";
    let single = |cluster: &str| {
        Some(a::app_profile::RoutingPolicy::SingleClusterRouting(
            a::app_profile::SingleClusterRouting {
                cluster_id: cluster.into(),
                allow_transactional_writes: false,
            },
        ))
    };
    let p = ia
        .create_app_profile(a::CreateAppProfileRequest {
            parent: parent.into(),
            app_profile_id: "batch".into(),
            app_profile: Some(a::AppProfile {
                description: "batch jobs".into(),
                routing_policy: single("profiles-c1"),
                ..Default::default()
            }),
            ignore_warnings: false,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(p.name, format!("{parent}/appProfiles/batch"));
    let e = ia
        .create_app_profile(a::CreateAppProfileRequest {
            parent: parent.into(),
            app_profile_id: "elsewhere".into(),
            app_profile: Some(a::AppProfile {
                routing_policy: single("no-such-cluster"),
                ..Default::default()
            }),
            ignore_warnings: false,
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    let listed = ia
        .list_app_profiles(a::ListAppProfilesRequest {
            parent: parent.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let ids: Vec<&str> = listed
        .app_profiles
        .iter()
        .map(|p| p.name.rsplit('/').next().unwrap())
        .collect();
    assert_eq!(ids, ["batch", "default"]);
    let op = ia
        .update_app_profile(a::UpdateAppProfileRequest {
            app_profile: Some(a::AppProfile {
                name: p.name.clone(),
                description: "nightly batch".into(),
                etag: p.etag.clone(),
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["description".into()],
            }),
            ignore_warnings: false,
        })
        .await
        .unwrap()
        .into_inner();
    let updated: a::AppProfile = unpack(&op, "google.bigtable.admin.v2.AppProfile");
    assert_eq!(updated.description, "nightly batch");
    assert_ne!(updated.etag, p.etag);
    // A stale etag is ABORTED.
    let e = ia
        .update_app_profile(a::UpdateAppProfileRequest {
            app_profile: Some(a::AppProfile {
                name: p.name.clone(),
                etag: p.etag.clone(),
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["description".into()],
            }),
            ignore_warnings: false,
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Aborted);
    ia.delete_app_profile(a::DeleteAppProfileRequest {
        name: p.name.clone(),
        ignore_warnings: true,
    })
    .await
    .unwrap();
    let e = ia
        .get_app_profile(a::GetAppProfileRequest { name: p.name })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);

    // IAM: stored and returned, etags guard concurrent changes.
    let empty = ia
        .get_iam_policy(iam::GetIamPolicyRequest {
            resource: parent.into(),
            options: None,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(empty.bindings.is_empty());
    let policy = iam::Policy {
        version: 1,
        bindings: vec![iam::Binding {
            role: "roles/bigtable.reader".into(),
            members: vec!["user:ada@example.com".into()],
            condition: None,
        }],
        etag: empty.etag.clone(),
        ..Default::default()
    };
    let set = ia
        .set_iam_policy(iam::SetIamPolicyRequest {
            resource: parent.into(),
            policy: Some(policy.clone()),
            update_mask: None,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(set.bindings, policy.bindings);
    let e = ia
        .set_iam_policy(iam::SetIamPolicyRequest {
            resource: parent.into(),
            policy: Some(policy),
            update_mask: None,
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Aborted);
    let got = ia
        .get_iam_policy(iam::GetIamPolicyRequest {
            resource: parent.into(),
            options: None,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got, set);
    let perms = ia
        .test_iam_permissions(iam::TestIamPermissionsRequest {
            resource: parent.into(),
            permissions: vec!["bigtable.tables.readRows".into()],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(perms.permissions, ["bigtable.tables.readRows"]);
    let e = ia
        .get_iam_policy(iam::GetIamPolicyRequest {
            resource: "projects/p/instances/absent".into(),
            options: None,
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
    drop(ia);
    s.shutdown().await;
}

#[tokio::test]
async fn unimplemented_rpcs_name_themselves() {
    let s = Server::start().await;
    let (mut ia, _) = clients(&s).await;
    let e = ia
        .list_hot_tablets(a::ListHotTabletsRequest::default())
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Unimplemented);
    assert_eq!(
        e.message(),
        "google.bigtable.admin.v2.BigtableInstanceAdmin/ListHotTablets is not implemented by Strata"
    );
    let mut admin = s.admin.clone();
    let e = admin
        .create_backup(a::CreateBackupRequest::default())
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Unimplemented);
    assert!(
        e.message()
            .contains("BigtableTableAdmin/CreateBackup is not implemented by Strata"),
        "{e:?}"
    );
    // A service the server does not have at all.
    let ch = Channel::from_shared(format!("http://{}", s.addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut grpc = tonic::client::Grpc::new(ch);
    grpc.ready().await.unwrap();
    let path = tonic::codegen::http::uri::PathAndQuery::from_static("/no.such.Service/Call");
    let e = grpc
        .unary::<(), (), _>(
            tonic::Request::new(()),
            path,
            tonic_prost::ProstCodec::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Unimplemented);
    assert_eq!(
        e.message(),
        "no.such.Service/Call is not implemented by Strata"
    );
    drop((ia, admin, grpc));
    s.shutdown().await;
}
