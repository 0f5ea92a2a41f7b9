//! Row locks: a fixed array of striped mutexes. CheckAndMutateRow,
//! ReadModifyWriteRow and every mutation hold their rows' stripes from the
//! read of the row to the write of its batch, so each row's operations are
//! serialized.

use parking_lot::{ArcMutexGuard, Mutex, MutexGuard, RawMutex};
use std::hash::{Hash, Hasher};
use std::sync::Arc;

/// Number of stripes; rows hash onto them.
const STRIPES: usize = 4096;

pub(crate) struct RowLocks {
    stripes: Box<[Arc<Mutex<()>>]>,
}

impl RowLocks {
    pub(crate) fn new() -> RowLocks {
        RowLocks {
            stripes: (0..STRIPES).map(|_| Arc::new(Mutex::new(()))).collect(),
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
        self.stripes_of(tree, rows)
            .into_iter()
            .map(|i| self.stripes[i].lock())
            .collect()
    }

    /// Takes the stripes of `rows` without waiting, as owned guards that
    /// can travel with a write until it commits; None if any is held.
    pub(crate) fn try_lock_owned(
        &self,
        tree: &str,
        rows: &[&[u8]],
    ) -> Option<Vec<ArcMutexGuard<RawMutex, ()>>> {
        self.stripes_of(tree, rows)
            .into_iter()
            .map(|i| self.stripes[i].try_lock_arc())
            .collect()
    }

    fn stripes_of(&self, tree: &str, rows: &[&[u8]]) -> Vec<usize> {
        let mut idx: Vec<usize> = rows.iter().map(|r| Self::stripe(tree, r)).collect();
        idx.sort_unstable();
        idx.dedup();
        idx
    }
}
