//! An arena-backed skiplist of internal keys: one writer at a time, any
//! number of lock-free readers (the design of LevelDB's and RocksDB's
//! memtables).
//!
//! Each node lives in the arena as one block: its header (with a pointer
//! to its value), its tower of next pointers, then the key bytes, so a
//! search touches one cache line or two per node and an insert allocates
//! nothing from the heap. Values live in a second arena: a search never
//! reads them, and keeping them out of the nodes packs the nodes into a
//! third of the memory (16-byte keys, 100-byte values), so more of the
//! lines and pages a search misses on are in the caches and the TLB.
//! Nodes are never removed; the arenas are freed with the list.
//!
//! Publication: a node is fully written before the Release store that links
//! it at level 0 and above; readers follow links with Acquire loads, so a
//! reader that reaches a node sees its bytes.

use std::cmp::Ordering as CmpOrdering;
use std::ptr;
use std::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};

use parking_lot::Mutex;

use crate::key::cmp_internal;

/// Tallest tower; with a branching factor of 2 this covers 2^20 = 1M
/// entries per list at the expected search cost (a larger list has a few
/// more nodes at its top level).
const MAX_HEIGHT: usize = 20;
/// One node in `BRANCHING` rises a level. 2 rather than LevelDB's 4: the
/// expected number of nodes a search visits is about the same, but with 2
/// fewer of them are at the bottom levels, the ones too many to stay in
/// the CPU's caches, where each visit is a cache miss (measured with
/// `examples/memtable_insert.rs`: 440k random inserts, about 15% less time
/// per insert and per lookup).
const BRANCHING: u32 = 2;

/// Largest arena chunk; entries larger than a quarter of it get their own
/// chunk.
const CHUNK_BYTES: usize = 1 << 20;
/// First arena chunk: chunks double from here up to `CHUNK_BYTES`, so a
/// memtable holding little (one of a thousand idle tablets) holds little
/// memory too, whatever the allocator does with zeroed blocks.
const FIRST_CHUNK_BYTES: usize = 16 << 10;

/// A node's header; its tower of `height` next pointers follows it, then
/// the key bytes. Nodes are only handled through raw pointers (the header
/// struct does not cover the whole node).
#[repr(C)]
struct Node {
    /// The key's length in bytes (low `KEY_LEN_BITS` bits) and the tower's
    /// height (the bits above): one word keeps the header at 16 bytes.
    key_len_height: u32,
    value_len: u32,
    /// `value_len` bytes in the value arena.
    value: *const u8,
}

/// Bits of `Node::key_len_height` holding the key's length: keys are
/// shorter than 128 MiB (the engine's batches are far smaller).
const KEY_LEN_BITS: u32 = 27;
const _: () = assert!(MAX_HEIGHT < 1 << (32 - KEY_LEN_BITS));

/// # Safety
/// `n` is the head or a node allocated by a list.
unsafe fn height(n: *const Node) -> usize {
    ((*n).key_len_height >> KEY_LEN_BITS) as usize
}

/// # Safety
/// As for `height`.
unsafe fn key_len(n: *const Node) -> usize {
    ((*n).key_len_height & ((1 << KEY_LEN_BITS) - 1)) as usize
}

const HEADER_BYTES: usize = std::mem::size_of::<Node>();
const LINK_BYTES: usize = std::mem::size_of::<AtomicPtr<Node>>();

/// Bytes of a node header with a tower of `height`.
fn node_header_bytes(height: usize) -> usize {
    HEADER_BYTES + height * LINK_BYTES
}

/// The link of `n` at `level`.
///
/// # Safety
/// `n` is the head or a node allocated by this list, and level < its height.
unsafe fn link<'a>(n: *const Node, level: usize) -> &'a AtomicPtr<Node> {
    debug_assert!(level < height(n));
    &*((n as *const u8).add(HEADER_BYTES + level * LINK_BYTES) as *const AtomicPtr<Node>)
}

/// # Safety
/// As for `link`.
unsafe fn next(n: *const Node, level: usize) -> *mut Node {
    link(n, level).load(Ordering::Acquire)
}

