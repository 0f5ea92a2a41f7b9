//! On-disk framing of SSTables: compression tags, block handles, the block
//! trailer, the footer and the properties block (docs/formats/sstable.md).

use crate::coding::{get_u32, get_u64, get_varint, put_u32, put_u64, put_varint, Reader};
use crate::error::{Error, Result};
use crate::key::parse_internal_key;

/// Length of the trailer after every block payload: type u8 + crc u32.
pub(crate) const BLOCK_TRAILER_LEN: usize = 5;
/// Length of the fixed footer at the end of every table.
pub(crate) const FOOTER_LEN: usize = 64;
/// The footer's magic number ("STRATAST" read as a big-endian u64).
pub const TABLE_MAGIC: u64 = 0x5354_5241_5441_5354;
/// The only table format version written and read.
pub const FORMAT_VERSION: u32 = 1;
/// Largest decoded block content accepted (and produced) in bytes.
pub(crate) const MAX_BLOCK_BYTES: usize = 1 << 30;

const CRC_MASK_DELTA: u32 = 0xa282_ead8;

/// How a block's payload is compressed. Stored on disk: NEVER renumber.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Compression {
    /// Stored as is.
    None = 0,
    /// LZ4 block format (lz4_flex).
    Lz4 = 1,
    /// One zstd frame.
    Zstd = 2,
}

impl Compression {
    /// Decodes an on-disk tag.
    pub fn from_u8(b: u8) -> Option<Compression> {
        match b {
            0 => Some(Compression::None),
            1 => Some(Compression::Lz4),
            2 => Some(Compression::Zstd),
            _ => None,
        }
    }
}

/// Masks a crc as LevelDB does, so crcs of data holding crcs stay strong.
pub(crate) fn mask_crc(crc: u32) -> u32 {
    crc.rotate_right(15).wrapping_add(CRC_MASK_DELTA)
}

/// The masked crc32c stored in a block trailer.
pub(crate) fn block_crc(payload: &[u8], compression_type: u8) -> u32 {
    mask_crc(crate::checksum::crc32c_append(
        crate::checksum::crc32c(payload),
        &[compression_type],
    ))
}

/// Where a block lives: `size` is the payload length without the trailer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct BlockHandle {
    pub offset: u64,
    pub size: u64,
}

impl BlockHandle {
    /// Appends `offset varint | size varint`.
    pub fn encode_varint(&self, dst: &mut Vec<u8>) {
        put_varint(dst, self.offset);
        put_varint(dst, self.size);
    }

    /// Decodes a handle that fills `src` exactly.
    pub fn decode_varint(src: &[u8]) -> Option<BlockHandle> {
        let (offset, n) = get_varint(src)?;
        let (size, m) = get_varint(&src[n..])?;
        (n + m == src.len()).then_some(BlockHandle { offset, size })
    }

    /// Offset just past the block's trailer, `None` on overflow.
    pub fn end(&self) -> Option<u64> {
        self.offset
            .checked_add(self.size)?
            .checked_add(BLOCK_TRAILER_LEN as u64)
    }
}

/// The fixed-size footer: handles of the metadata blocks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Footer {
    /// `size == 0` means the table has no filter.
    pub filter: BlockHandle,
    pub index: BlockHandle,
    pub properties: BlockHandle,
}

impl Footer {
    pub fn encode(&self) -> [u8; FOOTER_LEN] {
        let mut v = Vec::with_capacity(FOOTER_LEN);
        for h in [self.filter, self.index, self.properties] {
            put_u64(&mut v, h.offset);
            put_u64(&mut v, h.size);
        }
        put_u32(&mut v, FORMAT_VERSION);
        let crc = mask_crc(crate::checksum::crc32c(&v));
        put_u32(&mut v, crc);
        put_u64(&mut v, TABLE_MAGIC);
        let mut out = [0u8; FOOTER_LEN];
        out.copy_from_slice(&v);
        out
    }

