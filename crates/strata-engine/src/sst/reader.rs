//! An open table: footer, properties, index and filter verified and kept in
//! memory; data blocks read on demand through the block cache.

use std::cmp::Ordering;
use std::sync::Arc;

use super::block::Block;
use super::block_iter::BlockIter;
use super::bloom::{bloom_hash, BloomFilter};
use super::cache::BlockCache;
use super::cmp_keys;
use super::compress::decompress;
use super::format::{
    block_crc, BlockHandle, Compression, Footer, TableProperties, BLOCK_TRAILER_LEN, FOOTER_LEN,
};
pub use super::table_iter::TableIterator;
use crate::error::{Error, Result};
use crate::key::{user_key, TRAILER_LEN};
use crate::storage::RandomAccessFile;

/// The first read of `Table::open` takes the table's last
/// `max(META_READ_BYTES_MIN, size / META_READ_FRACTION)` bytes: enough
/// for the footer and the metadata blocks (index about 1% of a table with
/// 4 KiB blocks, filter 10 bits a key) of most tables.
const META_READ_BYTES_MIN: u64 = 64 << 10;
const META_READ_FRACTION: u64 = 32;

/// Largest block (with trailer) read through `READ_SCRATCH`; larger ones
/// get a buffer of their own, so no thread keeps a huge one.
const READ_SCRATCH_BYTES_MAX: usize = 256 << 10;

thread_local! {
    /// Where a thread reads compressed blocks before decompressing them.
    static READ_SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// The decoded index: one separator and handle per data block.
struct Index {
    /// Separator keys, concatenated.
    keys: Vec<u8>,
    entries: Vec<IndexEntry>,
    /// The prefix every separator's user key starts with.
    common: Vec<u8>,
    /// Per entry, the 8 bytes of its separator's user key after `common`
    /// (zero-padded), big-endian: a point search compares these, one
    /// dense array, and compares whole keys only among equal windows.
    /// Empty when a separator is not an internal key.
    windows: Vec<u64>,
    /// Every `WINDOW_STRIDE`th window, from the first: a search finds its
    /// stride here (a few cache lines) and then reads one stride of
    /// `windows`, rather than probing across the whole array.
    strides: Vec<u64>,
}

/// Windows per entry of `Index::strides`: two cache lines of `windows`.
const WINDOW_STRIDE: usize = 16;

struct IndexEntry {
    key_start: usize,
    key_end: usize,
    handle: BlockHandle,
}

/// The 8 bytes of `user_key` from `from` on, zero-padded, big-endian.
/// For two user keys with the same first `from` bytes, a smaller window
/// means a smaller key (a key that ends inside the window pads with zero
/// bytes, below any byte the longer key can differ by); equal windows
/// decide nothing.
fn window(user_key: &[u8], from: usize) -> u64 {
    let mut w = [0u8; 8];
    let rest = user_key.get(from..).unwrap_or_default();
    let n = rest.len().min(8);
    w[..n].copy_from_slice(&rest[..n]);
    u64::from_be_bytes(w)
}

/// The first `i` in `0..n` for which `pred` is false, `pred` being true
/// then false over the range.
fn partition_point(n: usize, pred: impl Fn(usize) -> bool) -> usize {
    let (mut lo, mut hi) = (0, n);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if pred(mid) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    lo
}

impl Index {
    fn new() -> Index {
        Index {
            keys: Vec::new(),
            entries: Vec::new(),
            common: Vec::new(),
            windows: Vec::new(),
            strides: Vec::new(),
        }
    }

    fn key(&self, i: usize) -> &[u8] {
        let e = &self.entries[i];
        &self.keys[e.key_start..e.key_end]
    }

    /// Fills `common`, `windows` and `strides` once the entries are in
    /// (sorted).
    fn build_windows(&mut self) {
        let n = self.entries.len();
        if n == 0 || (0..n).any(|i| self.key(i).len() < TRAILER_LEN) {
            return;
        }
        // Sorted keys: the prefix of the first and the last is everyone's.
        let (first, last) = (user_key(self.key(0)), user_key(self.key(n - 1)));
        let len = first.iter().zip(last).take_while(|(a, b)| a == b).count();
        self.common = first[..len].to_vec();
        self.windows = (0..n).map(|i| window(user_key(self.key(i)), len)).collect();
        self.strides = self
            .windows
            .iter()
            .step_by(WINDOW_STRIDE)
            .copied()
            .collect();
    }

    /// First block whose separator is >= `ikey` (may be `len()`).
    fn find(&self, ikey: &[u8]) -> usize {
        let below = |i: usize| cmp_keys(self.key(i), ikey) == Ordering::Less;
        if self.windows.is_empty()
            || ikey.len() < TRAILER_LEN
            || !user_key(ikey).starts_with(&self.common)
        {
            return partition_point(self.entries.len(), below);
        }
        // Entries with a smaller window than `ikey`'s are below it, those
        // with a larger one are not; only equal windows need whole keys.
        // The first window >= w is past stride j - 1's first and at or
        // before stride j's first.
        let w = window(user_key(ikey), self.common.len());
        let j = self.strides.partition_point(|&x| x < w);
        let start = j.saturating_sub(1) * WINDOW_STRIDE;
        let end = (j * WINDOW_STRIDE).min(self.windows.len());
        let lo = start + self.windows[start..end].partition_point(|&x| x < w);
        let mut i = lo;
        if self.windows.get(lo) == Some(&w) {
            let ties = self.windows[lo..].partition_point(|&x| x == w);
            i = lo + partition_point(ties, |t| below(lo + t));
        }
        debug_assert_eq!(i, partition_point(self.entries.len(), below));
        i
    }
}

/// An open, immutable SSTable.
pub struct Table {
    file: Arc<dyn RandomAccessFile>,
    file_number: u64,
    file_name: String,
    cache: Option<Arc<BlockCache>>,
    props: TableProperties,
    index: Index,
    filter: Option<BloomFilter>,
    footer: Footer,
    /// Where the data blocks end.
    data_end: u64,
}

impl std::fmt::Debug for Table {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Table")
            .field("file_number", &self.file_number)
            .field("file_name", &self.file_name)
            .field("data_blocks", &self.index.entries.len())
            .finish()
    }
}

