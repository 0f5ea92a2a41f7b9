//! Read-modify-writes in flight: ReadModifyWriteRow results queued on the
//! engine and not yet committed, per row.
//!
//! A ReadModifyWriteRow made without blocking (`rows_async.rs`) releases
//! its row's lock once its batch is queued instead of once it is synced,
//! and leaves the cells it wrote here. The next read-modify-write of the
//! row reads the committed row and lays these cells over it, so a hot
//! row's read-modify-writes join the same or the next commit group instead
//! of each waiting for the previous one's fsync. None is acknowledged
//! before its own record is durable: answers still wait for the commit.
//!
//! The rules that keep this linearizable (docs/server.md, "Writes"):
//! - While a row has read-modify-writes in flight, the only writes of the
//!   row are more read-modify-writes and blind writes that hold the row's
//!   lock until they commit. An operation that reads the row under its
//!   lock otherwise (a delete, CheckAndMutateRow, a blocking
//!   read-modify-write) first waits until none is in flight
//!   (`wait_idle`), and while one waits no new read-modify-write joins the
//!   row (it takes the blocking path and waits in turn).
//! - A read-modify-write copies this overlay before it reads the committed
//!   row, both under the row's lock. An entry leaves the overlay only after
//!   the engine published its commit, so each write it lacks is in the
//!   committed read, and a cell in both is the same cell. Per column the
//!   overlay's cell is the newest in flight; against the committed row the
//!   higher timestamp wins, the overlay on a tie (it was written later).
//! - A read-modify-write queues its batch before it releases the row's
//!   lock, so the row's writes are queued, and committed, in the order they
//!   read the row.
//! - The engine commits batches in queue order and answers them in that
//!   order. If one fails, every later read-modify-write of the row that
//!   was in flight with it answers with an error too, even if its own
//!   write committed: it read a result that may not exist.

use parking_lot::{Condvar, Mutex};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use strata_engine::TreeId;

/// The newest cell per (family, qualifier): (timestamp µs, value).
pub(crate) type NewestCells = BTreeMap<(String, Vec<u8>), (i64, Vec<u8>)>;

/// Rows that may have read-modify-writes in flight at once. A row beyond
/// it is not refused: its read-modify-write takes the blocking path.
const ROWS_MAX: usize = 4096;

/// What a read-modify-write about to read a row finds.
pub(crate) enum Overlay {
    /// Nothing in flight on the row: read it as committed.
    Idle,
    /// Cells in flight, to lay over the committed row.
    Cells(NewestCells),
    /// The row may not take another read-modify-write in flight now (one
    /// failed, or a blocking operation waits for the row).
    Refused,
}

struct InFlight {
    tree: TreeId,
    row: Vec<u8>,
    /// Read-modify-writes queued and not yet answered.
    count: usize,
    cells: NewestCells,
    /// One of them failed: the rest must fail too.
    failed: bool,
}

#[derive(Default)]
struct State {
    rows: Vec<InFlight>,
    /// Rows a blocking operation waits to have idle (one entry per waiter).
    waiting: Vec<(TreeId, Vec<u8>)>,
}

impl State {
    fn publish(&self, busy: &AtomicUsize) {
        busy.store(self.rows.len() + self.waiting.len(), Ordering::Release);
    }
}

pub(crate) struct PendingRmws {
    state: Mutex<State>,
    idle: Condvar,
    /// `state.rows.len() + state.waiting.len()`, read without the lock:
    /// most writes meet no row in flight and no waiter.
    busy: AtomicUsize,
}

/// A read-modify-write's place in flight, for `finish`.
pub(crate) struct Ticket {
    tree: TreeId,
    row: Vec<u8>,
}

impl PendingRmws {
    pub(crate) fn new() -> PendingRmws {
        PendingRmws {
            state: Mutex::new(State::default()),
            idle: Condvar::new(),
            busy: AtomicUsize::new(0),
        }
    }

    /// Whether any of `rows` of `tree` has a read-modify-write in flight.
    pub(crate) fn any_in_flight(&self, tree: TreeId, rows: &[&[u8]]) -> bool {
        if self.busy.load(Ordering::Acquire) == 0 {
            return false;
        }
        let s = self.state.lock();
        rows.iter().any(|r| find(&s.rows, tree, r).is_some())
    }

