//! The owner's side of a merge of two neighbouring tablets
//! (docs/cluster.md, "Merges"; `strata_cluster::merges` for the records):
//! the master records the merge of two tablets served here, and this
//! server makes it.
//!
//! 1. The left tablet's tables are copied into the merged tablet's prefix
//!    while both serve (the store's own copies).
//! 2. Both stop serving and are flushed and closed; what changed in the
//!    left one since step 1 is copied (tables, manifest, log).
//! 3. The merged tablet's database is opened on that copy, keeps only the
//!    left one's rows, and ingests the right one's: its tables are copied
//!    under new numbers, and one manifest edit makes them its data
//!    (`Database::ingest_rows`). It is closed.
//! 4. The merge is marked ready; the master replaces both tablets by the
//!    merged one, which this server then opens.
//!
//! Requests for either tablet's rows wait from step 2 to the merged one's
//! opening, and are routed again. If anything fails before the master's
//! step, the merge is withdrawn and both tablets served again: their own
//! prefixes were never written.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use strata_cluster::merges::{self, MergeRecord};
use strata_cluster::tablet_map::TabletRecord;
use strata_engine::Ingested;
use strata_table::Database;

use super::handover::{blocking, record_in_etcd, reopen, RETRY_REOPEN};
use super::host::TabletHost;
use super::Cluster;

/// How often this server looks for merges the master gave it.
const MERGE_CHECK_EVERY: Duration = Duration::from_secs(1);

/// How long the owner waits between looks at a ready merge's record.
const OUTCOME_POLL: Duration = Duration::from_millis(200);

/// Makes the merges the master records for this server, one at a time,
/// for as long as the task runs.
pub(crate) async fn run(cluster: Arc<Cluster>) {
    // Merges already tried (by left tablet and record revision): a failed
    // one is withdrawn, so its record does not come back; this guards
    // against a withdrawal that did not land.
    let mut tried: HashMap<(u64, i64), Instant> = HashMap::new();
    loop {
        tokio::time::sleep(MERGE_CHECK_EVERY).await;
        let Some(me) = cluster.view.me() else {
            continue;
        };
        let records = match merges::load(&cluster.etcd, &cluster.name).await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!("reading the merges in progress: {e}");
                continue;
            }
        };
        tried.retain(|(id, _), _| records.contains_key(id));
        for rec in records.into_values() {
            if rec.owner != me.owner || rec.ready {
                continue;
            }
            if tried
                .insert((rec.left.0, rec.mod_revision), Instant::now())
                .is_some()
            {
                continue;
            }
            tracing::info!(
                left = rec.left.0,
                right = rec.right.0,
                merged = rec.merged,
                table = %rec.table,
                "merging tablets"
            );
            if let Err(e) = merge(&cluster, &rec).await {
                tracing::warn!(
                    left = rec.left.0,
                    right = rec.right.0,
                    "merge not done: {e}"
                );
            }
        }
    }
}

/// The records of `rec`'s two tablets as served here, if both are, at
/// the merge's epochs.
fn served(host: &TabletHost, rec: &MergeRecord) -> Option<(TabletRecord, TabletRecord)> {
    let at = |(id, epoch): (u64, u64)| {
        host.get(id)
            .filter(|h| h.record.epoch == epoch)
            .map(|h| h.record.clone())
    };
    Some((at(rec.left)?, at(rec.right)?))
}

/// Makes the merge `rec` of two tablets served here.
async fn merge(cluster: &Arc<Cluster>, rec: &MergeRecord) -> Result<(), String> {
    let started = Instant::now();
    let Some((left, right)) = served(&cluster.host, rec) else {
        let why = "its tablets are not both served here at the merge's epochs".to_string();
        return Err(give_up(cluster, rec, &[], why).await);
    };
    let store = cluster.host.store().clone();
    let (l, m) = (left.id, rec.merged);
    let pre_copied = match blocking(move || store.mirror(l, m, false)).await {
        Ok(n) => n,
        Err(e) => return Err(give_up(cluster, rec, &[], e).await),
    };
    let closing = Instant::now();
    let mut closed: Vec<TabletRecord> = Vec::with_capacity(2);
    for t in [&left, &right] {
        let host = cluster.host.clone();
        let (id, epoch) = (t.id, t.epoch);
        if let Err(e) = blocking(move || host.close_for_handover(id, epoch)).await {
            return Err(give_up(cluster, rec, &closed, e).await);
        }
        closed.push(t.clone());
    }
    let host = cluster.host.clone();
    let (lt, rt, merged) = (left.clone(), right.clone(), rec.merged);
    let built = match blocking(move || build(&host, &lt, &rt, merged)).await {
        Ok(b) => b,
        Err(e) => return Err(give_up(cluster, rec, &closed, e).await),
    };
    let ready = match merges::mark_ready(&cluster.etcd, &cluster.name, rec).await {
        Ok(r) => r,
        Err(e) => return Err(give_up(cluster, rec, &closed, e.to_string()).await),
    };
    tracing::info!(
        left = left.id,
        right = right.id,
        merged = rec.merged,
        "merge ready: {pre_copied} objects copied while serving; {} tables ({} bytes) of the right tablet ingested; closed and built in {:.2?}",
        built.files,
        built.bytes,
        closing.elapsed()
    );
    await_outcome(cluster, rec, &closed, ready.mod_revision).await?;
    tracing::info!(
        left = left.id,
        right = right.id,
        merged = rec.merged,
        "merge done in {:.2?}; the tablets were unavailable for {:.2?} until the merged one opens",
        started.elapsed(),
        closing.elapsed()
    );
    Ok(())
}

