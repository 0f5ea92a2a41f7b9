//! Strata's storage on an object store: the engine's `Storage` over the
//! `object_store` crate (S3 and S3-compatible servers, GCS, Azure, a local
//! directory used through the object API, memory), so that a server owns
//! no durable state of its own (docs/formats/object-store.md).
//!
//! - `url`: `--storage URL` to a store and a prefix.
//! - `bridge`: the engine is synchronous; requests run on this crate's own
//!   runtime and the calling thread waits for them.
//! - `storage`: `ObjectStorage`, the names, whole-object writes,
//!   create-if-absent, ranged reads, request counters.
//! - `cache`: SSTables kept in a local directory, bounded in bytes.
//! - `mirror`: one storage's objects copied into another's (a cluster
//!   tablet's split).

mod bridge;
mod cache;
mod counters;
mod mirror;
mod storage;
mod url;

pub use counters::Counters;
pub use mirror::{MirrorScope, Mirrored};
pub use storage::ObjectStorage;
pub use url::{parse_storage_url, StorageUrl};

/// What can go wrong setting up object storage.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("bad --storage URL {url:?}: {why}")]
    BadUrl { url: String, why: String },
    #[error("cannot set up the object store for {url}: {source}")]
    Store {
        url: String,
        #[source]
        source: object_store::Error,
    },
    #[error("cannot start the object-store runtime: {0}")]
    Runtime(#[source] std::io::Error),
    #[error("cannot use the cache directory {dir}: {source}")]
    Cache {
        dir: String,
        #[source]
        source: std::io::Error,
    },
}
