//! Log segments zero-filled ahead of use (docs/formats/commit-log.md,
//! "Preallocated segments").
//!
//! An fdatasync after an append must also record the file's new size: a
//! journal commit on ext4 and xfs, which waits behind every other metadata
//! change of the file system. Written over zeros already on disk, the
//! same sync flushes only data: measured here, a median of about 100 µs
//! against 150-200 µs, and immune to a busy journal. So, once the engine
//! writes enough to need it, a thread writes the next segment's zeros
//! under a name that is not a segment's (`{number:06}.logzero`) and syncs
//! them; the writer renames it into place when it starts a segment, and
//! writes the segment from its first byte. A prepared file left over from
//! a crash is removed when the engine opens.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use crate::error::Result;
use crate::storage::Storage;

/// The suffix of a prepared, not yet used segment file.
pub const PREPARED_SUFFIX: &str = ".logzero";

/// A live segment that is not preallocated has the next one prepared
/// once it holds this many bytes (or half the segment size, if less): an
/// engine that logs little (a test, an idle tablet) never writes zeros.
pub const PREPARE_AFTER_BYTES: u64 = 64 << 10;

/// The size of the first file prepared after the log opens; each next one
/// is twice the last, up to the segment size. A log that has just begun
/// is soon written over zeros, yet one that stays small writes few zeros.
pub const FIRST_PREPARED_BYTES: u64 = 1 << 20;

/// Whether `name` is a prepared segment file.
pub fn is_prepared(name: &str) -> bool {
    name.strip_suffix(PREPARED_SUFFIX)
        .is_some_and(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
}

/// Prepares one zero-filled segment file at a time, on its own thread.
pub(crate) struct Preparer {
    /// The size of every prepared file, once the sizes have doubled up to
    /// it: the segment size.
    size_bytes_max: u64,
    /// The size of the next file to prepare.
    next_size_bytes: u64,
    job: Option<JoinHandle<Result<(String, u64)>>>,
    /// The live segment during which a preparation failed: no other is
    /// tried until the log moves to another segment.
    failed_during: Option<u64>,
}

impl Preparer {
    /// Prepares files of `FIRST_PREPARED_BYTES`, then each twice the
    /// last, up to `size_bytes_max` (the segment size).
    pub fn new(size_bytes_max: u64) -> Preparer {
        debug_assert!(size_bytes_max > 0);
        Preparer {
            size_bytes_max,
            next_size_bytes: FIRST_PREPARED_BYTES.min(size_bytes_max),
            job: None,
            failed_during: None,
        }
    }

    /// Starts preparing a file unless one is prepared or under way, or
    /// one failed while segment `live` was being written.
    pub fn start(&mut self, storage: &Arc<dyn Storage>, next_file_number: &AtomicU64, live: u64) {
        if self.job.is_some() || self.failed_during == Some(live) {
            return;
        }
        let name = format!(
            "{:06}{PREPARED_SUFFIX}",
            next_file_number.fetch_add(1, Ordering::SeqCst)
        );
        let (storage, size_bytes) = (storage.clone(), self.next_size_bytes);
        let spawned = std::thread::Builder::new()
            .name("strata-log-zero".into())
            .spawn(move || {
                storage.create_zeroed(&name, size_bytes).inspect_err(|_| {
                    let _ = storage.remove(&name);
                })?;
                Ok((name, size_bytes))
            });
        match spawned {
            Ok(job) => {
                self.job = Some(job);
                self.next_size_bytes = size_bytes.saturating_mul(2).min(self.size_bytes_max);
            }
            Err(e) => tracing::warn!("commit log: cannot start preparing a segment: {e}"),
        }
    }

    /// The prepared file's name and size, once it is ready (then the next
    /// `start` prepares another). A failure is logged and remembered
    /// against segment `live`: the writer goes on without preallocation.
    pub fn take_ready(&mut self, live: u64) -> Option<(String, u64)> {
        if !self.job.as_ref()?.is_finished() {
            return None;
        }
        let failure = match self.job.take()?.join() {
            Ok(Ok(ready)) => return Some(ready),
            Ok(Err(e)) => e.to_string(),
            Err(_) => "its thread panicked".to_string(),
        };
        tracing::warn!("commit log: preparing a zero-filled segment failed: {failure}");
        self.failed_during = Some(live);
        None
    }

    /// A prepared file could not be used during segment `live`: prepare
    /// no other until the log moves on.
    pub fn failed_during(&mut self, live: u64) {
        self.failed_during = Some(live);
    }
}

impl Drop for Preparer {
    /// Waits for a preparation under way: no thread writes to the storage
    /// after the log is gone. (Its file is removed at the next open.)
    fn drop(&mut self) {
        if let Some(job) = self.job.take() {
            let _ = job.join();
        }
    }
}
