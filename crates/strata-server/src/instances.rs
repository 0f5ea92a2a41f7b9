//! Instances and clusters of the instance admin API, over the catalog's
//! metadata records (`MetaKind::Instance`, `MetaKind::Cluster`, each the
//! API's protobuf message under its full name).
//!
//! An instance exists if it was created, or if it holds tables: the
//! emulator habit of accepting any instance in table and data calls stays,
//! and such an *implicit* instance is described with defaults (its id as
//! display name, PRODUCTION, one cluster `<instance>-c1` at
//! `projects/<p>/locations/local`). Updating an implicit instance stores it.
//!
//! Strata serves one cluster per instance, with the server count as its
//! nodes; it does not replicate, so a second cluster is UNIMPLEMENTED and
//! the last cluster cannot be deleted (as in Bigtable).

use crate::admin_pb as a;
use crate::catalog::Catalog;
use crate::convert::{invalid, status};
use crate::operations::{timestamp, OperationStore};
use crate::resources;
use prost::Message;
use std::collections::BTreeMap;
use std::time::SystemTime;
use strata_table::{MetaChange, MetaKind};
use tonic::Status;

/// Nodes a cluster reports: the servers that serve it (one process).
pub const SERVE_NODES: i32 = 1;
/// The location of implicit clusters.
const LOCAL_LOCATION: &str = "local";

pub(crate) fn decode<M: Message + Default>(what: &str, bytes: &[u8]) -> Result<M, Status> {
    M::decode(bytes).map_err(|e| Status::data_loss(format!("the stored record of {what:?}: {e}")))
}

fn not_found(name: &str) -> Status {
    Status::not_found(format!("instance {name:?} not found"))
}

/// Instance names (`projects/P/instances/I`) that hold tables in `project`
/// (all projects when None).
fn instances_with_tables(db: &dyn Catalog, project: Option<&str>) -> Result<Vec<String>, Status> {
    let prefix = project.map_or(String::new(), |p| format!("projects/{p}/instances/"));
    let mut out: Vec<String> = db
        .tables(&prefix)
        .map_err(status)?
        .into_iter()
        .filter_map(|t| t.name.split_once("/tables/").map(|(i, _)| i.to_string()))
        .collect();
    out.dedup();
    Ok(out)
}

fn implicit_instance(name: &str) -> a::Instance {
    a::Instance {
        name: name.to_string(),
        display_name: resources::id_of(name).to_string(),
        state: a::instance::State::Ready as i32,
        r#type: a::instance::Type::Production as i32,
        ..Default::default()
    }
}

/// The instance `name` (created, or implicit with tables), or NOT_FOUND.
pub fn load_instance(db: &dyn Catalog, name: &str) -> Result<a::Instance, Status> {
    resources::instance(name)?;
    if let Some(bytes) = db.meta_get(MetaKind::Instance, name).map_err(status)? {
        return decode(name, &bytes);
    }
    if db
        .tables(&format!("{name}/tables/"))
        .map_err(status)?
        .is_empty()
    {
        return Err(not_found(name));
    }
    Ok(implicit_instance(name))
}

/// Whether an instance was created explicitly (has a record).
fn is_stored(db: &dyn Catalog, name: &str) -> Result<bool, Status> {
    Ok(db
        .meta_get(MetaKind::Instance, name)
        .map_err(status)?
        .is_some())
}

/// Every instance of a project, created or implicit, in name order.
pub fn list_instances(db: &dyn Catalog, project: &str) -> Result<Vec<a::Instance>, Status> {
    let mut all: BTreeMap<String, a::Instance> = BTreeMap::new();
    for (name, bytes) in db
        .meta_list(
            MetaKind::Instance,
            &format!("projects/{project}/instances/"),
        )
        .map_err(status)?
    {
        let i = decode(&name, &bytes)?;
        all.insert(name, i);
    }
    for name in instances_with_tables(db, Some(project))? {
        all.entry(name.clone())
            .or_insert_with(|| implicit_instance(&name));
    }
    Ok(all.into_values().collect())
}

fn implicit_cluster(instance: &str) -> a::Cluster {
    let project = instance.split('/').nth(1).unwrap_or_default();
    a::Cluster {
        name: format!("{instance}/clusters/{}-c1", resources::id_of(instance)),
        location: format!("projects/{project}/locations/{LOCAL_LOCATION}"),
        state: a::cluster::State::Ready as i32,
        serve_nodes: SERVE_NODES,
        default_storage_type: a::StorageType::Ssd as i32,
        ..Default::default()
    }
}

