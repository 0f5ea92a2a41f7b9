//! App profiles of the instance admin API, stored in the catalog
//! (`MetaKind::AppProfile`, the `AppProfile` message under its full name).
//! Strata has one cluster per instance, so a profile's routing has no
//! effect yet; profiles are kept and returned as set.
//!
//! Every instance has a `default` profile (single-cluster routing to its
//! cluster) until it is updated, when it is stored like any other; it
//! cannot be deleted. Every change gives a profile a new etag; an update
//! or delete naming another etag is ABORTED.

use crate::admin_pb as a;
use crate::catalog::Catalog;
use crate::convert::{invalid, status};
use crate::instances::{clusters_of, decode, list_instances, load_instance};
use crate::resources;
use a::app_profile::RoutingPolicy;
use prost::Message;
use strata_table::{MetaChange, MetaKind};
use tonic::Status;

/// The profile every instance has.
const DEFAULT_PROFILE: &str = "default";
/// Profiles one ListAppProfiles page holds by default and at most.
const LIST_PAGE_SIZE_MAX: usize = 1000;

fn default_profile(db: &dyn Catalog, instance: &str) -> Result<a::AppProfile, Status> {
    let cluster = clusters_of(db, instance)?
        .into_iter()
        .next()
        .map(|c| resources::id_of(&c.name).to_string())
        .unwrap_or_default();
    Ok(a::AppProfile {
        name: format!("{instance}/appProfiles/{DEFAULT_PROFILE}"),
        etag: "strata-0".into(),
        description: "Default application profile".into(),
        routing_policy: Some(RoutingPolicy::SingleClusterRouting(
            a::app_profile::SingleClusterRouting {
                cluster_id: cluster,
                allow_transactional_writes: true,
            },
        )),
        isolation: None,
    })
}

fn stored(db: &dyn Catalog, name: &str) -> Result<Option<a::AppProfile>, Status> {
    match db.meta_get(MetaKind::AppProfile, name).map_err(status)? {
        Some(bytes) => Ok(Some(decode(name, &bytes)?)),
        None => Ok(None),
    }
}

/// The profile `name`, or NOT_FOUND.
pub fn get(db: &dyn Catalog, name: &str) -> Result<a::AppProfile, Status> {
    let (instance, id) = resources::child(name, "appProfiles")?;
    load_instance(db, instance)?;
    match stored(db, name)? {
        Some(p) => Ok(p),
        None if id == DEFAULT_PROFILE => default_profile(db, instance),
        None => Err(Status::not_found(format!("app profile {name:?} not found"))),
    }
}

/// The routing must name clusters of the instance.
fn check_routing(db: &dyn Catalog, instance: &str, p: &a::AppProfile) -> Result<(), Status> {
    let clusters: Vec<String> = clusters_of(db, instance)?
        .iter()
        .map(|c| resources::id_of(&c.name).to_string())
        .collect();
    let named: Vec<&String> = match &p.routing_policy {
        None => {
            return Err(invalid(
                "app_profile.routing_policy is required: multi_cluster_routing_use_any \
                 or single_cluster_routing",
            ))
        }
        Some(RoutingPolicy::MultiClusterRoutingUseAny(m)) => m.cluster_ids.iter().collect(),
        Some(RoutingPolicy::SingleClusterRouting(s)) => vec![&s.cluster_id],
    };
    if let Some(c) = named.into_iter().find(|c| !clusters.contains(c)) {
        return Err(invalid(format!(
            "routing names cluster {c:?}, which is not a cluster of {instance:?} (it has {clusters:?})"
        )));
    }
    Ok(())
}

fn etag_after(etag: &str) -> String {
    let n: u64 = etag
        .strip_prefix("strata-")
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    format!("strata-{}", n + 1)
}

fn put(db: &dyn Catalog, p: &a::AppProfile) -> Result<(), Status> {
    db.meta_write(&[MetaChange::Put(
        MetaKind::AppProfile,
        p.name.clone(),
        p.encode_to_vec(),
    )])
    .map_err(status)
}

/// CreateAppProfile.
pub fn create(db: &dyn Catalog, r: &a::CreateAppProfileRequest) -> Result<a::AppProfile, Status> {
    resources::instance(&r.parent)?;
    load_instance(db, &r.parent)?;
    resources::check_app_profile_id(&r.app_profile_id)?;
    let name = format!("{}/appProfiles/{}", r.parent, r.app_profile_id);
    if get(db, &name).is_ok() {
        return Err(Status::already_exists(format!(
            "app profile {name:?} already exists"
        )));
    }
    let Some(spec) = &r.app_profile else {
        return Err(invalid("app_profile is required"));
    };
    check_routing(db, &r.parent, spec)?;
    let p = a::AppProfile {
        name,
        etag: "strata-1".into(),
        ..spec.clone()
    };
    // Created only if absent (another server may create it at once).
    db.meta_write(&[MetaChange::Create(
        MetaKind::AppProfile,
        p.name.clone(),
        p.encode_to_vec(),
    )])
    .map_err(status)?;
    Ok(p)
}

