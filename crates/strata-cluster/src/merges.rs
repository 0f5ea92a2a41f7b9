//! Merges of two neighbouring tablets into one (docs/cluster.md,
//! "Merges"): decided by the master, made by the owner of both, with etcd
//! holding each step.
//!
//! 1. The master, finding two neighbours of one table served by one
//!    server whose sizes add up to at most the merge size (and have for a
//!    while), records the merge: `/<cluster>/merges/<left>` and
//!    `/<cluster>/merges/<right>` = one record naming both at their
//!    epochs, a new id for the merged tablet and the owner, `prepared`.
//!    One txn, guarded by both tablets' records and by the absence of a
//!    split of either ([`splits::request`](crate::splits::request) is
//!    guarded in turn by these keys' absence, as is a move).
//! 2. The owner copies the left tablet's prefix into the merged one's
//!    (its tables while it serves, everything once both are closed),
//!    copies the right tablet's tables into it under new numbers and
//!    ingests them (one manifest edit), and marks the record `ready`.
//! 3. The master, seeing `ready` with both tablets unchanged, replaces
//!    them by the merged tablet in one txn: both records deleted, the
//!    merged one created (same owner, `serving`), the merge's keys
//!    deleted, `garbage/<left>` and `garbage/<right>` written.
//!
//! A merge whose tablets changed (their owner died, a move, the table's
//! deletion), that its owner withdrew, or that stayed `prepared` past
//! [`MERGE_PREPARE_WAIT`] is abandoned: its keys deleted and
//! `garbage/<merged>` written. Neither tablet's own prefix is ever
//! written by a merge, so both are intact whichever way it ends.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::time::Duration;

use crate::client::Etcd;
use crate::election::Leadership;
use crate::error::{Error, Result};
use crate::load::TabletLoad;
use crate::moves::{id_of, move_key};
use crate::schema_store::garbage_key;
use crate::splits::split_key;
use crate::tablet_map::{tablet_key, TabletMap, TabletRecord, TabletState, FORMAT};
use crate::txn::{Cmp, Compare, Op, Txn};

/// How long a merge may stay `prepared` (the owner closing and copying
/// both tablets) before the master abandons it.
pub const MERGE_PREPARE_WAIT: Duration = Duration::from_secs(600);

/// Merges one pass of the master starts at most (each makes two tablets
/// unavailable for a moment).
pub const MERGES_PER_PASS: usize = 2;

pub fn merges_prefix(cluster: &str) -> String {
    format!("/{cluster}/merges/")
}

pub fn merge_key(cluster: &str, id: u64) -> String {
    format!("{}{id:020}", merges_prefix(cluster))
}

/// A merge in progress, as etcd holds it (under both tablets' ids).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MergeRecord {
    pub table: String,
    /// The left tablet and its epoch when the merge was recorded.
    pub left: (u64, u64),
    /// The right tablet (starting where the left ends) and its epoch.
    pub right: (u64, u64),
    /// The merged tablet's id.
    pub merged: u64,
    /// The server that owns both and makes the merge.
    pub owner: String,
    /// The owner has closed both and built the merged tablet.
    pub ready: bool,
    /// The etcd mod revision of the left key (0 before it is written).
    pub mod_revision: i64,
}

impl MergeRecord {
    fn encode(&self) -> Vec<u8> {
        let mut s = String::with_capacity(160);
        let _ = writeln!(s, "format {FORMAT}");
        let _ = writeln!(s, "table {}", self.table);
        let _ = writeln!(s, "left {} {}", self.left.0, self.left.1);
        let _ = writeln!(s, "right {} {}", self.right.0, self.right.1);
        let _ = writeln!(s, "merged {}", self.merged);
        let _ = writeln!(s, "owner {}", self.owner);
        let _ = writeln!(s, "state {}", if self.ready { "ready" } else { "prepared" });
        s.into_bytes()
    }

    fn decode(key: &str, value: &[u8], mod_revision: i64) -> Result<MergeRecord> {
        let bad = |why: &str| Error::Protocol(format!("merge record {key}: {why}"));
        let text = std::str::from_utf8(value).map_err(|_| bad("not UTF-8"))?;
        let fields: BTreeMap<&str, &str> = text.lines().filter_map(|l| l.split_once(' ')).collect();
        let field = |name: &str| fields.get(name).copied().ok_or_else(|| bad(name));
        if field("format")? != FORMAT.to_string() {
            return Err(bad("unknown format"));
        }
        let pair = |name: &str| -> Result<(u64, u64)> {
            let (a, b) = field(name)?.split_once(' ').ok_or_else(|| bad(name))?;
            Ok((
                a.parse().map_err(|_| bad(name))?,
                b.parse().map_err(|_| bad(name))?,
            ))
        };
        Ok(MergeRecord {
            table: field("table")?.to_string(),
            left: pair("left")?,
            right: pair("right")?,
            merged: field("merged")?.parse().map_err(|_| bad("merged"))?,
            owner: field("owner")?.to_string(),
            ready: match field("state")? {
                "prepared" => false,
                "ready" => true,
                _ => return Err(bad("state")),
            },
            mod_revision,
        })
    }

