//! Rolling the commit log: sealing the live segment once a group leaves
//! it full (or a zero-filled one is ready for it) and starting the next,
//! a prepared zero-filled file or a new one (docs/formats/commit-log.md,
//! "Segments" and "Preallocated segments").

use super::live::LiveSegment;
use super::writer::CommitLog;
use crate::error::Result;

impl CommitLog {
    /// After a group: seals the live segment if it is full (past the
    /// segment size, or past its zeros if preallocated; or a prepared one
    /// is ready for it) and starts the next. A failure there cannot undo
    /// the group: it stops the log, and the next `append` reports it.
    pub(super) fn roll_if_due(&mut self) {
        let mut size_bytes_max = self.opts.segment_size_bytes_max;
        if self.live.preallocated() {
            size_bytes_max = size_bytes_max.min(self.live.zeroed_bytes);
        }
        let full = self.live.size_bytes > size_bytes_max;
        let prepared = self.prepare_next(full);
        if full || prepared.is_some() {
            if let Err(e) = self.roll(prepared, full) {
                let e = self.fail(e);
                tracing::error!("commit log stopped: cannot start a new segment: {e}");
            }
        }
    }

    /// With preallocation: starts preparing the next segment's zeros once
    /// the live segment is half full (half its zeros if preallocated; if
    /// not, `PREPARE_AFTER_BYTES` or half the segment size), and returns
    /// the prepared file and its size when the live segment should move to
    /// it: when it is `full`, or as soon as one is ready if it is not
    /// preallocated itself (as after a roll that found none ready yet).
    fn prepare_next(&mut self, full: bool) -> Option<(String, u64)> {
        let preparer = self.preparer.as_mut()?;
        let due = if self.live.preallocated() {
            self.live.zeroed_bytes / 2
        } else {
            (self.opts.segment_size_bytes_max / 2).min(super::prealloc::PREPARE_AFTER_BYTES)
        };
        if self.live.size_bytes >= due {
            preparer.start(&self.storage, &self.next_file_number, self.live.number);
        }
        if full || !self.live.preallocated() {
            preparer.take_ready(self.live.number)
        } else {
            None
        }
    }

    /// Seals the live segment (synced, and cut to its records if it was
    /// preallocated) and starts the next: `prepared` if given, else a new
    /// file. A segment that is not `full` is left for a prepared one only;
    /// if that fails, writing goes on in the live segment.
    fn roll(&mut self, prepared: Option<(String, u64)>, full: bool) -> Result<()> {
        self.live.sync()?;
        if self.live.preallocated() {
            // Sealed segments end at their last record (recovery reads
            // only the newest one's tail as unwritten).
            self.storage
                .truncate(&self.live.name, self.live.size_bytes)?;
            self.live.zeroed_bytes = 0;
        }
        let next = match prepared {
            Some((p, zeroed_bytes)) => {
                match LiveSegment::from_prepared(
                    &self.storage,
                    &self.next_file_number,
                    &p,
                    zeroed_bytes,
                ) {
                    Ok(next) => next,
                    Err(e) => {
                        tracing::warn!("commit log: cannot use prepared segment {p}: {e}");
                        let _ = self.storage.remove(&p);
                        if let Some(preparer) = &mut self.preparer {
                            preparer.failed_during(self.live.number);
                        }
                        if !full {
                            return Ok(());
                        }
                        LiveSegment::create(
                            &self.storage,
                            &self.next_file_number,
                            &mut self.opts.layout,
                        )?
                    }
                }
            }
            None => {
                LiveSegment::create(&self.storage, &self.next_file_number, &mut self.opts.layout)?
            }
        };
        let old = std::mem::replace(&mut self.live, next);
        self.sealed.push(old.info());
        Ok(())
    }
}
