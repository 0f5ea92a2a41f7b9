//! HyperLogLog++ sketches in ZetaSketch's v2 representation: sparse (a
//! sorted list of encoded sparse-precision entries) until that list would
//! take 3/4 of the dense form, then dense (2^p one-byte registers).
//!
//! Entry encodings, downgrades and the sparse-to-dense rule follow the
//! format specified in docs/formats/hll.md, so sketches made here merge
//! with sketches made by BigQuery's HLL_COUNT.INIT or ZetaSketch.

use super::{PRECISION_MAX, PRECISION_MIN, SPARSE_PRECISION_MAX};
use strata_engine::coding::varint_len;

/// Bits of rho kept in a rho-encoded sparse entry.
const RHO_BITS: u32 = 6;
const RHO_MASK: u32 = (1 << RHO_BITS) - 1;

/// The registers of a sketch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Registers {
    /// Sorted, deduplicated sparse entries (`SparseCoding::encode`).
    Sparse(Vec<u32>),
    /// 2^p registers, each the largest rho seen for its index.
    Dense(Vec<u8>),
}

/// One HLL++ sketch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sketch {
    /// How many values were added, over all merged sketches.
    pub num_values: i64,
    /// ZetaSketch's type id of the hashed values (4 int64, 11 bytes or
    /// UTF-8 strings, 0 unknown).
    pub value_type: i32,
    /// Normal precision p: 2^p dense registers.
    pub precision: u32,
    /// Sparse precision sp (p..=25), or 0 when the sketch never had a
    /// sparse form.
    pub sparse_precision: u32,
    pub registers: Registers,
}

/// rho of the low `bits` bits of `value`: one more than their leading
/// zeros, `bits + 1` when all are zero.
fn rho(value: u64, bits: u32) -> u8 {
    debug_assert!((1..=64).contains(&bits));
    let w = value << (64 - bits);
    if w == 0 {
        (bits + 1) as u8
    } else {
        (w.leading_zeros() + 1) as u8
    }
}

/// rho of an index taken from `from` bits down to `to` bits: the dropped
/// low bits become the front of the remaining hash bits.
fn downgrade_rho(index: u32, rho_w: u8, from: u32, to: u32) -> u8 {
    if from == to {
        return rho_w;
    }
    debug_assert!(to < from);
    let suffix = index << (32 - (from - to));
    if suffix == 0 {
        rho_w + (from - to) as u8
    } else {
        (suffix.leading_zeros() + 1) as u8
    }
}

/// The sparse entry coding for one (p, sp) pair.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SparseCoding {
    p: u32,
    sp: u32,
    flag: u32,
}

impl SparseCoding {
    pub fn new(p: u32, sp: u32) -> SparseCoding {
        assert!((PRECISION_MIN..=PRECISION_MAX).contains(&p));
        assert!((p..=SPARSE_PRECISION_MAX).contains(&sp));
        SparseCoding {
            p,
            sp,
            flag: 1 << sp.max(p + RHO_BITS),
        }
    }

    /// An entry for a sparse index and its rho: the index alone when its
    /// bits below the normal precision are not all zero (rho is then
    /// implied by them), else a flagged normal index with rho.
    fn encode_index(&self, sparse_index: u32, sparse_rho: u8) -> u32 {
        debug_assert!(u32::from(sparse_rho) <= RHO_MASK);
        let mask = (1u32 << (self.sp - self.p)) - 1;
        if sparse_index & mask != 0 {
            return sparse_index;
        }
        self.flag | (sparse_index >> (self.sp - self.p)) << RHO_BITS | u32::from(sparse_rho)
    }

    pub fn encode(&self, hash: u64) -> u32 {
        let index = (hash >> (64 - self.sp)) as u32;
        self.encode_index(index, rho(hash, 64 - self.sp))
    }

    fn flagged(&self, v: u32) -> bool {
        v & self.flag != 0
    }

    fn sparse_index(&self, v: u32) -> u32 {
        if !self.flagged(v) {
            return v;
        }
        ((v ^ self.flag) >> RHO_BITS) << (self.sp - self.p)
    }

    fn sparse_rho_if_present(&self, v: u32) -> u8 {
        if self.flagged(v) {
            (v & RHO_MASK) as u8
        } else {
            0
        }
    }

