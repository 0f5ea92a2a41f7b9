//! The tablet map in etcd: reading it, following it, and the master's
//! writes to it (docs/cluster.md, "etcd keys").
//!
//! Every change of an existing record is the master's, in a txn its term
//! guards ([`Leadership::txn`]), and compares what it replaces with what
//! the master last read (the whole old value), so two masters' plans, or a
//! master's plan and a change it has not seen yet, never both apply. A
//! table's first records are written with its schema by whichever server
//! took the CreateTable (`schema_store::create_table`), unassigned.

use crate::client::{Etcd, KeyValue};
use crate::election::Leadership;
use crate::error::{Error, Result};
use crate::tablet_map::{tablet_key, tablets_prefix, TabletMap, TabletRecord, TabletState};
use crate::txn::{Cmp, Compare, Op, Txn};
use crate::watch::{EventKind, WatchOptions, WatchStream};

/// The key of the counter tablet ids come from.
pub(crate) fn tablet_ids_key(cluster: &str) -> String {
    format!("/{cluster}/ids/tablet")
}

/// The counter at `key` (1 if absent) and its mod revision (0 if absent).
pub(crate) fn parse_counter(key: &str, kv: Option<&KeyValue>) -> Result<(u64, i64)> {
    match kv {
        None => Ok((1, 0)),
        Some(kv) => std::str::from_utf8(&kv.value)
            .ok()
            .and_then(|s| s.parse().ok())
            .map(|n| (n, kv.mod_revision))
            .ok_or_else(|| Error::Protocol(format!("{key} is not a number"))),
    }
}

/// Attempts at taking ids from the counter while others take some too.
const ALLOCATE_ATTEMPTS_MAX: usize = 32;

/// Takes `n` new tablet ids from the counter; returns the first (the
/// others follow it). An id taken and not used is never used.
pub async fn allocate_ids(etcd: &Etcd, cluster: &str, n: u64) -> Result<u64> {
    let key = tablet_ids_key(cluster);
    for _ in 0..ALLOCATE_ATTEMPTS_MAX {
        let (kv, _) = etcd.get_with_revision(key.as_bytes()).await?;
        let (first, revision) = parse_counter(&key, kv.as_ref())?;
        let next = first
            .checked_add(n)
            .ok_or_else(|| Error::Protocol("tablet ids exhausted".into()))?;
        let txn = Txn::new()
            .when([Compare::mod_revision(key.as_bytes(), Cmp::Equal, revision)])
            .and_then([Op::put(key.as_bytes(), next.to_string().as_bytes())]);
        if etcd.txn(txn).await?.succeeded {
            return Ok(first);
        }
    }
    Err(Error::Conflict(
        "taking tablet ids: the counter kept changing".into(),
    ))
}

/// Tablets one table may be created with (a txn carries them all; etcd
/// bounds a txn's operations at 128 by default).
pub const INITIAL_TABLETS_MAX: usize = 100;

/// The tablet id in a tablet key, if it is one.
fn id_of_key(cluster: &str, key: &[u8]) -> Option<u64> {
    let rest = key.strip_prefix(tablets_prefix(cluster).as_bytes())?;
    let slash = rest.iter().rposition(|&b| b == b'/')?;
    std::str::from_utf8(&rest[slash + 1..]).ok()?.parse().ok()
}

/// The whole map and the revision it was read at (follow it with
/// [`TabletFollower`] from `revision + 1`).
pub async fn load(etcd: &Etcd, cluster: &str) -> Result<(TabletMap, i64)> {
    let listing = etcd.get_prefix(tablets_prefix(cluster).as_bytes()).await?;
    let mut map = TabletMap::default();
    for kv in &listing.kvs {
        let key = String::from_utf8_lossy(&kv.key);
        map.upsert(TabletRecord::decode(&key, &kv.value)?);
    }
    Ok((map, listing.revision))
}

/// Keeps a map up to date from a watch.
pub struct TabletFollower {
    cluster: String,
    stream: WatchStream,
    /// The revision of the last change applied.
    pub revision: i64,
}

impl TabletFollower {
    /// Follows `cluster`'s tablet map from after `revision` (what [`load`]
    /// returned).
    pub fn new(etcd: &Etcd, cluster: &str, revision: i64) -> TabletFollower {
        let opts = WatchOptions {
            start_revision: revision + 1,
            prev_kv: false,
        };
        TabletFollower {
            cluster: cluster.to_string(),
            stream: etcd.watch_prefix(tablets_prefix(cluster).as_bytes(), opts),
            revision,
        }
    }

