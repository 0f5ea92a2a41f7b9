//! Rows, cells and row sets as reads see them.

use crate::cell_key::{row_end, row_prefix};

/// One cell of a row, as a read returns it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cell {
    pub family: String,
    pub qualifier: Vec<u8>,
    pub timestamp_micros: i64,
    pub value: Vec<u8>,
    pub labels: Vec<String>,
}

impl Cell {
    /// Whether `other` is the same column (family and qualifier).
    pub fn same_column(&self, other: &Cell) -> bool {
        self.family == other.family && self.qualifier == other.qualifier
    }
}

/// A row: its key and its cells in the standard order (family, qualifier
/// ascending; timestamp descending).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Row {
    pub key: Vec<u8>,
    pub cells: Vec<Cell>,
}

/// A bound of a row range.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RowBound {
    Unbounded,
    Included(Vec<u8>),
    Excluded(Vec<u8>),
}

/// A range of rows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RowRange {
    pub start: RowBound,
    pub end: RowBound,
}

impl RowRange {
    /// Every row.
    pub fn all() -> RowRange {
        RowRange {
            start: RowBound::Unbounded,
            end: RowBound::Unbounded,
        }
    }

    /// The rows whose keys start with `prefix`.
    pub fn prefix(prefix: &[u8]) -> RowRange {
        RowRange {
            start: RowBound::Included(prefix.to_vec()),
            end: match prefix_successor(prefix) {
                Some(end) => RowBound::Excluded(end),
                None => RowBound::Unbounded,
            },
        }
    }
}

/// The smallest key greater than every key starting with `prefix`, or None
/// if there is none (the prefix is empty or all 0xFF).
pub fn prefix_successor(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut p = prefix.to_vec();
    while let Some(last) = p.pop() {
        if last < 0xFF {
            p.push(last + 1);
            return Some(p);
        }
    }
    None
}

/// Which rows a read covers: keys and ranges; both empty means every row.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RowSet {
    pub keys: Vec<Vec<u8>>,
    pub ranges: Vec<RowRange>,
}

/// A half-open range of cell keys: `start` inclusive (empty = from the
/// first key), `end` exclusive (None = to the last key).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeySpan {
    pub start: Vec<u8>,
    pub end: Option<Vec<u8>>,
}

impl RowSet {
    /// Every row.
    pub fn all() -> RowSet {
        RowSet::default()
    }

    /// The cell-key spans this set covers: sorted, disjoint, non-empty.
    pub fn spans(&self) -> Vec<KeySpan> {
        if self.keys.is_empty() && self.ranges.is_empty() {
            return vec![KeySpan {
                start: Vec::new(),
                end: None,
            }];
        }
        let mut spans: Vec<KeySpan> = self
            .keys
            .iter()
            .map(|k| KeySpan {
                start: row_prefix(k),
                end: Some(row_end(k)),
            })
            .collect();
        for r in &self.ranges {
            let start = match &r.start {
                RowBound::Unbounded => Vec::new(),
                RowBound::Included(k) => row_prefix(k),
                RowBound::Excluded(k) => row_end(k),
            };
            let end = match &r.end {
                RowBound::Unbounded => None,
                RowBound::Included(k) => Some(row_end(k)),
                RowBound::Excluded(k) => Some(row_prefix(k)),
            };
            spans.push(KeySpan { start, end });
        }
        spans.retain(|s| s.end.as_ref().is_none_or(|e| s.start < *e));
        spans.sort_by(|a, b| a.start.cmp(&b.start));
        let mut out: Vec<KeySpan> = Vec::with_capacity(spans.len());
        for s in spans {
            if let Some(last) = out.last_mut() {
                let overlaps = last.end.as_ref().is_none_or(|e| s.start <= *e);
                if overlaps {
                    last.end = match (&last.end, &s.end) {
                        (None, _) | (_, None) => None,
                        (Some(a), Some(b)) => Some(a.max(b).clone()),
                    };
                    continue;
                }
            }
            out.push(s);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn covers(set: &RowSet, row: &[u8]) -> bool {
        let k = row_prefix(row);
        set.spans()
            .iter()
            .any(|s| s.start <= k && s.end.as_ref().is_none_or(|e| k < *e))
    }

    #[test]
    fn ranges_and_keys() {
        let set = RowSet {
            keys: vec![b"k".to_vec(), b"a".to_vec(), b"k".to_vec()],
            ranges: vec![
                RowRange {
                    start: RowBound::Excluded(b"b".to_vec()),
                    end: RowBound::Included(b"d".to_vec()),
                },
                RowRange {
                    start: RowBound::Included(b"c".to_vec()),
                    end: RowBound::Excluded(b"e".to_vec()),
                },
            ],
        };
        let spans = set.spans();
        assert_eq!(spans.len(), 3, "{spans:?}");
        for (row, want) in [
            (&b"a"[..], true),
            (b"a\0", false),
            (b"b", false),
            (b"b\0", true),
            (b"d", true),
            (b"dz", true),
            (b"e", false),
            (b"k", true),
            (b"ka", false),
        ] {
            assert_eq!(covers(&set, row), want, "{row:?}");
        }
        assert!(covers(&RowSet::all(), b"anything"));
        let empty = RowSet {
            keys: vec![],
            ranges: vec![RowRange {
                start: RowBound::Excluded(b"b".to_vec()),
                end: RowBound::Excluded(b"b".to_vec()),
            }],
        };
        assert!(empty.spans().is_empty());
    }

    #[test]
    fn prefixes() {
        assert_eq!(prefix_successor(b"ab"), Some(b"ac".to_vec()));
        assert_eq!(prefix_successor(b"a\xff"), Some(b"b".to_vec()));
        assert_eq!(prefix_successor(b"\xff\xff"), None);
        let set = RowSet {
            keys: vec![],
            ranges: vec![RowRange::prefix(b"ab")],
        };
        assert!(covers(&set, b"ab"));
        assert!(covers(&set, b"ab\xff\xff"));
        assert!(!covers(&set, b"ac"));
        assert!(!covers(&set, b"aa\xff"));
    }
}
