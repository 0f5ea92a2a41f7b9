//! Reads: a streaming scan over a table's tree that groups cells into rows,
//! applies the families' GC rules (read-time GC), then the row filter.

use crate::cell_key;
use crate::error::{Result, TableError};
use crate::filter::Filter;
use crate::row::{Cell, KeySpan, Row, RowSet};
use crate::schema::Schema;
use std::collections::VecDeque;
use std::ops::Bound;
use std::sync::Arc;
use strata_engine::{Direction, Snapshot, Tree, TreeIter};

/// Hidden versions of one column stepped over before the rest are skipped
/// with a seek.
const SEEK_AFTER_HIDDEN_VERSIONS: usize = 16;
/// Bytes of hidden values of one column stepped over (each one copied out
/// of the tree) before the rest are skipped with a seek: about what a seek
/// costs in copying. A hot cell that grows (appends) is skipped after one
/// or two of its old versions.
const SEEK_AFTER_HIDDEN_BYTES: usize = 16 << 10;

/// Tracks a column's rank during a forward scan, against its family's
/// version limit.
#[derive(Default)]
struct ColumnLimit {
    family: String,
    qualifier: Vec<u8>,
    rank: usize,
    limit: Option<usize>,
    /// Hidden versions stepped over in a row, in this column.
    hidden: usize,
    /// Their value bytes.
    hidden_bytes: usize,
}

impl ColumnLimit {
    /// Whether `c` is beyond its family's version limit (forward scans
    /// only: in reverse, versions come oldest first).
    fn hides(&mut self, schema: &Schema, c: &Cell, dir: Direction) -> bool {
        if dir != Direction::Forward {
            return false;
        }
        if c.family == self.family && c.qualifier == self.qualifier {
            self.rank += 1;
        } else {
            if c.family != self.family {
                self.family.clone_from(&c.family);
                self.limit = schema
                    .families
                    .get(&c.family)
                    .and_then(|f| f.gc_rule.versions_kept_max());
            }
            self.qualifier.clone_from(&c.qualifier);
            self.rank = 0;
            self.hidden = 0;
            self.hidden_bytes = 0;
        }
        let hidden = self.limit.is_some_and(|n| self.rank >= n);
        if hidden {
            self.hidden += 1;
            self.hidden_bytes += c.value.len();
        }
        hidden
    }

    /// Whether to skip the column's other versions with a seek.
    fn seek_past(&self) -> bool {
        self.hidden >= SEEK_AFTER_HIDDEN_VERSIONS || self.hidden_bytes >= SEEK_AFTER_HIDDEN_BYTES
    }
}

/// Counters of one read, for request stats.
#[derive(Clone, Copy, Debug, Default)]
pub struct ReadStats {
    pub rows_seen: u64,
    pub cells_seen: u64,
    pub rows_returned: u64,
    pub cells_returned: u64,
}

/// A read request.
#[derive(Clone, Debug)]
pub struct ReadRequest {
    pub rows: RowSet,
    pub filter: Option<Filter>,
    /// 0 means no limit.
    pub rows_limit: u64,
    pub reversed: bool,
}

/// An iterator over the rows of a read, in key order (or reversed), each
/// with at least one cell.
pub struct RowReader {
    tree: Tree,
    schema: Arc<Schema>,
    snapshot: Snapshot,
    spans: VecDeque<KeySpan>,
    dir: Direction,
    filter: Option<Filter>,
    rows_left: u64,
    now_micros: i64,
    iter: Option<TreeIter>,
    /// The first cell of the next row, read ahead while closing a row,
    /// with the length of its key's row part; the key is in `key`.
    carry: Option<(usize, Cell)>,
    /// The key of the cell read last, as stored (one allocation reused
    /// for every cell of the read).
    key: Vec<u8>,
    /// The current row's part of its cells' keys (`cell_key::row_part_len`):
    /// a row's cells are told apart from the next row's by it, so a row
    /// key is decoded once per row, not once per cell.
    row_part: Vec<u8>,
    pub stats: ReadStats,
}

impl RowReader {
    pub(crate) fn new(
        tree: Tree,
        schema: Arc<Schema>,
        snapshot: Snapshot,
        req: ReadRequest,
        now_micros: i64,
    ) -> RowReader {
        let spans = req.rows.spans();
        Self::over_spans(tree, schema, snapshot, req, spans, now_micros)
    }

