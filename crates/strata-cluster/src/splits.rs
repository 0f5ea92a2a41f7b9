//! Splits of a tablet into two (docs/cluster.md, "Splits"): decided by
//! the owner, recorded by the master, with etcd holding each step.
//!
//! 1. The owner of tablet `P` (serving at epoch `e`) records the split:
//!    `/<cluster>/splits/<P>` = the row it splits at, two new tablet ids
//!    and `e`, `prepared`. One txn, guarded by `P`'s record: a split and a
//!    move of `P` never both start ([`begin_move`](crate::moves::begin_move)
//!    is guarded by this key's absence).
//! 2. The owner copies `P`'s tables into the children's prefixes while it
//!    still serves `P`, then stops serving it, flushes and closes it,
//!    copies what changed meanwhile (tables, manifest, log), and marks the
//!    record `ready` (a txn on the record's revision).
//! 3. The master, seeing `ready` with `P` unchanged since step 1, replaces
//!    `P` by the two children in one txn: `P`'s record deleted, the
//!    children's created (owned by `P`'s owner, `serving`), the split
//!    record deleted, and `garbage/<P>` written (its prefix is deleted
//!    later, as a deleted table's). A child opens on its copy and drops
//!    the rows outside its range (`Database::retain_rows`).
//!
//! A split abandoned (P's record changed: its owner died, it was
//! recovered or deleted; or the owner withdrew; or it stayed `prepared`
//! past [`SPLIT_PREPARE_WAIT`]) is deleted with `garbage/<child>` for
//! both children, so partial copies are deleted too. `P`'s own prefix is
//! never written by the split, so `P` is intact whichever way it ends.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use crate::client::Etcd;
use crate::election::Leadership;
use crate::error::{Error, Result};
use crate::moves::id_of;
use crate::schema_store::garbage_key;
use crate::tablet_map::{hex, tablet_key, unhex, TabletRecord, TabletState, FORMAT};
use crate::tablet_store::allocate_ids;
use crate::txn::{Cmp, Compare, Op, Txn};

/// How long a split may stay `prepared` (the owner copying its parent's
/// tables) before the master abandons it.
pub const SPLIT_PREPARE_WAIT: Duration = Duration::from_secs(600);

pub fn splits_prefix(cluster: &str) -> String {
    format!("/{cluster}/splits/")
}

pub fn split_key(cluster: &str, id: u64) -> String {
    format!("{}{id:020}", splits_prefix(cluster))
}

/// A split in progress, as etcd holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SplitRecord {
    /// The tablet splitting.
    pub parent: u64,
    pub table: String,
    /// The parent's epoch when the split was recorded.
    pub epoch: u64,
    /// The first row of the right child.
    pub at: Vec<u8>,
    /// The ids of the left and right children.
    pub children: [u64; 2],
    /// The owner has closed the parent and copied it to both children.
    pub ready: bool,
    /// The record's etcd mod revision (0 before it is written).
    pub mod_revision: i64,
}

impl SplitRecord {
    fn encode(&self) -> Vec<u8> {
        let mut s = String::with_capacity(128);
        let _ = writeln!(s, "format {FORMAT}");
        let _ = writeln!(s, "table {}", self.table);
        let _ = writeln!(s, "epoch {}", self.epoch);
        let _ = writeln!(s, "at {}", hex(&self.at));
        let _ = writeln!(s, "children {} {}", self.children[0], self.children[1]);
        let _ = writeln!(s, "state {}", if self.ready { "ready" } else { "prepared" });
        s.into_bytes()
    }

    fn decode(parent: u64, value: &[u8], mod_revision: i64) -> Result<SplitRecord> {
        let bad = |why: &str| Error::Protocol(format!("split record of tablet {parent}: {why}"));
        let text = std::str::from_utf8(value).map_err(|_| bad("not UTF-8"))?;
        let fields: BTreeMap<&str, &str> = text.lines().filter_map(|l| l.split_once(' ')).collect();
        let field = |name: &str| fields.get(name).copied().ok_or_else(|| bad(name));
        if field("format")? != FORMAT.to_string() {
            return Err(bad("unknown format"));
        }
        let (a, b) = field("children")?
            .split_once(' ')
            .ok_or_else(|| bad("children"))?;
        Ok(SplitRecord {
            parent,
            table: field("table")?.to_string(),
            epoch: field("epoch")?.parse().map_err(|_| bad("epoch"))?,
            at: unhex(field("at")?).ok_or_else(|| bad("at"))?,
            children: [
                a.parse().map_err(|_| bad("children"))?,
                b.parse().map_err(|_| bad("children"))?,
            ],
            ready: match field("state")? {
                "prepared" => false,
                "ready" => true,
                _ => return Err(bad("state")),
            },
            mod_revision,
        })
    }

