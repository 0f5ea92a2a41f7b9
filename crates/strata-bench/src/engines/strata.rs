//! Strata adapter.
//!
//! - durability without `--sync`: `SyncMode::Periodic(1 s)` — the log is written to the
//!   OS on every commit and fsynced once a second (fjall/RocksDB: written to the OS per
//!   write, never fsynced), so Strata does slightly more work than the others here.
//! - `--sync`: `SyncMode::Always` — every commit fsyncs before it is acknowledged.
//! - write amplification: `EngineStats::storage_bytes_written / user_bytes_written`.

use std::ops::Bound;
use std::path::Path;
use std::time::Duration;

use anyhow::Result;
use strata_engine::{Compression, Direction, Engine, EngineOptions, SyncMode, Tree, TreeOptions};

use super::{BenchEngine, CompressionKind, EngineConfig, WriteCounters};

const TREE: &str = "bench";
const PERIODIC_SYNC: Duration = Duration::from_secs(1);

pub fn describe(cfg: &EngineConfig) -> String {
    format!(
        "strata: block_cache_bytes={} block_size_bytes={} compression={} bloom_bits_per_key={} \
         memtable_bytes_max={} max_background_compactions={} (default) sync_mode={}",
        cfg.cache_bytes,
        cfg.block_size,
        cfg.compression.name(),
        cfg.bloom_bits,
        cfg.memtable_bytes,
        EngineOptions::default().max_background_compactions,
        if cfg.sync {
            "Always (fsync per commit)".to_string()
        } else {
            format!("Periodic({PERIODIC_SYNC:?}) (write to OS per commit)")
        }
    )
}

pub struct StrataBench {
    engine: Engine,
    tree: Tree,
}

impl StrataBench {
    pub fn open(dir: &Path, cfg: &EngineConfig) -> Result<Self> {
        let opts = EngineOptions {
            sync_mode: if cfg.sync {
                SyncMode::Always
            } else {
                SyncMode::Periodic(PERIODIC_SYNC)
            },
            block_cache_bytes: usize::try_from(cfg.cache_bytes)?,
            ..EngineOptions::default()
        };
        let engine = Engine::open_dir(dir, opts)?;

        let t = TreeOptions {
            memtable_bytes_max: usize::try_from(cfg.memtable_bytes)?,
            block_size_bytes: usize::try_from(cfg.block_size)?,
            compression: match cfg.compression {
                CompressionKind::None => Compression::None,
                CompressionKind::Lz4 => Compression::Lz4,
                CompressionKind::Zstd => Compression::Zstd,
            },
            bloom_bits_per_key: cfg.bloom_bits,
            ..TreeOptions::default()
        };
        let tree = engine.open_tree(TREE, t)?;
        Ok(Self { engine, tree })
    }
}

impl BenchEngine for StrataBench {
    fn put(&self, key: &[u8], value: &[u8]) -> Result<()> {
        self.tree.put(key, value)?;
        Ok(())
    }

    fn get(&self, key: &[u8]) -> Result<bool> {
        Ok(self.tree.get(key)?.is_some())
    }

    fn seek_read_one(&self, key: &[u8]) -> Result<bool> {
        let mut it = self.tree.range(
            Bound::Included(key),
            Bound::Unbounded,
            Direction::Forward,
            None,
        )?;
        match it.next() {
            Some(entry) => {
                let (k, _v) = entry?;
                Ok(k.as_slice() == key)
            }
            None => Ok(false),
        }
    }

    fn scan_all(&self, on_entry: &mut dyn FnMut(usize)) -> Result<()> {
        let it = self
            .tree
            .range(Bound::Unbounded, Bound::Unbounded, Direction::Forward, None)?;
        for entry in it {
            let (k, v) = entry?;
            on_entry(k.len() + v.len());
        }
        Ok(())
    }

    fn settle(&self) -> Result<()> {
        self.engine.flush_all()?;
        self.engine.wait_for_compactions()?;
        Ok(())
    }

    fn write_counters(&self) -> Option<WriteCounters> {
        let s = self.engine.stats();
        Some(WriteCounters {
            user_bytes: s.user_bytes_written,
            storage_bytes: s.storage_bytes_written,
        })
    }

    fn close(self: Box<Self>) -> Result<()> {
        let StrataBench { engine, tree } = *self;
        drop(tree);
        engine.close()?;
        Ok(())
    }
}