/// Builds tablet `merged` from `left` and `right`, both closed (blocking):
/// the left one's copy, keeping its rows, with the right one's ingested.
fn build(
    host: &TabletHost,
    left: &TabletRecord,
    right: &TabletRecord,
    merged: u64,
) -> Result<Ingested, String> {
    let store = host.store();
    store.mirror(left.id, merged, true)?;
    let db = Database::open_storage(store.storage(merged)?, host.options().clone())
        .map_err(|e| format!("opening merged tablet {merged}: {e}"))?;
    let table = &left.table;
    db.retain_rows(table, &left.start, left.end.as_deref())
        .map_err(|e| format!("merged tablet {merged}: keeping the left tablet's rows: {e}"))?;
    let source = store.storage(right.id)?;
    let stored = strata_engine::manifest::read_stored(&*source)
        .map_err(|e| format!("reading tablet {}'s manifest: {e}", right.id))?;
    let mut place = |from: u64, to: u64| {
        store
            .copy_table(right.id, from, merged, to)
            .map_err(strata_engine::Error::Unavailable)
    };
    let done = db
        .ingest_rows(
            table,
            &stored,
            &right.start,
            right.end.as_deref(),
            &mut place,
        )
        .map_err(|e| {
            format!(
                "merged tablet {merged}: taking tablet {}'s rows: {e}",
                right.id
            )
        })?;
    db.close()
        .map_err(|e| format!("closing merged tablet {merged}: {e}"))?;
    Ok(done)
}

/// Waits for the master's step on a ready merge (its record at
/// `ready_revision`): the tablets leave the map (done), or the merge is
/// abandoned (both are served again). Decided from etcd, not from this
/// server's view, which may lag behind it.
async fn await_outcome(
    cluster: &Arc<Cluster>,
    rec: &MergeRecord,
    closed: &[TabletRecord],
    ready_revision: i64,
) -> Result<(), String> {
    loop {
        match merges::get(&cluster.etcd, &cluster.name, rec.left.0).await {
            Ok(Some(r)) if r.mod_revision == ready_revision => {}
            Ok(_) => {
                let Some(left) = closed.first() else {
                    return Ok(());
                };
                match record_in_etcd(cluster, left).await {
                    Ok(None) => return Ok(()),
                    Ok(Some(_)) => {
                        for t in closed {
                            reopen(cluster, t, "its merge was abandoned").await;
                        }
                        return Err("the master abandoned the merge".to_string());
                    }
                    Err(e) => tracing::warn!(tablet = left.id, "reading the tablet's record: {e}"),
                }
            }
            Err(e) => tracing::warn!(left = rec.left.0, "reading the merge's record: {e}"),
        }
        cluster.view.changed(OUTCOME_POLL).await;
    }
}

/// Ends `rec` in etcd (withdrawn), then serves the tablets in `closed`
/// again; returns `why`, for the caller's error. If this owner's "ready"
/// landed after all (its reply lost), the master may still replace the
/// tablets, and the owner waits for that outcome instead.
async fn give_up(
    cluster: &Arc<Cluster>,
    rec: &MergeRecord,
    closed: &[TabletRecord],
    why: String,
) -> String {
    loop {
        match merges::withdraw(&cluster.etcd, &cluster.name, rec).await {
            Ok(true) => break,
            Ok(false) => match merges::get(&cluster.etcd, &cluster.name, rec.left.0).await {
                Ok(Some(r)) if r.ready && r.merged == rec.merged => {
                    return match await_outcome(cluster, rec, closed, r.mod_revision).await {
                        Ok(()) => format!("{why} (but the merge was ready, and is done)"),
                        Err(e) => format!("{why}; then: {e}"),
                    };
                }
                Ok(_) => break,
                Err(e) => tracing::warn!(left = rec.left.0, "reading the merge's record: {e}"),
            },
            Err(e) => tracing::warn!(
                left = rec.left.0,
                "withdrawing the merge: {e}; trying again"
            ),
        }
        tokio::time::sleep(RETRY_REOPEN).await;
    }
    for t in closed {
        if cluster.host.get(t.id).is_none() {
            reopen(cluster, t, "its merge failed").await;
        }
    }
    why
}
