//! The data model over a real engine: the catalog across reopen, GC rules
//! enforced in compaction, aggregates across flush and compaction, family
//! drops and row-range drops.

use std::collections::BTreeMap;
use strata_engine::Direction;
use strata_table::{
    Database, DatabaseOptions, Family, FamilyChange, GcRule, Mutation, ReadRequest, RmwRule,
    RowSet, ValueType,
};

const T: &str = "projects/p/instances/i/tables/t";

fn families(list: &[(&str, GcRule, ValueType)]) -> BTreeMap<String, Family> {
    list.iter()
        .map(|(n, g, v)| {
            (
                n.to_string(),
                Family {
                    gc_rule: g.clone(),
                    value_type: *v,
                },
            )
        })
        .collect()
}

fn set(fam: &str, q: &str, ts: i64, v: &str) -> Mutation {
    Mutation::SetCell {
        family: fam.into(),
        qualifier: q.as_bytes().to_vec(),
        timestamp_micros: ts,
        value: v.as_bytes().to_vec(),
    }
}

/// (row, family, qualifier, timestamp, value)
type FlatCell = (Vec<u8>, String, Vec<u8>, i64, Vec<u8>);

fn read_all(db: &Database) -> Vec<FlatCell> {
    let req = ReadRequest {
        rows: RowSet::all(),
        filter: None,
        rows_limit: 0,
        reversed: false,
    };
    let mut out = Vec::new();
    for row in db.read_rows(T, req).unwrap() {
        let row = row.unwrap();
        for c in row.cells {
            out.push((
                row.key.clone(),
                c.family,
                c.qualifier,
                c.timestamp_micros,
                c.value,
            ));
        }
    }
    out
}

/// Entries physically in the table's tree (what compaction kept).
fn raw_entries(db: &Database) -> usize {
    let tree_name = db.get_table(T).unwrap().schema.tree.clone();
    let tree = db.engine().tree(&tree_name).unwrap();
    tree.iter(Direction::Forward).unwrap().count()
}

#[test]
fn catalog_and_data_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = Database::open(dir.path(), DatabaseOptions::default()).unwrap();
        let fams = families(&[("cf", GcRule::MaxVersions(3), ValueType::Bytes)]);
        db.create_table(T, fams, true).unwrap();
        db.mutate_row(T, b"r", &[set("cf", "q", 1000, "v")])
            .unwrap();
        db.close().unwrap();
    }
    let db = Database::open(dir.path(), DatabaseOptions::default()).unwrap();
    let info = db.get_table(T).unwrap();
    assert!(info.schema.deletion_protection);
    assert_eq!(info.schema.families["cf"].gc_rule, GcRule::MaxVersions(3));
    assert_eq!(read_all(&db).len(), 1);
    assert!(db.delete_table(T).is_err(), "deletion protection holds");
}

#[test]
fn gc_rules_are_enforced_in_compaction() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path(), DatabaseOptions::default()).unwrap();
    let fams = families(&[
        ("v2", GcRule::MaxVersions(2), ValueType::Bytes),
        ("age", GcRule::MaxAgeMicros(60_000_000), ValueType::Bytes),
        ("all", GcRule::KeepAll, ValueType::Bytes),
    ]);
    db.create_table(T, fams, false).unwrap();
    let now = strata_table::rows::server_now_micros();
    for ts in [1000, 2000, 3000] {
        db.mutate_row(
            T,
            b"r",
            &[
                set("v2", "q", ts, "x"),
                set("all", "q", ts, "x"),
                set("age", "old", ts, "x"),
            ],
        )
        .unwrap();
    }
    db.mutate_row(T, b"r", &[set("age", "new", now, "x")])
        .unwrap();
    // Read-time GC already hides the garbage: 2 + 3 + 1 cells.
    assert_eq!(read_all(&db).len(), 6);
    assert_eq!(raw_entries(&db), 10);
    let tree_name = db.get_table(T).unwrap().schema.tree.clone();
    db.engine().tree(&tree_name).unwrap().compact().unwrap();
    assert_eq!(read_all(&db).len(), 6);
    assert_eq!(
        raw_entries(&db),
        6,
        "compaction dropped the garbage for good"
    );
}

