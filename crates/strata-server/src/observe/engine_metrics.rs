//! The engine's and tables' figures, read from the database at each
//! scrape (nothing on the request path): memtables against their budget,
//! flushes, compactions, write stalls, the block cache, group commits and
//! the commit log, and each table's tablets, size and files per level.

use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Unit;

use super::{DbSlot, ServerFacts};

/// Encodes the engine's figures at each scrape; nothing while the
/// database is not open.
pub(crate) struct EngineCollector {
    pub(crate) db: Arc<DbSlot>,
    pub(crate) cluster: super::cluster_metrics::ClusterSlot,
    pub(crate) facts: Arc<ServerFacts>,
}

/// One sample: labels and value.
pub(crate) type Sample<'a> = (Vec<(&'static str, &'a str)>, f64);

pub(crate) fn put(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<Unit>,
    kind: MetricType,
    samples: &[Sample],
) -> Result<(), std::fmt::Error> {
    let mut e = encoder.encode_descriptor(name, help, unit.as_ref(), kind)?;
    for (labels, v) in samples {
        let labels: &[(&str, &str)] = labels;
        if labels.is_empty() {
            write_value(&mut e, kind, *v)?;
        } else {
            write_value(&mut e.encode_family(&labels)?, kind, *v)?;
        }
    }
    Ok(())
}

fn write_value(
    e: &mut prometheus_client::encoding::MetricEncoder,
    kind: MetricType,
    v: f64,
) -> Result<(), std::fmt::Error> {
    match kind {
        MetricType::Counter => e.encode_counter::<NoLabels, _, f64>(&v, None),
        _ => e.encode_gauge(&v),
    }
}

/// The label set of an exemplar that is never written.
#[derive(Debug)]
pub(crate) struct NoLabels;

impl EncodeLabelSet for NoLabels {
    fn encode(
        &self,
        _: &mut prometheus_client::encoding::LabelSetEncoder,
    ) -> Result<(), std::fmt::Error> {
        Ok(())
    }
}

/// Buckets of the group-size histogram: up to 4,096 batches, the rest in
/// +Inf.
const GROUP_BUCKETS: usize = 14;

/// An engine histogram with its bounds scaled by `scale` (µs to seconds),
/// its first `buckets - 1` bounds and +Inf.
pub(crate) fn histogram(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    h: &strata_engine::histogram::HistogramSnapshot,
    scale: f64,
    buckets: usize,
) -> Result<(), std::fmt::Error> {
    let buckets = buckets.clamp(1, h.counts.len());
    let mut b: Vec<(f64, u64)> = h.counts[..buckets - 1]
        .iter()
        .enumerate()
        .map(|(i, &n)| ((1u64 << i) as f64 * scale, n))
        .collect();
    b.push((f64::INFINITY, h.counts[buckets - 1..].iter().sum()));
    let mut e = enc.encode_descriptor(name, help, None, MetricType::Histogram)?;
    e.encode_histogram::<NoLabels>(h.sum as f64 * scale, h.count(), &b, None)
}

fn one(v: f64) -> Vec<Sample<'static>> {
    vec![(vec![], v)]
}

