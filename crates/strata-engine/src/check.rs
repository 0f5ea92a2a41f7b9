//! Offline verification of a stopped engine's storage (`strata check`):
//! the manifest (every frame's checksum and every edit's consistency),
//! every SSTable the manifest names (every block's checksum, decoding, key
//! order, agreement with the index and properties, its size), and every
//! commit-log segment or log object (every record's checksum and
//! sequence numbers). It writes nothing: a torn tail of the newest log
//! segment, which the next open cuts off, is reported as a note, not
//! damage.
//!
//! Damage is reported per file (`Damage`), with the offset where the
//! format allows; the check goes on to the other files. Errors reading the
//! storage itself (I/O, an unreachable store) end it.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::key::SeqNo;
use crate::log::format::{decode_frame, find_synced_frame_after};
use crate::log::recovery::check_frame;
use crate::log::{objects as log_objects, parse_segment_file_name, segment_file_name};
use crate::manifest::{read_stored, table_file_name};
use crate::sst::Table;
use crate::storage::{read_file, Storage};

/// How often progress is reported.
const PROGRESS_EVERY: Duration = Duration::from_secs(2);

/// A file that fails a check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Damage {
    pub file: String,
    /// What is wrong, and where (a byte offset or block) when known.
    pub detail: String,
}

/// What a check found.
#[derive(Clone, Debug, Default)]
pub struct CheckReport {
    pub damage: Vec<Damage>,
    /// Findings that are not damage (a torn log tail, files the manifest
    /// does not name).
    pub notes: Vec<String>,
    pub tables_checked: usize,
    pub table_bytes_checked: u64,
    pub log_files_checked: usize,
    pub log_records_checked: u64,
}

impl CheckReport {
    pub fn is_clean(&self) -> bool {
        self.damage.is_empty()
    }

    /// Records `e` as damage if it is corruption; other errors end the
    /// check.
    fn damaged(&mut self, file: &str, e: Error) -> Result<()> {
        match e {
            Error::Corruption { file: f, detail } => {
                let file = if f.is_empty() { file.to_string() } else { f };
                self.damage.push(Damage { file, detail });
                Ok(())
            }
            e if e.is_not_found() => {
                self.damage.push(Damage {
                    file: file.to_string(),
                    detail: "missing".to_string(),
                });
                Ok(())
            }
            e => Err(e),
        }
    }
}

/// Progress of a long check, reported every few seconds.
#[derive(Clone, Debug)]
pub struct CheckProgress {
    pub tables_done: usize,
    pub tables_total: usize,
    pub bytes_done: u64,
    pub bytes_total: u64,
}

