//! Reads that never wait for storage: within `memory_only`, a data block
//! comes from the block cache or not at all (`Error::WouldBlock`), and at
//! most a given number of blocks are touched. An async server runs a short
//! read this way on its own thread, and only a read that fails so goes to
//! a thread that may block (RocksDB's `kBlockCacheTier` read tier plays
//! this part). Memtables, indexes and filters are in memory already; a
//! data block is the only thing a read may fetch.
//!
//! The scope is a property of the calling thread, not of a read: an
//! iterator made inside it and advanced outside it reads normally.

use std::cell::Cell;

use crate::error::{Error, Result};

thread_local! {
    /// Blocks the memory-only read under way on this thread may still
    /// touch; None outside such a read.
    static BLOCKS_LEFT: Cell<Option<usize>> = const { Cell::new(None) };
}

/// Runs `f` as a memory-only read of at most `blocks_max` data blocks.
/// Nested scopes keep the outer one's state when they end.
pub fn memory_only<T>(blocks_max: usize, f: impl FnOnce() -> T) -> T {
    struct Restore(Option<usize>);
    impl Drop for Restore {
        fn drop(&mut self) {
            BLOCKS_LEFT.with(|b| b.set(self.0));
        }
    }
    let _restore = Restore(BLOCKS_LEFT.with(|b| b.replace(Some(blocks_max))));
    f()
}

/// Called before a data block is looked up: whether the read is memory
/// only (then a cache miss is `Error::WouldBlock`), counting the block.
pub(crate) fn take_block() -> Result<bool> {
    BLOCKS_LEFT.with(|b| match b.get() {
        None => Ok(false),
        Some(0) => Err(Error::WouldBlock),
        Some(n) => {
            b.set(Some(n - 1));
            Ok(true)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scope_counts_blocks_and_ends() {
        assert!(!take_block().unwrap());
        memory_only(2, || {
            assert!(take_block().unwrap());
            assert!(take_block().unwrap());
            assert!(matches!(take_block(), Err(Error::WouldBlock)));
            memory_only(5, || assert!(take_block().unwrap()));
            assert!(matches!(take_block(), Err(Error::WouldBlock)));
        });
        assert!(!take_block().unwrap());
    }

    #[test]
    fn a_panic_inside_ends_the_scope() {
        let r = std::panic::catch_unwind(|| memory_only(1, || panic!("inside")));
        assert!(r.is_err());
        assert!(!take_block().unwrap());
    }
}
