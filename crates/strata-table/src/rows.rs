//! Row operations of a `Database`: mutations (one engine batch per
//! request, so each row's mutations are one log record), CheckAndMutateRow
//! and ReadModifyWriteRow under the row's lock, reads and row-key samples.

use crate::database::{Database, RmwRule, TableState};
use crate::error::{invalid, Result, TableError};
use crate::filter::Filter;
use crate::mutation::{self, validate_row_key, Mutation, Pending, RowWrite};
use crate::pending::{lay_over, NewestCells};
use crate::read::{ReadRequest, RowReader};
use crate::row::{Cell, KeySpan, Row, RowSet};
use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};
use strata_engine::WriteBatch;

/// Rules one ReadModifyWriteRow may carry (Bigtable's limit).
pub const RMW_RULES_MAX: usize = 100_000;
/// SampleRowKeys returns a key about every this many bytes of data.
pub const SAMPLE_STEP_BYTES: u64 = 64 << 20;

/// The server's time in microseconds, at millisecond granularity.
pub fn server_now_micros() -> i64 {
    let us = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64);
    us - us % 1000
}

impl Database {
    /// A copy of a table's schema and tree handle, for reads.
    fn state(&self, table: &str) -> Result<TableState> {
        Ok(self.table(table)?.state.read().clone())
    }

    /// Applies one row's mutations atomically.
    pub fn mutate_row(&self, table: &str, row: &[u8], mutations: &[Mutation]) -> Result<()> {
        let t = self.table(table)?;
        let st = t.state.read();
        mutation::validate(&st.schema, row, mutations)?;
        let _g = self.lock_rows(&st, &[row], !blind(mutations));
        let batch = row_batch(&st, row, mutations)?;
        self.engine.write(batch)?;
        Ok(())
    }

    /// Applies many rows' mutations: entries that fail validation get their
    /// own error and are not applied; the rest are written in one batch
    /// (each row atomically) and share its outcome.
    pub fn mutate_rows(
        &self,
        table: &str,
        entries: &[(Vec<u8>, Vec<Mutation>)],
    ) -> Result<Vec<Result<()>>> {
        check_request_size(entries)?;
        let t = self.table(table)?;
        let st = t.state.read();
        let mut results = validate_entries(&st, entries);
        let rows = good_rows(entries, &results);
        if rows.is_empty() {
            return Ok(results);
        }
        let reads = !entries.iter().all(|(_, m)| blind(m));
        let _g = self.lock_rows(&st, &rows, reads);
        let batch = build_rows_batch(&st, entries, &mut results);
        if !batch.is_empty() {
            let outcome = self.engine.write(batch);
            settle(&mut results, outcome);
        }
        Ok(results)
    }

    /// MutateRows without blocking, when no lock it needs is held and
    /// every block its deletes read is in memory (blind entries, SetCell
    /// and AddToCell, read nothing): as `try_mutate_row_async`, `done`
    /// gets the per-entry results once the batch is committed. Ok(false),
    /// with nothing changed, when the caller should use `mutate_rows`.
    pub fn try_mutate_rows_async(
        &self,
        table: &str,
        entries: &[(Vec<u8>, Vec<Mutation>)],
        done: impl FnOnce(Vec<Result<()>>) + Send + 'static,
    ) -> Result<bool> {
        check_request_size(entries)?;
        let all_blind = entries.iter().all(|(_, m)| blind(m));
        let t = self.table(table)?;
        let Some(st) = t.state.try_read_arc() else {
            return Ok(false);
        };
        let mut results = validate_entries(&st, entries);
        let rows = good_rows(entries, &results);
        let Some(row_guards) = self.locks.try_lock_owned(st.tree.name(), &rows) else {
            return Ok(false);
        };
        // Deletes read their rows: not while a read-modify-write of one is
        // in flight (`pending.rs`).
        if !all_blind && self.pending.any_in_flight(st.tree.id(), &rows) {
            return Ok(false);
        }
        let batch = if all_blind {
            build_rows_batch(&st, entries, &mut results)
        } else {
            let batch =
                strata_engine::sst::memory_only(crate::rows_async::INLINE_BLOCKS_MAX, || {
                    build_rows_batch(&st, entries, &mut results)
                });
            // A delete's read that would wait for storage: nothing is
            // written, and the blocking call does it all.
            if results
                .iter()
                .any(|r| r.as_ref().is_err_and(|e| e.is_would_block()))
            {
                return Ok(false);
            }
            batch
        };
        self.engine.write_async(batch, move |outcome| {
            drop(row_guards);
            drop(st);
            settle(&mut results, outcome);
            done(results)
        });
        Ok(true)
    }

