//! A sharded LRU cache of decompressed blocks, keyed by (file number, block
//! offset), bounded in bytes and shared by every table.

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

type CacheKey = (u64, u64);

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
                key: (0, 0),
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
/// LRU; shared by all tables and trees, thread-safe.
pub struct BlockCache {
    shards: Box<[Mutex<Shard>]>,
    capacity_bytes: usize,
    usage_bytes: AtomicUsize,
    hits: AtomicU64,
    misses: AtomicU64,
}

impl std::fmt::Debug for BlockCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlockCache")
            .field("capacity_bytes", &self.capacity_bytes)
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
            shards: (0..num_shards)
                .map(|_| Mutex::new(Shard::new(per_shard)))
                .collect(),
            capacity_bytes,
            usage_bytes: AtomicUsize::new(0),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        })
    }

    /// The byte bound.
    pub fn capacity_bytes(&self) -> usize {
        self.capacity_bytes
    }

    /// Bytes currently charged.
    pub fn usage_bytes(&self) -> usize {
        self.usage_bytes.load(Ordering::Relaxed)
    }

    /// Lookups that found their block.
    pub fn hits(&self) -> u64 {
        self.hits.load(Ordering::Relaxed)
    }

    /// Lookups that did not.
    pub fn misses(&self) -> u64 {
        self.misses.load(Ordering::Relaxed)
    }

    fn shard(&self, key: CacheKey) -> &Mutex<Shard> {
        let h =
            (key.0.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ key.1).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        &self.shards[((h >> 40) as usize) % self.shards.len()]
    }

    /// The cached block at (file, offset), marking it recently used.
    pub(crate) fn get(&self, file_number: u64, offset: u64) -> Option<Arc<Block>> {
        let key = (file_number, offset);
        let mut s = self.shard(key).lock();
        let found = s.map.get(&key).copied();
        match found {
            Some(i) => {
                s.unlink(i);
                s.push_front(i);
                let b = s.slots[i as usize].block.clone();
                drop(s);
                self.hits.fetch_add(1, Ordering::Relaxed);
                b
            }
            None => {
                drop(s);
                self.misses.fetch_add(1, Ordering::Relaxed);
                None
            }
        }
    }

    /// Caches a block, evicting least recently used ones to stay in bounds.
    /// Blocks larger than a shard are not cached.
    pub(crate) fn insert(&self, file_number: u64, offset: u64, block: Arc<Block>) {
        let key = (file_number, offset);
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
        self.usage_bytes.fetch_add(charge, Ordering::Relaxed);
        self.usage_bytes.fetch_sub(freed, Ordering::Relaxed);
    }

    /// Drops every block of a file (called when a table file is deleted).
    pub fn evict_file(&self, file_number: u64) {
        for shard in self.shards.iter() {
            let mut s = shard.lock();
            let mut freed = 0;
            for i in 1..s.slots.len() as u32 {
                let slot = &s.slots[i as usize];
                if slot.block.is_some() && slot.key.0 == file_number {
                    freed += s.remove(i);
                }
            }
            drop(s);
            self.usage_bytes.fetch_sub(freed, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A one-entry block of about `bytes` bytes.
    fn block(bytes: usize) -> Arc<Block> {
        let mut b = super::super::block::BlockBuilder::new(16);
        b.add(&[b'k'; 8], &vec![1u8; bytes.saturating_sub(32)]);
        Arc::new(Block::new(b.finish().to_vec()).unwrap())
    }

    #[test]
    fn lru_bound_and_accounting() {
        let cache = BlockCache::new(100 << 10);
        assert_eq!(cache.shards.len(), 1);
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
        assert_eq!(cache.shards.len(), 16);
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
