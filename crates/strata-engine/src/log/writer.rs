//! The commit-log writer: appends frames to the live segment, ends groups
//! with one flush (and fsync when asked), rolls to a new segment past the
//! size limit, and deletes segments every tree has flushed past.

use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use super::format::{encode_header, HEADER_BYTES, PAYLOAD_BYTES_MAX};
use super::live::{Abandoned, LiveFile, LiveSegment};
use super::pending::{PendingGroup, PendingSync};
use super::prealloc::Preparer;
use super::segment_file_name;
use crate::batch::payload_count;
use crate::error::{Error, Result};
use crate::key::{SeqNo, SEQ_MAX};
use crate::storage::Storage;

/// Tuning of the commit log.
#[derive(Clone, Debug)]
pub struct LogOptions {
    /// A segment is sealed, and a new one started, once a group leaves it
    /// larger than this.
    pub segment_size_bytes_max: u64,
    pub layout: LogLayout,
    /// Segments: once the log holds a few MiB, write into segments
    /// zero-filled ahead of use (`prealloc.rs`), so a sync need not record
    /// a new file size. Needs `Storage::can_preallocate`.
    pub preallocate: bool,
}

impl Default for LogOptions {
    fn default() -> Self {
        LogOptions {
            segment_size_bytes_max: 64 << 20,
            layout: LogLayout::Segments,
            preallocate: false,
        }
    }
}

/// How the log is kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogLayout {
    /// Segment files `{number:06}.log`, appended and fsynced, numbered
    /// from the engine's file counter.
    Segments,
    /// One object per group commit, `wal/<id>`, ids consecutive from
    /// `next_id`, stamped with the owner's `epoch` (`objects.rs`).
    Objects { epoch: u64, next_id: u64 },
}

/// What the log knows about one segment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SegmentInfo {
    /// The file number: the segment is the file `{number:06}.log`.
    pub number: u64,
    /// Highest sequence number of any operation in the segment; 0 if empty.
    pub seq_last: SeqNo,
    /// Length of the segment in bytes.
    pub size_bytes: u64,
}

/// A group's log object, taken from the log by `CommitLog::commit_start`
/// to be uploaded while the next group is written.
pub struct PendingObject {
    pub info: SegmentInfo,
    pub name: String,
    /// The whole object: header and frames.
    pub data: Vec<u8>,
}

/// The commit log shared by every tree of the engine.
///
/// Used by one writer at a time (the engine's write leader, under a mutex):
/// `append` each record of a group, then `commit` once. After any failed
/// write, flush, sync or roll the log refuses every further append, so a
/// frame that failed half-written is never followed by later records.
pub struct CommitLog {
    pub(super) storage: Arc<dyn Storage>,
    pub(super) next_file_number: Arc<AtomicU64>,
    pub(super) opts: LogOptions,
    /// Segments no longer written, in number order.
    pub(super) sealed: Vec<SegmentInfo>,
    pub(super) live: LiveSegment,
    /// Highest sequence number logged so far (0 before the first record).
    seq_last: SeqNo,
    bytes_written: u64,
    /// Why the log stopped accepting records, and the error (of the same
    /// class as the failure's) that later appends report.
    failure: Option<(String, Error)>,
    /// Log objects: the newest id known uploaded.
    newest_uploaded: Option<u64>,
    /// Log objects: ids whose upload failed, for `repair` to fill.
    given_up: Vec<u64>,
    /// Segments with `LogOptions::preallocate`: the next segment's zeros.
    pub(super) preparer: Option<Preparer>,
}