/// The clusters of an existing instance (one).
pub fn clusters_of(db: &dyn Catalog, instance: &str) -> Result<Vec<a::Cluster>, Status> {
    let stored = db
        .meta_list(MetaKind::Cluster, &format!("{instance}/clusters/"))
        .map_err(status)?;
    if stored.is_empty() {
        return Ok(vec![implicit_cluster(instance)]);
    }
    let mut out = Vec::with_capacity(stored.len());
    for (name, bytes) in stored {
        let mut c: a::Cluster = decode(&name, &bytes)?;
        c.serve_nodes = SERVE_NODES;
        out.push(c);
    }
    Ok(out)
}

/// The cluster `name`, or NOT_FOUND.
pub fn load_cluster(db: &dyn Catalog, name: &str) -> Result<a::Cluster, Status> {
    let (instance, _) = resources::child(name, "clusters")?;
    load_instance(db, instance)?;
    clusters_of(db, instance)?
        .into_iter()
        .find(|c| c.name == name)
        .ok_or_else(|| Status::not_found(format!("cluster {name:?} not found")))
}

/// CreateInstance: checks the request, stores the instance and its one
/// cluster in one batch, and returns the instance.
pub fn create_instance(
    db: &dyn Catalog,
    r: &a::CreateInstanceRequest,
) -> Result<a::Instance, Status> {
    let project = resources::project(&r.parent)?;
    resources::check_instance_id(&r.instance_id)?;
    let name = format!("projects/{project}/instances/{}", r.instance_id);
    let Some(spec) = &r.instance else {
        return Err(invalid("instance is required"));
    };
    resources::check_display_name(&spec.display_name)?;
    let (cluster_id, cluster) = match r.clusters.len() {
        0 => return Err(invalid("clusters: an instance needs one cluster")),
        1 => r.clusters.iter().next().expect("one cluster"),
        n => {
            return Err(Status::unimplemented(format!(
                "clusters: {n} given; replication is not implemented by Strata \
                 (one cluster per instance)"
            )))
        }
    };
    resources::check_cluster_id(cluster_id)?;
    check_location(project, &cluster.location)?;
    if load_instance(db, &name).is_ok() {
        return Err(Status::already_exists(format!(
            "instance {name:?} already exists"
        )));
    }
    let instance = a::Instance {
        name: name.clone(),
        display_name: spec.display_name.clone(),
        state: a::instance::State::Ready as i32,
        r#type: match spec.r#type {
            0 => a::instance::Type::Production as i32,
            t => t,
        },
        labels: spec.labels.clone(),
        create_time: Some(timestamp(SystemTime::now())),
        ..Default::default()
    };
    let cluster = a::Cluster {
        name: format!("{name}/clusters/{cluster_id}"),
        location: cluster.location.clone(),
        state: a::cluster::State::Ready as i32,
        serve_nodes: SERVE_NODES,
        default_storage_type: match cluster.default_storage_type {
            0 => a::StorageType::Ssd as i32,
            t => t,
        },
        ..Default::default()
    };
    db.meta_write(&[
        MetaChange::Create(MetaKind::Instance, name, instance.encode_to_vec()),
        MetaChange::Create(
            MetaKind::Cluster,
            cluster.name.clone(),
            cluster.encode_to_vec(),
        ),
    ])
    .map_err(status)?;
    tracing::info!(instance = %instance.name, cluster = %cluster.name, "created instance");
    Ok(instance)
}

fn check_location(project: &str, location: &str) -> Result<(), Status> {
    match location.split('/').collect::<Vec<_>>()[..] {
        ["projects", p, "locations", l] if p == project && !l.is_empty() => Ok(()),
        _ => Err(invalid(format!(
            "cluster location {location:?}: want projects/{project}/locations/<zone>"
        ))),
    }
}

