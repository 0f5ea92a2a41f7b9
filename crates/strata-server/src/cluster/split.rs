//! The owner's side of a tablet's split (docs/cluster.md, "Splits";
//! `strata_cluster::splits` for the records): a tablet served here that
//! has grown past the split size is split at its middle row.
//!
//! 1. The split is recorded in etcd with two new tablet ids.
//! 2. The parent's tables are copied into both children's prefixes while
//!    it serves (the store's own copies: a hard link on a local
//!    directory, CopyObject on S3).
//! 3. The parent stops serving, is flushed and closed; what changed since
//!    step 2 (new tables, the manifest, the log) is copied, and tables
//!    gone from the parent are deleted from the copies.
//! 4. The split is marked ready; the master replaces the parent by the
//!    children, which this server then opens (each keeps only its rows).
//!
//! Requests for the parent's rows wait from step 3 to the children's
//! opening, and are routed again (`route::ROUTE_WAIT`). If anything fails
//! before the master's step, the split is withdrawn and the parent served
//! again: its own prefix was never written.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use strata_cluster::splits::{self, SplitRecord};
use strata_cluster::tablet_map::{TabletRecord, TabletState};

use super::handover::{blocking, record_in_etcd, reopen};
use super::Cluster;

/// How often the tablets served here are checked against the split size.
const SPLIT_CHECK_EVERY: Duration = Duration::from_secs(2);

/// How long the owner waits for the master to record a ready split
/// before it looks again (it waits as long as the split stays recorded).
const OUTCOME_POLL: Duration = Duration::from_millis(200);

/// How long a tablet whose split failed waits before it is tried again.
const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(30);

/// Splits the tablets served here that reach `split_size_bytes`, one at
/// a time, for as long as the task runs.
pub(crate) async fn run(cluster: Arc<Cluster>, split_size_bytes: u64) {
    if split_size_bytes == 0 {
        return;
    }
    let mut failed: HashMap<u64, Instant> = HashMap::new();
    loop {
        tokio::time::sleep(SPLIT_CHECK_EVERY).await;
        failed.retain(|_, at| at.elapsed() < RETRY_AFTER_FAILURE);
        let c = cluster.clone();
        let due = tokio::task::spawn_blocking(move || due(&c, split_size_bytes))
            .await
            .unwrap_or_default();
        for (parent, at, size_bytes) in due {
            if failed.contains_key(&parent.id) {
                continue;
            }
            tracing::info!(
                tablet = parent.id,
                table = %parent.table,
                size_bytes,
                "splitting tablet at row {}",
                String::from_utf8_lossy(&at)
            );
            if let Err(e) = split(&cluster, &parent, &at).await {
                tracing::warn!(
                    tablet = parent.id,
                    "split not done: {e}; trying again in {RETRY_AFTER_FAILURE:?} at the earliest"
                );
                failed.insert(parent.id, Instant::now());
            }
        }
    }
}

/// The tablets served here (serving, at the epoch the map gives) that
/// reach the split size, each with the row to split at and its size.
fn due(cluster: &Cluster, split_size_bytes: u64) -> Vec<(TabletRecord, Vec<u8>, u64)> {
    let Some(me) = cluster.view.me() else {
        return Vec::new();
    };
    let map = cluster.view.map();
    let mut out = Vec::new();
    for h in cluster.host.all() {
        let current = map.get(h.record.id).is_some_and(|t| {
            t.epoch == h.record.epoch
                && t.state == TabletState::Serving
                && t.owner.as_deref() == Some(me.owner.as_str())
        });
        if !current {
            continue;
        }
        let size_bytes = h.size_bytes();
        if size_bytes < split_size_bytes {
            continue;
        }
        let Ok(samples) = h.db.sample_row_keys(&h.record.table) else {
            continue;
        };
        if let Some(at) = middle_row(&samples, &h.record) {
            out.push((h.record.clone(), at, size_bytes));
        } else {
            tracing::debug!(
                tablet = h.record.id,
                "tablet is over the split size but has no row to split at"
            );
        }
    }
    out
}

