//! Composing filters over gRPC: chain, interleave, condition, sink,
//! pass_all, block_all, and the filters the server must reject.

mod common;

use common::*;
use googleapis_tonic_google_bigtable_v2::google::bigtable::v2;
use tonic::Code;

fn family(re: &str) -> RowFilter {
    filter(F::FamilyNameRegexFilter(re.into()))
}

fn qualifier(re: &str) -> RowFilter {
    filter(F::ColumnQualifierRegexFilter(re.as_bytes().to_vec()))
}

fn label(l: &str) -> RowFilter {
    filter(F::ApplyLabelTransformer(l.into()))
}

fn pass_all() -> RowFilter {
    filter(F::PassAllFilter(true))
}

fn block_all() -> RowFilter {
    filter(F::BlockAllFilter(true))
}

fn sink() -> RowFilter {
    filter(F::Sink(true))
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

#[tokio::test]
async fn pass_all_and_block_all() {
    let mut s = Server::start().await;
    let t = filter_table(&mut s).await;
    assert_eq!(flat(&read_all(&mut s, &t).await), ALL_CELLS);
    assert_eq!(apply(&mut s, &t, pass_all()).await, ALL_CELLS);
    assert!(apply(&mut s, &t, block_all()).await.is_empty());
}

#[tokio::test]
async fn chain_filter() {
    let mut s = Server::start().await;
    let t = filter_table(&mut s).await;
    let f = chain(vec![family("cf1"), filter(F::CellsPerColumnLimitFilter(1))]);
    assert_eq!(
        apply(&mut s, &t, f).await,
        ["r1/cf1:a@3000=v3", "r1/cf1:b@1000=b1", "r2/cf1:a@1000=x"]
    );
    let f = chain(vec![
        family("cf1"),
        qualifier("a"),
        filter(F::ValueRegexFilter(b"v[12]".to_vec())),
    ]);
    assert_eq!(
        apply(&mut s, &t, f).await,
        ["r1/cf1:a@2000=v2", "r1/cf1:a@1000=v1"]
    );
    // Order matters: limit then family differs from family then limit.
    let f = chain(vec![filter(F::CellsPerRowLimitFilter(1)), family("cf2")]);
    assert_eq!(apply(&mut s, &t, f).await, ["r3/cf2:c@1000=zzz"]);
    let f = chain(vec![family("cf2"), filter(F::CellsPerRowLimitFilter(1))]);
    assert_eq!(
        apply(&mut s, &t, f).await,
        ["r1/cf2:c@5000=c5", "r2/cf2:d@2000=yy", "r3/cf2:c@1000=zzz"]
    );
    // Nested chains; a block anywhere blocks everything.
    let f = chain(vec![chain(vec![family("cf1"), qualifier("b")]), label("l")]);
    assert_eq!(apply(&mut s, &t, f).await, ["r1/cf1:b@1000=b1[l]"]);
    assert!(
        apply(&mut s, &t, chain(vec![pass_all(), block_all(), pass_all()]))
            .await
            .is_empty()
    );
}

#[tokio::test]
async fn interleave_filter() {
    let mut s = Server::start().await;
    let t = filter_table(&mut s).await;
    // Results merge in the standard order.
    let f = interleave(vec![family("cf2"), qualifier("a")]);
    assert_eq!(
        apply(&mut s, &t, f).await,
        [
            "r1/cf1:a@3000=v3",
            "r1/cf1:a@2000=v2",
            "r1/cf1:a@1000=v1",
            "r1/cf2:c@5000=c5",
            "r2/cf1:a@1000=x",
            "r2/cf2:d@2000=yy",
            "r3/cf2:c@1000=zzz",
        ]
    );
    // Duplicates are kept.
    let f = interleave(vec![
        qualifier("a"),
        filter(F::ValueRegexFilter(b"v.".to_vec())),
    ]);
    assert_eq!(
        apply(&mut s, &t, f).await,
        [
            "r1/cf1:a@3000=v3",
            "r1/cf1:a@3000=v3",
            "r1/cf1:a@2000=v2",
            "r1/cf1:a@2000=v2",
            "r1/cf1:a@1000=v1",
            "r1/cf1:a@1000=v1",
            "r2/cf1:a@1000=x",
        ]
    );
    let f = interleave(vec![
        chain(vec![qualifier("c"), label("x")]),
        chain(vec![qualifier("c"), label("y")]),
    ]);
    assert_eq!(
        sorted(apply(&mut s, &t, f).await),
        [
            "r1/cf2:c@5000=c5[x]",
            "r1/cf2:c@5000=c5[y]",
            "r3/cf2:c@1000=zzz[x]",
            "r3/cf2:c@1000=zzz[y]",
        ]
    );
    let f = interleave(vec![pass_all(), pass_all(), pass_all()]);
    assert_eq!(apply(&mut s, &t, f).await.len(), 3 * ALL_CELLS.len());
    assert!(
        apply(&mut s, &t, interleave(vec![block_all(), block_all()]))
            .await
            .is_empty()
    );
}

#[tokio::test]
async fn condition_filter() {
    let mut s = Server::start().await;
    let t = filter_table(&mut s).await;
    let labeled = |rows: &[(&str, &str)]| -> Vec<String> {
        ALL_CELLS
            .iter()
            .filter_map(|c| {
                rows.iter()
                    .find(|(r, _)| c.starts_with(&format!("{r}/")))
                    .map(|(_, l)| format!("{c}[{l}]"))
            })
            .collect()
    };
    // Only r1 has column b.
    let f = condition(qualifier("b"), Some(label("t")), Some(label("f")));
    assert_eq!(
        apply(&mut s, &t, f).await,
        labeled(&[("r1", "t"), ("r2", "f"), ("r3", "f")])
    );
    // A missing branch outputs nothing.
    let f = condition(qualifier("b"), None, Some(label("f")));
    assert_eq!(
        apply(&mut s, &t, f).await,
        labeled(&[("r2", "f"), ("r3", "f")])
    );
    let f = condition(qualifier("b"), Some(label("t")), None);
    assert_eq!(apply(&mut s, &t, f).await, labeled(&[("r1", "t")]));
    // The predicate sees the condition's input, not the whole row.
    let f = chain(vec![
        family("cf2"),
        condition(qualifier("a"), Some(label("t")), Some(label("f"))),
    ]);
    assert_eq!(
        apply(&mut s, &t, f).await,
        [
            "r1/cf2:c@5000=c5[f]",
            "r2/cf2:d@2000=yy[f]",
            "r3/cf2:c@1000=zzz[f]"
        ]
    );
    // The branches filter the condition's input, not the predicate's output.
    let f = condition(qualifier("b"), Some(family("cf2")), Some(block_all()));
    assert_eq!(apply(&mut s, &t, f).await, ["r1/cf2:c@5000=c5"]);
    // Nested conditions.
    let inner = condition(qualifier("d"), Some(label("d")), Some(label("nd")));
    let f = condition(qualifier("b"), Some(label("b")), Some(inner));
    assert_eq!(
        apply(&mut s, &t, f).await,
        labeled(&[("r1", "b"), ("r2", "d"), ("r3", "nd")])
    );
}

#[tokio::test]
async fn sink_filter() {
    let mut s = Server::start().await;
    let t = filter_table(&mut s).await;
    assert_eq!(apply(&mut s, &t, sink()).await, ALL_CELLS);
    // The example from the RowFilter documentation: every cf1 cell reaches
    // the output through the sink (labeled), past the qualifier filter.
    let f = chain(vec![
        family("cf1"),
        interleave(vec![pass_all(), chain(vec![label("foo"), sink()])]),
        qualifier("b"),
    ]);
    assert_eq!(
        sorted(apply(&mut s, &t, f).await),
        [
            "r1/cf1:a@1000=v1[foo]",
            "r1/cf1:a@2000=v2[foo]",
            "r1/cf1:a@3000=v3[foo]",
            "r1/cf1:b@1000=b1",
            "r1/cf1:b@1000=b1[foo]",
            "r2/cf1:a@1000=x[foo]",
        ]
    );
    // Sunk cells skip the filters after the sink, even block_all.
    let f = chain(vec![
        chain(vec![qualifier("c"), sink()]),
        filter(F::StripValueTransformer(true)),
    ]);
    assert_eq!(
        apply(&mut s, &t, f).await,
        ["r1/cf2:c@5000=c5", "r3/cf2:c@1000=zzz"]
    );
    let f = chain(vec![
        interleave(vec![chain(vec![qualifier("b"), sink()]), pass_all()]),
        block_all(),
    ]);
    assert_eq!(apply(&mut s, &t, f).await, ["r1/cf1:b@1000=b1"]);
}

#[tokio::test]
async fn invalid_filters_are_rejected() {
    let mut s = Server::start().await;
    let t = filter_table(&mut s).await;
    let no_predicate = filter(F::Condition(Box::new(v2::row_filter::Condition {
        predicate_filter: None,
        true_filter: Some(Box::new(pass_all())),
        false_filter: None,
    })));
    let mut deep = pass_all();
    for _ in 0..25 {
        deep = chain(vec![deep, pass_all()]);
    }
    let column_range = |family: &str| {
        filter(F::ColumnRangeFilter(v2::ColumnRange {
            family_name: family.into(),
            start_qualifier: None,
            end_qualifier: None,
        }))
    };
    let ts_range = |s: i64, e: i64| {
        filter(F::TimestampRangeFilter(v2::TimestampRange {
            start_timestamp_micros: s,
            end_timestamp_micros: e,
        }))
    };
    let cases: Vec<(&str, RowFilter)> = vec![
        ("chain of one", chain(vec![pass_all()])),
        ("empty chain", chain(vec![])),
        ("interleave of one", interleave(vec![pass_all()])),
        ("empty interleave", interleave(vec![])),
        ("pass_all false", filter(F::PassAllFilter(false))),
        ("block_all false", filter(F::BlockAllFilter(false))),
        ("sink false", filter(F::Sink(false))),
        ("strip_value false", filter(F::StripValueTransformer(false))),
        ("no filter set", RowFilter { filter: None }),
        ("condition without predicate", no_predicate),
        (
            "bad row key regex",
            filter(F::RowKeyRegexFilter(b"(".to_vec())),
        ),
        ("bad family regex", family("[")),
        ("bad qualifier regex", qualifier("a{2,1}")),
        (
            "bad value regex",
            filter(F::ValueRegexFilter(b"(?P<".to_vec())),
        ),
        (
            "cells_per_row_limit 0",
            filter(F::CellsPerRowLimitFilter(0)),
        ),
        (
            "cells_per_row_limit -1",
            filter(F::CellsPerRowLimitFilter(-1)),
        ),
        (
            "cells_per_column_limit 0",
            filter(F::CellsPerColumnLimitFilter(0)),
        ),
        (
            "cells_per_row_offset -1",
            filter(F::CellsPerRowOffsetFilter(-1)),
        ),
        ("column range without family", column_range("")),
        (
            "timestamp range ends before it starts",
            ts_range(3000, 2000),
        ),
        ("negative timestamp range", ts_range(-1000, 0)),
        ("bad label", label("Bad")),
        (
            "invalid deep inside",
            chain(vec![
                pass_all(),
                interleave(vec![pass_all(), qualifier("(")]),
            ]),
        ),
        (
            "invalid in a condition branch",
            condition(pass_all(), Some(filter(F::PassAllFilter(false))), None),
        ),
        ("nested too deeply", deep),
    ];
    for (what, f) in cases {
        assert_eq!(
            filter_code(&mut s, &t, f).await,
            Code::InvalidArgument,
            "{what}"
        );
    }
}
