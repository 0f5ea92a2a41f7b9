//! ReadRows over gRPC (row sets, limits, reversed scans, large values,
//! request stats, read-time GC), SampleRowKeys and PingAndWarm.

mod common;

use common::*;
use googleapis_tonic_google_bigtable_v2::google::bigtable::v2;
use prost::Message;
use tonic::Code;

/// Rows a..e, each with two families and a few cells.
async fn five_rows(s: &mut Server) -> String {
    let t = create_table(s, "t", &["cf1", "cf2"]).await;
    for k in ["e", "c", "a", "d", "b"] {
        // Written out of order; reads return the standard order.
        let muts = vec![
            set_cell("cf2", b"z", 1000, b"z"),
            set_cell("cf1", b"b", 1000, b"b1"),
            set_cell("cf1", b"a", 1000, b"a1"),
            set_cell("cf1", b"a", 3000, b"a3"),
            set_cell("cf1", b"a", 2000, b"a2"),
        ];
        mutate(s, &t, k.as_bytes(), muts).await.unwrap();
    }
    t
}

fn standard_cells() -> Vec<Cell> {
    vec![
        cell("cf1", "a", 3000, "a3"),
        cell("cf1", "a", 2000, "a2"),
        cell("cf1", "a", 1000, "a1"),
        cell("cf1", "b", 1000, "b1"),
        cell("cf2", "z", 1000, "z"),
    ]
}

async fn read_keys(
    s: &mut Server,
    t: &str,
    rows: Option<RowSet>,
    reversed: bool,
    limit: i64,
) -> Vec<Vec<u8>> {
    let req = ReadRowsRequest {
        reversed,
        rows_limit: limit,
        ..read_req(t, rows, None)
    };
    keys(&try_read(s, req).await.unwrap().rows)
}

#[tokio::test]
async fn row_keys_and_whole_table() {
    let mut s = Server::start().await;
    let t = five_rows(&mut s).await;
    let rows = read_all(&mut s, &t).await;
    assert_eq!(keys(&rows), bkeys(&["a", "b", "c", "d", "e"]));
    assert!(rows.iter().all(|r| r.1 == standard_cells()));
    // An empty RowSet is every row.
    assert_eq!(
        read_keys(&mut s, &t, Some(RowSet::default()), false, 0)
            .await
            .len(),
        5
    );
    // Keys: sorted, deduplicated, missing ones skipped.
    let got = read_keys(
        &mut s,
        &t,
        Some(row_keys(&["d", "b", "zz", "b", "a0"])),
        false,
        0,
    )
    .await;
    assert_eq!(got, bkeys(&["b", "d"]));
    // Keys and ranges together.
    let set = RowSet {
        row_keys: bkeys(&["e", "a"]),
        row_ranges: vec![range(Some(("b", true)), Some(("c", true)))],
    };
    assert_eq!(
        read_keys(&mut s, &t, Some(set), false, 0).await,
        bkeys(&["a", "b", "c", "e"])
    );
}

/// A range bound: (key, closed), or None for unbounded.
type Bound<'a> = Option<(&'a str, bool)>;