    /// Decodes and checks the last `FOOTER_LEN` bytes of a table.
    pub fn decode(buf: &[u8], file: &str) -> Result<Footer> {
        let bad = |detail: &str| Error::corruption(file, format!("table footer: {detail}"));
        if buf.len() != FOOTER_LEN {
            return Err(bad("wrong length"));
        }
        if get_u64(buf, 56) != Some(TABLE_MAGIC) {
            return Err(bad("bad magic number (not an SSTable)"));
        }
        if get_u32(buf, 52) != Some(mask_crc(crate::checksum::crc32c(&buf[..52]))) {
            return Err(bad("checksum mismatch"));
        }
        let version = get_u32(buf, 48).ok_or_else(|| bad("truncated"))?;
        if version != FORMAT_VERSION {
            return Err(bad(&format!("unsupported format version {version}")));
        }
        let handle = |at: usize| -> Result<BlockHandle> {
            Ok(BlockHandle {
                offset: get_u64(buf, at).ok_or_else(|| bad("truncated"))?,
                size: get_u64(buf, at + 8).ok_or_else(|| bad("truncated"))?,
            })
        };
        Ok(Footer {
            filter: handle(0)?,
            index: handle(16)?,
            properties: handle(32)?,
        })
    }
}

/// Statistics and bounds of one table, stored in its properties block.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TableProperties {
    /// Number of entries (every version of every key).
    pub entries: u64,
    /// Entries of kind Delete.
    pub deletions: u64,
    /// Entries of kind Merge.
    pub merges: u64,
    /// First internal key of the table.
    pub smallest_key: Vec<u8>,
    /// Last internal key of the table.
    pub largest_key: Vec<u8>,
    /// Smallest sequence number of any entry.
    pub smallest_seq: u64,
    /// Largest sequence number of any entry.
    pub largest_seq: u64,
    /// Sum of internal key lengths.
    pub raw_key_bytes: u64,
    /// Sum of value lengths.
    pub raw_value_bytes: u64,
    /// Number of data blocks.
    pub data_blocks: u64,
    /// Bytes of data blocks on disk, trailers included.
    pub data_bytes: u64,
    /// Bytes of the index block on disk, trailer included.
    pub index_bytes: u64,
    /// Bytes of the filter block on disk, trailer included (0 = no filter).
    pub filter_bytes: u64,
    /// Size of the whole file (not stored: taken from the file).
    pub file_size_bytes: u64,
}

// Property tags: stored on disk, NEVER renumber.
const TAG_ENTRIES: u64 = 1;
const TAG_DELETIONS: u64 = 2;
const TAG_MERGES: u64 = 3;
const TAG_SMALLEST_KEY: u64 = 4;
const TAG_LARGEST_KEY: u64 = 5;
const TAG_SMALLEST_SEQ: u64 = 6;
const TAG_LARGEST_SEQ: u64 = 7;
const TAG_RAW_KEY_BYTES: u64 = 8;
const TAG_RAW_VALUE_BYTES: u64 = 9;
const TAG_DATA_BLOCKS: u64 = 10;
const TAG_DATA_BYTES: u64 = 11;
const TAG_INDEX_BYTES: u64 = 12;
const TAG_FILTER_BYTES: u64 = 13;
const MAX_TAG: u64 = 13;

impl TableProperties {
    fn int_fields(&self) -> [(u64, u64); 11] {
        [
            (TAG_ENTRIES, self.entries),
            (TAG_DELETIONS, self.deletions),
            (TAG_MERGES, self.merges),
            (TAG_SMALLEST_SEQ, self.smallest_seq),
            (TAG_LARGEST_SEQ, self.largest_seq),
            (TAG_RAW_KEY_BYTES, self.raw_key_bytes),
            (TAG_RAW_VALUE_BYTES, self.raw_value_bytes),
            (TAG_DATA_BLOCKS, self.data_blocks),
            (TAG_DATA_BYTES, self.data_bytes),
            (TAG_INDEX_BYTES, self.index_bytes),
            (TAG_FILTER_BYTES, self.filter_bytes),
        ]
    }