#[test]
fn aggregates_fold_across_flush_and_compaction() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path(), DatabaseOptions::default()).unwrap();
    let fams = families(&[
        ("sum", GcRule::KeepAll, ValueType::Int64Sum),
        ("max", GcRule::KeepAll, ValueType::Int64Max),
    ]);
    db.create_table(T, fams, false).unwrap();
    let add = |fam: &str, x: i64| Mutation::AddToCell {
        family: fam.into(),
        qualifier: b"q".to_vec(),
        timestamp_micros: 0,
        input: strata_table::AggregateInput::Int(x),
    };
    let tree_name = db.get_table(T).unwrap().schema.tree.clone();
    let tree = db.engine().tree(&tree_name).unwrap();
    for (i, x) in [5i64, -2, 40, 7].into_iter().enumerate() {
        db.mutate_row(T, b"r", &[add("sum", x), add("max", x)])
            .unwrap();
        if i % 2 == 1 {
            tree.flush().unwrap();
        }
    }
    let values = |db: &Database| -> Vec<i64> {
        read_all(db)
            .into_iter()
            .map(|c| i64::from_be_bytes(c.4.try_into().unwrap()))
            .collect()
    };
    assert_eq!(values(&db), vec![40, 50]); // families in name order: max, sum
    tree.compact().unwrap();
    assert_eq!(values(&db), vec![40, 50]);
}

#[test]
fn hll_sketches_count_across_flush_compaction_merge_and_reopen() {
    use strata_table::hll::{wire, Sketch};
    use strata_table::AggregateInput;
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path(), DatabaseOptions::default()).unwrap();
    let fams = families(&[
        ("ids", GcRule::KeepAll, ValueType::HllInt64),
        ("names", GcRule::KeepAll, ValueType::HllBytes),
    ]);
    db.create_table(T, fams, false).unwrap();
    let add = |fam: &str, input: AggregateInput| Mutation::AddToCell {
        family: fam.into(),
        qualifier: b"q".to_vec(),
        timestamp_micros: 0,
        input,
    };
    let tree_name = db.get_table(T).unwrap().schema.tree.clone();
    let tree = db.engine().tree(&tree_name).unwrap();
    // 3,000 adds of 1,000 distinct ids (and names), flushed every 500.
    for i in 0..3000i64 {
        let id = i % 1000;
        db.mutate_row(
            T,
            b"r",
            &[
                add("ids", AggregateInput::Int(id)),
                add(
                    "names",
                    AggregateInput::Bytes(format!("user-{id}").into_bytes()),
                ),
            ],
        )
        .unwrap();
        if i % 500 == 499 {
            tree.flush().unwrap();
        }
    }
    let sketches = |db: &Database| -> Vec<Sketch> {
        read_all(db)
            .into_iter()
            .map(|c| wire::decode(&c.4).expect("cells hold valid sketches"))
            .collect()
    };
    let check = |db: &Database, distinct: u64, adds: i64| {
        for s in sketches(db) {
            let e = s.estimate();
            assert!(
                e.abs_diff(distinct) <= distinct / 100,
                "estimate {e} for {distinct}"
            );
            assert_eq!(s.num_values, adds);
        }
    };
    check(&db, 1000, 3000);
    tree.compact().unwrap();
    check(&db, 1000, 3000);
    // MergeToCell a sketch of 1,000 other ids.
    let mut other = Sketch::new(15, 20, strata_table::hll::VALUE_TYPE_INT64);
    for id in 1000..2000i64 {
        other.add_hash(strata_table::hll::fingerprint::fingerprint2011_i64(id));
    }
    let merge = Mutation::MergeToCell {
        family: "ids".into(),
        qualifier: b"q".to_vec(),
        timestamp_micros: 0,
        input: AggregateInput::Bytes(wire::encode(&mut other)),
    };
    db.mutate_row(T, b"r", &[merge]).unwrap();
    let ids = &sketches(&db)[0];
    assert!(ids.estimate().abs_diff(2000) <= 20, "{}", ids.estimate());
    assert_eq!(ids.num_values, 4000);
    // A malformed sketch or the wrong input kind changes nothing.
    for bad in [
        Mutation::MergeToCell {
            family: "ids".into(),
            qualifier: b"q".to_vec(),
            timestamp_micros: 0,
            input: AggregateInput::Bytes(b"junk".to_vec()),
        },
        add("names", AggregateInput::Int(5)),
    ] {
        let err = db.mutate_row(T, b"r", &[add("ids", AggregateInput::Int(1)), bad]);
        assert!(err.is_err());
    }
    assert_eq!(sketches(&db)[0].num_values, 4000);
    drop(tree);
    db.close().unwrap();
    let db = Database::open(dir.path(), DatabaseOptions::default()).unwrap();
    assert_eq!(sketches(&db)[0].num_values, 4000);
    assert!(sketches(&db)[0].estimate().abs_diff(2000) <= 20);
}

