//! A histogram for the hot path: fixed buckets with upper bounds that
//! double (1, 2, 4, ... 2^(BUCKETS-2), then everything larger), counted
//! with relaxed atomic adds, no lock. Read as a snapshot for monitoring
//! (Prometheus' cumulative buckets); a snapshot taken while values are
//! recorded may be a value ahead in one field, never wrong by more.

use std::sync::atomic::{AtomicU64, Ordering};

/// Buckets of a histogram: upper bounds 2^0 .. 2^(BUCKETS-2) and +Inf.
pub const BUCKETS: usize = 28;

/// Counts of values in doubling buckets, their sum and their number.
#[derive(Debug)]
pub struct Histogram {
    buckets: [AtomicU64; BUCKETS],
    sum: AtomicU64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            sum: AtomicU64::new(0),
        }
    }
}

/// The bucket of `v`: the smallest `i` with `v <= 2^i`, the last bucket
/// past 2^(BUCKETS-2).
fn bucket_of(v: u64) -> usize {
    if v <= 1 {
        return 0;
    }
    // ceil(log2(v)) for v >= 2.
    let i = (64 - (v - 1).leading_zeros()) as usize;
    i.min(BUCKETS - 1)
}

impl Histogram {
    pub fn record(&self, v: u64) {
        self.buckets[bucket_of(v)].fetch_add(1, Ordering::Relaxed);
        self.sum.fetch_add(v, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> HistogramSnapshot {
        let counts = std::array::from_fn(|i| self.buckets[i].load(Ordering::Relaxed));
        HistogramSnapshot {
            counts,
            sum: self.sum.load(Ordering::Relaxed),
        }
    }
}

/// The values of a histogram at one moment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HistogramSnapshot {
    /// Values per bucket (not cumulative); bucket `i` holds values in
    /// (2^(i-1), 2^i], the last one everything above 2^(BUCKETS-2).
    pub counts: [u64; BUCKETS],
    pub sum: u64,
}

impl Default for HistogramSnapshot {
    fn default() -> Self {
        HistogramSnapshot {
            counts: [0; BUCKETS],
            sum: 0,
        }
    }
}

impl HistogramSnapshot {
    /// Adds `other`'s values (two engines' histograms as one).
    pub fn add(&mut self, other: &HistogramSnapshot) {
        for (a, b) in self.counts.iter_mut().zip(other.counts) {
            *a += b;
        }
        self.sum += other.sum;
    }

    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// `(upper bound, values at or below it)` per bucket, cumulative as
    /// Prometheus writes them; the last bound is +Inf.
    pub fn cumulative(&self) -> Vec<(f64, u64)> {
        let mut total = 0;
        self.counts
            .iter()
            .enumerate()
            .map(|(i, &n)| {
                total += n;
                let bound = if i == BUCKETS - 1 {
                    f64::INFINITY
                } else {
                    (1u64 << i) as f64
                };
                (bound, total)
            })
            .collect()
    }

    /// The bucket bound at or below which `q` (0..=1) of the values lie;
    /// None when empty. An upper bound of the quantile, within a factor 2.
    pub fn quantile_bound(&self, q: f64) -> Option<f64> {
        let count = self.count();
        if count == 0 {
            return None;
        }
        let want = ((count as f64) * q.clamp(0.0, 1.0)).ceil().max(1.0) as u64;
        self.cumulative()
            .into_iter()
            .find(|&(_, n)| n >= want)
            .map(|(b, _)| b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_double_and_the_last_takes_the_rest() {
        assert_eq!(bucket_of(0), 0);
        assert_eq!(bucket_of(1), 0);
        assert_eq!(bucket_of(2), 1);
        assert_eq!(bucket_of(3), 2);
        assert_eq!(bucket_of(4), 2);
        assert_eq!(bucket_of(5), 3);
        assert_eq!(bucket_of(1 << 20), 20);
        assert_eq!(bucket_of((1 << 20) + 1), 21);
        assert_eq!(bucket_of(u64::MAX), BUCKETS - 1);
    }

    #[test]
    fn snapshot_is_cumulative_with_sum_and_count() {
        let h = Histogram::default();
        for v in [1, 2, 3, 100, 100, 5000] {
            h.record(v);
        }
        let s = h.snapshot();
        assert_eq!(s.count(), 6);
        assert_eq!(s.sum, 5206);
        let c = s.cumulative();
        assert_eq!(c[0], (1.0, 1));
        assert_eq!(c[1], (2.0, 2));
        assert_eq!(c[2], (4.0, 3));
        assert_eq!(c[7], (128.0, 5));
        assert_eq!(c[13], (8192.0, 6));
        assert_eq!(c[BUCKETS - 1], (f64::INFINITY, 6));
        assert_eq!(s.quantile_bound(0.5), Some(4.0));
        assert_eq!(s.quantile_bound(1.0), Some(8192.0));
        assert_eq!(HistogramSnapshot::default().quantile_bound(0.5), None);
    }
}