    /// Encodes the properties block payload (`file_size_bytes` is not stored).
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64 + self.smallest_key.len() + self.largest_key.len());
        let mut num = Vec::with_capacity(10);
        for (tag, v) in self.int_fields() {
            num.clear();
            put_varint(&mut num, v);
            put_varint(&mut out, tag);
            crate::coding::put_len_prefixed(&mut out, &num);
        }
        for (tag, k) in [
            (TAG_SMALLEST_KEY, &self.smallest_key),
            (TAG_LARGEST_KEY, &self.largest_key),
        ] {
            put_varint(&mut out, tag);
            crate::coding::put_len_prefixed(&mut out, k);
        }
        out
    }

    /// Decodes a properties block payload; checks required fields.
    pub(crate) fn decode(payload: &[u8], file: &str) -> Result<TableProperties> {
        let bad = |detail: String| Error::corruption(file, format!("properties block: {detail}"));
        let mut p = TableProperties::default();
        let mut seen = [false; MAX_TAG as usize + 1];
        let mut r = Reader::new(payload, file);
        while !r.is_empty() {
            let tag = r.varint()?;
            let value = r.len_prefixed()?;
            if tag > MAX_TAG || tag == 0 {
                continue; // written by a newer version: skip
            }
            let slot = &mut seen[tag as usize];
            if *slot {
                return Err(bad(format!("duplicate tag {tag}")));
            }
            *slot = true;
            let int = || match get_varint(value) {
                Some((v, n)) if n == value.len() => Ok(v),
                _ => Err(bad(format!("bad integer for tag {tag}"))),
            };
            match tag {
                TAG_ENTRIES => p.entries = int()?,
                TAG_DELETIONS => p.deletions = int()?,
                TAG_MERGES => p.merges = int()?,
                TAG_SMALLEST_KEY => p.smallest_key = value.to_vec(),
                TAG_LARGEST_KEY => p.largest_key = value.to_vec(),
                TAG_SMALLEST_SEQ => p.smallest_seq = int()?,
                TAG_LARGEST_SEQ => p.largest_seq = int()?,
                TAG_RAW_KEY_BYTES => p.raw_key_bytes = int()?,
                TAG_RAW_VALUE_BYTES => p.raw_value_bytes = int()?,
                TAG_DATA_BLOCKS => p.data_blocks = int()?,
                TAG_DATA_BYTES => p.data_bytes = int()?,
                TAG_INDEX_BYTES => p.index_bytes = int()?,
                TAG_FILTER_BYTES => p.filter_bytes = int()?,
                _ => {}
            }
        }
        for tag in [TAG_ENTRIES, TAG_SMALLEST_KEY, TAG_LARGEST_KEY] {
            if !seen[tag as usize] {
                return Err(bad(format!("missing required tag {tag}")));
            }
        }
        if p.entries == 0 {
            return Err(bad("zero entries".into()));
        }
        if parse_internal_key(&p.smallest_key).is_none()
            || parse_internal_key(&p.largest_key).is_none()
            || crate::key::cmp_internal(&p.smallest_key, &p.largest_key).is_gt()
        {
            return Err(bad("bad smallest/largest key".into()));
        }
        Ok(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn footer_round_trip_and_checks() {
        let f = Footer {
            filter: BlockHandle {
                offset: 10,
                size: 20,
            },
            index: BlockHandle {
                offset: 35,
                size: 7,
            },
            properties: BlockHandle {
                offset: 47,
                size: 9,
            },
        };
        let enc = f.encode();
        assert_eq!(Footer::decode(&enc, "t").unwrap(), f);
        for i in 0..FOOTER_LEN {
            let mut e = enc;
            e[i] ^= 0x40;
            assert!(Footer::decode(&e, "t").unwrap_err().is_corruption());
        }
    }

    #[test]
    fn properties_round_trip() {
        let p = TableProperties {
            entries: 3,
            deletions: 1,
            merges: 1,
            smallest_key: crate::key::internal_key(b"a", 5, crate::ValueKind::Put),
            largest_key: crate::key::internal_key(b"z", 1, crate::ValueKind::Delete),
            smallest_seq: 1,
            largest_seq: 5,
            raw_key_bytes: 27,
            raw_value_bytes: 300,
            data_blocks: 2,
            data_bytes: 1000,
            index_bytes: 40,
            filter_bytes: 70,
            file_size_bytes: 0,
        };
        let enc = p.encode();
        assert_eq!(TableProperties::decode(&enc, "t").unwrap(), p);
        // Unknown tags are skipped.
        let mut ext = enc.clone();
        ext.extend_from_slice(&[99, 2, 7, 7]);
        assert_eq!(TableProperties::decode(&ext, "t").unwrap(), p);
        // Duplicates and truncation are corruption.
        let mut dup = enc.clone();
        dup.extend_from_slice(&[1, 1, 3]);
        assert!(TableProperties::decode(&dup, "t").is_err());
        assert!(TableProperties::decode(&enc[..enc.len() - 1], "t").is_err());
    }

    #[test]
    fn handle_varint() {
        let h = BlockHandle {
            offset: 1 << 40,
            size: 300,
        };
        let mut v = Vec::new();
        h.encode_varint(&mut v);
        assert_eq!(BlockHandle::decode_varint(&v), Some(h));
        v.push(0);
        assert_eq!(BlockHandle::decode_varint(&v), None);
    }
}
