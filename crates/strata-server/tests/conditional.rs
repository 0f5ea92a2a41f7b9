//! CheckAndMutateRow and ReadModifyWriteRow over gRPC.

mod common;

use common::*;
use googleapis_tonic_google_bigtable_v2::google::bigtable::v2;
use tonic::Code;

async fn check_and_mutate(
    s: &mut Server,
    table: &str,
    key: &[u8],
    predicate: Option<RowFilter>,
    t: Vec<Mutation>,
    f: Vec<Mutation>,
) -> Result<bool, tonic::Status> {
    s.data
        .check_and_mutate_row(v2::CheckAndMutateRowRequest {
            table_name: table.into(),
            row_key: key.to_vec(),
            predicate_filter: predicate,
            true_mutations: t,
            false_mutations: f,
            ..Default::default()
        })
        .await
        .map(|r| r.into_inner().predicate_matched)
}

async fn row(s: &mut Server, table: &str, key: &str) -> Vec<Cell> {
    let out = try_read(s, read_req(table, Some(row_keys(&[key])), None))
        .await
        .unwrap();
    out.rows.into_iter().next().map_or(Vec::new(), |r| r.1)
}

fn value_regex(re: &str) -> RowFilter {
    filter(F::ValueRegexFilter(re.as_bytes().to_vec()))
}

#[tokio::test]
async fn check_and_mutate_branches() {
    let mut s = Server::start().await;
    let t = create_table(&mut s, "t", &["cf"]).await;
    put(&mut s, &t, b"r", "cf", b"a", 1000, b"yes").await;
    let mark = |v: &str| vec![set_cell("cf", b"m", 2000, v.as_bytes())];

    // Predicate matches: the true mutations apply.
    let m = check_and_mutate(
        &mut s,
        &t,
        b"r",
        Some(value_regex("y.s")),
        mark("T"),
        mark("F"),
    )
    .await
    .unwrap();
    assert!(m);
    assert_eq!(
        row(&mut s, &t, "r").await,
        vec![cell("cf", "a", 1000, "yes"), cell("cf", "m", 2000, "T")]
    );
    // Predicate does not match: the false mutations apply.
    let m = check_and_mutate(
        &mut s,
        &t,
        b"r",
        Some(value_regex("no")),
        mark("T2"),
        mark("F2"),
    )
    .await
    .unwrap();
    assert!(!m);
    assert_eq!(row(&mut s, &t, "r").await[1], cell("cf", "m", 2000, "F2"));
    // No match and no false mutations: nothing changes.
    let m = check_and_mutate(
        &mut s,
        &t,
        b"r",
        Some(value_regex("no")),
        mark("T3"),
        vec![],
    )
    .await
    .unwrap();
    assert!(!m);
    assert_eq!(row(&mut s, &t, "r").await[1], cell("cf", "m", 2000, "F2"));
    // The predicate sees the whole row; a block_all predicate never matches.
    let m = check_and_mutate(
        &mut s,
        &t,
        b"r",
        Some(filter(F::BlockAllFilter(true))),
        mark("T4"),
        vec![delete_row()],
    )
    .await
    .unwrap();
    assert!(!m);
    assert!(row(&mut s, &t, "r").await.is_empty());

    // No predicate: matches when the row has any cell.
    let m = check_and_mutate(&mut s, &t, b"e", None, mark("T"), mark("F"))
        .await
        .unwrap();
    assert!(!m, "an empty row does not match");
    assert_eq!(row(&mut s, &t, "e").await, vec![cell("cf", "m", 2000, "F")]);
    let m = check_and_mutate(
        &mut s,
        &t,
        b"e",
        None,
        vec![set_cell("cf", b"m", 3000, b"T")],
        mark("F"),
    )
    .await
    .unwrap();
    assert!(m, "a non-empty row matches");
    assert_eq!(row(&mut s, &t, "e").await[0], cell("cf", "m", 3000, "T"));

    // Read-time GC applies to the predicate: a family keeping 1 version
    // hides the older value.
    try_create_table(&mut s, "g", vec![("cf", family(Some(versions(1))))])
        .await
        .unwrap();
    let g = table_name("g");
    put(&mut s, &g, b"r", "cf", b"a", 1000, b"old").await;
    put(&mut s, &g, b"r", "cf", b"a", 2000, b"new").await;
    let m = check_and_mutate(
        &mut s,
        &g,
        b"r",
        Some(value_regex("old")),
        vec![delete_row()],
        vec![],
    )
    .await
    .unwrap();
    assert!(!m);
}

/// (what, row key, predicate, true mutations, false mutations).
type CamCase<'a> = (
    &'a str,
    &'a [u8],
    Option<RowFilter>,
    Vec<Mutation>,
    Vec<Mutation>,
);

