//! The storage seam: where the engine's bytes live.
//!
//! A `Storage` is one flat namespace of named files (no sub-directories):
//! immutable files written once and read by byte range (SSTables,
//! manifests) and append-only commit-log segments. Backends: local files
//! (`LocalStorage`), memory with an exact durability model (`MemStorage`),
//! and a fault-injecting wrapper (`FaultStorage`). Object stores come later
//! behind the same trait.
//!
//! Durability contract, which every backend honours and the engine relies on:
//! - `WritableFile::append` may buffer; `flush` hands the bytes to the OS
//!   (they survive a process crash); `sync` makes them durable (they
//!   survive power loss).
//! - `create`, `rename` and `remove` change the namespace, and are durable
//!   only after `sync_dir`.

mod fault;
mod local;
mod mem;

pub use fault::{FaultOp, FaultStorage};
pub use local::LocalStorage;
pub use mem::{MemStorage, TornWrite};

use std::sync::Arc;

use crate::error::Result;

/// A file being written, append-only.
pub trait WritableFile: Send {
    /// Appends bytes (possibly buffered in the process).
    fn append(&mut self, data: &[u8]) -> Result<()>;
    /// Hands buffered bytes to the operating system.
    fn flush(&mut self) -> Result<()>;
    /// Flushes and makes every appended byte durable.
    fn sync(&mut self) -> Result<()>;
    /// Bytes appended so far.
    fn len(&self) -> u64;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A file read by byte range, safe to share between threads.
pub trait RandomAccessFile: Send + Sync {
    /// Fills `buf` from `offset`; reading past the end is an error.
    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> Result<()>;
    /// The file's length in bytes.
    fn len(&self) -> u64;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Reads `len` bytes at `offset` into a new vector.
    fn read_vec(&self, offset: u64, len: usize) -> Result<Vec<u8>> {
        let mut v = vec![0u8; len];
        self.read_exact_at(offset, &mut v)?;
        Ok(v)
    }
}

/// A flat namespace of files.
pub trait Storage: Send + Sync + 'static {
    /// Creates (or truncates) a file for writing.
    fn create(&self, name: &str) -> Result<Box<dyn WritableFile>>;
    /// Opens a file for positional reads.
    fn open(&self, name: &str) -> Result<Arc<dyn RandomAccessFile>>;
    /// Removes a file; removing a missing file is not an error.
    fn remove(&self, name: &str) -> Result<()>;
    /// Atomically replaces `to` with `from`.
    fn rename(&self, from: &str, to: &str) -> Result<()>;
    /// Cuts a file to `len` bytes and makes the new length durable.
    fn truncate(&self, name: &str, len: u64) -> Result<()>;
    /// Every file name in the namespace, in no particular order.
    fn list(&self) -> Result<Vec<String>>;
    /// Makes the namespace (creates, renames, removes) durable.
    fn sync_dir(&self) -> Result<()>;
    /// Whether a file exists.
    fn exists(&self, name: &str) -> Result<bool>;
    /// A short description for logs ("local:/path", "memory").
    fn describe(&self) -> String;
}

/// Writes a whole small file durably: write, sync, then `sync_dir`.
pub fn write_file_durably(storage: &dyn Storage, name: &str, data: &[u8]) -> Result<()> {
    let mut f = storage.create(name)?;
    f.append(data)?;
    f.sync()?;
    drop(f);
    storage.sync_dir()
}

/// Reads a whole file.
pub fn read_file(storage: &dyn Storage, name: &str) -> Result<Vec<u8>> {
    let f = storage.open(name)?;
    let len = usize::try_from(f.len()).map_err(|_| {
        crate::error::Error::InvalidArgument(format!("file {name} too large to read whole"))
    })?;
    f.read_vec(0, len)
}

#[cfg(test)]
mod tests;
