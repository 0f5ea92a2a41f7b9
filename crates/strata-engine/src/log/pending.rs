//! Groups written to the log and not yet durable: a log object to upload
//! (`CommitLog::commit_start`) or a segment's bytes to fsync
//! (`CommitLog::commit_flush`). The engine makes them durable outside the
//! log's lock, so the next group is written meanwhile, and reports each,
//! in order, to `CommitLog::complete_group`
//! (docs/formats/commit-log.md, "Syncs in flight").

use std::sync::Arc;

use parking_lot::Mutex;

use super::writer::{PendingObject, SegmentInfo};
use crate::error::Result;
use crate::storage::{Storage, SyncHandle};

/// Sync handles kept for reuse per segment; more are opened while more
/// syncs are in flight, and closed when they end.
const HANDLES_KEPT_MAX: usize = 8;

/// A segment's group whose bytes are handed to the OS and not yet synced.
pub struct PendingSync {
    /// The segment, with its length and last sequence number as of this
    /// group's end: the group is durable once `[0, size_bytes)` is.
    pub info: SegmentInfo,
    /// None: synced already (the file had no handle for other threads).
    handle: Option<PooledHandle>,
}

impl PendingSync {
    pub(super) fn new(info: SegmentInfo, handle: Option<PooledHandle>) -> PendingSync {
        PendingSync { info, handle }
    }

    /// fdatasyncs the segment: every byte flushed before this call, the
    /// group's among them, is durable when it returns Ok.
    pub fn sync(&self) -> Result<()> {
        match &self.handle {
            Some(h) => h.handle.as_ref().expect("held until dropped").sync(),
            None => Ok(()),
        }
    }
}

/// A group written to the log, waiting to be made durable.
pub enum PendingGroup {
    Object(PendingObject),
    Sync(PendingSync),
}

impl PendingGroup {
    /// The log object, or the segment as of the group's end.
    pub fn info(&self) -> &SegmentInfo {
        match self {
            PendingGroup::Object(o) => &o.info,
            PendingGroup::Sync(s) => &s.info,
        }
    }

    /// Uploads the object (stamped with the owner's `epoch`) or syncs the
    /// segment. Safe from any thread, concurrently with appends.
    pub fn persist(&self, storage: &dyn Storage, epoch: u64) -> Result<()> {
        match self {
            PendingGroup::Object(o) => super::objects::upload(storage, o, epoch),
            PendingGroup::Sync(s) => s.sync(),
        }
    }
}

/// Sync handles of one segment not in use.
#[derive(Default)]
pub(super) struct HandlePool {
    free: Mutex<Vec<Box<dyn SyncHandle>>>,
}

impl HandlePool {
    /// A free handle, or None if every one is in use (or none was opened).
    pub(super) fn take(self: &Arc<Self>) -> Option<PooledHandle> {
        let handle = self.free.lock().pop()?;
        Some(self.wrap(handle))
    }

    /// `handle`, returned to this pool when dropped.
    pub(super) fn wrap(self: &Arc<Self>, handle: Box<dyn SyncHandle>) -> PooledHandle {
        PooledHandle {
            handle: Some(handle),
            pool: self.clone(),
        }
    }
}

/// A sync handle in use by one group; back to its pool when dropped. No
/// two syncs in flight share a handle (`SyncHandle`'s error reporting).
pub(super) struct PooledHandle {
    handle: Option<Box<dyn SyncHandle>>,
    pool: Arc<HandlePool>,
}

impl Drop for PooledHandle {
    fn drop(&mut self) {
        if let Some(h) = self.handle.take() {
            let mut free = self.pool.free.lock();
            if free.len() < HANDLES_KEPT_MAX {
                free.push(h);
            }
        }
    }
}
