//! The user-facing iterator: a tree's entries in key order (or reversed),
//! streamed tablet after tablet.
//!
//! Each tablet's stream is opened when reached. Spanning several tablets,
//! the iterator holds a snapshot, so that compaction keeps what its
//! sequence number can see in the tablets it has not opened yet; and it
//! walks the tablet list it started with, so a split meanwhile neither
//! hides nor repeats keys (a retired tablet still holds everything up to
//! its split).

use std::ops::Bound;
use std::sync::Arc;

use super::iter::{self, Direction, TabletIter};
use super::tablet::index_for;
use super::{Engine, Snapshot, TabletState, TreeState};
use crate::error::Result;
use crate::key::SeqNo;

/// Entries of a tree in key order (or reversed), as of one sequence number.
pub struct TreeIter {
    tablets: Arc<Vec<Arc<TabletState>>>,
    /// The tablet `cur` reads (valid while `cur` is Some or before start).
    idx: usize,
    cur: Option<TabletIter>,
    lower: Bound<Vec<u8>>,
    upper: Bound<Vec<u8>>,
    dir: Direction,
    seq: SeqNo,
    done: bool,
    _snapshot: Option<Snapshot>,
}

fn bound_key(b: &Bound<Vec<u8>>) -> Option<&[u8]> {
    match b {
        Bound::Included(k) | Bound::Excluded(k) => Some(k),
        Bound::Unbounded => None,
    }
}

pub(crate) fn new(
    engine: &Engine,
    tree: &TreeState,
    lower: Bound<&[u8]>,
    upper: Bound<&[u8]>,
    dir: Direction,
    snapshot: Option<&Snapshot>,
) -> Result<TreeIter> {
    let tablets = tree.tablets();
    let lower: Bound<Vec<u8>> = lower.map(|k| k.to_vec());
    let upper: Bound<Vec<u8>> = upper.map(|k| k.to_vec());
    let first = bound_key(&lower).map_or(0, |k| index_for(&tablets, k));
    let last = bound_key(&upper).map_or(tablets.len() - 1, |k| index_for(&tablets, k));
    let (seq, own) = match snapshot {
        Some(s) => (s.seq, None),
        // One tablet is read from one super-version, taken now; several
        // are opened one by one, under a snapshot.
        None if first >= last => (
            engine
                .inner
                .last_seq
                .load(std::sync::atomic::Ordering::Acquire),
            None,
        ),
        None => {
            let s = engine.snapshot();
            (s.seq, Some(s))
        }
    };
    let idx = match dir {
        Direction::Forward => first,
        Direction::Reverse => last,
    };
    let mut it = TreeIter {
        tablets,
        idx,
        cur: None,
        lower,
        upper,
        dir,
        seq,
        done: false,
        _snapshot: own,
    };
    it.open(idx)?;
    Ok(it)
}

impl TreeIter {
    /// Opens the stream of tablet `idx`, clipped to the tablet's range.
    fn open(&mut self, idx: usize) -> Result<()> {
        self.idx = idx;
        let t = &self.tablets[idx];
        let (lo, hi) = t.clip(bound_ref(&self.lower), bound_ref(&self.upper));
        self.cur = Some(iter::new(t, lo, hi, self.dir, self.seq)?);
        Ok(())
    }

    /// The next tablet in the iteration direction that meets the bounds.
    fn next_tablet(&self) -> Option<usize> {
        match self.dir {
            Direction::Forward => {
                let next = self.idx + 1;
                let t = self.tablets.get(next)?;
                let below_upper = match &self.upper {
                    Bound::Included(u) => t.lo.as_slice() <= u.as_slice(),
                    Bound::Excluded(u) => t.lo.as_slice() < u.as_slice(),
                    Bound::Unbounded => true,
                };
                below_upper.then_some(next)
            }
            Direction::Reverse => {
                let prev = self.idx.checked_sub(1)?;
                let t = &self.tablets[prev];
                // Its keys are below its `hi`, the current tablet's `lo`.
                let above_lower = match (&self.lower, &t.hi) {
                    (Bound::Unbounded, _) | (_, None) => true,
                    (Bound::Included(l) | Bound::Excluded(l), Some(hi)) => {
                        l.as_slice() < hi.as_slice()
                    }
                };
                above_lower.then_some(prev)
            }
        }
    }

    /// Skips a forward iterator ahead to the first entry at or after `key`
    /// (a no-op if it is already past it, and on reverse iterators).
    pub fn skip_to(&mut self, key: &[u8]) -> Result<()> {
        if self.dir != Direction::Forward || self.done {
            return Ok(());
        }
        let target = index_for(&self.tablets, key);
        if target > self.idx {
            self.open(target)?;
        }
        match &mut self.cur {
            Some(c) => c.skip_to(key),
            None => Ok(()),
        }
    }
}

fn bound_ref(b: &Bound<Vec<u8>>) -> Bound<&[u8]> {
    match b {
        Bound::Included(k) => Bound::Included(k.as_slice()),
        Bound::Excluded(k) => Bound::Excluded(k.as_slice()),
        Bound::Unbounded => Bound::Unbounded,
    }
}

impl TreeIter {
    /// The next entry's value, its key written into `key` (whose
    /// allocation a caller reading many entries reuses); None at the end.
    pub fn next_into(&mut self, key: &mut Vec<u8>) -> Option<Result<Vec<u8>>> {
        loop {
            if self.done {
                return None;
            }
            if let Some(item) = self.cur.as_mut().and_then(|c| c.next_into(key)) {
                if item.is_err() {
                    self.done = true;
                }
                return Some(item);
            }
            match self.next_tablet() {
                Some(i) => {
                    if let Err(e) = self.open(i) {
                        self.done = true;
                        return Some(Err(e));
                    }
                }
                None => {
                    self.done = true;
                    self.cur = None;
                }
            }
        }
    }
}

impl Iterator for TreeIter {
    type Item = Result<(Vec<u8>, Vec<u8>)>;

    fn next(&mut self) -> Option<Self::Item> {
        let mut key = Vec::new();
        let value = self.next_into(&mut key)?;
        Some(value.map(|v| (key, v)))
    }
}