/// # Safety
/// `n` is a published node of a live list.
unsafe fn key<'a>(n: *const Node) -> &'a [u8] {
    let data = (n as *const u8).add(node_header_bytes(height(n)));
    std::slice::from_raw_parts(data, key_len(n))
}

/// # Safety
/// `n` is a published node of a live list.
unsafe fn value<'a>(n: *const Node) -> &'a [u8] {
    if (*n).value_len == 0 {
        return &[];
    }
    std::slice::from_raw_parts((*n).value, (*n).value_len as usize)
}

/// A bump allocator of zeroed, 8-aligned memory in chunks that live as
/// long as it does.
struct Bump {
    chunks: Vec<Box<[u64]>>,
    /// Size of the next chunk (doubling up to `CHUNK_BYTES`).
    next_chunk_bytes: usize,
    /// Next free byte in the last chunk, and its end.
    cur: *mut u8,
    end: *mut u8,
}

impl Bump {
    fn new() -> Bump {
        Bump {
            chunks: Vec::new(),
            next_chunk_bytes: FIRST_CHUNK_BYTES,
            cur: ptr::null_mut(),
            end: ptr::null_mut(),
        }
    }

    /// Bytes held in chunks.
    #[cfg(test)]
    fn held_bytes(&self) -> usize {
        self.chunks.iter().map(|c| c.len() * 8).sum()
    }

    /// 8-aligned zeroed memory that lives as long as the allocator.
    fn alloc(&mut self, bytes: usize) -> *mut u8 {
        let bytes = (bytes + 7) & !7;
        if bytes > CHUNK_BYTES / 4 {
            let mut chunk = vec![0u64; bytes / 8].into_boxed_slice();
            let p = chunk.as_mut_ptr() as *mut u8;
            self.chunks.push(chunk);
            return p;
        }
        if (self.end as usize) - (self.cur as usize) < bytes {
            let size = self.next_chunk_bytes.max(bytes);
            debug_assert!(size <= CHUNK_BYTES && size.is_multiple_of(8));
            self.next_chunk_bytes = (self.next_chunk_bytes * 2).min(CHUNK_BYTES);
            let mut chunk = vec![0u64; size / 8].into_boxed_slice();
            self.cur = chunk.as_mut_ptr() as *mut u8;
            // SAFETY: `size` is the chunk's length in bytes.
            self.end = unsafe { self.cur.add(size) };
            self.chunks.push(chunk);
        }
        let p = self.cur;
        // SAFETY: checked above that `bytes` fit before `end`.
        self.cur = unsafe { self.cur.add(bytes) };
        p
    }
}

struct Arena {
    /// For each level, the last node linked at that level (the head while
    /// the level is empty): an insert that sorts after `tail[0]` appends
    /// with these as its splice, without a search (sequential writes).
    tail: [*mut Node; MAX_HEIGHT],
    /// For each level, the last node at that level whose key is <= the
    /// key inserted last (`hint[0]` is that node; the head before the
    /// first insert): the splice a search would find for a key just above
    /// it. An insert of a key above it that no node at level `i` separates
    /// from it needs searches only below level `i` (a row's cells, which
    /// sort next to each other, are inserted one after another).
    hint: [*mut Node; MAX_HEIGHT],
    nodes: Bump,
    values: Bump,
    rng: u32,
}

// SAFETY: the raw pointers point into the bumps' chunks, owned by the arena.
unsafe impl Send for Arena {}

impl Arena {
    fn random_height(&mut self) -> usize {
        let mut h = 1;
        loop {
            // xorshift32
            self.rng ^= self.rng << 13;
            self.rng ^= self.rng >> 17;
            self.rng ^= self.rng << 5;
            if h >= MAX_HEIGHT || !self.rng.is_multiple_of(BRANCHING) {
                return h;
            }
            h += 1;
        }
    }
}

pub struct SkipList {
    head: *mut Node,
    height: AtomicUsize,
    len: AtomicUsize,
    arena_bytes: AtomicUsize,
    /// The writer's state; the lock serializes inserts (readers never take it).
    arena: Mutex<Arena>,
}

