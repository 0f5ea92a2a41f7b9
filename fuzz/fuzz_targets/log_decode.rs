//! Fuzzes commit-log recovery and write-batch decoding with arbitrary bytes:
//! neither may panic, and a recovery that succeeds (possibly cutting a torn
//! tail) must be repeatable with the same records and nothing left to cut.
//!
//! Input: the first byte picks how many segments (1 to 3) the rest is split
//! into, so damage in sealed segments is exercised as well as torn tails.

#![no_main]

use libfuzzer_sys::fuzz_target;
use strata_engine::batch::decode_payload;
use strata_engine::log::{recover, segment_file_name};
use strata_engine::storage::{MemStorage, Storage};

/// Replayed records: (seq_first, payload).
type Records = Vec<(u64, Vec<u8>)>;

/// Recovers everything; also says whether a torn tail was cut.
fn recover_all(storage: &dyn Storage) -> strata_engine::Result<(Records, bool)> {
    let mut records = Vec::new();
    let report = recover(storage, &mut |seq, payload| {
        // Recovery validates every payload before handing it over.
        let ops = decode_payload(payload, "fuzz").expect("recovery passed a bad payload");
        assert!(!ops.is_empty());
        records.push((seq, payload.to_vec()));
        Ok(())
    })?;
    assert_eq!(report.records, records.len() as u64);
    Ok((records, report.truncated.is_some()))
}

fuzz_target!(|data: &[u8]| {
    // The batch decoder on its own.
    if let Ok(ops) = decode_payload(data, "fuzz") {
        assert!(!data.is_empty());
        assert!(ops.len() <= data.len());
    }

    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let segments = usize::from(first % 3) + 1;
    let part = rest.len().div_ceil(segments).max(1);
    let storage = MemStorage::new();
    for (i, chunk) in rest
        .chunks(part)
        .chain(std::iter::once(&[][..]))
        .take(segments)
        .enumerate()
    {
        let name = segment_file_name(i as u64 + 1);
        let mut f = storage.create(&name).expect("memory create");
        f.append(chunk).expect("memory append");
        f.sync().expect("memory sync");
    }
    storage.sync_dir().expect("memory sync_dir");

    match recover_all(&*storage) {
        Ok((records, _)) => {
            let (again, cut) = recover_all(&*storage).expect("second recovery must succeed");
            assert_eq!(again, records, "second recovery differs");
            assert!(!cut, "second recovery cut a tail again");
        }
        Err(e) => assert!(e.is_corruption(), "unexpected error kind: {e}"),
    }
});
