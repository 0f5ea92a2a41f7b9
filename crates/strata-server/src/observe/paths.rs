//! Where data requests ran: on the connection's serving thread, or on
//! tokio's blocking pool (docs/server.md, "Threads"). A one-row write or
//! a read runs in place when the locks it needs are free and the blocks it
//! reads are in memory; otherwise it takes the blocking pool, a hand-off
//! and a wait. Many requests there mean hot rows' locks or reads that miss
//! the block cache.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::MetricType;
use std::sync::Arc;

/// The data RPCs that may run in place.
#[derive(Clone, Copy, Debug)]
pub enum DataRpc {
    MutateRow = 0,
    MutateRows = 1,
    CheckAndMutateRow = 2,
    ReadModifyWriteRow = 3,
    ReadRows = 4,
}

const RPC_NAMES: [&str; 5] = [
    "MutateRow",
    "MutateRows",
    "CheckAndMutateRow",
    "ReadModifyWriteRow",
    "ReadRows",
];

/// Counts per RPC: [in place, on the blocking pool].
#[derive(Debug, Default)]
pub struct RequestPaths {
    counts: [[Counter; 2]; RPC_NAMES.len()],
}

impl RequestPaths {
    /// Counts a request of `rpc` that ran in place or, if not
    /// `in_place`, on the blocking pool.
    pub fn count(&self, rpc: DataRpc, in_place: bool) {
        self.counts[rpc as usize][usize::from(!in_place)].inc();
    }

    /// (in place, on the blocking pool) so far for `rpc`.
    pub fn get(&self, rpc: DataRpc) -> (u64, u64) {
        let [a, b] = &self.counts[rpc as usize];
        (a.get(), b.get())
    }
}

/// Encodes [`RequestPaths`] at each scrape.
#[derive(Debug)]
pub(crate) struct PathsCollector(pub(crate) Arc<RequestPaths>);

impl Collector for PathsCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let mut e = encoder.encode_descriptor(
            "strata_data_requests",
            "Data requests by where they ran: on the connection's serving thread \
             (in_place) or on the blocking pool (a row lock was held, or a read \
             needed storage)",
            None,
            MetricType::Counter,
        )?;
        for (rpc, counts) in RPC_NAMES.iter().zip(&self.0.counts) {
            for (path, c) in ["in_place", "blocking_pool"].iter().zip(counts) {
                c.encode(e.encode_family(&[("rpc", *rpc), ("path", *path)])?)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::registry::Registry;

    #[test]
    fn counts_encode_per_rpc_and_path() {
        let paths = Arc::new(RequestPaths::default());
        paths.count(DataRpc::MutateRow, true);
        paths.count(DataRpc::MutateRow, true);
        paths.count(DataRpc::ReadRows, false);
        assert_eq!(paths.get(DataRpc::MutateRow), (2, 0));
        assert_eq!(paths.get(DataRpc::ReadRows), (0, 1));
        let mut registry = Registry::default();
        registry.register_collector(Box::new(PathsCollector(paths)));
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        assert!(text.contains("strata_data_requests_total{rpc=\"MutateRow\",path=\"in_place\"} 2"));
        assert!(
            text.contains("strata_data_requests_total{rpc=\"ReadRows\",path=\"blocking_pool\"} 1")
        );
        assert!(text.contains(
            "strata_data_requests_total{rpc=\"ReadModifyWriteRow\",path=\"in_place\"} 0"
        ));
    }
}