impl Table {
    /// Reads and verifies footer, properties, index and filter (kept in
    /// memory). Any checksum or decoding failure is `Error::Corruption`.
    pub fn open(
        file: Arc<dyn RandomAccessFile>,
        file_number: u64,
        file_name: String,
        cache: Option<Arc<BlockCache>>,
    ) -> Result<Arc<Table>> {
        let bad = |detail: String| Error::corruption(&file_name, detail);
        let file_len = file.len();
        if file_len < FOOTER_LEN as u64 {
            return Err(bad(format!(
                "file of {file_len} bytes is too short for a table"
            )));
        }
        // One read of the tail usually holds the footer and every
        // metadata block; a second one fetches the rest when it does not
        // (on an object store each read is a request).
        let tail_len = file_len.min(META_READ_BYTES_MIN.max(file_len / META_READ_FRACTION));
        let tail_start = file_len - tail_len;
        let mut meta = file.read_vec(tail_start, tail_len as usize)?;
        let footer_offset = file_len - FOOTER_LEN as u64;
        let footer = Footer::decode(&meta[meta.len() - FOOTER_LEN..], &file_name)?;

        // Layout: data | filter? | index | properties | footer, contiguous.
        let has_filter = footer.filter.size > 0 || footer.filter.offset > 0;
        let data_end = if has_filter {
            footer.filter.offset
        } else {
            footer.index.offset
        };
        let ends = |h: BlockHandle, next: u64| h.end() == Some(next);
        if (has_filter && !ends(footer.filter, footer.index.offset))
            || !ends(footer.index, footer.properties.offset)
            || !ends(footer.properties, footer_offset)
        {
            return Err(bad(
                "table footer: metadata blocks are not contiguous".into()
            ));
        }
        let meta_start = data_end.min(tail_start);
        if meta_start < tail_start {
            let mut head = file.read_vec(meta_start, (tail_start - meta_start) as usize)?;
            head.extend_from_slice(&meta);
            meta = head;
        }
        debug_assert_eq!(meta_start + meta.len() as u64, file_len);
        // The raw bytes (block and trailer) of a metadata block; the
        // contiguity check above puts each within `meta`.
        let raw = |h: BlockHandle| -> &[u8] {
            let from = (h.offset - meta_start) as usize;
            let to = from + h.size as usize + BLOCK_TRAILER_LEN;
            &meta[from..to]
        };

        let mut table = Table {
            file,
            file_number,
            file_name: file_name.clone(),
            cache,
            props: TableProperties::default(),
            index: Index::new(),
            filter: None,
            footer,
            data_end,
        };
        let props_payload = table.block_contents(
            raw(footer.properties).to_vec(),
            footer.properties,
            "properties",
        )?;
        table.props = TableProperties::decode(&props_payload, &file_name)?;
        table.props.file_size_bytes = file_len;
        let index_contents =
            table.block_contents(raw(footer.index).to_vec(), footer.index, "index")?;
        table.index = table.decode_index(index_contents)?;
        if has_filter {
            let payload =
                table.block_contents(raw(footer.filter).to_vec(), footer.filter, "filter")?;
            let filter = BloomFilter::from_payload(payload)
                .map_err(|e| bad(format!("filter block: {e}")))?;
            table.filter = Some(filter);
        }
        if table.props.data_blocks != table.index.entries.len() as u64 {
            return Err(bad("properties disagree with the index".into()));
        }
        Ok(Arc::new(table))
    }

