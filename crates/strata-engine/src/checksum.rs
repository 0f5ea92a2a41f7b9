//! CRC-32C (Castagnoli), the checksum of every log record, manifest frame
//! and SSTable block: the `crc32c` crate, and for short inputs (a log
//! record's header, a small write's payload) a plain loop of the SSE 4.2
//! instruction. The crate splits every input into an unaligned head, an
//! aligned middle in three interleaved streams and a tail, which costs
//! more than the checksum itself below a few hundred bytes: a fillseq
//! put's two checksums (a 20-byte header, a ~125-byte payload) took 13% of
//! its instructions through it.

/// Inputs shorter than this take the plain loop (where the CPU has SSE
/// 4.2); longer ones the crate's interleaved streams.
const SHORT_BYTES_MAX: usize = 256;

/// The CRC-32C of `data`.
pub fn crc32c(data: &[u8]) -> u32 {
    crc32c_append(0, data)
}

/// The CRC-32C of the bytes checksummed into `crc` followed by `data`.
pub fn crc32c_append(crc: u32, data: &[u8]) -> u32 {
    #[cfg(target_arch = "x86_64")]
    if data.len() < SHORT_BYTES_MAX && std::is_x86_feature_detected!("sse4.2") {
        // SAFETY: the CPU has SSE 4.2 (checked just above).
        return unsafe { short_sse42(crc, data) };
    }
    crc32c::crc32c_append(crc, data)
}

/// CRC-32C a word and then a byte at a time with the SSE 4.2 instruction
/// (which computes the reflected Castagnoli polynomial without the
/// initial and final inversions the standard CRC applies).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "sse4.2")]
unsafe fn short_sse42(crc: u32, data: &[u8]) -> u32 {
    use std::arch::x86_64::{_mm_crc32_u64, _mm_crc32_u8};
    let mut c = u64::from(!crc);
    let mut words = data.chunks_exact(8);
    for w in &mut words {
        let mut b = [0u8; 8];
        b.copy_from_slice(w);
        c = _mm_crc32_u64(c, u64::from_le_bytes(b));
    }
    let mut c = c as u32;
    for &b in words.remainder() {
        c = _mm_crc32_u8(c, b);
    }
    !c
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    #[test]
    fn agrees_with_the_crate_at_every_short_length_and_offset() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let mut buf = vec![0u8; 2 * SHORT_BYTES_MAX + 16];
        rng.fill(&mut buf[..]);
        for len in 0..=SHORT_BYTES_MAX + 64 {
            for offset in 0..8 {
                let data = &buf[offset..offset + len];
                let seed: u32 = rng.gen();
                assert_eq!(
                    crc32c(data),
                    crc32c::crc32c(data),
                    "len {len} offset {offset}"
                );
                assert_eq!(
                    crc32c_append(seed, data),
                    crc32c::crc32c_append(seed, data),
                    "len {len} offset {offset}"
                );
            }
        }
    }

    #[test]
    fn known_answer() {
        // The CRC-32C check value (RFC 3720, B.4: "123456789").
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
        // 32 zero bytes, RFC 3720 B.4.
        assert_eq!(crc32c(&[0u8; 32]), 0x8A91_36AA);
        assert_eq!(crc32c(&[0xFFu8; 32]), 0x62A8_AB43);
    }
}