    /// The merged tablet's record: from the left's start to the right's
    /// end, owned by `owner` (serving) or by none.
    pub fn merged_record(
        &self,
        left: &TabletRecord,
        right: &TabletRecord,
        owner: Option<&str>,
    ) -> TabletRecord {
        TabletRecord {
            table: left.table.clone(),
            id: self.merged,
            start: left.start.clone(),
            end: right.end.clone(),
            owner: owner.map(str::to_string),
            epoch: u64::from(owner.is_some()),
            state: if owner.is_some() {
                TabletState::Serving
            } else {
                TabletState::Unassigned
            },
        }
    }

    /// Whether `left` and `right` (as the map holds them) are still what
    /// the merge was recorded on: its tablets at their epochs, serving,
    /// owned by its owner.
    pub fn still_on(&self, left: &TabletRecord, right: &TabletRecord) -> bool {
        let same = |t: &TabletRecord, (id, epoch): (u64, u64)| {
            t.id == id
                && t.epoch == epoch
                && t.state == TabletState::Serving
                && t.owner.as_deref() == Some(self.owner.as_str())
        };
        same(left, self.left) && same(right, self.right) && left.end.as_ref() == Some(&right.start)
    }
}

/// Merges in progress, by left tablet id.
pub async fn load(etcd: &Etcd, cluster: &str) -> Result<BTreeMap<u64, MergeRecord>> {
    let prefix = merges_prefix(cluster);
    let listing = etcd.get_prefix(prefix.as_bytes()).await?;
    let mut out = BTreeMap::new();
    for kv in &listing.kvs {
        let key = String::from_utf8_lossy(&kv.key);
        let id = id_of(&prefix, &kv.key)
            .ok_or_else(|| Error::Protocol(format!("bad merge key {key}")))?;
        let rec = MergeRecord::decode(&key, &kv.value, kv.mod_revision)?;
        if rec.left.0 == id {
            out.insert(id, rec);
        }
    }
    Ok(out)
}

/// The merge whose left tablet is `left`, if any.
pub async fn get(etcd: &Etcd, cluster: &str, left: u64) -> Result<Option<MergeRecord>> {
    let key = merge_key(cluster, left);
    let (kv, _) = etcd.get_with_revision(key.as_bytes()).await?;
    kv.map(|kv| MergeRecord::decode(&key, &kv.value, kv.mod_revision))
        .transpose()
        .map(|r| r.filter(|r| r.left.0 == left))
}

/// Pairs of neighbouring tablets worth merging, left to right, none in
/// two pairs: same table, both serving, both reported with sizes adding
/// up to at most `merge_size_bytes`, neither in `fixed` (splitting,
/// moving, merging, or moved a moment ago). Owners may differ (the
/// master then moves one to the other first).
pub fn candidates(
    map: &TabletMap,
    loads: &BTreeMap<u64, TabletLoad>,
    merge_size_bytes: u64,
    fixed: &BTreeSet<u64>,
) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    if merge_size_bytes == 0 {
        return out;
    }
    let mut taken: BTreeSet<u64> = BTreeSet::new();
    let tables: BTreeSet<&str> = map.all().map(|t| t.table.as_str()).collect();
    for table in tables {
        let mut tablets: Vec<&TabletRecord> = map.tablets(table).collect();
        tablets.sort_by(|a, b| a.start.cmp(&b.start));
        for pair in tablets.windows(2) {
            let (l, r) = (pair[0], pair[1]);
            let ok = |t: &TabletRecord| {
                t.state == TabletState::Serving
                    && t.owner.is_some()
                    && !fixed.contains(&t.id)
                    && !taken.contains(&t.id)
            };
            if l.end.as_ref() != Some(&r.start) || !ok(l) || !ok(r) {
                continue;
            }
            let (Some(a), Some(b)) = (loads.get(&l.id), loads.get(&r.id)) else {
                continue;
            };
            if a.size_bytes.saturating_add(b.size_bytes) > merge_size_bytes {
                continue;
            }
            taken.insert(l.id);
            taken.insert(r.id);
            out.push((l.id, r.id));
        }
    }
    out
}

