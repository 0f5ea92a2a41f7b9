//! The live segment of a commit log: the file (or, on an object store,
//! the object's bytes) the writer appends the current group to, with how
//! much of it is flushed and synced.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::segment_file_name;
use super::writer::{LogLayout, SegmentInfo};
use crate::error::{Error, Result};
use crate::key::SeqNo;
use crate::storage::{Storage, WritableFile};

/// Where the live segment's bytes go.
pub(super) enum LiveFile {
    /// A segment file, appended to.
    Segment(Box<dyn WritableFile>),
    /// A log object, gathered in memory (the header first) until its group
    /// is committed.
    Object(Vec<u8>),
}

/// The segment being appended to.
pub(super) struct LiveSegment {
    pub(super) number: u64,
    pub(super) name: String,
    pub(super) file: LiveFile,
    pub(super) seq_last: SeqNo,
    pub(super) size_bytes: u64,
    /// Bytes handed to the OS.
    pub(super) flushed_bytes: u64,
    /// The highest sequence number in those bytes.
    pub(super) flushed_seq_last: SeqNo,
    /// Bytes known durable: the watermark written in every new frame.
    pub(super) synced_bytes: u64,
    /// Bytes of groups whose writers were (or may have been) told of
    /// success, and the highest sequence number in them: what a repair
    /// after a failure keeps.
    pub(super) acknowledged_bytes: u64,
    pub(super) acknowledged_seq_last: SeqNo,
    /// Handles that sync this segment from other threads.
    pub(super) sync_handles: Arc<super::pending::HandlePool>,
    /// The zero bytes the file was prepared with, 0 if it was not: a
    /// preallocated segment's file is longer than `size_bytes` until it is
    /// cut when sealed.
    pub(super) zeroed_bytes: u64,
}

impl LiveSegment {
    /// Creates the file and makes its name durable, so no record in it is
    /// ever acknowledged while a power loss could still drop the file.
    /// A log object appears only when uploaded, and takes the next id.
    pub(super) fn create(
        storage: &Arc<dyn Storage>,
        next_file_number: &AtomicU64,
        layout: &mut LogLayout,
    ) -> Result<LiveSegment> {
        let (number, name, file) = match layout {
            LogLayout::Objects { epoch, next_id } => {
                let id = *next_id;
                *next_id += 1;
                let header = super::objects::encode_header(*epoch, id).to_vec();
                (
                    id,
                    super::objects::object_name(id),
                    LiveFile::Object(header),
                )
            }
            LogLayout::Segments => {
                let (number, name) = next_segment_name(storage, next_file_number)?;
                let file = storage.create(&name)?;
                storage.sync_dir()?;
                (number, name, LiveFile::Segment(file))
            }
        };
        Ok(LiveSegment::new(number, name, file, 0))
    }

    /// Makes the prepared file `prepared`, `zeroed_bytes` of zeros, the
    /// next segment: renames it to the segment's name, makes that durable,
    /// and opens it to be written from its start.
    pub(super) fn from_prepared(
        storage: &Arc<dyn Storage>,
        next_file_number: &AtomicU64,
        prepared: &str,
        zeroed_bytes: u64,
    ) -> Result<LiveSegment> {
        debug_assert!(zeroed_bytes > 0);
        let (number, name) = next_segment_name(storage, next_file_number)?;
        storage.rename(prepared, &name)?;
        storage.sync_dir()?;
        let file = storage.overwrite(&name)?;
        Ok(LiveSegment::new(
            number,
            name,
            LiveFile::Segment(file),
            zeroed_bytes,
        ))
    }

    pub(super) fn new(number: u64, name: String, file: LiveFile, zeroed_bytes: u64) -> LiveSegment {
        LiveSegment {
            number,
            name,
            file,
            seq_last: 0,
            size_bytes: 0,
            flushed_bytes: 0,
            flushed_seq_last: 0,
            synced_bytes: 0,
            acknowledged_bytes: 0,
            acknowledged_seq_last: 0,
            sync_handles: Arc::default(),
            zeroed_bytes,
        }
    }

