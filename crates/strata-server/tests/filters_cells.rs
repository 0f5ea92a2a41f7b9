//! Cell and row filters over gRPC: regexes, ranges, sampling, limits and
//! transformers.

mod common;

use common::*;
use googleapis_tonic_google_bigtable_v2::google::bigtable::v2;
use tonic::Code;

fn only(prefixes: &[&str]) -> Vec<String> {
    ALL_CELLS
        .iter()
        .filter(|c| prefixes.iter().any(|p| c.starts_with(p)))
        .map(|c| c.to_string())
        .collect()
}

#[tokio::test]
async fn row_key_regex_full_match() {
    let mut s = Server::start().await;
    let t = filter_table(&mut s).await;
    let rk = |re: &str| filter(F::RowKeyRegexFilter(re.as_bytes().to_vec()));
    assert_eq!(apply(&mut s, &t, rk("r1")).await, only(&["r1/"]));
    assert!(
        apply(&mut s, &t, rk("r")).await.is_empty(),
        "a regex must match the whole key"
    );
    assert_eq!(apply(&mut s, &t, rk("r[13]")).await, only(&["r1/", "r3/"]));
    assert_eq!(apply(&mut s, &t, rk(".*3")).await, only(&["r3/"]));
    assert_eq!(apply(&mut s, &t, rk("r1|r2")).await, only(&["r1/", "r2/"]));

    let b = create_table(&mut s, "b", &["cf"]).await;
    let ks: [&[u8]; 6] = [b"ab", b"abc", b"xab", b"a\x00", b"a\xff", b"a\n"];
    for k in ks {
        put(&mut s, &b, k, "cf", b"q", 1000, b"v").await;
    }
    let got = |rows: Vec<Row>| keys(&rows);
    let f = |re: &[u8]| Some(filter(F::RowKeyRegexFilter(re.to_vec())));
    assert_eq!(
        got(read_filtered(&mut s, &b, f(b"ab")).await),
        vec![b"ab".to_vec()]
    );
    // `\C` matches any byte, newline and invalid UTF-8 included.
    let mut want: Vec<Vec<u8>> = vec![
        b"a\x00".to_vec(),
        b"a\n".to_vec(),
        b"ab".to_vec(),
        b"a\xff".to_vec(),
    ];
    want.sort();
    assert_eq!(got(read_filtered(&mut s, &b, f(b"a\\C")).await), want);
    assert_eq!(
        got(read_filtered(&mut s, &b, f(b"\\C*b\\C*")).await),
        vec![b"ab".to_vec(), b"abc".to_vec(), b"xab".to_vec()]
    );
    assert_eq!(
        got(read_filtered(&mut s, &b, f(b"a\\x00")).await),
        vec![b"a\x00".to_vec()]
    );
    assert_eq!(
        got(read_filtered(&mut s, &b, f(b"a\\\\C")).await),
        Vec::<Vec<u8>>::new(),
        "an escaped backslash is literal"
    );
}