#[tokio::test]
async fn row_ranges_every_bound_combination() {
    let mut s = Server::start().await;
    let t = five_rows(&mut s).await;
    let cases: Vec<(Bound, Bound, &[&str])> = vec![
        (Some(("b", true)), Some(("d", true)), &["b", "c", "d"]),
        (Some(("b", true)), Some(("d", false)), &["b", "c"]),
        (Some(("b", false)), Some(("d", true)), &["c", "d"]),
        (Some(("b", false)), Some(("d", false)), &["c"]),
        (None, Some(("c", false)), &["a", "b"]),
        (None, Some(("c", true)), &["a", "b", "c"]),
        (Some(("c", false)), None, &["d", "e"]),
        (Some(("c", true)), None, &["c", "d", "e"]),
        (None, None, &["a", "b", "c", "d", "e"]),
        (
            Some(("", true)),
            Some(("", false)),
            &["a", "b", "c", "d", "e"],
        ),
        (Some(("b", true)), Some(("b", true)), &["b"]),
        (Some(("b", true)), Some(("b", false)), &[]),
        (Some(("b", false)), Some(("b\0", false)), &[]),
        (Some(("a0", true)), Some(("c0", false)), &["b", "c"]),
    ];
    for (start, end, want) in cases {
        let set = ranges(vec![range(start, end)]);
        let got = read_keys(&mut s, &t, Some(set.clone()), false, 0).await;
        assert_eq!(got, bkeys(want), "{start:?}..{end:?}");
        let mut rev = bkeys(want);
        rev.reverse();
        assert_eq!(
            read_keys(&mut s, &t, Some(set), true, 0).await,
            rev,
            "reversed {start:?}..{end:?}"
        );
    }
    // Overlapping and disjoint ranges.
    let set = ranges(vec![
        range(Some(("d", true)), None),
        range(Some(("a", true)), Some(("b", true))),
        range(Some(("a", false)), Some(("b", false))),
    ]);
    assert_eq!(
        read_keys(&mut s, &t, Some(set.clone()), false, 0).await,
        bkeys(&["a", "b", "d", "e"])
    );
    assert_eq!(
        read_keys(&mut s, &t, Some(set), true, 0).await,
        bkeys(&["e", "d", "b", "a"])
    );
}

#[tokio::test]
async fn rows_limit_and_reversed() {
    let mut s = Server::start().await;
    let t = five_rows(&mut s).await;
    assert_eq!(
        read_keys(&mut s, &t, None, false, 2).await,
        bkeys(&["a", "b"])
    );
    assert_eq!(
        read_keys(&mut s, &t, None, true, 2).await,
        bkeys(&["e", "d"])
    );
    assert_eq!(read_keys(&mut s, &t, None, false, 9).await.len(), 5);
    assert_eq!(
        read_keys(&mut s, &t, Some(row_keys(&["c", "e"])), true, 1).await,
        bkeys(&["e"])
    );
    // Rows a filter empties do not count against the limit.
    let f = filter(F::RowKeyRegexFilter(b"[bd]".to_vec()));
    let req = ReadRowsRequest {
        rows_limit: 2,
        ..read_req(&t, None, Some(f))
    };
    assert_eq!(
        keys(&try_read(&mut s, req).await.unwrap().rows),
        bkeys(&["b", "d"])
    );
    // Reversed: cells within a row keep the standard order.
    let req = ReadRowsRequest {
        reversed: true,
        ..read_req(&t, None, None)
    };
    let rows = try_read(&mut s, req).await.unwrap().rows;
    assert_eq!(keys(&rows), bkeys(&["e", "d", "c", "b", "a"]));
    assert!(rows.iter().all(|r| r.1 == standard_cells()));
    let req = ReadRowsRequest {
        rows_limit: -1,
        ..read_req(&t, None, None)
    };
    assert_eq!(read_code(&mut s, req).await, Code::InvalidArgument);
}

#[tokio::test]
async fn binary_row_keys_sort_bytewise() {
    let mut s = Server::start().await;
    let t = create_table(&mut s, "t", &["cf"]).await;
    let ks: Vec<Vec<u8>> = vec![
        b"a".to_vec(),
        b"a\x00".to_vec(),
        b"a\x00\x01".to_vec(),
        b"a\x01".to_vec(),
        b"a\xff".to_vec(),
        b"\x00".to_vec(),
        b"\xff\xff".to_vec(),
        b"b".to_vec(),
    ];
    for k in ks.iter().rev() {
        mutate(&mut s, &t, k, vec![set_cell("cf", b"\x00q\xff", 1000, k)])
            .await
            .unwrap();
    }
    let mut want = ks.clone();
    want.sort();
    let rows = read_all(&mut s, &t).await;
    assert_eq!(keys(&rows), want);
    assert!(rows
        .iter()
        .all(|r| r.1[0].1 == b"\x00q\xff" && r.1[0].3 == r.0));
    let req = ReadRowsRequest {
        reversed: true,
        ..read_req(&t, None, None)
    };
    want.reverse();
    assert_eq!(keys(&try_read(&mut s, req).await.unwrap().rows), want);
    // A key that is a prefix of others is read alone.
    let set = RowSet {
        row_keys: vec![b"a".to_vec()],
        row_ranges: vec![],
    };
    assert_eq!(
        keys(
            &try_read(&mut s, read_req(&t, Some(set), None))
                .await
                .unwrap()
                .rows
        ),
        vec![b"a".to_vec()]
    );
}

