//! Where the instance-admin API keeps its records and finds tables: the
//! local database's catalog on a single server, etcd on a cluster
//! (`cluster::catalog`). The services call it on the blocking pool.

use strata_table::{Database, MetaChange, MetaKind, Result, TableInfo};

/// Records (instances, clusters, app profiles, IAM policies) and tables.
pub trait Catalog: Send + Sync {
    /// The record `name` of a kind, if there is one.
    fn meta_get(&self, kind: MetaKind, name: &str) -> Result<Option<Vec<u8>>>;
    /// Records of a kind whose names start with `prefix`, in name order.
    fn meta_list(&self, kind: MetaKind, prefix: &str) -> Result<Vec<(String, Vec<u8>)>>;
    /// Puts and deletes of records, all or none.
    fn meta_write(&self, changes: &[MetaChange]) -> Result<()>;
    /// Tables whose names start with `prefix`, in name order.
    fn tables(&self, prefix: &str) -> Result<Vec<TableInfo>>;
    /// Table `name`, or NOT_FOUND.
    fn get_table(&self, name: &str) -> Result<TableInfo>;
    /// Deletes table `name` (FAILED_PRECONDITION if protected).
    fn delete_table(&self, name: &str) -> Result<()>;
}

impl Catalog for Database {
    fn meta_get(&self, kind: MetaKind, name: &str) -> Result<Option<Vec<u8>>> {
        Database::meta_get(self, kind, name)
    }

    fn meta_list(&self, kind: MetaKind, prefix: &str) -> Result<Vec<(String, Vec<u8>)>> {
        Database::meta_list(self, kind, prefix)
    }

    fn meta_write(&self, changes: &[MetaChange]) -> Result<()> {
        Database::meta_write(self, changes)
    }

    fn tables(&self, prefix: &str) -> Result<Vec<TableInfo>> {
        Ok(self.list_tables(prefix))
    }

    fn get_table(&self, name: &str) -> Result<TableInfo> {
        Database::get_table(self, name)
    }

    fn delete_table(&self, name: &str) -> Result<()> {
        Database::delete_table(self, name)
    }
}
