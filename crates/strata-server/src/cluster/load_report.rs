//! This server's report of its tablets' load to the master
//! (`strata_cluster::load`): every `LOAD_REPORT_EVERY`, each tablet it
//! serves with its size (on disk and in memtables) and the parts of
//! requests it served per second since the last report, on its lease.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use strata_cluster::load::{publish, TabletLoad, LOAD_REPORT_EVERY};

use super::Cluster;

/// Reports for as long as the task runs.
pub(crate) async fn run(cluster: Arc<Cluster>) {
    // Per tablet: its request count and when, at the last report.
    let mut last: HashMap<u64, (u64, Instant)> = HashMap::new();
    loop {
        tokio::time::sleep(LOAD_REPORT_EVERY).await;
        let Some(me) = cluster.view.me() else {
            continue;
        };
        let c = cluster.clone();
        let sizes = tokio::task::spawn_blocking(move || {
            c.host
                .all()
                .into_iter()
                .map(|h| {
                    (
                        h.record.id,
                        h.size_bytes(),
                        h.requests.load(Ordering::Relaxed),
                    )
                })
                .collect::<Vec<_>>()
        })
        .await
        .unwrap_or_default();
        let now = Instant::now();
        let mut loads = BTreeMap::new();
        let mut seen = HashMap::new();
        for (id, size_bytes, requests) in sizes {
            seen.insert(id, (requests, now));
            // Opened since the last report: no rate yet, not listed.
            let Some(&(before, at)) = last.get(&id).filter(|(before, _)| requests >= *before)
            else {
                continue;
            };
            let requests_per_sec =
                (requests - before) as f64 / now.duration_since(at).as_secs_f64().max(1e-3);
            loads.insert(
                id,
                TabletLoad {
                    size_bytes,
                    requests_per_sec,
                },
            );
        }
        last = seen;
        if let Err(e) = publish(
            &cluster.etcd,
            &cluster.name,
            &me.owner,
            me.lease.id(),
            &loads,
        )
        .await
        {
            tracing::warn!("reporting the tablets' load: {e}");
        }
    }
}
