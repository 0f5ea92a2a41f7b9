//! Row operations that do not block their caller, when they need not:
//! MutateRow, CheckAndMutateRow and ReadModifyWriteRow run on the caller's
//! thread (a server's async worker) if the table's and the row's locks are
//! free and every block the row's read needs is in memory (a memory-only
//! read, `strata_engine::sst::memory_only`); their batch is then queued on
//! the engine (`Engine::write_async`) and `done` gets the outcome once it
//! is committed, durably as in the blocking calls. A mutation's or a
//! CheckAndMutateRow's row lock is held until then; a ReadModifyWriteRow
//! releases it once its batch is queued and leaves its cells in flight
//! (`pending.rs`), where the row's next read-modify-write reads them. When
//! anything would wait they return Ok(false) having changed nothing, and
//! the caller makes the blocking call instead.

use strata_engine::WriteBatch;

use crate::database::{Database, RmwRule, TableState};
use crate::error::{Result, TableError};
use crate::filter::Filter;
use crate::mutation::{self, validate_row_key, Mutation};
use crate::pending::Overlay;
use crate::row::Row;
use crate::rows::{blind, row_batch, validate_check_and_mutate, validate_read_modify_write};

/// Data blocks a non-blocking row operation may read from the block cache
/// before it gives up and the blocking call is made instead.
pub const INLINE_BLOCKS_MAX: usize = 64;

impl Database {
    /// Queues one row's mutations without blocking, if that is possible
    /// now (see the module doc). Returns Ok(true) when queued — `done` then
    /// gets the outcome once the batch is committed — and Ok(false),
    /// without calling `done`, when the caller should use `mutate_row`
    /// instead. Invalid mutations are an error at once.
    pub fn try_mutate_row_async(
        &self,
        table: &str,
        row: &[u8],
        mutations: &[Mutation],
        done: impl FnOnce(Result<()>) + Send + 'static,
    ) -> Result<bool> {
        self.try_row_async(
            table,
            row,
            !blind(mutations),
            |st| mutation::validate(&st.schema, row, mutations),
            |_, st| {
                // Blind writes read nothing; deletes read the row's cells.
                let batch = if blind(mutations) {
                    row_batch(st, row, mutations)
                } else {
                    strata_engine::sst::memory_only(INLINE_BLOCKS_MAX, || {
                        row_batch(st, row, mutations)
                    })
                }?;
                Ok((batch, ()))
            },
            done,
        )
    }

    /// CheckAndMutateRow without blocking, if possible now: as
    /// `try_mutate_row_async`, `done` gets whether the predicate matched.
    pub fn try_check_and_mutate_async(
        &self,
        table: &str,
        row: &[u8],
        predicate: Option<Filter>,
        true_mutations: &[Mutation],
        false_mutations: &[Mutation],
        done: impl FnOnce(Result<bool>) + Send + 'static,
    ) -> Result<bool> {
        validate_row_key(row)?;
        self.try_row_async(
            table,
            row,
            true,
            |st| validate_check_and_mutate(st, row, true_mutations, false_mutations),
            |db, st| {
                strata_engine::sst::memory_only(INLINE_BLOCKS_MAX, || {
                    db.check_and_mutate_locked(st, row, predicate, true_mutations, false_mutations)
                })
            },
            done,
        )
    }

