//! Row locks: a fixed array of striped mutexes. CheckAndMutateRow,
//! ReadModifyWriteRow and every mutation hold their rows' stripes from the
//! read of the row to the write of its batch, so each row's operations are
//! serialized.

use parking_lot::{Mutex, MutexGuard};
use std::hash::{Hash, Hasher};

/// Number of stripes; rows hash onto them.
const STRIPES: usize = 4096;

pub(crate) struct RowLocks {
    stripes: Box<[Mutex<()>]>,
}

impl RowLocks {
    pub(crate) fn new() -> RowLocks {
        RowLocks {
            stripes: (0..STRIPES).map(|_| Mutex::new(())).collect(),
        }
    }

    fn stripe(tree: &str, row: &[u8]) -> usize {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        tree.hash(&mut h);
        row.hash(&mut h);
        (h.finish() % STRIPES as u64) as usize
    }

    /// Locks the stripes of `rows` in ascending order (no deadlock between
    /// requests locking overlapping sets).
    pub(crate) fn lock<'a>(&'a self, tree: &str, rows: &[&[u8]]) -> Vec<MutexGuard<'a, ()>> {
        let mut idx: Vec<usize> = rows.iter().map(|r| Self::stripe(tree, r)).collect();
        idx.sort_unstable();
        idx.dedup();
        idx.into_iter().map(|i| self.stripes[i].lock()).collect()
    }
}
