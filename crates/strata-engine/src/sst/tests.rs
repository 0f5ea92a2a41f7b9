//! Round trips, seeks, caching and randomized tests of the table layer.

use std::cmp::Ordering;
use std::sync::Arc;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use super::*;
use crate::error::{Error, Result};
use crate::iter::InternalIterator;
use crate::key::{cmp_internal, internal_key, lookup_key, user_key, ValueKind};
use crate::storage::{read_file, MemStorage, RandomAccessFile, Storage};

pub(super) type Entries = Vec<(Vec<u8>, Vec<u8>)>;

/// A table file held in memory.
pub(super) struct VecFile(pub Vec<u8>);

impl RandomAccessFile for VecFile {
    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        let src = usize::try_from(offset)
            .ok()
            .and_then(|o| self.0.get(o..o.checked_add(buf.len())?))
            .ok_or_else(|| {
                Error::io(
                    "read test file",
                    std::io::Error::from(std::io::ErrorKind::UnexpectedEof),
                )
            })?;
        buf.copy_from_slice(src);
        Ok(())
    }
    fn len(&self) -> u64 {
        self.0.len() as u64
    }
}

pub(super) fn opts(compression: Compression, block_size_bytes: usize) -> TableBuilderOptions {
    TableBuilderOptions {
        block_size_bytes,
        compression,
        ..TableBuilderOptions::default()
    }
}

/// Builds a table through `MemStorage`; returns its bytes and properties.
pub(super) fn build(entries: &Entries, opts: TableBuilderOptions) -> (Vec<u8>, TableProperties) {
    let storage = MemStorage::new();
    let file = storage.create("t.sst").unwrap();
    let mut b = TableBuilder::new(opts, file, "t.sst".into());
    for (k, v) in entries {
        b.add(k, v).unwrap();
    }
    assert_eq!(b.entries(), entries.len() as u64);
    let props = b.finish().unwrap();
    let bytes = read_file(&*storage, "t.sst").unwrap();
    assert_eq!(props.file_size_bytes, bytes.len() as u64);
    (bytes, props)
}

pub(super) fn open(bytes: Vec<u8>, cache: Option<Arc<BlockCache>>) -> Result<Arc<Table>> {
    Table::open(Arc::new(VecFile(bytes)), 7, "t.sst".into(), cache)
}

pub(super) fn scan_forward(t: &Arc<Table>) -> Result<Entries> {
    let mut it = t.iter(true);
    let mut out = Vec::new();
    it.seek_to_first()?;
    while it.valid() {
        out.push((it.key().to_vec(), it.value().to_vec()));
        it.next()?;
    }
    Ok(out)
}

pub(super) fn scan_backward(t: &Arc<Table>) -> Result<Entries> {
    let mut it = t.iter(true);
    let mut out = Vec::new();
    it.seek_to_last()?;
    while it.valid() {
        out.push((it.key().to_vec(), it.value().to_vec()));
        it.prev()?;
    }
    out.reverse();
    Ok(out)
}

/// `n` user keys `key000000`, `key000003`, ... (gaps for absent keys), some
/// with several versions, in internal order.
pub(super) fn gen_entries(n: usize, seed: u64) -> Entries {
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut out = Vec::new();
    let mut seq = 1_000_000u64;
    for i in 0..n {
        let uk = format!("key{:06}", i * 3).into_bytes();
        let versions = if rng.gen_ratio(1, 5) {
            rng.gen_range(2..4)
        } else {
            1
        };
        for _ in 0..versions {
            seq -= rng.gen_range(1..10);
            let kind = match rng.gen_range(0..10) {
                0 => ValueKind::Delete,
                1 => ValueKind::Merge,
                _ => ValueKind::Put,
            };
            let value = match kind {
                ValueKind::Delete => Vec::new(),
                _ => {
                    let len = rng.gen_range(0..60);
                    (0..len).map(|j| b'a' + ((i + j) % 7) as u8).collect()
                }
            };
            out.push((internal_key(&uk, seq, kind), value));
        }
    }
    out
}

