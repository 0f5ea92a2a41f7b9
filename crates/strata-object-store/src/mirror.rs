//! Mirroring one storage's objects into another of the same store: what a
//! cluster tablet's split does to give each half its own copy of the
//! parent (docs/cluster.md, "Splits").
//!
//! Copies are the store's own (S3 CopyObject, a hard link on a local
//! directory): no byte passes through this server. Every object the
//! engine writes is created once under a name never reused, so an object
//! already at the destination under a source's name is a copy of it and
//! is not copied again; a mirror repeated after the source changed copies
//! only what is new, and deletes what the source no longer has.

use std::collections::BTreeSet;

use futures::StreamExt;
use object_store::ObjectStoreExt;
use strata_engine::storage::Storage;
use strata_engine::{Error, Result};

use crate::counters::Counters;
use crate::storage::ObjectStorage;

/// Copies in flight at once.
const COPIES_IN_FLIGHT: usize = 16;

/// What one mirror did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Mirrored {
    /// Objects copied.
    pub copied: usize,
    /// Objects the destination already had.
    pub kept: usize,
    /// Objects deleted from the destination (gone from the source).
    pub removed: usize,
    /// Tables listed at the source and gone before they were copied.
    pub vanished: usize,
}

/// Which objects a mirror covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MirrorScope {
    /// The tables only (immutable: safe to copy while the source serves).
    Tables,
    /// Everything: tables, manifest and log objects. Only of a source
    /// that is closed, so that the copy is one state of it.
    All,
}

impl ObjectStorage {
    /// Makes `dest` (a storage of the same store) hold the objects of
    /// this one in `scope`: copies those it lacks and, for
    /// [`MirrorScope::All`], deletes those this one does not have.
    pub fn mirror_to(&self, dest: &ObjectStorage, scope: MirrorScope) -> Result<Mirrored> {
        if !self.same_store(dest) {
            return Err(Error::InvalidArgument(format!(
                "cannot mirror {} into {}: not the same store",
                self.describe(),
                dest.describe()
            )));
        }
        let in_scope = |n: &String| scope == MirrorScope::All || n.ends_with(".sst");
        let source: BTreeSet<String> = self.list()?.into_iter().filter(in_scope).collect();
        let present: BTreeSet<String> = dest.list()?.into_iter().filter(in_scope).collect();
        let mut done = Mirrored::default();
        let missing: Vec<String> = source.difference(&present).cloned().collect();
        done.kept = source.len() - missing.len();
        let pairs = missing
            .iter()
            .map(|n| Ok((self.object_path(n)?, dest.object_path(n)?)))
            .collect::<Result<Vec<_>>>()?;
        let store = self.store();
        let first = missing.first().cloned().unwrap_or_default();
        let results = self.bridge().run(&format!("copy {first}"), async move {
            futures::stream::iter(pairs.into_iter().map(|(from, to)| {
                let store = store.clone();
                async move { store.copy(&from, &to).await.map_err(|e| (from, e)) }
            }))
            .buffer_unordered(COPIES_IN_FLIGHT)
            .collect::<Vec<_>>()
            .await
        })?;
        Counters::add(&self.counters().copies, missing.len() as u64);
        for r in results {
            match r {
                Ok(()) => done.copied += 1,
                // A table the source deleted since the listing (compacted
                // away while it serves): a later mirror does not need it.
                Err((_, object_store::Error::NotFound { .. })) if scope == MirrorScope::Tables => {
                    done.vanished += 1
                }
                Err((from, e)) => {
                    Counters::add(&self.counters().errors, 1);
                    return Err(Error::io(
                        format!("copy {from} into {}", dest.describe()),
                        std::io::Error::other(e),
                    ));
                }
            }
        }
        if scope == MirrorScope::All {
            let extra: Vec<String> = present.difference(&source).cloned().collect();
            dest.remove_many(&extra)?;
            done.removed = extra.len();
        }
        Ok(done)
    }
}

