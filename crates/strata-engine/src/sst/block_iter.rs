//! A cursor over one block's entries.
//!
//! Forward steps decode in place into a reused key buffer (no allocation
//! per entry). Backward steps work as in RocksDB: the restart interval
//! holding the previous entry is decoded once into a reused cache, and
//! later `prev` calls pop from it.

use std::cmp::Ordering;
use std::sync::Arc;

use super::block::{Block, BlockCorrupt};
use super::cmp_keys;
use crate::key::TRAILER_LEN;

/// Position state of the cursor (kept apart from the block so both can be
/// borrowed at once).
#[derive(Default)]
struct Cursor {
    valid: bool,
    /// Offset of the current entry.
    current: usize,
    /// Offset just past the current entry.
    next_off: usize,
    /// The restart interval holding the current entry.
    restart_idx: usize,
    /// Offset of restart point `restart_idx`.
    restart_start: usize,
    /// Offset of restart point `restart_idx + 1` (end of the entries if none).
    restart_end: usize,
    key: Vec<u8>,
    value_start: usize,
    value_end: usize,
}

impl Cursor {
    fn seek_to_restart(&mut self, b: &Block, i: usize) {
        self.key.clear();
        self.set_restart(b, i);
        self.next_off = self.restart_start;
        self.valid = false;
    }

    #[inline]
    fn set_restart(&mut self, b: &Block, i: usize) {
        self.restart_idx = i;
        self.restart_start = b.restart_point(i);
        self.restart_end = if i + 1 < b.num_restarts() {
            b.restart_point(i + 1)
        } else {
            b.restarts_offset()
        };
    }

    /// Decodes the entry at `next_off`, or becomes invalid at the end.
    #[inline]
    fn parse_next(&mut self, b: &Block) -> Result<(), BlockCorrupt> {
        let p = self.next_off;
        if p >= b.restarts_offset() {
            self.valid = false;
            return Ok(());
        }
        let r = self.parse_at(b, p);
        if r.is_err() {
            self.valid = false;
        }
        r
    }

    #[inline]
    fn parse_at(&mut self, b: &Block, p: usize) -> Result<(), BlockCorrupt> {
        let h = b.entry_header(p)?;
        if h.shared > self.key.len() {
            return Err(BlockCorrupt("shared length exceeds the previous key"));
        }
        // p < restarts_offset, so this stops at the last interval.
        while self.restart_end <= p {
            self.set_restart(b, self.restart_idx + 1);
        }
        if h.shared != 0 && self.restart_start == p {
            return Err(BlockCorrupt("restart entry shares a prefix"));
        }
        if self.restart_end < h.value_end {
            return Err(BlockCorrupt("entry straddles a restart point"));
        }
        self.key.truncate(h.shared);
        self.key
            .extend_from_slice(&b.data()[h.key_start..h.value_start]);
        if self.key.len() < TRAILER_LEN {
            return Err(BlockCorrupt("key shorter than its trailer"));
        }
        self.current = p;
        self.next_off = h.value_end;
        self.value_start = h.value_start;
        self.value_end = h.value_end;
        self.valid = true;
        Ok(())
    }
}

/// One entry of a decoded restart interval, for backward steps.
#[derive(Clone, Copy)]
struct CachedEntry {
    current: usize,
    next_off: usize,
    key_start: usize,
    key_end: usize,
    value_start: usize,
    value_end: usize,
}

/// A cursor over the entries of one `Block`.
#[derive(Default)]
pub struct BlockIter {
    block: Option<Arc<Block>>,
    cur: Cursor,
    prev_entries: Vec<CachedEntry>,
    prev_keys: Vec<u8>,
    /// The restart interval the cache holds.
    prev_restart: usize,
    /// Index of the current entry in the cache, when it came from there.
    prev_pos: Option<usize>,
}

impl BlockIter {
    /// An iterator with no block (invalid until `set_block`).
    pub fn new() -> BlockIter {
        BlockIter::default()
    }

    /// Switches to another block (invalid until positioned); keeps buffers.
    pub fn set_block(&mut self, block: Arc<Block>) {
        self.block = Some(block);
        self.invalidate();
    }

    pub(crate) fn has_block(&self) -> bool {
        self.block.is_some()
    }

    pub(crate) fn invalidate(&mut self) {
        self.cur.valid = false;
        self.prev_pos = None;
    }

    /// Whether the cursor is on an entry.
    #[inline]
    pub fn valid(&self) -> bool {
        self.cur.valid
    }

    /// The current key; requires `valid()`.
    #[inline]
    pub fn key(&self) -> &[u8] {
        debug_assert!(self.cur.valid);
        &self.cur.key
    }

    /// The current value; requires `valid()`.
    #[inline]
    pub fn value(&self) -> &[u8] {
        debug_assert!(self.cur.valid);
        match &self.block {
            Some(b) => &b.data()[self.cur.value_start..self.cur.value_end],
            None => &[],
        }
    }

