//! Writer and recovery tests; crash and corruption sweeps are in
//! crash_tests.rs.

use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use super::*;
use crate::batch::{decode_payload, WriteBatch};
use crate::error::{Error, Result};
use crate::key::SeqNo;
use crate::storage::{FaultOp, FaultStorage, MemStorage, Storage};

/// A record as written or replayed: (seq_first, payload).
pub(super) type Record = (SeqNo, Vec<u8>);

/// A deterministic batch of 1 to 3 operations over two trees.
pub(super) fn batch_for(i: u64) -> WriteBatch {
    let mut b = WriteBatch::new();
    for j in 0..=(i % 3) {
        let key = format!("key-{i}-{j}");
        match (i + j) % 4 {
            0 => b.delete((j % 2) as u32, key.as_bytes()),
            1 => b.merge(1, key.as_bytes(), b"+1"),
            _ => b.put(
                (i % 2) as u32,
                key.as_bytes(),
                format!("value-{i}").as_bytes(),
            ),
        }
    }
    b
}

/// A commit log plus what was written to it.
pub(super) struct Harness {
    pub log: CommitLog,
    pub next_seq: SeqNo,
    pub written: Vec<Record>,
}

impl Harness {
    /// A new log writing into zero-filled segments once it can.
    pub fn preallocated(storage: Arc<dyn Storage>, segment_size_bytes_max: u64) -> Harness {
        let opts = LogOptions {
            segment_size_bytes_max,
            preallocate: true,
            ..LogOptions::default()
        };
        Harness {
            log: CommitLog::open(storage, Arc::new(AtomicU64::new(1)), opts, Vec::new()).unwrap(),
            next_seq: 1,
            written: Vec::new(),
        }
    }

    pub fn new(storage: Arc<dyn Storage>, segment_size_bytes_max: u64) -> Harness {
        Harness::reopen(
            storage,
            segment_size_bytes_max,
            Vec::new(),
            Vec::new(),
            1,
            1,
        )
    }

    pub fn reopen(
        storage: Arc<dyn Storage>,
        segment_size_bytes_max: u64,
        sealed: Vec<SegmentInfo>,
        written: Vec<Record>,
        next_seq: SeqNo,
        next_file_number: u64,
    ) -> Harness {
        let opts = LogOptions {
            segment_size_bytes_max,
            ..LogOptions::default()
        };
        let counter = Arc::new(AtomicU64::new(next_file_number));
        Harness {
            log: CommitLog::open(storage, counter, opts, sealed).unwrap(),
            next_seq,
            written,
        }
    }

    /// Appends record `i` (not yet committed).
    pub fn append(&mut self, i: u64) -> Result<()> {
        let b = batch_for(i);
        let first = self.next_seq;
        let last = first + b.len() as u64 - 1;
        self.log.append(first, last, b.payload())?;
        self.next_seq = last + 1;
        self.written.push((first, b.payload().to_vec()));
        Ok(())
    }
}

/// Recovers every record, checking that each payload decodes.
pub(super) fn recover_records(s: &dyn Storage) -> Result<(RecoveryReport, Vec<Record>)> {
    let mut got = Vec::new();
    let report = recover(s, &mut |seq, payload| {
        decode_payload(payload, "test")?;
        got.push((seq, payload.to_vec()));
        Ok(())
    })?;
    assert_eq!(report.records, got.len() as u64);
    Ok((report, got))
}

#[test]
fn segment_names() {
    assert_eq!(segment_file_name(12), "000012.log");
    assert_eq!(segment_file_name(12_345_678), "12345678.log");
    assert_eq!(parse_segment_file_name("000012.log"), Some(12));
    assert_eq!(parse_segment_file_name("12345678.log"), Some(12_345_678));
    for other in [
        "12.log",
        "000012.sst",
        "x00012.log",
        ".log",
        "+00012.log",
        "000012.log.tmp",
    ] {
        assert_eq!(parse_segment_file_name(other), None, "{other}");
    }
}