impl ObjectStorage {
    /// Copies this storage's object `name` into `dest` (a storage of the
    /// same store) as `dest_name`: the store's own copy, as a mirror's.
    /// What a cluster merge does with the right tablet's tables, which it
    /// numbers anew in the merged one (docs/cluster.md, "Merges").
    pub fn copy_to(&self, name: &str, dest: &ObjectStorage, dest_name: &str) -> Result<()> {
        if !self.same_store(dest) {
            return Err(Error::InvalidArgument(format!(
                "cannot copy from {} into {}: not the same store",
                self.describe(),
                dest.describe()
            )));
        }
        let (from, to) = (self.object_path(name)?, dest.object_path(dest_name)?);
        let store = self.store();
        let what = format!("copy {name} into {}", dest.describe());
        let (f, t) = (from.clone(), to.clone());
        let r = self
            .bridge()
            .run(&what, async move { store.copy(&f, &t).await })?;
        Counters::add(&self.counters().copies, 1);
        r.map_err(|e| {
            Counters::add(&self.counters().errors, 1);
            Error::io(format!("copy {from} to {to}"), std::io::Error::other(e))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn store() -> (tempfile::TempDir, Arc<ObjectStorage>) {
        let dir = tempfile::tempdir().unwrap();
        let url = crate::parse_storage_url(&format!("file://{}", dir.path().display())).unwrap();
        (dir, ObjectStorage::open(url, None, 0).unwrap())
    }

    fn put(s: &ObjectStorage, name: &str, data: &[u8]) {
        assert!(s.put_if_absent(name, data).unwrap());
    }

    fn read(s: &ObjectStorage, name: &str) -> Vec<u8> {
        let f = s.open(name).unwrap();
        let mut buf = vec![0; f.len() as usize];
        f.read_exact_at(0, &mut buf).unwrap();
        buf
    }

    #[test]
    fn tables_first_then_everything_with_deletions() {
        let (_dir, root) = store();
        let (from, to) = (root.child("a").unwrap(), root.child("b").unwrap());
        put(&from, "000007.sst", b"seven");
        put(&from, "manifest/000001", b"m1");
        let m = from.mirror_to(&to, MirrorScope::Tables).unwrap();
        assert_eq!((m.copied, m.kept, m.removed), (1, 0, 0));
        assert_eq!(to.list().unwrap(), vec!["000007.sst".to_string()]);

        // The source compacts (7 goes, 9 comes) and logs.
        from.remove("000007.sst").unwrap();
        put(&from, "000009.sst", b"nine");
        put(&from, "wal/000003", b"w3");
        let m = from.mirror_to(&to, MirrorScope::All).unwrap();
        assert_eq!((m.copied, m.kept, m.removed), (3, 0, 1));
        let mut names = to.list().unwrap();
        names.sort();
        assert_eq!(names, vec!["000009.sst", "manifest/000001", "wal/000003"]);
        assert_eq!(read(&to, "000009.sst"), b"nine");
        assert_eq!(read(&to, "manifest/000001"), b"m1");

        // Nothing new: nothing copied; the source is untouched.
        let m = from.mirror_to(&to, MirrorScope::All).unwrap();
        assert_eq!((m.copied, m.kept, m.removed), (0, 3, 0));
        assert_eq!(from.list().unwrap().len(), 3);
    }

    #[test]
    fn copies_one_object_under_another_name() {
        let (_dir, root) = store();
        let (from, to) = (root.child("a").unwrap(), root.child("b").unwrap());
        put(&from, "000007.sst", b"seven");
        from.copy_to("000007.sst", &to, "000042.sst").unwrap();
        assert_eq!(read(&to, "000042.sst"), b"seven");
        assert_eq!(from.list().unwrap(), vec!["000007.sst".to_string()]);
        assert!(from.copy_to("000008.sst", &to, "000043.sst").is_err());
    }

    #[test]
    fn another_store_is_refused() {
        let (_d1, a) = store();
        let (_d2, b) = store();
        assert!(a.mirror_to(&b, MirrorScope::All).is_err());
    }
}