    /// Decodes the index block and checks that the data blocks tile
    /// `[0, data_end)` and the separators increase.
    fn decode_index(&self, contents: Vec<u8>) -> Result<Index> {
        let bad =
            |detail: &str| Error::corruption(&self.file_name, format!("index block: {detail}"));
        let block = Block::new(contents).map_err(|e| bad(e.0))?;
        let mut it = BlockIter::new();
        it.set_block(Arc::new(block));
        it.seek_to_first().map_err(|e| bad(e.0))?;
        let mut index = Index::new();
        let mut expected_offset = 0u64;
        while it.valid() {
            let h =
                BlockHandle::decode_varint(it.value()).ok_or_else(|| bad("bad block handle"))?;
            if h.offset != expected_offset {
                return Err(bad("data blocks are not contiguous"));
            }
            expected_offset = h.end().ok_or_else(|| bad("bad block handle"))?;
            if let Some(last) = index.entries.last() {
                let prev = &index.keys[last.key_start..last.key_end];
                if cmp_keys(prev, it.key()) != Ordering::Less {
                    return Err(bad("separators out of order"));
                }
            }
            let key_start = index.keys.len();
            index.keys.extend_from_slice(it.key());
            index.entries.push(IndexEntry {
                key_start,
                key_end: index.keys.len(),
                handle: h,
            });
            it.next().map_err(|e| bad(e.0))?;
        }
        if expected_offset != self.data_end || index.entries.is_empty() {
            return Err(bad("data blocks do not end where metadata begins"));
        }
        index.build_windows();
        Ok(index)
    }