impl CommitLog {
    /// Starts a new segment (never appending to an old file). `sealed` are
    /// the segments found by recovery, kept until `remove_obsolete` finds
    /// them obsolete. The new segment's name is durable before this returns.
    pub fn open(
        storage: Arc<dyn Storage>,
        next_file_number: Arc<AtomicU64>,
        opts: LogOptions,
        mut sealed: Vec<SegmentInfo>,
    ) -> Result<CommitLog> {
        sealed.sort_by_key(|s| s.number);
        debug_assert!(sealed.windows(2).all(|w| w[0].number < w[1].number));
        let mut opts = opts;
        let live = LiveSegment::create(&storage, &next_file_number, &mut opts.layout)?;
        debug_assert!(sealed.last().is_none_or(|s| s.number < live.number));
        let seq_last = sealed.iter().map(|s| s.seq_last).max().unwrap_or(0);
        // At open, every listed object (the fence included) exists.
        let newest_uploaded = sealed.last().map(|s| s.number);
        let preparer = (opts.preallocate && opts.layout == LogLayout::Segments)
            .then(|| Preparer::new(opts.segment_size_bytes_max));
        Ok(CommitLog {
            storage,
            next_file_number,
            opts,
            sealed,
            live,
            seq_last,
            bytes_written: 0,
            failure: None,
            newest_uploaded,
            given_up: Vec::new(),
            preparer,
        })
    }

    /// Appends one record (buffered): the encoded `WriteBatch` payload
    /// whose operations get `seq_first..=seq_last`. Sequence numbers start
    /// at 1 and must increase from record to record.
    pub fn append(&mut self, seq_first: SeqNo, seq_last: SeqNo, payload: &[u8]) -> Result<()> {
        self.check_healthy()?;
        if seq_first <= self.seq_last || seq_last < seq_first || seq_last > SEQ_MAX {
            return Err(Error::InvalidArgument(format!(
                "log record sequence numbers {seq_first}..={seq_last} do not follow {}",
                self.seq_last
            )));
        }
        if payload.len() > PAYLOAD_BYTES_MAX {
            return Err(Error::InvalidArgument(format!(
                "log record of {} bytes exceeds the {PAYLOAD_BYTES_MAX}-byte limit",
                payload.len()
            )));
        }
        let count = payload_count(payload, "write batch")
            .map_err(|e| Error::InvalidArgument(format!("bad log record payload: {e}")))?;
        if u64::from(count) != seq_last - seq_first + 1 {
            return Err(Error::InvalidArgument(format!(
                "log record holds {count} operations but spans sequence numbers {seq_first}..={seq_last}"
            )));
        }
        let header = encode_header(seq_first, self.live.synced_bytes, payload);
        if let Err(e) = self.live.append(&header, payload) {
            return Err(self.fail(e));
        }
        let frame_bytes = (HEADER_BYTES + payload.len()) as u64;
        self.live.size_bytes += frame_bytes;
        self.live.seq_last = seq_last;
        self.seq_last = seq_last;
        self.bytes_written += frame_bytes;
        Ok(())
    }

    /// Ends a group: hands its bytes to the OS and, if `sync`, makes them
    /// durable. Returns Ok only once the group is persisted as asked.
    ///
    /// Then, if the live segment has grown past the size limit, seals it
    /// (fsync) and starts a new one. A failure there cannot undo the group,
    /// so it does not fail this call: it stops the log, and the next
    /// `append` reports it (see `failure`).
    ///
    /// On log objects, the group's object is uploaded before this returns
    /// (`commit_start`, `upload`, `complete` in one).
    pub fn commit(&mut self, sync: bool) -> Result<()> {
        self.check_healthy()?;
        if self.objects() {
            let pending = self.commit_start()?;
            let outcome = super::objects::upload(&*self.storage, &pending, self.epoch());
            self.complete(pending.info, outcome.as_ref().map(|_| ()));
            return outcome;
        }
        let persisted = if sync {
            self.live.sync()
        } else {
            self.live.flush()
        };
        if let Err(e) = persisted {
            return Err(self.fail(e));
        }
        self.live
            .acknowledge(self.live.size_bytes, self.live.seq_last);
        self.roll_if_due();
        Ok(())
    }

