//! The instance-admin API's records on a cluster: in etcd, one key per
//! record, `/<cluster>/meta/<kind>/<resource name>`, whose value is the
//! API's protobuf message as the single server stores it
//! (docs/formats/catalog.md); a batch of changes is one txn. Tables are
//! the schemas in etcd (`schema_store`).
//!
//! The services call a catalog on the blocking pool, so each call waits
//! for its etcd request on the runtime's handle.

use std::sync::Arc;

use strata_cluster::schema_store;
use strata_cluster::txn::{Cmp, Compare, Op, Txn};
use strata_table::{MetaChange, MetaKind, Result, TableError, TableInfo};

use super::Cluster;
use crate::catalog::Catalog;

pub(crate) struct EtcdCatalog {
    pub cluster: Arc<Cluster>,
    pub runtime: tokio::runtime::Handle,
}

fn kind_name(kind: MetaKind) -> &'static str {
    match kind {
        MetaKind::Instance => "instance",
        MetaKind::Cluster => "cluster",
        MetaKind::AppProfile => "app_profile",
        MetaKind::IamPolicy => "iam_policy",
    }
}

fn etcd_err(e: strata_cluster::Error) -> TableError {
    TableError::Engine(strata_engine::Error::Unavailable(format!("etcd: {e}")))
}

impl EtcdCatalog {
    fn prefix(&self, kind: MetaKind) -> String {
        format!("/{}/meta/{}/", self.cluster.name, kind_name(kind))
    }

    fn key(&self, kind: MetaKind, name: &str) -> String {
        format!("{}{name}", self.prefix(kind))
    }

    /// Table `name`'s schema record, or NOT_FOUND.
    fn schema(&self, name: &str) -> Result<schema_store::TableSchema> {
        let got = self
            .runtime
            .block_on(schema_store::get(
                &self.cluster.etcd,
                &self.cluster.name,
                name,
            ))
            .map_err(etcd_err)?;
        got.ok_or_else(|| TableError::NotFound(format!("table {name:?} not found")))
    }
}

impl Catalog for EtcdCatalog {
    fn meta_get(&self, kind: MetaKind, name: &str) -> Result<Option<Vec<u8>>> {
        let key = self.key(kind, name);
        let kv = self
            .runtime
            .block_on(self.cluster.etcd.get(key.as_bytes()))
            .map_err(etcd_err)?;
        Ok(kv.map(|kv| kv.value))
    }

    fn meta_list(&self, kind: MetaKind, prefix: &str) -> Result<Vec<(String, Vec<u8>)>> {
        let base = self.prefix(kind);
        let start = format!("{base}{prefix}");
        let listing = self
            .runtime
            .block_on(self.cluster.etcd.get_prefix(start.as_bytes()))
            .map_err(etcd_err)?;
        let mut out = Vec::new();
        for kv in listing.kvs {
            let name = String::from_utf8(kv.key[base.len()..].to_vec()).map_err(|_| {
                TableError::Corrupt(format!("a {kind:?} record's name is not UTF-8"))
            })?;
            out.push((name, kv.value));
        }
        Ok(out)
    }

    fn meta_write(&self, changes: &[MetaChange]) -> Result<()> {
        if changes.is_empty() {
            return Ok(());
        }
        let mut when = Vec::new();
        let ops: Vec<Op> = changes
            .iter()
            .map(|c| match c {
                MetaChange::Put(kind, name, value) => {
                    Op::put(self.key(*kind, name).as_bytes(), value)
                }
                MetaChange::Create(kind, name, value) => {
                    let key = self.key(*kind, name);
                    // Two servers creating one resource at once: one wins.
                    when.push(Compare::create_revision(key.as_bytes(), Cmp::Equal, 0));
                    Op::put(key.as_bytes(), value)
                }
                MetaChange::Delete(kind, name) => Op::delete(self.key(*kind, name).as_bytes()),
            })
            .collect();
        let resp = self
            .runtime
            .block_on(self.cluster.etcd.txn(Txn::new().when(when).and_then(ops)))
            .map_err(etcd_err)?;
        if !resp.succeeded {
            let created: Vec<String> = changes
                .iter()
                .filter_map(|c| match c {
                    MetaChange::Create(kind, name, _) => Some(format!("{kind:?} {name:?}")),
                    _ => None,
                })
                .collect();
            return Err(TableError::AlreadyExists(format!(
                "{} already exists",
                created.join(" or ")
            )));
        }
        Ok(())
    }

    fn tables(&self, prefix: &str) -> Result<Vec<TableInfo>> {
        let (all, _) = self
            .runtime
            .block_on(schema_store::list(&self.cluster.etcd, &self.cluster.name))
            .map_err(etcd_err)?;
        let mut out = all
            .iter()
            .filter(|s| s.table.starts_with(prefix))
            .map(super::table_info)
            .collect::<Result<Vec<_>>>()?;
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    fn get_table(&self, name: &str) -> Result<TableInfo> {
        super::table_info(&self.schema(name)?)
    }

    fn delete_table(&self, name: &str) -> Result<()> {
        let s = self.schema(name)?;
        if super::table_info(&s)?.schema.deletion_protection {
            return Err(TableError::FailedPrecondition(format!(
                "table {name:?} has deletion protection enabled; disable it with UpdateTable first"
            )));
        }
        self.runtime
            .block_on(schema_store::delete_table(
                &self.cluster.etcd,
                &self.cluster.name,
                &s,
            ))
            .map_err(|e| match e {
                strata_cluster::Error::Conflict(m) => TableError::FailedPrecondition(m),
                e => etcd_err(e),
            })?;
        self.cluster.view.remove_schema(name);
        Ok(())
    }
}
