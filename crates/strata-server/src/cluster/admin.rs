//! google.bigtable.admin.v2.BigtableTableAdmin on a cluster server: the
//! schemas live in etcd (`strata_cluster::schema_store`), changed by any
//! server with compare-and-swap; data-changing parts (DropRowRange, a
//! dropped family's purge) run on each tablet's owner, reached like a
//! data request (docs/cluster.md, "Schema").
//!
//! Read-your-writes: a change is acknowledged only after every tablet of
//! the table has applied it (its owner re-reads the schema from etcd when
//! told), and a tablet opens with the schema read from etcd, not from a
//! watch that may lag. Tables' IAM policies are records in etcd
//! (`catalog`). Backups, snapshots and authorized views answer
//! UNIMPLEMENTED, as on a single server.

use std::sync::Arc;
use std::time::Instant;

use strata_cluster::schema_store::{self, TableSchema};
use strata_cluster::tablet_map::TabletState;
use strata_table::{plan_family_changes, Family, Schema, TableInfo};
use tonic::{Request, Response, Status};

use super::host::ClusterSchema;
use super::route::{Target, ROUTE_POLL, ROUTE_WAIT};
use super::{etcd_status, Cluster};
use crate::admin::{
    check_parent, check_update_path, family_changes, list_page, new_table, table_pb,
};
use crate::admin_pb as a;
use crate::convert::{invalid, status};
use crate::data::blocking;
use crate::pb::bigtable_table_admin_server::BigtableTableAdmin;
use googleapis_tonic_google_bigtable_admin_v2::google::iam::v1 as iam_pb;

/// Times a schema change is tried again after losing a race with another.
const CAS_ATTEMPTS_MAX: usize = 16;

pub struct ClusterAdmin {
    pub(crate) cluster: Arc<Cluster>,
    /// UpdateTable's (finished) operations, for GetOperation on this
    /// server.
    pub(crate) ops: Arc<crate::operations::OperationStore>,
    /// Tables' IAM policies (and the instances they check).
    pub(crate) catalog: Arc<dyn crate::catalog::Catalog>,
}

fn info(s: &TableSchema) -> Result<TableInfo, Status> {
    super::table_info(s).map_err(status)
}

fn schema_bytes(families: std::collections::BTreeMap<String, Family>, protect: bool) -> Vec<u8> {
    Schema {
        // A tablet's database picks its own tree for the table.
        tree: String::new(),
        deletion_protection: protect,
        families,
    }
    .encode()
}

impl ClusterAdmin {
    async fn get(&self, table: &str) -> Result<TableSchema, Status> {
        strata_table::database::validate_table_name(table).map_err(status)?;
        match schema_store::get(&self.cluster.etcd, &self.cluster.name, table).await {
            Ok(Some(s)) => {
                self.cluster.view.put_schema(s.clone());
                Ok(s)
            }
            Ok(None) => Err(Status::not_found(format!("table {table:?} not found"))),
            Err(e) => Err(etcd_status(e)),
        }
    }

    /// Reads `table`'s schema, changes it with `change`, and writes it back
    /// unless the table changed meanwhile (then again, a few times).
    async fn change_schema(
        &self,
        table: &str,
        change: impl Fn(&Schema) -> Result<Schema, Status>,
    ) -> Result<TableSchema, Status> {
        for _ in 0..CAS_ATTEMPTS_MAX {
            let old = self.get(table).await?;
            let new = change(&info(&old)?.schema)?;
            match schema_store::update(&self.cluster.etcd, &self.cluster.name, &old, &new.encode())
                .await
            {
                Ok(s) => {
                    self.cluster.view.put_schema(s.clone());
                    return Ok(s);
                }
                Err(strata_cluster::Error::Conflict(_)) => continue,
                Err(e) => return Err(etcd_status(e)),
            }
        }
        Err(Status::aborted(format!(
            "table {table:?} kept changing; try again"
        )))
    }

    /// Calls `call` for every tablet of `table` on its owner, one after
    /// another in row order (each retried while it is not served), each
    /// next tablet the one holding the row where the last one ended
    /// (`Cluster::routed_to_end`).
    async fn on_every_tablet<F, Fut>(&self, table: &str, call: F) -> Result<(), Status>
    where
        F: Fn(Target) -> Fut,
        Fut: std::future::Future<Output = Result<(), Status>>,
    {
        let mut start: Vec<u8> = Vec::new();
        loop {
            let ((), end) = self.cluster.routed_to_end(table, &start, &call).await?;
            match end {
                Some(end) => start = end,
                None => return Ok(()),
            }
        }
    }