/// The first sampled row at or past half the tablet's bytes that is
/// strictly inside it (a split leaves both children non-empty ranges).
fn middle_row(samples: &[(Vec<u8>, i64)], t: &TabletRecord) -> Option<Vec<u8>> {
    let total = samples.last().map_or(0, |(_, off)| *off);
    // Above the start (so never the empty end-of-table sample) and below
    // the end.
    let inside: Vec<&(Vec<u8>, i64)> = samples
        .iter()
        .filter(|(row, _)| row.as_slice() > t.start.as_slice() && t.contains(row))
        .collect();
    inside
        .iter()
        .find(|(_, off)| *off >= total / 2)
        .or(inside.last())
        .map(|(row, _)| row.clone())
}

/// Copies `parent`'s objects into both children (see `TabletStore::mirror`).
async fn mirror(
    cluster: &Cluster,
    parent: u64,
    split: &SplitRecord,
    everything: bool,
) -> Result<usize, String> {
    let store = cluster.host.store().clone();
    let children = split.children;
    blocking(move || {
        let mut copied = 0;
        for child in children {
            copied += store.mirror(parent, child, everything)?;
        }
        Ok(copied)
    })
    .await
}

/// Splits `parent` (served here at its epoch) at row `at`.
async fn split(cluster: &Arc<Cluster>, parent: &TabletRecord, at: &[u8]) -> Result<(), String> {
    let started = Instant::now();
    let record = match splits::request(&cluster.etcd, &cluster.name, parent, at).await {
        Ok(r) => r,
        Err(
            e @ (strata_cluster::Error::Conflict(_) | strata_cluster::Error::InvalidArgument(_)),
        ) => return Err(format!("recording the split: {e}")),
        Err(e) => {
            // The request may have landed with its reply lost: a record
            // left `prepared` would hold the tablet (no move, merge or
            // other split) until the master abandons it. Nothing was done
            // on it yet (this server splits one tablet at a time), so it
            // is withdrawn.
            if let Ok(Some(r)) = splits::get(&cluster.etcd, &cluster.name, parent.id).await {
                if r.epoch == parent.epoch && !r.ready {
                    let _ = splits::withdraw(&cluster.etcd, &cluster.name, &r).await;
                }
            }
            return Err(format!("recording the split: {e}"));
        }
    };
    let pre_copied = match mirror(cluster, parent.id, &record, false).await {
        Ok(n) => n,
        Err(e) => return Err(give_up(cluster, parent, &record, e).await),
    };
    let closing = Instant::now();
    let host = cluster.host.clone();
    let (id, epoch) = (parent.id, parent.epoch);
    if let Err(e) = blocking(move || host.close_for_handover(id, epoch)).await {
        return Err(give_up(cluster, parent, &record, e).await);
    }
    let copied = match mirror(cluster, parent.id, &record, true).await {
        Ok(n) => n,
        Err(e) => return Err(give_up(cluster, parent, &record, e).await),
    };
    let ready = match splits::mark_ready(&cluster.etcd, &cluster.name, &record).await {
        Ok(r) => r,
        Err(e) => return Err(give_up(cluster, parent, &record, e.to_string()).await),
    };
    tracing::info!(
        tablet = parent.id,
        "split ready: {pre_copied} objects copied while serving, {copied} after closing; closed and copied in {:.2?}",
        closing.elapsed()
    );
    await_outcome(
        cluster,
        parent,
        &record,
        ready.mod_revision,
        started,
        closing,
    )
    .await
}

