//! Bigtable's RowFilter tree: validated once, evaluated per row.
//!
//! A filter maps a row's cells (in the standard order) to output cells.
//! Chains feed each filter's output to the next; interleaves send the
//! input to every sub-filter and merge their outputs in the standard order
//! (duplicates kept); a condition chooses its true or false branch by
//! whether its predicate outputs any cell; `sink` sends cells straight to
//! the read's output, past every enclosing filter. Regexes are RE2 syntax
//! with full-match semantics on bytes, one character per byte
//! (`byte_regex`).

use crate::row::Cell;
use rand::Rng;
use regex::bytes::Regex;

/// Sub-filters a chain or interleave may hold, and total nodes of a tree.
pub const FILTER_NODES_MAX: usize = 1024;
/// Nesting depth of a filter tree.
pub const FILTER_DEPTH_MAX: usize = 20;
/// A label is at most this long (Bigtable's limit).
pub const LABEL_BYTES_MAX: usize = 15;

/// A bound on qualifiers or values.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ByteBound {
    Unbounded,
    Included(Vec<u8>),
    Excluded(Vec<u8>),
}

impl ByteBound {
    fn admits_from_below(&self, v: &[u8]) -> bool {
        match self {
            ByteBound::Unbounded => true,
            ByteBound::Included(s) => v >= s.as_slice(),
            ByteBound::Excluded(s) => v > s.as_slice(),
        }
    }
    fn admits_from_above(&self, v: &[u8]) -> bool {
        match self {
            ByteBound::Unbounded => true,
            ByteBound::Included(e) => v <= e.as_slice(),
            ByteBound::Excluded(e) => v < e.as_slice(),
        }
    }
}

/// A filter as the API describes it (before validation).
#[derive(Clone, Debug)]
pub enum FilterSpec {
    Chain(Vec<FilterSpec>),
    Interleave(Vec<FilterSpec>),
    Condition {
        predicate: Box<FilterSpec>,
        true_filter: Option<Box<FilterSpec>>,
        false_filter: Option<Box<FilterSpec>>,
    },
    Sink,
    PassAll,
    BlockAll,
    RowKeyRegex(Vec<u8>),
    RowSample(f64),
    FamilyNameRegex(String),
    ColumnQualifierRegex(Vec<u8>),
    ColumnRange {
        family: String,
        start: ByteBound,
        end: ByteBound,
    },
    /// `[start, end)`; end 0 means no upper bound.
    TimestampRange {
        start_micros: i64,
        end_micros: i64,
    },
    ValueRegex(Vec<u8>),
    ValueRange {
        start: ByteBound,
        end: ByteBound,
    },
    CellsPerRowOffset(i32),
    CellsPerRowLimit(i32),
    CellsPerColumnLimit(i32),
    StripValue,
    ApplyLabel(String),
}

/// Why a filter is not acceptable (INVALID_ARGUMENT).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid filter: {0}")]
pub struct FilterError(pub String);

/// A validated filter, ready to evaluate.
#[derive(Clone, Debug)]
pub enum Filter {
    Chain(Vec<Filter>),
    Interleave(Vec<Filter>),
    Condition(Box<Filter>, Box<Filter>, Box<Filter>),
    Sink,
    PassAll,
    BlockAll,
    RowKeyRegex(Regex),
    RowSample(f64),
    FamilyNameRegex(Regex),
    ColumnQualifierRegex(Regex),
    ColumnRange(String, ByteBound, ByteBound),
    TimestampRange(i64, Option<i64>),
    ValueRegex(Regex),
    ValueRange(ByteBound, ByteBound),
    CellsPerRowOffset(usize),
    CellsPerRowLimit(usize),
    CellsPerColumnLimit(usize),
    StripValue,
    ApplyLabel(String),
}

fn bad<T>(msg: impl Into<String>) -> Result<T, FilterError> {
    Err(FilterError(msg.into()))
}

/// Compiles an RE2 pattern for full matches on bytes (`byte_regex`).
pub fn compile_regex(pattern: &[u8], what: &str) -> Result<Regex, FilterError> {
    crate::byte_regex::compile(pattern).map_err(|e| FilterError(format!("{what} {}", e.0)))
}

