//! Aggregate cells (AddToCell / MergeToCell on int64 Sum, Min and Max
//! families) as engine merge operands.
//!
//! A cell of an aggregate family stores its state as an 8-byte big-endian
//! int64, which is also what reads return. AddToCell writes the merge
//! operand `tag:u8 | input:i64 BE` (tags are the family's `ValueType`, on
//! disk: never renumber); the engine folds operands into the state on read
//! and in compaction.

use crate::schema::ValueType;
use strata_engine::MergeOperator;

/// Encodes an AddToCell / MergeToCell operand.
pub fn operand(kind: ValueType, input: i64) -> Vec<u8> {
    debug_assert!(kind.is_aggregate());
    let mut v = Vec::with_capacity(9);
    v.push(kind as u8);
    v.extend_from_slice(&input.to_be_bytes());
    v
}

fn decode_operand(op: &[u8]) -> Option<(u8, i64)> {
    if op.len() != 9 {
        return None;
    }
    let mut a = [0u8; 8];
    a.copy_from_slice(&op[1..]);
    Some((op[0], i64::from_be_bytes(a)))
}

/// Decodes an int64 state or SetCell value of an aggregate family.
pub fn decode_state(v: &[u8]) -> Option<i64> {
    let a: [u8; 8] = v.try_into().ok()?;
    Some(i64::from_be_bytes(a))
}

fn combine(tag: u8, acc: i64, x: i64) -> i64 {
    match tag {
        t if t == ValueType::Int64Min as u8 => acc.min(x),
        t if t == ValueType::Int64Max as u8 => acc.max(x),
        // Sum wraps like Bigtable's int64 addition.
        _ => acc.wrapping_add(x),
    }
}

/// The merge operator every table tree is opened with.
pub struct AggregateMerge;

impl MergeOperator for AggregateMerge {
    fn name(&self) -> &str {
        "strata.aggregate.v1"
    }

    fn full_merge(&self, _key: &[u8], base: Option<&[u8]>, operands: &[&[u8]]) -> Vec<u8> {
        // An unreadable base (a SetCell of another width) is replaced by the
        // operands, as if the cell had been empty; unreadable operands are
        // skipped. Neither can be written through the API.
        let mut acc = base.and_then(decode_state);
        for (tag, x) in operands.iter().filter_map(|o| decode_operand(o)) {
            acc = Some(match acc {
                None => x,
                Some(a) => combine(tag, a, x),
            });
        }
        acc.unwrap_or(0).to_be_bytes().to_vec()
    }

    fn partial_merge(&self, _key: &[u8], operands: &[&[u8]]) -> Option<Vec<u8>> {
        let mut it = operands.iter().map(|o| decode_operand(o));
        let (tag, mut acc) = it.next()??;
        for o in it {
            let (t, x) = o?;
            if t != tag {
                return None;
            }
            acc = combine(tag, acc, x);
        }
        let mut v = Vec::with_capacity(9);
        v.push(tag);
        v.extend_from_slice(&acc.to_be_bytes());
        Some(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn merge(base: Option<i64>, ops: &[(ValueType, i64)]) -> i64 {
        let ops: Vec<Vec<u8>> = ops.iter().map(|&(k, x)| operand(k, x)).collect();
        let refs: Vec<&[u8]> = ops.iter().map(|o| o.as_slice()).collect();
        let b = base.map(|b| b.to_be_bytes());
        decode_state(&AggregateMerge.full_merge(b"k", b.as_ref().map(|b| &b[..]), &refs)).unwrap()
    }

    #[test]
    fn sum_min_max() {
        use ValueType::*;
        assert_eq!(merge(None, &[(Int64Sum, 5), (Int64Sum, -2)]), 3);
        assert_eq!(merge(Some(10), &[(Int64Sum, 5)]), 15);
        assert_eq!(
            merge(None, &[(Int64Min, 5), (Int64Min, -2), (Int64Min, 7)]),
            -2
        );
        assert_eq!(merge(Some(-9), &[(Int64Min, 5)]), -9);
        assert_eq!(merge(None, &[(Int64Max, 5), (Int64Max, 9)]), 9);
        assert_eq!(merge(Some(i64::MAX), &[(Int64Sum, 1)]), i64::MIN);
    }

    #[test]
    fn partial_merge_equals_full_merge() {
        use ValueType::*;
        let ops = [operand(Int64Sum, 4), operand(Int64Sum, 6)];
        let refs: Vec<&[u8]> = ops.iter().map(|o| o.as_slice()).collect();
        let p = AggregateMerge.partial_merge(b"k", &refs).unwrap();
        assert_eq!(
            decode_state(&AggregateMerge.full_merge(b"k", None, &[&p])),
            Some(10)
        );
        let mixed = [operand(Int64Sum, 4), operand(Int64Max, 6)];
        let refs: Vec<&[u8]> = mixed.iter().map(|o| o.as_slice()).collect();
        assert!(AggregateMerge.partial_merge(b"k", &refs).is_none());
    }
}