    /// Ends a group in a segment without waiting for its fsync: hands its
    /// bytes to the OS and returns what makes them durable
    /// (`PendingSync::sync`, from any thread), so the next group is
    /// written while this one syncs. The caller reports every group, in
    /// order, to `complete_group`, and acknowledges a write only once its
    /// group and every earlier one synced (docs/formats/commit-log.md,
    /// "Syncs in flight"). Rolls to a new segment, as `commit` does.
    pub fn commit_flush(&mut self) -> Result<PendingSync> {
        self.check_healthy()?;
        if self.objects() {
            return Err(Error::InvalidArgument(format!(
                "{}: commit_flush is for segments; log objects use commit_start",
                self.live.name
            )));
        }
        if let Err(e) = self.live.flush() {
            return Err(self.fail(e));
        }
        let info = self.live.info();
        let handle = match self.live.sync_handle() {
            Ok(h) => h,
            Err(e) => {
                tracing::warn!("commit log: syncing in place: {e}");
                None
            }
        };
        if handle.is_none() {
            // No handle for another thread: synced here, under the lock.
            if let Err(e) = self.live.sync() {
                return Err(self.fail(e));
            }
        }
        self.roll_if_due();
        Ok(PendingSync::new(info, handle))
    }

    /// Records the outcome of a group from `commit_start` or
    /// `commit_flush`; called for each in order. `acknowledged`: its
    /// writers are told of success (it and every earlier group are
    /// durable). A failure stops the log (`failure`).
    pub fn complete_group(
        &mut self,
        group: &PendingGroup,
        outcome: std::result::Result<(), &Error>,
        acknowledged: bool,
    ) {
        let info = group.info().clone();
        match group {
            PendingGroup::Object(_) => self.complete(info, outcome),
            PendingGroup::Sync(_) => match outcome {
                Ok(()) if acknowledged && info.number == self.live.number => {
                    debug_assert!(info.size_bytes <= self.live.size_bytes);
                    // Frames appended from now on carry the new watermark.
                    self.live.synced_bytes = self.live.synced_bytes.max(info.size_bytes);
                    self.live.acknowledge(info.size_bytes, info.seq_last);
                }
                // Sealed since: synced whole by the roll.
                Ok(()) => {}
                Err(e) => self.set_failure(e, &segment_file_name(info.number)),
            },
        }
    }

    /// Ends a group on log objects without waiting for its upload: takes
    /// the group's object out of the log and starts the next one, so the
    /// next group is written while this one uploads. The caller uploads it
    /// (`objects::upload`) and reports the outcome to `complete`, for
    /// each object in id order; it acknowledges a write only once its
    /// object and every earlier one are uploaded.
    pub fn commit_start(&mut self) -> Result<PendingObject> {
        self.check_healthy()?;
        if self.live.size_bytes == 0 {
            return Err(Error::InvalidArgument(format!(
                "{}: a log object ends a group of at least one record",
                self.live.name
            )));
        }
        let next =
            LiveSegment::create(&self.storage, &self.next_file_number, &mut self.opts.layout)?;
        let old = std::mem::replace(&mut self.live, next);
        let info = old.info();
        let LiveFile::Object(data) = old.file else {
            return Err(Error::InvalidArgument(format!(
                "{}: commit_start is for log objects; segments use commit",
                old.name
            )));
        };
        debug_assert_eq!(
            data.len() as u64,
            info.size_bytes + super::objects::HEADER_BYTES as u64
        );
        Ok(PendingObject {
            info,
            name: old.name,
            data,
        })
    }