    /// For a read-modify-write holding `row`'s lock, about to read it.
    pub(crate) fn overlay(&self, tree: TreeId, row: &[u8]) -> Overlay {
        if self.busy.load(Ordering::Acquire) == 0 {
            return Overlay::Idle;
        }
        let s = self.state.lock();
        if s.waiting.iter().any(|(t, r)| *t == tree && r == row) {
            return Overlay::Refused;
        }
        match find(&s.rows, tree, row) {
            None => Overlay::Idle,
            Some(i) if s.rows[i].failed => Overlay::Refused,
            Some(i) => Overlay::Cells(s.rows[i].cells.clone()),
        }
    }

    /// Records a read-modify-write of `row` whose batch is about to be
    /// queued, with the cells it writes; None (nothing recorded) when
    /// `ROWS_MAX` rows are in flight. Caller holds the row's lock.
    pub(crate) fn begin(&self, tree: TreeId, row: &[u8], written: &NewestCells) -> Option<Ticket> {
        let mut s = self.state.lock();
        let i = match find(&s.rows, tree, row) {
            Some(i) => i,
            None if s.rows.len() >= ROWS_MAX => return None,
            None => {
                s.rows.push(InFlight {
                    tree,
                    row: row.to_vec(),
                    count: 0,
                    cells: NewestCells::new(),
                    failed: false,
                });
                s.publish(&self.busy);
                s.rows.len() - 1
            }
        };
        let e = &mut s.rows[i];
        debug_assert!(!e.failed, "a failed row takes no more read-modify-writes");
        e.count += 1;
        for (column, cell) in written {
            e.cells.insert(column.clone(), cell.clone());
        }
        Some(Ticket {
            tree,
            row: row.to_vec(),
        })
    }

    /// A read-modify-write's batch was answered (`committed`: it
    /// succeeded). Returns false if one in flight before it on the row
    /// failed, so its answer must be an error too.
    pub(crate) fn finish(&self, ticket: Ticket, committed: bool) -> bool {
        let mut s = self.state.lock();
        let Some(i) = find(&s.rows, ticket.tree, &ticket.row) else {
            debug_assert!(false, "a ticket's row is in flight until it finishes");
            return committed;
        };
        let e = &mut s.rows[i];
        debug_assert!(e.count > 0);
        let earlier_failed = e.failed;
        e.failed |= !committed;
        e.count -= 1;
        if e.count == 0 {
            s.rows.swap_remove(i);
            s.publish(&self.busy);
            self.idle.notify_all();
        }
        !earlier_failed
    }

    /// Blocks until none of `rows` of `tree` has a read-modify-write in
    /// flight. From the call until the returned mark is dropped no new one
    /// joins them (`overlay` refuses). Caller holds none of the rows'
    /// locks (the ones in flight need no lock to finish).
    pub(crate) fn wait_idle(&self, tree: TreeId, rows: &[&[u8]]) -> WaitMark<'_> {
        let mut s = self.state.lock();
        for r in rows {
            s.waiting.push((tree, r.to_vec()));
        }
        s.publish(&self.busy);
        while rows.iter().any(|r| find(&s.rows, tree, r).is_some()) {
            self.idle.wait(&mut s);
        }
        WaitMark {
            pending: self,
            tree,
            rows: rows.iter().map(|r| r.to_vec()).collect(),
        }
    }
}

/// A blocking operation's claim on rows it waited to have idle: while it
/// lives, no read-modify-write of them goes in flight.
pub(crate) struct WaitMark<'a> {
    pending: &'a PendingRmws,
    tree: TreeId,
    rows: Vec<Vec<u8>>,
}

impl Drop for WaitMark<'_> {
    fn drop(&mut self) {
        let mut s = self.pending.state.lock();
        // Other waiters' marks may be for the same rows: remove one each.
        for r in &self.rows {
            if let Some(j) = s
                .waiting
                .iter()
                .position(|(t, w)| *t == self.tree && w == r)
            {
                s.waiting.swap_remove(j);
            }
        }
        s.publish(&self.pending.busy);
    }
}

fn find(rows: &[InFlight], tree: TreeId, row: &[u8]) -> Option<usize> {
    rows.iter().position(|e| e.tree == tree && e.row == row)
}

