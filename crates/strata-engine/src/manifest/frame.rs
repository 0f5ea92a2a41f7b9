//! Manifest record framing: `payload_len u32 | crc32c u32 | payload`, the
//! crc32c covering the length bytes and the payload (docs/formats/manifest.md).

use crate::coding::get_u32;
use crate::error::{Error, Result};

pub const HEADER_LEN: usize = 8;

/// A bound on one edit, far above any real one: a larger length is corruption.
pub const RECORD_BYTES_MAX: usize = 256 << 20;

pub fn encode(payload: &[u8], out: &mut Vec<u8>) {
    debug_assert!(payload.len() <= RECORD_BYTES_MAX);
    let len = (payload.len() as u32).to_le_bytes();
    let crc = crate::checksum::crc32c_append(crate::checksum::crc32c(&len), payload);
    out.extend_from_slice(&len);
    out.extend_from_slice(&crc.to_le_bytes());
    out.extend_from_slice(payload);
}

/// Decodes the frame at `at`: Some(payload range end) if valid.
fn frame_at(buf: &[u8], at: usize) -> Option<(usize, usize)> {
    let len = get_u32(buf, at)? as usize;
    let crc = get_u32(buf, at + 4)?;
    if len > RECORD_BYTES_MAX {
        return None;
    }
    let start = at + HEADER_LEN;
    let payload = buf.get(start..start.checked_add(len)?)?;
    let actual = crate::checksum::crc32c_append(crate::checksum::crc32c(&buf[at..at + 4]), payload);
    (actual == crc).then_some((start, start + len))
}

/// Splits a whole manifest into payloads. A bad frame with no valid frame
/// anywhere after it is a torn tail (an edit that was never acknowledged)
/// and ends the list; a bad frame followed by a valid one is corruption.
pub fn decode_all<'a>(buf: &'a [u8], file: &str) -> Result<Vec<&'a [u8]>> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < buf.len() {
        match frame_at(buf, at) {
            Some((start, end)) => {
                out.push(&buf[start..end]);
                at = end;
            }
            None => {
                if (at + 1..buf.len()).any(|p| frame_at(buf, p).is_some()) {
                    return Err(Error::corruption(file, format!("bad record at byte {at}")));
                }
                tracing::warn!(
                    "{file}: ignoring torn tail at byte {at} ({} bytes)",
                    buf.len() - at
                );
                break;
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn torn_tail_ignored_but_middle_corruption_fails() {
        let mut buf = Vec::new();
        for p in [&b"one"[..], b"two", b"three"] {
            encode(p, &mut buf);
        }
        assert_eq!(
            decode_all(&buf, "m").unwrap(),
            vec![&b"one"[..], b"two", b"three"]
        );
        let cut = &buf[..buf.len() - 2];
        assert_eq!(decode_all(cut, "m").unwrap(), vec![&b"one"[..], b"two"]);
        for i in 0..buf.len() - 13 {
            let mut c = buf.clone();
            c[i] ^= 1;
            match decode_all(&c, "m") {
                Err(e) => assert!(e.is_corruption()),
                Ok(v) => panic!("flip at {i} decoded to {v:?}"),
            }
        }
    }
}
