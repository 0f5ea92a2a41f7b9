//! One tablet's stream: the merged memtables and files of a tablet,
//! reduced to the newest visible value of each key within bounds.

use std::ops::Bound;
use std::sync::Arc;

use super::read::no_merge_operator;
use super::{SuperVersion, TabletState};
use crate::error::{Error, Result};
use crate::iter::merge::MergingIterator;
use crate::iter::InternalIterator;
use crate::key::{internal_key, lookup_key, parse_internal_key, SeqNo, ValueKind, SEQ_MAX};
use crate::manifest::{LevelIterator, NUM_LEVELS};
use crate::merge::{fold_newest_first, MergeOperator};

/// Iteration order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    Forward,
    Reverse,
}

/// Entries of a tree in key order (or reversed), as of one sequence number.
pub(crate) struct TabletIter {
    it: MergingIterator,
    seq: SeqNo,
    lower: Bound<Vec<u8>>,
    upper: Bound<Vec<u8>>,
    dir: Direction,
    merge: Option<Arc<dyn MergeOperator>>,
    tree: String,
    started: bool,
    /// Forward: a key at or above the lower bound has been met since the
    /// last positioning; keys come in ascending order, so every later one
    /// is too, and the bound need not be compared again.
    lower_passed: bool,
    done: bool,
    _sv: Arc<SuperVersion>,
}

pub(crate) fn new(
    t: &TabletState,
    lower: Bound<&[u8]>,
    upper: Bound<&[u8]>,
    dir: Direction,
    seq: SeqNo,
) -> Result<TabletIter> {
    let sv = t.super_version();
    let lo = match lower {
        Bound::Included(k) | Bound::Excluded(k) => Some(k),
        Bound::Unbounded => None,
    };
    let hi = match upper {
        Bound::Included(k) | Bound::Excluded(k) => Some(k),
        Bound::Unbounded => None,
    };
    let mut children: Vec<Box<dyn InternalIterator>> = Vec::new();
    children.push(Box::new(sv.mem.iter()));
    for imm in &sv.imms {
        children.push(Box::new(imm.iter()));
    }
    for f in &sv.version.levels[0] {
        if f.overlaps(lo, hi) {
            children.push(Box::new(f.table.iter(true)));
        }
    }
    for level in 1..NUM_LEVELS {
        let files = sv.version.overlapping(level, lo, hi);
        if !files.is_empty() {
            children.push(Box::new(LevelIterator::new(files, true)));
        }
    }
    Ok(TabletIter {
        it: MergingIterator::new(children),
        seq,
        lower: lower.map(|k| k.to_vec()),
        upper: upper.map(|k| k.to_vec()),
        dir,
        merge: t.options().merge_operator.clone(),
        tree: t.name.clone(),
        started: false,
        lower_passed: false,
        done: false,
        _sv: sv,
    })
}

impl TabletIter {
    fn position(&mut self) -> Result<()> {
        match (self.dir, &self.lower, &self.upper) {
            (Direction::Forward, Bound::Unbounded, _) => self.it.seek_to_first(),
            (Direction::Forward, Bound::Included(k), _) => self.it.seek(&lookup_key(k, SEQ_MAX)),
            // The last possible entry of k, then skip whatever is still k.
            (Direction::Forward, Bound::Excluded(k), _) => {
                self.it.seek(&internal_key(k, 0, ValueKind::Delete))
            }
            (Direction::Reverse, _, Bound::Unbounded) => self.it.seek_to_last(),
            (Direction::Reverse, _, Bound::Included(k)) => {
                self.it
                    .seek_for_prev(&internal_key(k, 0, ValueKind::Delete))
            }
            (Direction::Reverse, _, Bound::Excluded(k)) => {
                self.it.seek_for_prev(&lookup_key(k, SEQ_MAX))
            }
        }
    }

    fn in_bounds(&self, key: &[u8]) -> bool {
        let above_lower = match &self.lower {
            Bound::Included(l) => key >= l.as_slice(),
            Bound::Excluded(l) => key > l.as_slice(),
            Bound::Unbounded => true,
        };
        let below_upper = match &self.upper {
            Bound::Included(u) => key <= u.as_slice(),
            Bound::Excluded(u) => key < u.as_slice(),
            Bound::Unbounded => true,
        };
        above_lower && below_upper
    }

    /// True when `key` is past the far bound in the iteration direction.
    fn past_end(&self, key: &[u8]) -> bool {
        match self.dir {
            Direction::Forward => match &self.upper {
                Bound::Included(u) => key > u.as_slice(),
                Bound::Excluded(u) => key >= u.as_slice(),
                Bound::Unbounded => false,
            },
            Direction::Reverse => match &self.lower {
                Bound::Included(l) => key < l.as_slice(),
                Bound::Excluded(l) => key <= l.as_slice(),
                Bound::Unbounded => false,
            },
        }
    }

    fn corrupt_key(&self) -> Error {
        Error::corruption(
            format!("tree {}", self.tree),
            "malformed internal key in merged stream",
        )
    }

    fn merge_op(&self) -> Result<&dyn MergeOperator> {
        self.merge
            .as_deref()
            .ok_or_else(|| no_merge_operator(&self.tree))
    }