    /// ReadModifyWriteRow without blocking, if possible now: as
    /// `try_mutate_row_async`, `done` gets the new cells. The row's lock is
    /// released once the batch is queued: the row's next read-modify-write
    /// reads this one's cells from `pending` until it is committed.
    pub fn try_read_modify_write_async(
        &self,
        table: &str,
        row: &[u8],
        rules: &[RmwRule],
        done: impl FnOnce(Result<Row>) + Send + 'static,
    ) -> Result<bool> {
        validate_row_key(row)?;
        let Some((st, row_guards)) =
            self.try_enter_row(table, row, |st| validate_read_modify_write(st, row, rules))?
        else {
            return Ok(false);
        };
        let tree = st.tree.id();
        // Copied before the committed row is read (see pending.rs).
        let in_flight = match self.pending.overlay(tree, row) {
            Overlay::Refused => return Ok(false),
            Overlay::Idle => None,
            Overlay::Cells(cells) => Some(cells),
        };
        let prepared = strata_engine::sst::memory_only(INLINE_BLOCKS_MAX, || {
            self.read_modify_write_locked(&st, row, rules, in_flight)
        });
        let (batch, new_row, written) = match prepared {
            Ok(prepared) => prepared,
            Err(e) if e.is_would_block() => return Ok(false),
            Err(e) => return Err(e),
        };
        let Some(ticket) = self.pending.begin(tree, row, &written) else {
            return Ok(false); // too many rows in flight
        };
        let pending = self.pending.clone();
        self.engine.write_async(batch, move |r| {
            let chain_ok = pending.finish(ticket, r.is_ok());
            drop(st);
            done(match r {
                Err(e) => Err(TableError::from(e)),
                Ok(_) if !chain_ok => Err(TableError::Engine(strata_engine::Error::Unavailable(
                    "a ReadModifyWriteRow of this row queued before this one failed, and this one \
                     built on its result: the row may hold this one's cells"
                        .into(),
                ))),
                Ok(_) => Ok(new_row),
            });
        });
        // Released only now that the batch is queued: the row's next
        // read-modify-write, which reads this one's cells, must be queued
        // (and so committed) after it.
        drop(row_guards);
        Ok(true)
    }

    /// The frame of the non-blocking row operations: takes the table's
    /// state and the row's lock if both are free, `validate`s, `prepare`s
    /// the batch and the answer under the lock (`reads`: it reads the row
    /// there), and queues the batch,
    /// answering `done` once it is committed (at once for an empty batch).
    /// A read that would wait for storage gives up (Ok(false)).
    fn try_row_async<T: Send + 'static>(
        &self,
        table: &str,
        row: &[u8],
        reads: bool,
        validate: impl FnOnce(&TableState) -> Result<()>,
        prepare: impl FnOnce(&Database, &TableState) -> Result<(WriteBatch, T)>,
        done: impl FnOnce(Result<T>) + Send + 'static,
    ) -> Result<bool> {
        let Some((st, row_guards)) = self.try_enter_row(table, row, validate)? else {
            return Ok(false);
        };
        // An operation that reads the row waits for its read-modify-writes
        // in flight, on the blocking path (`pending.rs`).
        if reads && self.pending.any_in_flight(st.tree.id(), &[row]) {
            return Ok(false);
        }
        let (batch, answer) = match prepare(self, &st) {
            Ok(prepared) => prepared,
            Err(e) if e.is_would_block() => return Ok(false),
            Err(e) => return Err(e),
        };
        if batch.is_empty() {
            drop(row_guards);
            drop(st);
            done(Ok(answer));
            return Ok(true);
        }
        self.engine.write_async(batch, move |r| {
            drop(row_guards);
            drop(st);
            done(r.map(|_| answer).map_err(TableError::from));
        });
        Ok(true)
    }

    /// The table's state and the row's lock, if both are free now
    /// (Ok(None) if either is held), with `validate` run on the state
    /// before the lock is taken.
    fn try_enter_row(
        &self,
        table: &str,
        row: &[u8],
        validate: impl FnOnce(&TableState) -> Result<()>,
    ) -> Result<Option<(StateGuard, RowGuards)>> {
        let t = self.table(table)?;
        let Some(st) = t.state.try_read_arc() else {
            return Ok(None);
        };
        validate(&st)?;
        Ok(self
            .locks
            .try_lock_owned(st.tree.name(), &[row])
            .map(|guards| (st, guards)))
    }
}

/// A table's state, held (shared) until a queued batch commits.
type StateGuard = parking_lot::ArcRwLockReadGuard<parking_lot::RawRwLock, TableState>;
/// Row locks that travel with a queued batch.
type RowGuards = Vec<parking_lot::ArcMutexGuard<parking_lot::RawMutex, ()>>;