    /// Reads a block, checks its crc and decompresses it.
    pub(crate) fn read_block_contents(&self, h: BlockHandle, what: &str) -> Result<Vec<u8>> {
        let bad = |detail: &str| {
            Error::corruption(
                &self.file_name,
                format!("{what} block at offset {}: {detail}", h.offset),
            )
        };
        let within_file = h.end().is_some_and(|end| end <= self.file.len());
        let len = usize::try_from(h.size)
            .ok()
            .filter(|_| within_file)
            .ok_or_else(|| bad("handle beyond the end of the file"))?;
        let n = len + BLOCK_TRAILER_LEN;
        // A compressed block is read into this thread's scratch buffer and
        // decompressed from there: one allocation per block read, not two.
        // A thread whose locals are gone (a read from a destructor at
        // thread exit), or a read within a read, gets a buffer of its own.
        let scratched = READ_SCRATCH.try_with(|cell| match cell.try_borrow_mut() {
            Ok(mut scratch) if n <= READ_SCRATCH_BYTES_MAX => {
                if scratch.len() < n {
                    scratch.resize(n, 0);
                }
                self.file.read_exact_at(h.offset, &mut scratch[..n])?;
                self.block_contents_of(&scratch[..n], h, what).map(Some)
            }
            _ => Ok(None),
        });
        match scratched {
            Ok(Ok(Some(contents))) => Ok(contents),
            Ok(Err(e)) => Err(e),
            Ok(Ok(None)) | Err(_) => self.block_contents(self.file.read_vec(h.offset, n)?, h, what),
        }
    }

    /// As `block_contents`, from borrowed bytes (a copy if uncompressed).
    fn block_contents_of(&self, buf: &[u8], h: BlockHandle, what: &str) -> Result<Vec<u8>> {
        match self.check_crc(buf, h, what)? {
            Compression::None => Ok(buf[..buf.len() - BLOCK_TRAILER_LEN].to_vec()),
            c => decompress(&buf[..buf.len() - BLOCK_TRAILER_LEN], c)
                .map_err(|e| self.block_error(h, what, e)),
        }
    }

    fn block_error(&self, h: BlockHandle, what: &str, detail: &str) -> Error {
        Error::corruption(
            &self.file_name,
            format!("{what} block at offset {}: {detail}", h.offset),
        )
    }

    /// Checks the crc of a block read whole (`buf`: block and trailer);
    /// returns its compression type.
    fn check_crc(&self, buf: &[u8], h: BlockHandle, what: &str) -> Result<Compression> {
        debug_assert_eq!(buf.len() as u64, h.size + BLOCK_TRAILER_LEN as u64);
        let len = buf.len() - BLOCK_TRAILER_LEN;
        let kind = buf[len];
        let stored_crc =
            u32::from_le_bytes([buf[len + 1], buf[len + 2], buf[len + 3], buf[len + 4]]);
        if stored_crc != block_crc(&buf[..len], kind) {
            return Err(self.block_error(h, what, "checksum mismatch"));
        }
        Compression::from_u8(kind)
            .ok_or_else(|| self.block_error(h, what, &format!("unknown compression type {kind}")))
    }

    /// Checks the crc of a block read whole (`buf`: block and trailer) and
    /// decompresses it.
    fn block_contents(&self, mut buf: Vec<u8>, h: BlockHandle, what: &str) -> Result<Vec<u8>> {
        let len = buf.len() - BLOCK_TRAILER_LEN;
        match self.check_crc(&buf, h, what)? {
            Compression::None => {
                buf.truncate(len);
                Ok(buf)
            }
            c => decompress(&buf[..len], c).map_err(|e| self.block_error(h, what, e)),
        }
    }

    /// Data block `i`, from the cache or the file (then cached if asked).
    /// Within `memory_only`, a block not cached is `Error::WouldBlock`.
    pub(crate) fn data_block(&self, i: usize, fill_cache: bool) -> Result<Arc<Block>> {
        let memory_only = super::memory_only::take_block()?;
        let h = self.index.entries[i].handle;
        if let Some(cache) = &self.cache {
            if let Some(b) = cache.get(self.file_number, h.offset) {
                return Ok(b);
            }
        }
        if memory_only {
            return Err(Error::WouldBlock);
        }
        let contents = self.read_block_contents(h, "data")?;
        let block = Block::new(contents).map_err(|e| self.block_corruption(i, e.0))?;
        let block = Arc::new(block);
        if fill_cache {
            if let Some(cache) = &self.cache {
                cache.insert(self.file_number, h.offset, block.clone());
            }
        }
        Ok(block)
    }