    fn normal_index(&self, v: u32) -> u32 {
        if self.flagged(v) {
            (v ^ self.flag) >> RHO_BITS
        } else {
            v >> (self.sp - self.p)
        }
    }

    fn normal_rho(&self, v: u32) -> u8 {
        if self.flagged(v) {
            (v & RHO_MASK) as u8 + (self.sp - self.p) as u8
        } else {
            rho(u64::from(v), self.sp - self.p)
        }
    }

    /// Whether `v` is a well-formed entry of this coding.
    pub fn is_valid(&self, v: u32) -> bool {
        if self.flagged(v) {
            let rest = v ^ self.flag;
            rest >> RHO_BITS < 1 << self.p
                && (rest & RHO_MASK) as u64 <= u64::from(64 - self.sp + 1)
                && (rest & RHO_MASK) != 0
        } else {
            v < 1 << self.sp && v & ((1u32 << (self.sp - self.p)) - 1) != 0
        }
    }

    /// The same entry in a coarser coding (`to.p <= p`, `to.sp <= sp`).
    fn downgrade(&self, v: u32, to: &SparseCoding) -> u32 {
        let index = self.sparse_index(v);
        let r = self.sparse_rho_if_present(v);
        let new_index = index >> (self.sp - to.sp);
        to.encode_index(new_index, downgrade_rho(index, r, self.sp, to.sp))
    }

    /// Folds `(index, rho)` into dense registers of precision `p_to`.
    fn fold_into_dense(&self, v: u32, regs: &mut [u8], p_to: u32) {
        let index = self.normal_index(v);
        let r = downgrade_rho(index, self.normal_rho(v), self.p, p_to);
        let slot = &mut regs[(index >> (self.p - p_to)) as usize];
        *slot = (*slot).max(r);
    }

    /// Inserts one entry into a canonical list, keeping it canonical.
    fn insert(&self, entries: &mut Vec<u32>, v: u32) {
        if !self.flagged(v) {
            if let Err(at) = entries.binary_search(&v) {
                entries.insert(at, v);
            }
            return;
        }
        let base = v & !RHO_MASK;
        let at = entries.partition_point(|&x| x < base);
        match entries.get_mut(at) {
            Some(x) if *x & !RHO_MASK == base => *x = (*x).max(v),
            _ => entries.insert(at, v),
        }
    }

    /// Sorts and deduplicates entries: one per sparse index, a flagged
    /// index keeping its largest rho (the largest entry).
    fn canonicalize(&self, v: &mut Vec<u32>) {
        v.sort_unstable();
        let mut out: Vec<u32> = Vec::with_capacity(v.len());
        for &x in v.iter() {
            match out.last_mut() {
                Some(last) if self.sparse_index(*last) == self.sparse_index(x) => *last = x,
                _ => out.push(x),
            }
        }
        *v = out;
    }
}

/// Bytes of the varint difference list a sparse sketch serializes to.
pub fn sparse_bytes(entries: &[u32]) -> usize {
    let mut prev = 0u32;
    entries
        .iter()
        .map(|&x| {
            let d = x - prev;
            prev = x;
            varint_len(u64::from(d))
        })
        .sum()
}

impl Sketch {
    /// An empty sketch of the given precisions.
    pub fn new(precision: u32, sparse_precision: u32, value_type: i32) -> Sketch {
        assert!((PRECISION_MIN..=PRECISION_MAX).contains(&precision));
        assert!((precision..=SPARSE_PRECISION_MAX).contains(&sparse_precision));
        Sketch {
            num_values: 0,
            value_type,
            precision,
            sparse_precision,
            registers: Registers::Sparse(Vec::new()),
        }
    }

    fn coding(&self) -> SparseCoding {
        SparseCoding::new(self.precision, self.sparse_precision)
    }

    /// The largest sparse list kept before switching to dense registers.
    fn sparse_bytes_max(&self) -> usize {
        (1usize << self.precision) * 3 / 4
    }

