//! google.bigtable.admin.v2.BigtableInstanceAdmin: instances and clusters
//! (`instances`), app profiles (`app_profiles`) and IAM policies (`iam`).
//! Changes run one at a time on the blocking pool (each is a synced catalog
//! write); those the API returns as long-running operations are recorded,
//! done, in the operation store. Logical and materialized views and hot
//! tablets answer UNIMPLEMENTED.

use crate::admin_pb as a;
use crate::catalog::Catalog;
use crate::convert::invalid;
use crate::data::blocking;
use crate::instances::{self, finished};
use crate::operations::{timestamp, OperationStore};
use crate::pb::bigtable_instance_admin_server::BigtableInstanceAdmin;
use crate::{app_profiles, iam, resources, Operation};
use googleapis_tonic_google_bigtable_admin_v2::google::iam::v1 as iam_pb;
use parking_lot::Mutex;
use std::sync::Arc;
use std::time::SystemTime;
use tonic::{Request, Response, Status};

pub struct InstanceAdminService {
    /// The local database's catalog, or a cluster's in etcd.
    pub(crate) db: Arc<dyn Catalog>,
    pub(crate) ops: Arc<OperationStore>,
    /// Serializes changes (each reads, checks, then writes records).
    pub(crate) changes: Arc<Mutex<()>>,
}

impl InstanceAdminService {
    /// Runs `f` on the blocking pool, alone among changes.
    async fn change<T: Send + 'static>(
        &self,
        f: impl FnOnce(&dyn Catalog) -> Result<T, Status> + Send + 'static,
    ) -> Result<T, Status> {
        let db = self.db.clone();
        let lock = self.changes.clone();
        blocking(move || {
            let _g = lock.lock();
            f(&*db)
        })
        .await
    }

    /// Runs a read on the blocking pool.
    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&dyn Catalog) -> Result<T, Status> + Send + 'static,
    ) -> Result<T, Status> {
        let db = self.db.clone();
        blocking(move || f(&*db)).await
    }
}

fn mask(m: Option<prost_types::FieldMask>) -> Vec<String> {
    m.map(|m| m.paths).unwrap_or_default()
}

#[tonic::async_trait]
impl BigtableInstanceAdmin for InstanceAdminService {
    async fn create_instance(
        &self,
        request: Request<a::CreateInstanceRequest>,
    ) -> Result<Response<Operation>, Status> {
        let r = request.into_inner();
        let started = timestamp(SystemTime::now());
        let req = r.clone();
        let instance = self
            .change(move |db| instances::create_instance(db, &req))
            .await?;
        let meta = a::CreateInstanceMetadata {
            original_request: Some(r),
            request_time: Some(started),
            finish_time: Some(timestamp(SystemTime::now())),
        };
        Ok(Response::new(finished(
            &self.ops,
            &instance.name,
            ("CreateInstanceMetadata", &meta),
            Ok(("Instance", &instance)),
        )))
    }

    async fn get_instance(
        &self,
        request: Request<a::GetInstanceRequest>,
    ) -> Result<Response<a::Instance>, Status> {
        let name = request.into_inner().name;
        let i = self
            .read(move |db| instances::load_instance(db, &name))
            .await?;
        Ok(Response::new(i))
    }

    async fn list_instances(
        &self,
        request: Request<a::ListInstancesRequest>,
    ) -> Result<Response<a::ListInstancesResponse>, Status> {
        let parent = request.into_inner().parent;
        let project = resources::project(&parent)?.to_string();
        let instances = self
            .read(move |db| instances::list_instances(db, &project))
            .await?;
        Ok(Response::new(a::ListInstancesResponse {
            instances,
            failed_locations: vec![],
            next_page_token: String::new(),
        }))
    }

    async fn update_instance(
        &self,
        request: Request<a::Instance>,
    ) -> Result<Response<a::Instance>, Status> {
        let spec = request.into_inner();
        // UpdateInstance replaces display name, type and labels.
        let paths = ["display_name", "type", "labels"]
            .map(String::from)
            .to_vec();
        let i = self
            .change(move |db| instances::update_instance(db, &spec, &paths))
            .await?;
        Ok(Response::new(i))
    }

