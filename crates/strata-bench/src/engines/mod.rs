//! The engines under test, behind one small trait so the workloads are engine-agnostic.

mod fjall;
#[cfg(feature = "rocksdb")]
mod rocksdb;
mod strata;

use std::path::Path;

use anyhow::Result;
use clap::ValueEnum;

/// Which engine to benchmark.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, ValueEnum)]
pub enum EngineKind {
    Strata,
    Fjall,
    Rocksdb,
}

impl EngineKind {
    pub fn name(self) -> &'static str {
        match self {
            EngineKind::Strata => "strata",
            EngineKind::Fjall => "fjall",
            EngineKind::Rocksdb => "rocksdb",
        }
    }
}

/// Data block compression, applied identically to every engine.
#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum CompressionKind {
    None,
    Lz4,
    Zstd,
}

impl CompressionKind {
    pub fn name(self) -> &'static str {
        match self {
            CompressionKind::None => "none",
            CompressionKind::Lz4 => "lz4",
            CompressionKind::Zstd => "zstd",
        }
    }
}

/// The knobs every engine is given the same value for.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    pub cache_bytes: u64,
    pub block_size: u32,
    pub compression: CompressionKind,
    pub bloom_bits: u32,
    pub memtable_bytes: u64,
    /// Every write durable (fsync/fdatasync) before it returns.
    pub sync: bool,
}

/// Cumulative write counters of an engine instance (for write amplification).
#[derive(Copy, Clone, Debug, Default)]
pub struct WriteCounters {
    /// Bytes of keys and values handed to the engine by the user.
    pub user_bytes: u64,
    /// Bytes the engine wrote to storage (log + flushes + compactions).
    pub storage_bytes: u64,
}

/// One open database of one engine. Shared by reference between a reader and a
/// writer thread in `readwhilewriting`, hence `Sync`.
pub trait BenchEngine: Send + Sync {
    /// Writes one key (durably if the engine was opened with `sync`).
    fn put(&self, key: &[u8], value: &[u8]) -> Result<()>;

    /// Point read; returns whether the key was found (the value is materialized).
    fn get(&self, key: &[u8]) -> Result<bool>;

    /// Positions an iterator at the first key >= `key` and reads that one entry
    /// (db_bench seekrandom with seek_nexts=0). Returns whether it was exactly `key`.
    fn seek_read_one(&self, key: &[u8]) -> Result<bool>;

    /// Full forward scan; calls `on_entry(key_len + value_len)` for every entry.
    fn scan_all(&self, on_entry: &mut dyn FnMut(usize)) -> Result<()>;

    /// Flushes memtables to tables and waits until background compaction is idle.
    fn settle(&self) -> Result<()>;

    /// Write counters, if the engine exposes them.
    fn write_counters(&self) -> Option<WriteCounters>;

    /// Closes the database cleanly.
    fn close(self: Box<Self>) -> Result<()>;
}

/// A one-line description of how `kind` is configured for `cfg`, for the output header.
pub fn describe(kind: EngineKind, cfg: &EngineConfig) -> String {
    match kind {
        EngineKind::Strata => strata::describe(cfg),
        EngineKind::Fjall => fjall::describe(cfg),
        EngineKind::Rocksdb => rocksdb_describe(cfg),
    }
}

/// Fails early when `kind` cannot run with `cfg` in this build.
pub fn check_supported(kind: EngineKind, cfg: &EngineConfig) -> Result<()> {
    match kind {
        EngineKind::Strata => Ok(()),
        EngineKind::Fjall => fjall::check_supported(cfg),
        EngineKind::Rocksdb => {
            if cfg!(feature = "rocksdb") {
                Ok(())
            } else {
                anyhow::bail!(
                    "rocksdb was not compiled in: rebuild with `--features rocksdb` \
                     (builds RocksDB from source, ~15 minutes)"
                )
            }
        }
    }
}

/// Opens (creating if missing) the database of `kind` in `dir`.
pub fn open(kind: EngineKind, dir: &Path, cfg: &EngineConfig) -> Result<Box<dyn BenchEngine>> {
    std::fs::create_dir_all(dir)?;
    Ok(match kind {
        EngineKind::Strata => Box::new(strata::StrataBench::open(dir, cfg)?),
        EngineKind::Fjall => Box::new(fjall::FjallBench::open(dir, cfg)?),
        EngineKind::Rocksdb => rocksdb_open(dir, cfg)?,
    })
}

#[cfg(feature = "rocksdb")]
fn rocksdb_open(dir: &Path, cfg: &EngineConfig) -> Result<Box<dyn BenchEngine>> {
    Ok(Box::new(rocksdb::RocksBench::open(dir, cfg)?))
}

#[cfg(not(feature = "rocksdb"))]
fn rocksdb_open(_dir: &Path, _cfg: &EngineConfig) -> Result<Box<dyn BenchEngine>> {
    anyhow::bail!("rocksdb was not compiled in: rebuild with `--features rocksdb`")
}

#[cfg(feature = "rocksdb")]
fn rocksdb_describe(cfg: &EngineConfig) -> String {
    rocksdb::describe(cfg)
}

#[cfg(not(feature = "rocksdb"))]
fn rocksdb_describe(_cfg: &EngineConfig) -> String {
    "not compiled in (build with --features rocksdb)".to_string()
}
