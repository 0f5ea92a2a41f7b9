//! Row mutations: validation against a table's schema, and their
//! translation into engine operations on one row.
//!
//! All mutations of one row become one engine batch (one log record). The
//! row's pending operations are kept in a map keyed by cell key, so that a
//! later mutation of the same request sees the earlier ones (a
//! DeleteFromRow after a SetCell removes it) and every key is written once.

use crate::aggregate::{self, AggregateInput};
use crate::cell_key::{self, column_prefix, family_prefix, row_prefix};
use crate::error::{invalid, Result};
use crate::schema::{Schema, ValueType};
use std::collections::BTreeMap;
use std::ops::Bound;
use strata_engine::{Direction, Tree, WriteBatch};

/// A row key is at most this long (Bigtable's limit).
pub const ROW_KEY_BYTES_MAX: usize = 4 << 10;
/// A cell value is at most this long (Bigtable's limit).
pub const CELL_VALUE_BYTES_MAX: usize = 100 << 20;
/// Mutations one request may carry (Bigtable's limit).
pub const MUTATIONS_PER_REQUEST_MAX: usize = 100_000;
/// A column qualifier is at most this long (Bigtable's limit).
pub const QUALIFIER_BYTES_MAX: usize = 16 << 10;
/// SetCell's timestamp meaning "the server's time".
pub const SERVER_TIMESTAMP: i64 = -1;
/// Timestamps have millisecond granularity: multiples of this.
pub const TIMESTAMP_GRANULARITY_MICROS: i64 = 1000;

/// One mutation of a row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mutation {
    SetCell {
        family: String,
        qualifier: Vec<u8>,
        /// Microseconds, a multiple of 1,000, or -1 for the server's time.
        timestamp_micros: i64,
        value: Vec<u8>,
    },
    /// Adds `input` to an aggregate cell: added to a Sum, folded into a
    /// Min or Max, hashed into an HLL++ sketch.
    AddToCell {
        family: String,
        qualifier: Vec<u8>,
        timestamp_micros: i64,
        input: AggregateInput,
    },
    /// Merges an aggregate state into a cell: an int64 for Sum, Min and
    /// Max (the same as AddToCell), a serialized sketch for HLL++.
    MergeToCell {
        family: String,
        qualifier: Vec<u8>,
        timestamp_micros: i64,
        input: AggregateInput,
    },
    /// Deletes the column's cells with timestamps in `[start, end)`; an end
    /// of 0 means no upper bound.
    DeleteFromColumn {
        family: String,
        qualifier: Vec<u8>,
        start_micros: i64,
        end_micros: i64,
    },
    DeleteFromFamily {
        family: String,
    },
    DeleteFromRow,
}

impl Mutation {
    /// The mutation's name in the Bigtable API, for error messages.
    pub fn name(&self) -> &'static str {
        match self {
            Mutation::SetCell { .. } => "SetCell",
            Mutation::AddToCell { .. } => "AddToCell",
            Mutation::MergeToCell { .. } => "MergeToCell",
            Mutation::DeleteFromColumn { .. } => "DeleteFromColumn",
            Mutation::DeleteFromFamily { .. } => "DeleteFromFamily",
            Mutation::DeleteFromRow => "DeleteFromRow",
        }
    }
}

/// A pending write of one cell key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Pending {
    Put(Vec<u8>),
    Delete,
    /// An aggregate operand (already combined with earlier operands).
    Merge(Vec<u8>),
}

/// Checks a row key against Bigtable's rules.
pub fn validate_row_key(row: &[u8]) -> Result<()> {
    if row.is_empty() {
        return invalid("row keys must not be empty");
    }
    if row.len() > ROW_KEY_BYTES_MAX {
        return invalid(format!(
            "row key is {} bytes, above the limit of {ROW_KEY_BYTES_MAX} bytes",
            row.len()
        ));
    }
    Ok(())
}