    /// Records the outcome of a `commit_start` object's upload; called in
    /// id order. An uploaded object is kept until flushes pass it (and the
    /// newest uploaded one always). A failed one stops the log (`failure`);
    /// `repair` later makes sure its id holds this owner's object before
    /// any later write is acknowledged.
    pub fn complete(&mut self, info: SegmentInfo, outcome: std::result::Result<(), &Error>) {
        debug_assert!(self.sealed.last().is_none_or(|s| s.number < info.number));
        debug_assert!(info.number < self.live.number);
        match outcome {
            Ok(()) => {
                self.newest_uploaded = Some(info.number);
                self.sealed.push(info);
            }
            Err(e) => {
                self.set_failure(e, &super::objects::object_name(info.number));
                self.given_up.push(info.number);
                // Kept like the others: if the upload landed after all, it
                // is deleted once flushes pass its sequence numbers.
                self.sealed.push(info);
            }
        }
    }

    /// Makes every appended byte durable (the periodic sync mode's timer).
    pub fn sync(&mut self) -> Result<()> {
        self.check_healthy()?;
        if self.objects() {
            // Groups are uploaded as they commit: nothing is pending.
            return Ok(());
        }
        if let Err(e) = self.live.sync() {
            return Err(self.fail(e));
        }
        Ok(())
    }

    /// Makes the log writable again after a failure (a full disk, an
    /// unreachable store), if the storage now allows it; Ok at once if the
    /// log has not failed. Records the failure left unpersisted are given
    /// up (their writers were told of the failure), and the log goes on:
    /// - segments: the failed one is cut back to the bytes that were
    ///   acknowledged (so no damaged record is left in a segment that is
    ///   no longer the newest) and sealed, and a new segment starts;
    /// - objects: every id whose upload failed is made to hold an object
    ///   of this owner: the failed upload if it landed after all (its
    ///   records are replayed at the next open, in order), else an empty
    ///   one. Only then may a later write be acknowledged: every id an
    ///   owner acknowledges above must exist (the fencing argument in
    ///   docs/formats/object-store.md). An id found holding another
    ///   owner's object means this one is fenced.
    ///
    /// A failure here leaves the log failed; the next call starts over.
    pub fn repair(&mut self) -> Result<()> {
        if self.failure.is_none() {
            return Ok(());
        }
        if self.objects() {
            if self.live.size_bytes > 0 {
                // Records of a group that failed before its upload began.
                let next = LiveSegment::create(
                    &self.storage,
                    &self.next_file_number,
                    &mut self.opts.layout,
                )?;
                let old = std::mem::replace(&mut self.live, next);
                self.given_up.push(old.number);
                self.sealed.push(old.info());
            }
            while let Some(&id) = self.given_up.first() {
                super::objects::fill(&*self.storage, id, self.epoch())?;
                self.given_up.remove(0);
            }
        } else {
            let file =
                std::mem::replace(&mut self.live.file, LiveFile::Segment(Box::new(Abandoned)));
            if let LiveFile::Segment(f) = file {
                f.abandon();
            }
            // Cut to the groups whose writers may have been told of
            // success: records after them (a group whose sync failed, and
            // groups written while it was in flight) are never replayed.
            self.storage
                .truncate(&self.live.name, self.live.acknowledged_bytes)?;
            let next =
                LiveSegment::create(&self.storage, &self.next_file_number, &mut self.opts.layout)?;
            let mut old = std::mem::replace(&mut self.live, next);
            old.size_bytes = old.acknowledged_bytes;
            old.seq_last = old.acknowledged_seq_last;
            self.sealed.push(old.info());
        }
        tracing::info!(
            "commit log repaired after {}: continuing in {}",
            self.failure().unwrap_or(""),
            self.live.name
        );
        self.failure = None;
        Ok(())
    }

    /// The highest sequence number appended (failed groups included).
    pub fn seq_last(&self) -> SeqNo {
        self.seq_last
    }

    /// Whether the log is kept as objects.
    pub fn objects(&self) -> bool {
        matches!(self.opts.layout, LogLayout::Objects { .. })
    }

    /// The owner epoch stamped on log objects (0 for segments).
    fn epoch(&self) -> u64 {
        match self.opts.layout {
            LogLayout::Objects { epoch, .. } => epoch,
            LogLayout::Segments => 0,
        }
    }

