//! Aggregate cells (AddToCell / MergeToCell on Sum, Min, Max and HLL++
//! families) as engine merge operands.
//!
//! A cell of an int64 family stores its state as an 8-byte big-endian
//! int64; a cell of an HLL++ family stores a serialized sketch
//! (docs/formats/hll.md). Reads return the state as stored. Operands are
//! `tag:u8 | payload`, the tag being the family's `ValueType` (on disk:
//! never renumber): the payload is an i64 BE for int64 families and a
//! serialized sketch for HLL++ families. The engine folds operands into
//! the state on read and in compaction.

use crate::hll::{self, fingerprint, Sketch};
use crate::schema::ValueType;
use strata_engine::MergeOperator;

/// The input of an AddToCell or MergeToCell as the client sent it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AggregateInput {
    Int(i64),
    Bytes(Vec<u8>),
}

fn int_input(input: &AggregateInput) -> Option<i64> {
    match input {
        AggregateInput::Int(i) => Some(*i),
        AggregateInput::Bytes(b) => Some(i64::from_be_bytes(b.as_slice().try_into().ok()?)),
    }
}

fn hll_value_type(kind: ValueType) -> i32 {
    match kind {
        ValueType::HllInt64 => hll::VALUE_TYPE_INT64,
        _ => hll::VALUE_TYPE_BYTES,
    }
}

/// Decodes a sketch written to (or merged into) a family of type `kind`,
/// refusing sketches that count another type of value.
pub fn decode_sketch_for(kind: ValueType, bytes: &[u8]) -> Result<Sketch, String> {
    debug_assert!(kind.is_hll());
    let sketch = hll::wire::decode(bytes).map_err(|e| e.to_string())?;
    let want = hll_value_type(kind);
    if sketch.value_type != 0 && sketch.value_type != want {
        return Err(format!(
            "the sketch counts values of type {}, the family counts type {want}",
            sketch.value_type
        ));
    }
    Ok(sketch)
}

/// The merge operand of an AddToCell (`merge` false) or MergeToCell on a
/// family of type `kind`; the error says why the input does not fit.
pub fn operand(kind: ValueType, input: &AggregateInput, merge: bool) -> Result<Vec<u8>, String> {
    let mut op = vec![kind as u8];
    match kind {
        ValueType::Bytes => return Err("not an aggregate family".into()),
        ValueType::Int64Sum | ValueType::Int64Min | ValueType::Int64Max => {
            let x = int_input(input).ok_or("the input must be an int64 value")?;
            op.extend_from_slice(&x.to_be_bytes());
        }
        ValueType::HllInt64 | ValueType::HllBytes if merge => {
            let AggregateInput::Bytes(b) = input else {
                return Err("MergeToCell input must be a serialized HLL++ sketch".into());
            };
            // Checked, then kept as sent: the merge decodes it anyway.
            decode_sketch_for(kind, b)?;
            op.extend_from_slice(b);
        }
        ValueType::HllInt64 | ValueType::HllBytes => {
            let hash = match (kind, input) {
                (ValueType::HllBytes, AggregateInput::Bytes(b)) => fingerprint::fingerprint2011(b),
                (ValueType::HllBytes, AggregateInput::Int(_)) => {
                    return Err("the family counts raw bytes: the input must be a raw value".into())
                }
                _ => fingerprint::fingerprint2011_i64(
                    int_input(input).ok_or("the input must be an int64 value")?,
                ),
            };
            let mut sketch = Sketch::new(
                hll::PRECISION_DEFAULT,
                hll::SPARSE_PRECISION_DEFAULT,
                hll_value_type(kind),
            );
            sketch.add_hash(hash);
            op.extend_from_slice(&hll::wire::encode(&mut sketch));
        }
    }
    Ok(op)
}

fn decode_int_operand(op: &[u8]) -> Option<(u8, i64)> {
    if op.len() != 9 {
        return None;
    }
    let mut a = [0u8; 8];
    a.copy_from_slice(&op[1..]);
    Some((op[0], i64::from_be_bytes(a)))
}

fn is_hll_tag(tag: u8) -> bool {
    tag == ValueType::HllInt64 as u8 || tag == ValueType::HllBytes as u8
}

/// Decodes an int64 state or SetCell value of an int64 aggregate family.
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

/// Folds sketch operands (and a base state) into one sketch. Unreadable
/// pieces are skipped: neither can be written through the API.
fn merge_sketches(base: Option<&[u8]>, operands: &[&[u8]]) -> Option<Sketch> {
    let mut acc: Option<Sketch> = base.and_then(|b| hll::wire::decode(b).ok());
    for op in operands {
        if op.first().is_some_and(|&t| is_hll_tag(t)) {
            if let Ok(s) = hll::wire::decode(&op[1..]) {
                match &mut acc {
                    None => acc = Some(s),
                    Some(a) => a.merge(&s),
                }
            }
        }
    }
    acc
}