    /// Moves to the first entry.
    pub fn seek_to_first(&mut self) -> Result<(), BlockCorrupt> {
        self.prev_pos = None;
        let Some(b) = self.block.as_deref() else {
            return Ok(());
        };
        if b.num_restarts() == 0 {
            self.cur.valid = false;
            return Ok(());
        }
        self.cur.seek_to_restart(b, 0);
        self.cur.parse_next(b)
    }

    /// Moves to the last entry.
    pub fn seek_to_last(&mut self) -> Result<(), BlockCorrupt> {
        self.prev_pos = None;
        let Some(b) = self.block.as_deref() else {
            return Ok(());
        };
        let n = b.num_restarts();
        if n == 0 {
            self.cur.valid = false;
            return Ok(());
        }
        let limit = b.restarts_offset();
        self.fill_interval(n - 1, limit)
    }

    /// Advances; requires `valid()`.
    #[inline]
    pub fn next(&mut self) -> Result<(), BlockCorrupt> {
        debug_assert!(self.cur.valid);
        self.prev_pos = None;
        match self.block.as_deref() {
            Some(b) => self.cur.parse_next(b),
            None => Ok(()),
        }
    }

    /// Moves to the first entry with key >= `target` (internal order).
    pub fn seek(&mut self, target: &[u8]) -> Result<(), BlockCorrupt> {
        self.prev_pos = None;
        let Some(b) = self.block.as_deref() else {
            return Ok(());
        };
        let n = b.num_restarts();
        if n == 0 {
            self.cur.valid = false;
            return Ok(());
        }
        // Last restart point whose key is < target (or 0).
        let (mut left, mut right) = (0, n - 1);
        while left < right {
            let mid = (left + right).div_ceil(2);
            let key = b.restart_key(mid).inspect_err(|_| self.cur.valid = false)?;
            if cmp_keys(key, target) == Ordering::Less {
                left = mid;
            } else {
                right = mid - 1;
            }
        }
        self.cur.seek_to_restart(b, left);
        loop {
            self.cur.parse_next(b)?;
            if !self.cur.valid || cmp_keys(&self.cur.key, target) != Ordering::Less {
                return Ok(());
            }
        }
    }

    /// Moves to the last entry with key <= `target` (internal order).
    pub fn seek_for_prev(&mut self, target: &[u8]) -> Result<(), BlockCorrupt> {
        self.seek(target)?;
        if !self.cur.valid {
            return self.seek_to_last();
        }
        if cmp_keys(&self.cur.key, target) == Ordering::Greater {
            return self.prev();
        }
        Ok(())
    }

    /// Steps back; requires `valid()`. Becomes invalid before the first entry.
    pub fn prev(&mut self) -> Result<(), BlockCorrupt> {
        debug_assert!(self.cur.valid);
        if let Some(i) = self.prev_pos {
            if i > 0 {
                self.load_cached(i - 1);
                return Ok(());
            }
        }
        self.prev_pos = None;
        let Some(b) = self.block.as_deref() else {
            return Ok(());
        };
        let original = self.cur.current;
        // The interval holding the entry just before `original`.
        let mut r = self.cur.restart_idx.min(b.num_restarts().saturating_sub(1));
        while b.restart_point(r) >= original {
            if r == 0 {
                self.cur.valid = false;
                return Ok(());
            }
            r -= 1;
        }
        self.fill_interval(r, original)
    }

    /// Decodes restart interval `r` up to (excluding) the entry at `limit`
    /// into the backward cache, and positions on its last entry.
    fn fill_interval(&mut self, r: usize, limit: usize) -> Result<(), BlockCorrupt> {
        let Some(b) = self.block.as_deref() else {
            return Ok(());
        };
        self.prev_entries.clear();
        self.prev_keys.clear();
        self.prev_restart = r;
        self.cur.seek_to_restart(b, r);
        loop {
            self.cur.parse_next(b)?;
            if !self.cur.valid {
                return Err(BlockCorrupt("restart interval ends early"));
            }
            let key_start = self.prev_keys.len();
            self.prev_keys.extend_from_slice(&self.cur.key);
            self.prev_entries.push(CachedEntry {
                current: self.cur.current,
                next_off: self.cur.next_off,
                key_start,
                key_end: self.prev_keys.len(),
                value_start: self.cur.value_start,
                value_end: self.cur.value_end,
            });
            if self.cur.next_off >= limit {
                if self.cur.next_off != limit {
                    self.cur.valid = false;
                    return Err(BlockCorrupt("entries misaligned"));
                }
                break;
            }
        }
        // Already positioned on the last cached entry.
        self.prev_pos = Some(self.prev_entries.len() - 1);
        Ok(())
    }

    fn load_cached(&mut self, i: usize) {
        let e = self.prev_entries[i];
        self.cur.current = e.current;
        self.cur.next_off = e.next_off;
        self.cur.key.clear();
        self.cur
            .key
            .extend_from_slice(&self.prev_keys[e.key_start..e.key_end]);
        self.cur.value_start = e.value_start;
        self.cur.value_end = e.value_end;
        if let Some(b) = self.block.as_deref() {
            self.cur.set_restart(b, self.prev_restart);
        }
        self.cur.valid = true;
        self.prev_pos = Some(i);
    }
}
