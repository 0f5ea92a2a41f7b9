//! Row sets cut by tablet: a ReadRows over many tablets becomes one
//! request per tablet, each with the part of the row set inside the
//! tablet's rows `[start, end)`, and a read resumed after a failure asks
//! only for the rows after the last one delivered.

use crate::data_pb as v2;
use strata_cluster::tablet_map::TabletRecord;
use strata_table::{RowBound, RowRange, RowSet};

/// The lower of two lower bounds' maximum, the stricter one.
fn max_lower(a: RowBound, b: RowBound) -> RowBound {
    use RowBound::*;
    match (a, b) {
        (Unbounded, x) | (x, Unbounded) => x,
        (Included(x), Included(y)) => Included(x.max(y)),
        (Excluded(x), Excluded(y)) => Excluded(x.max(y)),
        (Included(i), Excluded(e)) | (Excluded(e), Included(i)) => {
            if e >= i {
                Excluded(e)
            } else {
                Included(i)
            }
        }
    }
}

/// The stricter of two upper bounds.
fn min_upper(a: RowBound, b: RowBound) -> RowBound {
    use RowBound::*;
    match (a, b) {
        (Unbounded, x) | (x, Unbounded) => x,
        (Included(x), Included(y)) => Included(x.min(y)),
        (Excluded(x), Excluded(y)) => Excluded(x.min(y)),
        (Included(i), Excluded(e)) | (Excluded(e), Included(i)) => {
            if e <= i {
                Excluded(e)
            } else {
                Included(i)
            }
        }
    }
}

/// Whether a range holds no row at all.
fn is_empty(r: &RowRange) -> bool {
    use RowBound::*;
    match (&r.start, &r.end) {
        (Unbounded, _) | (_, Unbounded) => false,
        (Included(a), Included(b)) => a > b,
        (Included(a), Excluded(b)) | (Excluded(a), Excluded(b)) | (Excluded(a), Included(b)) => {
            a >= b
        }
    }
}

fn above(lower: &RowBound, key: &[u8]) -> bool {
    match lower {
        RowBound::Unbounded => true,
        RowBound::Included(l) => key >= l.as_slice(),
        RowBound::Excluded(l) => key > l.as_slice(),
    }
}

fn below(upper: &RowBound, key: &[u8]) -> bool {
    match upper {
        RowBound::Unbounded => true,
        RowBound::Included(u) => key <= u.as_slice(),
        RowBound::Excluded(u) => key < u.as_slice(),
    }
}

/// The part of `rows` between `lower` and `upper` (an empty row set means
/// every row); `None` if nothing is left.
pub fn restrict(rows: &RowSet, lower: &RowBound, upper: &RowBound) -> Option<RowSet> {
    let all = rows.keys.is_empty() && rows.ranges.is_empty();
    let ranges: Vec<RowRange> = if all {
        vec![RowRange::all()]
    } else {
        rows.ranges.clone()
    };
    let keys: Vec<Vec<u8>> = rows
        .keys
        .iter()
        .filter(|k| above(lower, k) && below(upper, k))
        .cloned()
        .collect();
    let ranges: Vec<RowRange> = ranges
        .into_iter()
        .map(|r| RowRange {
            start: max_lower(r.start, lower.clone()),
            end: min_upper(r.end, upper.clone()),
        })
        .filter(|r| !is_empty(r))
        .collect();
    (!keys.is_empty() || !ranges.is_empty()).then_some(RowSet { keys, ranges })
}

/// The bounds of a tablet's rows `[start, end)`.
pub fn tablet_bounds(start: &[u8], end: Option<&[u8]>) -> (RowBound, RowBound) {
    let lower = if start.is_empty() {
        RowBound::Unbounded
    } else {
        RowBound::Included(start.to_vec())
    };
    let upper = end.map_or(RowBound::Unbounded, |e| RowBound::Excluded(e.to_vec()));
    (lower, upper)
}

/// A row set as the API's message.
pub fn row_set_pb(rows: &RowSet) -> v2::RowSet {
    use v2::row_range::{EndKey, StartKey};
    v2::RowSet {
        row_keys: rows.keys.clone(),
        row_ranges: rows
            .ranges
            .iter()
            .map(|r| v2::RowRange {
                start_key: match &r.start {
                    RowBound::Unbounded => None,
                    RowBound::Included(k) => Some(StartKey::StartKeyClosed(k.clone())),
                    RowBound::Excluded(k) => Some(StartKey::StartKeyOpen(k.clone())),
                },
                end_key: match &r.end {
                    RowBound::Unbounded => None,
                    RowBound::Included(k) => Some(EndKey::EndKeyClosed(k.clone())),
                    RowBound::Excluded(k) => Some(EndKey::EndKeyOpen(k.clone())),
                },
            })
            .collect(),
    }
}

