//! IAM policies of instances and tables: GetIamPolicy, SetIamPolicy and
//! TestIamPermissions, for both admin services.
//!
//! Policies are stored in the catalog (`MetaKind::IamPolicy`, the
//! `google.iam.v1.Policy` message under the resource's name) and returned
//! as set, with an etag that changes on every set; a SetIamPolicy whose
//! etag is not the current one is ABORTED, as IAM answers concurrent
//! changes. Strata has no authentication yet, so nothing enforces a
//! policy: TestIamPermissions grants every permission asked about.

use crate::catalog::Catalog;
use crate::convert::{invalid, status};
use crate::instances;
use googleapis_tonic_google_bigtable_admin_v2::google::iam::v1 as iam;
use prost::Message;
use strata_table::{MetaChange, MetaKind};
use tonic::Status;

/// Permissions one TestIamPermissions call may ask about.
const PERMISSIONS_MAX: usize = 1000;

/// Checks that `resource` names an instance or table that exists.
fn check_resource(db: &dyn Catalog, resource: &str) -> Result<(), Status> {
    if resource.is_empty() {
        return Err(invalid("resource is required"));
    }
    if resource.contains("/tables/") {
        strata_table::database::validate_table_name(resource).map_err(status)?;
        db.get_table(resource).map_err(status)?;
        return Ok(());
    }
    if crate::resources::instance(resource).is_ok() {
        instances::load_instance(db, resource)?;
        return Ok(());
    }
    Err(invalid(format!(
        "resource {resource:?}: Strata keeps IAM policies for instances \
         (projects/<p>/instances/<i>) and tables (…/tables/<t>)"
    )))
}

fn etag_number(etag: &[u8]) -> u64 {
    std::str::from_utf8(etag)
        .ok()
        .and_then(|s| s.strip_prefix("strata-"))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

fn stored(db: &dyn Catalog, resource: &str) -> Result<iam::Policy, Status> {
    match db.meta_get(MetaKind::IamPolicy, resource).map_err(status)? {
        Some(bytes) => iam::Policy::decode(bytes.as_slice())
            .map_err(|e| Status::data_loss(format!("the stored IAM policy of {resource:?}: {e}"))),
        None => Ok(iam::Policy {
            version: 1,
            etag: b"strata-0".to_vec(),
            ..Default::default()
        }),
    }
}

/// GetIamPolicy: the policy set last, or an empty one.
pub fn get(db: &dyn Catalog, r: iam::GetIamPolicyRequest) -> Result<iam::Policy, Status> {
    check_resource(db, &r.resource)?;
    stored(db, &r.resource)
}

/// SetIamPolicy: replaces the policy if the request's etag (when given)
/// is the current one. The caller serializes calls.
pub fn set(db: &dyn Catalog, r: iam::SetIamPolicyRequest) -> Result<iam::Policy, Status> {
    check_resource(db, &r.resource)?;
    let Some(mut policy) = r.policy else {
        return Err(invalid("policy is required"));
    };
    if ![0, 1, 3].contains(&policy.version) {
        return Err(invalid(format!(
            "policy.version must be 0, 1 or 3, got {}",
            policy.version
        )));
    }
    let current = stored(db, &r.resource)?;
    if !policy.etag.is_empty() && policy.etag != current.etag {
        return Err(Status::aborted(format!(
            "the IAM policy of {:?} changed since it was read (etag mismatch); read it again",
            r.resource
        )));
    }
    policy.etag = format!("strata-{}", etag_number(&current.etag) + 1).into_bytes();
    db.meta_write(&[MetaChange::Put(
        MetaKind::IamPolicy,
        r.resource.clone(),
        policy.encode_to_vec(),
    )])
    .map_err(status)?;
    Ok(policy)
}

/// TestIamPermissions: nothing is enforced yet, so every permission asked
/// about is held.
pub fn test(
    db: &dyn Catalog,
    r: iam::TestIamPermissionsRequest,
) -> Result<iam::TestIamPermissionsResponse, Status> {
    check_resource(db, &r.resource)?;
    if r.permissions.len() > PERMISSIONS_MAX {
        return Err(invalid(format!(
            "{} permissions asked about, more than the {PERMISSIONS_MAX} allowed",
            r.permissions.len()
        )));
    }
    Ok(iam::TestIamPermissionsResponse {
        permissions: r.permissions,
    })
}
