//! The commit log on a storage of whole objects: one object per group
//! commit, `wal/<id>`, ids consecutive, each made with create-if-absent and
//! stamped with its owner's epoch; and the fence a new owner puts after
//! the last one (docs/formats/object-store.md, "Log objects" and
//! "Takeover and fencing").
//!
//! Object: `magic u32 | format u8 | epoch u64 | id u64 | crc32c u32 |
//! frame*`, little-endian, the crc covering the 21 bytes before it; the
//! frames are `format.rs`'s, each with its own checksum. An object is
//! written whole, so any damage in it is corruption, never a torn tail.

use std::collections::BTreeSet;
use std::sync::Arc;

use super::format::decode_frame;
use super::recovery::{check_frame, RecoveryReport};
use super::writer::{PendingObject, SegmentInfo};
use crate::coding::{get_u32, get_u64};
use crate::error::{Error, Result};
use crate::key::SeqNo;
use crate::storage::{put_new, read_file, Storage, REMOVE_MANY_BATCH};

/// "SWAL" read as a little-endian u32.
pub const MAGIC: u32 = u32::from_le_bytes(*b"SWAL");
pub const FORMAT: u8 = 1;
pub const HEADER_BYTES: usize = 25;

const PREFIX: &str = "wal/";

/// Log objects fetched at once during replay.
const REPLAY_BATCH: usize = 64;

/// The object name of log object `id`.
pub fn object_name(id: u64) -> String {
    format!("{PREFIX}{id:020}")
}

/// The id of a log object name; `None` for any other name.
pub fn parse_object_name(name: &str) -> Option<u64> {
    let digits = name.strip_prefix(PREFIX)?;
    let id = digits.parse().ok()?;
    (object_name(id) == name).then_some(id)
}

pub fn encode_header(epoch: u64, id: u64) -> [u8; HEADER_BYTES] {
    let mut h = [0u8; HEADER_BYTES];
    h[..4].copy_from_slice(&MAGIC.to_le_bytes());
    h[4] = FORMAT;
    h[5..13].copy_from_slice(&epoch.to_le_bytes());
    h[13..21].copy_from_slice(&id.to_le_bytes());
    let crc = crate::checksum::crc32c(&h[..21]);
    h[21..].copy_from_slice(&crc.to_le_bytes());
    h
}

/// Checks a log object's header; returns its epoch.
pub(crate) fn decode_header(buf: &[u8], name: &str, id: u64) -> Result<u64> {
    let bad = |detail: String| Error::corruption(name, detail);
    if buf.len() < HEADER_BYTES {
        return Err(bad("shorter than a log object header".into()));
    }
    if get_u32(buf, 0) != Some(MAGIC) {
        return Err(bad("bad magic: not a log object".into()));
    }
    if get_u32(buf, 21) != Some(crate::checksum::crc32c(&buf[..21])) {
        return Err(bad("header checksum mismatch".into()));
    }
    if buf[4] != FORMAT {
        return Err(bad(format!("unknown log object format {}", buf[4])));
    }
    let found = get_u64(buf, 13).unwrap_or(0);
    if found != id {
        return Err(bad(format!("holds log object id {found}")));
    }
    Ok(get_u64(buf, 5).unwrap_or(0))
}

/// Uploads a group's log object (`CommitLog::commit_start`) with
/// create-if-absent, its unknown outcomes resolved (`put_new`). A name
/// already taken means a newer owner fenced this one: `Error::Fenced`.
pub fn upload(storage: &dyn Storage, object: &PendingObject, epoch: u64) -> Result<()> {
    if !put_new(storage, &object.name, &object.data)? {
        return Err(fenced(&object.name, epoch));
    }
    Ok(())
}

/// Makes id `id`, whose upload failed, hold an object of this owner (of
/// `epoch`): the failed upload if it landed after all, else an empty one.
/// Another owner's object there means this one is fenced.
pub fn fill(storage: &dyn Storage, id: u64, epoch: u64) -> Result<()> {
    let name = object_name(id);
    if put_new(storage, &name, &encode_header(epoch, id))? {
        return Ok(());
    }
    let data = read_file(storage, &name)?;
    if decode_header(&data, &name, id)? == epoch {
        tracing::info!("{name}, whose upload had failed, landed after all");
        return Ok(());
    }
    Err(fenced(&name, epoch))
}

fn fenced(name: &str, epoch: u64) -> Error {
    Error::Fenced(format!(
        "log object {name} was written by a newer owner (this one has epoch {epoch})"
    ))
}

/// What recovery over log objects found.
pub struct ObjectRecovery {
    pub report: RecoveryReport,
    /// The fence: the id this owner wrote after every earlier object.
    pub fence: u64,
}