    /// Waits for the next change and applies it to `map`; returns its
    /// revision. A change is every event of one revision (a txn's), so
    /// the map never shows half of one: a split's parent gone and one
    /// child there. `None`: the watch ended (reload and follow anew).
    pub async fn apply_next(&mut self, map: &mut TabletMap) -> Option<Result<i64>> {
        let events = match self.stream.next_revision().await? {
            Ok(e) => e,
            Err(e) => return Some(Err(e)),
        };
        let mut revision = self.revision;
        for event in events {
            let key = String::from_utf8_lossy(&event.kv.key).into_owned();
            let applied = match event.kind {
                EventKind::Put => {
                    TabletRecord::decode(&key, &event.kv.value).map(|r| map.upsert(r))
                }
                EventKind::Delete => match id_of_key(&self.cluster, &event.kv.key) {
                    Some(id) => {
                        map.remove(id);
                        Ok(())
                    }
                    None => Err(Error::Protocol(format!("not a tablet key: {key}"))),
                },
            };
            revision = event.revision();
            if let Err(e) = applied {
                self.revision = revision;
                return Some(Err(e));
            }
        }
        self.revision = revision;
        Some(Ok(revision))
    }
}

/// Gives `tablet` (as the master last read it) to `owner` (None: takes it
/// away), in `state`, at the next epoch. `Error::Conflict` if the record
/// changed since it was read.
pub async fn reassign(
    master: &Leadership,
    cluster: &str,
    tablet: &TabletRecord,
    owner: Option<&str>,
    state: TabletState,
) -> Result<TabletRecord> {
    reassign_with(
        master,
        cluster,
        tablet,
        owner,
        state,
        Vec::new(),
        Vec::new(),
    )
    .await
}

/// Records one master txn changes at most: a compare and a put each, under
/// etcd's default bound of 128 operations per txn branch.
pub const REASSIGN_BATCH: usize = 64;

/// [`reassign`] for many tablets at once, `batch` (at most
/// [`REASSIGN_BATCH`]) per txn: a failover's hundreds of records in a few
/// txns, not one each. Returns the new records. `Error::Conflict` if a
/// record of a batch changed since it was read: that batch changed
/// nothing, earlier ones stand.
pub async fn reassign_many(
    master: &Leadership,
    cluster: &str,
    changes: &[(&TabletRecord, Option<&str>, TabletState)],
    batch: usize,
) -> Result<Vec<TabletRecord>> {
    let mut out = Vec::with_capacity(changes.len());
    for batch in changes.chunks(batch.clamp(1, REASSIGN_BATCH)) {
        let mut when = Vec::with_capacity(batch.len());
        let mut ops = Vec::with_capacity(batch.len());
        let mut next_records = Vec::with_capacity(batch.len());
        for &(tablet, owner, state) in batch {
            let next = next_record(tablet, owner, state)?;
            let key = tablet_key(cluster, &tablet.table, tablet.id);
            when.push(Compare::value(key.as_bytes(), Cmp::Equal, &tablet.encode()));
            ops.push(Op::put(key.as_bytes(), &next.encode()));
            next_records.push(next);
        }
        if !master
            .txn(Txn::new().when(when).and_then(ops))
            .await?
            .succeeded
        {
            return Err(Error::Conflict(format!(
                "one of {} tablet records changed since it was read",
                batch.len()
            )));
        }
        out.extend(next_records);
    }
    Ok(out)
}

/// `tablet` given to `owner` in `state`, at the next epoch.
fn next_record(
    tablet: &TabletRecord,
    owner: Option<&str>,
    state: TabletState,
) -> Result<TabletRecord> {
    let mut next = tablet.clone();
    next.owner = owner.map(str::to_string);
    next.state = state;
    next.epoch = tablet
        .epoch
        .checked_add(1)
        .ok_or_else(|| Error::Protocol(format!("tablet {}: epoch exhausted", tablet.id)))?;
    if next.owner.is_none() != (state == TabletState::Unassigned) {
        return Err(Error::InvalidArgument(
            "a tablet has an owner exactly when it is assigned".into(),
        ));
    }
    Ok(next)
}

/// [`reassign`], with `also` applied in the same txn, which also requires
/// `guards`.
pub(crate) async fn reassign_with(
    master: &Leadership,
    cluster: &str,
    tablet: &TabletRecord,
    owner: Option<&str>,
    state: TabletState,
    guards: Vec<Compare>,
    also: Vec<Op>,
) -> Result<TabletRecord> {
    let next = next_record(tablet, owner, state)?;
    let key = tablet_key(cluster, &tablet.table, tablet.id);
    let mut ops = vec![Op::put(key.as_bytes(), &next.encode())];
    ops.extend(also);
    let mut when = vec![Compare::value(key.as_bytes(), Cmp::Equal, &tablet.encode())];
    when.extend(guards);
    let txn = Txn::new().when(when).and_then(ops);
    if !master.txn(txn).await?.succeeded {
        return Err(Error::Conflict(format!(
            "tablet {} of {} changed since it was read (or is splitting)",
            tablet.id, tablet.table
        )));
    }
    Ok(next)
}
