//! The non-blocking row operations (`rows_async.rs`): they run in place
//! when the row is in memory, give up without changing anything when its
//! read would need storage or its lock is held, and answer as the
//! blocking calls do.

use std::sync::mpsc;
use std::time::Duration;

mod common;
use common::{append, cells, open, T};

use strata_table::{Database, Filter, FilterSpec, Mutation, RmwRule, TableError};

const ANSWER_WAIT: Duration = Duration::from_secs(10);

fn set(q: &str, ts: i64, v: &str) -> Mutation {
    Mutation::SetCell {
        family: "cf".into(),
        qualifier: q.as_bytes().to_vec(),
        timestamp_micros: ts,
        value: v.as_bytes().to_vec(),
    }
}

/// Calls `f` with a callback; returns whether it ran in place and, if so,
/// the answer the callback got.
fn run<A: Send + 'static>(
    f: impl FnOnce(Box<dyn FnOnce(A) + Send>) -> strata_table::Result<bool>,
) -> Option<A> {
    let (tx, rx) = mpsc::channel();
    let queued = f(Box::new(move |r| tx.send(r).unwrap())).unwrap();
    if !queued {
        assert!(rx.try_recv().is_err(), "not queued, yet answered");
        return None;
    }
    Some(
        rx.recv_timeout(ANSWER_WAIT)
            .expect("queued writes are answered"),
    )
}

#[test]
fn in_memory_rows_are_written_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    db.mutate_row(T, b"r", &[set("a", 1000, "x"), set("b", 1000, "y")])
        .unwrap();

    // ReadModifyWriteRow: the new cell comes back, and a second one reads
    // the first's result.
    for expected in ["x1", "x12"] {
        let suffix = &expected[expected.len() - 1..];
        let row = run(|done| db.try_read_modify_write_async(T, b"r", &[append("a", suffix)], done))
            .expect("the row is in the memtable")
            .unwrap();
        assert_eq!(row.cells.len(), 1);
        assert_eq!(row.cells[0].value, expected.as_bytes());
    }

    // CheckAndMutateRow, both ways.
    let qualifier =
        |q: &[u8]| Some(Filter::compile(&FilterSpec::ColumnQualifierRegex(q.to_vec())).unwrap());
    let (has_b, has_z) = (qualifier(b"b"), qualifier(b"z"));
    let matched = run(|done| {
        db.try_check_and_mutate_async(T, b"r", has_b, &[set("t", 1000, "yes")], &[], done)
    });
    assert!(matched.unwrap().unwrap(), "the row has column b");
    let matched = run(|done| {
        db.try_check_and_mutate_async(T, b"r", has_z, &[], &[set("f", 1000, "no")], done)
    });
    assert!(!matched.unwrap().unwrap(), "the row has no column z");

    // A delete (it reads the row's cells to mark them).
    let deleted = run(|done| {
        let delete_b = [Mutation::DeleteFromColumn {
            family: "cf".into(),
            qualifier: b"b".to_vec(),
            start_micros: 0,
            end_micros: 0,
        }];
        db.try_mutate_row_async(T, b"r", &delete_b, done)
    });
    deleted.unwrap().unwrap();

    // Two appends in one millisecond write one cell: count columns.
    let got = cells(&db, b"r");
    assert_eq!(got[0], (b"a".to_vec(), b"x12".to_vec()), "newest a first");
    let mut columns: Vec<&[u8]> = got.iter().map(|(q, _)| q.as_slice()).collect();
    columns.dedup();
    assert_eq!(
        columns,
        [&b"a"[..], b"f", b"t"],
        "b deleted, f and t written"
    );
}

#[test]
fn a_read_that_needs_storage_gives_up_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    db.mutate_row(T, b"r", &[set("a", 1000, "x")]).unwrap();
    // The row is now only in a table, none of whose blocks is cached.
    db.engine().flush_all().unwrap();
    let before = db.engine().stats().user_bytes_written;

    assert!(
        run(|done| db.try_read_modify_write_async(T, b"r", &[append("a", "1")], done)).is_none()
    );
    let p = Some(Filter::PassAll);
    assert!(run(|done| db.try_check_and_mutate_async(
        T,
        b"r",
        p,
        &[set("b", 1000, "v")],
        &[],
        done
    ))
    .is_none());
    assert!(
        run(|done| db.try_mutate_row_async(T, b"r", &[Mutation::DeleteFromRow], done)).is_none()
    );
    assert_eq!(
        db.engine().stats().user_bytes_written,
        before,
        "nothing written"
    );

    // The blocking call reads the block into the cache; the next runs in place.
    let row = db.read_modify_write(T, b"r", &[append("a", "1")]).unwrap();
    assert_eq!(row.cells[0].value, b"x1");
    let row = run(|done| db.try_read_modify_write_async(T, b"r", &[append("a", "2")], done))
        .expect("the block is cached now")
        .unwrap();
    assert_eq!(row.cells[0].value, b"x12");
}