    pub(crate) fn block_corruption(&self, i: usize, detail: &str) -> Error {
        let offset = self.index.entries.get(i).map_or(0, |e| e.handle.offset);
        Error::corruption(
            &self.file_name,
            format!("data block at offset {offset}: {detail}"),
        )
    }

    pub(crate) fn num_data_blocks(&self) -> usize {
        self.index.entries.len()
    }

    /// First data block whose separator is >= `ikey` (may be the count).
    pub(crate) fn find_block(&self, ikey: &[u8]) -> usize {
        self.index.find(ikey)
    }

    /// The table's file number.
    pub fn file_number(&self) -> u64 {
        self.file_number
    }

    /// The table's file name, as given to `open`.
    pub fn file_name(&self) -> &str {
        &self.file_name
    }

    /// The table's properties.
    pub fn properties(&self) -> &TableProperties {
        &self.props
    }

    /// Bloom filter check on a user key (false = definitely absent).
    pub fn may_contain(&self, user_key: &[u8]) -> bool {
        self.filter
            .as_ref()
            .is_none_or(|f| f.may_contain_hash(bloom_hash(user_key)))
    }

    /// Cursor over all entries. `fill_cache = false` (compaction reads) uses
    /// cached blocks but does not insert new ones.
    pub fn iter(self: &Arc<Self>, fill_cache: bool) -> TableIterator {
        TableIterator::new(self.clone(), fill_cache)
    }

    /// Approximate file offset where `ikey` would be (for size estimates).
    pub fn approximate_offset_of(&self, ikey: &[u8]) -> u64 {
        let i = self.index.find(ikey);
        self.index
            .entries
            .get(i)
            .map_or(self.data_end, |e| e.handle.offset)
    }

    /// The index entries: (separator internal key >= every key of the block
    /// and < every key of the next, block offset).
    pub fn index_entries(&self) -> Vec<(Vec<u8>, u64)> {
        (0..self.index.entries.len())
            .map(|i| {
                (
                    self.index.key(i).to_vec(),
                    self.index.entries[i].handle.offset,
                )
            })
            .collect()
    }

    /// Memory held by the index and filter, in bytes.
    pub fn memory_bytes(&self) -> usize {
        self.index.keys.len()
            + self.index.entries.len() * std::mem::size_of::<IndexEntry>()
            + self.filter.as_ref().map_or(0, |f| f.size_bytes())
    }

