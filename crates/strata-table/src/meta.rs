//! Metadata records beside the table schemas in the catalog tree:
//! instances, clusters, app profiles and IAM policies, each an opaque
//! value (the server stores the API's protobuf message) under its resource
//! name. docs/formats/catalog.md lists the kinds and their keys.
//!
//! Every write is one engine batch, synced before it returns like any
//! other write in the default mode, so an acknowledged instance or policy
//! survives a crash.

use crate::database::Database;
use crate::error::{Result, TableError};
use std::ops::Bound;
use strata_engine::{Direction, WriteBatch};

/// Longest resource name a record may have, in bytes.
pub const META_NAME_BYTES_MAX: usize = 1024;
/// Largest value a record may hold, in bytes (an IAM policy with many
/// bindings is the largest).
pub const META_VALUE_BYTES_MAX: usize = 1 << 20;

/// What a record describes. Each kind has its own key prefix in the
/// catalog; the prefixes are on disk: **never change them**.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetaKind {
    Instance,
    Cluster,
    AppProfile,
    IamPolicy,
}

impl MetaKind {
    fn prefix(self) -> &'static [u8] {
        match self {
            MetaKind::Instance => b"instance\0",
            MetaKind::Cluster => b"cluster\0",
            MetaKind::AppProfile => b"app_profile\0",
            MetaKind::IamPolicy => b"iam_policy\0",
        }
    }

    fn key(self, name: &str) -> Vec<u8> {
        [self.prefix(), name.as_bytes()].concat()
    }
}

/// One change of a metadata batch.
#[derive(Clone, Debug)]
pub enum MetaChange {
    Put(MetaKind, String, Vec<u8>),
    /// A put that fails the whole batch (ALREADY_EXISTS) if the record
    /// exists. Here checked before the batch is written (the callers
    /// serialize their changes); on a cluster, by etcd in the batch's txn.
    Create(MetaKind, String, Vec<u8>),
    Delete(MetaKind, String),
}

impl Database {
    /// The record `name` of a kind, if there is one.
    pub fn meta_get(&self, kind: MetaKind, name: &str) -> Result<Option<Vec<u8>>> {
        Ok(self.catalog().get(&kind.key(name))?)
    }

    /// Records of a kind whose names start with `prefix`, in name order.
    pub fn meta_list(&self, kind: MetaKind, prefix: &str) -> Result<Vec<(String, Vec<u8>)>> {
        let start = kind.key(prefix);
        let end = crate::mutation::prefix_end(&start);
        let mut out = Vec::new();
        for entry in self.catalog().range(
            Bound::Included(&start),
            if end.is_empty() {
                Bound::Unbounded
            } else {
                Bound::Excluded(&end)
            },
            Direction::Forward,
            None,
        )? {
            let (k, v) = entry?;
            let name = String::from_utf8(k[kind.prefix().len()..].to_vec()).map_err(|_| {
                TableError::Corrupt(format!("a {kind:?} record's name is not UTF-8"))
            })?;
            out.push((name, v));
        }
        Ok(out)
    }

    /// Applies puts and deletes of records as one durable batch.
    pub fn meta_write(&self, changes: &[MetaChange]) -> Result<()> {
        let mut batch = WriteBatch::new();
        let id = self.catalog().id();
        for c in changes {
            match c {
                MetaChange::Put(kind, name, value) | MetaChange::Create(kind, name, value) => {
                    check_name(name)?;
                    if matches!(c, MetaChange::Create(..)) && self.meta_get(*kind, name)?.is_some()
                    {
                        return Err(TableError::AlreadyExists(format!(
                            "{kind:?} {name:?} already exists"
                        )));
                    }
                    if value.len() > META_VALUE_BYTES_MAX {
                        return Err(TableError::InvalidArgument(format!(
                            "{kind:?} {name:?} is {} bytes, more than the {META_VALUE_BYTES_MAX} allowed",
                            value.len()
                        )));
                    }
                    batch.put(id, &kind.key(name), value);
                }
                MetaChange::Delete(kind, name) => {
                    check_name(name)?;
                    batch.delete(id, &kind.key(name));
                }
            }
        }
        if !changes.is_empty() {
            self.engine.write(batch)?;
        }
        Ok(())
    }
}

fn check_name(name: &str) -> Result<()> {
    if name.is_empty() || name.len() > META_NAME_BYTES_MAX {
        return Err(TableError::InvalidArgument(format!(
            "a resource name must be 1 to {META_NAME_BYTES_MAX} bytes, got {}",
            name.len()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::DatabaseOptions;

    #[test]
    fn records_survive_reopen_and_kinds_stay_apart() {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::open(dir.path(), DatabaseOptions::default()).unwrap();
        let i = "projects/p/instances/i".to_string();
        db.meta_write(&[
            MetaChange::Put(MetaKind::Instance, i.clone(), b"one".to_vec()),
            MetaChange::Put(MetaKind::Instance, format!("{i}2"), b"two".to_vec()),
            MetaChange::Put(MetaKind::IamPolicy, i.clone(), b"policy".to_vec()),
        ])
        .unwrap();
        db.create_table(&format!("{i}/tables/t"), Default::default(), false)
            .unwrap();
        db.close().unwrap();
        let db = Database::open(dir.path(), DatabaseOptions::default()).unwrap();
        assert_eq!(
            db.meta_get(MetaKind::Instance, &i).unwrap().unwrap(),
            b"one"
        );
        assert_eq!(db.meta_get(MetaKind::Cluster, &i).unwrap(), None);
        let all = db.meta_list(MetaKind::Instance, "projects/p/").unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(all[1], (format!("{i}2"), b"two".to_vec()));
        assert_eq!(db.meta_list(MetaKind::IamPolicy, "").unwrap().len(), 1);
        assert_eq!(db.list_tables("").len(), 1, "tables are not records");
        let again = db.meta_write(&[
            MetaChange::Put(MetaKind::IamPolicy, i.clone(), b"other".to_vec()),
            MetaChange::Create(MetaKind::Instance, i.clone(), b"three".to_vec()),
        ]);
        assert!(
            matches!(again, Err(TableError::AlreadyExists(_))),
            "{again:?}"
        );
        assert_eq!(
            db.meta_get(MetaKind::IamPolicy, &i).unwrap().as_deref(),
            Some(&b"policy"[..]),
            "a failed batch changes nothing"
        );
        db.meta_write(&[MetaChange::Delete(MetaKind::Instance, i.clone())])
            .unwrap();
        assert_eq!(db.meta_get(MetaKind::Instance, &i).unwrap(), None);
        assert!(db
            .meta_write(&[MetaChange::Put(MetaKind::Instance, String::new(), vec![])])
            .is_err());
        db.close().unwrap();
    }
}
