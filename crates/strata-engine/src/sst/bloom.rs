//! The table's bloom filter over user keys, blocked by 64-byte cache lines
//! (one cache miss per query), as RocksDB's format_version 5 filter.
//!
//! Layout and probing are specified in docs/formats/sstable.md.

const LINE_BYTES: usize = 64;
const LINE_BITS: u64 = 512;
const PROBE_MUL: u32 = 0x9e37_79b9;

/// The hash stored in the filter for a user key.
#[inline]
pub(crate) fn bloom_hash(user_key: &[u8]) -> u64 {
    xxhash_rust::xxh3::xxh3_64(user_key)
}

/// Number of probes for `bits_per_key`: round(bits * ln 2) in [1, 30].
pub(crate) fn num_probes(bits_per_key: u32) -> u8 {
    (f64::from(bits_per_key) * std::f64::consts::LN_2)
        .round()
        .clamp(1.0, 30.0) as u8
}

#[inline]
fn line_of(h: u64, num_lines: usize) -> usize {
    (((h & 0xffff_ffff) * num_lines as u64) >> 32) as usize
}

/// Builds the filter block payload for the hashes of distinct user keys.
pub(crate) fn build_filter(hashes: &[u64], bits_per_key: u32) -> Vec<u8> {
    debug_assert!(bits_per_key > 0);
    let bits = (hashes.len() as u64)
        .saturating_mul(u64::from(bits_per_key))
        .max(LINE_BITS);
    let num_lines = usize::try_from(bits.div_ceil(LINE_BITS))
        .unwrap_or(u32::MAX as usize)
        .min(u32::MAX as usize);
    let k = num_probes(bits_per_key);
    let mut out = vec![0u8; num_lines * LINE_BYTES + 1];
    for &h in hashes {
        let base = line_of(h, num_lines) * LINE_BYTES;
        let mut x = (h >> 32) as u32;
        for _ in 0..k {
            let bit = (x >> 23) as usize;
            out[base + (bit >> 3)] |= 1 << (bit & 7);
            x = x.wrapping_mul(PROBE_MUL);
        }
    }
    out[num_lines * LINE_BYTES] = k;
    out
}

/// A decoded filter, kept in memory by its table.
pub(crate) struct BloomFilter {
    /// `num_lines * 64` bytes; the probe count byte is stripped.
    lines: Vec<u8>,
    num_lines: usize,
    num_probes: u8,
}

impl BloomFilter {
    /// Validates a filter block payload.
    pub fn from_payload(mut payload: Vec<u8>) -> Result<BloomFilter, &'static str> {
        let k = payload.pop().ok_or("empty filter")?;
        if payload.is_empty() || payload.len() / LINE_BYTES * LINE_BYTES != payload.len() {
            return Err("filter length is not a whole number of lines");
        }
        if !(1..=30).contains(&k) {
            return Err("bad filter probe count");
        }
        Ok(BloomFilter {
            num_lines: payload.len() / LINE_BYTES,
            lines: payload,
            num_probes: k,
        })
    }

    /// False if no key with this hash was added.
    #[inline]
    pub fn may_contain_hash(&self, h: u64) -> bool {
        let base = line_of(h, self.num_lines) * LINE_BYTES;
        let Some(line) = self.lines.get(base..base + LINE_BYTES) else {
            return true;
        };
        let mut x = (h >> 32) as u32;
        for _ in 0..self.num_probes {
            let bit = (x >> 23) as usize;
            if line[bit >> 3] & (1 << (bit & 7)) == 0 {
                return false;
            }
            x = x.wrapping_mul(PROBE_MUL);
        }
        true
    }

    /// Memory held, in bytes.
    pub fn size_bytes(&self) -> usize {
        self.lines.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(i: u64) -> Vec<u8> {
        format!("user-key-{i:010}").into_bytes()
    }

    #[test]
    fn no_false_negatives_and_about_one_percent_fpr() {
        let n = 100_000u64;
        let hashes: Vec<u64> = (0..n).map(|i| bloom_hash(&key(i))).collect();
        let f = BloomFilter::from_payload(build_filter(&hashes, 10)).unwrap();
        assert_eq!(f.num_probes, 7);
        for i in 0..n {
            assert!(f.may_contain_hash(bloom_hash(&key(i))));
        }
        let probes = 200_000u64;
        let fp = (n..n + probes)
            .filter(|&i| f.may_contain_hash(bloom_hash(&key(i))))
            .count();
        let rate = fp as f64 / probes as f64;
        assert!((0.005..0.015).contains(&rate), "false positive rate {rate}");
    }

    #[test]
    fn tiny_and_bad_filters() {
        let f = BloomFilter::from_payload(build_filter(&[bloom_hash(b"a")], 10)).unwrap();
        assert_eq!(f.size_bytes(), 64);
        assert!(f.may_contain_hash(bloom_hash(b"a")));
        assert!(BloomFilter::from_payload(vec![]).is_err());
        assert!(BloomFilter::from_payload(vec![0; 65]).is_err());
        assert!(BloomFilter::from_payload(vec![7; 64]).is_err());
        assert_eq!(num_probes(1), 1);
        assert_eq!(num_probes(100), 30);
    }
}