/// Updates an instance's display name, type and labels, as `paths` say
/// (every one of them for UpdateInstance). Stores an implicit instance.
pub fn update_instance(
    db: &dyn Catalog,
    spec: &a::Instance,
    paths: &[String],
) -> Result<a::Instance, Status> {
    let mut current = load_instance(db, &spec.name)?;
    if paths.is_empty() {
        return Err(invalid("update_mask is required"));
    }
    for p in paths {
        match p.as_str() {
            "display_name" => {
                resources::check_display_name(&spec.display_name)?;
                current.display_name = spec.display_name.clone();
            }
            "labels" => current.labels = spec.labels.clone(),
            "type" => match a::instance::Type::try_from(spec.r#type) {
                // A development instance may become production, not back.
                Ok(a::instance::Type::Development)
                    if current.r#type == a::instance::Type::Production as i32 =>
                {
                    return Err(invalid(
                        "type: a PRODUCTION instance cannot become DEVELOPMENT",
                    ))
                }
                Ok(a::instance::Type::Unspecified) => {}
                Ok(t) => current.r#type = t as i32,
                Err(_) => return Err(invalid(format!("type {} is not a type", spec.r#type))),
            },
            other => {
                return Err(invalid(format!(
                    "update_mask path {other:?}: only display_name, labels and type can change"
                )))
            }
        }
    }
    db.meta_write(&[MetaChange::Put(
        MetaKind::Instance,
        current.name.clone(),
        current.encode_to_vec(),
    )])
    .map_err(status)?;
    Ok(current)
}

/// DeleteInstance: refused while a table in it has deletion protection;
/// otherwise deletes its tables, then its records.
pub fn delete_instance(db: &dyn Catalog, name: &str) -> Result<(), Status> {
    load_instance(db, name)?;
    let tables = db.tables(&format!("{name}/tables/")).map_err(status)?;
    if let Some(t) = tables.iter().find(|t| t.schema.deletion_protection) {
        return Err(Status::failed_precondition(format!(
            "table {:?} has deletion protection enabled, which protects its instance too; \
             disable it with UpdateTable first",
            t.name
        )));
    }
    let mut changes = Vec::new();
    for t in &tables {
        db.delete_table(&t.name).map_err(status)?;
        changes.push(MetaChange::Delete(MetaKind::IamPolicy, t.name.clone()));
    }
    let children = format!("{name}/");
    for kind in [MetaKind::Cluster, MetaKind::AppProfile] {
        for (n, _) in db.meta_list(kind, &children).map_err(status)? {
            changes.push(MetaChange::Delete(kind, n));
        }
    }
    changes.push(MetaChange::Delete(MetaKind::IamPolicy, name.to_string()));
    if is_stored(db, name)? {
        changes.push(MetaChange::Delete(MetaKind::Instance, name.to_string()));
    }
    db.meta_write(&changes).map_err(status)?;
    tracing::info!(instance = name, tables = tables.len(), "deleted instance");
    Ok(())
}

/// UpdateCluster / PartialUpdateCluster: Strata's node count is its server
/// count, so the only update that succeeds is one that changes nothing.
pub fn update_cluster(
    db: &dyn Catalog,
    spec: &a::Cluster,
    paths: &[String],
) -> Result<a::Cluster, Status> {
    let current = load_cluster(db, &spec.name)?;
    for p in paths {
        match p.as_str() {
            "serve_nodes" if spec.serve_nodes == current.serve_nodes => {}
            "serve_nodes" => {
                return Err(Status::failed_precondition(format!(
                    "serve_nodes {}: a Strata cluster's nodes are its servers ({SERVE_NODES}); \
                     start more servers instead",
                    spec.serve_nodes
                )))
            }
            p if p.starts_with("cluster_config") => {
                return Err(Status::failed_precondition(
                    "autoscaling is not available: a Strata cluster's nodes are its servers",
                ))
            }
            other => {
                return Err(invalid(format!(
                    "update_mask path {other:?}: only serve_nodes and cluster_config can change"
                )))
            }
        }
    }
    Ok(current)
}

/// The operation store's record of a finished instance-admin change.
pub fn finished(
    ops: &OperationStore,
    resource: &str,
    metadata: (&str, &impl Message),
    result: Result<(&str, &impl Message), Status>,
) -> crate::Operation {
    use crate::operations::any;
    ops.finish(
        resource,
        any(
            &format!("google.bigtable.admin.v2.{}", metadata.0),
            metadata.1,
        ),
        result.map(|(t, m)| any(&format!("google.bigtable.admin.v2.{t}"), m)),
    )
}
