//! A sharded LRU cache of decompressed blocks, keyed by (file number, block
//! offset), bounded in bytes and shared by every table. Engines may share
//! one (a cluster server's tablets, each an engine of its own): each holds
//! a sibling handle (`BlockCache::sibling`) whose keys carry a namespace of
//! its own, since engines number their files independently.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;

use super::block::Block;

/// Bytes charged per entry on top of the block itself (slot, map, Arc).
const ENTRY_OVERHEAD_BYTES: usize = 96;
const MAX_SHARDS: usize = 16;
/// Shards are at least this large, so small caches still hold big blocks.
const MIN_SHARD_BYTES: usize = 512 << 10;
/// Slot 0 of every shard is the list sentinel.
const SENTINEL: u32 = 0;

/// (namespace, file number, block offset).
type CacheKey = (u64, u64, u64);

/// Namespaces of handles: each new cache and each sibling takes the next.
static NEXT_NAMESPACE: AtomicU64 = AtomicU64::new(1);

/// FxHash-style hasher: cache keys are two integers, no DoS concern.
#[derive(Default)]
struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0 ^ (self.0 >> 29)
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = (self.0.rotate_left(5) ^ v).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
}

struct Slot {
    key: CacheKey,
    block: Option<Arc<Block>>,
    charge: usize,
    prev: u32,
    next: u32,
}

/// One LRU list: `slots[SENTINEL].next` is the most recently used.
struct Shard {
    map: HashMap<CacheKey, u32, BuildHasherDefault<KeyHasher>>,
    slots: Vec<Slot>,
    free: Vec<u32>,
    usage_bytes: usize,
    capacity_bytes: usize,
}

impl Shard {
    fn new(capacity_bytes: usize) -> Shard {
        Shard {
            map: HashMap::default(),
            slots: vec![Slot {
                key: (0, 0, 0),
                block: None,
                charge: 0,
                prev: SENTINEL,
                next: SENTINEL,
            }],
            free: Vec::new(),
            usage_bytes: 0,
            capacity_bytes,
        }
    }

    fn unlink(&mut self, i: u32) {
        let (p, n) = (self.slots[i as usize].prev, self.slots[i as usize].next);
        self.slots[p as usize].next = n;
        self.slots[n as usize].prev = p;
    }

    fn push_front(&mut self, i: u32) {
        let first = self.slots[SENTINEL as usize].next;
        self.slots[i as usize].prev = SENTINEL;
        self.slots[i as usize].next = first;
        self.slots[first as usize].prev = i;
        self.slots[SENTINEL as usize].next = i;
    }

    /// Removes slot `i`; returns the bytes it freed.
    fn remove(&mut self, i: u32) -> usize {
        self.unlink(i);
        let slot = &mut self.slots[i as usize];
        let key = slot.key;
        let charge = std::mem::take(&mut slot.charge);
        slot.block = None;
        self.map.remove(&key);
        self.free.push(i);
        self.usage_bytes -= charge;
        charge
    }
}

/// A cache of decompressed blocks keyed by (file number, block offset),
/// bounded in bytes (block sizes plus a small per-entry overhead), sharded
/// LRU; shared by all tables and trees, thread-safe. A handle: its
/// siblings share its blocks' memory and bound, each with keys of its own.
pub struct BlockCache {
    shared: Arc<Shared>,
    namespace: u64,
}

struct Shared {
    shards: Box<[Mutex<Shard>]>,
    capacity_bytes: usize,
    usage_bytes: AtomicUsize,
    hits: AtomicU64,
    misses: AtomicU64,
}

impl std::fmt::Debug for BlockCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlockCache")
            .field("capacity_bytes", &self.shared.capacity_bytes)
            .field("namespace", &self.namespace)
            .field("usage_bytes", &self.usage_bytes())
            .finish()
    }
}