    /// Adds one hashed value. The sketch may stay sparse past the dense
    /// threshold until `compact` (encoding compacts).
    pub fn add_hash(&mut self, hash: u64) {
        self.num_values = self.num_values.saturating_add(1);
        let p = self.precision;
        match &mut self.registers {
            Registers::Dense(regs) => {
                let index = (hash >> (64 - p)) as usize;
                regs[index] = regs[index].max(rho(hash, 64 - p));
            }
            Registers::Sparse(entries) => {
                let coding = SparseCoding::new(p, self.sparse_precision);
                coding.insert(entries, coding.encode(hash));
                // Every entry takes at least one byte: past this many the
                // list is certainly over the threshold.
                if entries.len() >= self.sparse_bytes_max() {
                    self.densify(p);
                }
            }
        }
    }

    /// Switches to dense registers if the sparse list has reached 3/4 of
    /// the dense size, as ZetaSketch does before it serializes.
    pub fn compact(&mut self) {
        if let Registers::Sparse(entries) = &self.registers {
            if sparse_bytes(entries) >= self.sparse_bytes_max() {
                self.densify(self.precision);
            }
        }
    }

    /// Folds this sketch's registers into dense registers of precision
    /// `p` (at most this sketch's).
    fn fold_into(&self, regs: &mut [u8], p: u32) {
        debug_assert!(p <= self.precision && regs.len() == 1 << p);
        match &self.registers {
            Registers::Sparse(entries) => {
                let coding = self.coding();
                for &v in entries {
                    coding.fold_into_dense(v, regs, p);
                }
            }
            Registers::Dense(mine) => {
                for (index, &r) in mine.iter().enumerate().filter(|(_, &r)| r != 0) {
                    let r = downgrade_rho(index as u32, r, self.precision, p);
                    let slot = &mut regs[index >> (self.precision - p)];
                    *slot = (*slot).max(r);
                }
            }
        }
    }

    /// Converts to dense registers of precision `p` (at most the current).
    fn densify(&mut self, p: u32) {
        let mut regs = vec![0u8; 1 << p];
        self.fold_into(&mut regs, p);
        self.precision = p;
        self.registers = Registers::Dense(regs);
    }

    /// Merges `other` in. Precisions that differ are brought down to the
    /// lower of each (ZetaSketch refuses crossed pairs; merging to the
    /// coarser pair is the only answer that loses nothing it could keep).
    pub fn merge(&mut self, other: &Sketch) {
        self.num_values = self.num_values.saturating_add(other.num_values);
        if self.value_type == 0 {
            self.value_type = other.value_type;
        }
        let p = self.precision.min(other.precision);
        let sp = self.sparse_precision.min(other.sparse_precision);
        if let (Registers::Sparse(a), Registers::Sparse(b)) = (&self.registers, &other.registers) {
            if sp >= p {
                let to = SparseCoding::new(p, sp);
                let (ca, cb) = (self.coding(), other.coding());
                let mut merged: Vec<u32> = a.iter().map(|&v| ca.downgrade(v, &to)).collect();
                merged.extend(b.iter().map(|&v| cb.downgrade(v, &to)));
                to.canonicalize(&mut merged);
                self.precision = p;
                self.sparse_precision = sp;
                self.registers = Registers::Sparse(merged);
                self.compact();
                return;
            }
        }
        self.densify(p);
        self.sparse_precision = sp;
        let Registers::Dense(regs) = &mut self.registers else {
            unreachable!("densify leaves dense registers");
        };
        other.fold_into(regs, p);
    }