#[test]
fn write_and_recover_across_segments() {
    let mem = MemStorage::new();
    let mut h = Harness::new(mem.clone(), 300);
    let mut i = 0;
    for group in 0..60u64 {
        for _ in 0..=(group % 4) {
            h.append(i).unwrap();
            i += 1;
        }
        h.log.commit(group % 2 == 0).unwrap();
    }
    let segments = h.log.segments();
    assert!(segments.len() > 5, "{segments:?}");
    assert!(segments.windows(2).all(|w| w[0].number < w[1].number));
    assert!(segments.windows(2).all(|w| w[0].seq_last < w[1].seq_last));
    assert_eq!(segments.last().unwrap().number, h.log.live_segment_number());
    let total: u64 = segments.iter().map(|s| s.size_bytes).sum();
    assert_eq!(total, h.log.bytes_written());

    let (report, got) = recover_records(&*mem).unwrap();
    assert_eq!(got, h.written);
    assert_eq!(report.segments, segments);
    assert_eq!(report.last_seq, h.next_seq - 1);
    assert_eq!(report.truncated, None);

    // A new log continues after the recovered segments.
    let written = h.written.clone();
    drop(h);
    let mut h = Harness::reopen(
        mem.clone(),
        300,
        report.segments,
        written,
        report.last_seq + 1,
        100,
    );
    assert_eq!(h.log.live_segment_number(), 100);
    h.append(1000).unwrap();
    h.append(1001).unwrap();
    h.log.commit(true).unwrap();
    assert_eq!(h.log.segments().len(), segments.len() + 1);
    let (_, got) = recover_records(&*mem).unwrap();
    assert_eq!(got, h.written);
}

#[test]
fn remove_obsolete_keeps_live_and_unflushed() {
    let mem = MemStorage::new();
    let mut h = Harness::new(mem.clone(), 200);
    for i in 0..40 {
        h.append(i).unwrap();
        h.log.commit(false).unwrap();
    }
    let before = h.log.segments();
    assert!(before.len() > 3);
    let flushed = before[2].seq_last;
    let removed = h.log.remove_obsolete(flushed).unwrap();
    assert_eq!(
        removed,
        vec![before[0].number, before[1].number, before[2].number]
    );
    assert_eq!(h.log.segments(), before[3..].to_vec());
    for n in &removed {
        assert!(!mem.exists(&segment_file_name(*n)).unwrap());
    }
    // Recovery sees the rest, still in order.
    let (_, got) = recover_records(&*mem).unwrap();
    assert_eq!(got.first().unwrap().0, flushed + 1);
    assert_eq!(got.last(), h.written.last());
    // Everything flushed: every sealed segment goes, never the live one.
    let live = h.log.live_segment_number();
    let removed = h.log.remove_obsolete(SeqNo::MAX).unwrap();
    assert_eq!(removed.len(), before.len() - 4);
    assert_eq!(h.log.segments().len(), 1);
    assert_eq!(h.log.segments()[0].number, live);
    assert!(mem.exists(&segment_file_name(live)).unwrap());
    assert!(h.log.remove_obsolete(SeqNo::MAX).unwrap().is_empty());
}

#[test]
fn bad_appends_are_refused_without_stopping_the_log() {
    let mem = MemStorage::new();
    let mut h = Harness::new(mem.clone(), 1 << 20);
    h.append(0).unwrap();
    let b = batch_for(3); // one operation
    let e = h.log.append(1, 1, b.payload()).unwrap_err();
    assert!(matches!(e, Error::InvalidArgument(_)), "{e}");
    let e = h
        .log
        .append(h.next_seq, h.next_seq + 1, b.payload())
        .unwrap_err();
    assert!(
        matches!(e, Error::InvalidArgument(_)),
        "count mismatch: {e}"
    );
    let e = h.log.append(h.next_seq, h.next_seq, &[]).unwrap_err();
    assert!(matches!(e, Error::InvalidArgument(_)), "empty payload: {e}");
    assert!(h.log.failure().is_none());
    h.append(1).unwrap();
    h.log.commit(true).unwrap();
    assert_eq!(recover_records(&*mem).unwrap().1, h.written);
}