fn validate_timestamp(ts: i64, what: &str) -> Result<()> {
    if ts < 0 {
        return invalid(format!("{what} {ts} is negative"));
    }
    if ts % TIMESTAMP_GRANULARITY_MICROS != 0 {
        return invalid(format!(
            "{what} {ts} is not a multiple of 1000: the table's timestamp granularity is milliseconds"
        ));
    }
    Ok(())
}

fn family_type(schema: &Schema, family: &str) -> Result<ValueType> {
    match schema.families.get(family) {
        Some(f) => Ok(f.value_type),
        None => Err(crate::error::family_not_found(family)),
    }
}

/// The merge operand of an AddToCell or MergeToCell, or why it does not
/// fit its family.
fn aggregate_operand(schema: &Schema, m: &Mutation) -> Result<Vec<u8>> {
    let (family, input, merge) = match m {
        Mutation::AddToCell { family, input, .. } => (family, input, false),
        Mutation::MergeToCell { family, input, .. } => (family, input, true),
        _ => unreachable!("only aggregate mutations have operands"),
    };
    let t = family_type(schema, family)?;
    if !t.is_aggregate() {
        return invalid(format!(
            "family {family:?} is not an aggregate family: {} needs one",
            m.name()
        ));
    }
    aggregate::operand(t, input, merge)
        .or_else(|e| invalid(format!("{} on family {family:?}: {e}", m.name())))
}

/// Validates one row's mutations against the schema; nothing is applied
/// if any fails.
pub fn validate(schema: &Schema, row: &[u8], mutations: &[Mutation]) -> Result<()> {
    validate_row_key(row)?;
    if mutations.is_empty() {
        return invalid("no mutations provided");
    }
    if mutations.len() > MUTATIONS_PER_REQUEST_MAX {
        return invalid(format!(
            "{} mutations, above the limit of {MUTATIONS_PER_REQUEST_MAX} per request",
            mutations.len()
        ));
    }
    let qualifier_ok = |q: &[u8]| {
        if q.len() > QUALIFIER_BYTES_MAX {
            return invalid(format!(
                "column qualifier is {} bytes, above the limit of {QUALIFIER_BYTES_MAX} bytes",
                q.len()
            ));
        }
        Ok(())
    };
    for m in mutations {
        match m {
            Mutation::SetCell {
                family,
                qualifier,
                timestamp_micros,
                value,
            } => {
                let t = family_type(schema, family)?;
                qualifier_ok(qualifier)?;
                if *timestamp_micros != SERVER_TIMESTAMP {
                    validate_timestamp(*timestamp_micros, "SetCell timestamp")?;
                }
                if value.len() > CELL_VALUE_BYTES_MAX {
                    return invalid(format!(
                        "cell value is {} bytes, above the limit of {CELL_VALUE_BYTES_MAX} bytes",
                        value.len()
                    ));
                }
                if t.is_hll() {
                    if let Err(e) = aggregate::decode_sketch_for(t, value) {
                        return invalid(format!(
                            "family {family:?} holds HLL++ sketches: SetCell needs one ({e})"
                        ));
                    }
                } else if t.is_aggregate() && value.len() != 8 {
                    return invalid(format!(
                        "family {family:?} holds int64 aggregates: SetCell needs an 8-byte big-endian value"
                    ));
                }
            }
            Mutation::AddToCell {
                qualifier,
                timestamp_micros,
                ..
            }
            | Mutation::MergeToCell {
                qualifier,
                timestamp_micros,
                ..
            } => {
                qualifier_ok(qualifier)?;
                validate_timestamp(*timestamp_micros, &format!("{} timestamp", m.name()))?;
                aggregate_operand(schema, m)?;
            }
            Mutation::DeleteFromColumn {
                family,
                qualifier,
                start_micros,
                end_micros,
            } => {
                family_type(schema, family)?;
                qualifier_ok(qualifier)?;
                validate_timestamp(*start_micros, "DeleteFromColumn start timestamp")?;
                validate_timestamp(*end_micros, "DeleteFromColumn end timestamp")?;
                if *end_micros != 0 && end_micros <= start_micros {
                    return invalid("DeleteFromColumn time range ends before it starts");
                }
            }
            Mutation::DeleteFromFamily { family } => {
                family_type(schema, family)?;
            }
            Mutation::DeleteFromRow => {}
        }
    }
    Ok(())
}