// SAFETY: nodes are immutable once published, linked with atomics, and
// live as long as the list; the arena is behind a mutex.
unsafe impl Send for SkipList {}
unsafe impl Sync for SkipList {}

impl SkipList {
    pub fn new() -> SkipList {
        let mut arena = Arena {
            tail: [ptr::null_mut(); MAX_HEIGHT],
            hint: [ptr::null_mut(); MAX_HEIGHT],
            nodes: Bump::new(),
            values: Bump::new(),
            rng: 0x9e37_79b9,
        };
        let head = arena.nodes.alloc(node_header_bytes(MAX_HEIGHT)) as *mut Node;
        // SAFETY: freshly allocated, zeroed (null tower), aligned memory.
        unsafe {
            (*head).key_len_height = (MAX_HEIGHT as u32) << KEY_LEN_BITS;
        }
        arena.tail = [head; MAX_HEIGHT];
        arena.hint = [head; MAX_HEIGHT];
        SkipList {
            head,
            height: AtomicUsize::new(1),
            len: AtomicUsize::new(0),
            arena_bytes: AtomicUsize::new(0),
            arena: Mutex::new(arena),
        }
    }

    pub fn len(&self) -> usize {
        self.len.load(Ordering::Acquire)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes taken from the arena by entries.
    pub fn arena_bytes(&self) -> usize {
        self.arena_bytes.load(Ordering::Relaxed)
    }

    /// Inserts an internal key (which must not be present) and its value,
    /// written by `fill(key_dst, value_dst)`.
    pub fn insert_with(
        &self,
        key_len: usize,
        value_len: usize,
        fill: impl FnOnce(&mut [u8], &mut [u8]),
    ) {
        assert!(
            key_len < 1 << KEY_LEN_BITS && u32::try_from(value_len).is_ok(),
            "memtable entry too large: {key_len}-byte key, {value_len}-byte value"
        );
        let mut arena = self.arena.lock();
        let height = arena.random_height();
        let node_bytes = node_header_bytes(height) + key_len;
        let node = arena.nodes.alloc(node_bytes) as *mut Node;
        let value_dst = if value_len == 0 {
            ptr::null_mut()
        } else {
            arena.values.alloc(value_len)
        };
        let bytes = node_bytes + value_len;
        // SAFETY: `node` is fresh, zeroed, aligned, and `node_bytes` long,
        // `value_dst` (unless null) `value_len` long; neither is reachable
        // by readers until the node is linked below.
        unsafe {
            (*node).key_len_height = key_len as u32 | (height as u32) << KEY_LEN_BITS;
            (*node).value_len = value_len as u32;
            (*node).value = value_dst;
            let k = std::slice::from_raw_parts_mut(
                (node as *mut u8).add(node_header_bytes(height)),
                key_len,
            );
            let v: &mut [u8] = if value_len == 0 {
                &mut []
            } else {
                std::slice::from_raw_parts_mut(value_dst, value_len)
            };
            fill(k, v);
        }
        let mut prev = [ptr::null_mut::<Node>(); MAX_HEIGHT];
        // SAFETY: the node's key is written; tail nodes are published.
        let new_key = unsafe { key(node) };
        // SAFETY (the key reads): tail and hint nodes are the head or
        // published nodes.
        let below = |n: *mut Node| {
            n == self.head || cmp_internal(unsafe { key(n) }, new_key) == CmpOrdering::Less
        };
        if below(arena.tail[0]) {
            prev = arena.tail;
        } else if below(arena.hint[0]) {
            self.splice_from_hint(&arena.hint, new_key, &mut prev);
        } else {
            self.find_splice(new_key, &mut prev);
        }
        let list_height = self.height.load(Ordering::Relaxed);
        if height > list_height {
            for p in prev.iter_mut().take(height).skip(list_height) {
                *p = self.head;
            }
            self.height.store(height, Ordering::Release);
        }
        for (level, &p) in prev.iter().enumerate().take(height) {
            // SAFETY: every prev is the head or a published node of height
            // > level; `node` has height > level.
            unsafe {
                let after = next(p, level);
                debug_assert!(
                    after.is_null() || cmp_internal(key(after), new_key) == CmpOrdering::Greater
                );
                link(node, level).store(after, Ordering::Relaxed);
                link(p, level).store(node, Ordering::Release);
                if after.is_null() {
                    arena.tail[level] = node;
                }
            }
        }
        // Levels at and above the list's height have only ever held the
        // head, as they must.
        let list_height = list_height.max(height);
        for (level, h) in arena.hint.iter_mut().enumerate().take(list_height) {
            *h = if level < height { node } else { prev[level] };
        }
        self.arena_bytes.fetch_add(bytes, Ordering::Relaxed);
        self.len.fetch_add(1, Ordering::Release);
    }

    /// `find_splice` for a `target` above `hint[0]`, given the splice just
    /// above `hint[0]` (`Arena::hint`): finds the lowest level at which no
    /// node lies between `hint[0]` and `target` (the hint is right there
    /// and at every level above), then searches the levels below from it.
    fn splice_from_hint(
        &self,
        hint: &[*mut Node; MAX_HEIGHT],
        target: &[u8],
        prev: &mut [*mut Node; MAX_HEIGHT],
    ) {
        let list_height = self.height.load(Ordering::Relaxed);
        // SAFETY: hint nodes are the head or published nodes taller than
        // their level; non-null links point at published nodes.
        let separated = |level: usize| unsafe {
            let n = next(hint[level], level);
            !n.is_null() && cmp_internal(key(n), target) == CmpOrdering::Less
        };
        let Some(good) = (0..list_height).find(|&l| !separated(l)) else {
            self.find_splice(target, prev);
            return;
        };
        prev[good..].copy_from_slice(&hint[good..]);
        let mut x = hint[good];
        for level in (0..good).rev() {
            loop {
                // SAFETY: x is a published node taller than `good`.
                let n = unsafe { next(x, level) };
                if n.is_null() || cmp_internal(unsafe { key(n) }, target) != CmpOrdering::Less {
                    break;
                }
                x = n;
            }
            prev[level] = x;
        }
    }

    /// For each level, the last node whose key is < `target`; returns the
    /// node after it at level 0 as compared (the first node >= `target`, or
    /// null). Callers must use this node, never reload the link: a node
    /// inserted meanwhile could sort below `target`.
    fn find_splice(&self, target: &[u8], prev: &mut [*mut Node; MAX_HEIGHT]) -> *mut Node {
        let mut x = self.head;
        let mut level = self.height.load(Ordering::Acquire) - 1;
        loop {
            // SAFETY: x is the head or a published node taller than level;
            // non-null links point at published nodes.
            let n = unsafe { next(x, level) };
            if !n.is_null() && cmp_internal(unsafe { key(n) }, target) == CmpOrdering::Less {
                x = n;
                continue;
            }
            prev[level] = x;
            if level == 0 {
                return n;
            }
            level -= 1;
        }
    }

    /// The first node with key >= `target`, or null.
    fn seek_ge(&self, target: &[u8]) -> *mut Node {
        let mut prev = [ptr::null_mut(); MAX_HEIGHT];
        self.find_splice(target, &mut prev)
    }

    /// The last node with key < `key` (`None` key: the last node), or null.
    fn seek_lt(&self, target: Option<&[u8]>) -> *mut Node {
        let mut x = self.head;
        let mut level = self.height.load(Ordering::Acquire) - 1;
        loop {
            // SAFETY: x is the head or a published node taller than level;
            // non-null links point at published nodes.
            let n = unsafe { next(x, level) };
            let go = !n.is_null()
                && target.is_none_or(|t| cmp_internal(unsafe { key(n) }, t) == CmpOrdering::Less);
            if go {
                x = n;
                continue;
            }
            if level == 0 {
                return if x == self.head { ptr::null_mut() } else { x };
            }
            level -= 1;
        }
    }
}

impl Default for SkipList {
    fn default() -> Self {
        SkipList::new()
    }
}

/// A cursor over a skiplist; the caller keeps the list alive.
pub struct Cursor {
    node: *const Node,
}

// SAFETY: a cursor only reads published, immutable nodes.
unsafe impl Send for Cursor {}

impl Cursor {
    pub fn new() -> Cursor {
        Cursor { node: ptr::null() }
    }

