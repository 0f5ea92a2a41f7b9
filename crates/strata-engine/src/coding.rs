//! Little-endian fixed-width integers and LEB128 varints, as used by every
//! on-disk format (see docs/formats/).

use crate::error::{Error, Result};

pub fn put_u32(dst: &mut Vec<u8>, v: u32) {
    dst.extend_from_slice(&v.to_le_bytes());
}

pub fn put_u64(dst: &mut Vec<u8>, v: u64) {
    dst.extend_from_slice(&v.to_le_bytes());
}

pub fn put_varint(dst: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        dst.push((v as u8) | 0x80);
        v >>= 7;
    }
    dst.push(v as u8);
}

/// Appends a varint length followed by the bytes.
pub fn put_len_prefixed(dst: &mut Vec<u8>, bytes: &[u8]) {
    put_varint(dst, bytes.len() as u64);
    dst.extend_from_slice(bytes);
}

pub fn varint_len(mut v: u64) -> usize {
    let mut n = 1;
    while v >= 0x80 {
        v >>= 7;
        n += 1;
    }
    n
}

pub fn get_u32(src: &[u8], at: usize) -> Option<u32> {
    src.get(at..at + 4)
        .map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")))
}

pub fn get_u64(src: &[u8], at: usize) -> Option<u64> {
    src.get(at..at + 8)
        .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
}

/// Decodes a varint at the front of `src`: (value, bytes consumed).
pub fn get_varint(src: &[u8]) -> Option<(u64, usize)> {
    let mut v: u64 = 0;
    for (i, &b) in src.iter().enumerate().take(10) {
        let part = u64::from(b & 0x7f);
        if i == 9 && b > 1 {
            return None; // overflows 64 bits
        }
        v |= part << (7 * i);
        if b < 0x80 {
            return Some((v, i + 1));
        }
    }
    None
}

/// A cursor over a byte slice that reports decoding failures as corruption
/// of a named file.
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    file: &'a str,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8], file: &'a str) -> Self {
        Reader { buf, pos: 0, file }
    }

    pub fn is_empty(&self) -> bool {
        self.pos >= self.buf.len()
    }

    pub fn position(&self) -> usize {
        self.pos
    }

    pub fn remaining(&self) -> &'a [u8] {
        &self.buf[self.pos..]
    }

    fn err(&self, what: &str) -> Error {
        Error::corruption(
            self.file,
            format!("truncated or bad {what} at byte {}", self.pos),
        )
    }

    pub fn u8(&mut self) -> Result<u8> {
        let b = *self.buf.get(self.pos).ok_or_else(|| self.err("u8"))?;
        self.pos += 1;
        Ok(b)
    }

    pub fn u32(&mut self) -> Result<u32> {
        let v = get_u32(self.buf, self.pos).ok_or_else(|| self.err("u32"))?;
        self.pos += 4;
        Ok(v)
    }

    pub fn u64(&mut self) -> Result<u64> {
        let v = get_u64(self.buf, self.pos).ok_or_else(|| self.err("u64"))?;
        self.pos += 8;
        Ok(v)
    }

    pub fn varint(&mut self) -> Result<u64> {
        let (v, n) = get_varint(&self.buf[self.pos..]).ok_or_else(|| self.err("varint"))?;
        self.pos += n;
        Ok(v)
    }

    pub fn bytes(&mut self, len: usize) -> Result<&'a [u8]> {
        let end = self
            .pos
            .checked_add(len)
            .ok_or_else(|| self.err("length"))?;
        let b = self
            .buf
            .get(self.pos..end)
            .ok_or_else(|| self.err("bytes"))?;
        self.pos = end;
        Ok(b)
    }

    pub fn len_prefixed(&mut self) -> Result<&'a [u8]> {
        let len = self.varint()?;
        let len = usize::try_from(len).map_err(|_| self.err("length"))?;
        self.bytes(len)
    }

    pub fn string(&mut self) -> Result<String> {
        let b = self.len_prefixed()?;
        String::from_utf8(b.to_vec()).map_err(|_| self.err("utf-8 string"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varint_round_trip() {
        for v in [0u64, 1, 127, 128, 300, u32::MAX as u64, u64::MAX] {
            let mut b = Vec::new();
            put_varint(&mut b, v);
            assert_eq!(b.len(), varint_len(v));
            assert_eq!(get_varint(&b), Some((v, b.len())));
        }
        assert_eq!(get_varint(&[0x80]), None);
        assert_eq!(get_varint(&[0xff; 10]), None);
    }
}