    /// Makes every tablet of `table` apply its schema as of `revision`.
    async fn push_schema(&self, table: &str, revision: i64) -> Result<(), Status> {
        let cluster = self.cluster.clone();
        self.on_every_tablet(table, |target| {
            let cluster = cluster.clone();
            async move {
                match target {
                    Target::Local(h) => {
                        if h.schema_revision() < revision {
                            cluster.refresh_schema(&h.record.table).await?;
                        }
                        Ok(())
                    }
                    Target::Remote { addr, tablet } => {
                        // An empty ModifyColumnFamilies for a tablet: its
                        // owner re-reads the schema from etcd.
                        let mut req = Request::new(a::ModifyColumnFamiliesRequest {
                            name: table.to_string(),
                            ..Default::default()
                        });
                        req.metadata_mut().insert(
                            super::route::TABLET_HEADER,
                            tablet
                                .parse()
                                .map_err(|_| Status::internal("tablet header"))?,
                        );
                        cluster
                            .pool
                            .admin(&addr)?
                            .modify_column_families(req)
                            .await?;
                        Ok(())
                    }
                }
            }
        })
        .await
    }

    /// Waits (up to `ROUTE_WAIT`) until every tablet of `table` is served.
    async fn wait_served(&self, table: &str) {
        let deadline = Instant::now() + ROUTE_WAIT;
        while Instant::now() < deadline {
            let map = self.cluster.view.map();
            let mut tablets = map.tablets(table).peekable();
            if tablets.peek().is_some() && tablets.all(|t| t.state == TabletState::Serving) {
                return;
            }
            self.cluster.view.changed(ROUTE_POLL).await;
        }
    }
}

impl Cluster {
    /// Applies `table`'s schema as etcd has it now to its tablets here.
    pub(crate) async fn refresh_schema(&self, table: &str) -> Result<(), Status> {
        let Some(s) = schema_store::get(&self.etcd, &self.name, table)
            .await
            .map_err(etcd_status)?
        else {
            return Ok(()); // deleted: its tablets close
        };
        let schema = ClusterSchema::decode(&s.schema, s.mod_revision).map_err(Status::internal)?;
        self.view.put_schema(s);
        let host = self.host.clone();
        let table = table.to_string();
        blocking(move || {
            host.apply_schema(&table, &schema);
            Ok(())
        })
        .await
    }
}

#[tonic::async_trait]
impl BigtableTableAdmin for ClusterAdmin {
    async fn create_table(
        &self,
        request: Request<a::CreateTableRequest>,
    ) -> Result<Response<a::Table>, Status> {
        let t = new_table(request.into_inner())?;
        strata_table::database::validate_table_name(&t.name).map_err(status)?;
        strata_table::validate_families(&t.families).map_err(status)?;
        let mut splits: Vec<Vec<u8>> = t.splits.into_iter().filter(|s| !s.is_empty()).collect();
        splits.sort();
        splits.dedup();
        let bytes = schema_bytes(t.families, t.deletion_protection);
        let (_, revision) = schema_store::create_table(
            &self.cluster.etcd,
            &self.cluster.name,
            &t.name,
            &splits,
            &bytes,
        )
        .await
        .map_err(|e| match e {
            strata_cluster::Error::AlreadyExists(_) => {
                Status::already_exists(format!("table {:?} already exists", t.name))
            }
            e => etcd_status(e),
        })?;
        let created = TableSchema {
            table: t.name.clone(),
            schema: bytes,
            mod_revision: revision,
        };
        self.cluster.view.put_schema(created.clone());
        tracing::info!(table = %t.name, tablets = splits.len() + 1, "created table");
        // Bigtable's CreateTable returns a table ready for writes.
        self.wait_served(&t.name).await;
        Ok(Response::new(table_pb(
            &info(&created)?,
            a::table::View::SchemaView as i32,
        )))
    }