#[tokio::test]
async fn check_and_mutate_errors_apply_nothing() {
    let mut s = Server::start().await;
    let t = create_table(&mut s, "t", &["cf"]).await;
    let good = || vec![set_cell("cf", b"q", 1000, b"v")];
    let bad = || {
        vec![
            set_cell("cf", b"q", 1000, b"v"),
            set_cell("nope", b"q", 1000, b"v"),
        ]
    };
    let cases: Vec<CamCase> = vec![
        ("no mutations", b"r", None, vec![], vec![]),
        ("bad true mutations", b"r", None, bad(), good()),
        ("bad false mutations (not taken)", b"r", None, good(), bad()),
        (
            "bad predicate",
            b"r",
            Some(value_regex("(")),
            good(),
            good(),
        ),
        (
            "chain of one",
            b"r",
            Some(chain(vec![value_regex("v")])),
            good(),
            good(),
        ),
        ("empty key", b"", None, good(), good()),
    ];
    for (what, key, p, tm, fm) in cases {
        let e = check_and_mutate(&mut s, &t, key, p, tm, fm)
            .await
            .unwrap_err();
        // A mutation naming a family the table lacks is NOT_FOUND, as in
        // Bigtable, in either branch.
        let want = if what.starts_with("bad true") || what.starts_with("bad false") {
            Code::NotFound
        } else {
            Code::InvalidArgument
        };
        assert_eq!(e.code(), want, "{what}: {e:?}");
        assert!(read_all(&mut s, &t).await.is_empty(), "{what}");
    }
    let e = check_and_mutate(&mut s, &table_name("missing"), b"r", None, good(), vec![])
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
}

fn append(fam: &str, q: &str, v: &str) -> v2::ReadModifyWriteRule {
    v2::ReadModifyWriteRule {
        family_name: fam.into(),
        column_qualifier: q.as_bytes().to_vec(),
        rule: Some(v2::read_modify_write_rule::Rule::AppendValue(
            v.as_bytes().to_vec(),
        )),
    }
}

fn increment(fam: &str, q: &str, n: i64) -> v2::ReadModifyWriteRule {
    v2::ReadModifyWriteRule {
        family_name: fam.into(),
        column_qualifier: q.as_bytes().to_vec(),
        rule: Some(v2::read_modify_write_rule::Rule::IncrementAmount(n)),
    }
}

/// The response row as (family, qualifier, ts, value) cells.
async fn rmw(
    s: &mut Server,
    table: &str,
    key: &[u8],
    rules: Vec<v2::ReadModifyWriteRule>,
) -> Result<Vec<(String, Vec<u8>, i64, Vec<u8>)>, tonic::Status> {
    let row = s
        .data
        .read_modify_write_row(v2::ReadModifyWriteRowRequest {
            table_name: table.into(),
            row_key: key.to_vec(),
            rules,
            ..Default::default()
        })
        .await?
        .into_inner()
        .row
        .expect("a row");
    assert_eq!(row.key, key);
    let mut out = Vec::new();
    for f in row.families {
        for c in f.columns {
            assert_eq!(c.cells.len(), 1, "one new cell per column");
            for cell in c.cells {
                out.push((
                    f.name.clone(),
                    c.qualifier.clone(),
                    cell.timestamp_micros,
                    cell.value,
                ));
            }
        }
    }
    Ok(out)
}

#[tokio::test]
async fn read_modify_write_append_and_increment() {
    let mut s = Server::start().await;
    let t = create_table(&mut s, "t", &["cf", "cf2"]).await;
    let before = now_micros();
    // Append to a missing cell, then to the existing one.
    let r = rmw(&mut s, &t, b"r", vec![append("cf", "s", "ab")])
        .await
        .unwrap();
    assert_eq!(r.len(), 1);
    assert_eq!((r[0].0.as_str(), r[0].3.as_slice()), ("cf", &b"ab"[..]));
    assert!(r[0].2 >= before && r[0].2 % 1000 == 0);
    let r = rmw(&mut s, &t, b"r", vec![append("cf", "s", "cd")])
        .await
        .unwrap();
    assert_eq!(r[0].3, b"abcd");
    // Increment a missing cell: the amount.
    let r = rmw(&mut s, &t, b"r", vec![increment("cf", "n", 5)])
        .await
        .unwrap();
    assert_eq!(r[0].3, i64be(5));
    let r = rmw(&mut s, &t, b"r", vec![increment("cf", "n", -7)])
        .await
        .unwrap();
    assert_eq!(r[0].3, i64be(-2));
    // Several rules on one column chain; other columns come back too, but
    // untouched columns do not.
    let r = rmw(
        &mut s,
        &t,
        b"r",
        vec![
            increment("cf", "n", 10),
            increment("cf", "n", 100),
            append("cf2", "x", "1"),
            append("cf2", "x", "2"),
            append("cf", "s", "!"),
        ],
    )
    .await
    .unwrap();
    let got: Vec<(&str, &[u8], &[u8])> = r
        .iter()
        .map(|c| (c.0.as_str(), c.1.as_slice(), c.3.as_slice()))
        .collect();
    assert_eq!(
        got,
        vec![
            ("cf", &b"n"[..], &i64be(108)[..]),
            ("cf", b"s", b"abcd!"),
            ("cf2", b"x", b"12")
        ]
    );
    // Reads see the newest values.
    let cells = row(&mut s, &t, "r").await;
    let newest = |q: &str| {
        cells
            .iter()
            .find(|c| c.1 == q.as_bytes())
            .map(|c| c.3.clone())
            .unwrap()
    };
    assert_eq!(newest("n"), i64be(108));
    assert_eq!(newest("s"), b"abcd!");
    // A cell newer than the server's time keeps its timestamp.
    let future = now_micros() + 3_600_000_000;
    put(&mut s, &t, b"f", "cf", b"n", future, &i64be(1)).await;
    let r = rmw(&mut s, &t, b"f", vec![increment("cf", "n", 1)])
        .await
        .unwrap();
    assert_eq!((r[0].2, r[0].3.clone()), (future, i64be(2)));
    assert_eq!(
        row(&mut s, &t, "f").await,
        vec![("cf".into(), b"n".to_vec(), future, i64be(2), vec![])]
    );
}

