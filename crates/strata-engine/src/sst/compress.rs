//! Block compression and bounded decompression.
//!
//! A compressed payload is `uncompressed_len varint | compressed bytes`.
//! Decompression never trusts the recorded length beyond what the input
//! could produce: lz4 is bounded by its maximum ratio, large zstd outputs
//! are grown as they are produced.

use std::cell::RefCell;
use std::io::Read;

use super::format::{Compression, MAX_BLOCK_BYTES};
use crate::coding::{get_varint, put_varint};

/// LZ4's output can be at most ~255 times its input.
const LZ4_MAX_RATIO: usize = 255;
/// zstd outputs up to this size are decoded into one exact allocation.
const ZSTD_EXACT_ALLOC_BYTES: usize = 4 << 20;

thread_local! {
    static ZSTD_DCTX: RefCell<Option<zstd::bulk::Decompressor<'static>>> = const { RefCell::new(None) };
}

/// Reusable compression state of one table writer.
pub(crate) struct Compressor {
    zstd_level: i32,
    zstd: Option<zstd::bulk::Compressor<'static>>,
    scratch: Vec<u8>,
}

impl Compressor {
    pub fn new(zstd_level: i32) -> Compressor {
        Compressor {
            zstd_level,
            zstd: None,
            scratch: Vec::new(),
        }
    }

    /// Compresses `raw` into `out` (cleared first) and returns true, or
    /// returns false when the block should be stored uncompressed: no
    /// compression asked, a compressor failure, or a saving below 1/8.
    pub fn compress(&mut self, raw: &[u8], kind: Compression, out: &mut Vec<u8>) -> bool {
        out.clear();
        put_varint(out, raw.len() as u64);
        let header_len = out.len();
        match kind {
            Compression::None => return false,
            Compression::Lz4 => {
                out.resize(
                    header_len + lz4_flex::block::get_maximum_output_size(raw.len()),
                    0,
                );
                match lz4_flex::block::compress_into(raw, &mut out[header_len..]) {
                    Ok(n) => out.truncate(header_len + n),
                    Err(_) => return false,
                }
            }
            Compression::Zstd => {
                if self.zstd.is_none() {
                    self.zstd = zstd::bulk::Compressor::new(self.zstd_level).ok();
                }
                let Some(z) = self.zstd.as_mut() else {
                    return false;
                };
                self.scratch.clear();
                self.scratch
                    .reserve(zstd::zstd_safe::compress_bound(raw.len()));
                if z.compress_to_buffer(raw, &mut self.scratch).is_err() {
                    return false;
                }
                out.extend_from_slice(&self.scratch);
            }
        }
        out.len() <= raw.len() - raw.len() / 8
    }
}

/// Decodes a compressed payload of type `kind` (not `None`) into the block
/// contents. Errors are short corruption details.
pub(crate) fn decompress(payload: &[u8], kind: Compression) -> Result<Vec<u8>, &'static str> {
    let (len, n) = get_varint(payload).ok_or("bad uncompressed length")?;
    let input = &payload[n..];
    let len = usize::try_from(len).map_err(|_| "uncompressed length too large")?;
    if len > MAX_BLOCK_BYTES {
        return Err("uncompressed length too large");
    }
    match kind {
        Compression::None => Err("not a compressed block"),
        Compression::Lz4 => {
            if len > input.len().saturating_mul(LZ4_MAX_RATIO).saturating_add(64) {
                return Err("lz4 length exceeds the maximum ratio");
            }
            let mut out = vec![0u8; len];
            match lz4_flex::block::decompress_into(input, &mut out) {
                Ok(got) if got == len => Ok(out),
                Ok(_) => Err("lz4 output length mismatch"),
                Err(_) => Err("lz4 decompression failed"),
            }
        }
        Compression::Zstd => {
            if len <= ZSTD_EXACT_ALLOC_BYTES {
                zstd_exact(input, len)
            } else {
                zstd_streaming(input, len)
            }
        }
    }
}

fn zstd_exact(input: &[u8], len: usize) -> Result<Vec<u8>, &'static str> {
    ZSTD_DCTX.with(|cell| {
        let mut slot = cell.try_borrow_mut().map_err(|_| "zstd context busy")?;
        if slot.is_none() {
            *slot = zstd::bulk::Decompressor::new().ok();
        }
        let d = slot.as_mut().ok_or("zstd context unavailable")?;
        // One extra byte of room tells "exactly len" from "more than len".
        let mut out = Vec::with_capacity(len + 1);
        match d.decompress_to_buffer(input, &mut out) {
            Ok(got) if got == len && out.len() == len => Ok(out),
            Ok(_) => Err("zstd output length mismatch"),
            Err(_) => Err("zstd decompression failed"),
        }
    })
}

/// Large outputs: memory grows only with bytes actually produced.
fn zstd_streaming(input: &[u8], len: usize) -> Result<Vec<u8>, &'static str> {
    let dec = zstd::stream::read::Decoder::with_buffer(input).map_err(|_| "zstd init failed")?;
    let mut out = Vec::new();
    dec.take(len as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|_| "zstd decompression failed")?;
    if out.len() != len {
        return Err("zstd output length mismatch");
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::coding::varint_len;

    #[test]
    fn round_trip_and_bounds() {
        let raw: Vec<u8> = (0..100_000u32).map(|i| (i % 17) as u8).collect();
        let mut c = Compressor::new(3);
        let mut out = Vec::new();
        for kind in [Compression::Lz4, Compression::Zstd] {
            assert!(c.compress(&raw, kind, &mut out));
            assert_eq!(decompress(&out, kind).unwrap(), raw);
            // Lying about the length is caught.
            let mut lie = Vec::new();
            put_varint(&mut lie, raw.len() as u64 + 1);
            lie.extend_from_slice(&out[varint_len(raw.len() as u64)..]);
            assert!(decompress(&lie, kind).is_err());
            let mut huge = Vec::new();
            put_varint(&mut huge, 1 << 40);
            huge.extend_from_slice(&out[varint_len(raw.len() as u64)..]);
            assert!(decompress(&huge, kind).is_err());
        }
        assert!(!c.compress(&raw, Compression::None, &mut out));
        // Incompressible input is stored raw.
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::SmallRng::seed_from_u64(1);
        let noise: Vec<u8> = (0..4096).map(|_| rng.gen()).collect();
        assert!(!c.compress(&noise, Compression::Lz4, &mut out));
    }

    #[test]
    fn large_zstd_streams() {
        let raw = vec![7u8; ZSTD_EXACT_ALLOC_BYTES + 1000];
        let mut c = Compressor::new(1);
        let mut out = Vec::new();
        assert!(c.compress(&raw, Compression::Zstd, &mut out));
        assert_eq!(decompress(&out, Compression::Zstd).unwrap(), raw);
    }
}