fn positive(n: i32, what: &str) -> Result<usize, FilterError> {
    if n <= 0 {
        return bad(format!("{what} must be positive, got {n}"));
    }
    Ok(n as usize)
}

/// Whether `label` is a valid label: `[a-z0-9-]{1,15}`.
pub fn is_valid_label(label: &str) -> bool {
    !label.is_empty()
        && label.len() <= LABEL_BYTES_MAX
        && label
            .bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
}

impl Filter {
    /// Validates and compiles a filter tree.
    pub fn compile(spec: &FilterSpec) -> Result<Filter, FilterError> {
        let mut nodes = 0;
        compile_at(spec, 0, &mut nodes)
    }

    /// Applies the filter to one row's cells (standard order in, standard
    /// order out).
    pub fn apply(&self, row_key: &[u8], cells: Vec<Cell>) -> Vec<Cell> {
        let mut rng = rand::thread_rng();
        let (mut out, sunk) = self.eval(row_key, cells, &mut rng);
        if !sunk.is_empty() {
            out.extend(sunk);
            sort_standard(&mut out);
        }
        out
    }

    /// Returns (cells passed on to the parent, cells sent to the output).
    fn eval(&self, row: &[u8], cells: Vec<Cell>, rng: &mut impl Rng) -> (Vec<Cell>, Vec<Cell>) {
        let none = Vec::new;
        match self {
            Filter::Chain(fs) => {
                let mut cur = cells;
                let mut sunk = Vec::new();
                for f in fs {
                    if cur.is_empty() {
                        break;
                    }
                    let (out, s) = f.eval(row, cur, rng);
                    sunk.extend(s);
                    cur = out;
                }
                (cur, sunk)
            }
            Filter::Interleave(fs) => {
                let mut out = Vec::new();
                let mut sunk = Vec::new();
                for f in fs {
                    let (o, s) = f.eval(row, cells.clone(), rng);
                    out.extend(o);
                    sunk.extend(s);
                }
                sort_standard(&mut out);
                (out, sunk)
            }
            Filter::Condition(pred, t, f) => {
                let (p, ps) = pred.eval(row, cells.clone(), rng);
                let branch = if p.is_empty() && ps.is_empty() { f } else { t };
                branch.eval(row, cells, rng)
            }
            Filter::Sink => (none(), cells),
            Filter::PassAll => (cells, none()),
            Filter::BlockAll => (none(), none()),
            Filter::RowKeyRegex(re) => (if re.is_match(row) { cells } else { none() }, none()),
            Filter::RowSample(p) => (if rng.gen::<f64>() < *p { cells } else { none() }, none()),
            Filter::FamilyNameRegex(re) => {
                (keep(cells, |c| re.is_match(c.family.as_bytes())), none())
            }
            Filter::ColumnQualifierRegex(re) => {
                (keep(cells, |c| re.is_match(&c.qualifier)), none())
            }
            Filter::ColumnRange(fam, s, e) => (
                keep(cells, |c| {
                    c.family == *fam
                        && s.admits_from_below(&c.qualifier)
                        && e.admits_from_above(&c.qualifier)
                }),
                none(),
            ),
            Filter::TimestampRange(s, e) => (
                keep(cells, |c| {
                    c.timestamp_micros >= *s && e.is_none_or(|e| c.timestamp_micros < e)
                }),
                none(),
            ),
            Filter::ValueRegex(re) => (keep(cells, |c| re.is_match(&c.value)), none()),
            Filter::ValueRange(s, e) => (
                keep(cells, |c| {
                    s.admits_from_below(&c.value) && e.admits_from_above(&c.value)
                }),
                none(),
            ),
            Filter::CellsPerRowOffset(n) => (cells.into_iter().skip(*n).collect(), none()),
            Filter::CellsPerRowLimit(n) => (cells.into_iter().take(*n).collect(), none()),
            Filter::CellsPerColumnLimit(0) => (none(), none()),
            Filter::CellsPerColumnLimit(n) => {
                // In place, with no column name copied: every column's
                // first cell is kept, so the last kept cell names the
                // column of the cell before the current one.
                let mut cells = cells;
                let mut kept = 0;
                let mut seen = 0;
                for i in 0..cells.len() {
                    if kept > 0 && cells[kept - 1].same_column(&cells[i]) {
                        seen += 1;
                    } else {
                        seen = 1;
                    }
                    if seen <= *n {
                        cells.swap(kept, i);
                        kept += 1;
                    }
                }
                cells.truncate(kept);
                (cells, none())
            }
            Filter::StripValue => {
                let mut cells = cells;
                cells.iter_mut().for_each(|c| c.value.clear());
                (cells, none())
            }
            Filter::ApplyLabel(l) => {
                let mut cells = cells;
                cells.iter_mut().for_each(|c| c.labels.push(l.clone()));
                (cells, none())
            }
        }
    }
}