    /// The two children's records: `[parent.start, at)` and
    /// `[at, parent.end)`, owned by `owner` (serving) or by none.
    pub fn children_of(&self, parent: &TabletRecord, owner: Option<&str>) -> [TabletRecord; 2] {
        let child = |id: u64, start: Vec<u8>, end: Option<Vec<u8>>| TabletRecord {
            table: parent.table.clone(),
            id,
            start,
            end,
            owner: owner.map(str::to_string),
            epoch: u64::from(owner.is_some()),
            state: if owner.is_some() {
                TabletState::Serving
            } else {
                TabletState::Unassigned
            },
        };
        [
            child(
                self.children[0],
                parent.start.clone(),
                Some(self.at.clone()),
            ),
            child(self.children[1], self.at.clone(), parent.end.clone()),
        ]
    }
}

/// Splits in progress, by parent id.
pub async fn load(etcd: &Etcd, cluster: &str) -> Result<BTreeMap<u64, SplitRecord>> {
    let prefix = splits_prefix(cluster);
    let listing = etcd.get_prefix(prefix.as_bytes()).await?;
    let mut out = BTreeMap::new();
    for kv in &listing.kvs {
        let id = id_of(&prefix, &kv.key)
            .ok_or_else(|| Error::Protocol(format!("bad split key {:?}", kv.key)))?;
        out.insert(id, SplitRecord::decode(id, &kv.value, kv.mod_revision)?);
    }
    Ok(out)
}

/// The split of tablet `id` in progress, if any.
pub async fn get(etcd: &Etcd, cluster: &str, id: u64) -> Result<Option<SplitRecord>> {
    let (kv, _) = etcd
        .get_with_revision(split_key(cluster, id).as_bytes())
        .await?;
    kv.map(|kv| SplitRecord::decode(id, &kv.value, kv.mod_revision))
        .transpose()
}

/// Step 1, by the owner: records the split of `parent` (serving, as the
/// owner last read it) at row `at`, with two new ids. `Error::Conflict`
/// if the record changed or a split of it is already recorded.
pub async fn request(
    etcd: &Etcd,
    cluster: &str,
    parent: &TabletRecord,
    at: &[u8],
) -> Result<SplitRecord> {
    if parent.state != TabletState::Serving || parent.owner.is_none() {
        return Err(Error::InvalidArgument(format!(
            "tablet {} is {}: only a served tablet splits",
            parent.id,
            parent.state.name()
        )));
    }
    if at <= parent.start.as_slice() || parent.end.as_deref().is_some_and(|e| at >= e) {
        return Err(Error::InvalidArgument(format!(
            "split row {} is not inside tablet {}",
            hex(at),
            parent.id
        )));
    }
    let first = allocate_ids(etcd, cluster, 2).await?;
    let mut split = SplitRecord {
        parent: parent.id,
        table: parent.table.clone(),
        epoch: parent.epoch,
        at: at.to_vec(),
        children: [first, first + 1],
        ready: false,
        mod_revision: 0,
    };
    let key = split_key(cluster, parent.id);
    let parent_key = tablet_key(cluster, &parent.table, parent.id);
    let txn = Txn::new()
        .when([
            Compare::value(parent_key.as_bytes(), Cmp::Equal, &parent.encode()),
            Compare::create_revision(key.as_bytes(), Cmp::Equal, 0),
            // Never while it merges (`merges`).
            Compare::create_revision(
                crate::merges::merge_key(cluster, parent.id).as_bytes(),
                Cmp::Equal,
                0,
            ),
        ])
        .and_then([Op::put(key.as_bytes(), &split.encode())]);
    let resp = etcd.txn(txn).await?;
    if !resp.succeeded {
        return Err(Error::Conflict(format!(
            "tablet {} changed, or is already splitting or merging",
            parent.id
        )));
    }
    split.mod_revision = resp.revision;
    Ok(split)
}

/// Step 2's end, by the owner: the parent is closed and copied. Returns
/// the record as written; `Error::Conflict` if the split was abandoned.
pub async fn mark_ready(etcd: &Etcd, cluster: &str, split: &SplitRecord) -> Result<SplitRecord> {
    let mut next = split.clone();
    next.ready = true;
    let key = split_key(cluster, split.parent);
    let txn = Txn::new()
        .when([Compare::mod_revision(
            key.as_bytes(),
            Cmp::Equal,
            split.mod_revision,
        )])
        .and_then([Op::put(key.as_bytes(), &next.encode())]);
    let resp = etcd.txn(txn).await?;
    if !resp.succeeded {
        return Err(Error::Conflict(format!(
            "the split of tablet {} was abandoned",
            split.parent
        )));
    }
    next.mod_revision = resp.revision;
    Ok(next)
}