/// The profiles of one existing instance: `default` and the stored ones.
fn profiles_of(db: &dyn Catalog, instance: &str) -> Result<Vec<a::AppProfile>, Status> {
    let mut all = Vec::new();
    for (name, bytes) in db
        .meta_list(MetaKind::AppProfile, &format!("{instance}/appProfiles/"))
        .map_err(status)?
    {
        all.push(decode::<a::AppProfile>(&name, &bytes)?);
    }
    let default = default_profile(db, instance)?;
    if !all.iter().any(|p| p.name == default.name) {
        all.push(default);
    }
    Ok(all)
}

/// ListAppProfiles: the profiles of an instance, or of every instance of
/// the project for `projects/P/instances/-` (as ListClusters), in name
/// order.
pub fn list(
    db: &dyn Catalog,
    r: &a::ListAppProfilesRequest,
) -> Result<a::ListAppProfilesResponse, Status> {
    let instances = match r.parent.strip_suffix("/instances/-") {
        Some(p) => {
            let project = resources::project(p)?;
            list_instances(db, project)?
                .into_iter()
                .map(|i| i.name)
                .collect()
        }
        None => {
            resources::instance(&r.parent)?;
            load_instance(db, &r.parent)?;
            vec![r.parent.clone()]
        }
    };
    if r.page_size < 0 {
        return Err(invalid("page_size must not be negative"));
    }
    let page = match r.page_size {
        0 => LIST_PAGE_SIZE_MAX,
        n => (n as usize).min(LIST_PAGE_SIZE_MAX),
    };
    let mut all = Vec::new();
    for i in &instances {
        all.extend(profiles_of(db, i)?);
    }
    // Page tokens are names, so the list is in name order (across
    // instances too: `i-a/…` sorts before `i/…`).
    all.sort_by(|x, y| x.name.cmp(&y.name));
    let start = all.partition_point(|p| !r.page_token.is_empty() && p.name <= r.page_token);
    let mut app_profiles: Vec<a::AppProfile> =
        all[start..].iter().take(page + 1).cloned().collect();
    let next_page_token = if app_profiles.len() > page {
        app_profiles.truncate(page);
        app_profiles
            .last()
            .map(|p| p.name.clone())
            .unwrap_or_default()
    } else {
        String::new()
    };
    Ok(a::ListAppProfilesResponse {
        app_profiles,
        next_page_token,
        failed_locations: vec![],
    })
}

fn check_etag(current: &a::AppProfile, given: &str) -> Result<(), Status> {
    if !given.is_empty() && given != current.etag {
        return Err(Status::aborted(format!(
            "app profile {:?} changed since it was read (etag {given:?}, now {:?})",
            current.name, current.etag
        )));
    }
    Ok(())
}

/// UpdateAppProfile: the fields the mask names.
pub fn update(db: &dyn Catalog, r: &a::UpdateAppProfileRequest) -> Result<a::AppProfile, Status> {
    let Some(spec) = &r.app_profile else {
        return Err(invalid("app_profile is required"));
    };
    let (instance, _) = resources::child(&spec.name, "appProfiles")?;
    let mut p = get(db, &spec.name)?;
    check_etag(&p, &spec.etag)?;
    let paths = r
        .update_mask
        .as_ref()
        .map(|m| m.paths.clone())
        .unwrap_or_default();
    if paths.is_empty() {
        return Err(invalid("update_mask is required"));
    }
    for path in &paths {
        match path.as_str() {
            "description" => p.description = spec.description.clone(),
            "multi_cluster_routing_use_any" | "single_cluster_routing" => {
                p.routing_policy = spec.routing_policy.clone();
            }
            "standard_isolation" | "data_boost_isolation_read_only" | "priority" => {
                p.isolation = spec.isolation;
            }
            other => {
                return Err(invalid(format!(
                    "update_mask path {other:?}: an app profile's description, routing \
                     (multi_cluster_routing_use_any, single_cluster_routing) and isolation \
                     (standard_isolation, data_boost_isolation_read_only) can change"
                )))
            }
        }
    }
    check_routing(db, instance, &p)?;
    p.etag = etag_after(&p.etag);
    put(db, &p)?;
    Ok(p)
}

/// DeleteAppProfile.
pub fn delete(db: &dyn Catalog, name: &str) -> Result<(), Status> {
    let (_, id) = resources::child(name, "appProfiles")?;
    get(db, name)?;
    if id == DEFAULT_PROFILE {
        return Err(Status::failed_precondition(
            "the default app profile cannot be deleted",
        ));
    }
    db.meta_write(&[MetaChange::Delete(MetaKind::AppProfile, name.to_string())])
        .map_err(status)
}