    fn next_forward(&mut self, key: &mut Vec<u8>) -> Result<Option<Vec<u8>>> {
        while self.it.valid() {
            let p = parse_internal_key(self.it.key()).ok_or_else(|| self.corrupt_key())?;
            if self.past_end(p.user_key) {
                return Ok(None);
            }
            // Not past the end: below the upper bound, so only the lower
            // one is left to check.
            if !self.lower_passed {
                self.lower_passed = match &self.lower {
                    Bound::Included(l) => p.user_key >= l.as_slice(),
                    Bound::Excluded(l) => p.user_key > l.as_slice(),
                    Bound::Unbounded => true,
                };
            }
            if p.seq > self.seq || !self.lower_passed {
                debug_assert!(self.lower_passed || !self.in_bounds(p.user_key));
                self.it.next()?;
                continue;
            }
            debug_assert!(self.in_bounds(p.user_key));
            key.clear();
            key.extend_from_slice(p.user_key);
            let result = match p.kind {
                ValueKind::Put => Some(self.it.value().to_vec()),
                ValueKind::Delete => None,
                ValueKind::Merge => {
                    let mut operands = vec![self.it.value().to_vec()];
                    let mut base = None;
                    self.it.next()?;
                    while self.it.valid() {
                        let q =
                            parse_internal_key(self.it.key()).ok_or_else(|| self.corrupt_key())?;
                        if q.user_key != key.as_slice() {
                            break;
                        }
                        match q.kind {
                            ValueKind::Merge => operands.push(self.it.value().to_vec()),
                            ValueKind::Put => {
                                base = Some(self.it.value().to_vec());
                                break;
                            }
                            ValueKind::Delete => break,
                        }
                        self.it.next()?;
                    }
                    Some(fold_newest_first(
                        self.merge_op()?,
                        key,
                        base.as_deref(),
                        &operands,
                    ))
                }
            };
            // Skip the older versions of this key.
            while self.it.valid() {
                let q = parse_internal_key(self.it.key()).ok_or_else(|| self.corrupt_key())?;
                if q.user_key != key.as_slice() {
                    break;
                }
                self.it.next()?;
            }
            if let Some(v) = result {
                return Ok(Some(v));
            }
        }
        Ok(None)
    }

    fn next_reverse(&mut self, key: &mut Vec<u8>) -> Result<Option<Vec<u8>>> {
        while self.it.valid() {
            let p = parse_internal_key(self.it.key()).ok_or_else(|| self.corrupt_key())?;
            if self.past_end(p.user_key) {
                return Ok(None);
            }
            key.clear();
            key.extend_from_slice(p.user_key);
            // Versions of one key come oldest first in reverse; gather the
            // visible ones (oldest first).
            let mut versions: Vec<(ValueKind, Vec<u8>)> = Vec::new();
            while self.it.valid() {
                let q = parse_internal_key(self.it.key()).ok_or_else(|| self.corrupt_key())?;
                if q.user_key != key.as_slice() {
                    break;
                }
                if q.seq <= self.seq {
                    versions.push((q.kind, self.it.value().to_vec()));
                }
                self.it.prev()?;
            }
            if !self.in_bounds(key) {
                continue;
            }
            let mut operands = Vec::new();
            let mut base = None;
            for (kind, v) in versions.into_iter().rev() {
                match kind {
                    ValueKind::Merge => operands.push(v),
                    ValueKind::Put => {
                        base = Some(v);
                        break;
                    }
                    ValueKind::Delete => break,
                }
            }
            if operands.is_empty() {
                if let Some(v) = base {
                    return Ok(Some(v));
                }
                continue;
            }
            let v = fold_newest_first(self.merge_op()?, key, base.as_deref(), &operands);
            return Ok(Some(v));
        }
        Ok(None)
    }

    /// Skips a forward iterator ahead to the first entry at or after `key`
    /// (a no-op if it is already past it, and on reverse iterators). Cheaper
    /// than stepping over many entries; dearer than a few.
    pub fn skip_to(&mut self, key: &[u8]) -> Result<()> {
        if self.dir != Direction::Forward || self.done {
            return Ok(());
        }
        if self.started && self.it.valid() {
            let p = parse_internal_key(self.it.key()).ok_or_else(|| self.corrupt_key())?;
            if p.user_key >= key {
                return Ok(());
            }
        }
        self.started = true;
        // The target may lie below the lower bound.
        self.lower_passed = false;
        self.it.seek(&lookup_key(key, SEQ_MAX))
    }

    fn advance(&mut self, key: &mut Vec<u8>) -> Result<Option<Vec<u8>>> {
        if !self.started {
            self.started = true;
            self.position()?;
        }
        match self.dir {
            Direction::Forward => self.next_forward(key),
            Direction::Reverse => self.next_reverse(key),
        }
    }
}

impl TabletIter {
    /// The next entry's value, its key written into `key` (whose
    /// allocation a caller reading many entries reuses); None at the end.
    pub fn next_into(&mut self, key: &mut Vec<u8>) -> Option<Result<Vec<u8>>> {
        if self.done {
            return None;
        }
        match self.advance(key) {
            Ok(Some(v)) => Some(Ok(v)),
            Ok(None) => {
                self.done = true;
                None
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

impl Iterator for TabletIter {
    type Item = Result<(Vec<u8>, Vec<u8>)>;

    fn next(&mut self) -> Option<Self::Item> {
        let mut key = Vec::new();
        let value = self.next_into(&mut key)?;
        Some(value.map(|v| (key, v)))
    }
}