    /// A reader of `spans` of cell keys (sorted, not overlapping) instead
    /// of `req.rows`: parts of rows, such as some of a row's columns.
    pub(crate) fn over_spans(
        tree: Tree,
        schema: Arc<Schema>,
        snapshot: Snapshot,
        req: ReadRequest,
        spans: Vec<KeySpan>,
        now_micros: i64,
    ) -> RowReader {
        debug_assert!(spans.windows(2).all(|w| w[0]
            .end
            .as_deref()
            .is_some_and(|end| end <= w[1].start.as_slice())));
        let mut spans: VecDeque<KeySpan> = spans.into();
        if req.reversed {
            spans = spans.into_iter().rev().collect();
        }
        RowReader {
            tree,
            schema,
            snapshot,
            spans,
            dir: if req.reversed {
                Direction::Reverse
            } else {
                Direction::Forward
            },
            filter: req.filter,
            rows_left: if req.rows_limit == 0 {
                u64::MAX
            } else {
                req.rows_limit
            },
            now_micros,
            iter: None,
            carry: None,
            key: Vec::new(),
            row_part: Vec::new(),
            stats: ReadStats::default(),
        }
    }

    /// The next stored cell in scan order, moving across spans, and the
    /// length of its key's row part; its key is left in `self.key`.
    fn next_cell(&mut self) -> Result<Option<(usize, Cell)>> {
        loop {
            if self.iter.is_none() {
                let Some(span) = self.spans.pop_front() else {
                    return Ok(None);
                };
                let lower = if span.start.is_empty() {
                    Bound::Unbounded
                } else {
                    Bound::Included(span.start.as_slice())
                };
                let upper = match &span.end {
                    Some(e) => Bound::Excluded(e.as_slice()),
                    None => Bound::Unbounded,
                };
                self.iter = Some(
                    self.tree
                        .range(lower, upper, self.dir, Some(&self.snapshot))?,
                );
            }
            let iter = self.iter.as_mut().expect("set above");
            match iter.next_into(&mut self.key) {
                None => self.iter = None,
                Some(entry) => {
                    let value = entry?;
                    let corrupt = |e: cell_key::KeyError| TableError::Corrupt(e.to_string());
                    let row_len = cell_key::row_part_len(&self.key).map_err(corrupt)?;
                    let ck = cell_key::decode_column(&self.key[row_len..]).map_err(corrupt)?;
                    self.stats.cells_seen += 1;
                    let cell = Cell {
                        family: ck.family,
                        qualifier: ck.qualifier,
                        timestamp_micros: ck.timestamp_micros,
                        value,
                        labels: Vec::new(),
                    };
                    return Ok(Some((row_len, cell)));
                }
            }
        }
    }

    /// The next stored row with its cells in the standard order, less the
    /// versions a family's version limit hides anyway. Going forward, a
    /// column with many hidden versions (a hot cell rewritten often, before
    /// compaction collects the old versions) is skipped with one seek
    /// instead of stepping over each version.
    fn next_raw_row(&mut self) -> Result<Option<Row>> {
        let (row_len, first) = match self.carry.take() {
            Some(c) => c,
            None => match self.next_cell()? {
                Some(c) => c,
                None => return Ok(None),
            },
        };
        self.row_part.clear();
        self.row_part.extend_from_slice(&self.key[..row_len]);
        let key =
            cell_key::decode_row(&self.row_part).map_err(|e| TableError::Corrupt(e.to_string()))?;
        let mut column = ColumnLimit::default();
        let mut cells = Vec::new();
        if !column.hides(&self.schema, &first, self.dir) {
            cells.push(first);
        }
        while let Some((row_len, c)) = self.next_cell()? {
            if self.key[..row_len] != self.row_part[..] {
                self.carry = Some((row_len, c));
                break;
            }
            if !column.hides(&self.schema, &c, self.dir) {
                cells.push(c);
            } else if column.seek_past() {
                let end = crate::mutation::prefix_end(
                    &crate::cell_key::column_prefix(&key, &c.family, &c.qualifier)
                        .map_err(|e| TableError::Corrupt(e.to_string()))?,
                );
                if let Some(it) = self.iter.as_mut() {
                    it.skip_to(&end)?;
                }
                column.hidden = 0;
                column.hidden_bytes = 0;
            }
        }
        if self.dir == Direction::Reverse {
            cells.reverse();
        }
        self.stats.rows_seen += 1;
        Ok(Some(Row { key, cells }))
    }

    fn next_row(&mut self) -> Result<Option<Row>> {
        while self.rows_left > 0 {
            let Some(row) = self.next_raw_row()? else {
                return Ok(None);
            };
            let cells = gc_visible(&self.schema, row.cells, self.now_micros);
            let cells = match &self.filter {
                Some(f) if !cells.is_empty() => f.apply(&row.key, cells),
                _ => cells,
            };
            if cells.is_empty() {
                continue;
            }
            self.rows_left -= 1;
            self.stats.rows_returned += 1;
            self.stats.cells_returned += cells.len() as u64;
            return Ok(Some(Row {
                key: row.key,
                cells,
            }));
        }
        Ok(None)
    }
}