    /// The estimated number of distinct values: linear counting over the
    /// sparse precision while sparse; over dense registers, linear
    /// counting up to 2.5·m and the HyperLogLog estimate above. HLL++'s
    /// empirical bias correction is not applied, so between 2.5·m and 5·m
    /// this can differ from BigQuery's HLL_COUNT.EXTRACT by a percent or
    /// two.
    pub fn estimate(&self) -> u64 {
        match &self.registers {
            Registers::Sparse(entries) => {
                let m = (1u64 << self.sparse_precision) as f64;
                let zeros = m - entries.len() as f64;
                (m * (m / zeros).ln()).round() as u64
            }
            Registers::Dense(regs) => {
                let m = regs.len() as f64;
                let zeros = regs.iter().filter(|&&r| r == 0).count();
                let sum: f64 = regs.iter().map(|&r| (-f64::from(r)).exp2()).sum();
                let alpha = 0.7213 / (1.0 + 1.079 / m);
                let raw = alpha * m * m / sum;
                if zeros > 0 && raw <= 2.5 * m {
                    (m * (m / zeros as f64).ln()).round() as u64
                } else {
                    raw.round() as u64
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hll::fingerprint::fingerprint2011_i64;

    fn sketch_of(range: std::ops::Range<i64>, p: u32, sp: u32) -> Sketch {
        let mut s = Sketch::new(p, sp, 4);
        for i in range {
            s.add_hash(fingerprint2011_i64(i));
        }
        s.compact();
        s
    }

    fn within(estimate: u64, truth: u64, fraction: f64) -> bool {
        (estimate as f64 - truth as f64).abs() <= truth as f64 * fraction
    }

    #[test]
    fn sparse_entry_encodings() {
        let c = SparseCoding::new(10, 15);
        // Sparse index bits below the normal index not all zero: the index.
        let index: u64 = (0b10_1100_1011 << 5) | 0b00101;
        assert_eq!(c.encode(index << 49), index as u32);
        // All zero: flag (bit max(15, 10 + 6)) | normal index | rho of the
        // 49 remaining bits (8 zeros then a one: 9).
        let hash: u64 = (0b10_1100_1011 << 54) | (1 << 40);
        assert_eq!(c.encode(hash), 1 << 16 | 0b10_1100_1011 << 6 | 9);
        // When sp > p + 6 the flag sits above the sparse index.
        let c = SparseCoding::new(10, 20);
        assert_eq!(c.encode(1u64 << 63), 1 << 20 | 1 << 15 | 45);
    }

    #[test]
    fn sparse_coding_round_trips() {
        let c = SparseCoding::new(15, 20);
        for i in 0..10_000i64 {
            let h = fingerprint2011_i64(i);
            let v = c.encode(h);
            assert!(c.is_valid(v), "{v:#x}");
            assert_eq!(c.normal_index(v), (h >> 49) as u32);
            assert_eq!(c.normal_rho(v), rho(h, 49));
        }
    }

    #[test]
    fn estimates_small_and_large() {
        for n in [0u64, 1, 10, 1_000, 10_000] {
            let s = sketch_of(0..n as i64, 15, 20);
            assert!(matches!(s.registers, Registers::Sparse(_)));
            assert!(within(s.estimate(), n, 0.01), "n={n} est={}", s.estimate());
            assert_eq!(s.num_values, n as i64);
        }
        let s = sketch_of(0..200_000, 15, 20);
        assert!(matches!(s.registers, Registers::Dense(_)));
        assert!(within(s.estimate(), 200_000, 0.03), "{}", s.estimate());
    }

    #[test]
    fn duplicates_do_not_count() {
        let mut s = sketch_of(0..1000, 15, 20);
        for i in 0..1000 {
            s.add_hash(fingerprint2011_i64(i));
        }
        s.compact();
        assert!(within(s.estimate(), 1000, 0.01));
        assert_eq!(s.num_values, 2000);
    }

    #[test]
    fn merge_equals_union_in_every_representation() {
        let cases = [
            (0..3000, 2000..6000),
            (0..40_000, 30_000..90_000),
            (0..10, 0..60_000),
        ];
        for (a, b) in cases {
            let union = sketch_of(a.start.min(b.start)..a.end.max(b.end), 15, 20);
            let mut m = sketch_of(a.clone(), 15, 20);
            m.merge(&sketch_of(b.clone(), 15, 20));
            assert_eq!(m.registers, union.registers, "{a:?} {b:?}");
            let mut m2 = sketch_of(b, 15, 20);
            m2.merge(&sketch_of(a, 15, 20));
            assert_eq!(m2.registers, union.registers);
        }
    }

    #[test]
    fn merge_downgrades_to_the_coarser_precisions() {
        let mut fine = sketch_of(0..5000, 16, 22);
        let coarse = sketch_of(5000..10_000, 12, 17);
        fine.merge(&coarse);
        assert_eq!((fine.precision, fine.sparse_precision), (12, 17));
        let direct = sketch_of(0..10_000, 12, 17);
        assert_eq!(fine.registers, direct.registers);
        // Dense at a finer precision downgrades register by register.
        let mut dense_fine = sketch_of(0..300_000, 16, 21);
        assert!(matches!(dense_fine.registers, Registers::Dense(_)));
        dense_fine.merge(&Sketch::new(14, 19, 4));
        let direct = sketch_of(0..300_000, 14, 19);
        assert_eq!(dense_fine.registers, direct.registers);
    }
}
