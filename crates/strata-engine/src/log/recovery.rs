//! Recovery: replays every segment in order, truncates the torn tail of the
//! newest one, and reports damage anywhere else as corruption
//! (docs/formats/commit-log.md, "Crash analysis").

use super::format::{decode_frame, find_synced_frame_after, Frame};
use super::writer::SegmentInfo;
use super::{parse_segment_file_name, segment_file_name};
use crate::batch::validate_payload;
use crate::error::{Error, Result};
use crate::key::{SeqNo, SEQ_MAX};
use crate::storage::{read_file, Storage};
use std::time::{Duration, Instant};

/// How often a long replay reports how far it is.
const PROGRESS_EVERY: Duration = Duration::from_secs(5);

/// Reports a replay's progress every few seconds: a replay of a large log
/// (minutes on a slow disk or store) says how far it is.
pub(crate) struct ReplayProgress {
    started: Instant,
    last: Instant,
    every: Duration,
    segments_total: usize,
}

impl ReplayProgress {
    pub(crate) fn new(segments_total: usize) -> ReplayProgress {
        ReplayProgress::every(segments_total, PROGRESS_EVERY)
    }

    fn every(segments_total: usize, every: Duration) -> ReplayProgress {
        let now = Instant::now();
        ReplayProgress {
            started: now,
            last: now,
            every,
            segments_total,
        }
    }

    /// `done` segments of the total are replayed, holding `records`: logs
    /// a line if the last was long enough ago.
    pub(crate) fn segment_done(&mut self, done: usize, records: u64) {
        if let Some(line) = self.line(done, records) {
            tracing::info!("{line}");
        }
    }

    /// The line to log now, if any.
    fn line(&mut self, done: usize, records: u64) -> Option<String> {
        if self.last.elapsed() < self.every {
            return None;
        }
        self.last = Instant::now();
        let pct = (done * 100).checked_div(self.segments_total).unwrap_or(100);
        Some(format!(
            "commit log replay: {done} of {} segments ({pct}%), {records} records, {:.0?} so far",
            self.segments_total,
            self.started.elapsed()
        ))
    }
}

/// What recovery found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Every segment, in number order, with its length after truncation.
    pub segments: Vec<SegmentInfo>,
    /// Records replayed.
    pub records: u64,
    /// Highest sequence number replayed; 0 if none.
    pub last_seq: SeqNo,
    /// The file and offset where a torn tail was cut off, if one was.
    pub truncated: Option<(String, u64)>,
}