fn check_seeks(t: &Arc<Table>, entries: &Entries) {
    let mut it = t.iter(true);
    let mut targets: Vec<Vec<u8>> = Vec::new();
    for (k, _) in entries.iter().step_by(7) {
        targets.push(k.clone());
        let uk = user_key(k);
        targets.push(lookup_key(uk, crate::key::SEQ_MAX)); // before all versions
        targets.push(internal_key(uk, 0, ValueKind::Delete)); // after all versions
        let mut absent = uk.to_vec();
        absent.push(b'!'); // between user keys
        targets.push(internal_key(&absent, 5, ValueKind::Put));
    }
    targets.push(internal_key(b"", 0, ValueKind::Delete)); // before first
    targets.push(internal_key(b"zzz", 1, ValueKind::Put)); // after last
    for target in &targets {
        let ge = entries.partition_point(|(k, _)| cmp_internal(k, target) == Ordering::Less);
        it.seek(target).unwrap();
        match entries.get(ge) {
            Some((k, v)) => {
                assert!(it.valid());
                assert_eq!((it.key(), it.value()), (&k[..], &v[..]));
            }
            None => assert!(!it.valid()),
        }
        let le = entries.partition_point(|(k, _)| cmp_internal(k, target) != Ordering::Greater);
        it.seek_for_prev(target).unwrap();
        match le.checked_sub(1).map(|i| &entries[i]) {
            Some((k, v)) => {
                assert!(it.valid());
                assert_eq!((it.key(), it.value()), (&k[..], &v[..]));
            }
            None => assert!(!it.valid()),
        }
    }
}

#[test]
fn round_trip_all_compressions_and_restart_intervals() {
    let entries = gen_entries(1500, 1);
    for compression in [Compression::None, Compression::Lz4, Compression::Zstd] {
        for restart_interval in [1, 3, 16] {
            let mut o = opts(compression, 256);
            o.restart_interval = restart_interval;
            let (bytes, props) = build(&entries, o);
            assert!(props.data_blocks > 50, "{props:?}");
            let t = open(bytes, None).unwrap();
            assert_eq!(t.properties(), &props);
            assert_eq!(props.entries, entries.len() as u64);
            assert_eq!(props.smallest_key, entries[0].0);
            assert_eq!(props.largest_key, entries.last().unwrap().0);
            let dels = entries
                .iter()
                .filter(|(k, _)| k[k.len() - 8] == ValueKind::Delete as u8)
                .count();
            assert_eq!(props.deletions, dels as u64);
            assert_eq!(scan_forward(&t).unwrap(), entries);
            assert_eq!(scan_backward(&t).unwrap(), entries);
            check_seeks(&t, &entries);
            t.verify_checksums().unwrap();
        }
    }
}

#[test]
fn compression_shrinks_compressible_tables() {
    let entries = gen_entries(2000, 2);
    let (plain, _) = build(&entries, opts(Compression::None, 4096));
    let (lz4, _) = build(&entries, opts(Compression::Lz4, 4096));
    let (zstd, _) = build(&entries, opts(Compression::Zstd, 4096));
    assert!(lz4.len() < plain.len() && zstd.len() < plain.len());
}

#[test]
fn default_options_single_entry_and_no_filter() {
    let entries = vec![(internal_key(b"only", 1, ValueKind::Put), b"v".to_vec())];
    let (bytes, props) = build(&entries, TableBuilderOptions::default());
    assert_eq!(props.data_blocks, 1);
    let t = open(bytes, None).unwrap();
    assert_eq!(scan_backward(&t).unwrap(), entries);
    check_seeks(&t, &entries);

    let o = TableBuilderOptions {
        bloom_bits_per_key: 0,
        ..TableBuilderOptions::default()
    };
    let (bytes, props) = build(&entries, o);
    assert_eq!(props.filter_bytes, 0);
    let t = open(bytes, None).unwrap();
    assert!(t.may_contain(b"anything"));
    assert_eq!(scan_forward(&t).unwrap(), entries);
}

#[test]
fn large_and_empty_values() {
    let big: Vec<u8> = (0..1 << 20).map(|i: u32| (i % 251) as u8).collect();
    let mut entries = Entries::new();
    for i in 0..12u64 {
        let value = match i % 3 {
            0 => Vec::new(),
            1 => big.clone(),
            _ => vec![b'x'; 100],
        };
        entries.push((
            internal_key(format!("k{i:02}").as_bytes(), 9, ValueKind::Put),
            value,
        ));
    }
    for compression in [Compression::None, Compression::Lz4, Compression::Zstd] {
        let (bytes, _) = build(&entries, opts(compression, 4096));
        let t = open(bytes, None).unwrap();
        assert_eq!(scan_forward(&t).unwrap(), entries);
        assert_eq!(scan_backward(&t).unwrap(), entries);
        check_seeks(&t, &entries);
    }
}

