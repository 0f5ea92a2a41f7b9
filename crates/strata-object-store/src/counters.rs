//! Requests made to the object store and bytes moved, for the cost report
//! `strata serve` logs at stop and the metrics (docs/observability.md).

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

use strata_engine::histogram::Histogram;

#[derive(Default, Debug)]
pub struct Counters {
    pub puts: AtomicU64,
    pub put_bytes: AtomicU64,
    /// Tables uploaded in parts (each part and the start and completion
    /// also count as PUTs).
    pub multipart_uploads: AtomicU64,
    /// Conditional puts that found the name taken.
    pub put_conflicts: AtomicU64,
    pub gets: AtomicU64,
    pub get_bytes: AtomicU64,
    pub heads: AtomicU64,
    pub lists: AtomicU64,
    pub deletes: AtomicU64,
    /// Objects copied within the store (a cluster tablet's split).
    pub copies: AtomicU64,
    pub errors: AtomicU64,
    /// SSTable reads served from the local cache, and from the store.
    pub cache_hits: AtomicU64,
    pub cache_misses: AtomicU64,
    /// Microseconds per upload (a whole object, or all parts of one) and
    /// per read (a range, or a whole object into the cache).
    pub put_latency_micros: Histogram,
    pub get_latency_micros: Histogram,
}

impl Counters {
    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

impl fmt::Display for Counters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let g = Counters::get;
        write!(
            f,
            "{} PUTs ({} bytes, {} conflicts, {} tables in parts), {} GETs ({} bytes), {} HEADs, {} LISTs, {} DELETEs, {} copies, {} errors; \
             cached table reads {} of {}",
            g(&self.puts),
            g(&self.put_bytes),
            g(&self.put_conflicts),
            g(&self.multipart_uploads),
            g(&self.gets),
            g(&self.get_bytes),
            g(&self.heads),
            g(&self.lists),
            g(&self.deletes),
            g(&self.copies),
            g(&self.errors),
            g(&self.cache_hits),
            g(&self.cache_hits) + g(&self.cache_misses),
        )
    }
}