/// Step 1, by the master: records the merge of `left` and `right`
/// (neighbours, serving on one server, as the master read them) into a
/// tablet numbered `merged`. `Error::Conflict` if either changed, or
/// splits, moves or merges already.
pub async fn begin(
    master: &Leadership,
    cluster: &str,
    left: &TabletRecord,
    right: &TabletRecord,
    merged: u64,
) -> Result<MergeRecord> {
    let owner = match (&left.owner, &right.owner) {
        (Some(a), Some(b)) if a == b => a.clone(),
        _ => {
            return Err(Error::InvalidArgument(format!(
                "tablets {} and {} are not served by one server",
                left.id, right.id
            )))
        }
    };
    if left.state != TabletState::Serving
        || right.state != TabletState::Serving
        || left.table != right.table
        || left.end.as_ref() != Some(&right.start)
    {
        return Err(Error::InvalidArgument(format!(
            "tablets {} and {} are not serving neighbours",
            left.id, right.id
        )));
    }
    let mut rec = MergeRecord {
        table: left.table.clone(),
        left: (left.id, left.epoch),
        right: (right.id, right.epoch),
        merged,
        owner,
        ready: false,
        mod_revision: 0,
    };
    let mut when = Vec::new();
    for t in [left, right] {
        let key = tablet_key(cluster, &t.table, t.id);
        when.push(Compare::value(key.as_bytes(), Cmp::Equal, &t.encode()));
        for k in [
            split_key(cluster, t.id),
            merge_key(cluster, t.id),
            move_key(cluster, t.id),
        ] {
            when.push(Compare::create_revision(k.as_bytes(), Cmp::Equal, 0));
        }
    }
    let value = rec.encode();
    let txn = Txn::new().when(when).and_then([
        Op::put(merge_key(cluster, left.id).as_bytes(), &value),
        Op::put(merge_key(cluster, right.id).as_bytes(), &value),
    ]);
    let resp = master.txn(txn).await?;
    if !resp.succeeded {
        return Err(Error::Conflict(format!(
            "tablet {} or {} changed, or splits, moves or merges already",
            left.id, right.id
        )));
    }
    rec.mod_revision = resp.revision;
    Ok(rec)
}

/// Step 2's end, by the owner: both tablets are closed and the merged one
/// built. Returns the record as written; `Error::Conflict` if the merge
/// was abandoned.
pub async fn mark_ready(etcd: &Etcd, cluster: &str, rec: &MergeRecord) -> Result<MergeRecord> {
    let mut next = rec.clone();
    next.ready = true;
    let left = merge_key(cluster, rec.left.0);
    let value = next.encode();
    let txn = Txn::new()
        .when([Compare::mod_revision(
            left.as_bytes(),
            Cmp::Equal,
            rec.mod_revision,
        )])
        .and_then([
            Op::put(left.as_bytes(), &value),
            Op::put(merge_key(cluster, rec.right.0).as_bytes(), &value),
        ]);
    let resp = etcd.txn(txn).await?;
    if !resp.succeeded {
        return Err(Error::Conflict(format!(
            "the merge of tablets {} and {} was abandoned",
            rec.left.0, rec.right.0
        )));
    }
    next.mod_revision = resp.revision;
    Ok(next)
}

/// The txn that ends `rec` without merging: its keys deleted, the merged
/// tablet's prefix to be deleted.
fn abandon_txn(cluster: &str, rec: &MergeRecord) -> Txn {
    let left = merge_key(cluster, rec.left.0);
    Txn::new()
        .when([Compare::mod_revision(
            left.as_bytes(),
            Cmp::Equal,
            rec.mod_revision,
        )])
        .and_then([
            Op::delete(left.as_bytes()),
            Op::delete(merge_key(cluster, rec.right.0).as_bytes()),
            Op::put(garbage_key(cluster, rec.merged).as_bytes(), b""),
        ])
}

/// The owner gives up a merge not yet ready. Returns whether it was
/// still recorded.
pub async fn withdraw(etcd: &Etcd, cluster: &str, rec: &MergeRecord) -> Result<bool> {
    Ok(etcd.txn(abandon_txn(cluster, rec)).await?.succeeded)
}

/// The master abandons `rec`. Returns whether it was still recorded.
pub async fn abandon(master: &Leadership, cluster: &str, rec: &MergeRecord) -> Result<bool> {
    Ok(master.txn(abandon_txn(cluster, rec)).await?.succeeded)
}