fn keep(cells: Vec<Cell>, pred: impl Fn(&Cell) -> bool) -> Vec<Cell> {
    cells.into_iter().filter(|c| pred(c)).collect()
}

/// Sorts cells into the standard order, keeping duplicates in input order.
fn sort_standard(cells: &mut [Cell]) {
    cells.sort_by(|a, b| {
        (a.family.as_str(), a.qualifier.as_slice())
            .cmp(&(b.family.as_str(), b.qualifier.as_slice()))
            .then(b.timestamp_micros.cmp(&a.timestamp_micros))
    });
}

/// Whether a filter tree contains an apply_label transformer.
fn applies_label(spec: &FilterSpec) -> bool {
    match spec {
        FilterSpec::ApplyLabel(_) => true,
        FilterSpec::Chain(fs) | FilterSpec::Interleave(fs) => fs.iter().any(applies_label),
        FilterSpec::Condition {
            predicate,
            true_filter,
            false_filter,
        } => {
            applies_label(predicate)
                || true_filter.as_deref().is_some_and(applies_label)
                || false_filter.as_deref().is_some_and(applies_label)
        }
        _ => false,
    }
}

fn compile_at(spec: &FilterSpec, depth: usize, nodes: &mut usize) -> Result<Filter, FilterError> {
    *nodes += 1;
    if *nodes > FILTER_NODES_MAX {
        return bad(format!("more than {FILTER_NODES_MAX} filters in one tree"));
    }
    if depth >= FILTER_DEPTH_MAX {
        return bad(format!(
            "filters nest deeper than {FILTER_DEPTH_MAX} levels"
        ));
    }
    let sub = |s: &FilterSpec, nodes: &mut usize| compile_at(s, depth + 1, nodes);
    Ok(match spec {
        FilterSpec::Chain(fs) | FilterSpec::Interleave(fs) => {
            let kind = if matches!(spec, FilterSpec::Chain(_)) {
                "chain"
            } else {
                "interleave"
            };
            if fs.len() < 2 {
                return bad(format!("{kind} needs at least 2 filters, got {}", fs.len()));
            }
            if matches!(spec, FilterSpec::Chain(_))
                && fs.iter().filter(|f| applies_label(f)).count() > 1
            {
                // Bigtable: a cell carries at most one label, so at most
                // one sub-filter of a chain may apply labels.
                return bad("a chain may have at most one sub-filter that applies a label");
            }
            let compiled = fs
                .iter()
                .map(|f| sub(f, nodes))
                .collect::<Result<Vec<_>, _>>()?;
            if matches!(spec, FilterSpec::Chain(_)) {
                Filter::Chain(compiled)
            } else {
                Filter::Interleave(compiled)
            }
        }
        FilterSpec::Condition {
            predicate,
            true_filter,
            false_filter,
        } => {
            let branch = |f: &Option<Box<FilterSpec>>, nodes: &mut usize| match f {
                Some(f) => sub(f, nodes),
                None => Ok(Filter::BlockAll),
            };
            let p = sub(predicate, nodes)?;
            let t = branch(true_filter, nodes)?;
            let f = branch(false_filter, nodes)?;
            Filter::Condition(Box::new(p), Box::new(t), Box::new(f))
        }
        FilterSpec::Sink => Filter::Sink,
        FilterSpec::PassAll => Filter::PassAll,
        FilterSpec::BlockAll => Filter::BlockAll,
        FilterSpec::RowKeyRegex(p) => {
            Filter::RowKeyRegex(compile_regex(p, "row_key_regex_filter")?)
        }
        FilterSpec::RowSample(p) => {
            if !(*p > 0.0 && *p < 1.0) {
                return bad(format!("row_sample_filter must be in (0, 1), got {p}"));
            }
            Filter::RowSample(*p)
        }
        FilterSpec::FamilyNameRegex(p) => {
            Filter::FamilyNameRegex(compile_regex(p.as_bytes(), "family_name_regex_filter")?)
        }
        FilterSpec::ColumnQualifierRegex(p) => {
            Filter::ColumnQualifierRegex(compile_regex(p, "column_qualifier_regex_filter")?)
        }
        FilterSpec::ColumnRange { family, start, end } => {
            if family.is_empty() {
                return bad("column_range_filter needs a family_name");
            }
            Filter::ColumnRange(family.clone(), start.clone(), end.clone())
        }
        FilterSpec::TimestampRange {
            start_micros,
            end_micros,
        } => {
            if *start_micros < 0 || *end_micros < 0 {
                return bad("timestamp_range_filter bounds must not be negative");
            }
            if *end_micros != 0 && end_micros < start_micros {
                return bad("timestamp_range_filter ends before it starts");
            }
            Filter::TimestampRange(*start_micros, (*end_micros != 0).then_some(*end_micros))
        }
        FilterSpec::ValueRegex(p) => Filter::ValueRegex(compile_regex(p, "value_regex_filter")?),
        FilterSpec::ValueRange { start, end } => Filter::ValueRange(start.clone(), end.clone()),
        FilterSpec::CellsPerRowOffset(n) => {
            if *n < 0 {
                return bad(format!(
                    "cells_per_row_offset_filter must not be negative, got {n}"
                ));
            }
            Filter::CellsPerRowOffset(*n as usize)
        }
        FilterSpec::CellsPerRowLimit(n) => {
            Filter::CellsPerRowLimit(positive(*n, "cells_per_row_limit_filter")?)
        }
        FilterSpec::CellsPerColumnLimit(n) => {
            Filter::CellsPerColumnLimit(positive(*n, "cells_per_column_limit_filter")?)
        }
        FilterSpec::StripValue => Filter::StripValue,
        FilterSpec::ApplyLabel(l) => {
            if !is_valid_label(l) {
                return bad(format!(
                    "apply_label_transformer {l:?} must match [a-z0-9-]{{1,{LABEL_BYTES_MAX}}}"
                ));
            }
            Filter::ApplyLabel(l.clone())
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn cells_per_column_limit_keeps_each_columns_newest() {
        let mut rng = rand::rngs::SmallRng::seed_from_u64(3);
        for _ in 0..2_000 {
            let mut cells = Vec::new();
            for family in ["a", "b"] {
                for q in 0..rng.gen_range(0..4u8) {
                    for v in 0..rng.gen_range(1..5) {
                        cells.push(Cell {
                            family: family.into(),
                            qualifier: vec![q],
                            timestamp_micros: 100 - v,
                            value: vec![q],
                            labels: Vec::new(),
                        });
                    }
                }
            }
            let n = rng.gen_range(1..4);
            // Each cell's version number within its column, counted from 0.
            let rank = |i: usize| {
                (0..i)
                    .rev()
                    .take_while(|&j| cells[j].same_column(&cells[i]))
                    .count()
            };
            let want: Vec<Cell> = (0..cells.len())
                .filter(|&i| rank(i) < n)
                .map(|i| cells[i].clone())
                .collect();
            let (got, sunk) = Filter::CellsPerColumnLimit(n).eval(b"r", cells.clone(), &mut rng);
            assert_eq!(got, want, "limit {n}");
            assert!(sunk.is_empty());
        }
    }

    #[test]
    fn a_chain_applies_at_most_one_label() {
        let label = |l: &str| FilterSpec::ApplyLabel(l.into());
        let two = FilterSpec::Chain(vec![label("a"), label("b")]);
        assert!(Filter::compile(&two).is_err());
        let nested = FilterSpec::Chain(vec![
            label("a"),
            FilterSpec::Interleave(vec![FilterSpec::PassAll, label("b")]),
        ]);
        assert!(Filter::compile(&nested).is_err());
        let one = FilterSpec::Chain(vec![FilterSpec::PassAll, label("a")]);
        assert!(Filter::compile(&one).is_ok());
        let interleave = FilterSpec::Interleave(vec![label("a"), label("b")]);
        assert!(Filter::compile(&interleave).is_ok());
    }
}