/// The txn that ends `split` without splitting: its record deleted, its
/// children's prefixes to be deleted.
fn abandon_txn(cluster: &str, split: &SplitRecord) -> Txn {
    let key = split_key(cluster, split.parent);
    Txn::new()
        .when([Compare::mod_revision(
            key.as_bytes(),
            Cmp::Equal,
            split.mod_revision,
        )])
        .and_then([
            Op::delete(key.as_bytes()),
            Op::put(garbage_key(cluster, split.children[0]).as_bytes(), b""),
            Op::put(garbage_key(cluster, split.children[1]).as_bytes(), b""),
        ])
}

/// The owner gives up a split not yet ready (it could not close or copy
/// the parent). Returns whether it was still recorded.
pub async fn withdraw(etcd: &Etcd, cluster: &str, split: &SplitRecord) -> Result<bool> {
    Ok(etcd.txn(abandon_txn(cluster, split)).await?.succeeded)
}

/// The master abandons `split` (its parent changed, or it waited too
/// long). Returns whether it was still recorded.
pub async fn abandon(master: &Leadership, cluster: &str, split: &SplitRecord) -> Result<bool> {
    Ok(master.txn(abandon_txn(cluster, split)).await?.succeeded)
}

/// Step 3, by the master: replaces `parent` (as the master read it, the
/// split recorded at its epoch) by the children of the `ready` `split`,
/// owned by `owner` (None: unassigned). `Error::Conflict` if either
/// changed since they were read.
pub async fn finish(
    master: &Leadership,
    cluster: &str,
    parent: &TabletRecord,
    split: &SplitRecord,
    owner: Option<&str>,
) -> Result<[TabletRecord; 2]> {
    if !split.ready || split.parent != parent.id || split.epoch != parent.epoch {
        return Err(Error::InvalidArgument(format!(
            "the split of tablet {} is not ready at its epoch",
            parent.id
        )));
    }
    let children = split.children_of(parent, owner);
    let key = split_key(cluster, split.parent);
    let parent_key = tablet_key(cluster, &parent.table, parent.id);
    let mut ops = vec![
        Op::delete(parent_key.as_bytes()),
        Op::delete(key.as_bytes()),
        Op::put(garbage_key(cluster, parent.id).as_bytes(), b""),
    ];
    for c in &children {
        ops.push(Op::put(
            tablet_key(cluster, &c.table, c.id).as_bytes(),
            &c.encode(),
        ));
    }
    let txn = Txn::new()
        .when([
            Compare::value(parent_key.as_bytes(), Cmp::Equal, &parent.encode()),
            Compare::mod_revision(key.as_bytes(), Cmp::Equal, split.mod_revision),
        ])
        .and_then(ops);
    if !master.txn(txn).await?.succeeded {
        return Err(Error::Conflict(format!(
            "tablet {} or its split changed since they were read",
            parent.id
        )));
    }
    Ok(children)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip() {
        let s = SplitRecord {
            parent: 7,
            table: "projects/p/instances/i/tables/t".into(),
            epoch: 3,
            at: b"m\x00".to_vec(),
            children: [11, 12],
            ready: true,
            mod_revision: 99,
        };
        assert_eq!(SplitRecord::decode(7, &s.encode(), 99).unwrap(), s);
        assert!(SplitRecord::decode(7, b"format 1\n", 1).is_err());
    }

    #[test]
    fn children_cover_the_parent() {
        let parent = TabletRecord {
            table: "t".into(),
            id: 7,
            start: b"c".to_vec(),
            end: None,
            owner: Some("a@1".into()),
            epoch: 3,
            state: TabletState::Serving,
        };
        let s = SplitRecord {
            parent: 7,
            table: "t".into(),
            epoch: 3,
            at: b"m".to_vec(),
            children: [11, 12],
            ready: true,
            mod_revision: 1,
        };
        let [l, r] = s.children_of(&parent, Some("a@1"));
        assert_eq!(
            (l.start.as_slice(), l.end.as_deref()),
            (&b"c"[..], Some(&b"m"[..]))
        );
        assert_eq!((r.start.as_slice(), r.end.as_deref()), (&b"m"[..], None));
        assert_eq!((l.epoch, l.state), (1, TabletState::Serving));
        let [l, _] = s.children_of(&parent, None);
        assert_eq!(
            (l.epoch, l.state, l.owner),
            (0, TabletState::Unassigned, None)
        );
    }
}