#[tokio::test]
async fn row_sample() {
    let mut s = Server::start().await;
    let t = create_table(&mut s, "t", &["cf"]).await;
    let entries = (0..400)
        .map(|i| v2::mutate_rows_request::Entry {
            row_key: format!("r{i:03}").into_bytes(),
            mutations: vec![set_cell("cf", b"q", 1000, b"v")],
            idempotency: None,
        })
        .collect();
    let mut stream = s
        .data
        .mutate_rows(v2::MutateRowsRequest {
            table_name: t.clone(),
            entries,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    while stream.message().await.unwrap().is_some() {}
    let n = read_filtered(&mut s, &t, Some(filter(F::RowSampleFilter(0.5))))
        .await
        .len();
    // Binomial(400, 0.5): mean 200, sd 10.
    assert!((140..=260).contains(&n), "sampled {n} of 400 rows");
    let n = read_filtered(&mut s, &t, Some(filter(F::RowSampleFilter(0.999_999))))
        .await
        .len();
    assert!(n >= 395, "{n}");
    for p in [0.0, 1.0, 1.5, -0.5, f64::NAN] {
        assert_eq!(
            filter_code(&mut s, &t, filter(F::RowSampleFilter(p))).await,
            Code::InvalidArgument,
            "{p}"
        );
    }
}

#[tokio::test]
async fn family_and_qualifier_regexes() {
    let mut s = Server::start().await;
    let t = filter_table(&mut s).await;
    let fam = |re: &str| filter(F::FamilyNameRegexFilter(re.into()));
    let qual = |re: &[u8]| filter(F::ColumnQualifierRegexFilter(re.to_vec()));
    let cf1: Vec<String> = ALL_CELLS
        .iter()
        .filter(|c| c.contains("/cf1:"))
        .map(|c| c.to_string())
        .collect();
    assert_eq!(apply(&mut s, &t, fam("cf1")).await, cf1);
    assert_eq!(apply(&mut s, &t, fam("cf.")).await, ALL_CELLS);
    assert!(apply(&mut s, &t, fam("cf")).await.is_empty(), "full match");
    assert!(apply(&mut s, &t, fam("f1")).await.is_empty(), "full match");
    assert_eq!(
        apply(&mut s, &t, qual(b"[bc]")).await,
        ["r1/cf1:b@1000=b1", "r1/cf2:c@5000=c5", "r3/cf2:c@1000=zzz"]
    );
    assert!(apply(&mut s, &t, qual(b"")).await.is_empty());
    // Binary qualifiers.
    let b = create_table(&mut s, "b", &["cf"]).await;
    put(&mut s, &b, b"r", "cf", b"\xff\x00", 1000, b"1").await;
    put(&mut s, &b, b"r", "cf", b"", 1000, b"2").await;
    let got = read_filtered(&mut s, &b, Some(qual(b"\\C\\C"))).await;
    assert_eq!(
        got[0].1.iter().map(|c| c.1.clone()).collect::<Vec<_>>(),
        vec![b"\xff\x00".to_vec()]
    );
    let got = read_filtered(&mut s, &b, Some(qual(b""))).await;
    assert_eq!(
        got[0].1.iter().map(|c| c.3.clone()).collect::<Vec<_>>(),
        vec![b"2".to_vec()]
    );
}

#[tokio::test]
async fn column_range() {
    use v2::column_range::{EndQualifier as E, StartQualifier as S};
    let mut s = Server::start().await;
    let t = filter_table(&mut s).await;
    let cr = |fam: &str, start: Option<S>, end: Option<E>| {
        filter(F::ColumnRangeFilter(v2::ColumnRange {
            family_name: fam.into(),
            start_qualifier: start,
            end_qualifier: end,
        }))
    };
    let q = |s: &str| s.as_bytes().to_vec();
    let a_cells = ["r1/cf1:a@3000=v3", "r1/cf1:a@2000=v2", "r1/cf1:a@1000=v1"];
    let cases: Vec<(RowFilter, Vec<&str>)> = vec![
        (
            cr(
                "cf1",
                Some(S::StartQualifierClosed(q("a"))),
                Some(E::EndQualifierClosed(q("b"))),
            ),
            [&a_cells[..], &["r1/cf1:b@1000=b1", "r2/cf1:a@1000=x"]].concat(),
        ),
        (
            cr(
                "cf1",
                Some(S::StartQualifierClosed(q("a"))),
                Some(E::EndQualifierOpen(q("b"))),
            ),
            [&a_cells[..], &["r2/cf1:a@1000=x"]].concat(),
        ),
        (
            cr(
                "cf1",
                Some(S::StartQualifierOpen(q("a"))),
                Some(E::EndQualifierClosed(q("b"))),
            ),
            vec!["r1/cf1:b@1000=b1"],
        ),
        (
            cr(
                "cf1",
                Some(S::StartQualifierOpen(q("a"))),
                Some(E::EndQualifierOpen(q("b"))),
            ),
            vec![],
        ),
        (
            cr("cf1", Some(S::StartQualifierOpen(q("a"))), None),
            vec!["r1/cf1:b@1000=b1"],
        ),
        (
            cr("cf1", None, Some(E::EndQualifierOpen(q("b")))),
            [&a_cells[..], &["r2/cf1:a@1000=x"]].concat(),
        ),
        (
            cr("cf1", None, None),
            ALL_CELLS
                .iter()
                .copied()
                .filter(|c| c.contains("/cf1:"))
                .collect(),
        ),
        // Another family's qualifiers in the range are not matched.
        (
            cr(
                "cf2",
                Some(S::StartQualifierClosed(q("a"))),
                Some(E::EndQualifierClosed(q("c"))),
            ),
            vec!["r1/cf2:c@5000=c5", "r3/cf2:c@1000=zzz"],
        ),
        (
            cr("cf2", Some(S::StartQualifierOpen(q("c"))), None),
            vec!["r2/cf2:d@2000=yy"],
        ),
        (cr("nope", None, None), vec![]),
    ];
    for (i, (f, want)) in cases.into_iter().enumerate() {
        assert_eq!(apply(&mut s, &t, f).await, want, "case {i}");
    }
}

#[tokio::test]
async fn timestamp_range() {
    let mut s = Server::start().await;
    let t = filter_table(&mut s).await;
    let tr = |a: i64, b: i64| {
        filter(F::TimestampRangeFilter(v2::TimestampRange {
            start_timestamp_micros: a,
            end_timestamp_micros: b,
        }))
    };
    assert_eq!(
        apply(&mut s, &t, tr(2000, 3000)).await,
        ["r1/cf1:a@2000=v2", "r2/cf2:d@2000=yy"]
    );
    assert_eq!(
        apply(&mut s, &t, tr(2000, 0)).await,
        [
            "r1/cf1:a@3000=v3",
            "r1/cf1:a@2000=v2",
            "r1/cf2:c@5000=c5",
            "r2/cf2:d@2000=yy"
        ]
    );
    let ones: Vec<String> = ALL_CELLS
        .iter()
        .filter(|c| c.contains("@1000"))
        .map(|c| c.to_string())
        .collect();
    assert_eq!(apply(&mut s, &t, tr(0, 2000)).await, ones);
    assert_eq!(apply(&mut s, &t, tr(0, 0)).await, ALL_CELLS);
    assert!(apply(&mut s, &t, tr(3000, 3000)).await.is_empty());
    assert_eq!(
        apply(&mut s, &t, tr(4000, 6000)).await,
        ["r1/cf2:c@5000=c5"]
    );
}

#[tokio::test]
async fn value_regex_and_range() {
    use v2::value_range::{EndValue as E, StartValue as S};
    let mut s = Server::start().await;
    let t = filter_table(&mut s).await;
    let vr = |re: &str| filter(F::ValueRegexFilter(re.as_bytes().to_vec()));
    assert_eq!(
        apply(&mut s, &t, vr("v.")).await,
        ["r1/cf1:a@3000=v3", "r1/cf1:a@2000=v2", "r1/cf1:a@1000=v1"]
    );
    assert_eq!(apply(&mut s, &t, vr("z+")).await, ["r3/cf2:c@1000=zzz"]);
    assert!(apply(&mut s, &t, vr("y")).await.is_empty(), "full match");
    let range = |start: Option<S>, end: Option<E>| {
        filter(F::ValueRangeFilter(v2::ValueRange {
            start_value: start,
            end_value: end,
        }))
    };
    let v = |s: &str| s.as_bytes().to_vec();
    let cases: Vec<(RowFilter, Vec<&str>)> = vec![
        (
            range(
                Some(S::StartValueClosed(v("v1"))),
                Some(E::EndValueClosed(v("v2"))),
            ),
            vec!["r1/cf1:a@2000=v2", "r1/cf1:a@1000=v1"],
        ),
        (
            range(
                Some(S::StartValueOpen(v("v1"))),
                Some(E::EndValueOpen(v("v2"))),
            ),
            vec![],
        ),
        (
            range(
                Some(S::StartValueOpen(v("v1"))),
                Some(E::EndValueOpen(v("v3"))),
            ),
            vec!["r1/cf1:a@2000=v2"],
        ),
        (
            range(Some(S::StartValueClosed(v("v2"))), None),
            vec![
                "r1/cf1:a@3000=v3",
                "r1/cf1:a@2000=v2",
                "r2/cf1:a@1000=x",
                "r2/cf2:d@2000=yy",
                "r3/cf2:c@1000=zzz",
            ],
        ),
        (
            range(None, Some(E::EndValueClosed(v("b1")))),
            vec!["r1/cf1:b@1000=b1"],
        ),
        (range(None, Some(E::EndValueOpen(v("b1")))), vec![]),
        (range(None, None), ALL_CELLS.to_vec()),
    ];
    for (i, (f, want)) in cases.into_iter().enumerate() {
        assert_eq!(apply(&mut s, &t, f).await, want, "case {i}");
    }
}

#[tokio::test]
async fn cell_limits_and_offsets() {
    let mut s = Server::start().await;
    let t = filter_table(&mut s).await;
    let off = |n| filter(F::CellsPerRowOffsetFilter(n));
    let lim = |n| filter(F::CellsPerRowLimitFilter(n));
    let col = |n| filter(F::CellsPerColumnLimitFilter(n));
    assert_eq!(apply(&mut s, &t, off(0)).await, ALL_CELLS);
    assert_eq!(
        apply(&mut s, &t, off(1)).await,
        [
            "r1/cf1:a@2000=v2",
            "r1/cf1:a@1000=v1",
            "r1/cf1:b@1000=b1",
            "r1/cf2:c@5000=c5",
            "r2/cf2:d@2000=yy"
        ]
    );
    assert_eq!(apply(&mut s, &t, off(4)).await, ["r1/cf2:c@5000=c5"]);
    assert!(apply(&mut s, &t, off(5)).await.is_empty());
    assert_eq!(
        apply(&mut s, &t, lim(1)).await,
        ["r1/cf1:a@3000=v3", "r2/cf1:a@1000=x", "r3/cf2:c@1000=zzz"]
    );
    assert_eq!(
        apply(&mut s, &t, lim(2)).await,
        [
            "r1/cf1:a@3000=v3",
            "r1/cf1:a@2000=v2",
            "r2/cf1:a@1000=x",
            "r2/cf2:d@2000=yy",
            "r3/cf2:c@1000=zzz"
        ]
    );
    assert_eq!(apply(&mut s, &t, lim(100)).await, ALL_CELLS);
    let newest: Vec<String> = ALL_CELLS
        .iter()
        .filter(|c| !c.contains("=v2") && !c.contains("=v1"))
        .map(|c| c.to_string())
        .collect();
    assert_eq!(apply(&mut s, &t, col(1)).await, newest);
    let two: Vec<String> = ALL_CELLS
        .iter()
        .filter(|c| !c.contains("=v1"))
        .map(|c| c.to_string())
        .collect();
    assert_eq!(apply(&mut s, &t, col(2)).await, two);
    assert_eq!(
        apply(&mut s, &t, chain(vec![off(1), lim(2)])).await,
        ["r1/cf1:a@2000=v2", "r1/cf1:a@1000=v1", "r2/cf2:d@2000=yy"]
    );
}

#[tokio::test]
async fn strip_value_and_apply_label() {
    let mut s = Server::start().await;
    let t = filter_table(&mut s).await;
    let stripped: Vec<String> = ALL_CELLS
        .iter()
        .map(|c| format!("{}=", c.split('=').next().unwrap()))
        .collect();
    assert_eq!(
        apply(&mut s, &t, filter(F::StripValueTransformer(true))).await,
        stripped
    );
    let labeled: Vec<String> = ALL_CELLS.iter().map(|c| format!("{c}[lbl-1]")).collect();
    assert_eq!(
        apply(&mut s, &t, filter(F::ApplyLabelTransformer("lbl-1".into()))).await,
        labeled
    );
    let f = chain(vec![
        filter(F::ColumnQualifierRegexFilter(b"d".to_vec())),
        filter(F::ApplyLabelTransformer("a".repeat(15))),
    ]);
    assert_eq!(
        apply(&mut s, &t, f).await,
        [format!("r2/cf2:d@2000=yy[{}]", "a".repeat(15))]
    );
    for bad in ["Bad", "", "a_b", "a b", "é", &"a".repeat(16)] {
        let f = filter(F::ApplyLabelTransformer(bad.into()));
        assert_eq!(
            filter_code(&mut s, &t, f).await,
            Code::InvalidArgument,
            "label {bad:?}"
        );
    }
}