#[test]
fn bloom_filter_on_user_keys() {
    let entries = gen_entries(20_000, 3);
    let (bytes, _) = build(&entries, opts(Compression::Lz4, 4096));
    let t = open(bytes, None).unwrap();
    for (k, _) in &entries {
        assert!(t.may_contain(user_key(k)));
    }
    let probes = 50_000;
    let fp = (0..probes)
        .filter(|i| t.may_contain(format!("key{:06}", i * 3 + 1).as_bytes()))
        .count();
    let rate = fp as f64 / probes as f64;
    assert!(rate < 0.02, "false positive rate {rate}");
}

#[test]
fn builder_rejects_bad_input() {
    let storage = MemStorage::new();
    let mut b = TableBuilder::new(
        TableBuilderOptions::default(),
        storage.create("a").unwrap(),
        "a".into(),
    );
    b.add(&internal_key(b"b", 5, ValueKind::Put), b"").unwrap();
    for bad in [
        internal_key(b"a", 5, ValueKind::Put),
        internal_key(b"b", 5, ValueKind::Put),
        internal_key(b"b", 6, ValueKind::Put),
        b"short".to_vec(),
    ] {
        assert!(matches!(b.add(&bad, b""), Err(Error::InvalidArgument(_))));
    }
    b.add(&internal_key(b"b", 4, ValueKind::Put), b"").unwrap();
    assert!(b.estimated_size_bytes() > 0);
    b.finish().unwrap();
    let empty = TableBuilder::new(
        TableBuilderOptions::default(),
        storage.create("e").unwrap(),
        "e".into(),
    );
    assert!(empty.finish().is_err());
}

#[test]
fn block_cache_hits_and_bounds() {
    let entries = gen_entries(3000, 4);
    let (bytes, props) = build(&entries, opts(Compression::Lz4, 1024));
    let cache = BlockCache::new(1 << 20);
    let t = open(bytes.clone(), Some(cache.clone())).unwrap();
    // Compaction-style scans do not fill the cache.
    let mut it = t.iter(false);
    it.seek_to_first().unwrap();
    while it.valid() {
        it.next().unwrap();
    }
    assert_eq!(cache.usage_bytes(), 0);
    assert_eq!(cache.misses(), props.data_blocks);
    scan_forward(&t).unwrap();
    let (hits, misses) = (cache.hits(), cache.misses());
    assert_eq!(misses, 2 * props.data_blocks);
    scan_forward(&t).unwrap();
    assert_eq!(cache.hits(), hits + props.data_blocks);
    assert_eq!(cache.misses(), misses);
    assert!(cache.usage_bytes() > 0);

    // A small cache stays within its bound.
    let small = BlockCache::new(16 << 10);
    let t2 = open(bytes, Some(small.clone())).unwrap();
    assert_eq!(scan_forward(&t2).unwrap(), entries);
    assert!(small.usage_bytes() > 0 && small.usage_bytes() <= small.capacity_bytes());
    small.evict_file(t2.file_number());
    assert_eq!(small.usage_bytes(), 0);
}

#[test]
fn index_entries_and_offsets() {
    let entries = gen_entries(2000, 5);
    let (bytes, props) = build(&entries, opts(Compression::None, 512));
    let t = open(bytes, None).unwrap();
    let index = t.index_entries();
    assert_eq!(index.len() as u64, props.data_blocks);
    assert_eq!(index[0].1, 0);
    for w in index.windows(2) {
        assert!(w[0].1 < w[1].1);
        assert_eq!(cmp_internal(&w[0].0, &w[1].0), Ordering::Less);
    }
    // Each separator bounds its block: >= its last key, < the next's first.
    let mut it = t.iter(false);
    for (sep, _) in &index {
        it.seek_for_prev(sep).unwrap();
        assert!(it.valid());
        it.next().unwrap();
        if it.valid() {
            assert_eq!(cmp_internal(sep, it.key()), Ordering::Less);
        }
    }
    let mut last = 0;
    for (k, _) in entries.iter().step_by(50) {
        let off = t.approximate_offset_of(k);
        assert!(off >= last && off < props.data_bytes);
        last = off;
    }
    let end = t.approximate_offset_of(&internal_key(b"zzz", 0, ValueKind::Put));
    assert_eq!(end, props.data_bytes);
}

/// A file that counts its reads.
struct CountingFile(VecFile, std::sync::atomic::AtomicUsize);

impl RandomAccessFile for CountingFile {
    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        self.1.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.0.read_exact_at(offset, buf)
    }

    fn len(&self) -> u64 {
        self.0.len()
    }
}