    pub fn valid(&self) -> bool {
        !self.node.is_null()
    }

    pub fn key(&self) -> &[u8] {
        debug_assert!(self.valid());
        // SAFETY: valid cursors point at published nodes of a live list.
        unsafe { key(self.node) }
    }

    pub fn value(&self) -> &[u8] {
        debug_assert!(self.valid());
        // SAFETY: as for key().
        unsafe { value(self.node) }
    }

    pub fn seek_to_first(&mut self, list: &SkipList) {
        // SAFETY: the head has a full tower.
        self.node = unsafe { next(list.head, 0) };
    }

    pub fn seek_to_last(&mut self, list: &SkipList) {
        self.node = list.seek_lt(None);
    }

    pub fn seek(&mut self, list: &SkipList, target: &[u8]) {
        self.node = list.seek_ge(target);
    }

    /// The last entry <= key.
    pub fn seek_for_prev(&mut self, list: &SkipList, target: &[u8]) {
        let n = list.seek_ge(target);
        // SAFETY: non-null nodes are published.
        if !n.is_null() && cmp_internal(unsafe { key(n) }, target) == CmpOrdering::Equal {
            self.node = n;
        } else {
            self.node = list.seek_lt(Some(target));
        }
    }

    pub fn next(&mut self) {
        debug_assert!(self.valid());
        // SAFETY: valid cursors point at published nodes.
        self.node = unsafe { next(self.node, 0) };
    }

