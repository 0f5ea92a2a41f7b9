//! google.bigtable.admin.v2.BigtableTableAdmin over a `Database`: tables,
//! column families, DropRowRange, consistency tokens and tables' IAM
//! policies (`iam`). Snapshots, backups, authorized views and schema
//! bundles answer UNIMPLEMENTED (the generated defaults, named by
//! `unimplemented`).

use crate::admin_pb as a;
use crate::convert::{self, invalid, status};
use crate::data::blocking;
use crate::operations::{timestamp, OperationStore};
use crate::pb::bigtable_table_admin_server::BigtableTableAdmin;
use crate::{iam, Operation};
use googleapis_tonic_google_bigtable_admin_v2::google::iam::v1 as iam_pb;
use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::SystemTime;
use strata_table::{Database, FamilyChange, MetaChange, MetaKind, TableInfo};
use tonic::{Request, Response, Status};

/// Tables one ListTables page holds when the request names no page size.
const LIST_PAGE_SIZE_MAX: usize = 1000;

pub struct AdminService {
    pub(crate) db: Arc<Database>,
    pub(crate) ops: Arc<OperationStore>,
    /// Serializes catalog-record changes with the instance admin service.
    pub(crate) changes: Arc<Mutex<()>>,
}

pub(crate) fn check_parent(parent: &str) -> Result<(), Status> {
    let p: Vec<&str> = parent.split('/').collect();
    if p.len() == 4
        && p[0] == "projects"
        && p[2] == "instances"
        && !p[1].is_empty()
        && !p[3].is_empty()
    {
        Ok(())
    } else {
        Err(invalid(format!(
            "invalid parent {parent:?}: want projects/<project>/instances/<instance>"
        )))
    }
}

/// An UpdateTable mask path: `deletion_protection` is served; the other
/// fields Bigtable updates (and `column_families`, which Bigtable answers
/// UNIMPLEMENTED, pointing to ModifyColumnFamilies) are UNIMPLEMENTED;
/// anything else is not a field UpdateTable changes: INVALID_ARGUMENT.
pub(crate) fn check_update_path(p: &str) -> Result<(), Status> {
    let top = p.split('.').next().unwrap_or(p);
    match top {
        "deletion_protection" if p == top => Ok(()),
        "column_families" => Err(Status::unimplemented(
            "column_families cannot be updated with UpdateTable; use ModifyColumnFamilies",
        )),
        "change_stream_config"
        | "row_key_schema"
        | "automated_backup_policy"
        | "tiered_storage_config" => Err(Status::unimplemented(format!(
            "updating {p:?} is not implemented by Strata; only deletion_protection can be updated"
        ))),
        _ => Err(invalid(format!(
            "update_mask path {p:?} is not a field UpdateTable can change \
             (deletion_protection, change_stream_config, row_key_schema, automated_backup_policy, \
             tiered_storage_config)"
        ))),
    }
}

/// A CreateTable request, checked.
pub(crate) struct NewTable {
    pub name: String,
    pub families: BTreeMap<String, strata_table::Family>,
    pub deletion_protection: bool,
    /// The initial split rows, as given (checked row keys).
    pub splits: Vec<Vec<u8>>,
}

pub(crate) fn new_table(r: a::CreateTableRequest) -> Result<NewTable, Status> {
    check_parent(&r.parent)?;
    if r.table_id.is_empty() {
        return Err(invalid("table_id is required"));
    }
    let name = format!("{}/tables/{}", r.parent, r.table_id);
    let table = r.table.unwrap_or_default();
    let g = table.granularity;
    if g != a::table::TimestampGranularity::Unspecified as i32
        && g != a::table::TimestampGranularity::Millis as i32
    {
        return Err(invalid("granularity must be MILLIS"));
    }
    let mut families = BTreeMap::new();
    for (fname, cf) in &table.column_families {
        families.insert(fname.clone(), convert::family(cf)?);
    }
    // The table starts as one tablet per range between the splits.
    let mut splits = Vec::with_capacity(r.initial_splits.len());
    for s in r.initial_splits {
        strata_table::mutation::validate_row_key(&s.key).map_err(status)?;
        splits.push(s.key);
    }
    Ok(NewTable {
        name,
        families,
        deletion_protection: table.deletion_protection,
        splits,
    })
}

/// A ModifyColumnFamilies request's changes, checked.
pub(crate) fn family_changes(
    r: &a::ModifyColumnFamiliesRequest,
) -> Result<Vec<FamilyChange>, Status> {
    use a::modify_column_families_request::modification::Mod;
    let mut changes = Vec::with_capacity(r.modifications.len());
    for m in &r.modifications {
        let change = match &m.r#mod {
            Some(Mod::Create(cf)) => FamilyChange::Create(m.id.clone(), convert::family(cf)?),
            Some(Mod::Update(cf)) => {
                let paths = m
                    .update_mask
                    .as_ref()
                    .map(|u| u.paths.clone())
                    .unwrap_or_default();
                if let Some(p) = paths.iter().find(|p| p.as_str() != "gc_rule") {
                    return Err(invalid(format!(
                        "cannot update {p:?} of a column family; only gc_rule can change"
                    )));
                }
                if cf.value_type.is_some() && paths.is_empty() {
                    return Err(invalid("a column family's value_type cannot change"));
                }
                FamilyChange::UpdateGcRule(m.id.clone(), convert::gc_rule(cf.gc_rule.as_ref(), 0)?)
            }
            Some(Mod::Drop(true)) => FamilyChange::Drop(m.id.clone()),
            Some(Mod::Drop(false)) | None => {
                return Err(invalid(format!(
                    "modification of {:?} has no operation set",
                    m.id
                )))
            }
        };
        changes.push(change);
    }
    Ok(changes)
}

