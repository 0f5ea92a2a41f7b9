//! Garbage-collection rules of column families (Bigtable's `GcRule`).
//!
//! A rule decides, for each cell of a column, whether it is garbage, from
//! the cell's **rank** (how many newer cells the column holds) and its
//! timestamp:
//! - `MaxVersions(n)`: cells of rank >= n;
//! - `MaxAge(d)`: cells older than now − d;
//! - `Union(rules)`: cells any rule erases (none when empty);
//! - `Intersection(rules)`: cells every rule erases (none when empty).
//!
//! Erasure only grows with rank and age, and so do its unions and
//! intersections, so along a column (newest first) GC keeps a prefix.
//! Rules apply at read time and for good in compaction.

/// Nesting depth allowed for union and intersection rules.
pub const GC_RULE_DEPTH_MAX: usize = 16;

/// A family's GC rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GcRule {
    /// Keep every cell.
    KeepAll,
    /// Keep the newest `n` cells of each column (n >= 1).
    MaxVersions(u32),
    /// Keep cells whose timestamp is within this many microseconds of now
    /// (at least 1,000: one millisecond).
    MaxAgeMicros(i64),
    Union(Vec<GcRule>),
    Intersection(Vec<GcRule>),
}

/// Why a rule is not acceptable.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum GcRuleError {
    #[error("max_num_versions must be at least 1")]
    ZeroVersions,
    #[error("max_age must be at least 1 millisecond, got {0} µs")]
    AgeTooSmall(i64),
    #[error("GC rules nest deeper than {GC_RULE_DEPTH_MAX} levels")]
    TooDeep,
}

impl GcRule {
    /// Checks the bounds Bigtable enforces.
    pub fn validate(&self) -> Result<(), GcRuleError> {
        self.validate_at(0)
    }

    fn validate_at(&self, depth: usize) -> Result<(), GcRuleError> {
        if depth >= GC_RULE_DEPTH_MAX {
            return Err(GcRuleError::TooDeep);
        }
        match self {
            GcRule::KeepAll => Ok(()),
            GcRule::MaxVersions(0) => Err(GcRuleError::ZeroVersions),
            GcRule::MaxVersions(_) => Ok(()),
            GcRule::MaxAgeMicros(m) if *m < 1000 => Err(GcRuleError::AgeTooSmall(*m)),
            GcRule::MaxAgeMicros(_) => Ok(()),
            GcRule::Union(rules) | GcRule::Intersection(rules) => {
                rules.iter().try_for_each(|r| r.validate_at(depth + 1))
            }
        }
    }

    /// Whether the rule erases a cell with `rank` newer cells in its column
    /// and timestamp `ts_micros`, at `now_micros`.
    pub fn erases(&self, rank: usize, ts_micros: i64, now_micros: i64) -> bool {
        match self {
            GcRule::KeepAll => false,
            GcRule::MaxVersions(n) => rank >= *n as usize,
            GcRule::MaxAgeMicros(age) => ts_micros < now_micros.saturating_sub(*age),
            GcRule::Union(rules) => rules.iter().any(|r| r.erases(rank, ts_micros, now_micros)),
            GcRule::Intersection(rules) => {
                !rules.is_empty() && rules.iter().all(|r| r.erases(rank, ts_micros, now_micros))
            }
        }
    }

    /// A bound on the cells of a column the rule keeps, whatever their
    /// timestamps: every cell of rank >= the bound is erased. None if the
    /// rule can keep any number (it has no version limit on every path).
    pub fn versions_kept_max(&self) -> Option<usize> {
        match self {
            GcRule::KeepAll | GcRule::MaxAgeMicros(_) => None,
            GcRule::MaxVersions(n) => Some(*n as usize),
            // Erased when any rule erases: the smallest bound holds.
            GcRule::Union(rules) => rules.iter().filter_map(|r| r.versions_kept_max()).min(),
            // Erased when every rule erases: needs a bound on each.
            GcRule::Intersection(rules) if rules.is_empty() => None,
            GcRule::Intersection(rules) => rules
                .iter()
                .map(|r| r.versions_kept_max())
                .collect::<Option<Vec<_>>>()
                .and_then(|b| b.into_iter().max()),
        }
    }

