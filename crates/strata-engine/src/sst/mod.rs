//! Sorted string tables: immutable files of sorted internal keys (docs/formats/sstable.md).
//!
//! `TableBuilder` writes a table; `Table::open` verifies its metadata and
//! keeps the index and bloom filter in memory; `TableIterator` reads data
//! blocks through the shared `BlockCache`.

mod block;
mod block_iter;
mod bloom;
mod builder;
mod cache;
mod compress;
mod format;
mod memory_only;
mod reader;
mod table_iter;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_corruption;

pub use builder::{TableBuilder, TableBuilderOptions};
pub use cache::BlockCache;
pub use format::{Compression, TableProperties, FORMAT_VERSION, TABLE_MAGIC};
pub use memory_only::memory_only;
pub use reader::{Table, TableIterator};

use std::cmp::Ordering;

use crate::key::{cmp_internal, TRAILER_LEN};

/// Internal-key order that never panics: keys too short to hold a trailer
/// (possible only in corrupt input, which block decoding rejects) compare
/// bytewise.
#[inline]
pub(crate) fn cmp_keys(a: &[u8], b: &[u8]) -> Ordering {
    if a.len() >= TRAILER_LEN && b.len() >= TRAILER_LEN {
        cmp_internal(a, b)
    } else {
        a.cmp(b)
    }
}

/// Fuzzing entry point: decodes arbitrary bytes as block contents and walks
/// them in every way the engine does. The first byte picks how the rest is
/// read: 0 = plain contents, 1 = lz4 payload, 2 = zstd payload. Must never
/// panic, whatever the input.
#[doc(hidden)]
pub fn fuzz_block(data: &[u8]) {
    use block_iter::BlockIter;
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let contents = match Compression::from_u8(mode % 3) {
        Some(Compression::None) | None => rest.to_vec(),
        Some(c) => match compress::decompress(rest, c) {
            Ok(v) => v,
            Err(_) => return,
        },
    };
    let Ok(block) = block::Block::new(contents) else {
        return;
    };
    let block = std::sync::Arc::new(block);
    let mut it = BlockIter::new();
    it.set_block(block.clone());
    // Forward, collecting a few keys to seek to.
    let mut targets: Vec<Vec<u8>> = Vec::new();
    let mut steps = 0usize;
    let mut r = it.seek_to_first();
    while r.is_ok() && it.valid() && steps < 100_000 {
        if targets.len() < 8 {
            targets.push(it.key().to_vec());
        }
        let _ = it.value();
        r = it.next();
        steps += 1;
    }
    // Backward.
    let mut r = it.seek_to_last();
    while r.is_ok() && it.valid() && steps < 200_000 {
        let _ = (it.key(), it.value());
        r = it.prev();
        steps += 1;
    }
    targets.push(rest.iter().take(16).copied().collect());
    targets.push(vec![0xff; 9]);
    targets.push(Vec::new());
    for t in &targets {
        if it.seek(t).is_ok() && it.valid() {
            let _ = it.next();
        }
        if it.seek_for_prev(t).is_ok() && it.valid() {
            let _ = it.prev();
        }
    }
}