#[test]
fn bad_requests_fail_at_once_and_blind_writes_need_no_read() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    let missing_family = [RmwRule::Increment {
        family: "nope".into(),
        qualifier: b"q".to_vec(),
        amount: 1,
    }];
    let (tx, rx) = mpsc::channel::<()>();
    let tx2 = tx.clone();
    let e = db
        .try_read_modify_write_async(T, b"r", &missing_family, move |_| {
            tx.send(()).unwrap();
        })
        .unwrap_err();
    assert!(matches!(e, TableError::NotFound(_)), "{e:?}");
    let e = db
        .try_check_and_mutate_async(T, b"", None, &[set("a", 1000, "v")], &[], move |_| {
            tx2.send(()).unwrap();
        })
        .unwrap_err();
    assert!(matches!(e, TableError::InvalidArgument(_)), "{e:?}");
    assert!(
        rx.try_recv().is_err(),
        "a refused request's callback is not called"
    );

    // A SetCell on a flushed row reads nothing: it runs in place even cold.
    db.mutate_row(T, b"r", &[set("a", 1000, "x")]).unwrap();
    db.engine().flush_all().unwrap();
    run(|done| db.try_mutate_row_async(T, b"r", &[set("a", 2000, "y")], done))
        .expect("a blind write needs no read")
        .unwrap();
    assert_eq!(cells(&db, b"r").len(), 2);
}

/// `try_mutate_rows_async` answers with one result per entry.
fn run_rows(
    db: &Database,
    entries: &[(Vec<u8>, Vec<Mutation>)],
) -> Option<Vec<strata_table::Result<()>>> {
    run(|done| db.try_mutate_rows_async(T, entries, done))
}

#[test]
fn mutate_rows_with_deletes_runs_in_place_when_the_rows_are_in_memory() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    db.mutate_row(T, b"cold", &[set("a", 1000, "x")]).unwrap();
    db.engine().flush_all().unwrap();
    db.mutate_row(T, b"warm", &[set("a", 1000, "x"), set("b", 1000, "y")])
        .unwrap();
    let delete_a = Mutation::DeleteFromColumn {
        family: "cf".into(),
        qualifier: b"a".to_vec(),
        start_micros: 0,
        end_micros: 0,
    };

    // The warm row is in the memtable: its delete reads no block.
    let entries = vec![
        (b"warm".to_vec(), vec![delete_a.clone()]),
        (b"new".to_vec(), vec![set("c", 1000, "z")]),
    ];
    let results = run_rows(&db, &entries).expect("every row is in memory");
    assert!(results.iter().all(|r| r.is_ok()), "{results:?}");
    assert_eq!(cells(&db, b"warm"), [(b"b".to_vec(), b"y".to_vec())]);
    assert_eq!(cells(&db, b"new").len(), 1);

    // The cold row's cells are in a table none of whose blocks is
    // cached: the whole request gives up, its other entries unwritten.
    let before = db.engine().stats().user_bytes_written;
    let entries = vec![
        (b"other".to_vec(), vec![set("c", 1000, "z")]),
        (b"cold".to_vec(), vec![delete_a.clone()]),
    ];
    assert!(run_rows(&db, &entries).is_none());
    assert_eq!(db.engine().stats().user_bytes_written, before);
    assert!(cells(&db, b"other").is_empty(), "nothing written");

    // The blocking call does it; the cold row's block is cached after.
    let results = db.mutate_rows(T, &entries).unwrap();
    assert!(results.iter().all(|r| r.is_ok()), "{results:?}");
    assert!(cells(&db, b"cold").is_empty());
    assert_eq!(cells(&db, b"other").len(), 1);
}