impl BlockCache {
    /// A cache holding at most `capacity_bytes`.
    pub fn new(capacity_bytes: usize) -> Arc<BlockCache> {
        let num_shards = (capacity_bytes / MIN_SHARD_BYTES).clamp(1, MAX_SHARDS);
        let per_shard = capacity_bytes / num_shards;
        Arc::new(BlockCache {
            shared: Arc::new(Shared {
                shards: (0..num_shards)
                    .map(|_| Mutex::new(Shard::new(per_shard)))
                    .collect(),
                capacity_bytes,
                usage_bytes: AtomicUsize::new(0),
                hits: AtomicU64::new(0),
                misses: AtomicU64::new(0),
            }),
            namespace: NEXT_NAMESPACE.fetch_add(1, Ordering::Relaxed),
        })
    }

    /// A handle on this cache's memory and bound with keys of its own: for
    /// another engine, whose file numbers may be this one's.
    pub fn sibling(&self) -> Arc<BlockCache> {
        Arc::new(BlockCache {
            shared: self.shared.clone(),
            namespace: NEXT_NAMESPACE.fetch_add(1, Ordering::Relaxed),
        })
    }

    /// The byte bound (shared with siblings).
    pub fn capacity_bytes(&self) -> usize {
        self.shared.capacity_bytes
    }

    /// Bytes currently charged (by this handle and its siblings).
    pub fn usage_bytes(&self) -> usize {
        self.shared.usage_bytes.load(Ordering::Relaxed)
    }

    /// Lookups that found their block (through any sibling).
    pub fn hits(&self) -> u64 {
        self.shared.hits.load(Ordering::Relaxed)
    }

    /// Lookups that did not.
    pub fn misses(&self) -> u64 {
        self.shared.misses.load(Ordering::Relaxed)
    }

    fn shard(&self, key: CacheKey) -> &Mutex<Shard> {
        let h = ((key.1 ^ key.0.rotate_left(32)).wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ key.2)
            .wrapping_mul(0xbf58_476d_1ce4_e5b9);
        let shards = &self.shared.shards;
        &shards[((h >> 40) as usize) % shards.len()]
    }

    /// The cached block at (file, offset), marking it recently used.
    pub(crate) fn get(&self, file_number: u64, offset: u64) -> Option<Arc<Block>> {
        let key = (self.namespace, file_number, offset);
        let mut s = self.shard(key).lock();
        let found = s.map.get(&key).copied();
        match found {
            Some(i) => {
                s.unlink(i);
                s.push_front(i);
                let b = s.slots[i as usize].block.clone();
                drop(s);
                self.shared.hits.fetch_add(1, Ordering::Relaxed);
                b
            }
            None => {
                drop(s);
                self.shared.misses.fetch_add(1, Ordering::Relaxed);
                None
            }
        }
    }

    /// Caches a block, evicting least recently used ones to stay in bounds.
    /// Blocks larger than a shard are not cached.
    pub(crate) fn insert(&self, file_number: u64, offset: u64, block: Arc<Block>) {
        let key = (self.namespace, file_number, offset);
        let charge = block.size_bytes() + ENTRY_OVERHEAD_BYTES;
        let mut s = self.shard(key).lock();
        if charge > s.capacity_bytes {
            return;
        }
        let mut freed = 0;
        if let Some(&i) = s.map.get(&key) {
            freed += s.remove(i);
        }
        let i = match s.free.pop() {
            Some(i) => i,
            None => {
                s.slots.push(Slot {
                    key,
                    block: None,
                    charge: 0,
                    prev: SENTINEL,
                    next: SENTINEL,
                });
                (s.slots.len() - 1) as u32
            }
        };
        let slot = &mut s.slots[i as usize];
        slot.key = key;
        slot.block = Some(block);
        slot.charge = charge;
        s.push_front(i);
        s.map.insert(key, i);
        s.usage_bytes += charge;
        while s.usage_bytes > s.capacity_bytes {
            let lru = s.slots[SENTINEL as usize].prev;
            if lru == SENTINEL {
                break;
            }
            freed += s.remove(lru);
        }
        drop(s);
        self.shared.usage_bytes.fetch_add(charge, Ordering::Relaxed);
        self.shared.usage_bytes.fetch_sub(freed, Ordering::Relaxed);
    }

