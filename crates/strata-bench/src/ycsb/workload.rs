//! YCSB's keys, key choosers and operation mixes (CoreWorkload).
//!
//! - Keys: `"user" + fnvhash64(i)` for record `i` in `0..records`, as YCSB does
//!   without `insertorder=ordered` (no zero padding), so inserts land in random
//!   key order and every record maps to a distinct, reproducible row key.
//! - Uniform: record `i` drawn uniformly from `0..records`.
//! - Zipfian: YCSB's `ScrambledZipfianGenerator` with the constant 0.99: a Zipfian
//!   draw over 10^10 items (with YCSB's precomputed zeta, 26.469...), then
//!   `fnvhash64(draw) % records`, which spreads the hot records over the key space.

use clap::ValueEnum;
use rand::rngs::SmallRng;
use rand::Rng;

/// FNV-1a over the 8 little-end bytes of `val`, made non-negative: YCSB's `Utils.fnvhash64`.
pub fn fnvhash64(mut val: i64) -> i64 {
    const OFFSET_BASIS: u64 = 0xCBF2_9CE4_8422_2325;
    const PRIME: i64 = 1_099_511_628_211;
    let mut hash = OFFSET_BASIS as i64;
    for _ in 0..8 {
        let octet = val & 0xff;
        val >>= 8;
        hash ^= octet;
        hash = hash.wrapping_mul(PRIME);
    }
    hash.wrapping_abs()
}

/// The row key of record `i`: YCSB's `CoreWorkload.buildKeyName` with hashed inserts.
pub fn row_key(i: u64) -> Vec<u8> {
    format!("user{}", fnvhash64(i as i64)).into_bytes()
}

/// The column qualifier of field `f`.
pub fn qualifier(f: usize) -> Vec<u8> {
    format!("field{f}").into_bytes()
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum Distribution {
    Uniform,
    Zipfian,
}

impl Distribution {
    pub fn name(self) -> &'static str {
        match self {
            Distribution::Uniform => "uniform",
            Distribution::Zipfian => "zipfian",
        }
    }
}

/// YCSB's `ScrambledZipfianGenerator` constants (`ZipfianGenerator.ZIPFIAN_CONSTANT`,
/// `ScrambledZipfianGenerator.ITEM_COUNT` and `ZETAN`).
const ZIPFIAN_CONSTANT: f64 = 0.99;
const ZIPF_ITEMS: u64 = 10_000_000_000;
const ZETAN: f64 = 26.469_028_201_783_02;

/// Chooses record numbers in `0..records` with the given distribution.
#[derive(Copy, Clone, Debug)]
pub struct KeyChooser {
    records: u64,
    dist: Distribution,
    alpha: f64,
    eta: f64,
    half_pow_theta: f64,
}

impl KeyChooser {
    pub fn new(records: u64, dist: Distribution) -> Self {
        let theta = ZIPFIAN_CONSTANT;
        // ZipfianGenerator(0, ITEM_COUNT): items = max - min + 1.
        let items = (ZIPF_ITEMS + 1) as f64;
        let zeta2theta = 1.0 + 0.5f64.powf(theta);
        Self {
            records: records.max(1),
            dist,
            alpha: 1.0 / (1.0 - theta),
            eta: (1.0 - (2.0 / items).powf(1.0 - theta)) / (1.0 - zeta2theta / ZETAN),
            half_pow_theta: 0.5f64.powf(theta),
        }
    }

    pub fn next(&self, rng: &mut SmallRng) -> u64 {
        match self.dist {
            Distribution::Uniform => rng.gen_range(0..self.records),
            Distribution::Zipfian => {
                let raw = self.zipf_raw(rng.gen::<f64>());
                (fnvhash64(raw as i64) as u64) % self.records
            }
        }
    }