    async fn list_tables(
        &self,
        request: Request<a::ListTablesRequest>,
    ) -> Result<Response<a::ListTablesResponse>, Status> {
        let r = request.into_inner();
        check_parent(&r.parent)?;
        let prefix = format!("{}/tables/", r.parent);
        let (all, _) = schema_store::list(&self.cluster.etcd, &self.cluster.name)
            .await
            .map_err(etcd_status)?;
        let mut infos = Vec::new();
        for s in all.iter().filter(|s| s.table.starts_with(&prefix)) {
            infos.push(info(s)?);
        }
        infos.sort_by(|x, y| x.name.cmp(&y.name));
        Ok(Response::new(list_page(&infos, &r)?))
    }

    async fn get_table(
        &self,
        request: Request<a::GetTableRequest>,
    ) -> Result<Response<a::Table>, Status> {
        let r = request.into_inner();
        let s = self.get(&r.name).await?;
        let view = if r.view == a::table::View::Unspecified as i32 {
            a::table::View::SchemaView as i32
        } else {
            r.view
        };
        Ok(Response::new(table_pb(&info(&s)?, view)))
    }

    async fn update_table(
        &self,
        request: Request<a::UpdateTableRequest>,
    ) -> Result<Response<crate::Operation>, Status> {
        let r = request.into_inner();
        let Some(table) = r.table else {
            return Err(invalid("table is required"));
        };
        let paths = r.update_mask.map(|m| m.paths).unwrap_or_default();
        if paths.is_empty() {
            return Err(invalid("update_mask is required"));
        }
        for p in &paths {
            check_update_path(p)?;
        }
        let protect = table.deletion_protection;
        let s = self
            .change_schema(&table.name, |old| {
                Ok(Schema {
                    deletion_protection: protect,
                    ..old.clone()
                })
            })
            .await?;
        self.push_schema(&table.name, s.mod_revision).await?;
        let t = table_pb(&info(&s)?, a::table::View::SchemaView as i32);
        let now = crate::operations::timestamp(std::time::SystemTime::now());
        let meta = a::UpdateTableMetadata {
            name: s.table.clone(),
            start_time: Some(now),
            end_time: Some(now),
        };
        Ok(Response::new(crate::instances::finished(
            &self.ops,
            &s.table,
            ("UpdateTableMetadata", &meta),
            Ok(("Table", &t)),
        )))
    }

    async fn delete_table(
        &self,
        request: Request<a::DeleteTableRequest>,
    ) -> Result<Response<()>, Status> {
        let r = request.into_inner();
        for _ in 0..CAS_ATTEMPTS_MAX {
            let old = self.get(&r.name).await?;
            if info(&old)?.schema.deletion_protection {
                return Err(Status::failed_precondition(format!(
                    "table {:?} has deletion protection enabled; disable it with UpdateTable first",
                    r.name
                )));
            }
            match schema_store::delete_table(&self.cluster.etcd, &self.cluster.name, &old).await {
                Ok(_) => {
                    self.cluster.view.remove_schema(&r.name);
                    // The table's IAM policy goes with it.
                    let c = self.catalog.clone();
                    let name = r.name.clone();
                    blocking(move || {
                        c.meta_write(&[strata_table::MetaChange::Delete(
                            strata_table::MetaKind::IamPolicy,
                            name,
                        )])
                        .map_err(status)
                    })
                    .await?;
                    tracing::info!(table = %r.name, "deleted table");
                    return Ok(Response::new(()));
                }
                Err(strata_cluster::Error::Conflict(_)) => continue,
                Err(e) => return Err(etcd_status(e)),
            }
        }
        Err(Status::aborted(format!(
            "table {:?} kept changing; try again",
            r.name
        )))
    }

    async fn modify_column_families(
        &self,
        request: Request<a::ModifyColumnFamiliesRequest>,
    ) -> Result<Response<a::Table>, Status> {
        if let Some(h) = self.cluster.hosted_for(request.metadata())? {
            // A tablet told to catch up with its table's schema.
            self.cluster.refresh_schema(&h.record.table).await?;
            let s = self.get(&h.record.table).await?;
            return Ok(Response::new(table_pb(
                &info(&s)?,
                a::table::View::SchemaView as i32,
            )));
        }
        let r = request.into_inner();
        strata_table::database::validate_table_name(&r.name).map_err(status)?;
        if r.modifications.is_empty() {
            return Err(invalid("no modifications provided"));
        }
        let changes = family_changes(&r)?;
        let s = self
            .change_schema(&r.name, |old| {
                plan_family_changes(&r.name, old, &changes)
                    .map(|(s, _)| s)
                    .map_err(status)
            })
            .await?;
        self.push_schema(&r.name, s.mod_revision).await?;
        Ok(Response::new(table_pb(
            &info(&s)?,
            a::table::View::SchemaView as i32,
        )))
    }