    /// Drops every block of a file (called when a table file is deleted).
    pub fn evict_file(&self, file_number: u64) {
        for shard in self.shared.shards.iter() {
            let mut s = shard.lock();
            let mut freed = 0;
            for i in 1..s.slots.len() as u32 {
                let slot = &s.slots[i as usize];
                if slot.block.is_some() && slot.key.0 == self.namespace && slot.key.1 == file_number
                {
                    freed += s.remove(i);
                }
            }
            drop(s);
            self.shared.usage_bytes.fetch_sub(freed, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn siblings_share_the_bound_not_the_keys() {
        let a = BlockCache::new(1 << 20);
        let b = a.sibling();
        a.insert(7, 0, block(10_000));
        assert!(a.get(7, 0).is_some());
        // Another engine's file 7 is another file.
        assert!(b.get(7, 0).is_none());
        b.insert(7, 0, block(20_000));
        assert!(a.usage_bytes() > 30_000 && a.usage_bytes() == b.usage_bytes());
        // Dropping b's file 7 leaves a's.
        b.evict_file(7);
        assert!(b.get(7, 0).is_none());
        assert!(a.get(7, 0).is_some());
        // One bound for both: b's blocks push a's out.
        for i in 0..200 {
            b.insert(1, i * 10_000, block(10_000));
        }
        assert!(a.usage_bytes() <= a.capacity_bytes());
        assert!(a.get(7, 0).is_none());
    }

    /// A one-entry block of about `bytes` bytes.
    fn block(bytes: usize) -> Arc<Block> {
        let mut b = super::super::block::BlockBuilder::new(16);
        b.add(&[b'k'; 8], &vec![1u8; bytes.saturating_sub(32)]);
        Arc::new(Block::new(b.finish().to_vec()).unwrap())
    }

    #[test]
    fn lru_bound_and_accounting() {
        let cache = BlockCache::new(100 << 10);
        assert_eq!(cache.shared.shards.len(), 1);
        for i in 0..20u64 {
            cache.insert(1, i * 10_000, block(10_000));
            assert!(cache.usage_bytes() <= cache.capacity_bytes());
        }
        // Only the most recent ~9 remain.
        assert!(cache.get(1, 0).is_none());
        assert!(cache.get(1, 19 * 10_000).is_some());
        assert_eq!((cache.hits(), cache.misses()), (1, 1));
        // Touching an old entry protects it from eviction.
        let oldest = (0..20u64)
            .find(|i| cache.get(1, i * 10_000).is_some())
            .unwrap();
        cache.insert(1, 1 << 40, block(10_000));
        assert!(cache.get(1, oldest * 10_000).is_some());
        // Too big to cache at all.
        cache.insert(2, 0, block(200 << 10));
        assert!(cache.get(2, 0).is_none());
        // Re-inserting the same key does not double-charge.
        let before = cache.usage_bytes();
        cache.insert(1, 1 << 40, block(10_000));
        assert_eq!(cache.usage_bytes(), before);
        cache.evict_file(1);
        assert_eq!(cache.usage_bytes(), 0);
        assert!(cache.get(1, 19 * 10_000).is_none());
    }

    #[test]
    fn sharded_and_concurrent() {
        let cache = BlockCache::new(8 << 20);
        assert_eq!(cache.shared.shards.len(), 16);
        std::thread::scope(|s| {
            for t in 0..4u64 {
                let cache = &cache;
                s.spawn(move || {
                    for i in 0..2_000u64 {
                        cache.insert(t, i, block(4096));
                        cache.get(t, i / 2);
                    }
                });
            }
        });
        assert!(cache.usage_bytes() <= cache.capacity_bytes());
        for t in 0..4 {
            cache.evict_file(t);
        }
        assert_eq!(cache.usage_bytes(), 0);
    }
}