#[tokio::test]
async fn large_value_is_split_across_chunks() {
    let mut s = Server::start().await;
    let t = create_table(&mut s, "t", &["cf"]).await;
    let big: Vec<u8> = (0..10 << 20).map(|i: u32| (i % 251) as u8).collect();
    mutate(
        &mut s,
        &t,
        b"big",
        vec![
            set_cell("cf", b"a", 1000, b"before"),
            set_cell("cf", b"b", 1000, &big),
            set_cell("cf", b"c", 1000, b"after"),
        ],
    )
    .await
    .unwrap();
    mutate(&mut s, &t, b"last", vec![set_cell("cf", b"q", 1000, &big)])
        .await
        .unwrap();
    put(&mut s, &t, b"small", "cf", b"q", 1000, b"s").await;
    let mut stream = s
        .data
        .read_rows(read_req(&t, None, None))
        .await
        .unwrap()
        .into_inner();
    let mut r = Reassembler::new(false);
    let mut split = 0;
    while let Some(resp) = stream.message().await.unwrap() {
        assert!(
            resp.encoded_len() < 4 << 20,
            "a response of {} bytes",
            resp.encoded_len()
        );
        split += resp.chunks.iter().filter(|c| c.value_size > 0).count();
        r.response(resp);
    }
    let out = r.finish();
    assert!(out.responses >= 20, "{} responses", out.responses);
    assert!(
        split >= 18,
        "values are split: {split} chunks with value_size"
    );
    assert_eq!(keys(&out.rows), bkeys(&["big", "last", "small"]));
    let cells = &out.rows[0].1;
    assert_eq!(cells.len(), 3);
    assert_eq!(
        (cells[0].3.as_slice(), cells[2].3.as_slice()),
        (&b"before"[..], &b"after"[..])
    );
    assert!(cells[1].3 == big, "the 10 MiB value reassembles");
    assert!(out.rows[1].1[0].3 == big);
    // Labels ride the first chunk of a split value only (checked by the
    // reassembler); stripped values are not split at all.
    let f = chain(vec![
        filter(F::ColumnQualifierRegexFilter(b"b".to_vec())),
        filter(F::ApplyLabelTransformer("big".into())),
    ]);
    let rows = read_filtered(&mut s, &t, Some(f)).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].1[0].4, vec!["big".to_string()]);
    assert!(rows[0].1[0].3 == big);
    let out = try_read(
        &mut s,
        read_req(&t, None, Some(filter(F::StripValueTransformer(true)))),
    )
    .await
    .unwrap();
    assert_eq!(out.responses, 1);
    assert!(out.rows.iter().all(|r| r.1.iter().all(|c| c.3.is_empty())));
}

#[tokio::test]
async fn row_with_many_cells() {
    let mut s = Server::start().await;
    let t = create_table(&mut s, "t", &["cf"]).await;
    let value = vec![b'v'; 300];
    let muts: Vec<Mutation> = (0..6000)
        .map(|i| {
            set_cell(
                "cf",
                format!("q{i:05}").as_bytes(),
                1000 * (i % 3 + 1),
                &value,
            )
        })
        .collect();
    mutate(&mut s, &t, b"wide", muts).await.unwrap();
    put(&mut s, &t, b"x", "cf", b"q", 1000, b"v").await;
    let out = try_read(&mut s, read_req(&t, None, None)).await.unwrap();
    assert!(out.responses >= 2, "a 2 MB row spans responses");
    assert_eq!(keys(&out.rows), bkeys(&["wide", "x"]));
    let cells = &out.rows[0].1;
    assert_eq!(cells.len(), 6000);
    for (i, c) in cells.iter().enumerate() {
        assert_eq!(c.1, format!("q{i:05}").into_bytes());
        assert_eq!(c.2, 1000 * (i as i64 % 3 + 1));
    }
}

