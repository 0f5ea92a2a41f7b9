//! Power-loss and corruption sweeps over small logs.

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use super::tests::{recover_records, Harness, Record};
use super::*;
use crate::storage::{MemStorage, Storage, TornWrite};

fn torn_modes() -> Vec<TornWrite> {
    let mut modes = vec![TornWrite::None];
    for keep_per_mille in [0, 1, 10, 100, 250, 500, 750, 900, 999, 1000] {
        for garble in [false, true] {
            modes.push(TornWrite::Prefix {
                keep_per_mille,
                garble,
            });
        }
    }
    modes
}

/// Power loss now: recovery must give a prefix of `written` holding at
/// least the first `durable` records, cut any torn tail so that a second
/// recovery agrees without cutting anything, and leave a log that new
/// synced records can follow without losing the recovered ones.
fn check_power_loss(mem: &MemStorage, written: &[Record], durable: usize, with_new_life: bool) {
    for torn in torn_modes() {
        let after = mem.crash_copy(torn);
        let (report, got) =
            recover_records(&*after).unwrap_or_else(|e| panic!("{torn:?}: recovery failed: {e}"));
        assert!(got.len() >= durable, "{torn:?}: lost synced records");
        assert_eq!(got[..], written[..got.len()], "{torn:?}: not a prefix");
        let (again, got_again) = recover_records(&*after)
            .unwrap_or_else(|e| panic!("{torn:?}: second recovery failed: {e}"));
        assert_eq!(got_again, got, "{torn:?}");
        assert_eq!(again.truncated, None, "{torn:?}");
        assert_eq!(again.segments, report.segments, "{torn:?}");
        if !with_new_life {
            continue;
        }
        let next_file = report.segments.last().map_or(1, |s| s.number + 1);
        let mut h = Harness::reopen(
            after.clone(),
            300,
            report.segments,
            got.clone(),
            report.last_seq + 1,
            next_file,
        );
        h.append(5000).unwrap();
        h.append(5001).unwrap();
        h.log.commit(true).unwrap();
        let later = after.crash_copy(TornWrite::Prefix {
            keep_per_mille: 500,
            garble: true,
        });
        let (_, all) = recover_records(&*later).unwrap();
        assert_eq!(all, h.written, "{torn:?}: second life");
    }
}

#[test]
fn power_loss_keeps_a_prefix_with_every_synced_record() {
    let mem = MemStorage::new();
    let mut h = Harness::new(mem.clone(), 400);
    let mut durable = 0;
    let mut i = 0;
    for group in 0..36u64 {
        for _ in 0..=(group % 3) {
            h.append(i).unwrap();
            i += 1;
        }
        // Mid-group: appended, not yet committed.
        check_power_loss(&mem, &h.written, durable, false);
        let sync = group % 3 != 2;
        h.log.commit(sync).unwrap();
        if sync {
            durable = h.written.len();
        }
        check_power_loss(&mem, &h.written, durable, group % 4 == 0);
    }
    assert!(h.log.segments().len() > 3);
    // A kill -9 loses nothing that was handed to the OS.
    let (_, got) = recover_records(&*mem.process_crash_copy()).unwrap();
    assert_eq!(got, h.written);
}

/// Builds a log of several segments, every group of two records synced.
/// Returns the storage, the records, and (newest segment name, offset of
/// its last group): bytes from there on are indistinguishable from a torn
/// write, because no later frame vouches for them.
fn synced_log() -> (std::sync::Arc<MemStorage>, Vec<Record>, String, usize) {
    let mem = MemStorage::new();
    let mut h = Harness::new(mem.clone(), 250);
    let mut last_group = (0, 0);
    for g in 0..14 {
        let live = h.log.segments().pop().unwrap();
        last_group = (live.number, live.size_bytes as usize);
        h.append(2 * g).unwrap();
        h.append(2 * g + 1).unwrap();
        h.log.commit(true).unwrap();
    }
    let newest = h.log.live_segment_number();
    let zone = if last_group.0 == newest {
        last_group.1
    } else {
        usize::MAX // the newest segment is empty
    };
    assert!(h.log.segments().len() >= 3);
    (mem, h.written.clone(), segment_file_name(newest), zone)
}

#[test]
fn flipped_byte_in_a_synced_record_is_corruption() {
    let (mem, written, newest, zone) = synced_log();
    assert!(
        zone != usize::MAX && zone > 0,
        "the test wants two groups in the live segment"
    );
    let mut names = mem.list().unwrap();
    names.sort();
    let mut checked = 0;
    for name in &names {
        for offset in 0..mem.file_len(name).unwrap() {
            let copy = mem.process_crash_copy();
            copy.corrupt_byte(name, offset).unwrap();
            let result = recover_records(&*copy);
            if *name == newest && offset >= zone {
                // The last group: no later record proves it was synced.
                let (report, got) = result.unwrap();
                let (file, cut) = report.truncated.unwrap();
                assert!(file == newest && cut >= zone as u64 && cut as usize <= offset);
                assert!(got.len() >= written.len() - 2);
                assert_eq!(got[..], written[..got.len()]);
                continue;
            }
            let e = result
                .err()
                .unwrap_or_else(|| panic!("{name} byte {offset}: recovered"));
            assert!(e.is_corruption(), "{name} byte {offset}: {e}");
            let msg = e.to_string();
            assert!(msg.contains(name.as_str()) && msg.contains("byte"), "{msg}");
            checked += 1;
        }
    }
    assert!(checked > 1000, "{checked}");
}