impl Collector for EngineCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        use MetricType::{Counter as C, Gauge as G};
        let f = &self.facts;
        put(
            &mut enc,
            "strata_build_info",
            "The server's version (value 1)",
            None,
            G,
            &[(vec![("version", f.version)], 1.0)],
        )?;
        put(
            &mut enc,
            "strata_start_time_seconds",
            "When the server started, in seconds since the Unix epoch",
            None,
            G,
            &one(f.start_unix_secs),
        )?;
        put(
            &mut enc,
            "strata_ready",
            "1 while the server serves requests, 0 while it recovers or stops",
            None,
            G,
            &one(f64::from(u8::from(self.db.serving()))),
        )?;
        let dbs = super::databases(&self.db, &self.cluster);
        let Some((st, mem)) = super::engine_figures(&dbs) else {
            return Ok(());
        };
        let counters: [(&str, &str, Option<Unit>, f64); 17] = [
            (
                "strata_write_stall_seconds",
                "Time writes waited in stalls and slowdowns (for memtable memory or level-0 compactions)",
                None,
                st.write_stall_micros as f64 / 1e6,
            ),
            (
                "strata_flush_seconds",
                "Time spent in memtable flushes",
                None,
                st.flush_micros as f64 / 1e6,
            ),
            (
                "strata_compaction_seconds",
                "Time spent in compactions",
                None,
                st.compaction_micros as f64 / 1e6,
            ),
            (
                "strata_user_written",
                "Key and value bytes written by users",
                Some(Unit::Bytes),
                st.user_bytes_written as f64,
            ),
            (
                "strata_storage_written",
                "Bytes the engine wrote to storage (log, flushes, compactions, manifest)",
                Some(Unit::Bytes),
                st.storage_bytes_written as f64,
            ),
            (
                "strata_log_written",
                "Bytes written to the commit log",
                Some(Unit::Bytes),
                st.log_bytes_written as f64,
            ),
            (
                "strata_flushes",
                "Memtable flushes",
                None,
                st.flushes as f64,
            ),
            (
                "strata_flush_written",
                "Bytes written by flushes",
                Some(Unit::Bytes),
                st.flush_bytes_written as f64,
            ),
            (
                "strata_compactions",
                "Compactions",
                None,
                st.compactions as f64,
            ),
            (
                "strata_compaction_read",
                "Bytes read by compactions",
                Some(Unit::Bytes),
                st.compaction_bytes_read as f64,
            ),
            (
                "strata_compaction_written",
                "Bytes written by compactions",
                Some(Unit::Bytes),
                st.compaction_bytes_written as f64,
            ),
            (
                "strata_write_stalls",
                "Writes that waited for memtable memory",
                None,
                st.write_stalls as f64,
            ),
            (
                "strata_block_cache_hits",
                "Block cache hits",
                None,
                st.block_cache_hits as f64,
            ),
            (
                "strata_block_cache_misses",
                "Block cache misses",
                None,
                st.block_cache_misses as f64,
            ),
            (
                "strata_commit_groups",
                "Group commits",
                None,
                st.commit_groups as f64,
            ),
            (
                "strata_commit_batches",
                "Write batches committed (the groups carried them)",
                None,
                st.commit_batches as f64,
            ),
            (
                "strata_commit_log_seconds",
                "Time durable groups spent writing and syncing (or uploading) their log records",
                None,
                st.commit_log_micros as f64 / 1e6,
            ),
        ];
        for (name, help, unit, v) in counters {
            put(&mut enc, name, help, unit, C, &one(v))?;
        }
        put(
            &mut enc,
            "strata_commit_durable_groups",
            "Group commits made durable before their acknowledgement",
            None,
            C,
            &one(st.commit_durable_groups as f64),
        )?;
        let gauges: [(&str, &str, Option<Unit>, Vec<Sample>); 5] = [
            (
                "strata_memtable",
                "Bytes in memtables: active ones take writes, sealed ones wait for their flush",
                Some(Unit::Bytes),
                vec![
                    (vec![("state", "active")], mem.active_bytes as f64),
                    (vec![("state", "sealed")], mem.sealed_bytes as f64),
                ],
            ),
            (
                "strata_memtable_budget",
                "Memory for memtables across every tablet (past it, writes wait)",
                Some(Unit::Bytes),
                one(f.memtable_budget_bytes as f64),
            ),
            (
                "strata_block_cache",
                "Bytes in the block cache",
                Some(Unit::Bytes),
                one(st.block_cache_usage_bytes as f64),
            ),
            (
                "strata_log_segments",
                "Commit log segments kept",
                None,
                one(st.log_segments as f64),
            ),
            (
                "strata_log_retained",
                "Bytes of the commit log segments kept",
                Some(Unit::Bytes),
                one(st.log_bytes_retained as f64),
            ),
        ];
        for (name, help, unit, samples) in &gauges {
            put(&mut enc, name, help, unit.clone(), G, samples)?;
        }
        put(
            &mut enc,
            "strata_bloom_filter",
            "Bloom filter answers of the engine's point lookups: useful (the table skipped) or positive (the table read); ReadRows reads by seeks, which no filter answers",
            None,
            C,
            &[
                (vec![("result", "useful")], st.bloom_useful as f64),
                (vec![("result", "positive")], st.bloom_positive as f64),
            ],
        )?;
        histogram(
            &mut enc,
            "strata_commit_group_batches",
            "Write batches per group commit",
            &st.commit_group_batches,
            1.0,
            GROUP_BUCKETS,
        )?;
        histogram(
            &mut enc,
            "strata_commit_log_latency_seconds",
            "Time each durable group took to write and sync (or upload) its log records",
            &st.commit_log_latency_micros,
            1e-6,
            strata_engine::histogram::BUCKETS,
        )?;
        // Tables and their tablets: a single-process server's (a cluster
        // server's tablets are in the cluster gauges).
        match self.db.get() {
            Some(db) => self.encode_tables(&db, &mut enc),
            None => Ok(()),
        }
    }
}

impl std::fmt::Debug for EngineCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EngineCollector")
    }
}

impl EngineCollector {
    fn encode_tables(
        &self,
        db: &strata_table::Database,
        enc: &mut DescriptorEncoder,
    ) -> Result<(), std::fmt::Error> {
        let levels: Vec<String> = (0..strata_engine::manifest::NUM_LEVELS)
            .map(|l| l.to_string())
            .collect();
        let mut tablets = Vec::new();
        let mut size = Vec::new();
        let mut memtable = Vec::new();
        let mut files = Vec::new();
        let tables = db.list_tables("");
        let infos: Vec<(String, Vec<strata_table::TabletInfo>)> = tables
            .into_iter()
            .filter_map(|t| db.tablets(&t.name).ok().map(|ts| (t.name, ts)))
            .collect();
        for (name, ts) in &infos {
            let label = || vec![("table", name.as_str())];
            tablets.push((label(), ts.len() as f64));
            size.push((label(), ts.iter().map(|t| t.size_bytes).sum::<u64>() as f64));
            memtable.push((
                label(),
                ts.iter().map(|t| t.memtable_bytes).sum::<u64>() as f64,
            ));
            for (level, l) in levels.iter().enumerate() {
                let n: usize = ts.iter().filter_map(|t| t.files_per_level.get(level)).sum();
                files.push((
                    vec![("table", name.as_str()), ("level", l.as_str())],
                    n as f64,
                ));
            }
        }
        use MetricType::Gauge as G;
        put(
            enc,
            "strata_table_tablets",
            "Tablets of each table",
            None,
            G,
            &tablets,
        )?;
        put(
            enc,
            "strata_table_size",
            "Approximate bytes on storage of each table's cells",
            Some(Unit::Bytes),
            G,
            &size,
        )?;
        put(
            enc,
            "strata_table_memtable",
            "Bytes in each table's memtables",
            Some(Unit::Bytes),
            G,
            &memtable,
        )?;
        put(
            enc,
            "strata_table_files",
            "SSTables of each table, by level",
            None,
            G,
            &files,
        )
    }
}