/// Lays the cells in flight over a row's committed newest cells: per
/// column the higher timestamp wins, the overlay's cell on a tie.
pub(crate) fn lay_over(committed: &mut NewestCells, overlay: NewestCells) {
    for (column, (ts, value)) in overlay {
        match committed.get(&column) {
            Some((committed_ts, _)) if *committed_ts > ts => {}
            _ => {
                committed.insert(column, (ts, value));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cells(list: &[(&str, &[u8], i64, &[u8])]) -> NewestCells {
        list.iter()
            .map(|(f, q, ts, v)| ((f.to_string(), q.to_vec()), (*ts, v.to_vec())))
            .collect()
    }

    #[test]
    fn a_row_is_in_flight_until_its_last_rmw_finishes() {
        let p = PendingRmws::new();
        assert!(matches!(p.overlay(1, b"r"), Overlay::Idle));
        let a = p
            .begin(1, b"r", &cells(&[("f", b"q", 1000, b"a")]))
            .unwrap();
        let b = p
            .begin(1, b"r", &cells(&[("f", b"q", 2000, b"ab")]))
            .unwrap();
        assert!(p.any_in_flight(1, &[b"r"]));
        assert!(!p.any_in_flight(1, &[b"s"]));
        assert!(!p.any_in_flight(2, &[b"r"]), "rows are per tree");
        match p.overlay(1, b"r") {
            Overlay::Cells(c) => assert_eq!(c, cells(&[("f", b"q", 2000, b"ab")])),
            _ => panic!("expected the newest cell in flight"),
        }
        assert!(p.finish(a, true));
        assert!(p.any_in_flight(1, &[b"r"]));
        assert!(p.finish(b, true));
        assert!(!p.any_in_flight(1, &[b"r"]));
        assert!(matches!(p.overlay(1, b"r"), Overlay::Idle));
    }

    #[test]
    fn a_failure_fails_the_rmws_after_it_and_refuses_new_ones() {
        let p = PendingRmws::new();
        let a = p
            .begin(1, b"r", &cells(&[("f", b"q", 1000, b"a")]))
            .unwrap();
        let b = p
            .begin(1, b"r", &cells(&[("f", b"q", 1000, b"aa")]))
            .unwrap();
        assert!(p.finish(a, false), "the failed one reports its own error");
        assert!(matches!(p.overlay(1, b"r"), Overlay::Refused));
        assert!(!p.finish(b, true), "committed, but it read a failed result");
        assert!(matches!(p.overlay(1, b"r"), Overlay::Idle));
        let c = p.begin(1, b"r", &cells(&[])).unwrap();
        assert!(p.finish(c, true), "the row starts clean once idle");
    }

    #[test]
    fn a_waiter_holds_off_new_rmws_until_the_row_is_idle() {
        let p = std::sync::Arc::new(PendingRmws::new());
        let a = p.begin(1, b"r", &cells(&[])).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let waiter = {
            let p = p.clone();
            std::thread::spawn(move || {
                let mark = p.wait_idle(1, &[b"r", b"s"]);
                tx.send(()).unwrap();
                // Held: the rows stay closed to new read-modify-writes.
                assert!(matches!(p.overlay(1, b"r"), Overlay::Refused));
                drop(mark);
            })
        };
        while !matches!(p.overlay(1, b"r"), Overlay::Refused) {
            std::thread::yield_now();
        }
        assert!(matches!(p.overlay(1, b"t"), Overlay::Idle));
        assert!(
            rx.try_recv().is_err(),
            "the waiter waits while one is in flight"
        );
        assert!(p.finish(a, true));
        rx.recv().unwrap();
        waiter.join().unwrap();
        assert!(matches!(p.overlay(1, b"r"), Overlay::Idle));
        assert!(p.state.lock().waiting.is_empty());
    }

    #[test]
    fn the_higher_timestamp_wins_and_the_overlay_wins_ties() {
        let mut committed = cells(&[
            ("f", b"a", 5000, b"newer committed"),
            ("f", b"b", 1000, b"old"),
            ("f", b"c", 3000, b"tie committed"),
        ]);
        lay_over(
            &mut committed,
            cells(&[
                ("f", b"a", 4000, b"older in flight"),
                ("f", b"b", 2000, b"in flight"),
                ("f", b"c", 3000, b"tie in flight"),
                ("f", b"d", 1000, b"new column"),
            ]),
        );
        assert_eq!(
            committed,
            cells(&[
                ("f", b"a", 5000, b"newer committed"),
                ("f", b"b", 2000, b"in flight"),
                ("f", b"c", 3000, b"tie in flight"),
                ("f", b"d", 1000, b"new column"),
            ])
        );
    }
}