#[tokio::test]
async fn request_stats() {
    use v2::read_rows_request::RequestStatsView;
    use v2::request_stats::StatsView;
    let mut s = Server::start().await;
    let t = five_rows(&mut s).await;
    let full = |t: &str, f: Option<RowFilter>| ReadRowsRequest {
        request_stats_view: RequestStatsView::RequestStatsFull as i32,
        ..read_req(t, None, f)
    };
    let f = chain(vec![
        filter(F::RowKeyRegexFilter(b"[abc]".to_vec())),
        filter(F::CellsPerRowLimitFilter(2)),
    ]);
    let out = try_read(&mut s, full(&t, Some(f))).await.unwrap();
    assert_eq!(out.rows.len(), 3);
    let Some(StatsView::FullReadStatsView(v)) = out.stats.and_then(|st| st.stats_view) else {
        panic!("no full stats");
    };
    let it = v.read_iteration_stats.unwrap();
    assert_eq!((it.rows_returned_count, it.cells_returned_count), (3, 6));
    assert_eq!((it.rows_seen_count, it.cells_seen_count), (5, 25));
    assert!(v
        .request_latency_stats
        .unwrap()
        .frontend_server_latency
        .is_some());
    // Stats come even when no row does.
    let empty = create_table(&mut s, "empty", &["cf"]).await;
    let out = try_read(&mut s, full(&empty, None)).await.unwrap();
    assert!(out.rows.is_empty() && out.stats.is_some());
    assert_eq!(out.responses, 1);
    // Not asked for, not sent.
    for view in [
        RequestStatsView::RequestStatsNone,
        RequestStatsView::Unspecified,
    ] {
        let req = ReadRowsRequest {
            request_stats_view: view as i32,
            ..read_req(&t, None, None)
        };
        assert!(try_read(&mut s, req).await.unwrap().stats.is_none());
    }
}

#[tokio::test]
async fn read_time_gc() {
    let mut s = Server::start().await;
    let fams = vec![
        ("v2", family(Some(versions(2)))),
        ("age", family(Some(max_age(3600)))),
        ("u", family(Some(union(vec![versions(1), max_age(3600)])))),
        (
            "i",
            family(Some(intersection(vec![versions(1), max_age(3600)]))),
        ),
    ];
    try_create_table(&mut s, "t", fams).await.unwrap();
    let t = table_name("t");
    let now = now_micros();
    let old = now - 2 * 3_600_000_000;
    let mut muts = Vec::new();
    for ts in [1000, 2000, 3000] {
        muts.push(set_cell("v2", b"q", ts, format!("{ts}").as_bytes()));
    }
    muts.push(set_cell("age", b"new", now, b"n"));
    muts.push(set_cell("age", b"old", old, b"o"));
    muts.push(set_cell("age", b"ancient", 1000, b"a"));
    for fam in ["u", "i"] {
        muts.push(set_cell(fam, b"q", now, b"n"));
        muts.push(set_cell(fam, b"q", now - 1000, b"n2"));
        muts.push(set_cell(fam, b"q", old, b"o"));
    }
    mutate(&mut s, &t, b"r", muts).await.unwrap();
    let rows = read_all(&mut s, &t).await;
    let got: Vec<(String, Vec<u8>, i64)> = rows[0]
        .1
        .iter()
        .map(|c| (c.0.clone(), c.1.clone(), c.2))
        .collect();
    let want: Vec<(String, Vec<u8>, i64)> = vec![
        ("age".into(), b"new".to_vec(), now),
        // Intersection: erased only when both rules erase (old and not newest).
        ("i".into(), b"q".to_vec(), now),
        ("i".into(), b"q".to_vec(), now - 1000),
        // Union: erased when either rule erases.
        ("u".into(), b"q".to_vec(), now),
        ("v2".into(), b"q".to_vec(), 3000),
        ("v2".into(), b"q".to_vec(), 2000),
    ];
    assert_eq!(got, want);
    // GC also hides cells from filters and row counts.
    let f = filter(F::ColumnQualifierRegexFilter(b"old|ancient".to_vec()));
    assert!(read_filtered(&mut s, &t, Some(f)).await.is_empty());
}

