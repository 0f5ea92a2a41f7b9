//! Writes an SSTable from entries in increasing internal order.

use std::cmp::Ordering;

use super::block::BlockBuilder;
use super::bloom::{bloom_hash, build_filter};
use super::compress::Compressor;
use super::format::{
    block_crc, BlockHandle, Compression, Footer, TableProperties, BLOCK_TRAILER_LEN,
    MAX_BLOCK_BYTES,
};
use crate::error::{Error, Result};
use crate::key::{cmp_internal, pack_trailer, parse_internal_key, user_key, ValueKind, SEQ_MAX};
use crate::storage::WritableFile;

/// Restart interval of the index block.
const INDEX_RESTART_INTERVAL: usize = 16;
/// Headroom for entry headers and restarts when bounding a block.
const BLOCK_OVERHEAD_BYTES: usize = 64;

/// How a table is written.
#[derive(Clone, Debug)]
pub struct TableBuilderOptions {
    /// Uncompressed size at which a data block is cut (default 64 KiB).
    pub block_size_bytes: usize,
    /// Entries between restart points in data blocks (default 16).
    pub restart_interval: usize,
    /// Compression of data and index blocks (default Lz4).
    pub compression: Compression,
    /// zstd level when `compression` is Zstd (default 3).
    pub zstd_level: i32,
    /// Bloom filter bits per distinct user key; 0 = no filter (default 10).
    pub bloom_bits_per_key: u32,
}

impl Default for TableBuilderOptions {
    fn default() -> Self {
        TableBuilderOptions {
            block_size_bytes: 64 << 10,
            restart_interval: 16,
            compression: Compression::Lz4,
            zstd_level: 3,
            bloom_bits_per_key: 10,
        }
    }
}

/// Appends framed blocks to the file and tracks the offset.
struct BlockWriter {
    file: Box<dyn WritableFile>,
    offset: u64,
    compressor: Compressor,
    compressed: Vec<u8>,
}

impl BlockWriter {
    /// Writes `payload | type | crc`, compressing when worthwhile.
    fn write_block(&mut self, raw: &[u8], compression: Compression) -> Result<BlockHandle> {
        let (payload, kind) = if self
            .compressor
            .compress(raw, compression, &mut self.compressed)
        {
            (&self.compressed[..], compression)
        } else {
            (raw, Compression::None)
        };
        let mut trailer = [0u8; BLOCK_TRAILER_LEN];
        trailer[0] = kind as u8;
        trailer[1..].copy_from_slice(&block_crc(payload, kind as u8).to_le_bytes());
        self.file.append(payload)?;
        self.file.append(&trailer)?;
        let handle = BlockHandle {
            offset: self.offset,
            size: payload.len() as u64,
        };
        self.offset += (payload.len() + BLOCK_TRAILER_LEN) as u64;
        Ok(handle)
    }
}

/// Writes one table: `add` entries in strictly increasing internal order,
/// then `finish`.
pub struct TableBuilder {
    opts: TableBuilderOptions,
    file_name: String,
    writer: BlockWriter,
    data_block: BlockBuilder,
    index_block: BlockBuilder,
    /// Handle of the last flushed data block, indexed once the next key
    /// (or the end) is known.
    pending_handle: Option<BlockHandle>,
    last_key: Vec<u8>,
    /// Hashes of distinct user keys, for the filter.
    filter_hashes: Vec<u64>,
    props: TableProperties,
    scratch: Vec<u8>,
    handle_buf: Vec<u8>,
    failed: bool,
}

impl TableBuilder {
    /// A builder writing to `file` (named `file_name` in errors).
    pub fn new(
        opts: TableBuilderOptions,
        file: Box<dyn WritableFile>,
        file_name: String,
    ) -> TableBuilder {
        debug_assert!(opts.block_size_bytes > 0 && opts.restart_interval > 0);
        debug_assert!(file.is_empty(), "a table starts at offset 0");
        TableBuilder {
            data_block: BlockBuilder::new(opts.restart_interval),
            index_block: BlockBuilder::new(INDEX_RESTART_INTERVAL),
            writer: BlockWriter {
                offset: file.len(),
                file,
                compressor: Compressor::new(opts.zstd_level),
                compressed: Vec::new(),
            },
            opts,
            file_name,
            pending_handle: None,
            last_key: Vec::new(),
            filter_hashes: Vec::new(),
            props: TableProperties::default(),
            scratch: Vec::new(),
            handle_buf: Vec::with_capacity(20),
            failed: false,
        }
    }