    /// How many cells of a column survive, given its timestamps newest
    /// first: GC keeps a prefix.
    pub fn kept(&self, timestamps_newest_first: &[i64], now_micros: i64) -> usize {
        debug_assert!(timestamps_newest_first.windows(2).all(|w| w[0] >= w[1]));
        timestamps_newest_first
            .iter()
            .enumerate()
            .position(|(rank, &ts)| self.erases(rank, ts, now_micros))
            .unwrap_or(timestamps_newest_first.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    const NOW: i64 = 1_000_000_000;

    #[test]
    fn version_bounds_agree_with_erasure() {
        let rules = [
            GcRule::KeepAll,
            GcRule::MaxVersions(2),
            GcRule::MaxAgeMicros(5000),
            GcRule::Union(vec![GcRule::MaxVersions(3), GcRule::MaxAgeMicros(5000)]),
            GcRule::Intersection(vec![GcRule::MaxVersions(3), GcRule::MaxVersions(1)]),
            GcRule::Intersection(vec![GcRule::MaxVersions(3), GcRule::MaxAgeMicros(5000)]),
            GcRule::Union(vec![]),
            GcRule::Intersection(vec![]),
        ];
        for r in &rules {
            if let Some(b) = r.versions_kept_max() {
                for ts in [0, NOW - 1, NOW] {
                    assert!(r.erases(b, ts, NOW), "{r:?} keeps rank {b}");
                    assert!(r.erases(b + 5, ts, NOW), "{r:?}");
                }
            }
        }
        assert_eq!(rules[3].versions_kept_max(), Some(3));
        assert_eq!(rules[4].versions_kept_max(), Some(3));
        assert_eq!(rules[5].versions_kept_max(), None);
    }

    #[test]
    fn basic_rules() {
        let ts = [NOW, NOW - 10_000, NOW - 20_000, NOW - 30_000];
        assert_eq!(GcRule::KeepAll.kept(&ts, NOW), 4);
        assert_eq!(GcRule::MaxVersions(2).kept(&ts, NOW), 2);
        assert_eq!(GcRule::MaxAgeMicros(15_000).kept(&ts, NOW), 2);
        let union = GcRule::Union(vec![GcRule::MaxVersions(3), GcRule::MaxAgeMicros(15_000)]);
        assert_eq!(union.kept(&ts, NOW), 2, "union keeps what no rule erases");
        let inter =
            GcRule::Intersection(vec![GcRule::MaxVersions(1), GcRule::MaxAgeMicros(25_000)]);
        assert_eq!(
            inter.kept(&ts, NOW),
            3,
            "intersection erases what every rule erases"
        );
        assert_eq!(GcRule::Union(vec![]).kept(&ts, NOW), 4);
        assert_eq!(GcRule::Intersection(vec![]).kept(&ts, NOW), 4);
    }

    #[test]
    fn erasure_is_a_suffix_for_random_nested_rules() {
        fn random_rule(rng: &mut impl Rng, depth: usize) -> GcRule {
            match rng.gen_range(0..if depth > 2 { 3 } else { 5 }) {
                0 => GcRule::KeepAll,
                1 => GcRule::MaxVersions(rng.gen_range(1..5)),
                2 => GcRule::MaxAgeMicros(rng.gen_range(1..50) * 1000),
                3 => GcRule::Union(
                    (0..rng.gen_range(0..3))
                        .map(|_| random_rule(rng, depth + 1))
                        .collect(),
                ),
                _ => GcRule::Intersection(
                    (0..rng.gen_range(0..3))
                        .map(|_| random_rule(rng, depth + 1))
                        .collect(),
                ),
            }
        }
        let mut rng = rand::rngs::SmallRng::seed_from_u64(5);
        for _ in 0..2000 {
            let rule = random_rule(&mut rng, 0);
            rule.validate().unwrap();
            let mut ts: Vec<i64> = (0..rng.gen_range(0..8))
                .map(|_| NOW - rng.gen_range(0..60) * 1000)
                .collect();
            ts.sort_unstable_by(|a, b| b.cmp(a));
            let kept = rule.kept(&ts, NOW);
            for (rank, &t) in ts.iter().enumerate() {
                assert_eq!(
                    rule.erases(rank, t, NOW),
                    rank >= kept,
                    "{rule:?} on {ts:?}"
                );
            }
        }
    }

    #[test]
    fn bounds_are_checked() {
        assert_eq!(
            GcRule::MaxVersions(0).validate(),
            Err(GcRuleError::ZeroVersions)
        );
        assert_eq!(
            GcRule::MaxAgeMicros(999).validate(),
            Err(GcRuleError::AgeTooSmall(999))
        );
        let mut deep = GcRule::KeepAll;
        for _ in 0..GC_RULE_DEPTH_MAX {
            deep = GcRule::Union(vec![deep]);
        }
        assert_eq!(deep.validate(), Err(GcRuleError::TooDeep));
    }
}