    /// Reads and checks every block (bypassing the cache): checksums,
    /// decoding, key order, and agreement with the index and properties.
    pub fn verify_checksums(&self) -> Result<()> {
        let f = self.footer;
        let footer_offset = self.props.file_size_bytes.saturating_sub(FOOTER_LEN as u64);
        let on_disk = self.file.read_vec(footer_offset, FOOTER_LEN)?;
        if Footer::decode(&on_disk, &self.file_name)? != f {
            return Err(Error::corruption(&self.file_name, "table footer changed"));
        }
        self.read_block_contents(f.properties, "properties")?;
        self.read_block_contents(f.index, "index")?;
        if self.filter.is_some() {
            self.read_block_contents(f.filter, "filter")?;
        }
        let mut it = BlockIter::new();
        let mut last_key: Vec<u8> = Vec::new();
        let mut entries = 0u64;
        for i in 0..self.index.entries.len() {
            let contents = self.read_block_contents(self.index.entries[i].handle, "data")?;
            let block = Block::new(contents).map_err(|e| self.block_corruption(i, e.0))?;
            it.set_block(Arc::new(block));
            it.seek_to_first()
                .map_err(|e| self.block_corruption(i, e.0))?;
            if !it.valid() {
                return Err(self.block_corruption(i, "empty data block"));
            }
            while it.valid() {
                if entries > 0 && cmp_keys(&last_key, it.key()) != Ordering::Less {
                    return Err(self.block_corruption(i, "keys out of order"));
                }
                if cmp_keys(it.key(), self.index.key(i)) == Ordering::Greater {
                    return Err(self.block_corruption(i, "key beyond its separator"));
                }
                last_key.clear();
                last_key.extend_from_slice(it.key());
                entries += 1;
                it.next().map_err(|e| self.block_corruption(i, e.0))?;
            }
        }
        if entries != self.props.entries {
            return Err(Error::corruption(
                &self.file_name,
                format!(
                    "{entries} entries found, properties say {}",
                    self.props.entries
                ),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::{internal_key, ValueKind};

    fn index_of(separators: &[Vec<u8>]) -> Index {
        let mut index = Index::new();
        for (i, k) in separators.iter().enumerate() {
            let key_start = index.keys.len();
            index.keys.extend_from_slice(k);
            index.entries.push(IndexEntry {
                key_start,
                key_end: index.keys.len(),
                handle: BlockHandle {
                    offset: i as u64,
                    size: 1,
                },
            });
        }
        index.build_windows();
        index
    }

    /// The search every window answer must agree with.
    fn naive(index: &Index, ikey: &[u8]) -> usize {
        (0..index.entries.len())
            .position(|i| cmp_keys(index.key(i), ikey) != Ordering::Less)
            .unwrap_or(index.entries.len())
    }

    #[test]
    fn window_search_agrees_with_whole_key_search() {
        // User keys that share a prefix beyond the window, end inside it,
        // hold zero bytes, and repeat with other sequence numbers.
        let mut users: Vec<Vec<u8>> = vec![
            b"row".to_vec(),
            b"row\0".to_vec(),
            b"row\0\0".to_vec(),
            b"row\x01".to_vec(),
            b"row0000000000000001".to_vec(),
            b"row0000000000000001a".to_vec(),
            b"row0000000000000002".to_vec(),
            b"row00000000zz".to_vec(),
            b"row5".to_vec(),
            b"row\xff\xff\xff\xff\xff\xff\xff\xff\xff".to_vec(),
        ];
        for i in 0..200u32 {
            users.push(format!("row{:016}", i * 7919 % 1000).into_bytes());
        }
        users.sort();
        users.dedup();
        let mut separators = Vec::new();
        for u in &users {
            separators.push(internal_key(u, 9, ValueKind::Put));
            separators.push(internal_key(u, 3, ValueKind::Put));
        }
        separators.sort_by(|a, b| cmp_keys(a, b));
        let index = index_of(&separators);
        assert_eq!(index.common, b"row");
        assert_eq!(index.windows.len(), separators.len());
        let mut probes: Vec<Vec<u8>> = Vec::new();
        for u in users.iter().chain([
            &b"ro".to_vec(),
            &b"".to_vec(),
            &b"rox".to_vec(),
            &b"rov".to_vec(),
            &b"row0000000000000001\0".to_vec(),
            &b"row00000000".to_vec(),
            &b"row\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff".to_vec(),
        ]) {
            for seq in [0, 3, 5, 9, 12] {
                probes.push(internal_key(u, seq, ValueKind::Put));
            }
        }
        probes.push(b"short".to_vec());
        for p in &probes {
            assert_eq!(index.find(p), naive(&index, p), "probe {p:?}");
        }
    }

    #[test]
    fn separators_shorter_than_a_trailer_use_whole_key_search() {
        let index = index_of(&[b"a".to_vec(), b"b".to_vec()]);
        assert!(index.windows.is_empty());
        assert_eq!(index.find(b"b"), 1);
        assert_eq!(index.find(b"c"), 2);
    }
}
