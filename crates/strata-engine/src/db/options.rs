//! Engine and tree options, with their defaults.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::merge::MergeOperator;
use crate::sst::{Compression, TableBuilderOptions};

/// When the commit log is made durable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyncMode {
    /// fsync before every acknowledgement; concurrent writers share one
    /// fsync (group commit). The default.
    Always,
    /// Hand every group to the OS before acknowledging (it survives a
    /// process crash) and fsync on a timer: a power loss may lose up to the
    /// interval's writes.
    Periodic(Duration),
}

/// Options of one engine (one process, one commit log, one block cache).
#[derive(Clone, Debug)]
pub struct EngineOptions {
    pub sync_mode: SyncMode,
    /// Bytes of decompressed blocks cached, shared by every tree.
    pub block_cache_bytes: usize,
    /// Size at which a commit-log segment is sealed and a new one started.
    pub log_segment_bytes_max: u64,
    /// In `SyncMode::Always` on a file system: once the log holds a few
    /// MiB, write it into segments zero-filled ahead of use, so a sync
    /// flushes data without a journal commit (docs/formats/commit-log.md).
    /// Costs a second write of each segment's size, in the background.
    pub log_preallocate: bool,
    /// Background compactions that may run at once.
    pub max_background_compactions: usize,
    /// Bytes a single write batch may hold.
    pub batch_bytes_max: usize,
    /// Bytes all trees' memtables (active and sealed but not yet flushed)
    /// may hold together; above it the largest are sealed and flushed, and
    /// writes wait while sealed memtables alone exceed it.
    pub memtable_budget_bytes: usize,
    /// Commit-log bytes kept before the tree holding the oldest unflushed
    /// write is made to flush, so an idle tree cannot pin the log.
    pub log_bytes_max: u64,
    /// On an object store, log objects (one per group commit) kept before
    /// the same happens: it bounds what a restart fetches to replay.
    pub log_objects_max: usize,
    /// On an object store, group commits whose log objects may upload at
    /// once (writes are acknowledged in order as they land).
    pub log_uploads_in_flight_max: usize,
    /// In `SyncMode::Always` on a file system, group commits whose fsyncs
    /// may be in flight at once: the next group is written and its sync
    /// started while earlier ones sync (writes are acknowledged in order
    /// as they become durable). 0 (the default): each group syncs under
    /// the write mutex, and the next waits for it. More helps where a
    /// sync takes long and the disk runs several at once (a network block
    /// device) and cores are to spare; each in flight makes groups
    /// smaller, so it costs more syncs (docs/benchmarks.md).
    pub log_syncs_in_flight_max: usize,
    /// A block cache to share with other engines (a cluster server's
    /// tablets): this engine takes a sibling handle on it (its own keys,
    /// the shared bound), and `block_cache_bytes` is not used. None: a
    /// cache of its own.
    pub shared_block_cache: Option<std::sync::Arc<crate::sst::BlockCache>>,
    /// A memtable budget to share with other engines (a cluster server's
    /// tablets): the budget rule applies to the pool's sums
    /// (`db/pool.rs`), and `memtable_budget_bytes` only sets how often
    /// this engine checks. None: a budget of its own.
    pub memtable_pool: Option<std::sync::Arc<super::MemtablePool>>,
    /// Threads to share with other engines (a cluster server's tablets)
    /// for flushes, compactions and tablet maintenance (`db/workers.rs`);
    /// `max_background_compactions` bounds this engine's compactions at
    /// once on them. None: threads of its own.
    pub background_pool: Option<std::sync::Arc<super::BackgroundPool>>,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            sync_mode: SyncMode::Always,
            block_cache_bytes: 256 << 20,
            log_segment_bytes_max: 64 << 20,
            log_preallocate: true,
            max_background_compactions: 1,
            batch_bytes_max: 512 << 20,
            memtable_budget_bytes: 256 << 20,
            log_bytes_max: 256 << 20,
            log_objects_max: 1000,
            log_uploads_in_flight_max: 8,
            log_syncs_in_flight_max: 0,
            shared_block_cache: None,
            memtable_pool: None,
            background_pool: None,
        }
    }
}

impl EngineOptions {
    pub(crate) fn validate(&self) -> crate::Result<()> {
        let bad = |m: String| Err(crate::Error::InvalidArgument(m));
        // A batch is one log record; recovery rejects larger records.
        let record_max = crate::log::RECORD_PAYLOAD_BYTES_MAX;
        if self.batch_bytes_max == 0 || self.batch_bytes_max > record_max {
            return bad(format!("batch_bytes_max must be within 1 ..= {record_max}"));
        }
        if self.log_segment_bytes_max < 4096 {
            return bad("log_segment_bytes_max must be at least 4096".into());
        }
        if self.memtable_budget_bytes < 64 << 10 {
            return bad("memtable_budget_bytes must be at least 64 KiB".into());
        }
        if self.log_bytes_max < self.log_segment_bytes_max {
            return bad("log_bytes_max must be at least log_segment_bytes_max".into());
        }
        if self.max_background_compactions == 0 || self.max_background_compactions > 64 {
            return bad("max_background_compactions must be within 1 ..= 64".into());
        }
        if self.log_uploads_in_flight_max == 0 || self.log_uploads_in_flight_max > 64 {
            return bad("log_uploads_in_flight_max must be within 1 ..= 64".into());
        }
        if self.log_syncs_in_flight_max > 64 {
            return bad("log_syncs_in_flight_max must be within 0 ..= 64".into());
        }
        if let SyncMode::Periodic(d) = self.sync_mode {
            if d.is_zero() {
                return bad("the periodic sync interval must be positive".into());
            }
        }
        Ok(())
    }
}

