//! Arbitrary bytes as a table file: open, scan both ways, seek, verify.
//! Must never panic; errors are fine.
#![no_main]

use libfuzzer_sys::fuzz_target;
use strata_engine::iter::InternalIterator;
use strata_engine::sst::{BlockCache, Table};
use strata_engine::storage::{write_file_durably, MemStorage, Storage};

const MAX_STEPS: usize = 100_000;

fuzz_target!(|data: &[u8]| {
    let storage = MemStorage::new();
    if write_file_durably(&*storage, "f.sst", data).is_err() {
        return;
    }
    let Ok(file) = storage.open("f.sst") else {
        return;
    };
    let cache = BlockCache::new(1 << 20);
    let Ok(table) = Table::open(file, 1, "f.sst".into(), Some(cache.clone())) else {
        return;
    };
    let _ = table.properties();
    let _ = table.verify_checksums();

    let mut targets: Vec<Vec<u8>> = table.index_entries().into_iter().map(|(k, _)| k).collect();
    targets.push(table.properties().smallest_key.clone());
    targets.push(table.properties().largest_key.clone());
    targets.push(data.iter().take(24).copied().collect());
    for t in &targets {
        let _ = table.may_contain(t);
        let _ = table.approximate_offset_of(t);
    }

    let mut it = table.iter(true);
    let mut steps = 0;
    let mut r = it.seek_to_first();
    while r.is_ok() && it.valid() && steps < MAX_STEPS {
        let _ = (it.key(), it.value());
        r = it.next();
        steps += 1;
    }
    let mut r = it.seek_to_last();
    while r.is_ok() && it.valid() && steps < 2 * MAX_STEPS {
        let _ = (it.key(), it.value());
        r = it.prev();
        steps += 1;
    }
    for t in &targets {
        if it.seek(t).is_ok() && it.valid() {
            let _ = it.next();
        }
        if it.seek_for_prev(t).is_ok() && it.valid() {
            let _ = it.prev();
        }
    }
    cache.evict_file(1);
});