    pub fn prev(&mut self, list: &SkipList) {
        debug_assert!(self.valid());
        // SAFETY: as for next().
        self.node = list.seek_lt(Some(unsafe { key(self.node) }));
    }
}

impl Default for Cursor {
    fn default() -> Self {
        Cursor::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::{internal_key, ValueKind};
    use rand::{Rng, SeedableRng};

    fn insert(l: &SkipList, k: &[u8], v: &[u8]) {
        l.insert_with(k.len(), v.len(), |kd, vd| {
            kd.copy_from_slice(k);
            vd.copy_from_slice(v);
        });
    }

    /// Checks that a forward walk of `l` meets exactly `model`'s keys,
    /// sorted; returns the cursor, run off the end.
    fn holds_in_order(l: &SkipList, model: &mut [Vec<u8>]) -> Cursor {
        model.sort_by(|a, b| cmp_internal(a, b));
        let mut c = Cursor::new();
        c.seek_to_first(l);
        for k in model.iter() {
            assert_eq!(c.key(), k.as_slice());
            c.next();
        }
        assert!(!c.valid());
        c
    }

    #[test]
    fn chunks_grow_with_the_memtable() {
        let l = SkipList::new();
        let allocated = |l: &SkipList| -> usize {
            let a = l.arena.lock();
            a.nodes.held_bytes() + a.values.held_bytes()
        };
        for seq in 1..10u64 {
            insert(&l, &internal_key(b"k", seq, ValueKind::Put), b"v");
        }
        assert_eq!(
            allocated(&l),
            2 * FIRST_CHUNK_BYTES,
            "a tiny memtable holds one small chunk of nodes and one of values"
        );
        for seq in 10..40_000u64 {
            insert(
                &l,
                &internal_key(&seq.to_be_bytes(), seq, ValueKind::Put),
                &[7; 100],
            );
        }
        let (used, held) = (l.arena_bytes(), allocated(&l));
        assert!(
            held >= used && held <= used + 2 * CHUNK_BYTES,
            "{held} held for {used} used"
        );
    }

    #[test]
    fn matches_a_sorted_vector_in_both_directions() {
        let mut rng = rand::rngs::SmallRng::seed_from_u64(3);
        let l = SkipList::new();
        let mut model = Vec::new();
        for seq in 1..3000u64 {
            let len = rng.gen_range(0..6);
            let uk: Vec<u8> = (0..len).map(|_| rng.gen_range(b'a'..b'e')).collect();
            let k = internal_key(&uk, seq, ValueKind::Put);
            let v = vec![b'v'; rng.gen_range(0..4) * 100_000]; // some entries need their own chunk
            insert(&l, &k, &v);
            model.push((k, v.len()));
        }
        model.sort_by(|a, b| cmp_internal(&a.0, &b.0));
        let mut c = Cursor::new();
        c.seek_to_first(&l);
        for (k, vlen) in &model {
            assert_eq!((c.key(), c.value().len()), (k.as_slice(), *vlen));
            c.next();
        }
        assert!(!c.valid());
        c.seek_to_last(&l);
        for (k, _) in model.iter().rev() {
            assert_eq!(c.key(), k.as_slice());
            c.prev(&l);
        }
        assert!(!c.valid());
        for _ in 0..500 {
            let uk: Vec<u8> = (0..rng.gen_range(0..6))
                .map(|_| rng.gen_range(b'a'..b'f'))
                .collect();
            let t = internal_key(&uk, rng.gen_range(0..3000), ValueKind::Put);
            let ge = model.partition_point(|(k, _)| cmp_internal(k, &t) == CmpOrdering::Less);
            c.seek(&l, &t);
            assert_eq!(
                c.valid().then(|| c.key().to_vec()),
                model.get(ge).map(|m| m.0.clone())
            );
            let le = model.partition_point(|(k, _)| cmp_internal(k, &t) != CmpOrdering::Greater);
            c.seek_for_prev(&l, &t);
            assert_eq!(
                c.valid().then(|| c.key().to_vec()),
                le.checked_sub(1).map(|i| model[i].0.clone())
            );
        }
        assert_eq!(l.len(), model.len());
    }

    #[test]
    fn appends_and_inserts_mix() {
        let l = SkipList::new();
        let mut model = Vec::new();
        // Ascending runs (the append path) interleaved with inserts before them.
        for round in 0..20u64 {
            for i in 0..200u64 {
                let uk = format!("{:04}-{i:05}", 20 - round);
                let k = internal_key(uk.as_bytes(), round * 1000 + i + 1, ValueKind::Put);
                insert(&l, &k, b"v");
                model.push(k);
            }
        }
        let mut c = holds_in_order(&l, &mut model);
        c.seek_to_last(&l);
        assert_eq!(c.key(), model.last().unwrap().as_slice());
    }

    #[test]
    fn ascending_runs_at_random_places_stay_sorted() {
        // Runs of keys above the last one inserted (a row's cells) take the
        // hint's path; runs land between older runs, at every distance.
        let mut rng = rand::rngs::SmallRng::seed_from_u64(11);
        let l = SkipList::new();
        let mut model = Vec::new();
        let mut seq = 0u64;
        for _ in 0..2_000 {
            let row: u32 = rng.gen_range(0..500);
            let mut col: u32 = rng.gen_range(0..50);
            for _ in 0..rng.gen_range(1..12) {
                col += rng.gen_range(0..3); // a repeated column: newer seq sorts first
                seq += 1;
                let k = internal_key(format!("{row:05}/{col:04}").as_bytes(), seq, ValueKind::Put);
                insert(&l, &k, b"v");
                model.push(k);
            }
        }
        let mut c = holds_in_order(&l, &mut model);
        for k in model.iter().step_by(7) {
            c.seek(&l, k);
            assert_eq!(c.key(), k.as_slice(), "every level's links lead to it");
        }
    }

    #[test]
    fn readers_run_while_one_writer_inserts() {
        let l = std::sync::Arc::new(SkipList::new());
        let writer = {
            let l = l.clone();
            std::thread::spawn(move || {
                for seq in 1..20_000u64 {
                    insert(
                        &l,
                        &internal_key(
                            format!("{:08}", seq * 7 % 20_000).as_bytes(),
                            seq,
                            ValueKind::Put,
                        ),
                        b"v",
                    );
                }
            })
        };
        while !writer.is_finished() {
            let mut c = Cursor::new();
            c.seek_to_first(&l);
            let mut prev: Option<Vec<u8>> = None;
            while c.valid() {
                if let Some(p) = &prev {
                    assert_eq!(cmp_internal(p, c.key()), CmpOrdering::Less);
                }
                prev = Some(c.key().to_vec());
                c.next();
            }
        }
        writer.join().unwrap();
        assert_eq!(l.len(), 19_999);
    }
}
