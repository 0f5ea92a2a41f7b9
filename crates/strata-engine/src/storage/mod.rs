//! The storage seam: where the engine's bytes live.
//!
//! A `Storage` is one flat namespace of named files (no sub-directories):
//! immutable files written once and read by byte range (SSTables,
//! manifests) and append-only commit-log segments. Backends: local files
//! (`LocalStorage`), memory with an exact durability model (`MemStorage`),
//! and a fault-injecting wrapper (`FaultStorage`); object stores implement
//! it in the `strata-object-store` crate.
//!
//! Durability contract, which every backend honours and the engine relies on:
//! - `WritableFile::append` may buffer; `flush` hands the bytes to the OS
//!   (they survive a process crash); `sync` makes them durable (they
//!   survive power loss).
//! - `create`, `rename` and `remove` change the namespace, and are durable
//!   only after `sync_dir`.
//! - `put_if_absent` writes a whole file durably, or nothing, and of two
//!   calls for one name at most one writes.
//!
//! A storage of *whole objects* (`whole_objects()`: an object store, or
//! `MemStorage::objects` in tests) differs: a file written with `create`
//! appears, whole and durable, when its writer's `sync` returns (once: it
//! cannot be appended to afterwards), and `rename` and `truncate` are not
//! available. Over such a storage the engine keeps its manifest and commit
//! log as numbered objects made with `put_if_absent`
//! (docs/formats/object-store.md); names may then hold a `/`.

#[cfg(target_os = "linux")]
mod direct;
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
    /// Drops the file without writing what is still buffered (after a
    /// failure, the caller cuts the file back to what was persisted).
    fn abandon(self: Box<Self>) {}
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// A new handle that makes this file's flushed bytes durable from
    /// another thread while appends go on (a commit log's syncs in
    /// flight, docs/formats/commit-log.md, "Syncs in flight"); None if
    /// the backend has none, and the caller syncs with `sync`.
    ///
    /// Each handle is its own open file description: a write-back error
    /// is reported to every handle open when it happened (Linux's
    /// errseq_t), never consumed by a sibling's sync.
    fn sync_handle(&self) -> Result<Option<Box<dyn SyncHandle>>> {
        Ok(None)
    }
}

/// Makes durable every byte of its file flushed (handed to the OS) before
/// `sync` was called; see `WritableFile::sync_handle`.
pub trait SyncHandle: Send + Sync {
    fn sync(&self) -> Result<()>;
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
    /// Writes `data` as the whole file `name`, durably, if no file of that
    /// name exists, and returns true; returns false, writing nothing, if
    /// one exists. Of two concurrent calls for one name, at most one
    /// returns true. An error leaves the outcome unknown: the file may
    /// have been written (read it back to find out).
    fn put_if_absent(&self, name: &str, data: &[u8]) -> Result<bool>;
    /// Whether files are whole objects (see the module docs).
    fn whole_objects(&self) -> bool {
        false
    }
    /// Reads whole files, one result per name in order; a storage that
    /// gains by it (an object store) fetches several at once.
    fn read_many(&self, names: &[String]) -> Vec<Result<Vec<u8>>> {
        names
            .iter()
            .map(|n| self.open(n).and_then(|f| read_whole(&*f, n)))
            .collect()
    }
    /// Opens a file whose size the caller recorded (a table the manifest
    /// names): a storage that would have to ask for the size (an object
    /// store's HEAD) takes it instead. The caller checks `len()` against
    /// its record; a stored file of another size then fails its first
    /// read or checksum.
    fn open_sized(&self, name: &str, _size_bytes: u64) -> Result<Arc<dyn RandomAccessFile>> {
        self.open(name)
    }
    /// Told once the engine has recovered (opened every table and replayed
    /// the log): background work that would compete with recovery for the
    /// store, such as an object store's filling of its local cache, may
    /// start now.
    fn recovered(&self) {}
    /// Deletes the files, stopping at the first failure; a name already
    /// gone counts as deleted. In order, or, for a storage that gains by
    /// it (an object store), in bulk: batches of at most
    /// `REMOVE_MANY_BATCH` names one after the other, in any order within
    /// a batch.
    fn remove_many(&self, names: &[String]) -> Result<()> {
        names.iter().try_for_each(|n| match self.remove(n) {
            Err(e) if e.is_not_found() => Ok(()),
            r => r,
        })
    }
    /// Whether `create_zeroed` and `overwrite` work here (a local or memory
    /// file system; not an object store).
    fn can_preallocate(&self) -> bool {
        false
    }
    /// Creates (or truncates) `name` holding `size_bytes` zero bytes and
    /// makes its bytes and size durable (its name becomes durable at the
    /// next `sync_dir`): a log segment to be written in place
    /// (`overwrite`), whose syncs then need not record a new file size.
    fn create_zeroed(&self, name: &str, _size_bytes: u64) -> Result<()> {
        Err(crate::error::Error::InvalidArgument(format!(
            "{name}: {} cannot preallocate files",
            self.describe()
        )))
    }
    /// Opens an existing file to write it from its first byte, over the
    /// bytes it holds, without truncating it; `len` counts the bytes
    /// written. (For files made by `create_zeroed`.)
    fn overwrite(&self, name: &str) -> Result<Box<dyn WritableFile>> {
        Err(crate::error::Error::InvalidArgument(format!(
            "{name}: {} cannot write files in place",
            self.describe()
        )))
    }
    /// The names that start with `prefix`, in no particular order.
    fn list_prefix(&self, prefix: &str) -> Result<Vec<String>> {
        let mut names = self.list()?;
        names.retain(|n| n.starts_with(prefix));
        Ok(names)
    }
}