#[tokio::test]
async fn read_errors() {
    let mut s = Server::start().await;
    let t = create_table(&mut s, "t", &["cf"]).await;
    assert_eq!(
        read_code(&mut s, read_req(&table_name("missing"), None, None)).await,
        Code::NotFound
    );
    assert_eq!(
        read_code(&mut s, read_req("projects/p/tables/t", None, None)).await,
        Code::InvalidArgument
    );
    assert_eq!(
        read_code(&mut s, read_req("", None, None)).await,
        Code::InvalidArgument
    );
    let req = ReadRowsRequest {
        authorized_view_name: format!("{t}/authorizedViews/v"),
        ..read_req(&t, None, None)
    };
    assert_eq!(read_code(&mut s, req).await, Code::Unimplemented);
}

#[tokio::test]
async fn a_range_that_ends_before_it_starts_is_invalid_argument() {
    let mut s = Server::start().await;
    let t = create_table(&mut s, "inverted", &["cf"]).await;
    put(&mut s, &t, b"r", "cf", b"q", 1000, b"v").await;
    for (start, end) in [
        (("s", true), ("r", false)),
        (("s", false), ("r", true)),
        (("b", true), ("a", true)),
    ] {
        let req = read_req(&t, Some(ranges(vec![range(Some(start), Some(end))])), None);
        let e = try_read(&mut s, req).await.unwrap_err();
        assert_eq!(e.code(), tonic::Code::InvalidArgument, "{start:?}..{end:?}");
        assert!(e.message().contains("sorts after the end key"), "{e:?}");
    }
    // Empty but well-formed ranges are not errors.
    for (start, end) in [(("r", true), ("r", false)), (("r", false), ("r", true))] {
        let req = read_req(&t, Some(ranges(vec![range(Some(start), Some(end))])), None);
        assert!(try_read(&mut s, req).await.unwrap().rows.is_empty());
    }
    let req = read_req(
        &t,
        Some(ranges(vec![range(Some(("r", true)), Some(("r", true)))])),
        None,
    );
    assert_eq!(try_read(&mut s, req).await.unwrap().rows.len(), 1);
    s.shutdown().await;
}

/// Reads are answered from memory on the request's thread when their
/// blocks are cached, and from storage on the blocking pool when not
/// (`sst::memory_only`): the answers are the same either way.
#[tokio::test]
async fn reads_of_cached_and_uncached_tables_agree() {
    let mut s = Server::start().await;
    let t = create_table(&mut s, "t", &["cf"]).await;
    let value = vec![b'v'; 300];
    for i in 0..400u32 {
        let key = format!("row{i:04}");
        mutate(
            &mut s,
            &t,
            key.as_bytes(),
            vec![set_cell("cf", b"q", 1000, &value)],
        )
        .await
        .unwrap();
    }
    let from_memtable = read_all(&mut s, &t).await;
    assert_eq!(from_memtable.len(), 400);
    s.db().engine().flush_all().unwrap();
    // Cold (tables only, nothing cached: each read starts on this thread,
    // meets an uncached block and runs again on the blocking pool), then
    // warm (the same blocks cached: answered in place).
    for round in ["cold", "warm"] {
        for i in (0..400u32).step_by(37) {
            let key = format!("row{i:04}");
            assert_eq!(
                read_row(&mut s, &t, key.as_bytes()).await,
                vec![cell("cf", "q", 1000, std::str::from_utf8(&value).unwrap())],
                "{round} read of {key}"
            );
        }
        assert_eq!(read_all(&mut s, &t).await, from_memtable, "{round} scan");
    }
}