#[test]
fn a_dropped_family_recreated_is_empty_and_row_ranges_drop() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path(), DatabaseOptions::default()).unwrap();
    let fams = families(&[
        ("a", GcRule::KeepAll, ValueType::Bytes),
        ("b", GcRule::KeepAll, ValueType::Bytes),
    ]);
    db.create_table(T, fams, false).unwrap();
    for row in ["p1", "p2", "q1"] {
        db.mutate_row(
            T,
            row.as_bytes(),
            &[set("a", "x", 1000, "1"), set("b", "x", 1000, "2")],
        )
        .unwrap();
    }
    db.modify_families(T, &[FamilyChange::Drop("a".into())])
        .unwrap();
    db.modify_families(T, &[FamilyChange::Create("a".into(), Family::default())])
        .unwrap();
    assert!(read_all(&db).iter().all(|c| c.1 == "b"));
    db.drop_row_range(T, Some(b"p")).unwrap();
    let rows: Vec<Vec<u8>> = read_all(&db).into_iter().map(|c| c.0).collect();
    assert_eq!(rows, vec![b"q1".to_vec()]);
    db.drop_row_range(T, None).unwrap();
    assert!(read_all(&db).is_empty());
    db.mutate_row(T, b"z", &[set("a", "x", 1000, "1")]).unwrap();
    assert_eq!(read_all(&db).len(), 1);
    // The old tree is gone; after reopen only the new one remains.
    db.close().unwrap();
    let db = Database::open(dir.path(), DatabaseOptions::default()).unwrap();
    assert_eq!(read_all(&db).len(), 1);
    assert_eq!(
        db.engine().tree_names().len(),
        2,
        "catalog + the table's tree"
    );
}

#[test]
fn a_hot_column_with_many_hidden_versions_reads_right_both_ways() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path(), DatabaseOptions::default()).unwrap();
    let fams = families(&[
        ("one", GcRule::MaxVersions(1), ValueType::Bytes),
        ("two", GcRule::MaxVersions(2), ValueType::Bytes),
    ]);
    db.create_table(T, fams, false).unwrap();
    for ts in 1..=200i64 {
        let v = ts.to_string();
        db.mutate_row(
            T,
            b"hot",
            &[
                set("one", "a", ts * 1000, &v),
                set("two", "a", ts * 1000, &v),
            ],
        )
        .unwrap();
    }
    for (row, q) in [("hot", "b"), ("hot", "c"), ("next", "a")] {
        db.mutate_row(
            T,
            row.as_bytes(),
            &[set("one", q, 1000, "x"), set("two", q, 1000, "x")],
        )
        .unwrap();
    }
    let expect = vec![
        ("hot", "one", "a", 200_000, "200"),
        ("hot", "one", "b", 1000, "x"),
        ("hot", "one", "c", 1000, "x"),
        ("hot", "two", "a", 200_000, "200"),
        ("hot", "two", "a", 199_000, "199"),
        ("hot", "two", "b", 1000, "x"),
        ("hot", "two", "c", 1000, "x"),
    ];
    for reversed in [false, true] {
        let req = ReadRequest {
            rows: RowSet::all(),
            filter: None,
            rows_limit: 0,
            reversed,
        };
        let rows: Vec<_> = db.read_rows(T, req).unwrap().map(|r| r.unwrap()).collect();
        let hot = rows.iter().find(|r| r.key == b"hot").unwrap();
        let got: Vec<_> = hot
            .cells
            .iter()
            .map(|c| {
                (
                    "hot",
                    c.family.as_str(),
                    std::str::from_utf8(&c.qualifier).unwrap(),
                    c.timestamp_micros,
                    std::str::from_utf8(&c.value).unwrap(),
                )
            })
            .collect();
        assert_eq!(got, expect, "reversed={reversed}");
        assert_eq!(rows.len(), 2);
    }
}