/// Whether `tablets` (in row order) cover the rows `[start, end)` with no
/// gap.
pub fn covers(tablets: &[&TabletRecord], start: &[u8], end: Option<&[u8]>) -> bool {
    let mut at: Option<&[u8]> = Some(start);
    for t in tablets {
        match at {
            Some(a) if t.start.as_slice() <= a => at = t.end.as_deref(),
            Some(_) => return false,
            None => break,
        }
        if at.is_some_and(|a| end.is_some_and(|e| a >= e)) {
            return true;
        }
    }
    at.is_none() || at.zip(end).is_some_and(|(a, e)| a >= e)
}

#[cfg(test)]
mod tests {
    use super::*;
    use RowBound::*;

    fn b(s: &str) -> Vec<u8> {
        s.as_bytes().to_vec()
    }

    fn range(start: RowBound, end: RowBound) -> RowRange {
        RowRange { start, end }
    }

    #[test]
    fn a_row_set_is_cut_at_tablet_boundaries() {
        let rows = RowSet {
            keys: vec![b("a"), b("m"), b("z")],
            ranges: vec![range(Included(b("c")), Excluded(b("q")))],
        };
        let (lo, hi) = tablet_bounds(b"", Some(b"m"));
        let left = restrict(&rows, &lo, &hi).unwrap();
        assert_eq!(left.keys, vec![b("a")]);
        assert_eq!(left.ranges, vec![range(Included(b("c")), Excluded(b("m")))]);
        let (lo, hi) = tablet_bounds(b"m", None);
        let right = restrict(&rows, &lo, &hi).unwrap();
        assert_eq!(right.keys, vec![b("m"), b("z")]);
        assert_eq!(
            right.ranges,
            vec![range(Included(b("m")), Excluded(b("q")))]
        );
        // Nothing of it in [r, s).
        let (lo, hi) = tablet_bounds(b"r", Some(b"s"));
        assert!(restrict(&rows, &lo, &hi).is_none());
    }

    #[test]
    fn an_empty_row_set_is_every_row_and_resumes_after_a_row() {
        let all = RowSet {
            keys: vec![],
            ranges: vec![],
        };
        let (lo, hi) = tablet_bounds(b"k", Some(b"p"));
        let cut = restrict(&all, &lo, &hi).unwrap();
        assert_eq!(cut.ranges, vec![range(Included(b("k")), Excluded(b("p")))]);
        // Resumed after row "m", forwards and backwards.
        let after = restrict(&cut, &Excluded(b("m")), &Unbounded).unwrap();
        assert_eq!(
            after.ranges,
            vec![range(Excluded(b("m")), Excluded(b("p")))]
        );
        let before = restrict(&cut, &Unbounded, &Excluded(b("m"))).unwrap();
        assert_eq!(
            before.ranges,
            vec![range(Included(b("k")), Excluded(b("m")))]
        );
        // A closed end at the row resumed after leaves nothing.
        let one = RowSet {
            keys: vec![],
            ranges: vec![range(Included(b("a")), Included(b("m")))],
        };
        assert!(restrict(&one, &Excluded(b("m")), &Unbounded).is_none());
        let pb = row_set_pb(&after);
        assert_eq!(crate::convert::row_set(Some(&pb)).unwrap(), after);
    }

    #[test]
    fn coverage_of_a_range_by_tablets() {
        use strata_cluster::tablet_map::TabletState;
        let t = |start: &str, end: Option<&str>| TabletRecord {
            table: "t".into(),
            id: 1,
            start: start.as_bytes().to_vec(),
            end: end.map(|e| e.as_bytes().to_vec()),
            owner: None,
            epoch: 0,
            state: TabletState::Unassigned,
        };
        let (a, b, c) = (t("", Some("m")), t("m", None), t("p", None));
        assert!(covers(&[&a, &b], b"", None));
        assert!(covers(&[&a, &b], b"c", Some(b"x")));
        assert!(covers(&[&a], b"c", Some(b"m")));
        assert!(!covers(&[&a], b"c", Some(b"n")));
        assert!(!covers(&[&a, &c], b"", None));
        assert!(!covers(&[&b], b"", None));
        assert!(!covers(&[], b"", None));
    }
}