    /// Adds an entry. Keys must be strictly increasing in internal order
    /// (`cmp_internal`); violating it returns `Error::InvalidArgument`.
    pub fn add(&mut self, ikey: &[u8], value: &[u8]) -> Result<()> {
        self.check_usable()?;
        let parsed = parse_internal_key(ikey).ok_or_else(|| {
            Error::InvalidArgument(format!("{}: malformed internal key", self.file_name))
        })?;
        if self.props.entries > 0 && cmp_internal(&self.last_key, ikey) != Ordering::Less {
            return Err(Error::InvalidArgument(format!(
                "{}: keys added out of order",
                self.file_name
            )));
        }
        let entry_bytes = ikey.len().saturating_add(value.len());
        if entry_bytes > MAX_BLOCK_BYTES - BLOCK_OVERHEAD_BYTES {
            return Err(Error::InvalidArgument(format!(
                "{}: entry of {entry_bytes} bytes is too large",
                self.file_name
            )));
        }
        if !self.data_block.is_empty()
            && self.data_block.size_estimate() + entry_bytes + BLOCK_OVERHEAD_BYTES
                > MAX_BLOCK_BYTES
        {
            self.flush_data_block()?;
        }
        if let Some(handle) = self.pending_handle.take() {
            shortest_separator(&self.last_key, ikey, &mut self.scratch);
            self.add_index_entry(handle);
        }

        let new_user_key = self.props.entries == 0 || user_key(&self.last_key) != parsed.user_key;
        if self.opts.bloom_bits_per_key > 0 && new_user_key {
            self.filter_hashes.push(bloom_hash(parsed.user_key));
        }
        let p = &mut self.props;
        if p.entries == 0 {
            p.smallest_key = ikey.to_vec();
            p.smallest_seq = parsed.seq;
            p.largest_seq = parsed.seq;
        }
        p.entries += 1;
        match parsed.kind {
            ValueKind::Delete => p.deletions += 1,
            ValueKind::Merge => p.merges += 1,
            ValueKind::Put => {}
        }
        p.smallest_seq = p.smallest_seq.min(parsed.seq);
        p.largest_seq = p.largest_seq.max(parsed.seq);
        p.raw_key_bytes += ikey.len() as u64;
        p.raw_value_bytes += value.len() as u64;

        self.data_block.add(ikey, value);
        self.last_key.clear();
        self.last_key.extend_from_slice(ikey);
        if self.data_block.size_estimate() >= self.opts.block_size_bytes {
            self.flush_data_block()?;
        }
        Ok(())
    }

    /// Entries added so far.
    pub fn entries(&self) -> u64 {
        self.props.entries
    }

    /// Bytes written so far plus the pending (uncompressed) data block.
    pub fn estimated_size_bytes(&self) -> u64 {
        let pending = if self.data_block.is_empty() {
            0
        } else {
            self.data_block.size_estimate()
        };
        self.writer.offset + pending as u64
    }

    /// Writes the last data block, filter, index, properties and footer,
    /// then syncs the file. Error if no entries were added.
    pub fn finish(mut self) -> Result<TableProperties> {
        self.check_usable()?;
        if self.props.entries == 0 {
            return Err(Error::InvalidArgument(format!(
                "{}: cannot finish a table with no entries",
                self.file_name
            )));
        }
        self.finish_inner()
    }