    async fn partial_update_instance(
        &self,
        request: Request<a::PartialUpdateInstanceRequest>,
    ) -> Result<Response<Operation>, Status> {
        let r = request.into_inner();
        let started = timestamp(SystemTime::now());
        let Some(spec) = r.instance.clone() else {
            return Err(invalid("instance is required"));
        };
        let paths = mask(r.update_mask.clone());
        let i = self
            .change(move |db| instances::update_instance(db, &spec, &paths))
            .await?;
        let meta = a::UpdateInstanceMetadata {
            original_request: Some(r),
            request_time: Some(started),
            finish_time: Some(timestamp(SystemTime::now())),
        };
        Ok(Response::new(finished(
            &self.ops,
            &i.name,
            ("UpdateInstanceMetadata", &meta),
            Ok(("Instance", &i)),
        )))
    }

    async fn delete_instance(
        &self,
        request: Request<a::DeleteInstanceRequest>,
    ) -> Result<Response<()>, Status> {
        let name = request.into_inner().name;
        self.change(move |db| instances::delete_instance(db, &name))
            .await?;
        Ok(Response::new(()))
    }

    async fn create_cluster(
        &self,
        request: Request<a::CreateClusterRequest>,
    ) -> Result<Response<Operation>, Status> {
        let r = request.into_inner();
        resources::instance(&r.parent)?;
        resources::check_cluster_id(&r.cluster_id)?;
        let name = format!("{}/clusters/{}", r.parent, r.cluster_id);
        let parent = r.parent.clone();
        self.read(move |db| {
            instances::load_instance(db, &parent)?;
            if instances::load_cluster(db, &name).is_ok() {
                return Err(Status::already_exists(format!(
                    "cluster {name:?} already exists"
                )));
            }
            Err(Status::unimplemented(format!(
                "a second cluster in {parent:?}: replication is not implemented by Strata \
                 (one cluster per instance)"
            )))
        })
        .await
    }

    async fn get_cluster(
        &self,
        request: Request<a::GetClusterRequest>,
    ) -> Result<Response<a::Cluster>, Status> {
        let name = request.into_inner().name;
        let c = self
            .read(move |db| instances::load_cluster(db, &name))
            .await?;
        Ok(Response::new(c))
    }

    async fn list_clusters(
        &self,
        request: Request<a::ListClustersRequest>,
    ) -> Result<Response<a::ListClustersResponse>, Status> {
        let parent = request.into_inner().parent;
        // `projects/P/instances/-` lists the clusters of every instance.
        let clusters = match parent.strip_suffix("/instances/-") {
            Some(p) => {
                let project = resources::project(p)?.to_string();
                self.read(move |db| {
                    let mut out = Vec::new();
                    for i in instances::list_instances(db, &project)? {
                        out.extend(instances::clusters_of(db, &i.name)?);
                    }
                    Ok(out)
                })
                .await?
            }
            None => {
                resources::instance(&parent)?;
                self.read(move |db| {
                    instances::load_instance(db, &parent)?;
                    instances::clusters_of(db, &parent)
                })
                .await?
            }
        };
        Ok(Response::new(a::ListClustersResponse {
            clusters,
            failed_locations: vec![],
            next_page_token: String::new(),
        }))
    }

    async fn update_cluster(
        &self,
        request: Request<a::Cluster>,
    ) -> Result<Response<Operation>, Status> {
        let spec = request.into_inner();
        let started = timestamp(SystemTime::now());
        let req = spec.clone();
        let c = self
            .read(move |db| instances::update_cluster(db, &req, &["serve_nodes".to_string()]))
            .await?;
        let meta = a::UpdateClusterMetadata {
            original_request: Some(spec),
            request_time: Some(started),
            finish_time: Some(timestamp(SystemTime::now())),
        };
        Ok(Response::new(finished(
            &self.ops,
            &c.name,
            ("UpdateClusterMetadata", &meta),
            Ok(("Cluster", &c)),
        )))
    }