/// The pending operations of one row, built against the tree's current
/// state. The caller holds the row's lock from here until the batch is
/// written.
pub(crate) struct RowWrite<'a> {
    tree: &'a Tree,
    schema: &'a Schema,
    row: &'a [u8],
    pub(crate) pending: BTreeMap<Vec<u8>, Pending>,
}

impl<'a> RowWrite<'a> {
    pub(crate) fn new(tree: &'a Tree, schema: &'a Schema, row: &'a [u8]) -> Self {
        RowWrite {
            tree,
            schema,
            row,
            pending: BTreeMap::new(),
        }
    }

    /// Applies validated mutations; `now_micros` is the server time
    /// (already at millisecond granularity) for SetCell with -1.
    pub(crate) fn apply(&mut self, mutations: &[Mutation], now_micros: i64) -> Result<()> {
        for m in mutations {
            match m {
                Mutation::SetCell {
                    family,
                    qualifier,
                    timestamp_micros,
                    value,
                } => {
                    let ts = if *timestamp_micros == SERVER_TIMESTAMP {
                        now_micros
                    } else {
                        *timestamp_micros
                    };
                    let key = self.key(family, qualifier, ts)?;
                    self.pending.insert(key, Pending::Put(value.clone()));
                }
                Mutation::AddToCell {
                    family,
                    qualifier,
                    timestamp_micros,
                    ..
                }
                | Mutation::MergeToCell {
                    family,
                    qualifier,
                    timestamp_micros,
                    ..
                } => {
                    let op = aggregate_operand(self.schema, m)?;
                    let key = self.key(family, qualifier, *timestamp_micros)?;
                    self.add(key, op);
                }
                Mutation::DeleteFromColumn {
                    family,
                    qualifier,
                    start_micros,
                    end_micros,
                } => {
                    let prefix = column_prefix(self.row, family, qualifier).map_err(key_err)?;
                    let (s, e) = (*start_micros, *end_micros);
                    self.delete_where(&prefix, |k| {
                        let ts = ts_of(k);
                        ts >= s && (e == 0 || ts < e)
                    })?;
                }
                Mutation::DeleteFromFamily { family } => {
                    let prefix = family_prefix(self.row, family).map_err(key_err)?;
                    self.delete_where(&prefix, |_| true)?;
                }
                Mutation::DeleteFromRow => {
                    let prefix = row_prefix(self.row);
                    self.delete_where(&prefix, |_| true)?;
                }
            }
        }
        Ok(())
    }

    pub(crate) fn key(&self, family: &str, qualifier: &[u8], ts: i64) -> Result<Vec<u8>> {
        cell_key::encode(self.row, family, qualifier, ts).map_err(key_err)
    }

    fn add(&mut self, key: Vec<u8>, op: Vec<u8>) {
        use strata_engine::MergeOperator;
        let merged = match self.pending.remove(&key) {
            None => Pending::Merge(op),
            Some(Pending::Delete) => {
                Pending::Put(aggregate::AggregateMerge.full_merge(&key, None, &[&op]))
            }
            Some(Pending::Put(base)) => {
                Pending::Put(aggregate::AggregateMerge.full_merge(&key, Some(&base), &[&op]))
            }
            Some(Pending::Merge(prev)) => {
                match aggregate::AggregateMerge.partial_merge(&key, &[&prev, &op]) {
                    Some(p) => Pending::Merge(p),
                    None => Pending::Merge(op),
                }
            }
        };
        self.pending.insert(key, merged);
    }

