//! Frame encoding and decoding (docs/formats/commit-log.md).
//!
//! ```text
//! frame  := header payload
//! header := crc32c u32 | payload_len u32 | seq_first u64 | synced_watermark u64   (LE)
//! ```
//!
//! The crc covers every byte after the crc field: the rest of the header
//! and the payload.

use std::fmt;

use crate::coding::{get_u32, get_u64};
use crate::key::SeqNo;

/// Size of a frame header in bytes.
pub(crate) const HEADER_BYTES: usize = 24;

/// Largest payload a frame may carry; a larger length field is damage.
pub const PAYLOAD_BYTES_MAX: usize = 1 << 30;

/// Encodes the header of a frame carrying `payload`.
pub(crate) fn encode_header(
    seq_first: SeqNo,
    synced_watermark: u64,
    payload: &[u8],
) -> [u8; HEADER_BYTES] {
    debug_assert!(payload.len() <= PAYLOAD_BYTES_MAX);
    let mut h = [0u8; HEADER_BYTES];
    h[4..8].copy_from_slice(&(payload.len() as u32).to_le_bytes());
    h[8..16].copy_from_slice(&seq_first.to_le_bytes());
    h[16..24].copy_from_slice(&synced_watermark.to_le_bytes());
    let crc = crate::checksum::crc32c_append(crate::checksum::crc32c(&h[4..]), payload);
    h[..4].copy_from_slice(&crc.to_le_bytes());
    h
}

/// A frame that passed its checksum.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Frame<'a> {
    /// Byte offset of the frame in its segment.
    pub offset: usize,
    pub seq_first: SeqNo,
    /// Bytes of the segment known durable when the frame was written.
    pub synced_watermark: u64,
    pub payload: &'a [u8],
}

impl Frame<'_> {
    /// Offset just past the frame.
    pub fn end(&self) -> usize {
        self.offset + HEADER_BYTES + self.payload.len()
    }
}

/// Why the bytes at some offset are not a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FrameError {
    /// Fewer than a header's bytes remain.
    ShortHeader { remaining: usize },
    /// The length field exceeds `PAYLOAD_BYTES_MAX`.
    LengthTooLarge { payload_len: u64 },
    /// The payload would run past the end of the segment.
    BeyondEnd { payload_len: u64, remaining: usize },
    /// The checksum does not match.
    Checksum { stored: u32, computed: u32 },
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            FrameError::ShortHeader { remaining } => {
                write!(f, "only {remaining} bytes left, short of a {HEADER_BYTES}-byte header")
            }
            FrameError::LengthTooLarge { payload_len } => {
                write!(f, "payload length {payload_len} exceeds {PAYLOAD_BYTES_MAX}")
            }
            FrameError::BeyondEnd {
                payload_len,
                remaining,
            } => write!(
                f,
                "payload length {payload_len} runs past the end ({remaining} bytes after the header)"
            ),
            FrameError::Checksum { stored, computed } => {
                write!(f, "checksum mismatch (stored {stored:#010x}, computed {computed:#010x})")
            }
        }
    }
}

/// Decodes the frame starting at `offset` of `data` (a whole segment).
pub(crate) fn decode_frame(data: &[u8], offset: usize) -> Result<Frame<'_>, FrameError> {
    let rest = data.get(offset..).unwrap_or(&[]);
    let (Some(stored), Some(len), Some(seq_first), Some(synced_watermark)) = (
        get_u32(rest, 0),
        get_u32(rest, 4),
        get_u64(rest, 8),
        get_u64(rest, 16),
    ) else {
        return Err(FrameError::ShortHeader {
            remaining: rest.len(),
        });
    };
    let payload_len = len as usize;
    if payload_len > PAYLOAD_BYTES_MAX {
        return Err(FrameError::LengthTooLarge {
            payload_len: u64::from(len),
        });
    }
    let after_header = &rest[HEADER_BYTES..];
    let Some(payload) = after_header.get(..payload_len) else {
        return Err(FrameError::BeyondEnd {
            payload_len: u64::from(len),
            remaining: after_header.len(),
        });
    };
    let computed =
        crate::checksum::crc32c_append(crate::checksum::crc32c(&rest[4..HEADER_BYTES]), payload);
    if computed != stored {
        return Err(FrameError::Checksum { stored, computed });
    }
    Ok(Frame {
        offset,
        seq_first,
        synced_watermark,
        payload,
    })
}

/// Looks past a damaged frame at `bad` for proof that the damage was in
/// synced bytes: a later frame that passes its checksum and whose
/// watermark, a plausible one (at most its own offset), lies beyond `bad`.
///
/// The watermark and length are checked before the checksum, so the scan
/// over a torn tail costs little more than one pass over its bytes.
pub(crate) fn find_synced_frame_after(data: &[u8], bad: usize) -> Option<Frame<'_>> {
    let first = bad.checked_add(1)?;
    // A header holds a non-zero byte (a valid frame's payload length is
    // not 0), so none starts past the last one: a zero-filled tail
    // (a preallocated segment) costs no search.
    let last_nonzero = data.iter().rposition(|&b| b != 0)?;
    let last = data.len().checked_sub(HEADER_BYTES)?.min(last_nonzero);
    for offset in first..=last {
        let Some(watermark) = get_u64(data, offset + 16) else {
            continue;
        };
        if watermark <= bad as u64 || watermark > offset as u64 {
            continue;
        }
        let Some(len) = get_u32(data, offset + 4) else {
            continue;
        };
        if len as usize > data.len() - offset - HEADER_BYTES {
            continue;
        }
        if let Ok(frame) = decode_frame(data, offset) {
            return Some(frame);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(seq: SeqNo, watermark: u64, payload: &[u8]) -> Vec<u8> {
        let mut v = encode_header(seq, watermark, payload).to_vec();
        v.extend_from_slice(payload);
        v
    }

    #[test]
    fn encode_decode() {
        let mut seg = frame(1, 0, b"\x01abc");
        let second = seg.len();
        seg.extend(frame(2, 28, b""));
        let f = decode_frame(&seg, 0).unwrap();
        assert_eq!(
            (f.seq_first, f.synced_watermark, f.payload),
            (1, 0, &b"\x01abc"[..])
        );
        assert_eq!(f.end(), second);
        let g = decode_frame(&seg, second).unwrap();
        assert_eq!(
            (g.seq_first, g.synced_watermark, g.end()),
            (2, 28, seg.len())
        );
        assert_eq!(
            decode_frame(&seg, seg.len()).unwrap_err(),
            FrameError::ShortHeader { remaining: 0 }
        );
        assert!(matches!(
            decode_frame(&seg[..second - 1], 0),
            Err(FrameError::BeyondEnd { .. })
        ));
        seg[9] ^= 1;
        assert!(matches!(
            decode_frame(&seg, 0),
            Err(FrameError::Checksum { .. })
        ));
        assert_eq!(find_synced_frame_after(&seg, 0).unwrap().offset, second);
        assert!(find_synced_frame_after(&seg, 28).is_none());
        assert!(find_synced_frame_after(&seg, usize::MAX).is_none());
        let mut huge = seg.clone();
        huge[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(
            decode_frame(&huge, 0),
            Err(FrameError::LengthTooLarge { .. })
        ));
    }
}