/// Fences the log for a new owner with `epoch`, then replays it.
///
/// 1. Lists `wal/`: ids up to `h`.
/// 2. Creates `wal/<h+1>` empty with `epoch`, the fence; if that id is
///    taken (an upload of the old owner landed meanwhile), the next one.
/// 3. Fills every missing id between the lowest listed and the fence with
///    an empty object, so no upload of an old owner can land there later.
/// 4. Replays every object below the fence in id order: `apply(seq_first,
///    payload)` per record, as `recover` does for segments. Any damage is
///    corruption.
///
/// Objects above the fence stamped with an older epoch (uploads of an old
/// owner that had several in flight) were never acknowledged: they are
/// removed. One stamped with a newer epoch means a newer owner exists:
/// `Error::Fenced`.
pub fn recover(
    storage: &Arc<dyn Storage>,
    epoch: u64,
    apply: &mut dyn FnMut(SeqNo, &[u8]) -> Result<()>,
) -> Result<ObjectRecovery> {
    let mut ids: BTreeSet<u64> = list(&**storage)?;
    let mut fence = ids.last().map_or(1, |h| h + 1);
    loop {
        if put_new(
            &**storage,
            &object_name(fence),
            &encode_header(epoch, fence),
        )? {
            break;
        }
        ids.insert(fence);
        fence += 1;
    }
    if let Some(&lowest) = ids.first() {
        for id in lowest..fence {
            if !ids.contains(&id) {
                // Taken meanwhile: read like any other.
                put_new(&**storage, &object_name(id), &encode_header(epoch, id))?;
                ids.insert(id);
            }
        }
    }
    for id in list(&**storage)?.range(fence + 1..) {
        let name = object_name(*id);
        let data = read_file(&**storage, &name)?;
        let found = decode_header(&data, &name, *id)?;
        if found >= epoch {
            return Err(Error::Fenced(format!(
                "{name} has epoch {found}, not below this owner's {epoch}"
            )));
        }
        tracing::info!(
            "removing {name}: an upload of an older owner (epoch {found}) past the fence"
        );
        storage.remove(&name)?;
    }
    let mut report = RecoveryReport::default();
    // The lowest id still there, listed once an object turns out gone.
    let mut lowest_remaining = None;
    // Fetched a batch at a time (an object store fetches a batch at once),
    // replayed in id order.
    let below: Vec<u64> = ids.range(..fence).copied().collect();
    let mut progress = super::recovery::ReplayProgress::new(below.len());
    let fetched = below.chunks(REPLAY_BATCH).flat_map(|chunk| {
        let names: Vec<String> = chunk.iter().map(|&id| object_name(id)).collect();
        let data = storage.read_many(&names);
        chunk
            .iter()
            .copied()
            .zip(names)
            .zip(data)
            .collect::<Vec<_>>()
    });
    for ((id, name), data) in fetched {
        let data = match data {
            Ok(d) => d,
            Err(e)
                if e.is_not_found()
                    && deleted_as_flushed(&**storage, id, &mut lowest_remaining)? =>
            {
                // The old owner deleted it after a flush this owner's
                // manifest already holds (its edit came before the
                // takeover, or it would have failed).
                tracing::info!("{name} was removed by the old owner after a flush; skipped");
                continue;
            }
            Err(e) => return Err(e),
        };
        let found = decode_header(&data, &name, id)?;
        if found > epoch {
            return Err(Error::Fenced(format!(
                "{name} has epoch {found}, above this owner's {epoch}"
            )));
        }
        let mut seg = SegmentInfo {
            number: id,
            seq_last: 0,
            size_bytes: (data.len() - HEADER_BYTES) as u64,
        };
        let mut offset = HEADER_BYTES;
        while offset < data.len() {
            let frame = decode_frame(&data, offset).map_err(|why| {
                Error::corruption(&name, format!("damaged record at byte {offset}: {why}"))
            })?;
            let seq_last = check_frame(&frame, report.last_seq, &name)?;
            apply(frame.seq_first, frame.payload)?;
            report.records += 1;
            report.last_seq = seq_last;
            seg.seq_last = seq_last;
            offset = frame.end();
        }
        report.segments.push(seg);
        progress.segment_done(report.segments.len(), report.records);
    }
    report.segments.push(SegmentInfo {
        number: fence,
        seq_last: 0,
        size_bytes: 0,
    });
    Ok(ObjectRecovery { report, fence })
}

/// Whether log object `id`, listed but now gone, was deleted by the old
/// owner after a flush: an owner deletes log objects in id order, in bulk
/// batches of at most `REMOVE_MANY_BATCH` (in any order within one), so
/// such an id lies below the lowest remaining one plus a batch.
/// `lowest_remaining` keeps the last listing's lowest id, so a run of
/// deleted objects costs one listing, not one each; the store is listed
/// again only when `id` is not below that bound.
fn deleted_as_flushed(
    storage: &dyn Storage,
    id: u64,
    lowest_remaining: &mut Option<u64>,
) -> Result<bool> {
    let batch = REMOVE_MANY_BATCH as u64;
    if lowest_remaining.is_some_and(|lowest| id < lowest.saturating_add(batch)) {
        return Ok(true);
    }
    *lowest_remaining = list(storage)?.first().copied();
    Ok(lowest_remaining.is_some_and(|lowest| id < lowest.saturating_add(batch)))
}

fn list(storage: &dyn Storage) -> Result<BTreeSet<u64>> {
    Ok(storage
        .list_prefix(PREFIX)?
        .iter()
        .filter_map(|n| parse_object_name(n))
        .collect())
}