    /// The sealed segments and then the live one, in number order. On log
    /// objects, objects still uploading are not among them.
    pub fn segments(&self) -> Vec<SegmentInfo> {
        let mut all = Vec::with_capacity(self.sealed.len() + 1);
        all.extend_from_slice(&self.sealed);
        all.push(self.live.info());
        all
    }

    /// Deletes the sealed segments whose every operation has been flushed
    /// by every tree (`seq_last <= flushed_seq`); returns their numbers.
    /// Never deletes the live segment. (`take_obsolete`, the deletion and,
    /// on failure, `restore`, in one.)
    pub fn remove_obsolete(&mut self, flushed_seq: SeqNo) -> Result<Vec<u64>> {
        let obsolete = self.take_obsolete(flushed_seq);
        match self.storage.remove_many(&self.names_of(&obsolete)) {
            Ok(()) => Ok(obsolete.iter().map(|s| s.number).collect()),
            Err(e) => {
                self.restore(obsolete);
                Err(e)
            }
        }
    }

    /// Takes the sealed segments whose every operation has been flushed by
    /// every tree (`seq_last <= flushed_seq`) off the log's list, for the
    /// caller to delete without holding up writers (`names_of`); if the
    /// deletion fails it gives them back (`restore`), so they are deleted
    /// later, still in order. Never the live segment.
    pub fn take_obsolete(&mut self, flushed_seq: SeqNo) -> Vec<SegmentInfo> {
        let objects = self.objects();
        // The newest uploaded log object stays, even when flushed: a new
        // owner puts its fence after the highest id it lists, which must
        // be at or above every id this owner uploaded
        // (docs/formats/object-store.md). Ids given up and not yet
        // repaired stay too: `repair` fills them.
        let newest = self.newest_uploaded.filter(|_| objects);
        let (obsolete, kept): (Vec<SegmentInfo>, Vec<SegmentInfo>) =
            std::mem::take(&mut self.sealed).into_iter().partition(|s| {
                s.seq_last <= flushed_seq
                    && Some(s.number) != newest
                    && !self.given_up.contains(&s.number)
            });
        self.sealed = kept;
        obsolete
    }

    /// The file or object names of `segments`.
    pub fn names_of(&self, segments: &[SegmentInfo]) -> Vec<String> {
        segments
            .iter()
            .map(|s| {
                if self.objects() {
                    super::objects::object_name(s.number)
                } else {
                    segment_file_name(s.number)
                }
            })
            .collect()
    }

    /// Gives back segments taken by `take_obsolete` whose deletion failed.
    pub fn restore(&mut self, segments: Vec<SegmentInfo>) {
        self.sealed.extend(segments);
        self.sealed.sort_by_key(|s| s.number);
        debug_assert!(self.sealed.windows(2).all(|w| w[0].number < w[1].number));
    }

    /// Total bytes (headers and payloads) appended by this process.
    pub fn bytes_written(&self) -> u64 {
        self.bytes_written
    }

    /// Number of the segment being appended to.
    pub fn live_segment_number(&self) -> u64 {
        self.live.number
    }

    /// Why the log stopped accepting records, if it did.
    pub fn failure(&self) -> Option<&str> {
        self.failure.as_ref().map(|(why, _)| why.as_str())
    }

    fn check_healthy(&self) -> Result<()> {
        match &self.failure {
            None => Ok(()),
            Some((_, e)) => Err(e.for_writers()),
        }
    }

    fn set_failure(&mut self, e: &Error, file: &str) {
        if self.failure.is_none() {
            let why = format!("{e} ({file})");
            let later = e
                .for_writers()
                .with_message(format!("commit log failed earlier: {why}"));
            self.failure = Some((why, later));
        }
    }

    /// Stops the log for good after an I/O failure.
    pub(super) fn fail(&mut self, e: Error) -> Error {
        let name = self.live.name.clone();
        self.set_failure(&e, &name);
        e
    }
}
