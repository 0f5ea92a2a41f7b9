//! RocksDB adapter (cargo feature `rocksdb`).
//!
//! - block cache: one LRU cache of `cache_bytes` (index/filter blocks are held by the
//!   table readers outside the cache, RocksDB's default, like fjall's pinned blocks).
//! - block-based tables: `block_size`, full-filter bloom with `bloom_bits` bits/key.
//! - compression: `compression` on every level (RocksDB's default per-level behaviour).
//! - memtable: `write_buffer_size = memtable_bytes`.
//! - WAL on; `WriteOptions::sync = --sync` (fdatasync per write when set; otherwise
//!   the WAL is written to the OS per write, no fsync).
//! - settle: `flush()` then `wait_for_compact()`.

use std::path::Path;

use anyhow::Result;
use rocksdb::{
    BlockBasedOptions, Cache, DBCompressionType, Options, WaitForCompactOptions, WriteOptions, DB,
};

use super::{BenchEngine, CompressionKind, EngineConfig, WriteCounters};

pub fn describe(cfg: &EngineConfig) -> String {
    format!(
        "rocksdb: lru_cache={} block_size={} compression={} bloom_full_filter={} bits/key \
         write_buffer_size={} wal=on sync={}",
        cfg.cache_bytes,
        cfg.block_size,
        cfg.compression.name(),
        cfg.bloom_bits,
        cfg.memtable_bytes,
        cfg.sync
    )
}

pub struct RocksBench {
    db: DB,
    write_opts: WriteOptions,
    // Kept alive for as long as the DB uses it.
    _cache: Cache,
}

impl RocksBench {
    pub fn open(dir: &Path, cfg: &EngineConfig) -> Result<Self> {
        let cache = Cache::new_lru_cache(usize::try_from(cfg.cache_bytes)?);
        let mut table = BlockBasedOptions::default();
        table.set_block_cache(&cache);
        table.set_block_size(usize::try_from(cfg.block_size)?);
        table.set_bloom_filter(f64::from(cfg.bloom_bits), false);

        let mut opts = Options::default();
        opts.create_if_missing(true);
        opts.set_block_based_table_factory(&table);
        opts.set_compression_type(match cfg.compression {
            CompressionKind::None => DBCompressionType::None,
            CompressionKind::Lz4 => DBCompressionType::Lz4,
            CompressionKind::Zstd => DBCompressionType::Zstd,
        });
        opts.set_write_buffer_size(usize::try_from(cfg.memtable_bytes)?);

        let db = DB::open(&opts, dir)?;
        let mut write_opts = WriteOptions::default();
        write_opts.set_sync(cfg.sync);
        write_opts.disable_wal(false);
        Ok(Self {
            db,
            write_opts,
            _cache: cache,
        })
    }
}

impl BenchEngine for RocksBench {
    fn put(&self, key: &[u8], value: &[u8]) -> Result<()> {
        self.db.put_opt(key, value, &self.write_opts)?;
        Ok(())
    }

    fn get(&self, key: &[u8]) -> Result<bool> {
        Ok(self.db.get_pinned(key)?.is_some())
    }

    fn seek_read_one(&self, key: &[u8]) -> Result<bool> {
        let mut it = self.db.raw_iterator();
        it.seek(key);
        if it.valid() {
            let found = it.key() == Some(key);
            let _ = it.value();
            Ok(found)
        } else {
            it.status()?;
            Ok(false)
        }
    }

    fn scan_all(&self, on_entry: &mut dyn FnMut(usize)) -> Result<()> {
        let mut it = self.db.raw_iterator();
        it.seek_to_first();
        while it.valid() {
            let k = it.key().map_or(0, <[u8]>::len);
            let v = it.value().map_or(0, <[u8]>::len);
            on_entry(k + v);
            it.next();
        }
        it.status()?;
        Ok(())
    }

    fn settle(&self) -> Result<()> {
        self.db.flush()?;
        self.db
            .wait_for_compact(&WaitForCompactOptions::default())?;
        Ok(())
    }

    fn write_counters(&self) -> Option<WriteCounters> {
        None
    }

    fn close(self: Box<Self>) -> Result<()> {
        self.db.flush_wal(true)?;
        drop(self);
        Ok(())
    }
}