    /// Marks for deletion every stored or pending key under `prefix` that
    /// `pred` accepts.
    fn delete_where(&mut self, prefix: &[u8], pred: impl Fn(&[u8]) -> bool) -> Result<()> {
        let end = prefix_end(prefix);
        let mut doomed = Vec::new();
        let iter = self.tree.range(
            Bound::Included(prefix),
            Bound::Excluded(&end),
            Direction::Forward,
            None,
        )?;
        for entry in iter {
            let (k, _) = entry?;
            if pred(&k) {
                doomed.push(k);
            }
        }
        doomed.extend(
            self.pending
                .range(prefix.to_vec()..end.clone())
                .filter(|(k, _)| pred(k))
                .map(|(k, _)| k.clone()),
        );
        for k in doomed {
            self.pending.insert(k, Pending::Delete);
        }
        Ok(())
    }

    /// Appends the pending operations to `batch`.
    pub(crate) fn emit(self, batch: &mut WriteBatch) {
        let id = self.tree.id();
        for (k, p) in self.pending {
            match p {
                Pending::Put(v) => batch.put(id, &k, &v),
                Pending::Delete => batch.delete(id, &k),
                Pending::Merge(op) => batch.merge(id, &k, &op),
            }
        }
    }
}

/// Whether every mutation is a SetCell (a write that `emit_set_cells`
/// makes without the pending map).
pub(crate) fn set_cells_only(mutations: &[Mutation]) -> bool {
    mutations
        .iter()
        .all(|m| matches!(m, Mutation::SetCell { .. }))
}

/// Appends one row's SetCells (validated; `set_cells_only`) to `batch` in
/// request order, one key buffer reused for every cell. Without
/// `RowWrite`'s map nothing is merged: a later SetCell of the same cell
/// is a later entry of the batch, with the higher sequence number, so it
/// wins as it would in the map.
pub(crate) fn emit_set_cells(
    tree: strata_engine::TreeId,
    row: &[u8],
    mutations: &[Mutation],
    now_micros: i64,
    batch: &mut WriteBatch,
) -> Result<()> {
    // Room for every cell up front (the batch would otherwise grow, and
    // copy itself, several times for a row of ten cells): a cell key is
    // the row's prefix and the cell's suffix; an op adds its kind, tree id
    // and two length prefixes (16 bytes at most for these sizes).
    let mut key = cell_key::row_prefix(row);
    let row_bytes = key.len();
    let mut suffix_bytes_max = 0;
    let mut batch_bytes = 0;
    for m in mutations {
        if let Mutation::SetCell {
            family,
            qualifier,
            value,
            ..
        } = m
        {
            let suffix = cell_key::cell_suffix_bytes(family, qualifier);
            suffix_bytes_max = suffix_bytes_max.max(suffix);
            batch_bytes += 16 + row_bytes + suffix + value.len();
        }
    }
    key.reserve(suffix_bytes_max);
    batch.reserve(batch_bytes);
    for m in mutations {
        let Mutation::SetCell {
            family,
            qualifier,
            timestamp_micros,
            value,
        } = m
        else {
            return invalid(format!("{} where only SetCell was expected", m.name()));
        };
        let ts = if *timestamp_micros == SERVER_TIMESTAMP {
            now_micros
        } else {
            *timestamp_micros
        };
        key.truncate(row_bytes);
        cell_key::push_cell(&mut key, family, qualifier, ts).map_err(key_err)?;
        batch.put(tree, &key, value);
    }
    Ok(())
}

/// The exclusive end of the keys starting with a cell-key prefix. Every
/// prefix ends in `00` (family) or `00 01` (row, column), so bumping the
/// last byte never overflows.
pub(crate) fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut e = prefix.to_vec();
    let last = e.last_mut().expect("cell-key prefixes are not empty");
    debug_assert!(*last < 0xFF);
    *last += 1;
    e
}

/// The timestamp of an encoded cell key (its last 8 bytes).
pub(crate) fn ts_of(key: &[u8]) -> i64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&key[key.len() - 8..]);
    (u64::MAX - u64::from_be_bytes(a)) as i64
}

fn key_err(e: cell_key::KeyError) -> crate::error::TableError {
    crate::error::TableError::InvalidArgument(e.to_string())
}