impl Iterator for RowReader {
    type Item = Result<Row>;

    fn next(&mut self) -> Option<Result<Row>> {
        match self.next_row() {
            Ok(Some(r)) => Some(Ok(r)),
            Ok(None) => None,
            Err(e) => {
                self.rows_left = 0;
                Some(Err(e))
            }
        }
    }
}

/// The cells of a row that GC rules keep at `now_micros`; cells of families
/// the schema no longer has are dropped. In place: kept cells move to the
/// front in order, the rest are cut off, and no column name is copied.
pub(crate) fn gc_visible(schema: &Schema, mut cells: Vec<Cell>, now_micros: i64) -> Vec<Cell> {
    let mut rank = 0usize;
    let mut family = None;
    // `kept` cells are at the front; the cell examined before `i` is at
    // `kept - 1` if it was kept (moved there), else still at `i - 1`
    // (a cell not kept moves only when a later kept cell takes its place,
    // and none has yet).
    let mut kept = 0;
    let mut prev_kept = false;
    for i in 0..cells.len() {
        let prev = match (i, prev_kept) {
            (0, _) => None,
            (_, true) => Some(&cells[kept - 1]),
            (_, false) => Some(&cells[i - 1]),
        };
        let c = &cells[i];
        if prev.is_some_and(|p| p.same_column(c)) {
            rank += 1;
        } else {
            rank = 0;
            if prev.is_none_or(|p| p.family != c.family) {
                family = schema.families.get(&c.family);
            }
        }
        prev_kept = family.is_some_and(|f| !f.gc_rule.erases(rank, c.timestamp_micros, now_micros));
        if prev_kept {
            cells.swap(kept, i);
            kept += 1;
        }
    }
    cells.truncate(kept);
    cells
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gc::GcRule;
    use crate::schema::Family;
    use rand::{Rng, SeedableRng};

    /// A row's cells in the standard order: families "a" and "b" in the
    /// schema and "x" not, a few qualifiers each, versions newest first.
    fn random_row(rng: &mut impl Rng) -> Vec<Cell> {
        let mut cells = Vec::new();
        for family in ["a", "b", "x"] {
            for q in 0..rng.gen_range(0..4u8) {
                let mut ts = 10_000;
                for _ in 0..rng.gen_range(1..5) {
                    ts -= rng.gen_range(1..4_000);
                    cells.push(Cell {
                        family: family.into(),
                        qualifier: vec![q],
                        timestamp_micros: ts,
                        value: vec![q; 3],
                        labels: Vec::new(),
                    });
                }
            }
        }
        cells
    }

    fn random_rule(rng: &mut impl Rng, depth: usize) -> GcRule {
        match rng.gen_range(0..if depth == 0 { 3 } else { 5 }) {
            0 => GcRule::KeepAll,
            1 => GcRule::MaxVersions(rng.gen_range(1..4)),
            2 => GcRule::MaxAgeMicros(rng.gen_range(1_000..9_000)),
            3 => GcRule::Union((0..2).map(|_| random_rule(rng, depth - 1)).collect()),
            _ => GcRule::Intersection((0..2).map(|_| random_rule(rng, depth - 1)).collect()),
        }
    }

    /// What `gc_visible` must return: each cell's rank in its column
    /// counted against the previous cell, by copies of the column's name.
    fn gc_visible_model(schema: &Schema, cells: &[Cell], now_micros: i64) -> Vec<Cell> {
        let mut out = Vec::new();
        let mut rank = 0;
        let mut prev: Option<(String, Vec<u8>)> = None;
        for c in cells {
            if prev == Some((c.family.clone(), c.qualifier.clone())) {
                rank += 1;
            } else {
                rank = 0;
                prev = Some((c.family.clone(), c.qualifier.clone()));
            }
            let Some(f) = schema.families.get(&c.family) else {
                continue;
            };
            if !f.gc_rule.erases(rank, c.timestamp_micros, now_micros) {
                out.push(c.clone());
            }
        }
        out
    }

    #[test]
    fn gc_visible_in_place_keeps_what_the_model_keeps() {
        let mut rng = rand::rngs::SmallRng::seed_from_u64(7);
        for _ in 0..3_000 {
            let mut schema = Schema {
                tree: "t".into(),
                deletion_protection: false,
                families: Default::default(),
            };
            for f in ["a", "b"] {
                let family = Family {
                    gc_rule: random_rule(&mut rng, 2),
                    ..Family::default()
                };
                schema.families.insert(f.to_string(), family);
            }
            let cells = random_row(&mut rng);
            let now = rng.gen_range(5_000..15_000);
            let want = gc_visible_model(&schema, &cells, now);
            assert_eq!(gc_visible(&schema, cells, now), want);
        }
    }
}
