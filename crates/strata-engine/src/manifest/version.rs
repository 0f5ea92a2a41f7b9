//! Versions: the immutable file set of one tree, level by level.
//!
//! L0 files may overlap and are kept newest first; L1.. are sorted,
//! non-overlapping runs kept in key order. A version is shared by readers
//! through an `Arc`; a file is deleted from storage when the last version
//! holding it is dropped after the file was marked obsolete.

use std::cmp::Ordering;
use std::sync::atomic::{AtomicBool, Ordering as AtomicOrdering};
use std::sync::Arc;

use crate::error::Result;
use crate::iter::InternalIterator;
use crate::key::{cmp_internal, user_key, SeqNo};
use crate::memtable::{resolve_step, Lookup};
use crate::sst::{BlockCache, Table};
use crate::storage::Storage;

/// Number of levels of every tree.
pub const NUM_LEVELS: usize = 7;

/// The name of table file `number`.
pub fn table_file_name(number: u64) -> String {
    format!("{number:06}.sst")
}

/// One SSTable in a version: its metadata and its open reader.
pub struct FileMeta {
    pub number: u64,
    pub size_bytes: u64,
    pub smallest: Vec<u8>,
    pub largest: Vec<u8>,
    pub seq_min: SeqNo,
    pub seq_max: SeqNo,
    pub table: Arc<Table>,
    /// Set when no future version will hold the file; the file is removed
    /// when the last holder drops it.
    obsolete: AtomicBool,
    storage: Arc<dyn Storage>,
    cache: Arc<BlockCache>,
}

impl FileMeta {
    /// Opens table file `number` (footer, index, filter and properties
    /// verified) and checks it has the size the caller recorded.
    #[allow(clippy::too_many_arguments)]
    pub fn open(
        storage: &Arc<dyn Storage>,
        cache: &Arc<BlockCache>,
        number: u64,
        size_bytes: u64,
        smallest: Vec<u8>,
        largest: Vec<u8>,
        seq_min: SeqNo,
        seq_max: SeqNo,
    ) -> Result<Arc<FileMeta>> {
        let name = table_file_name(number);
        let file = storage.open_sized(&name, size_bytes)?;
        if file.len() != size_bytes {
            let detail = format!("size {} differs from the recorded {size_bytes}", file.len());
            return Err(crate::Error::corruption(&name, detail));
        }
        debug_assert!(cmp_internal(&smallest, &largest) != Ordering::Greater);
        let table = Table::open(file, number, name, Some(cache.clone()))?;
        Ok(Arc::new(FileMeta {
            number,
            size_bytes,
            smallest,
            largest,
            seq_min,
            seq_max,
            table,
            obsolete: AtomicBool::new(false),
            storage: storage.clone(),
            cache: cache.clone(),
        }))
    }

    pub fn mark_obsolete(&self) {
        self.obsolete.store(true, AtomicOrdering::Release);
    }

    pub fn smallest_user_key(&self) -> &[u8] {
        user_key(&self.smallest)
    }

    pub fn largest_user_key(&self) -> &[u8] {
        user_key(&self.largest)
    }

    /// Whether the file's user-key range meets [lo, hi] (None = unbounded).
    pub fn overlaps(&self, lo: Option<&[u8]>, hi: Option<&[u8]>) -> bool {
        let below = hi.is_some_and(|hi| self.smallest_user_key() > hi);
        let above = lo.is_some_and(|lo| self.largest_user_key() < lo);
        !below && !above
    }
}

impl Drop for FileMeta {
    fn drop(&mut self) {
        if self.obsolete.load(AtomicOrdering::Acquire) {
            self.cache.evict_file(self.number);
            let name = table_file_name(self.number);
            if let Err(e) = self.storage.remove(&name) {
                // Left for the sweep of unreferenced files at the next open.
                tracing::warn!("could not remove obsolete table {name}: {e}");
            }
        }
    }
}

