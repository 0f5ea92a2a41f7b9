//! What a split and a merge share on the owner's side: a tablet closed
//! for one is served again only when etcd, read at that moment, still
//! gives it to this server unchanged.

use std::sync::Arc;
use std::time::Duration;

use strata_cluster::tablet_map::{tablet_key, TabletRecord};

use super::Cluster;

/// How often a tablet whose split or merge failed is tried again to be
/// served.
pub(super) const RETRY_REOPEN: Duration = Duration::from_secs(1);

/// Runs `f` on the blocking pool.
pub(super) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, String> + Send + 'static,
) -> Result<T, String> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| format!("the task failed: {e}"))?
}

/// `t`'s record as etcd holds it now (linearizable), if any.
pub(super) async fn record_in_etcd(
    cluster: &Cluster,
    t: &TabletRecord,
) -> Result<Option<TabletRecord>, String> {
    let key = tablet_key(&cluster.name, &t.table, t.id);
    let kv = cluster
        .etcd
        .get(key.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    kv.map(|kv| TabletRecord::decode(&key, &kv.value).map_err(|e| e.to_string()))
        .transpose()
}

/// Serves `t` again, if etcd still gives it to this server at its epoch
/// (not this server's view, which may lag: a tablet already replaced by
/// a split's children or a merge's result must never be served again).
/// Tried again every `RETRY_REOPEN` until it serves or the record
/// changes (then the map's changes take it from here). `why`: what
/// failed, for the log.
pub(super) async fn reopen(cluster: &Arc<Cluster>, t: &TabletRecord, why: &str) {
    loop {
        match record_in_etcd(cluster, t).await {
            Ok(Some(now)) if now == *t => match super::node::open(cluster, t).await {
                Ok(()) => return,
                Err(e) => tracing::error!(
                    tablet = t.id,
                    "serving the tablet again after {why}: {e}; trying again"
                ),
            },
            Ok(_) => return,
            Err(e) => tracing::warn!(
                tablet = t.id,
                "reading the tablet's record to serve it again: {e}; trying again"
            ),
        }
        tokio::time::sleep(RETRY_REOPEN).await;
    }
}