/// On an object store every read is a request: a table opens with one
/// read when its metadata fits in the first, else two.
#[test]
fn open_reads_the_metadata_in_one_or_two_reads() {
    for (rows, block_size_bytes, reads) in [(2_000, 4096, 1), (100_000, 4096, 1), (20_000, 64, 2)] {
        let entries = gen_entries(rows, 9);
        let (bytes, props) = build(&entries, opts(Compression::None, block_size_bytes));
        let metadata_bytes = props.file_size_bytes - props.data_bytes;
        let file = Arc::new(CountingFile(
            VecFile(bytes),
            std::sync::atomic::AtomicUsize::new(0),
        ));
        let t = Table::open(file.clone(), 7, "t.sst".into(), None).unwrap();
        assert_eq!(
            file.1.load(std::sync::atomic::Ordering::Relaxed),
            reads,
            "{rows} rows, {metadata_bytes} bytes of metadata"
        );
        assert_eq!(scan_forward(&t).unwrap(), entries);
    }
}

/// A BTreeMap key in internal order.
#[derive(Clone, PartialEq, Eq)]
struct K(Vec<u8>);

impl Ord for K {
    fn cmp(&self, other: &Self) -> Ordering {
        cmp_internal(&self.0, &other.0)
    }
}

impl PartialOrd for K {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

#[test]
fn randomized_against_btreemap() {
    use std::collections::BTreeMap;
    use std::ops::Bound::{Excluded, Unbounded};
    for seed in 0..6u64 {
        let mut rng = SmallRng::seed_from_u64(seed);
        let mut model: BTreeMap<K, Vec<u8>> = BTreeMap::new();
        for _ in 0..rng.gen_range(1..3000) {
            let uk: Vec<u8> = (0..rng.gen_range(0..6))
                .map(|_| rng.gen_range(b'a'..b'e'))
                .collect();
            let k = internal_key(&uk, rng.gen_range(0..50), ValueKind::Put);
            let v: Vec<u8> = (0..rng.gen_range(0..40)).map(|_| rng.gen()).collect();
            model.insert(K(k), v);
        }
        let entries: Entries = model
            .iter()
            .map(|(k, v)| (k.0.clone(), v.clone()))
            .collect();
        let compression =
            [Compression::None, Compression::Lz4, Compression::Zstd][seed as usize % 3];
        let mut o = opts(compression, rng.gen_range(64..2048));
        o.restart_interval = rng.gen_range(1..20);
        let (bytes, _) = build(&entries, o);
        let t = open(bytes, Some(BlockCache::new(64 << 10))).unwrap();
        let mut it = t.iter(true);
        for _ in 0..500 {
            let uk: Vec<u8> = (0..rng.gen_range(0..6))
                .map(|_| rng.gen_range(b'a'..b'f'))
                .collect();
            let target = K(internal_key(&uk, rng.gen_range(0..60), ValueKind::Put));
            let mut expect = if rng.gen() {
                it.seek(&target.0).unwrap();
                model.range(&target..).next()
            } else {
                it.seek_for_prev(&target.0).unwrap();
                model.range(..=&target).next_back()
            };
            for _ in 0..rng.gen_range(0..40) {
                let Some((k, v)) = expect else {
                    assert!(!it.valid());
                    break;
                };
                assert!(it.valid());
                assert_eq!((it.key(), it.value()), (&k.0[..], &v[..]));
                if rng.gen_ratio(2, 3) {
                    it.next().unwrap();
                    expect = model.range((Excluded(k), Unbounded)).next();
                } else {
                    it.prev().unwrap();
                    expect = model.range(..k).next_back();
                }
            }
        }
    }
}

#[test]
fn fuzz_block_entry_point_survives_garbage() {
    let mut rng = SmallRng::seed_from_u64(9);
    let mut b = block::BlockBuilder::new(3);
    for i in 0..40u32 {
        b.add(
            &internal_key(format!("k{i:03}").as_bytes(), 1, ValueKind::Put),
            b"v",
        );
    }
    let good = b.finish().to_vec();
    let mut input = vec![0u8];
    input.extend_from_slice(&good);
    fuzz_block(&input);
    for _ in 0..3000 {
        let mut x = input.clone();
        for _ in 0..rng.gen_range(1..4) {
            let i = rng.gen_range(0..x.len());
            x[i] = rng.gen();
        }
        fuzz_block(&x);
        let len = rng.gen_range(0..64);
        let junk: Vec<u8> = (0..len).map(|_| rng.gen()).collect();
        fuzz_block(&junk);
    }
}