#[tokio::test]
async fn read_modify_write_errors() {
    let mut s = Server::start().await;
    let t = create_table(&mut s, "t", &["cf"]).await;
    try_create_table(&mut s, "agg", vec![("sum", agg_family(Agg::Sum))])
        .await
        .unwrap();
    put(&mut s, &t, b"r", "cf", b"s", 1000, b"short").await;
    let e = rmw(&mut s, &t, b"r", vec![increment("cf", "s", 1)])
        .await
        .unwrap_err();
    assert_eq!(
        e.code(),
        Code::InvalidArgument,
        "increment of a non-8-byte value"
    );
    // A failing rule applies nothing, even the good rules before it.
    let e = rmw(
        &mut s,
        &t,
        b"r",
        vec![append("cf", "ok", "x"), increment("cf", "s", 1)],
    )
    .await
    .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    let e = rmw(
        &mut s,
        &t,
        b"r",
        vec![append("cf", "n", "abc"), increment("cf", "n", 1)],
    )
    .await
    .unwrap_err();
    assert_eq!(
        e.code(),
        Code::InvalidArgument,
        "an append makes the value unincrementable"
    );
    assert_eq!(
        row(&mut s, &t, "r").await,
        vec![cell("cf", "s", 1000, "short")]
    );
    let no_rule = v2::ReadModifyWriteRule {
        family_name: "cf".into(),
        column_qualifier: b"q".to_vec(),
        rule: None,
    };
    for (what, key, rules) in [
        ("unknown family", &b"r"[..], vec![append("nope", "q", "x")]),
        ("no rules", b"r", vec![]),
        ("a rule with nothing set", b"r", vec![no_rule]),
        ("empty key", b"", vec![append("cf", "q", "x")]),
    ] {
        let e = rmw(&mut s, &t, key, rules).await.unwrap_err();
        let want = if what == "unknown family" {
            Code::NotFound
        } else {
            Code::InvalidArgument
        };
        assert_eq!(e.code(), want, "{what}: {e:?}");
    }
    let e = rmw(
        &mut s,
        &table_name("agg"),
        b"r",
        vec![increment("sum", "q", 1)],
    )
    .await
    .unwrap_err();
    assert_eq!(
        e.code(),
        Code::InvalidArgument,
        "aggregate families take AddToCell"
    );
    let e = rmw(
        &mut s,
        &table_name("missing"),
        b"r",
        vec![append("cf", "q", "x")],
    )
    .await
    .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
    assert_eq!(read_all(&mut s, &t).await.len(), 1);
}

#[tokio::test]
async fn concurrent_row_operations_are_serialized() {
    let mut s = Server::start().await;
    let t = create_table(&mut s, "t", &["cf"]).await;
    // Increments from many clients at once: none is lost.
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let mut client = s.data.clone();
        let t = t.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..10 {
                client
                    .read_modify_write_row(v2::ReadModifyWriteRowRequest {
                        table_name: t.clone(),
                        row_key: b"counter".to_vec(),
                        rules: vec![increment("cf", "n", 1)],
                        ..Default::default()
                    })
                    .await
                    .unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let cells = row(&mut s, &t, "counter").await;
    assert_eq!(cells[0].3, i64be(160));
    // Claims by CheckAndMutate: exactly one sees the row empty.
    let mut tasks = Vec::new();
    for i in 0..16 {
        let mut client = s.data.clone();
        let t = t.clone();
        tasks.push(tokio::spawn(async move {
            client
                .check_and_mutate_row(v2::CheckAndMutateRowRequest {
                    table_name: t,
                    row_key: b"lock".to_vec(),
                    predicate_filter: None,
                    true_mutations: vec![],
                    false_mutations: vec![set_cell(
                        "cf",
                        b"owner",
                        1000,
                        format!("{i}").as_bytes(),
                    )],
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner()
                .predicate_matched
        }));
    }
    let mut unmatched = 0;
    for task in tasks {
        unmatched += usize::from(!task.await.unwrap());
    }
    assert_eq!(unmatched, 1);
    assert_eq!(row(&mut s, &t, "lock").await.len(), 1);
}