#[test]
fn open_refuses_a_file_number_in_use() {
    let mem = MemStorage::new();
    mem.create(&segment_file_name(7)).unwrap();
    let counter = Arc::new(AtomicU64::new(7));
    let r = CommitLog::open(mem.clone(), counter, LogOptions::default(), Vec::new());
    assert!(matches!(r, Err(Error::InvalidArgument(_))));
}

#[test]
fn failed_sync_stops_the_log() {
    let mem = MemStorage::new();
    let faults = FaultStorage::new(mem.clone());
    let mut h = Harness::new(faults.clone(), 1 << 20);
    h.append(0).unwrap();
    h.log.commit(true).unwrap();
    faults.fail_after(0, FaultOp::SYNC);
    h.append(1).unwrap();
    assert!(h.log.commit(true).is_err());
    faults.heal();
    assert!(h.log.failure().is_some());
    // Refused with the failure's class (an I/O error: retried).
    let refused = h
        .log
        .append(h.next_seq, h.next_seq, batch_for(3).payload())
        .unwrap_err();
    assert!(matches!(refused, Error::Unavailable(_)), "{refused}");
    assert!(refused.to_string().contains("commit log failed earlier"));
    assert!(h.log.commit(false).is_err());
    assert!(h.log.sync().is_err());
    // The acknowledged record survives.
    let (_, got) = recover_records(&*mem.crash_copy(crate::storage::TornWrite::None)).unwrap();
    assert_eq!(got, h.written[..1].to_vec());
}

#[test]
fn failed_write_mid_frame_leaves_a_torn_tail_and_stops_the_log() {
    let mem = MemStorage::new();
    let faults = FaultStorage::new(mem.clone());
    let mut h = Harness::new(faults.clone(), 1 << 20);
    h.append(0).unwrap();
    h.log.commit(true).unwrap();
    faults.fail_after(1, FaultOp::WRITE); // the header goes out, the payload fails
    assert!(h.append(1).is_err());
    faults.heal();
    assert!(h.append(2).is_err(), "no record may follow the hole");
    assert!(h.log.commit(true).is_err());
    // After a kill -9 the half frame is a torn tail.
    let killed = mem.process_crash_copy();
    let (report, got) = recover_records(&*killed).unwrap();
    assert_eq!(got, h.written);
    let (name, at) = report.truncated.unwrap();
    assert_eq!(
        (name, at),
        (segment_file_name(1), report.segments[0].size_bytes)
    );
    assert_eq!(recover_records(&*killed).unwrap().0.truncated, None);
}

#[test]
fn failed_roll_keeps_the_group_and_stops_the_log() {
    let mem = MemStorage::new();
    let faults = FaultStorage::new(mem.clone());
    let mut h = Harness::new(faults.clone(), 10);
    faults.fail_after(0, FaultOp::CREATE);
    h.append(0).unwrap();
    h.log.commit(true).unwrap(); // the group is durable; the roll failed
    faults.heal();
    assert!(h.log.failure().is_some());
    assert!(h.append(1).is_err());
    let (_, got) = recover_records(&*mem.crash_copy(crate::storage::TornWrite::None)).unwrap();
    assert_eq!(got, h.written[..1].to_vec());
}

