//! Tables as tablets: initial splits, automatic splits between rows,
//! reads across tablets, SampleRowKeys at tablet boundaries, and
//! DropRowRange dropping whole tablets.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use strata_table::{
    Database, DatabaseOptions, Family, GcRule, Mutation, ReadRequest, RowSet, ValueType,
};

const T: &str = "projects/p/instances/i/tables/t";

fn cf() -> BTreeMap<String, Family> {
    [(
        "cf".to_string(),
        Family {
            gc_rule: GcRule::KeepAll,
            value_type: ValueType::Bytes,
        },
    )]
    .into_iter()
    .collect()
}

fn set(q: &str, v: Vec<u8>) -> Mutation {
    Mutation::SetCell {
        family: "cf".into(),
        qualifier: q.as_bytes().to_vec(),
        timestamp_micros: 1000,
        value: v,
    }
}

/// Row keys with their cell count, in the order read.
fn rows(db: &Database, reversed: bool) -> Vec<(Vec<u8>, usize)> {
    let req = ReadRequest {
        rows: RowSet::all(),
        filter: None,
        rows_limit: 0,
        reversed,
    };
    db.read_rows(T, req)
        .expect("read")
        .map(|r| {
            let r = r.expect("row");
            (r.key, r.cells.len())
        })
        .collect()
}

fn row_key(i: u64) -> Vec<u8> {
    format!("user{i:06}").into_bytes()
}

#[test]
fn initial_splits_make_tablets_and_samples_report_them() {
    let dir = tempfile::tempdir().expect("dir");
    let db = Database::open(dir.path(), DatabaseOptions::default()).expect("open");
    let splits = vec![
        b"user000300".to_vec(),
        b"user000100".to_vec(),
        b"user000100".to_vec(),
    ];
    db.create_table_with_splits(T, cf(), false, &splits)
        .expect("create");
    let tablets = db.tablets(T).expect("tablets");
    let ranges: Vec<(Vec<u8>, Option<Vec<u8>>)> = tablets
        .iter()
        .map(|t| (t.start_row.clone(), t.end_row.clone()))
        .collect();
    assert_eq!(
        ranges,
        vec![
            (Vec::new(), Some(b"user000100".to_vec())),
            (b"user000100".to_vec(), Some(b"user000300".to_vec())),
            (b"user000300".to_vec(), None),
        ]
    );
    for i in 0..500 {
        db.mutate_row(
            T,
            &row_key(i),
            &[set("a", vec![1; 200]), set("b", vec![2; 200])],
        )
        .expect("write");
    }
    let forward = rows(&db, false);
    assert_eq!(forward.len(), 500);
    assert!(forward.windows(2).all(|w| w[0].0 < w[1].0));
    assert!(forward.iter().all(|(_, cells)| *cells == 2));
    let mut reverse = rows(&db, true);
    reverse.reverse();
    assert_eq!(reverse, forward);
    let samples = db.sample_row_keys(T).expect("samples");
    for boundary in [b"user000100".as_slice(), b"user000300".as_slice()] {
        assert!(
            samples.iter().any(|(k, _)| k.as_slice() == boundary),
            "boundary {boundary:?} not in {samples:?}"
        );
    }
    assert!(samples.windows(2).all(|w| w[0].1 <= w[1].1));
    assert_eq!(samples.last().map(|s| s.0.is_empty()), Some(true));

    // Dropping every row empties the tablets whole; the boundaries stay.
    db.drop_row_range(T, None).expect("drop");
    assert!(rows(&db, false).is_empty());
    assert_eq!(db.tablets(T).expect("tablets").len(), 3);
    db.mutate_row(T, b"user000200", &[set("a", b"x".to_vec())])
        .expect("write");
    drop(db);
    let db = Database::open(dir.path(), DatabaseOptions::default()).expect("reopen");
    assert_eq!(db.tablets(T).expect("tablets").len(), 3);
    assert_eq!(rows(&db, false), vec![(b"user000200".to_vec(), 1)]);
}

#[test]
fn large_tablets_split_between_rows_and_prefix_drops_take_whole_tablets() {
    let dir = tempfile::tempdir().expect("dir");
    let mut opts = DatabaseOptions::default();
    opts.table.tablet_split_bytes = Some(256 << 10);
    opts.table.memtable_bytes_max = 64 << 10;
    let db = Database::open(dir.path(), opts.clone()).expect("open");
    db.create_table(T, cf(), false).expect("create");
    // Wide rows (20 cells of 1 KiB, incompressible) so a split inside a
    // row would be likely if split keys were not moved to row starts.
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut noise = |n: usize| -> Vec<u8> {
        (0..n)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                seed as u8
            })
            .collect()
    };
    for i in 0..200 {
        let cells: Vec<Mutation> = (0..20)
            .map(|c| set(&format!("c{c:02}"), noise(1024)))
            .collect();
        db.mutate_row(T, &row_key(i), &cells).expect("write");
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while db.tablets(T).expect("tablets").len() < 4 {
        assert!(Instant::now() < deadline, "the table never split");
        std::thread::sleep(Duration::from_millis(50));
    }
    let forward = rows(&db, false);
    assert_eq!(forward.len(), 200);
    assert!(
        forward.iter().all(|(_, cells)| *cells == 20),
        "a row was cut"
    );
    for t in db.tablets(T).expect("tablets").iter().skip(1) {
        assert!(
            t.start_row.starts_with(b"user"),
            "odd boundary {:?}",
            t.start_row
        );
    }
    // A prefix drop removes whole tablets inside it and the rest cell by cell.
    db.drop_row_range(T, Some(b"user0001")).expect("drop");
    let left = rows(&db, false);
    assert_eq!(left.len(), 100);
    assert!(left.iter().all(|(k, _)| !k.starts_with(b"user0001")));
    drop(db);
    let db = Database::open(dir.path(), opts).expect("reopen");
    assert_eq!(rows(&db, false), left);
}
