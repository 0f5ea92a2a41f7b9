//! The memtable: a concurrent skiplist of internal keys, bounded in bytes by
//! its owner (the engine switches to a new memtable when one is full).
//!
//! Entries live in an arena skiplist (`skiplist`): each node holds its
//! links and internal key in one block, its value in a second arena, with
//! no heap allocation per entry. Readers never block the writer: lookups
//! and cursors run lock-free while the write leader inserts.

mod skiplist;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use self::skiplist::{Cursor, SkipList};
use crate::error::Result;
use crate::iter::InternalIterator;
use crate::key::{pack_trailer, SeqNo, ValueKind, SEQ_MAX, TRAILER_LEN};

/// A memtable of one tree.
pub struct Memtable {
    list: SkipList,
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
    pub fn new() -> Arc<Memtable> {
        Arc::new(Memtable {
            list: SkipList::new(),
            sealed_at_seq: AtomicU64::new(SEQ_MAX),
        })
    }

    /// Adds one entry. Only the engine's write leader inserts.
    pub fn insert(&self, user_key: &[u8], seq: SeqNo, kind: ValueKind, value: &[u8]) {
        let trailer = pack_trailer(seq, kind).to_le_bytes();
        self.list
            .insert_with(user_key.len() + TRAILER_LEN, value.len(), |k, v| {
                k[..user_key.len()].copy_from_slice(user_key);
                k[user_key.len()..].copy_from_slice(&trailer);
                v.copy_from_slice(value);
            });
    }

    /// Approximate memory held, in bytes.
    pub fn size_bytes(&self) -> usize {
        self.list.arena_bytes()
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    pub fn len(&self) -> usize {
        self.list.len()
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
        let mut c = Cursor::new();
        c.seek(&self.list, lookup);
        while c.valid() {
            let Some(p) = crate::key::parse_internal_key(c.key()) else {
                debug_assert!(false, "memtable holds a malformed key");
                return Lookup::Continue;
            };
            if p.user_key != user_key {
                break;
            }
            debug_assert!(
                p.seq <= crate::key::seq_of(lookup),
                "memtable seek passed the snapshot"
            );
            match resolve_step(p.kind, c.value(), operands) {
                Some(found) => return found,
                None => c.next(),
            }
        }
        Lookup::Continue
    }

    /// A cursor over the memtable, keeping it alive.
    pub fn iter(self: &Arc<Self>) -> MemIter {
        MemIter {
            cur: Cursor::new(),
            mem: self.clone(),
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

/// A cursor over one memtable, keeping it alive.
pub struct MemIter {
    cur: Cursor,
    mem: Arc<Memtable>,
}

impl InternalIterator for MemIter {
    fn valid(&self) -> bool {
        self.cur.valid()
    }
    fn seek_to_first(&mut self) -> Result<()> {
        self.cur.seek_to_first(&self.mem.list);
        Ok(())
    }
    fn seek_to_last(&mut self) -> Result<()> {
        self.cur.seek_to_last(&self.mem.list);
        Ok(())
    }
    fn seek(&mut self, target: &[u8]) -> Result<()> {
        self.cur.seek(&self.mem.list, target);
        Ok(())
    }
    fn seek_for_prev(&mut self, target: &[u8]) -> Result<()> {
        self.cur.seek_for_prev(&self.mem.list, target);
        Ok(())
    }
    fn next(&mut self) -> Result<()> {
        self.cur.next();
        Ok(())
    }
    fn prev(&mut self) -> Result<()> {
        self.cur.prev(&self.mem.list);
        Ok(())
    }
    fn key(&self) -> &[u8] {
        self.cur.key()
    }
    fn value(&self) -> &[u8] {
        self.cur.value()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::{lookup_key, user_key};

    #[test]
    fn newest_visible_version_wins() {
        let m = Memtable::new();
        m.insert(b"k", 1, ValueKind::Put, b"v1");
        m.insert(b"k", 3, ValueKind::Put, b"v3");
        m.insert(b"k", 5, ValueKind::Delete, b"");
        m.insert(b"j", 4, ValueKind::Put, b"j");
        let mut ops = Vec::new();
        assert_eq!(
            m.get(&lookup_key(b"k", 2), &mut ops),
            Lookup::Found(b"v1".to_vec())
        );
        assert_eq!(
            m.get(&lookup_key(b"k", 4), &mut ops),
            Lookup::Found(b"v3".to_vec())
        );
        assert_eq!(m.get(&lookup_key(b"k", 9), &mut ops), Lookup::Deleted);
        assert_eq!(m.get(&lookup_key(b"k", 0), &mut ops), Lookup::Continue);
        assert_eq!(m.get(&lookup_key(b"x", 9), &mut ops), Lookup::Continue);
        m.insert(b"m", 7, ValueKind::Merge, b"+1");
        m.insert(b"m", 8, ValueKind::Merge, b"+2");
        assert_eq!(m.get(&lookup_key(b"m", 9), &mut ops), Lookup::Continue);
        assert_eq!(ops, vec![b"+2".to_vec(), b"+1".to_vec()]);
        assert_eq!(m.len(), 6);
    }

    #[test]
    fn cursor_both_directions() {
        let m = Memtable::new();
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
        // (c, seq 0) sorts after every version of c: lands on c itself.
        it.seek_for_prev(&lookup_key(b"c", 0)).unwrap();
        assert_eq!(user_key(it.key()), b"c");
        it.prev().unwrap();
        assert_eq!(user_key(it.key()), b"b");
        it.prev().unwrap();
        assert_eq!(user_key(it.key()), b"a");
        it.prev().unwrap();
        assert!(!it.valid());
    }
}