/// A hidden version is copied out of the tree before the read knows it
/// is hidden: a column whose old versions are large (a cell grown by
/// appends) is skipped with a seek after a few of their bytes, one of
/// small versions after a number of them.
#[test]
fn hidden_versions_are_skipped_after_a_count_or_a_size() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path(), DatabaseOptions::default()).unwrap();
    let fams = families(&[("one", GcRule::MaxVersions(1), ValueType::Bytes)]);
    db.create_table(T, fams, false).unwrap();
    let big = "x".repeat(20 << 10);
    for ts in 1..=30i64 {
        let small = ts.to_string();
        let cells = [
            set("one", "big", ts * 1000, &big),
            set("one", "small", ts * 1000, &small),
        ];
        db.mutate_row(T, b"hot", &cells).unwrap();
    }
    for row in ["hot", "next"] {
        db.mutate_row(T, row.as_bytes(), &[set("one", "z", 1000, "z")])
            .unwrap();
    }
    let read = |key: &[u8]| {
        let req = ReadRequest {
            rows: RowSet {
                keys: vec![key.to_vec()],
                ranges: vec![],
            },
            filter: None,
            rows_limit: 0,
            reversed: false,
        };
        let mut reader = db.read_rows(T, req).unwrap();
        let rows: Vec<_> = reader.by_ref().map(|r| r.unwrap()).collect();
        (rows, reader.stats.cells_seen)
    };
    let (rows, seen) = read(b"hot");
    let got: Vec<_> = rows[0]
        .cells
        .iter()
        .map(|c| (c.qualifier.clone(), c.timestamp_micros, c.value.len()))
        .collect();
    assert_eq!(
        got,
        [
            (b"big".to_vec(), 30_000, big.len()),
            (b"small".to_vec(), 30_000, 2),
            (b"z".to_vec(), 1000, 1),
        ]
    );
    // big: the newest, one hidden (20 KiB, past the size), then a seek;
    // small: the newest, 16 hidden, then a seek; z.
    assert_eq!(seen, 1 + 1 + 1 + 16 + 1);
}

/// ReadModifyWriteRow's read of only the columns its rules name finds
/// each one's newest visible cell, whatever else the row holds (a column
/// whose qualifier extends another's, other families, hidden versions, a
/// row whose key extends this one's), and leaves the rest alone.
#[test]
fn read_modify_write_finds_the_newest_cell_of_each_named_column() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path(), DatabaseOptions::default()).unwrap();
    let fams = families(&[
        ("one", GcRule::MaxVersions(1), ValueType::Bytes),
        ("two", GcRule::KeepAll, ValueType::Bytes),
    ]);
    db.create_table(T, fams, false).unwrap();
    let cells = [
        set("one", "a", 1000, "old"),
        set("one", "a", 2000, "A"),
        set("one", "ab", 3000, "AB"),
        set("two", "a", 5000, "two-a"),
        set("two", "a", 4000, "older two-a"),
    ];
    db.mutate_row(T, b"r", &cells).unwrap();
    db.mutate_row(T, b"r\0", &[set("one", "a", 9000, "next row")])
        .unwrap();
    let append = |fam: &str, q: &str, v: &str| RmwRule::Append {
        family: fam.into(),
        qualifier: q.as_bytes().to_vec(),
        value: v.as_bytes().to_vec(),
    };
    let rules = [
        append("one", "a", "+1"),
        append("two", "a", "+2"),
        append("one", "a", "+3"),
        append("one", "new", "N"),
    ];
    let row = db.read_modify_write(T, b"r", &rules).unwrap();
    let got: Vec<(String, Vec<u8>, Vec<u8>)> = row
        .cells
        .into_iter()
        .map(|c| (c.family, c.qualifier, c.value))
        .collect();
    let cell =
        |f: &str, q: &str, v: &str| (f.to_string(), q.as_bytes().to_vec(), v.as_bytes().to_vec());
    assert_eq!(
        got,
        [
            cell("one", "a", "A+1+3"),
            cell("one", "new", "N"),
            cell("two", "a", "two-a+2"),
        ]
    );
    // The other columns are as they were.
    let ab: Vec<_> = read_all(&db)
        .into_iter()
        .filter(|c| c.0 == b"r" && c.2 == b"ab")
        .map(|c| c.4)
        .collect();
    assert_eq!(ab, [b"AB".to_vec()]);
}