/// The file set of one tree.
#[derive(Clone, Default)]
pub struct Version {
    pub levels: [Vec<Arc<FileMeta>>; NUM_LEVELS],
}

impl Version {
    pub fn level_bytes(&self, level: usize) -> u64 {
        self.levels[level].iter().map(|f| f.size_bytes).sum()
    }

    /// Files of `level` whose user-key range meets [lo, hi].
    pub fn overlapping(
        &self,
        level: usize,
        lo: Option<&[u8]>,
        hi: Option<&[u8]>,
    ) -> Vec<Arc<FileMeta>> {
        self.levels[level]
            .iter()
            .filter(|f| f.overlaps(lo, hi))
            .cloned()
            .collect()
    }

    /// Index of the first file of sorted level `level` whose largest key is
    /// >= `ikey`.
    fn find_file(&self, level: usize, ikey: &[u8]) -> usize {
        debug_assert!(level > 0);
        self.levels[level].partition_point(|f| cmp_internal(&f.largest, ikey) == Ordering::Less)
    }

    /// Point lookup below the memtables: L0 newest first, then one file per
    /// sorted level. Merge operands are appended to `operands`; each
    /// table's bloom filter answer is counted in `bloom`.
    pub fn get(
        &self,
        lookup: &[u8],
        operands: &mut Vec<Vec<u8>>,
        bloom: &BloomStats,
    ) -> Result<Lookup> {
        let ukey = user_key(lookup);
        for f in &self.levels[0] {
            if ukey < f.smallest_user_key() || ukey > f.largest_user_key() {
                continue;
            }
            if let found @ (Lookup::Found(_) | Lookup::Deleted) =
                table_get(f, lookup, operands, bloom)?
            {
                return Ok(found);
            }
        }
        for level in 1..NUM_LEVELS {
            let files = &self.levels[level];
            if files.is_empty() {
                continue;
            }
            let i = self.find_file(level, lookup);
            if let Some(f) = files.get(i) {
                if ukey >= f.smallest_user_key() {
                    if let found @ (Lookup::Found(_) | Lookup::Deleted) =
                        table_get(f, lookup, operands, bloom)?
                    {
                        return Ok(found);
                    }
                }
            }
        }
        Ok(Lookup::Continue)
    }

    /// Checks the invariants: L0 newest first; L1.. sorted and disjoint.
    pub fn check_invariants(&self) -> std::result::Result<(), String> {
        for w in self.levels[0].windows(2) {
            if w[0].seq_max < w[1].seq_max {
                return Err(format!(
                    "L0 not newest first: {} before {}",
                    w[0].number, w[1].number
                ));
            }
        }
        for (level, files) in self.levels.iter().enumerate().skip(1) {
            for w in files.windows(2) {
                if w[0].largest_user_key() >= w[1].smallest_user_key() {
                    return Err(format!(
                        "L{level} files {} and {} overlap or are out of order",
                        w[0].number, w[1].number
                    ));
                }
            }
        }
        Ok(())
    }
}

/// How the tables' bloom filters answered point lookups.
#[derive(Debug, Default)]
pub struct BloomStats {
    /// "Absent": the table was not read.
    pub useful: std::sync::atomic::AtomicU64,
    /// "Maybe present": the table was read.
    pub positive: std::sync::atomic::AtomicU64,
}

fn table_get(
    f: &FileMeta,
    lookup: &[u8],
    operands: &mut Vec<Vec<u8>>,
    bloom: &BloomStats,
) -> Result<Lookup> {
    use std::sync::atomic::Ordering::Relaxed;
    let ukey = user_key(lookup);
    if !f.table.may_contain(ukey) {
        bloom.useful.fetch_add(1, Relaxed);
        return Ok(Lookup::Continue);
    }
    bloom.positive.fetch_add(1, Relaxed);
    let mut it = f.table.iter(true);
    it.seek(lookup)?;
    while it.valid() {
        let Some(p) = crate::key::parse_internal_key(it.key()) else {
            return Err(crate::Error::corruption(
                crate::manifest::table_file_name(f.number),
                "malformed internal key",
            ));
        };
        if p.user_key != ukey {
            break;
        }
        debug_assert!(
            p.seq <= crate::key::seq_of(lookup),
            "table seek passed the snapshot"
        );
        if let Some(found) = resolve_step(p.kind, it.value(), operands) {
            return Ok(found);
        }
        it.next()?;
    }
    Ok(Lookup::Continue)
}