/// The most names `Storage::remove_many` deletes at once (S3's
/// DeleteObjects takes 1,000): a reader that finds a listed name gone can
/// tell how far above the lowest remaining one a bulk deletion reaches.
pub const REMOVE_MANY_BATCH: usize = 1000;

/// Writes a whole small file durably: write, sync, then `sync_dir`.
pub fn write_file_durably(storage: &dyn Storage, name: &str, data: &[u8]) -> Result<()> {
    let mut f = storage.create(name)?;
    f.append(data)?;
    f.sync()?;
    drop(f);
    storage.sync_dir()
}

/// Uploads a whole object: `(name, bytes)`.
pub type Upload = Box<dyn FnMut(&str, &[u8]) -> Result<()> + Send>;

/// The `WritableFile` of a storage of whole objects: appends gather in
/// memory and `sync` hands the whole object to its upload, once (a later
/// `sync` does nothing, a later `append` is an error). `len` counts the
/// bytes appended after the `header` it starts with.
pub struct WholeObjectWriter {
    name: String,
    data: Vec<u8>,
    header_bytes: usize,
    published: bool,
    upload: Upload,
}

impl WholeObjectWriter {
    pub fn new(name: &str, header: Vec<u8>, upload: Upload) -> WholeObjectWriter {
        WholeObjectWriter {
            name: name.to_string(),
            header_bytes: header.len(),
            data: header,
            published: false,
            upload,
        }
    }
}

impl WritableFile for WholeObjectWriter {
    fn append(&mut self, data: &[u8]) -> Result<()> {
        if self.published {
            return Err(crate::error::Error::InvalidArgument(format!(
                "append to {}: an object is uploaded whole, once",
                self.name
            )));
        }
        self.data.extend_from_slice(data);
        Ok(())
    }

    /// Nothing reaches the store before the upload.
    fn flush(&mut self) -> Result<()> {
        Ok(())
    }

    fn sync(&mut self) -> Result<()> {
        if !self.published {
            (self.upload)(&self.name, &self.data)?;
            self.published = true;
        }
        Ok(())
    }

    fn len(&self) -> u64 {
        (self.data.len() - self.header_bytes) as u64
    }
}

/// `put_if_absent` with its unknown outcomes resolved: when the put fails,
/// or finds the name taken, the file is read back, and if it holds exactly
/// `data` the put had succeeded (an earlier attempt whose answer was lost:
/// manifest and log objects hold their writer's epoch, so no other writer
/// makes the same bytes; a table of the same bytes is the same table).
/// Ok(false): another writer's file has the name. An error: the outcome is
/// still unknown.
pub fn put_new(storage: &dyn Storage, name: &str, data: &[u8]) -> Result<bool> {
    match storage.put_if_absent(name, data) {
        Ok(true) => Ok(true),
        Ok(false) => Ok(read_file(storage, name)? == data),
        Err(e) => match read_file(storage, name) {
            Ok(bytes) if bytes == data => Ok(true),
            _ => Err(e),
        },
    }
}

/// Reads a whole file.
pub fn read_file(storage: &dyn Storage, name: &str) -> Result<Vec<u8>> {
    read_whole(&*storage.open(name)?, name)
}

fn read_whole(f: &dyn RandomAccessFile, name: &str) -> Result<Vec<u8>> {
    let len = usize::try_from(f.len()).map_err(|_| {
        crate::error::Error::InvalidArgument(format!("file {name} too large to read whole"))
    })?;
    f.read_vec(0, len)
}

#[cfg(test)]
mod tests;