    fn finish_inner(&mut self) -> Result<TableProperties> {
        if !self.data_block.is_empty() {
            self.flush_data_block()?;
        }
        if let Some(handle) = self.pending_handle.take() {
            self.scratch.clear();
            self.scratch.extend_from_slice(&self.last_key);
            self.add_index_entry(handle);
        }
        let mut footer = Footer::default();
        if self.opts.bloom_bits_per_key > 0 {
            let filter = build_filter(&self.filter_hashes, self.opts.bloom_bits_per_key);
            footer.filter = self.writer.write_block(&filter, Compression::None)?;
            self.props.filter_bytes = footer.filter.size + BLOCK_TRAILER_LEN as u64;
        }
        footer.index = self
            .writer
            .write_block(self.index_block.finish(), self.opts.compression)?;
        self.props.index_bytes = footer.index.size + BLOCK_TRAILER_LEN as u64;
        self.props.largest_key = self.last_key.clone();
        let encoded = self.props.encode();
        footer.properties = self.writer.write_block(&encoded, Compression::None)?;
        let footer = footer.encode();
        self.writer.file.append(&footer)?;
        self.writer.offset += footer.len() as u64;
        self.writer.file.sync()?;
        self.props.file_size_bytes = self.writer.offset;
        Ok(self.props.clone())
    }

    fn check_usable(&self) -> Result<()> {
        if self.failed {
            return Err(Error::InvalidArgument(format!(
                "{}: table builder is unusable after an earlier error",
                self.file_name
            )));
        }
        Ok(())
    }

    /// Indexes a flushed block under the separator in `scratch`.
    fn add_index_entry(&mut self, handle: BlockHandle) {
        self.handle_buf.clear();
        handle.encode_varint(&mut self.handle_buf);
        self.index_block.add(&self.scratch, &self.handle_buf);
    }

    fn flush_data_block(&mut self) -> Result<()> {
        debug_assert!(!self.data_block.is_empty());
        debug_assert!(self.pending_handle.is_none());
        let r = self
            .writer
            .write_block(self.data_block.finish(), self.opts.compression);
        self.data_block.reset();
        match r {
            Ok(handle) => {
                self.props.data_blocks += 1;
                self.props.data_bytes += handle.size + BLOCK_TRAILER_LEN as u64;
                self.pending_handle = Some(handle);
                Ok(())
            }
            Err(e) => {
                self.failed = true;
                Err(e)
            }
        }
    }
}

/// Writes into `out` a short internal key `s` with `a <= s < b` (LevelDB's
/// FindShortestSeparator on the user keys), or `a` itself.
pub(crate) fn shortest_separator(a: &[u8], b: &[u8], out: &mut Vec<u8>) {
    debug_assert_eq!(cmp_internal(a, b), Ordering::Less);
    out.clear();
    let (ua, ub) = (user_key(a), user_key(b));
    let prefix = ua.iter().zip(ub).take_while(|(x, y)| x == y).count();
    if prefix < ua.len() && prefix < ub.len() {
        let byte = ua[prefix];
        if byte < 0xff && byte + 1 < ub[prefix] && prefix + 1 + 8 < a.len() {
            out.extend_from_slice(&ua[..prefix]);
            out.push(byte + 1);
            out.extend_from_slice(&pack_trailer(SEQ_MAX, ValueKind::Merge).to_le_bytes());
            debug_assert_eq!(cmp_internal(a, out), Ordering::Less);
            debug_assert_eq!(cmp_internal(out, b), Ordering::Less);
            return;
        }
    }
    out.extend_from_slice(a);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::internal_key;

    #[test]
    fn separators() {
        let mut out = Vec::new();
        let a = internal_key(b"apple-pie", 3, ValueKind::Put);
        let b = internal_key(b"cherry", 9, ValueKind::Put);
        shortest_separator(&a, &b, &mut out);
        assert_eq!(user_key(&out), b"b");
        // Adjacent bytes, prefixes and equal user keys keep `a`.
        for (ua, ub) in [(&b"abc"[..], &b"abd"[..]), (b"ab", b"abc"), (b"k", b"k")] {
            let a = internal_key(ua, 5, ValueKind::Put);
            let b = internal_key(ub, 4, ValueKind::Put);
            shortest_separator(&a, &b, &mut out);
            assert_eq!(out, a);
        }
    }
}