    async fn partial_update_cluster(
        &self,
        request: Request<a::PartialUpdateClusterRequest>,
    ) -> Result<Response<Operation>, Status> {
        let r = request.into_inner();
        let started = timestamp(SystemTime::now());
        let Some(spec) = r.cluster.clone() else {
            return Err(invalid("cluster is required"));
        };
        let paths = mask(r.update_mask.clone());
        if paths.is_empty() {
            return Err(invalid("update_mask is required"));
        }
        let c = self
            .read(move |db| instances::update_cluster(db, &spec, &paths))
            .await?;
        let meta = a::PartialUpdateClusterMetadata {
            request_time: Some(started),
            finish_time: Some(timestamp(SystemTime::now())),
            original_request: Some(r),
        };
        Ok(Response::new(finished(
            &self.ops,
            &c.name,
            ("PartialUpdateClusterMetadata", &meta),
            Ok(("Cluster", &c)),
        )))
    }

    async fn delete_cluster(
        &self,
        request: Request<a::DeleteClusterRequest>,
    ) -> Result<Response<()>, Status> {
        let name = request.into_inner().name;
        self.read(move |db| {
            instances::load_cluster(db, &name)?;
            Err(Status::failed_precondition(format!(
                "{name:?} is its instance's last cluster and cannot be deleted; \
                 delete the instance instead"
            )))
        })
        .await
    }

    async fn create_app_profile(
        &self,
        request: Request<a::CreateAppProfileRequest>,
    ) -> Result<Response<a::AppProfile>, Status> {
        let r = request.into_inner();
        let p = self.change(move |db| app_profiles::create(db, &r)).await?;
        Ok(Response::new(p))
    }

    async fn get_app_profile(
        &self,
        request: Request<a::GetAppProfileRequest>,
    ) -> Result<Response<a::AppProfile>, Status> {
        let name = request.into_inner().name;
        let p = self.read(move |db| app_profiles::get(db, &name)).await?;
        Ok(Response::new(p))
    }

    async fn list_app_profiles(
        &self,
        request: Request<a::ListAppProfilesRequest>,
    ) -> Result<Response<a::ListAppProfilesResponse>, Status> {
        let r = request.into_inner();
        let out = self.read(move |db| app_profiles::list(db, &r)).await?;
        Ok(Response::new(out))
    }

    async fn update_app_profile(
        &self,
        request: Request<a::UpdateAppProfileRequest>,
    ) -> Result<Response<Operation>, Status> {
        let r = request.into_inner();
        let p = self.change(move |db| app_profiles::update(db, &r)).await?;
        Ok(Response::new(finished(
            &self.ops,
            &p.name,
            ("UpdateAppProfileMetadata", &a::UpdateAppProfileMetadata {}),
            Ok(("AppProfile", &p)),
        )))
    }

    async fn delete_app_profile(
        &self,
        request: Request<a::DeleteAppProfileRequest>,
    ) -> Result<Response<()>, Status> {
        let name = request.into_inner().name;
        self.change(move |db| app_profiles::delete(db, &name))
            .await?;
        Ok(Response::new(()))
    }

    async fn get_iam_policy(
        &self,
        request: Request<iam_pb::GetIamPolicyRequest>,
    ) -> Result<Response<iam_pb::Policy>, Status> {
        let r = request.into_inner();
        Ok(Response::new(self.read(move |db| iam::get(db, r)).await?))
    }

    async fn set_iam_policy(
        &self,
        request: Request<iam_pb::SetIamPolicyRequest>,
    ) -> Result<Response<iam_pb::Policy>, Status> {
        let r = request.into_inner();
        Ok(Response::new(self.change(move |db| iam::set(db, r)).await?))
    }

    async fn test_iam_permissions(
        &self,
        request: Request<iam_pb::TestIamPermissionsRequest>,
    ) -> Result<Response<iam_pb::TestIamPermissionsResponse>, Status> {
        let r = request.into_inner();
        Ok(Response::new(self.read(move |db| iam::test(db, r)).await?))
    }
}
