//! The commit log shared by every tree (docs/formats/commit-log.md).
//!
//! One record per write batch, framed and checksummed, appended to the
//! live segment `{number:06}.log`; segments roll at a size limit and are
//! deleted once every tree has flushed past them. Recovery replays every
//! segment in order, cuts a torn tail off the newest segment, and reports
//! any other damage as corruption.
//!
//! - `format`: frame encoding and decoding.
//! - `writer`: `CommitLog` (segments, group commit, rolling, deletion);
//!   `live`: the segment being written.
//! - `pending`: groups written and not yet durable (syncs or uploads in
//!   flight).
//! - `objects`: the log as one object per group (object stores).
//! - `prealloc`: segments zero-filled ahead of use; `roll`: sealing the
//!   live segment and starting the next.
//! - `recovery`: `recover` (replay, torn tail versus corruption).

pub(crate) mod format;
mod live;
pub mod objects;
mod pending;
pub mod prealloc;
pub(crate) mod recovery;
mod roll;
mod writer;

#[cfg(test)]
mod crash_tests;
#[cfg(test)]
mod tests;

pub use format::PAYLOAD_BYTES_MAX as RECORD_PAYLOAD_BYTES_MAX;
pub use pending::{PendingGroup, PendingSync};
pub use recovery::{recover, RecoveryReport};
pub use writer::{CommitLog, LogLayout, LogOptions, PendingObject, SegmentInfo};

/// Name of log segment `number`, e.g. `000012.log`.
pub fn segment_file_name(number: u64) -> String {
    format!("{number:06}.log")
}

/// The number of a log segment file name; `None` for any other file
/// (only the canonical spelling made by `segment_file_name` counts).
pub fn parse_segment_file_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(".log")?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let number = digits.parse().ok()?;
    (segment_file_name(number) == name).then_some(number)
}