/// The merge operator every table tree is opened with.
pub struct AggregateMerge;

impl MergeOperator for AggregateMerge {
    fn name(&self) -> &str {
        "strata.aggregate.v1"
    }

    fn full_merge(&self, _key: &[u8], base: Option<&[u8]>, operands: &[&[u8]]) -> Vec<u8> {
        if operands
            .first()
            .and_then(|o| o.first())
            .is_some_and(|&t| is_hll_tag(t))
        {
            return match merge_sketches(base, operands) {
                Some(mut s) => hll::wire::encode(&mut s),
                None => Vec::new(),
            };
        }
        // An unreadable base (a SetCell of another width) is replaced by the
        // operands, as if the cell had been empty; unreadable operands are
        // skipped. Neither can be written through the API.
        let mut acc = base.and_then(decode_state);
        for (tag, x) in operands.iter().filter_map(|o| decode_int_operand(o)) {
            acc = Some(match acc {
                None => x,
                Some(a) => combine(tag, a, x),
            });
        }
        acc.unwrap_or(0).to_be_bytes().to_vec()
    }

    fn partial_merge(&self, _key: &[u8], operands: &[&[u8]]) -> Option<Vec<u8>> {
        let tag = *operands.first()?.first()?;
        if is_hll_tag(tag) {
            if operands.iter().any(|o| o.first() != Some(&tag)) {
                return None;
            }
            let mut s = merge_sketches(None, operands)?;
            let mut v = vec![tag];
            v.extend_from_slice(&hll::wire::encode(&mut s));
            return Some(v);
        }
        let mut it = operands.iter().map(|o| decode_int_operand(o));
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

    fn int_op(kind: ValueType, x: i64) -> Vec<u8> {
        operand(kind, &AggregateInput::Int(x), false).unwrap()
    }

    fn merge(base: Option<i64>, ops: &[(ValueType, i64)]) -> i64 {
        let ops: Vec<Vec<u8>> = ops.iter().map(|&(k, x)| int_op(k, x)).collect();
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
        let ops = [int_op(Int64Sum, 4), int_op(Int64Sum, 6)];
        let refs: Vec<&[u8]> = ops.iter().map(|o| o.as_slice()).collect();
        let p = AggregateMerge.partial_merge(b"k", &refs).unwrap();
        assert_eq!(
            decode_state(&AggregateMerge.full_merge(b"k", None, &[&p])),
            Some(10)
        );
        let mixed = [int_op(Int64Sum, 4), int_op(Int64Max, 6)];
        let refs: Vec<&[u8]> = mixed.iter().map(|o| o.as_slice()).collect();
        assert!(AggregateMerge.partial_merge(b"k", &refs).is_none());
    }

    #[test]
    fn hll_operands_count_distinct_inputs() {
        let ops: Vec<Vec<u8>> = (0..300)
            .map(|i| int_op(ValueType::HllInt64, i % 100))
            .collect();
        let refs: Vec<&[u8]> = ops.iter().map(|o| o.as_slice()).collect();
        let state = AggregateMerge.full_merge(b"k", None, &refs);
        let s = hll::wire::decode(&state).unwrap();
        assert_eq!((s.estimate(), s.num_values), (100, 300));
        // Partial merges of halves, then a full merge, give the same state.
        let a = AggregateMerge.partial_merge(b"k", &refs[..150]).unwrap();
        let b = AggregateMerge.partial_merge(b"k", &refs[150..]).unwrap();
        assert_eq!(AggregateMerge.full_merge(b"k", None, &[&a, &b]), state);
        // MergeToCell of that state into a stored state.
        let m = operand(
            ValueType::HllInt64,
            &AggregateInput::Bytes(state.clone()),
            true,
        )
        .unwrap();
        let again = AggregateMerge.full_merge(b"k", Some(&state), &[&m]);
        let s = hll::wire::decode(&again).unwrap();
        assert_eq!((s.estimate(), s.num_values), (100, 600));
    }

    #[test]
    fn hll_inputs_must_fit_the_family() {
        use AggregateInput::*;
        assert!(operand(ValueType::HllBytes, &Int(1), false).is_err());
        assert!(operand(ValueType::HllInt64, &Bytes(b"abc".to_vec()), false).is_err());
        assert!(operand(ValueType::HllInt64, &Bytes(b"junk".to_vec()), true).is_err());
        // A sketch of byte inputs cannot merge into an int64 family.
        let mut s = Sketch::new(15, 20, hll::VALUE_TYPE_BYTES);
        s.add_hash(1);
        let bytes = hll::wire::encode(&mut s);
        assert!(operand(ValueType::HllInt64, &Bytes(bytes.clone()), true).is_err());
        assert!(operand(ValueType::HllBytes, &Bytes(bytes), true).is_ok());
    }
}