#[test]
fn periodic_sync_makes_records_durable() {
    let mem = MemStorage::new();
    let mut h = Harness::new(mem.clone(), 1 << 20);
    h.append(0).unwrap();
    h.append(1).unwrap();
    h.log.commit(false).unwrap();
    let lost = mem.crash_copy(crate::storage::TornWrite::None);
    assert!(recover_records(&*lost).unwrap().1.is_empty());
    h.log.sync().unwrap();
    h.log.sync().unwrap(); // nothing left to sync
    let kept = mem.crash_copy(crate::storage::TornWrite::None);
    assert_eq!(recover_records(&*kept).unwrap().1, h.written);
}

#[test]
fn recovery_rejects_sequence_numbers_that_go_back() {
    let mem = MemStorage::new();
    let mut a = Harness::new(mem.clone(), 1 << 20);
    for i in 0..5 {
        a.append(i).unwrap();
    }
    a.log.commit(true).unwrap();
    // A second log (a buggy engine) reuses sequence numbers in a later segment.
    let mut b = Harness::reopen(mem.clone(), 1 << 20, Vec::new(), Vec::new(), 3, 10);
    b.append(7).unwrap();
    b.log.commit(true).unwrap();
    let e = recover_records(&*mem).unwrap_err();
    assert!(e.is_corruption(), "{e}");
    assert!(e.to_string().contains("000010.log"), "{e}");
}

#[test]
fn recovery_handles_empty_and_foreign_files() {
    let mem = MemStorage::new();
    let report = recover_records(&*mem).unwrap().0;
    assert_eq!(report, RecoveryReport::default());
    mem.create("000003.sst").unwrap();
    mem.create("000004.log").unwrap();
    mem.create("000005.log").unwrap();
    let report = recover_records(&*mem).unwrap().0;
    assert_eq!(report.segments.len(), 2);
    assert_eq!(report.records, 0);
    // Junk in a segment that is not the newest is corruption.
    let mut f = mem.create("000004.log").unwrap();
    f.append(b"junk").unwrap();
    let e = recover_records(&*mem).unwrap_err();
    assert!(
        e.is_corruption() && e.to_string().contains("000004.log"),
        "{e}"
    );
    // In the newest segment it is a torn tail.
    mem.remove("000005.log").unwrap();
    let report = recover_records(&*mem).unwrap().0;
    assert_eq!(report.truncated, Some(("000004.log".to_string(), 0)));
}

#[test]
fn apply_errors_are_returned() {
    let mem = MemStorage::new();
    let mut h = Harness::new(mem.clone(), 1 << 20);
    h.append(0).unwrap();
    h.log.commit(true).unwrap();
    let r = recover(&*mem, &mut |_, _| {
        Err(Error::InvalidArgument("stop".into()))
    });
    assert!(matches!(r, Err(Error::InvalidArgument(_))));
}

#[test]
fn well_framed_nonsense_is_corruption_even_at_the_tail() {
    use crate::storage::{read_file, write_file_durably};
    let mem = MemStorage::new();
    let mut h = Harness::new(mem.clone(), 1 << 20);
    h.append(0).unwrap();
    h.log.commit(true).unwrap();
    let name = segment_file_name(1);
    let good = read_file(&*mem, &name).unwrap();
    let at = good.len();
    let bad_kind = [1u8, 9, 0, 0];
    let valid = batch_for(3);
    let cases: [(&str, &[u8], u64); 3] = [
        ("unknown operation kind", &bad_kind, 0),
        ("synced through", valid.payload(), at as u64 + 1),
        ("0 operations", &[0], 0),
    ];
    for (want, payload, watermark) in cases {
        let mut data = good.clone();
        data.extend_from_slice(&format::encode_header(100, watermark, payload));
        data.extend_from_slice(payload);
        write_file_durably(&*mem, &name, &data).unwrap();
        let e = recover_records(&*mem).unwrap_err();
        let msg = e.to_string();
        assert!(e.is_corruption(), "{msg}");
        assert!(
            msg.contains(&name) && msg.contains(&format!("byte {at}")),
            "{msg}"
        );
        assert!(msg.contains(want), "{msg}");
    }
}
