//! The object store's figures, when the server keeps its data in one
//! (`--storage`, and every cluster server): requests by kind, bytes up and
//! down, conditional puts that found the name taken, errors, table reads
//! served from the local cache, and the time of uploads and reads. Read
//! from the store's counters at each scrape.

use std::sync::Arc;

use parking_lot::RwLock;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Unit;
use strata_object_store::ObjectStorage;

use super::engine_metrics::{histogram, put, Sample};

/// The store the server writes to, once it is open.
pub(crate) type StoreSlot = Arc<RwLock<Option<Arc<ObjectStorage>>>>;

pub(crate) struct StoreCollector(pub(crate) StoreSlot);

impl std::fmt::Debug for StoreCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StoreCollector")
    }
}

impl Collector for StoreCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Some(store) = self.0.read().clone() else {
            return Ok(());
        };
        let c = store.counters();
        let ld =
            |a: &std::sync::atomic::AtomicU64| a.load(std::sync::atomic::Ordering::Relaxed) as f64;
        let requests: Vec<Sample> = [
            ("put", &c.puts),
            ("get", &c.gets),
            ("head", &c.heads),
            ("list", &c.lists),
            ("delete", &c.deletes),
            ("copy", &c.copies),
        ]
        .into_iter()
        .map(|(kind, n)| (vec![("kind", kind)], ld(n)))
        .collect();
        use MetricType::Counter as C;
        put(
            &mut enc,
            "strata_object_store_requests",
            "Requests made to the object store, by kind (a table uploaded in parts: the start, each part and the completion)",
            None,
            C,
            &requests,
        )?;
        put(
            &mut enc,
            "strata_object_store",
            "Bytes uploaded to and read from the object store",
            Some(Unit::Bytes),
            C,
            &[
                (vec![("direction", "up")], ld(&c.put_bytes)),
                (vec![("direction", "down")], ld(&c.get_bytes)),
            ],
        )?;
        put(
            &mut enc,
            "strata_object_store_put_conflicts",
            "Conditional uploads that found the name taken (another server won)",
            None,
            C,
            &[(vec![], ld(&c.put_conflicts))],
        )?;
        put(
            &mut enc,
            "strata_object_store_errors",
            "Object store requests that failed",
            None,
            C,
            &[(vec![], ld(&c.errors))],
        )?;
        put(
            &mut enc,
            "strata_object_store_table_reads",
            "SSTable reads, served from the local cache or from the store",
            None,
            C,
            &[
                (vec![("from", "cache")], ld(&c.cache_hits)),
                (vec![("from", "store")], ld(&c.cache_misses)),
            ],
        )?;
        let buckets = strata_engine::histogram::BUCKETS;
        histogram(
            &mut enc,
            "strata_object_store_put_latency_seconds",
            "Time of each upload to the object store (a whole object, or every part of one)",
            &c.put_latency_micros.snapshot(),
            1e-6,
            buckets,
        )?;
        histogram(
            &mut enc,
            "strata_object_store_get_latency_seconds",
            "Time of each read from the object store (a range, or a whole table into the cache)",
            &c.get_latency_micros.snapshot(),
            1e-6,
            buckets,
        )
    }
}
