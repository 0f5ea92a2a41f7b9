//! fjall 3.x adapter.
//!
//! Equivalences with the other engines:
//! - block cache: `Database::builder().cache_size(cache_bytes)` (one shared cache).
//! - block size: `BlockSizePolicy::all(block_size)` (all levels).
//! - compression: `CompressionPolicy::all(..)` for data blocks of *all* levels (fjall's
//!   default leaves L0/L1 uncompressed); index blocks stay uncompressed (fjall default).
//!   fjall has no zstd.
//! - bloom: `FilterPolicy::all(Bloom(BitsPerKey(bloom_bits)))` on all levels (fjall's
//!   default uses a 0.01% FPR filter on L0).
//! - memtable: `max_memtable_size(memtable_bytes)`.
//! - durability without `--sync`: fjall's default, `PersistMode::Buffer` after every
//!   write (the journal's user-space buffer is written to the OS per write, no fsync) —
//!   the same contract as RocksDB's `sync=false` and Strata's `SyncMode::Periodic`
//!   (which additionally fsyncs once a second).
//! - `--sync`: `manual_journal_persist(true)` plus `Database::persist(SyncData)` after
//!   every write, i.e. one write + fdatasync per acknowledged write (RocksDB's
//!   `sync=true` also uses fdatasync).
//! - settle: `rotate_memtable_and_wait` (flush), then poll until no flush is queued, no
//!   compaction is running and the table counts are stable for 0.5 s.

use std::ops::Bound;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use fjall::config::{
    BlockSizePolicy, BloomConstructionPolicy, CompressionPolicy, FilterPolicy, FilterPolicyEntry,
};
use fjall::{CompressionType, Database, Keyspace, KeyspaceCreateOptions, PersistMode};

use super::{BenchEngine, CompressionKind, EngineConfig, WriteCounters};

const KEYSPACE: &str = "bench";

pub fn check_supported(cfg: &EngineConfig) -> Result<()> {
    if cfg.compression == CompressionKind::Zstd {
        bail!("fjall 3 supports only none and lz4 compression, not zstd");
    }
    Ok(())
}

pub fn describe(cfg: &EngineConfig) -> String {
    format!(
        "fjall 3: cache_size={} data_block_size={} data_block_compression={} (all levels) \
         filter=bloom {} bits/key (all levels) max_memtable_size={} worker_threads=default \
         journal={}",
        cfg.cache_bytes,
        cfg.block_size,
        cfg.compression.name(),
        cfg.bloom_bits,
        cfg.memtable_bytes,
        if cfg.sync {
            "persist(SyncData) after every write"
        } else {
            "PersistMode::Buffer per write (fjall default, no fsync)"
        }
    )
}

pub struct FjallBench {
    db: Database,
    ks: Keyspace,
    sync: bool,
}

impl FjallBench {
    pub fn open(dir: &Path, cfg: &EngineConfig) -> Result<Self> {
        check_supported(cfg)?;
        let db = Database::builder(dir).cache_size(cfg.cache_bytes).open()?;
        let compression = match cfg.compression {
            CompressionKind::None => CompressionType::None,
            CompressionKind::Lz4 => CompressionType::Lz4,
            CompressionKind::Zstd => unreachable!("rejected by check_supported"),
        };
        let bloom = FilterPolicyEntry::Bloom(BloomConstructionPolicy::BitsPerKey(f32::from(
            u16::try_from(cfg.bloom_bits)?,
        )));
        let (block_size, memtable, sync) = (cfg.block_size, cfg.memtable_bytes, cfg.sync);
        let ks = db.keyspace(KEYSPACE, move || {
            KeyspaceCreateOptions::default()
                .data_block_size_policy(BlockSizePolicy::all(block_size))
                .data_block_compression_policy(CompressionPolicy::all(compression))
                .filter_policy(FilterPolicy::all(bloom))
                .max_memtable_size(memtable)
                .manual_journal_persist(sync)
        })?;
        Ok(Self { db, ks, sync })
    }

    fn busy_state(&self) -> (usize, usize, usize, usize) {
        (
            self.db.outstanding_flushes(),
            self.db.active_compactions(),
            self.ks.table_count(),
            self.ks.l0_table_count(),
        )
    }
}

impl BenchEngine for FjallBench {
    fn put(&self, key: &[u8], value: &[u8]) -> Result<()> {
        self.ks.insert(key, value)?;
        if self.sync {
            self.db.persist(PersistMode::SyncData)?;
        }
        Ok(())
    }

    fn get(&self, key: &[u8]) -> Result<bool> {
        Ok(self.ks.get(key)?.is_some())
    }

    fn seek_read_one(&self, key: &[u8]) -> Result<bool> {
        let mut it = self
            .ks
            .range::<&[u8], _>((Bound::Included(key), Bound::Unbounded));
        match it.next() {
            Some(guard) => {
                let (k, _v) = guard.into_inner()?;
                Ok(&*k == key)
            }
            None => Ok(false),
        }
    }

    fn scan_all(&self, on_entry: &mut dyn FnMut(usize)) -> Result<()> {
        for guard in self.ks.iter() {
            let (k, v) = guard.into_inner()?;
            on_entry(k.len() + v.len());
        }
        Ok(())
    }

    fn settle(&self) -> Result<()> {
        self.ks.rotate_memtable_and_wait()?;
        let deadline = Instant::now() + Duration::from_secs(3600);
        let mut last = self.busy_state();
        let mut stable_polls = 0;
        while stable_polls < 5 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
            let now = self.busy_state();
            if now == last && now.0 == 0 && now.1 == 0 {
                stable_polls += 1;
            } else {
                stable_polls = 0;
            }
            last = now;
        }
        Ok(())
    }

    fn write_counters(&self) -> Option<WriteCounters> {
        None
    }

    fn close(self: Box<Self>) -> Result<()> {
        self.db.persist(PersistMode::SyncAll)?;
        // Dropping the last handle stops fjall's workers and waits for them.
        drop(self);
        Ok(())
    }
}
