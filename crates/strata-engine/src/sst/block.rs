//! Block contents: prefix-compressed entries with restart points.
//!
//! `BlockBuilder` writes them, `Block` holds decoded (decompressed) contents
//! whose restart array has been validated; `BlockIter` (block_iter.rs)
//! walks them.

use crate::coding::{get_varint, put_varint};

/// Why block contents failed to decode: a short static description.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct BlockCorrupt(pub &'static str);

/// Builds the contents of one data or index block.
pub(crate) struct BlockBuilder {
    buf: Vec<u8>,
    restarts: Vec<u32>,
    restart_interval: usize,
    /// Entries since the last restart point.
    counter: usize,
    last_key: Vec<u8>,
    finished: bool,
}

impl BlockBuilder {
    pub fn new(restart_interval: usize) -> BlockBuilder {
        debug_assert!(restart_interval >= 1);
        BlockBuilder {
            buf: Vec::new(),
            restarts: vec![0],
            restart_interval: restart_interval.max(1),
            counter: 0,
            last_key: Vec::new(),
            finished: false,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// Size of the contents if finished now.
    pub fn size_estimate(&self) -> usize {
        self.buf.len() + self.restarts.len() * 4 + 4
    }

    /// Appends an entry; keys must increase (checked by the table builder).
    pub fn add(&mut self, key: &[u8], value: &[u8]) {
        debug_assert!(!self.finished);
        let shared = if self.counter < self.restart_interval {
            self.last_key
                .iter()
                .zip(key)
                .take_while(|(a, b)| a == b)
                .count()
        } else {
            self.restarts.push(self.buf.len() as u32);
            self.counter = 0;
            0
        };
        put_varint(&mut self.buf, shared as u64);
        put_varint(&mut self.buf, (key.len() - shared) as u64);
        put_varint(&mut self.buf, value.len() as u64);
        self.buf.extend_from_slice(&key[shared..]);
        self.buf.extend_from_slice(value);
        self.last_key.truncate(shared);
        self.last_key.extend_from_slice(&key[shared..]);
        self.counter += 1;
    }

    /// Appends the restart array and returns the finished contents.
    pub fn finish(&mut self) -> &[u8] {
        debug_assert!(!self.finished);
        for &r in &self.restarts {
            self.buf.extend_from_slice(&r.to_le_bytes());
        }
        self.buf
            .extend_from_slice(&(self.restarts.len() as u32).to_le_bytes());
        self.finished = true;
        &self.buf
    }

    /// Starts a new block, keeping allocations.
    pub fn reset(&mut self) {
        self.buf.clear();
        self.restarts.clear();
        self.restarts.push(0);
        self.counter = 0;
        self.last_key.clear();
        self.finished = false;
    }
}

/// Decoded block contents with a validated restart array.
pub struct Block {
    data: Vec<u8>,
    /// Where the restart array starts (= end of the entries).
    restarts_offset: usize,
    num_restarts: usize,
}

impl std::fmt::Debug for Block {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Block")
            .field("bytes", &self.data.len())
            .field("num_restarts", &self.num_restarts)
            .finish()
    }
}

/// A decoded entry header: lengths, and where the key delta starts.
#[derive(Clone, Copy, Debug)]
pub(crate) struct EntryHeader {
    pub shared: usize,
    pub key_start: usize,
    pub value_start: usize,
    pub value_end: usize,
}

impl Block {
    /// Validates the restart array: at least one restart unless there are
    /// no entries, the first at 0, strictly increasing, inside the entries.
    pub(crate) fn new(data: Vec<u8>) -> Result<Block, BlockCorrupt> {
        let len = data.len();
        let n =
            read_u32(&data, len.wrapping_sub(4)).ok_or(BlockCorrupt("block too short"))? as usize;
        let restarts_bytes = n
            .checked_mul(4)
            .and_then(|b| b.checked_add(4))
            .filter(|&b| b <= len)
            .ok_or(BlockCorrupt("bad restart count"))?;
        let restarts_offset = len - restarts_bytes;
        if n == 0 && restarts_offset != 0 {
            return Err(BlockCorrupt("entries without restart points"));
        }
        let mut prev: Option<usize> = None;
        for i in 0..n {
            let r = read_u32(&data, restarts_offset + 4 * i).ok_or(BlockCorrupt("bad restart"))?
                as usize;
            let ok = match prev {
                None => r == 0,
                Some(p) => r > p,
            };
            if !ok || r >= restarts_offset {
                return Err(BlockCorrupt("bad restart offset"));
            }
            prev = Some(r);
        }
        Ok(Block {
            data,
            restarts_offset,
            num_restarts: n,
        })
    }

    /// Bytes held in memory (the cache charge).
    pub fn size_bytes(&self) -> usize {
        self.data.capacity()
    }

    pub(crate) fn data(&self) -> &[u8] {
        &self.data
    }

    pub(crate) fn restarts_offset(&self) -> usize {
        self.restarts_offset
    }

    pub(crate) fn num_restarts(&self) -> usize {
        self.num_restarts
    }

    /// Offset of restart point `i` (< num_restarts, validated by `new`).
    #[inline]
    pub(crate) fn restart_point(&self, i: usize) -> usize {
        debug_assert!(i < self.num_restarts);
        read_u32(&self.data, self.restarts_offset + 4 * i).unwrap_or(0) as usize
    }

    /// Decodes the entry header at `p` (< restarts_offset), bounds-checked
    /// against the entries area.
    #[inline]
    pub(crate) fn entry_header(&self, p: usize) -> Result<EntryHeader, BlockCorrupt> {
        let limit = self.restarts_offset;
        let d = &self.data[..limit];
        let (shared, unshared, value_len, header_len) = match d.get(p..p + 3) {
            Some(&[a, b, c]) if (a | b | c) < 0x80 => (a as u64, b as u64, c as u64, 3),
            _ => {
                let mut at = p;
                let mut next = || -> Result<u64, BlockCorrupt> {
                    let (v, n) = d
                        .get(at..)
                        .and_then(get_varint)
                        .ok_or(BlockCorrupt("bad entry header"))?;
                    at += n;
                    Ok(v)
                };
                let (s, u, v) = (next()?, next()?, next()?);
                (s, u, v, at - p)
            }
        };
        let too_long = BlockCorrupt("entry extends past the block");
        let key_start = p + header_len;
        let unshared = usize::try_from(unshared).map_err(|_| too_long)?;
        let value_len = usize::try_from(value_len).map_err(|_| too_long)?;
        let value_start = key_start.checked_add(unshared).ok_or(too_long)?;
        let value_end = value_start.checked_add(value_len).ok_or(too_long)?;
        if value_end > limit {
            return Err(too_long);
        }
        Ok(EntryHeader {
            shared: usize::try_from(shared).map_err(|_| BlockCorrupt("bad shared length"))?,
            key_start,
            value_start,
            value_end,
        })
    }

    /// The full key of the entry at restart point `i` (its shared length
    /// must be 0).
    pub(crate) fn restart_key(&self, i: usize) -> Result<&[u8], BlockCorrupt> {
        let h = self.entry_header(self.restart_point(i))?;
        if h.shared != 0 {
            return Err(BlockCorrupt("restart entry shares a prefix"));
        }
        Ok(&self.data[h.key_start..h.value_start])
    }
}

#[inline]
fn read_u32(data: &[u8], at: usize) -> Option<u32> {
    let b = data.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}
