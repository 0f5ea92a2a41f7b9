//! Read-modify-writes in flight (`pending.rs`): a row's next
//! ReadModifyWriteRow reads the previous one's result before it is
//! committed, every answer still waits for its own commit, and whatever
//! else reads the row under its lock waits until none is in flight.

use std::collections::BTreeMap;
use std::sync::mpsc;
use std::time::Duration;

mod common;
use common::{append, cells, open, T};

use strata_table::{Database, DatabaseOptions, Mutation, RmwRule, Row};

const ANSWER_WAIT: Duration = Duration::from_secs(20);

fn increment(q: &str) -> RmwRule {
    RmwRule::Increment {
        family: "cf".into(),
        qualifier: q.as_bytes().to_vec(),
        amount: 1,
    }
}

/// The newest value of each column of `row`.
fn newest(db: &Database, row: &[u8]) -> BTreeMap<Vec<u8>, Vec<u8>> {
    let mut out = BTreeMap::new();
    for (qualifier, value) in cells(db, row) {
        out.entry(qualifier).or_insert(value);
    }
    out
}

fn counter(row: &Row) -> i64 {
    assert_eq!(row.cells.len(), 1);
    i64::from_be_bytes(row.cells[0].value.as_slice().try_into().unwrap())
}

/// Queues `n` ReadModifyWriteRows of `row` back to back without waiting
/// for any answer; every one must run in place. Returns their answers'
/// receiver, in the order queued.
fn queue_rmws(
    db: &Database,
    row: &[u8],
    n: usize,
    rules: impl Fn(usize) -> Vec<RmwRule>,
) -> Vec<mpsc::Receiver<strata_table::Result<Row>>> {
    (0..n)
        .map(|i| {
            let (tx, rx) = mpsc::channel();
            let queued = db
                .try_read_modify_write_async(T, row, &rules(i), move |r| {
                    let _ = tx.send(r);
                })
                .unwrap();
            assert!(
                queued,
                "read-modify-write {i} of a row in flight runs in place"
            );
            rx
        })
        .collect()
}

#[test]
fn a_hot_rows_read_modify_writes_build_on_each_other_in_flight() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    let n = 200;
    let answers = queue_rmws(&db, b"hot", n, |i| {
        vec![increment("n"), append("log", &format!("{i},"))]
    });
    let mut expected_log = String::new();
    for (i, rx) in answers.into_iter().enumerate() {
        let row = rx.recv_timeout(ANSWER_WAIT).expect("answered").unwrap();
        expected_log.push_str(&format!("{i},"));
        let by_column: BTreeMap<Vec<u8>, Vec<u8>> = row
            .cells
            .into_iter()
            .map(|c| (c.qualifier, c.value))
            .collect();
        assert_eq!(
            by_column[&b"n".to_vec()],
            (i as i64 + 1).to_be_bytes(),
            "the {i}th increment counts every one before it"
        );
        assert_eq!(by_column[&b"log".to_vec()], expected_log.as_bytes());
    }
    let stored = newest(&db, b"hot");
    assert_eq!(stored[&b"n".to_vec()], (n as i64).to_be_bytes());
    assert_eq!(stored[&b"log".to_vec()], expected_log.as_bytes());

    // And after a reopen: every answered one was durable.
    drop(db);
    let db = Database::open(dir.path(), DatabaseOptions::default()).unwrap();
    assert_eq!(
        newest(&db, b"hot")[&b"n".to_vec()],
        (n as i64).to_be_bytes()
    );
}

#[test]
fn a_delete_waits_for_the_rows_read_modify_writes_in_flight() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    for round in 0..5 {
        let answers = queue_rmws(&db, b"r", 50, |_| vec![increment("n")]);
        // The delete reads the row's cells to mark them: it must see all
        // fifty, committed or not, or a later-committed one would survive.
        db.mutate_row(T, b"r", &[Mutation::DeleteFromRow]).unwrap();
        for (i, rx) in answers.into_iter().enumerate() {
            let row = rx.recv_timeout(ANSWER_WAIT).expect("answered").unwrap();
            assert_eq!(counter(&row), i as i64 + 1, "round {round}");
        }
        assert!(
            newest(&db, b"r").is_empty(),
            "round {round}: the delete came last"
        );
    }
    // Also on the non-blocking path: a delete queued while increments
    // are in flight gives up (the caller then takes the blocking path).
    let answers = queue_rmws(&db, b"r", 20, |_| vec![increment("n")]);
    let (tx, deleted) = mpsc::channel();
    let delete = [Mutation::DeleteFromRow];
    let queued = db
        .try_mutate_row_async(T, b"r", &delete, move |r| {
            let _ = tx.send(r);
        })
        .unwrap();
    for rx in answers {
        rx.recv_timeout(ANSWER_WAIT).expect("answered").unwrap();
    }
    if queued {
        // The twenty had all committed before the delete's call: it ran.
        deleted
            .recv_timeout(ANSWER_WAIT)
            .expect("answered")
            .unwrap();
        assert!(newest(&db, b"r").is_empty());
    } else {
        assert!(deleted.try_recv().is_err(), "given up, so never answered");
        assert_eq!(newest(&db, b"r")[&b"n".to_vec()], 20i64.to_be_bytes());
    }
    // A blocking read-modify-write after them counts from there.
    let row = db.read_modify_write(T, b"r", &[increment("n")]).unwrap();
    assert_eq!(counter(&row), if queued { 1 } else { 21 });
}

#[test]
fn many_threads_counting_on_a_few_rows_lose_no_increment() {
    let dir = tempfile::tempdir().unwrap();
    let db = std::sync::Arc::new(open(dir.path()));
    let threads = 4;
    let per_thread = 300;
    let rows: [&[u8]; 3] = [b"a", b"b", b"c"];
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let db = db.clone();
            std::thread::spawn(move || {
                let mut seen: Vec<(usize, i64)> = Vec::new();
                let mut waiting = Vec::new();
                for i in 0..per_thread {
                    let r = (t + i) % rows.len();
                    let (tx, rx) = mpsc::channel();
                    let rules = [increment("n")];
                    let queued = db
                        .try_read_modify_write_async(T, rows[r], &rules, move |x| {
                            let _ = tx.send(x);
                        })
                        .unwrap();
                    if queued {
                        waiting.push((r, rx));
                    } else {
                        // Lock held by another thread: the blocking call.
                        let row = db.read_modify_write(T, rows[r], &rules).unwrap();
                        seen.push((r, counter(&row)));
                    }
                    // Now and then a blocking increment, which waits
                    // for the row's increments in flight.
                    if i % 50 == 49 {
                        let row = db.read_modify_write(T, rows[r], &rules).unwrap();
                        seen.push((r, counter(&row)));
                    }
                }
                for (r, rx) in waiting {
                    let row = rx.recv_timeout(ANSWER_WAIT).expect("answered").unwrap();
                    seen.push((r, counter(&row)));
                }
                seen
            })
        })
        .collect();
    let mut per_row: Vec<Vec<i64>> = vec![Vec::new(); rows.len()];
    for h in handles {
        for (r, v) in h.join().unwrap() {
            per_row[r].push(v);
        }
    }
    for (r, mut values) in per_row.into_iter().enumerate() {
        values.sort_unstable();
        let n = values.len() as i64;
        // A linearizable counter answers 1..=n, each once.
        assert_eq!(values, (1..=n).collect::<Vec<_>>(), "row {r}");
        assert_eq!(newest(&db, rows[r])[&b"n".to_vec()], n.to_be_bytes());
    }
}