    /// Locks `rows` (their stripes) for a blocking operation; one that
    /// `reads` them under the lock (not only blind writes) also waits
    /// until none has a read-modify-write in flight (`pending.rs`).
    fn lock_rows<'a>(
        &'a self,
        st: &TableState,
        rows: &[&[u8]],
        reads: bool,
    ) -> Vec<parking_lot::MutexGuard<'a, ()>> {
        let mut mark = None;
        loop {
            let guards = self.locks.lock(st.tree.name(), rows);
            if !reads || !self.pending.any_in_flight(st.tree.id(), rows) {
                drop(mark);
                return guards;
            }
            drop(guards);
            mark = Some(self.pending.wait_idle(st.tree.id(), rows));
        }
    }

    /// Reads one row (GC applied, then `filter`) as of now.
    fn read_row_locked(
        &self,
        st: &TableState,
        row: &[u8],
        filter: Option<Filter>,
    ) -> Result<Vec<Cell>> {
        let spans = RowSet {
            keys: vec![row.to_vec()],
            ranges: vec![],
        }
        .spans();
        self.first_row_cells(st, spans, filter)
    }

    /// The cells of the first row in `spans` (one row's spans), GC
    /// applied and then `filter`, as of now.
    fn first_row_cells(
        &self,
        st: &TableState,
        spans: Vec<KeySpan>,
        filter: Option<Filter>,
    ) -> Result<Vec<Cell>> {
        let req = ReadRequest {
            rows: RowSet::default(),
            filter,
            rows_limit: 1,
            reversed: false,
        };
        let mut reader = RowReader::over_spans(
            st.tree.clone(),
            st.schema.clone(),
            self.engine.snapshot(),
            req,
            spans,
            server_now_micros(),
        );
        Ok(reader.next().transpose()?.map_or(Vec::new(), |r| r.cells))
    }

    /// Reads the columns `rules` name in one row (GC applied) as of now:
    /// a seek per column, not the whole row.
    fn read_columns_locked(
        &self,
        st: &TableState,
        row: &[u8],
        rules: &[RmwRule],
    ) -> Result<Vec<Cell>> {
        let mut spans = Vec::with_capacity(rules.len());
        for r in rules {
            let (RmwRule::Append {
                family, qualifier, ..
            }
            | RmwRule::Increment {
                family, qualifier, ..
            }) = r;
            let start = crate::cell_key::column_prefix(row, family, qualifier)
                .map_err(|e| TableError::InvalidArgument(e.to_string()))?;
            let end = mutation::prefix_end(&start);
            spans.push(KeySpan {
                start,
                end: Some(end),
            });
        }
        spans.sort_unstable_by(|a, b| a.start.cmp(&b.start));
        spans.dedup_by(|a, b| a.start == b.start);
        self.first_row_cells(st, spans, None)
    }

    /// CheckAndMutateRow: applies `true_mutations` if the predicate (or,
    /// without one, the row itself) yields any cell, else
    /// `false_mutations`. Returns whether the predicate matched.
    pub fn check_and_mutate(
        &self,
        table: &str,
        row: &[u8],
        predicate: Option<Filter>,
        true_mutations: &[Mutation],
        false_mutations: &[Mutation],
    ) -> Result<bool> {
        validate_row_key(row)?;
        let t = self.table(table)?;
        let st = t.state.read();
        validate_check_and_mutate(&st, row, true_mutations, false_mutations)?;
        let _g = self.lock_rows(&st, &[row], true);
        let (batch, matched) =
            self.check_and_mutate_locked(&st, row, predicate, true_mutations, false_mutations)?;
        if !batch.is_empty() {
            self.engine.write(batch)?;
        }
        Ok(matched)
    }

    /// CheckAndMutateRow's read and its batch (empty when the chosen
    /// mutations are), under the row's lock; returns whether the predicate
    /// matched.
    pub(crate) fn check_and_mutate_locked(
        &self,
        st: &TableState,
        row: &[u8],
        predicate: Option<Filter>,
        true_mutations: &[Mutation],
        false_mutations: &[Mutation],
    ) -> Result<(WriteBatch, bool)> {
        let matched = !self.read_row_locked(st, row, predicate)?.is_empty();
        let muts = if matched {
            true_mutations
        } else {
            false_mutations
        };
        let batch = if muts.is_empty() {
            WriteBatch::new()
        } else {
            row_batch(st, row, muts)?
        };
        Ok((batch, matched))
    }

    /// ReadModifyWriteRow: applies the rules in order (later rules see
    /// earlier ones) to the newest cell of each column, writes the results
    /// at max(now, the old cell's timestamp), and returns the new cells.
    pub fn read_modify_write(&self, table: &str, row: &[u8], rules: &[RmwRule]) -> Result<Row> {
        validate_row_key(row)?;
        let t = self.table(table)?;
        let st = t.state.read();
        validate_read_modify_write(&st, row, rules)?;
        let _g = self.lock_rows(&st, &[row], true);
        let (batch, new_row, _) = self.read_modify_write_locked(&st, row, rules, None)?;
        self.engine.write(batch)?;
        Ok(new_row)
    }

    /// ReadModifyWriteRow's read, new cells and batch, under the row's
    /// lock; `in_flight`: the cells of the row's read-modify-writes not yet
    /// committed, laid over the committed row (`pending.rs`). Also returns
    /// the cells written, per column.
    pub(crate) fn read_modify_write_locked(
        &self,
        st: &TableState,
        row: &[u8],
        rules: &[RmwRule],
        in_flight: Option<NewestCells>,
    ) -> Result<(WriteBatch, Row, NewestCells)> {
        let current = self.read_columns_locked(st, row, rules)?;
        // Newest cell per column, updated as rules apply.
        let mut newest = NewestCells::new();
        for c in current {
            newest
                .entry((c.family, c.qualifier))
                .or_insert((c.timestamp_micros, c.value));
        }
        if let Some(cells) = in_flight {
            lay_over(&mut newest, cells);
        }
        let now = server_now_micros();
        let mut touched = NewestCells::new();
        for r in rules {
            let (family, qualifier) = match r {
                RmwRule::Append {
                    family, qualifier, ..
                }
                | RmwRule::Increment {
                    family, qualifier, ..
                } => (family.clone(), qualifier.clone()),
            };
            let old = newest.get(&(family.clone(), qualifier.clone()));
            let ts = old.map_or(now, |(ts, _)| now.max(*ts));
            let value = match r {
                RmwRule::Append { value, .. } => {
                    let mut v = old.map_or(Vec::new(), |(_, v)| v.clone());
                    v.extend_from_slice(value);
                    if v.len() > mutation::CELL_VALUE_BYTES_MAX {
                        return invalid(format!(
                            "appended value would be {} bytes, above the limit of {} bytes",
                            v.len(),
                            mutation::CELL_VALUE_BYTES_MAX
                        ));
                    }
                    v
                }
                RmwRule::Increment { amount, .. } => {
                    let base = match old {
                        None => 0,
                        Some((_, v)) => match <[u8; 8]>::try_from(v.as_slice()) {
                            Ok(b) => i64::from_be_bytes(b),
                            Err(_) => {
                                return invalid(format!(
                                    "cannot increment {family}:{}: its value is {} bytes, not an 8-byte big-endian int64",
                                    String::from_utf8_lossy(&qualifier),
                                    v.len()
                                ))
                            }
                        },
                    };
                    base.wrapping_add(*amount).to_be_bytes().to_vec()
                }
            };
            newest.insert((family.clone(), qualifier.clone()), (ts, value.clone()));
            touched.insert((family, qualifier), (ts, value));
        }
        let mut w = RowWrite::new(&st.tree, &st.schema, row);
        let mut cells = Vec::with_capacity(touched.len());
        for ((family, qualifier), (ts, value)) in &touched {
            let key = w.key(family, qualifier, *ts)?;
            w.pending.insert(key, Pending::Put(value.clone()));
            cells.push(Cell {
                family: family.clone(),
                qualifier: qualifier.clone(),
                timestamp_micros: *ts,
                value: value.clone(),
                labels: vec![],
            });
        }
        let mut batch = WriteBatch::new();
        w.emit(&mut batch);
        let new_row = Row {
            key: row.to_vec(),
            cells,
        };
        Ok((batch, new_row, touched))
    }

    /// Starts a read; the reader sees one consistent snapshot.
    pub fn read_rows(&self, table: &str, req: ReadRequest) -> Result<RowReader> {
        let st = self.state(table)?;
        Ok(RowReader::new(
            st.tree,
            st.schema,
            self.engine.snapshot(),
            req,
            server_now_micros(),
        ))
    }

    /// Row keys splitting the table into pieces of about
    /// `SAMPLE_STEP_BYTES`, each with the approximate bytes before it, and
    /// last the empty key with the table's total size.
    pub fn sample_row_keys(&self, table: &str) -> Result<Vec<(Vec<u8>, i64)>> {
        let st = self.state(table)?;
        let (samples, total) = st.tree.sample_keys(SAMPLE_STEP_BYTES);
        let mut out: Vec<(Vec<u8>, i64)> = Vec::with_capacity(samples.len() + 1);
        for (k, off) in samples {
            let row = crate::cell_key::row_of_prefix(&k);
            if row.is_empty() || out.last().is_some_and(|(l, _)| *l >= row) {
                continue;
            }
            out.push((row, off as i64));
        }
        out.push((Vec::new(), total as i64));
        Ok(out)
    }
}

