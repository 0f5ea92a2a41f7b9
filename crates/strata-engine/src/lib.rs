//! Strata's storage engine: log-structured merge trees sharing one commit log.
//!
//! Layers, bottom-up: `storage` (where bytes live), `log` (the commit log),
//! `sst` (immutable sorted tables), `memtable`, `manifest` (the file set of
//! every tree, as atomic edits), `compaction`, and `db` (the engine that
//! ties them together). Formats are specified in docs/formats/.

pub mod coding;
pub mod error;
pub mod histogram;
pub mod iter;
pub mod key;
pub mod storage;

pub use error::{Error, Result, RetryClass};
pub use key::{SeqNo, ValueKind};
pub mod batch;
pub mod check;
pub mod checksum;
pub mod compaction;
pub mod db;
pub mod dump;
pub mod log;
pub mod manifest;
pub mod memtable;
pub mod merge;
pub mod sst;

pub use batch::{TreeId, WriteBatch};
pub use db::{
    defer_commit_wakeups, wake_deferred_commits, BackgroundPool, Direction, Engine, EngineOptions,
    EngineStats, Ingested, JobInfo, JobKind, MemtablePool, MemtableUsage, Snapshot, SyncMode,
    TabletInfo, Tree, TreeIter, TreeOptions, TreeStats,
};
pub use merge::{CompactionFilter, KeyFilter, MergeOperator};
pub use sst::Compression;