/// Replays the log: reads every `{number:06}.log` segment in `storage` in
/// number order and calls `apply(seq_first, payload)` for every record, in
/// order. A damaged tail of the newest segment that was never synced is a
/// torn write: it is cut off (durably) and recovery stops there. Any other
/// damage, or sequence numbers that do not strictly increase, is
/// `Error::Corruption` naming the file and offset. Every payload handed to
/// `apply` is a well-formed write-batch payload (checked with
/// `batch::validate_payload`). Errors from `apply` are returned as they are.
///
/// On success the newest segment is durable as recovered (it is fsynced),
/// so records replayed now cannot be lost to a later power loss once new
/// records have been written after them.
pub fn recover(
    storage: &dyn Storage,
    apply: &mut dyn FnMut(SeqNo, &[u8]) -> Result<()>,
) -> Result<RecoveryReport> {
    let mut numbers: Vec<u64> = storage
        .list()?
        .iter()
        .filter_map(|name| parse_segment_file_name(name))
        .collect();
    numbers.sort_unstable();
    let mut report = RecoveryReport::default();
    let mut progress = ReplayProgress::new(numbers.len());
    for (i, &number) in numbers.iter().enumerate() {
        let newest = i + 1 == numbers.len();
        let name = segment_file_name(number);
        let data = read_file(storage, &name)?;
        let mut seg = SegmentInfo {
            number,
            seq_last: 0,
            size_bytes: data.len() as u64,
        };
        let mut offset = 0;
        while offset < data.len() {
            match decode_frame(&data, offset) {
                Ok(frame) => {
                    let seq_last = check_frame(&frame, report.last_seq, &name)?;
                    apply(frame.seq_first, frame.payload)?;
                    report.records += 1;
                    report.last_seq = seq_last;
                    seg.seq_last = seq_last;
                    offset = frame.end();
                }
                Err(why) if !newest => {
                    return Err(Error::corruption(
                        &name,
                        format!(
                            "damaged record at byte {offset}: {why} \
                             (only the newest segment can have a torn tail)"
                        ),
                    ));
                }
                Err(why) => {
                    if let Some(proof) = find_synced_frame_after(&data, offset) {
                        return Err(Error::corruption(
                            &name,
                            format!(
                                "damaged record at byte {offset}: {why}; the record at byte {} \
                                 shows the segment was synced through byte {}, so this is not a torn write",
                                proof.offset, proof.synced_watermark
                            ),
                        ));
                    }
                    if data[offset..].iter().all(|&b| b == 0) {
                        tracing::info!(
                            "commit log: {name} ends at byte {offset}; cutting its {} unwritten \
                             (zero-filled) bytes",
                            data.len() - offset
                        );
                    } else {
                        tracing::warn!(
                            "commit log: cutting torn tail of {name} at byte {offset} of {}: {why}",
                            data.len()
                        );
                    }
                    storage.truncate(&name, offset as u64)?;
                    seg.size_bytes = offset as u64;
                    report.truncated = Some((name.clone(), offset as u64));
                    break;
                }
            }
        }
        if newest && report.truncated.is_none() && !data.is_empty() {
            // Bytes a killed process had handed to the OS may not be durable
            // yet; make them so before anything is written after them.
            // (`truncate` fsyncs the file.)
            storage.truncate(&name, data.len() as u64)?;
        }
        report.segments.push(seg);
        progress.segment_done(i + 1, report.records);
    }
    Ok(report)
}

/// Checks a frame that passed its checksum; returns its last sequence
/// number. A failure here cannot be a torn write, so it is corruption.
pub(crate) fn check_frame(frame: &Frame<'_>, prev_seq: SeqNo, name: &str) -> Result<SeqNo> {
    let at = frame.offset;
    if frame.synced_watermark > at as u64 {
        return Err(Error::corruption(
            name,
            format!(
                "record at byte {at} claims the segment was synced through byte {}, past itself",
                frame.synced_watermark
            ),
        ));
    }
    let count = validate_payload(frame.payload, name).map_err(|e| match e {
        Error::Corruption { detail, .. } => {
            Error::corruption(name, format!("record at byte {at}: {detail}"))
        }
        other => other,
    })?;
    let seq_last = u64::from(count)
        .checked_sub(1)
        .and_then(|n| frame.seq_first.checked_add(n))
        .filter(|&s| s <= SEQ_MAX);
    let Some(seq_last) = seq_last else {
        return Err(Error::corruption(
            name,
            format!(
                "record at byte {at} has {count} operations from sequence number {}",
                frame.seq_first
            ),
        ));
    };
    if frame.seq_first <= prev_seq {
        return Err(Error::corruption(
            name,
            format!(
                "record at byte {at} starts at sequence number {}, not after {prev_seq}",
                frame.seq_first
            ),
        ));
    }
    Ok(seq_last)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_replay_reports_segments_done_as_a_percentage() {
        let mut quiet = ReplayProgress::every(4, Duration::from_secs(3600));
        assert!(quiet.line(1, 10).is_none());

        let mut p = ReplayProgress::every(4, Duration::ZERO);
        let line = p.line(2, 1234).expect("a line at a zero interval");
        assert!(
            line.starts_with("commit log replay: 2 of 4 segments (50%), 1234 records, "),
            "{line}"
        );
        let mut empty = ReplayProgress::every(0, Duration::ZERO);
        assert!(empty.line(0, 0).unwrap().contains("(100%)"));
    }
}
