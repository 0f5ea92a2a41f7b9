//! Moves of a tablet between live servers (docs/cluster.md, "Moves"):
//! Bigtable's fast migration, with etcd recording each step.
//!
//! 1. The master marks the tablet `moving` (same owner, next epoch) and
//!    records the target in `/<cluster>/moves/<id>` (one txn).
//! 2. The owner, seeing its tablet no longer `serving` at the epoch it
//!    holds, stops serving it, flushes and closes it, then writes
//!    `/<cluster>/released/<id>` = the moving epoch, on its lease.
//! 3. The master, seeing the release (or after [`MOVE_RELEASE_WAIT`]
//!    without one), gives the tablet to the target, `serving` at the next
//!    epoch, and deletes both keys (one txn). The target opens it: the
//!    flush left nothing in the log to replay.
//!
//! No moment has two servers serving the tablet: the source stopped
//! before the release, and the target starts after it. If the source
//! never releases (stuck, or it died: then it is recovered as any dead
//! server's tablet), the target's open takes the tablet's storage over,
//! which fences the source's writes in the store either way.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::client::{Etcd, LeaseId};
use crate::election::Leadership;
use crate::error::{Error, Result};
use crate::splits::split_key;
use crate::tablet_map::{TabletRecord, TabletState};
use crate::tablet_store::reassign_with;
use crate::txn::{Cmp, Compare, Op, Txn};

/// How long the master waits for a source to release a moving tablet
/// before it gives the tablet to the target anyway.
pub const MOVE_RELEASE_WAIT: Duration = Duration::from_secs(10);

pub fn moves_prefix(cluster: &str) -> String {
    format!("/{cluster}/moves/")
}

pub fn move_key(cluster: &str, id: u64) -> String {
    format!("{}{id:020}", moves_prefix(cluster))
}

pub fn released_prefix(cluster: &str) -> String {
    format!("/{cluster}/released/")
}

pub fn released_key(cluster: &str, id: u64) -> String {
    format!("{}{id:020}", released_prefix(cluster))
}

/// The tablet id ending a key `<prefix><id>` (the keys of `moves/`,
/// `released/`, `splits/`).
pub(crate) fn id_of(prefix: &str, key: &[u8]) -> Option<u64> {
    std::str::from_utf8(key.strip_prefix(prefix.as_bytes())?)
        .ok()?
        .parse()
        .ok()
}

/// Moves in progress: tablet id to its target owner.
pub async fn load_moves(etcd: &Etcd, cluster: &str) -> Result<BTreeMap<u64, String>> {
    let prefix = moves_prefix(cluster);
    let listing = etcd.get_prefix(prefix.as_bytes()).await?;
    let mut out = BTreeMap::new();
    for kv in &listing.kvs {
        let id = id_of(&prefix, &kv.key)
            .ok_or_else(|| Error::Protocol(format!("bad move key {:?}", kv.key)))?;
        let to = std::str::from_utf8(&kv.value)
            .ok()
            .and_then(|v| v.strip_prefix("to "))
            .map(|v| v.trim_end().to_string())
            .ok_or_else(|| Error::Protocol(format!("bad move record for tablet {id}")))?;
        out.insert(id, to);
    }
    Ok(out)
}

/// Releases by sources: tablet id to the moving epoch released.
pub async fn load_released(etcd: &Etcd, cluster: &str) -> Result<BTreeMap<u64, u64>> {
    let prefix = released_prefix(cluster);
    let listing = etcd.get_prefix(prefix.as_bytes()).await?;
    Ok(listing
        .kvs
        .iter()
        .filter_map(|kv| {
            let id = id_of(&prefix, &kv.key)?;
            let epoch = std::str::from_utf8(&kv.value).ok()?.trim().parse().ok()?;
            Some((id, epoch))
        })
        .collect())
}

/// Step 1: `tablet` (serving) starts moving to `to`.
pub async fn begin_move(
    master: &Leadership,
    cluster: &str,
    tablet: &TabletRecord,
    to: &str,
) -> Result<TabletRecord> {
    if tablet.state != TabletState::Serving || tablet.owner.is_none() {
        return Err(Error::InvalidArgument(format!(
            "tablet {} is {}, not serving: it cannot move",
            tablet.id,
            tablet.state.name()
        )));
    }
    reassign_with(
        master,
        cluster,
        tablet,
        tablet.owner.as_deref(),
        TabletState::Moving,
        // Never while the owner splits it (`splits`) or merges it
        // (`merges`).
        vec![
            Compare::create_revision(split_key(cluster, tablet.id).as_bytes(), Cmp::Equal, 0),
            Compare::create_revision(
                crate::merges::merge_key(cluster, tablet.id).as_bytes(),
                Cmp::Equal,
                0,
            ),
        ],
        vec![
            Op::put(
                move_key(cluster, tablet.id).as_bytes(),
                format!("to {to}\n").as_bytes(),
            ),
            Op::delete(released_key(cluster, tablet.id).as_bytes()),
        ],
    )
    .await
}

/// Step 2, by the source: it has closed `id`, moving at `epoch`.
pub async fn release(
    etcd: &Etcd,
    cluster: &str,
    id: u64,
    epoch: u64,
    lease: LeaseId,
) -> Result<()> {
    etcd.put(
        released_key(cluster, id).as_bytes(),
        epoch.to_string().as_bytes(),
        Some(lease),
    )
    .await?;
    Ok(())
}

/// Step 3: the moving `tablet` goes to `to`, serving.
pub async fn finish_move(
    master: &Leadership,
    cluster: &str,
    tablet: &TabletRecord,
    to: &str,
) -> Result<TabletRecord> {
    reassign_with(
        master,
        cluster,
        tablet,
        Some(to),
        TabletState::Serving,
        Vec::new(),
        vec![
            Op::delete(move_key(cluster, tablet.id).as_bytes()),
            Op::delete(released_key(cluster, tablet.id).as_bytes()),
        ],
    )
    .await
}

/// Deletes the move records of `id` (a move abandoned: its source died,
/// or the tablet is gone).
pub async fn forget(master: &Leadership, cluster: &str, id: u64) -> Result<()> {
    let txn = Txn::new().and_then([
        Op::delete(move_key(cluster, id).as_bytes()),
        Op::delete(released_key(cluster, id).as_bytes()),
    ]);
    master.txn(txn).await?;
    Ok(())
}