/// Concatenates the files of one sorted level into one iterator, opening
/// each file's iterator only when reached.
pub struct LevelIterator {
    files: Vec<Arc<FileMeta>>,
    idx: usize,
    cur: Option<crate::sst::TableIterator>,
    fill_cache: bool,
}

impl LevelIterator {
    pub fn new(files: Vec<Arc<FileMeta>>, fill_cache: bool) -> LevelIterator {
        LevelIterator {
            files,
            idx: 0,
            cur: None,
            fill_cache,
        }
    }

    fn open(&mut self, idx: usize) {
        self.idx = idx;
        self.cur = self.files.get(idx).map(|f| f.table.iter(self.fill_cache));
    }

    /// Skips forward over exhausted files.
    fn settle_forward(&mut self) -> Result<()> {
        while let Some(c) = &self.cur {
            if c.valid() {
                return Ok(());
            }
            let next = self.idx + 1;
            self.open(next);
            if let Some(c) = &mut self.cur {
                c.seek_to_first()?;
            }
        }
        Ok(())
    }

    /// Skips backward over exhausted files.
    fn settle_backward(&mut self) -> Result<()> {
        while let Some(c) = &self.cur {
            if c.valid() {
                return Ok(());
            }
            if self.idx == 0 {
                self.cur = None;
                return Ok(());
            }
            let prev = self.idx - 1;
            self.open(prev);
            if let Some(c) = &mut self.cur {
                c.seek_to_last()?;
            }
        }
        Ok(())
    }
}

impl InternalIterator for LevelIterator {
    fn valid(&self) -> bool {
        self.cur.as_ref().is_some_and(|c| c.valid())
    }

    fn seek_to_first(&mut self) -> Result<()> {
        self.open(0);
        if let Some(c) = &mut self.cur {
            c.seek_to_first()?;
        }
        self.settle_forward()
    }

    fn seek_to_last(&mut self) -> Result<()> {
        if self.files.is_empty() {
            self.cur = None;
            return Ok(());
        }
        self.open(self.files.len() - 1);
        if let Some(c) = &mut self.cur {
            c.seek_to_last()?;
        }
        self.settle_backward()
    }

    fn seek(&mut self, target: &[u8]) -> Result<()> {
        let i = self
            .files
            .partition_point(|f| cmp_internal(&f.largest, target) == Ordering::Less);
        self.open(i);
        if let Some(c) = &mut self.cur {
            c.seek(target)?;
        }
        self.settle_forward()
    }

    fn seek_for_prev(&mut self, target: &[u8]) -> Result<()> {
        // The last file whose smallest key is <= target.
        let i = self
            .files
            .partition_point(|f| cmp_internal(&f.smallest, target) != Ordering::Greater);
        if i == 0 {
            self.cur = None;
            return Ok(());
        }
        self.open(i - 1);
        if let Some(c) = &mut self.cur {
            c.seek_for_prev(target)?;
        }
        self.settle_backward()
    }

    fn next(&mut self) -> Result<()> {
        if let Some(c) = &mut self.cur {
            c.next()?;
        }
        self.settle_forward()
    }

    fn prev(&mut self) -> Result<()> {
        if let Some(c) = &mut self.cur {
            c.prev()?;
        }
        self.settle_backward()
    }

    fn key(&self) -> &[u8] {
        self.cur.as_ref().expect("valid").key()
    }

    fn value(&self) -> &[u8] {
        self.cur.as_ref().expect("valid").value()
    }
}