/// Waits for the master's step on a ready split (its record at
/// `ready_revision`): the parent leaves the map (done), or the split is
/// abandoned (the parent is served again). Decided from etcd, not from
/// this server's view, which may lag behind it.
async fn await_outcome(
    cluster: &Arc<Cluster>,
    parent: &TabletRecord,
    record: &SplitRecord,
    ready_revision: i64,
    started: Instant,
    closing: Instant,
) -> Result<(), String> {
    loop {
        let gone_from_view = cluster.view.map().get(parent.id).is_none();
        let outcome = if gone_from_view {
            Some(Ok(()))
        } else {
            match splits::get(&cluster.etcd, &cluster.name, parent.id).await {
                Ok(Some(r)) if r.mod_revision == ready_revision => None,
                Ok(_) => match record_in_etcd(cluster, parent).await {
                    // Replaced by its children: done.
                    Ok(None) => Some(Ok(())),
                    Ok(Some(now)) if now == *parent => {
                        reopen(cluster, parent, "its split failed").await;
                        Some(Err("the master abandoned the split".to_string()))
                    }
                    // Recovered or moved meanwhile: the map's changes
                    // take it from here.
                    Ok(Some(_)) => Some(Err("the tablet changed during its split".to_string())),
                    Err(e) => {
                        tracing::warn!(tablet = parent.id, "reading the tablet's record: {e}");
                        None
                    }
                },
                Err(e) => {
                    tracing::warn!(tablet = parent.id, "reading the split's record: {e}");
                    None
                }
            }
        };
        match outcome {
            Some(Ok(())) => {
                tracing::info!(
                    tablet = parent.id,
                    left = record.children[0],
                    right = record.children[1],
                    "split done in {:.2?}; the tablet was unavailable for {:.2?} until its children open",
                    started.elapsed(),
                    closing.elapsed()
                );
                return Ok(());
            }
            Some(Err(e)) => return Err(e),
            None => cluster.view.changed(OUTCOME_POLL).await,
        }
    }
}

/// Ends `record` in etcd (withdrawn), then serves `parent` again if it
/// was closed; returns `why`, for the caller's error. Only a split known
/// to be over lets the parent serve again: if the owner's "ready" landed
/// after all (its reply lost), the master may still replace the parent,
/// and the owner waits for that outcome instead.
async fn give_up(
    cluster: &Arc<Cluster>,
    parent: &TabletRecord,
    record: &SplitRecord,
    why: String,
) -> String {
    loop {
        match splits::withdraw(&cluster.etcd, &cluster.name, record).await {
            Ok(true) => break,
            // The record changed: the master abandoned the split, or this
            // owner's "ready" landed.
            Ok(false) => match splits::get(&cluster.etcd, &cluster.name, parent.id).await {
                Ok(Some(r)) if r.ready && r.children == record.children => {
                    let now = Instant::now();
                    return match await_outcome(cluster, parent, record, r.mod_revision, now, now)
                        .await
                    {
                        Ok(()) => format!("{why} (but the split was ready, and is done)"),
                        Err(e) => format!("{why}; then: {e}"),
                    };
                }
                Ok(_) => break,
                Err(e) => tracing::warn!(tablet = parent.id, "reading the split's record: {e}"),
            },
            Err(e) => tracing::warn!(
                tablet = parent.id,
                "withdrawing the split: {e}; trying again"
            ),
        }
        tokio::time::sleep(super::handover::RETRY_REOPEN).await;
    }
    if cluster.host.get(parent.id).is_none() {
        reopen(cluster, parent, "its split failed").await;
    }
    why
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tablet(start: &[u8], end: Option<&[u8]>) -> TabletRecord {
        TabletRecord {
            table: "t".into(),
            id: 1,
            start: start.to_vec(),
            end: end.map(<[u8]>::to_vec),
            owner: Some("a@1".into()),
            epoch: 1,
            state: TabletState::Serving,
        }
    }

    fn samples(rows: &[(&str, i64)]) -> Vec<(Vec<u8>, i64)> {
        rows.iter()
            .map(|(r, o)| (r.as_bytes().to_vec(), *o))
            .collect()
    }

    #[test]
    fn the_middle_row_is_inside_the_tablet() {
        let s = samples(&[("b", 10), ("d", 40), ("f", 60), ("", 100)]);
        assert_eq!(middle_row(&s, &tablet(b"", None)), Some(b"f".to_vec()));
        // Past the end: the last row inside.
        assert_eq!(
            middle_row(&s, &tablet(b"", Some(b"e"))),
            Some(b"d".to_vec())
        );
        // The tablet's own start is no split.
        assert_eq!(
            middle_row(&samples(&[("f", 0), ("", 9)]), &tablet(b"f", None)),
            None
        );
        assert_eq!(middle_row(&samples(&[("", 0)]), &tablet(b"", None)), None);
    }
}
