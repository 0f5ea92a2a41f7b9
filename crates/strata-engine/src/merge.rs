//! The merge-operator hook: a tree may hold merge operands (ValueKind::Merge)
//! that its operator folds into a value on read and in compaction — used by
//! Bigtable's aggregate cells (sum, min, max, HyperLogLog).

/// Folds merge operands into values. Implementations must be deterministic
/// and associative (partial merges may be applied in any grouping).
pub trait MergeOperator: Send + Sync {
    /// A name, for logs.
    fn name(&self) -> &str;

    /// Folds `operands` (oldest first) onto `base` (the value below them,
    /// or None when there is none or it was deleted).
    fn full_merge(&self, key: &[u8], base: Option<&[u8]>, operands: &[&[u8]]) -> Vec<u8>;

    /// Combines consecutive operands (oldest first) into one operand, if
    /// the operator can; None keeps them apart.
    fn partial_merge(&self, _key: &[u8], _operands: &[&[u8]]) -> Option<Vec<u8>> {
        None
    }
}

/// Applies `op` to operands collected newest first, over `base`.
pub fn fold_newest_first(
    op: &dyn MergeOperator,
    key: &[u8],
    base: Option<&[u8]>,
    newest_first: &[Vec<u8>],
) -> Vec<u8> {
    let oldest_first: Vec<&[u8]> = newest_first.iter().rev().map(|v| v.as_slice()).collect();
    op.full_merge(key, base, &oldest_first)
}

/// Garbage collection in compaction: a tree's filter decides, key by key,
/// which live keys are garbage. Used by Bigtable GC rules.
pub trait CompactionFilter: Send + Sync {
    /// A name, for logs.
    fn name(&self) -> &str;

    /// A key filter for one compaction run.
    fn start(&self) -> Box<dyn KeyFilter>;
}

/// One compaction run's filter, fed every live key (newest version a value
/// or merge operand) in ascending order. Returning true makes the key's
/// versions newer than every snapshot a tombstone (or nothing, at the
/// bottom), so readers stop seeing it; versions a snapshot can see stay.
pub trait KeyFilter: Send {
    fn drop_key(&mut self, user_key: &[u8]) -> bool;
}