    /// Written over a zero-filled file (`zeroed_bytes`).
    pub(super) fn preallocated(&self) -> bool {
        self.zeroed_bytes > 0
    }

    pub(super) fn info(&self) -> SegmentInfo {
        SegmentInfo {
            number: self.number,
            seq_last: self.seq_last,
            size_bytes: self.size_bytes,
        }
    }

    pub(super) fn append(&mut self, header: &[u8], payload: &[u8]) -> Result<()> {
        match &mut self.file {
            LiveFile::Segment(f) => f.append(header).and_then(|()| f.append(payload)),
            LiveFile::Object(data) => {
                data.extend_from_slice(header);
                data.extend_from_slice(payload);
                Ok(())
            }
        }
    }

    /// The segment file; an error for a log object, which is never
    /// flushed or synced, only uploaded whole (`CommitLog::commit_start`).
    pub(super) fn segment_file(&mut self) -> Result<&mut Box<dyn WritableFile>> {
        match &mut self.file {
            LiveFile::Segment(f) => Ok(f),
            LiveFile::Object(_) => Err(Error::InvalidArgument(format!(
                "{}: a log object is uploaded whole, not flushed or synced",
                self.name
            ))),
        }
    }

    pub(super) fn flush(&mut self) -> Result<()> {
        if self.flushed_bytes < self.size_bytes {
            self.segment_file()?.flush()?;
            self.flushed_bytes = self.size_bytes;
            self.flushed_seq_last = self.seq_last;
        }
        Ok(())
    }

    /// A handle that syncs this segment from another thread (one not in
    /// use by another group, opened if none is free); None if the file
    /// has none.
    pub(super) fn sync_handle(&mut self) -> Result<Option<super::pending::PooledHandle>> {
        if let Some(h) = self.sync_handles.take() {
            return Ok(Some(h));
        }
        let pool = self.sync_handles.clone();
        Ok(self.segment_file()?.sync_handle()?.map(|h| pool.wrap(h)))
    }

    /// Records that the writers of the bytes so far may be told of
    /// success.
    pub(super) fn acknowledge(&mut self, size_bytes: u64, seq_last: SeqNo) {
        debug_assert!(size_bytes <= self.size_bytes);
        if size_bytes > self.acknowledged_bytes {
            self.acknowledged_bytes = size_bytes;
            self.acknowledged_seq_last = seq_last;
        }
    }

    pub(super) fn sync(&mut self) -> Result<()> {
        if self.synced_bytes < self.size_bytes {
            self.segment_file()?.sync()?;
            self.flushed_bytes = self.size_bytes;
            self.flushed_seq_last = self.seq_last;
            self.synced_bytes = self.size_bytes;
        }
        Ok(())
    }
}

/// The number and name of a new segment, drawn from the file counter; an
/// error if a file of that name exists (a segment is never reused).
fn next_segment_name(storage: &Arc<dyn Storage>, counter: &AtomicU64) -> Result<(u64, String)> {
    let number = counter.fetch_add(1, Ordering::SeqCst);
    let name = segment_file_name(number);
    if storage.exists(&name)? {
        return Err(Error::InvalidArgument(format!(
            "file number {number} is already in use: {name} exists"
        )));
    }
    Ok((number, name))
}

/// The stand-in for a segment file given up after a failure.
pub(super) struct Abandoned;

impl WritableFile for Abandoned {
    fn append(&mut self, _: &[u8]) -> Result<()> {
        Err(Error::Closed(
            "log segment abandoned after a failure".into(),
        ))
    }
    fn flush(&mut self) -> Result<()> {
        self.append(&[])
    }
    fn sync(&mut self) -> Result<()> {
        self.append(&[])
    }
    fn len(&self) -> u64 {
        0
    }
}