/// Checks every file of `storage` (see the module docs), reporting
/// progress to `progress` every few seconds.
pub fn check(
    storage: &dyn Storage,
    progress: &mut dyn FnMut(&CheckProgress),
) -> Result<CheckReport> {
    let mut report = CheckReport::default();
    let names: BTreeSet<String> = storage.list()?.into_iter().collect();
    // The tables the manifest names, with their recorded sizes.
    let mut live: BTreeMap<u64, u64> = BTreeMap::new();
    let manifest_ok = match read_stored(storage) {
        Ok(state) => {
            for t in &state.tablets {
                for f in t.levels.iter().flatten() {
                    live.insert(f.number, f.size_bytes);
                }
            }
            true
        }
        Err(e) => {
            report.damaged("manifest", e)?;
            false
        }
    };
    let on_disk: BTreeSet<u64> = names
        .iter()
        .filter_map(|n| n.strip_suffix(".sst")?.parse().ok())
        .collect();
    if !manifest_ok {
        // Without a manifest, check every table there is.
        live = on_disk.iter().map(|&n| (n, 0)).collect();
    }
    let unnamed: Vec<u64> = on_disk
        .difference(&live.keys().copied().collect())
        .copied()
        .collect();
    if !unnamed.is_empty() {
        report.notes.push(format!(
            "{} tables not named by the manifest (left by a crash; the next open removes them): {}",
            unnamed.len(),
            unnamed
                .iter()
                .map(|&n| table_file_name(n))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    check_tables(storage, &live, &mut report, progress)?;
    check_log(storage, &names, &mut report)?;
    Ok(report)
}

fn check_tables(
    storage: &dyn Storage,
    live: &BTreeMap<u64, u64>,
    report: &mut CheckReport,
    progress: &mut dyn FnMut(&CheckProgress),
) -> Result<()> {
    let mut p = CheckProgress {
        tables_done: 0,
        tables_total: live.len(),
        bytes_done: 0,
        bytes_total: live.values().sum(),
    };
    let mut last_report = Instant::now();
    for (&number, &recorded) in live {
        let name = table_file_name(number);
        let checked = storage.open(&name).and_then(|file| {
            let len = file.len();
            if recorded != 0 && len != recorded {
                return Err(Error::corruption(
                    &name,
                    format!("{len} bytes, the manifest says {recorded}"),
                ));
            }
            Table::open(file, number, name.clone(), None)?.verify_checksums()?;
            Ok(len)
        });
        match checked {
            Ok(len) => {
                report.tables_checked += 1;
                report.table_bytes_checked += len;
            }
            Err(e) => report.damaged(&name, e)?,
        }
        p.tables_done += 1;
        p.bytes_done += recorded;
        if last_report.elapsed() >= PROGRESS_EVERY {
            progress(&p);
            last_report = Instant::now();
        }
    }
    Ok(())
}

fn check_log(
    storage: &dyn Storage,
    names: &BTreeSet<String>,
    report: &mut CheckReport,
) -> Result<()> {
    let mut segments: Vec<u64> = names
        .iter()
        .filter_map(|n| parse_segment_file_name(n))
        .collect();
    segments.sort_unstable();
    let mut last_seq: SeqNo = 0;
    for (i, &number) in segments.iter().enumerate() {
        let name = segment_file_name(number);
        let newest = i + 1 == segments.len();
        match read_file(storage, &name) {
            Ok(data) => {
                if let Err(e) = scan_records(&data, 0, &name, newest, &mut last_seq, report) {
                    report.damaged(&name, e)?;
                }
            }
            Err(e) => report.damaged(&name, e)?,
        }
        report.log_files_checked += 1;
    }
    let mut objects: Vec<u64> = names
        .iter()
        .filter_map(|n| log_objects::parse_object_name(n))
        .collect();
    objects.sort_unstable();
    for id in objects {
        let name = log_objects::object_name(id);
        let scanned = read_file(storage, &name).and_then(|data| {
            log_objects::decode_header(&data, &name, id)?;
            scan_records(
                &data,
                log_objects::HEADER_BYTES,
                &name,
                false,
                &mut last_seq,
                report,
            )
        });
        if let Err(e) = scanned {
            report.damaged(&name, e)?;
        }
        report.log_files_checked += 1;
    }
    Ok(())
}

/// Reads every record of one segment or object from byte `start`. Only
/// the newest segment may end in a torn write (a note); anywhere else a
/// record that does not decode is damage.
fn scan_records(
    data: &[u8],
    start: usize,
    name: &str,
    newest: bool,
    last_seq: &mut SeqNo,
    report: &mut CheckReport,
) -> Result<()> {
    let mut offset = start;
    while offset < data.len() {
        match decode_frame(data, offset) {
            Ok(frame) => {
                *last_seq = check_frame(&frame, *last_seq, name)?;
                report.log_records_checked += 1;
                offset = frame.end();
            }
            Err(why) if !newest => {
                return Err(Error::corruption(
                    name,
                    format!("damaged record at byte {offset}: {why}"),
                ))
            }
            Err(why) => {
                if let Some(proof) = find_synced_frame_after(data, offset) {
                    return Err(Error::corruption(
                        name,
                        format!(
                            "damaged record at byte {offset}: {why}; the record at byte {} \
                             shows the segment was synced past it",
                            proof.offset
                        ),
                    ));
                }
                if !data[offset..].iter().all(|&b| b == 0) {
                    report.notes.push(format!(
                        "{name}: torn tail at byte {offset} of {} ({why}): a write cut by a crash, \
                         never acknowledged; the next open cuts it off",
                        data.len()
                    ));
                }
                return Ok(());
            }
        }
    }
    Ok(())
}