/// One page of a ListTables answer over `all` (the parent's tables, in
/// name order).
pub(crate) fn list_page(
    all: &[TableInfo],
    r: &a::ListTablesRequest,
) -> Result<a::ListTablesResponse, Status> {
    if r.page_size < 0 {
        return Err(invalid("page_size must not be negative"));
    }
    let page = if r.page_size == 0 {
        LIST_PAGE_SIZE_MAX
    } else {
        r.page_size as usize
    };
    let view = if r.view == a::table::View::Unspecified as i32 {
        a::table::View::NameOnly as i32
    } else {
        r.view
    };
    let start = all.partition_point(|t| !r.page_token.is_empty() && t.name <= r.page_token);
    let tables: Vec<a::Table> = all[start..]
        .iter()
        .take(page)
        .map(|t| table_pb(t, view))
        .collect();
    let next_page_token = if start + tables.len() < all.len() {
        tables.last().map(|t| t.name.clone()).unwrap_or_default()
    } else {
        String::new()
    };
    Ok(a::ListTablesResponse {
        tables,
        next_page_token,
    })
}

/// A table as the API returns it, in a view.
pub(crate) fn table_pb(info: &TableInfo, view: i32) -> a::Table {
    use a::table::View;
    let mut t = a::Table {
        name: info.name.clone(),
        ..Default::default()
    };
    if view == View::NameOnly as i32 {
        return t;
    }
    t.column_families = info
        .schema
        .families
        .iter()
        .map(|(name, f)| {
            let cf = a::ColumnFamily {
                gc_rule: Some(convert::gc_rule_pb(&f.gc_rule)),
                value_type: convert::value_type_pb(f.value_type),
            };
            (name.clone(), cf)
        })
        .collect::<BTreeMap<_, _>>();
    t.granularity = a::table::TimestampGranularity::Millis as i32;
    t.deletion_protection = info.schema.deletion_protection;
    t
}

#[tonic::async_trait]
impl BigtableTableAdmin for AdminService {
    async fn create_table(
        &self,
        request: Request<a::CreateTableRequest>,
    ) -> Result<Response<a::Table>, Status> {
        let NewTable {
            name,
            families,
            deletion_protection: protect,
            splits,
        } = new_table(request.into_inner())?;
        let db = self.db.clone();
        let info = blocking(move || {
            db.create_table_with_splits(&name, families, protect, &splits)
                .map_err(status)
        })
        .await?;
        Ok(Response::new(table_pb(
            &info,
            a::table::View::SchemaView as i32,
        )))
    }

    async fn list_tables(
        &self,
        request: Request<a::ListTablesRequest>,
    ) -> Result<Response<a::ListTablesResponse>, Status> {
        let r = request.into_inner();
        check_parent(&r.parent)?;
        let all = self.db.list_tables(&format!("{}/tables/", r.parent));
        Ok(Response::new(list_page(&all, &r)?))
    }

    async fn get_table(
        &self,
        request: Request<a::GetTableRequest>,
    ) -> Result<Response<a::Table>, Status> {
        let r = request.into_inner();
        strata_table::database::validate_table_name(&r.name).map_err(status)?;
        let info = self.db.get_table(&r.name).map_err(status)?;
        let view = if r.view == a::table::View::Unspecified as i32 {
            a::table::View::SchemaView as i32
        } else {
            r.view
        };
        Ok(Response::new(table_pb(&info, view)))
    }

    async fn update_table(
        &self,
        request: Request<a::UpdateTableRequest>,
    ) -> Result<Response<Operation>, Status> {
        let r = request.into_inner();
        let Some(table) = r.table else {
            return Err(invalid("table is required"));
        };
        strata_table::database::validate_table_name(&table.name).map_err(status)?;
        let started = timestamp(SystemTime::now());
        let paths = r.update_mask.map(|m| m.paths).unwrap_or_default();
        if paths.is_empty() {
            return Err(invalid("update_mask is required"));
        }
        for p in &paths {
            check_update_path(p)?;
        }
        let db = self.db.clone();
        let name = table.name.clone();
        let info = blocking(move || {
            db.set_deletion_protection(&name, table.deletion_protection)
                .map_err(status)
        })
        .await?;
        let t = table_pb(&info, a::table::View::SchemaView as i32);
        let meta = a::UpdateTableMetadata {
            name: info.name.clone(),
            start_time: Some(started),
            end_time: Some(timestamp(SystemTime::now())),
        };
        Ok(Response::new(crate::instances::finished(
            &self.ops,
            &info.name,
            ("UpdateTableMetadata", &meta),
            Ok(("Table", &t)),
        )))
    }