    async fn drop_row_range(
        &self,
        request: Request<a::DropRowRangeRequest>,
    ) -> Result<Response<()>, Status> {
        use a::drop_row_range_request::Target as Drop;
        if let Some(h) = self.cluster.hosted_for(request.metadata())? {
            let r = request.into_inner();
            let prefix = match r.target {
                Some(Drop::RowKeyPrefix(p)) => Some(p),
                _ => None,
            };
            let db = h.db.clone();
            let table = h.record.table.clone();
            blocking(move || db.drop_row_range(&table, prefix.as_deref()).map_err(status)).await?;
            return Ok(Response::new(()));
        }
        let r = request.into_inner();
        self.get(&r.name).await?;
        let prefix = match &r.target {
            Some(Drop::RowKeyPrefix(p)) if !p.is_empty() => Some(p.clone()),
            Some(Drop::RowKeyPrefix(_)) => return Err(invalid("row_key_prefix must not be empty")),
            Some(Drop::DeleteAllDataFromTable(true)) => None,
            // "Setting this to false is a no-op" (the proto).
            Some(Drop::DeleteAllDataFromTable(false)) => return Ok(Response::new(())),
            None => return Err(invalid("set row_key_prefix or delete_all_data_from_table")),
        };
        let cluster = self.cluster.clone();
        let name = r.name.clone();
        self.on_every_tablet(&r.name, |target| {
            let (cluster, prefix, name) = (cluster.clone(), prefix.clone(), name.clone());
            async move {
                match target {
                    Target::Local(h) => {
                        let db = h.db.clone();
                        blocking(move || {
                            db.drop_row_range(&name, prefix.as_deref()).map_err(status)
                        })
                        .await
                    }
                    Target::Remote { addr, tablet } => {
                        let target = Some(match prefix {
                            Some(p) => Drop::RowKeyPrefix(p),
                            None => Drop::DeleteAllDataFromTable(true),
                        });
                        let mut req = Request::new(a::DropRowRangeRequest { name, target });
                        req.metadata_mut().insert(
                            super::route::TABLET_HEADER,
                            tablet
                                .parse()
                                .map_err(|_| Status::internal("tablet header"))?,
                        );
                        cluster.pool.admin(&addr)?.drop_row_range(req).await?;
                        Ok(())
                    }
                }
            }
        })
        .await?;
        Ok(Response::new(()))
    }

    async fn generate_consistency_token(
        &self,
        request: Request<a::GenerateConsistencyTokenRequest>,
    ) -> Result<Response<a::GenerateConsistencyTokenResponse>, Status> {
        let r = request.into_inner();
        self.get(&r.name).await?;
        // One copy of every tablet: an acknowledged write is visible.
        Ok(Response::new(a::GenerateConsistencyTokenResponse {
            consistency_token: format!("strata-1:{}", r.name),
        }))
    }

    async fn check_consistency(
        &self,
        request: Request<a::CheckConsistencyRequest>,
    ) -> Result<Response<a::CheckConsistencyResponse>, Status> {
        let r = request.into_inner();
        self.get(&r.name).await?;
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
        let c = self.catalog.clone();
        Ok(Response::new(
            blocking(move || crate::iam::get(&*c, r)).await?,
        ))
    }

    async fn set_iam_policy(
        &self,
        request: Request<iam_pb::SetIamPolicyRequest>,
    ) -> Result<Response<iam_pb::Policy>, Status> {
        let r = request.into_inner();
        let c = self.catalog.clone();
        Ok(Response::new(
            blocking(move || crate::iam::set(&*c, r)).await?,
        ))
    }

    async fn test_iam_permissions(
        &self,
        request: Request<iam_pb::TestIamPermissionsRequest>,
    ) -> Result<Response<iam_pb::TestIamPermissionsResponse>, Status> {
        let r = request.into_inner();
        let c = self.catalog.clone();
        Ok(Response::new(
            blocking(move || crate::iam::test(&*c, r)).await?,
        ))
    }
}