/// Options of one tree.
/// Maps a key to the first key of the unit (a row) that holds it.
pub type SplitBoundary = Arc<dyn Fn(&[u8]) -> Vec<u8> + Send + Sync>;

#[derive(Clone)]
pub struct TreeOptions {
    /// A memtable is sealed and flushed once it holds this many bytes.
    pub memtable_bytes_max: usize,
    /// Sealed memtables waiting for flush before writers stall.
    pub immutable_memtables_max: usize,
    /// Uncompressed target size of a data block.
    pub block_size_bytes: usize,
    pub compression: Compression,
    pub zstd_level: i32,
    /// Bloom filter bits per key; 0 disables the filter.
    pub bloom_bits_per_key: u32,
    /// L0 files that trigger a compaction into L1.
    pub l0_compaction_trigger: usize,
    /// L0 files at which each write is delayed by a millisecond.
    pub l0_slowdown_trigger: usize,
    /// L0 files at which writes stop until compaction catches up.
    pub l0_stop_trigger: usize,
    /// Target size of L1; each deeper level is `level_size_multiplier`
    /// times larger.
    pub level_base_bytes: u64,
    pub level_size_multiplier: u64,
    /// Size at which compaction cuts output files.
    pub target_file_size_bytes: u64,
    pub merge_operator: Option<Arc<dyn MergeOperator>>,
    /// Drops garbage in compaction (see `CompactionFilter`).
    pub compaction_filter: Option<Arc<dyn crate::merge::CompactionFilter>>,
    /// A tablet larger than this (files within its range plus memtables)
    /// is split in two at a middle key; None: tablets split only when
    /// asked. Adjacent tablets that together hold less than a quarter of it
    /// are merged (except at boundaries the tree was created with).
    pub tablet_split_bytes: Option<u64>,
    /// Maps a key to the first key of the unit it belongs to (a row), so
    /// that automatic splits never cut one: a split at key k is made at
    /// `split_boundary(k)`. None: any key is a boundary.
    pub split_boundary: Option<SplitBoundary>,
}

impl Default for TreeOptions {
    fn default() -> Self {
        TreeOptions {
            memtable_bytes_max: 64 << 20,
            immutable_memtables_max: 2,
            block_size_bytes: 64 << 10,
            compression: Compression::Lz4,
            zstd_level: 3,
            bloom_bits_per_key: 10,
            l0_compaction_trigger: 4,
            l0_slowdown_trigger: 20,
            l0_stop_trigger: 36,
            level_base_bytes: 256 << 20,
            level_size_multiplier: 10,
            target_file_size_bytes: 64 << 20,
            merge_operator: None,
            compaction_filter: None,
            tablet_split_bytes: None,
            split_boundary: None,
        }
    }
}

impl TreeOptions {
    pub fn table_builder_options(&self) -> TableBuilderOptions {
        TableBuilderOptions {
            block_size_bytes: self.block_size_bytes,
            compression: self.compression,
            zstd_level: self.zstd_level,
            bloom_bits_per_key: self.bloom_bits_per_key,
            ..TableBuilderOptions::default()
        }
    }

    /// Target bytes of `level` (>= 1).
    pub fn level_target_bytes(&self, level: usize) -> u64 {
        debug_assert!(level >= 1);
        let mut t = self.level_base_bytes;
        for _ in 1..level {
            t = t.saturating_mul(self.level_size_multiplier);
        }
        t
    }

    pub(crate) fn validate(&self) -> crate::Result<()> {
        let bad = |m: &str| Err(crate::Error::InvalidArgument(m.to_string()));
        if self.memtable_bytes_max < 4096 {
            return bad("memtable_bytes_max must be at least 4096");
        }
        if self.block_size_bytes < 256 || self.block_size_bytes > 64 << 20 {
            return bad("block_size_bytes must be within 256 B ..= 64 MiB");
        }
        if self.l0_compaction_trigger == 0
            || self.l0_slowdown_trigger < self.l0_compaction_trigger
            || self.l0_stop_trigger < self.l0_slowdown_trigger
        {
            return bad("need 0 < l0_compaction_trigger <= l0_slowdown_trigger <= l0_stop_trigger");
        }
        if self.level_size_multiplier < 2
            || self.level_base_bytes == 0
            || self.target_file_size_bytes == 0
        {
            return bad("level sizes must be positive and the multiplier at least 2");
        }
        if self.immutable_memtables_max == 0 {
            return bad("immutable_memtables_max must be at least 1");
        }
        if self.tablet_split_bytes.is_some_and(|b| b < 64 << 10) {
            return bad("tablet_split_bytes must be at least 64 KiB");
        }
        Ok(())
    }
}

impl fmt::Debug for TreeOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TreeOptions")
            .field("memtable_bytes_max", &self.memtable_bytes_max)
            .field("block_size_bytes", &self.block_size_bytes)
            .field("compression", &self.compression)
            .field("bloom_bits_per_key", &self.bloom_bits_per_key)
            .field("tablet_split_bytes", &self.tablet_split_bytes)
            .field(
                "merge_operator",
                &self.merge_operator.as_ref().map(|m| m.name().to_string()),
            )
            .finish_non_exhaustive()
    }
}