/// A cluster server's tablets follow the cluster's schema: apply_schema
/// creates the table, then adds, changes and drops families (purging the
/// dropped ones' cells) whatever the deletion protection.
#[test]
fn apply_schema_creates_then_follows_a_schema() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path(), DatabaseOptions::default()).unwrap();
    let v1 = families(&[
        ("a", GcRule::KeepAll, ValueType::Bytes),
        ("b", GcRule::KeepAll, ValueType::Bytes),
    ]);
    let info = db.apply_schema(T, &v1, true).unwrap();
    assert_eq!(info.schema.families, v1);
    assert!(info.schema.deletion_protection);
    db.mutate_row(
        T,
        b"r",
        &[set("a", "x", 1000, "1"), set("b", "x", 1000, "2")],
    )
    .unwrap();
    // Same schema: nothing changes.
    assert_eq!(db.apply_schema(T, &v1, true).unwrap().schema.families, v1);
    let v2 = families(&[
        ("b", GcRule::MaxVersions(1), ValueType::Bytes),
        ("c", GcRule::KeepAll, ValueType::Bytes),
    ]);
    let info = db.apply_schema(T, &v2, false).unwrap();
    assert_eq!(info.schema.families, v2);
    assert!(!info.schema.deletion_protection);
    let cells = read_all(&db);
    assert_eq!(cells.len(), 1, "{cells:?}");
    assert_eq!(cells[0].1, "b");
    // A plain modify_families still honours the protection.
    db.apply_schema(T, &v2, true).unwrap();
    let err = db
        .modify_families(T, &[FamilyChange::Drop("b".into())])
        .unwrap_err();
    assert!(err.to_string().contains("deletion protection"), "{err}");
}

#[test]
fn a_rows_set_cells_read_back_as_through_the_pending_map() {
    // A MutateRow of SetCells alone is written straight into the batch in
    // request order; with any other mutation it goes through the pending
    // map (sorted, merged). Both must read back alike: the last SetCell of
    // a cell wins, escapes in row and qualifier, server timestamps.
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path(), DatabaseOptions::default()).unwrap();
    let fams = families(&[
        ("cf", GcRule::MaxVersions(5), ValueType::Bytes),
        ("b", GcRule::MaxVersions(5), ValueType::Bytes),
    ]);
    db.create_table(T, fams, false).unwrap();
    let mut cells = vec![
        set("cf", "z", 3000, "z1"),
        set("cf", "a\0q", 1000, "nul"),
        set("b", "x", 2000, "first"),
        set("cf", "z", 3000, "z2"),
        set("b", "x", 2000, "second"),
        set("cf", "z", 1000, "older"),
        set("cf", "now", -1, "server time"),
    ];
    db.mutate_row(T, b"r\0one", &cells).unwrap();
    cells.push(Mutation::DeleteFromColumn {
        family: "cf".into(),
        qualifier: b"absent".to_vec(),
        start_micros: 0,
        end_micros: 0,
    });
    db.mutate_row(T, b"r\0two", &cells).unwrap();
    let all = read_all(&db);
    let (one, two): (Vec<_>, Vec<_>) = all.into_iter().partition(|c| c.0 == b"r\0one");
    assert_eq!(one.len(), 5, "{one:?}");
    let strip = |v: Vec<FlatCell>| -> Vec<(String, Vec<u8>, Vec<u8>)> {
        v.into_iter().map(|c| (c.1, c.2, c.4)).collect()
    };
    assert_eq!(strip(one.clone()), strip(two), "both paths read alike");
    let by = |q: &str, ts: i64| {
        one.iter()
            .find(|c| c.2 == q.as_bytes() && c.3 == ts)
            .map(|c| c.4.clone())
    };
    assert_eq!(
        by("z", 3000),
        Some(b"z2".to_vec()),
        "the last SetCell of a cell wins"
    );
    assert_eq!(by("x", 2000), Some(b"second".to_vec()));
    assert_eq!(by("a\0q", 1000), Some(b"nul".to_vec()));
    assert_eq!(by("z", 1000), Some(b"older".to_vec()));
    db.close().unwrap();
}