    async fn delete_table(
        &self,
        request: Request<a::DeleteTableRequest>,
    ) -> Result<Response<()>, Status> {
        let r = request.into_inner();
        strata_table::database::validate_table_name(&r.name).map_err(status)?;
        let db = self.db.clone();
        let lock = self.changes.clone();
        blocking(move || {
            let _g = lock.lock();
            db.delete_table(&r.name).map_err(status)?;
            // The table's IAM policy goes with it.
            db.meta_write(&[MetaChange::Delete(MetaKind::IamPolicy, r.name)])
                .map_err(status)
        })
        .await?;
        Ok(Response::new(()))
    }

    async fn modify_column_families(
        &self,
        request: Request<a::ModifyColumnFamiliesRequest>,
    ) -> Result<Response<a::Table>, Status> {
        let r = request.into_inner();
        strata_table::database::validate_table_name(&r.name).map_err(status)?;
        if r.modifications.is_empty() {
            return Err(invalid("no modifications provided"));
        }
        let changes = family_changes(&r)?;
        let db = self.db.clone();
        let info = blocking(move || db.modify_families(&r.name, &changes).map_err(status)).await?;
        Ok(Response::new(table_pb(
            &info,
            a::table::View::SchemaView as i32,
        )))
    }

    async fn drop_row_range(
        &self,
        request: Request<a::DropRowRangeRequest>,
    ) -> Result<Response<()>, Status> {
        use a::drop_row_range_request::Target;
        let r = request.into_inner();
        strata_table::database::validate_table_name(&r.name).map_err(status)?;
        let prefix = match r.target {
            Some(Target::RowKeyPrefix(p)) if !p.is_empty() => Some(p),
            Some(Target::RowKeyPrefix(_)) => {
                return Err(invalid("row_key_prefix must not be empty"))
            }
            Some(Target::DeleteAllDataFromTable(true)) => None,
            // "Setting this to false is a no-op" (the proto): the table
            // must exist, nothing else happens.
            Some(Target::DeleteAllDataFromTable(false)) => {
                self.db.get_table(&r.name).map_err(status)?;
                return Ok(Response::new(()));
            }
            None => return Err(invalid("set row_key_prefix or delete_all_data_from_table")),
        };
        let db = self.db.clone();
        blocking(move || {
            db.drop_row_range(&r.name, prefix.as_deref())
                .map_err(status)
        })
        .await?;
        Ok(Response::new(()))
    }

    async fn generate_consistency_token(
        &self,
        request: Request<a::GenerateConsistencyTokenRequest>,
    ) -> Result<Response<a::GenerateConsistencyTokenResponse>, Status> {
        let r = request.into_inner();
        strata_table::database::validate_table_name(&r.name).map_err(status)?;
        self.db.get_table(&r.name).map_err(status)?;
        // One replica: every acknowledged write is already visible, so a
        // token only has to identify the table it was made for.
        Ok(Response::new(a::GenerateConsistencyTokenResponse {
            consistency_token: format!("strata-1:{}", r.name),
        }))
    }

    async fn check_consistency(
        &self,
        request: Request<a::CheckConsistencyRequest>,
    ) -> Result<Response<a::CheckConsistencyResponse>, Status> {
        let r = request.into_inner();
        strata_table::database::validate_table_name(&r.name).map_err(status)?;
        self.db.get_table(&r.name).map_err(status)?;
        if r.consistency_token != format!("strata-1:{}", r.name) {
            return Err(invalid("unknown consistency token for this table"));
        }
        Ok(Response::new(a::CheckConsistencyResponse {
            consistent: true,
        }))
    }

    async fn get_iam_policy(
        &self,
        request: Request<iam_pb::GetIamPolicyRequest>,
    ) -> Result<Response<iam_pb::Policy>, Status> {
        let r = request.into_inner();
        let db = self.db.clone();
        Ok(Response::new(blocking(move || iam::get(&*db, r)).await?))
    }

    async fn set_iam_policy(
        &self,
        request: Request<iam_pb::SetIamPolicyRequest>,
    ) -> Result<Response<iam_pb::Policy>, Status> {
        let r = request.into_inner();
        let db = self.db.clone();
        let lock = self.changes.clone();
        Ok(Response::new(
            blocking(move || {
                let _g = lock.lock();
                iam::set(&*db, r)
            })
            .await?,
        ))
    }

    async fn test_iam_permissions(
        &self,
        request: Request<iam_pb::TestIamPermissionsRequest>,
    ) -> Result<Response<iam_pb::TestIamPermissionsResponse>, Status> {
        let r = request.into_inner();
        let db = self.db.clone();
        Ok(Response::new(blocking(move || iam::test(&*db, r)).await?))
    }
}
