//! The memtable: a concurrent skiplist of internal keys, bounded in bytes by
//! its owner (the engine switches to a new memtable when one is full).
//!
//! Each entry is one allocation holding the internal key followed by the
//! value. Readers never block writers: lookups and cursors run on the
//! lock-free skiplist while the write leader inserts.

use std::borrow::Borrow;
use std::cmp::Ordering as CmpOrdering;
use std::ops::Bound;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use crossbeam_skiplist::map::Entry;
use crossbeam_skiplist::SkipMap;

use crate::error::Result;
use crate::iter::InternalIterator;
use crate::key::{append_internal_key, IKey, SeqNo, ValueKind, SEQ_MAX};

/// Bytes charged per entry on top of its key and value: the skiplist node
/// (tower of up to 32 pointers, typically ~4), the entry header and the
/// allocator's rounding.
const ENTRY_OVERHEAD_BYTES: usize = 80;

/// One skiplist entry: the internal key, then the value, in one buffer.
struct MemEntry {
    buf: Box<[u8]>,
    key_len: u32,
}

impl MemEntry {
    fn key(&self) -> &[u8] {
        &self.buf[..self.key_len as usize]
    }
    fn value(&self) -> &[u8] {
        &self.buf[self.key_len as usize..]
    }
}

impl Borrow<IKey> for MemEntry {
    fn borrow(&self) -> &IKey {
        IKey::new(self.key())
    }
}

impl PartialEq for MemEntry {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
    }
}
impl Eq for MemEntry {}
impl PartialOrd for MemEntry {
    fn partial_cmp(&self, other: &Self) -> Option<CmpOrdering> {
        Some(self.cmp(other))
    }
}
impl Ord for MemEntry {
    fn cmp(&self, other: &Self) -> CmpOrdering {
        IKey::new(self.key()).cmp(IKey::new(other.key()))
    }
}

/// A memtable of one tree.
pub struct Memtable {
    id: u64,
    map: SkipMap<MemEntry, ()>,
    size_bytes: AtomicUsize,
    seq_min: AtomicU64,
    seq_max: AtomicU64,
    /// The engine's last sequence number when this memtable stopped taking
    /// writes: every write of its tree up to here is in it or older
    /// memtables. SEQ_MAX while it is the active memtable.
    sealed_at_seq: AtomicU64,
}

/// The outcome of looking a key up in one source (memtable or table).
#[derive(Debug, PartialEq, Eq)]
pub enum Lookup {
    /// The newest visible entry is a full value (after any merge operands
    /// collected on the way).
    Found(Vec<u8>),
    /// The newest visible entry is a tombstone.
    Deleted,
    /// Nothing conclusive here: look in older sources (merge operands, if
    /// any, have been appended to the caller's list).
    Continue,
}

impl Memtable {
    pub fn new(id: u64) -> Arc<Memtable> {
        Arc::new(Memtable {
            id,
            map: SkipMap::new(),
            size_bytes: AtomicUsize::new(0),
            seq_min: AtomicU64::new(SEQ_MAX),
            seq_max: AtomicU64::new(0),
            sealed_at_seq: AtomicU64::new(SEQ_MAX),
        })
    }

    pub fn id(&self) -> u64 {
        self.id
    }

    /// Adds one entry. Only the engine's write leader inserts.
    pub fn insert(&self, user_key: &[u8], seq: SeqNo, kind: ValueKind, value: &[u8]) {
        let mut buf = Vec::with_capacity(user_key.len() + 8 + value.len());
        append_internal_key(&mut buf, user_key, seq, kind);
        let key_len = buf.len() as u32;
        buf.extend_from_slice(value);
        let charged = buf.len() + ENTRY_OVERHEAD_BYTES;
        self.map.insert(
            MemEntry {
                buf: buf.into_boxed_slice(),
                key_len,
            },
            (),
        );
        self.size_bytes.fetch_add(charged, Ordering::Relaxed);
        self.seq_min.fetch_min(seq, Ordering::Relaxed);
        self.seq_max.fetch_max(seq, Ordering::Relaxed);
    }