#[test]
fn damaged_unsynced_record_before_intact_unsynced_ones_is_a_torn_tail() {
    // Unsynced pages may reach the disk out of order: a damaged frame can
    // be followed by intact frames that were never synced either.
    let mem = MemStorage::new();
    let mut h = Harness::new(mem.clone(), 1 << 20);
    h.append(0).unwrap();
    h.log.commit(true).unwrap();
    let synced = h.log.segments()[0].size_bytes as usize;
    for i in 1..6 {
        h.append(i).unwrap();
        h.log.commit(false).unwrap();
    }
    let copy = mem.process_crash_copy();
    copy.corrupt_byte(&segment_file_name(1), synced + 30)
        .unwrap();
    let (report, got) = recover_records(&*copy).unwrap();
    assert_eq!(got, h.written[..1].to_vec());
    assert_eq!(
        report.truncated,
        Some((segment_file_name(1), synced as u64))
    );
}

#[test]
fn random_damage_never_panics() {
    let (mem, written, _, _) = synced_log();
    let mut names = mem.list().unwrap();
    names.sort();
    let mut rng = SmallRng::seed_from_u64(7);
    for round in 0..300 {
        let copy = mem.process_crash_copy();
        let name = &names[rng.gen_range(0..names.len())];
        let data = crate::storage::read_file(&*copy, name).unwrap();
        let mut damaged = data.clone();
        for _ in 0..rng.gen_range(1..6) {
            let at = rng.gen_range(0..damaged.len());
            damaged[at] = rng.gen();
        }
        if round % 3 == 0 {
            damaged.truncate(rng.gen_range(0..damaged.len()));
        }
        crate::storage::write_file_durably(&*copy, name, &damaged).unwrap();
        match recover_records(&*copy) {
            // A segment cut at a frame boundary reads as a shorter clean
            // one, so only "nothing invented" can be asserted here.
            Ok((_, got)) => assert!(got.iter().all(|r| written.contains(r))),
            Err(e) => assert!(e.is_corruption(), "{e}"),
        }
    }
}

/// Segments written over zeros (`prealloc.rs`): the live one is longer
/// than its records, sealed ones are cut to theirs, and power loss at any
/// point recovers as with appended segments, the zero tail cut.
#[test]
fn preallocated_segments_recover_like_appended_ones() {
    let mem = MemStorage::new();
    let mut h = Harness::preallocated(mem.clone(), 400);
    let mut durable = 0;
    let mut i = 0;
    let mut zero_filled_groups = 0;
    for group in 0..48u64 {
        for _ in 0..=(group % 3) {
            h.append(i).unwrap();
            i += 1;
        }
        check_power_loss(&mem, &h.written, durable, group % 8 == 0);
        h.log.commit(true).unwrap();
        durable = h.written.len();
        let segments = h.log.segments();
        let (live, sealed) = segments.split_last().unwrap();
        let file_len = |s: &SegmentInfo| mem.file_len(&segment_file_name(s.number)).unwrap() as u64;
        if file_len(live) > live.size_bytes {
            zero_filled_groups += 1;
        }
        for s in sealed {
            assert_eq!(
                file_len(s),
                s.size_bytes,
                "sealed {} ends at its records",
                s.number
            );
        }
        // Time for the preparing thread.
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    assert!(
        zero_filled_groups >= 24,
        "{zero_filled_groups} of 48 groups were written over zeros"
    );
    check_power_loss(&mem, &h.written, durable, true);
    let prepared = mem
        .list()
        .unwrap()
        .into_iter()
        .filter(|n| prealloc::is_prepared(n))
        .count();
    assert!(prepared <= 1, "{prepared} prepared files");
}

/// The zero-filled files double from `FIRST_PREPARED_BYTES` up to the
/// segment size, and a preallocated segment is sealed once a group takes
/// it past its zeros (cut to its records), so at most one group lies past
/// them.
#[test]
fn prepared_segments_double_up_to_the_segment_size() {
    let mem = MemStorage::new();
    let segment_size_bytes_max = 8 * prealloc::FIRST_PREPARED_BYTES;
    let mut h = Harness::preallocated(mem.clone(), segment_size_bytes_max);
    let value = vec![7u8; 32 << 10];
    // One group is one record: the value, its key and the framing.
    let group_bytes_max = value.len() as u64 + 1024;
    // (segment number, its zeros), in the order the log used them.
    let mut zeroed: Vec<(u64, u64)> = Vec::new();
    let mut seq = 1;
    while zeroed.len() < 5 {
        let mut b = crate::batch::WriteBatch::new();
        b.put(0, format!("key-{seq}").as_bytes(), &value);
        h.log.append(seq, seq, b.payload()).unwrap();
        seq += 1;
        h.log.commit(true).unwrap();
        let segments = h.log.segments();
        let (live, sealed) = segments.split_last().unwrap();
        let file_len = mem.file_len(&segment_file_name(live.number)).unwrap() as u64;
        if file_len > live.size_bytes && zeroed.last().map(|&(n, _)| n) != Some(live.number) {
            zeroed.push((live.number, file_len));
        }
        for s in sealed {
            let len = mem.file_len(&segment_file_name(s.number)).unwrap() as u64;
            assert_eq!(len, s.size_bytes, "sealed {} ends at its records", s.number);
            let size_bytes_max = zeroed
                .iter()
                .find(|&&(n, _)| n == s.number)
                .map_or(segment_size_bytes_max, |&(_, z)| z);
            assert!(
                s.size_bytes <= size_bytes_max + group_bytes_max,
                "sealed {} holds {} bytes, over {size_bytes_max} and a group",
                s.number,
                s.size_bytes
            );
        }
        // Time for the preparing thread.
        std::thread::sleep(std::time::Duration::from_micros(200));
    }
    let sizes: Vec<u64> = zeroed.iter().map(|&(_, size)| size >> 20).collect();
    assert_eq!(sizes, [1, 2, 4, 8, 8], "zero-filled segment sizes in MiB");
}