/// Checks a CheckAndMutateRow's row key and mutations.
pub(crate) fn validate_check_and_mutate(
    st: &TableState,
    row: &[u8],
    true_mutations: &[Mutation],
    false_mutations: &[Mutation],
) -> Result<()> {
    validate_row_key(row)?;
    for muts in [true_mutations, false_mutations] {
        if !muts.is_empty() {
            mutation::validate(&st.schema, row, muts)?;
        }
    }
    Ok(())
}

/// Checks a ReadModifyWriteRow's row key and rules.
pub(crate) fn validate_read_modify_write(
    st: &TableState,
    row: &[u8],
    rules: &[RmwRule],
) -> Result<()> {
    validate_row_key(row)?;
    if rules.is_empty() {
        return invalid("no rules provided");
    }
    if rules.len() > RMW_RULES_MAX {
        return invalid(format!(
            "{} rules, above the limit of {RMW_RULES_MAX} per request",
            rules.len()
        ));
    }
    for r in rules {
        let (RmwRule::Append { family, .. } | RmwRule::Increment { family, .. }) = r;
        match st.schema.families.get(family) {
            None => return Err(crate::error::family_not_found(family)),
            Some(f) if f.value_type.is_aggregate() => {
                return invalid(format!(
                    "family {family:?} holds aggregates: use AddToCell, not ReadModifyWriteRow"
                ))
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// One row's validated mutations as an engine batch (empty if they change
/// nothing); the caller holds the row's lock until the batch is written.
pub(crate) fn row_batch(st: &TableState, row: &[u8], mutations: &[Mutation]) -> Result<WriteBatch> {
    if mutation::set_cells_only(mutations) {
        let mut batch = WriteBatch::new();
        let id = st.tree.id();
        mutation::emit_set_cells(id, row, mutations, server_now_micros(), &mut batch)?;
        return Ok(batch);
    }
    let mut w = RowWrite::new(&st.tree, &st.schema, row);
    w.apply(mutations, server_now_micros())?;
    let mut batch = WriteBatch::new();
    w.emit(&mut batch);
    Ok(batch)
}

/// Whether mutations write without reading the row first.
pub(crate) fn blind(mutations: &[Mutation]) -> bool {
    mutations.iter().all(|m| {
        matches!(
            m,
            Mutation::SetCell { .. } | Mutation::AddToCell { .. } | Mutation::MergeToCell { .. }
        )
    })
}

fn check_request_size(entries: &[(Vec<u8>, Vec<Mutation>)]) -> Result<()> {
    let total: usize = entries.iter().map(|(_, m)| m.len()).sum();
    if total > mutation::MUTATIONS_PER_REQUEST_MAX {
        return invalid(format!(
            "{total} mutations, above the limit of {} per request",
            mutation::MUTATIONS_PER_REQUEST_MAX
        ));
    }
    Ok(())
}

fn validate_entries(st: &TableState, entries: &[(Vec<u8>, Vec<Mutation>)]) -> Vec<Result<()>> {
    entries
        .iter()
        .map(|(row, m)| mutation::validate(&st.schema, row, m))
        .collect()
}

fn good_rows<'a>(entries: &'a [(Vec<u8>, Vec<Mutation>)], results: &[Result<()>]) -> Vec<&'a [u8]> {
    entries
        .iter()
        .zip(results)
        .filter(|(_, r)| r.is_ok())
        .map(|((row, _), _)| row.as_slice())
        .collect()
}

/// One batch for every valid entry (each row's mutations in order); an
/// entry that fails to apply gets its error.
fn build_rows_batch(
    st: &TableState,
    entries: &[(Vec<u8>, Vec<Mutation>)],
    results: &mut [Result<()>],
) -> WriteBatch {
    let now = server_now_micros();
    let mut writes: BTreeMap<&[u8], RowWrite> = BTreeMap::new();
    for (i, (row, muts)) in entries.iter().enumerate() {
        if results[i].is_err() {
            continue;
        }
        let w = writes
            .entry(row.as_slice())
            .or_insert_with(|| RowWrite::new(&st.tree, &st.schema, row));
        // Entries of one row share its RowWrite: an entry that fails part
        // way (a read error in a delete) must leave none of its mutations.
        let before = w.pending.clone();
        if let Err(e) = w.apply(muts, now) {
            w.pending = before;
            results[i] = Err(e);
        }
    }
    let mut batch = WriteBatch::new();
    for w in writes.into_values() {
        w.emit(&mut batch);
    }
    batch
}

/// Every still-good entry shares the batch's outcome.
fn settle(results: &mut [Result<()>], outcome: strata_engine::Result<strata_engine::SeqNo>) {
    if let Err(e) = outcome {
        let msg = e.to_string();
        for r in results.iter_mut().filter(|r| r.is_ok()) {
            *r = Err(TableError::Engine(strata_engine::Error::Closed(
                msg.clone(),
            )));
        }
    }
}