    /// Approximate memory held, in bytes.
    pub fn size_bytes(&self) -> usize {
        self.size_bytes.load(Ordering::Relaxed)
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Smallest sequence number inserted (SEQ_MAX when empty).
    pub fn seq_min(&self) -> SeqNo {
        self.seq_min.load(Ordering::Relaxed)
    }

    /// Largest sequence number inserted (0 when empty).
    pub fn seq_max(&self) -> SeqNo {
        self.seq_max.load(Ordering::Relaxed)
    }

    pub fn seal(&self, at_seq: SeqNo) {
        self.sealed_at_seq.store(at_seq, Ordering::Release);
    }

    pub fn sealed_at_seq(&self) -> SeqNo {
        self.sealed_at_seq.load(Ordering::Acquire)
    }

    /// Looks `user_key` up as of `snapshot`, appending merge operands
    /// (newest first) to `operands`.
    pub fn get(&self, lookup: &[u8], operands: &mut Vec<Vec<u8>>) -> Lookup {
        let user_key = crate::key::user_key(lookup);
        let mut cur = self.map.lower_bound(Bound::Included(IKey::new(lookup)));
        while let Some(e) = cur {
            let Some(p) = crate::key::parse_internal_key(e.key().key()) else {
                debug_assert!(false, "memtable holds a malformed key");
                return Lookup::Continue;
            };
            if p.user_key != user_key {
                break;
            }
            match resolve_step(p.kind, e.key().value(), operands) {
                Some(found) => return found,
                None => cur = e.next(),
            }
        }
        Lookup::Continue
    }

    /// A cursor over the memtable, keeping it alive.
    pub fn iter(self: &Arc<Self>) -> MemIter {
        MemIter {
            cur: None,
            _mem: self.clone(),
        }
    }
}

/// One step of a point lookup: a Put ends it, a Delete ends it, a merge
/// operand is collected and the lookup goes on to older entries.
pub fn resolve_step(kind: ValueKind, value: &[u8], operands: &mut Vec<Vec<u8>>) -> Option<Lookup> {
    match kind {
        ValueKind::Put => Some(Lookup::Found(value.to_vec())),
        ValueKind::Delete => Some(Lookup::Deleted),
        ValueKind::Merge => {
            operands.push(value.to_vec());
            None
        }
    }
}

/// A cursor over one memtable.
pub struct MemIter {
    // Field order matters: `cur` borrows from the map that `_mem` keeps
    // alive, so it must be dropped first.
    cur: Option<Entry<'static, MemEntry, ()>>,
    _mem: Arc<Memtable>,
}

impl MemIter {
    fn map(&self) -> &'static SkipMap<MemEntry, ()> {
        let map: &SkipMap<MemEntry, ()> = &self._mem.map;
        // SAFETY: the map lives as long as `_mem`, which outlives every
        // entry stored in `cur` (dropped first, see field order) and every
        // use of the returned reference inside this iterator.
        unsafe { &*(map as *const SkipMap<MemEntry, ()>) }
    }
}

impl InternalIterator for MemIter {
    fn valid(&self) -> bool {
        self.cur.is_some()
    }
    fn seek_to_first(&mut self) -> Result<()> {
        self.cur = self.map().front();
        Ok(())
    }
    fn seek_to_last(&mut self) -> Result<()> {
        self.cur = self.map().back();
        Ok(())
    }
    fn seek(&mut self, target: &[u8]) -> Result<()> {
        self.cur = self.map().lower_bound(Bound::Included(IKey::new(target)));
        Ok(())
    }
    fn seek_for_prev(&mut self, target: &[u8]) -> Result<()> {
        self.cur = self.map().upper_bound(Bound::Included(IKey::new(target)));
        Ok(())
    }
    fn next(&mut self) -> Result<()> {
        self.cur = self.cur.take().and_then(|e| e.next());
        Ok(())
    }
    fn prev(&mut self) -> Result<()> {
        self.cur = self.cur.take().and_then(|e| e.prev());
        Ok(())
    }
    fn key(&self) -> &[u8] {
        self.cur.as_ref().expect("valid iterator").key().key()
    }
    fn value(&self) -> &[u8] {
        self.cur.as_ref().expect("valid iterator").key().value()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::{lookup_key, user_key};

    #[test]
    fn newest_visible_version_wins() {
        let m = Memtable::new(1);
        m.insert(b"k", 1, ValueKind::Put, b"v1");
        m.insert(b"k", 3, ValueKind::Put, b"v3");
        m.insert(b"k", 5, ValueKind::Delete, b"");
        m.insert(b"j", 4, ValueKind::Put, b"j");
        let mut ops = Vec::new();
        assert_eq!(m.get(&lookup_key(b"k", 2), &mut ops), Lookup::Found(b"v1".to_vec()));
        assert_eq!(m.get(&lookup_key(b"k", 4), &mut ops), Lookup::Found(b"v3".to_vec()));
        assert_eq!(m.get(&lookup_key(b"k", 9), &mut ops), Lookup::Deleted);
        assert_eq!(m.get(&lookup_key(b"k", 0), &mut ops), Lookup::Continue);
        assert_eq!(m.get(&lookup_key(b"x", 9), &mut ops), Lookup::Continue);
        m.insert(b"m", 7, ValueKind::Merge, b"+1");
        m.insert(b"m", 8, ValueKind::Merge, b"+2");
        assert_eq!(m.get(&lookup_key(b"m", 9), &mut ops), Lookup::Continue);
        assert_eq!(ops, vec![b"+2".to_vec(), b"+1".to_vec()]);
        assert_eq!((m.seq_min(), m.seq_max(), m.len()), (1, 8, 6));
    }

    #[test]
    fn cursor_both_directions() {
        let m = Memtable::new(1);
        for (i, k) in [b"b", b"d", b"a", b"c"].iter().enumerate() {
            m.insert(*k, i as u64 + 1, ValueKind::Put, *k);
        }
        let mut it = m.iter();
        it.seek_to_first().unwrap();
        let mut fwd = Vec::new();
        while it.valid() {
            fwd.push(user_key(it.key()).to_vec());
            it.next().unwrap();
        }
        assert_eq!(fwd, vec![b"a", b"b", b"c", b"d"]);
        it.seek_for_prev(&lookup_key(b"c", 0)).unwrap();
        assert_eq!(user_key(it.key()), b"b");
        it.prev().unwrap();
        assert_eq!(user_key(it.key()), b"a");
        it.prev().unwrap();
        assert!(!it.valid());
    }
}