/// Step 3, by the master: replaces `left` and `right` (as the master read
/// them, unchanged since the merge was recorded) by the merged tablet,
/// owned by the merge's owner. `Error::Conflict` if anything changed.
pub async fn finish(
    master: &Leadership,
    cluster: &str,
    left: &TabletRecord,
    right: &TabletRecord,
    rec: &MergeRecord,
) -> Result<TabletRecord> {
    if !rec.ready || !rec.still_on(left, right) {
        return Err(Error::InvalidArgument(format!(
            "the merge of tablets {} and {} is not ready on them",
            rec.left.0, rec.right.0
        )));
    }
    let merged = rec.merged_record(left, right, Some(&rec.owner));
    let left_merge = merge_key(cluster, rec.left.0);
    let mut when = vec![Compare::mod_revision(
        left_merge.as_bytes(),
        Cmp::Equal,
        rec.mod_revision,
    )];
    let mut ops = vec![
        Op::delete(left_merge.as_bytes()),
        Op::delete(merge_key(cluster, rec.right.0).as_bytes()),
        Op::put(
            tablet_key(cluster, &merged.table, merged.id).as_bytes(),
            &merged.encode(),
        ),
    ];
    for t in [left, right] {
        let key = tablet_key(cluster, &t.table, t.id);
        when.push(Compare::value(key.as_bytes(), Cmp::Equal, &t.encode()));
        ops.push(Op::delete(key.as_bytes()));
        ops.push(Op::put(garbage_key(cluster, t.id).as_bytes(), b""));
    }
    if !master
        .txn(Txn::new().when(when).and_then(ops))
        .await?
        .succeeded
    {
        return Err(Error::Conflict(format!(
            "tablet {} or {} or their merge changed since they were read",
            rec.left.0, rec.right.0
        )));
    }
    Ok(merged)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(id: u64, start: &str, end: Option<&str>, owner: &str) -> TabletRecord {
        TabletRecord {
            table: "t".into(),
            id,
            start: start.as_bytes().to_vec(),
            end: end.map(|e| e.as_bytes().to_vec()),
            owner: Some(owner.into()),
            epoch: 2,
            state: TabletState::Serving,
        }
    }

    #[test]
    fn records_round_trip() {
        let r = MergeRecord {
            table: "projects/p/instances/i/tables/t".into(),
            left: (7, 3),
            right: (8, 1),
            merged: 12,
            owner: "a@5".into(),
            ready: true,
            mod_revision: 4,
        };
        assert_eq!(MergeRecord::decode("k", &r.encode(), 4).unwrap(), r);
        assert!(MergeRecord::decode("k", b"format 1\nleft 1\n", 1).is_err());
        let (mut l, mut rt) = (t(7, "a", Some("m"), "a@5"), t(8, "m", None, "a@5"));
        l.epoch = 3;
        rt.epoch = 1;
        assert!(r.still_on(&l, &rt));
        let m = r.merged_record(&l, &rt, Some("a@5"));
        assert_eq!((m.start.as_slice(), m.end.as_deref()), (&b"a"[..], None));
        assert_eq!((m.epoch, m.state, m.id), (1, TabletState::Serving, 12));
        rt.epoch = 2;
        assert!(!r.still_on(&l, &rt));
    }

    #[test]
    fn candidates_are_small_serving_neighbours_once_each() {
        let mut map = TabletMap::default();
        map.upsert(t(1, "", Some("c"), "a@1"));
        map.upsert(t(2, "c", Some("f"), "a@1"));
        map.upsert(t(3, "f", Some("k"), "b@1"));
        map.upsert(t(4, "k", Some("p"), "b@1"));
        map.upsert(t(5, "p", None, "b@1"));
        let load = |size_bytes| TabletLoad {
            size_bytes,
            requests_per_sec: 0.0,
        };
        let mut loads = BTreeMap::new();
        for (id, size) in [(1, 10), (2, 10), (3, 10), (4, 95), (5, 1)] {
            loads.insert(id, load(size));
        }
        let none = BTreeSet::new();
        // 1+2 fit; 3+4 do not; 4+5 fit. 2+3 are never considered: 2 is taken.
        assert_eq!(candidates(&map, &loads, 100, &none), vec![(1, 2), (4, 5)]);
        assert!(candidates(&map, &loads, 0, &none).is_empty());
        // A fixed tablet is skipped; its neighbours pair otherwise.
        let fixed: BTreeSet<u64> = [1].into_iter().collect();
        assert_eq!(candidates(&map, &loads, 100, &fixed), vec![(2, 3), (4, 5)]);
        // An unreported tablet is never merged.
        loads.remove(&5);
        assert_eq!(candidates(&map, &loads, 100, &none), vec![(1, 2)]);
        // Nor one not serving.
        let mut moving = t(2, "c", Some("f"), "a@1");
        moving.state = TabletState::Moving;
        map.upsert(moving);
        assert!(candidates(&map, &loads, 100, &none).is_empty());
    }
}