    /// `ZipfianGenerator.nextLong(ITEM_COUNT)` for the uniform draw `u` in [0, 1).
    fn zipf_raw(&self, u: f64) -> u64 {
        let uz = u * ZETAN;
        if uz < 1.0 {
            0
        } else if uz < 1.0 + self.half_pow_theta {
            1
        } else {
            (ZIPF_ITEMS as f64 * (self.eta * u - self.eta + 1.0).powf(self.alpha)) as u64
        }
    }
}

/// The workload phases: `load` inserts every record; the others run the core mixes.
#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum Workload {
    Load,
    A,
    B,
    C,
    F,
}

impl Workload {
    pub fn name(self) -> &'static str {
        match self {
            Workload::Load => "load",
            Workload::A => "a",
            Workload::B => "b",
            Workload::C => "c",
            Workload::F => "f",
        }
    }

    /// The operation for a uniform draw `u` in [0, 1) (`None` for `load`).
    pub fn choose(self, u: f64) -> Option<Op> {
        let (read_fraction, other) = match self {
            Workload::Load => return None,
            Workload::A => (0.5, Op::Update),
            Workload::B => (0.95, Op::Update),
            Workload::C => (1.0, Op::Update),
            Workload::F => (0.5, Op::ReadModifyWrite),
        };
        Some(if u < read_fraction { Op::Read } else { other })
    }
}

/// One kind of request, each with its own latency histogram.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Op {
    Insert,
    Read,
    Update,
    ReadModifyWrite,
}

impl Op {
    pub const ALL: [Op; 4] = [Op::Insert, Op::Read, Op::Update, Op::ReadModifyWrite];

    pub fn index(self) -> usize {
        self as usize
    }

    pub fn name(self) -> &'static str {
        match self {
            Op::Insert => "insert",
            Op::Read => "read",
            Op::Update => "update",
            Op::ReadModifyWrite => "rmw",
        }
    }
}

/// `n` random bytes (YCSB's values are random too; these are not compressible).
pub fn random_value(rng: &mut SmallRng, n: usize) -> Vec<u8> {
    let mut v = vec![0u8; n];
    rng.fill(&mut v[..]);
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn fnv_matches_ycsb() {
        // FNV-1a of the 8 little-endian bytes, as in YCSB (computed independently).
        fn reference(v: u64) -> i64 {
            let mut h: u64 = 0xcbf2_9ce4_8422_2325;
            for b in v.to_le_bytes() {
                h = (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
            }
            (h as i64).wrapping_abs()
        }
        for v in [0u64, 1, 2, 255, 256, 99_999, 1 << 40] {
            assert_eq!(fnvhash64(v as i64), reference(v));
            assert!(fnvhash64(v as i64) >= 0);
        }
    }

    #[test]
    fn keys_are_distinct() {
        let keys: std::collections::HashSet<Vec<u8>> = (0..100_000).map(row_key).collect();
        assert_eq!(keys.len(), 100_000);
    }

    #[test]
    fn zipfian_is_skewed_and_in_range() {
        let chooser = KeyChooser::new(100_000, Distribution::Zipfian);
        let mut rng = SmallRng::seed_from_u64(7);
        let mut counts = std::collections::HashMap::new();
        for _ in 0..100_000 {
            let k = chooser.next(&mut rng);
            assert!(k < 100_000);
            *counts.entry(k).or_insert(0u32) += 1;
        }
        let hottest = counts.values().copied().max().unwrap();
        // The hottest item gets about 1/ZETAN (3.8%) of the draws.
        assert!(hottest > 2_000 && hottest < 6_000, "hottest {hottest}");
        assert!(counts.len() < 60_000, "distinct {}", counts.len());
    }

    #[test]
    fn mixes() {
        assert_eq!(Workload::C.choose(0.99), Some(Op::Read));
        assert_eq!(Workload::B.choose(0.96), Some(Op::Update));
        assert_eq!(Workload::F.choose(0.5), Some(Op::ReadModifyWrite));
        assert_eq!(Workload::Load.choose(0.1), None);
    }
}
