//! MutateRow and MutateRows over gRPC: every mutation kind, order within a
//! request, validation (nothing applied on error), per-entry statuses.

mod common;

use common::*;
use tonic::Code;

async fn setup(s: &mut Server) -> String {
    let name = create_table(s, "t", &["cf", "cf2"]).await;
    try_create_table(
        s,
        "agg",
        vec![
            ("sum", agg_family(Agg::Sum)),
            ("min", agg_family(Agg::Min)),
            ("max", agg_family(Agg::Max)),
        ],
    )
    .await
    .unwrap();
    name
}

#[tokio::test]
async fn set_cell_explicit_and_server_timestamps() {
    let mut s = Server::start().await;
    let t = setup(&mut s).await;
    put(&mut s, &t, b"r", "cf", b"q", 5000, b"explicit").await;
    put(&mut s, &t, b"r", "cf", b"q", 0, b"zero").await;
    let before = now_micros();
    put(&mut s, &t, b"r", "cf", b"now", -1, b"server").await;
    let after = now_micros() + 1000;
    let cells = read_row(&mut s, &t, b"r").await;
    assert_eq!(cells[0], cell("cf", "now", cells[0].2, "server"));
    let ts = cells[0].2;
    assert!(
        ts >= before && ts <= after && ts % 1000 == 0,
        "server time {ts} in [{before}, {after}]"
    );
    assert_eq!(
        &cells[1..],
        &[
            cell("cf", "q", 5000, "explicit"),
            cell("cf", "q", 0, "zero")
        ]
    );
    // Overwriting the same timestamp replaces the value; empty values are cells.
    put(&mut s, &t, b"r", "cf", b"q", 5000, b"again").await;
    put(&mut s, &t, b"r", "cf2", b"", 1000, b"").await;
    let cells = read_row(&mut s, &t, b"r").await;
    assert_eq!(cells[1], cell("cf", "q", 5000, "again"));
    assert_eq!(cells[3], cell("cf2", "", 1000, ""));
}

#[tokio::test]
async fn delete_from_column_family_and_row() {
    let mut s = Server::start().await;
    let t = setup(&mut s).await;
    let fill = |key: &'static [u8]| {
        let mut m = Vec::new();
        for ts in [1000, 2000, 3000, 4000] {
            m.push(set_cell("cf", b"a", ts, b"v"));
        }
        m.push(set_cell("cf", b"b", 1000, b"v"));
        m.push(set_cell("cf2", b"a", 1000, b"v"));
        (key, m)
    };
    for k in [&b"r1"[..], b"r2", b"r3", b"r4", b"r5"] {
        let (k, m) = fill(k);
        mutate(&mut s, &t, k, m).await.unwrap();
    }
    let ts_of = |cells: &[Cell], q: &str| -> Vec<i64> {
        cells
            .iter()
            .filter(|c| c.0 == "cf" && c.1 == q.as_bytes())
            .map(|c| c.2)
            .collect()
    };
    // Whole column.
    mutate(&mut s, &t, b"r1", vec![delete_column("cf", b"a", None)])
        .await
        .unwrap();
    let c = read_row(&mut s, &t, b"r1").await;
    assert_eq!(ts_of(&c, "a"), Vec::<i64>::new());
    assert_eq!(c.len(), 2);
    // [2000, 4000): start inclusive, end exclusive.
    mutate(
        &mut s,
        &t,
        b"r2",
        vec![delete_column("cf", b"a", Some((2000, 4000)))],
    )
    .await
    .unwrap();
    assert_eq!(
        ts_of(&read_row(&mut s, &t, b"r2").await, "a"),
        vec![4000, 1000]
    );
    // End 0: no upper bound.
    mutate(
        &mut s,
        &t,
        b"r3",
        vec![delete_column("cf", b"a", Some((3000, 0)))],
    )
    .await
    .unwrap();
    assert_eq!(
        ts_of(&read_row(&mut s, &t, b"r3").await, "a"),
        vec![2000, 1000]
    );
    // Family.
    mutate(&mut s, &t, b"r4", vec![delete_family("cf")])
        .await
        .unwrap();
    assert_eq!(
        read_row(&mut s, &t, b"r4").await,
        vec![cell("cf2", "a", 1000, "v")]
    );
    // Row.
    mutate(&mut s, &t, b"r5", vec![delete_row()]).await.unwrap();
    assert_eq!(
        keys(&read_all(&mut s, &t).await),
        bkeys(&["r1", "r2", "r3", "r4"])
    );
    // Deleting what is not there is fine.
    mutate(
        &mut s,
        &t,
        b"none",
        vec![
            delete_row(),
            delete_family("cf"),
            delete_column("cf", b"x", None),
        ],
    )
    .await
    .unwrap();
    // A bad time range.
    let e = mutate(
        &mut s,
        &t,
        b"r2",
        vec![delete_column("cf", b"a", Some((3000, 2000)))],
    )
    .await
    .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    let e = mutate(
        &mut s,
        &t,
        b"r2",
        vec![delete_column("cf", b"a", Some((1500, 0)))],
    )
    .await
    .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert_eq!(
        ts_of(&read_row(&mut s, &t, b"r2").await, "a"),
        vec![4000, 1000]
    );
}

#[tokio::test]
async fn add_to_cell_sum_min_max() {
    let mut s = Server::start().await;
    setup(&mut s).await;
    let t = table_name("agg");
    let adds = |fam: &str, xs: &[i64]| {
        xs.iter()
            .map(|&x| add_to_cell(fam, b"c", 1000, x))
            .collect::<Vec<_>>()
    };
    for fam in ["sum", "min", "max"] {
        mutate(&mut s, &t, b"r", adds(fam, &[5, -3, 10]))
            .await
            .unwrap();
    }
    let val = |cells: &[Cell], fam: &str| -> i64 {
        let c: Vec<&Cell> = cells.iter().filter(|c| c.0 == fam).collect();
        assert_eq!(c.len(), 1, "{fam}: one cell per (column, timestamp)");
        assert_eq!(c[0].2, 1000);
        i64::from_be_bytes(c[0].3.as_slice().try_into().expect("8 bytes"))
    };
    let c = read_row(&mut s, &t, b"r").await;
    assert_eq!(
        (val(&c, "sum"), val(&c, "min"), val(&c, "max")),
        (12, -3, 10)
    );
    // Across requests.
    for fam in ["sum", "min", "max"] {
        mutate(&mut s, &t, b"r", adds(fam, &[100])).await.unwrap();
        mutate(&mut s, &t, b"r", adds(fam, &[-50])).await.unwrap();
    }
    let c = read_row(&mut s, &t, b"r").await;
    assert_eq!(
        (val(&c, "sum"), val(&c, "min"), val(&c, "max")),
        (62, -50, 100)
    );
    // Another timestamp is another cell.
    mutate(&mut s, &t, b"r", vec![add_to_cell("sum", b"c", 2000, 1)])
        .await
        .unwrap();
    let c = read_row(&mut s, &t, b"r").await;
    let sums: Vec<(i64, Vec<u8>)> = c
        .iter()
        .filter(|c| c.0 == "sum")
        .map(|c| (c.2, c.3.clone()))
        .collect();
    assert_eq!(sums, vec![(2000, i64be(1)), (1000, i64be(62))]);
    // A SetCell of 8 bytes sets the state; later adds combine with it.
    mutate(
        &mut s,
        &t,
        b"s",
        vec![set_cell("sum", b"c", 1000, &i64be(40))],
    )
    .await
    .unwrap();
    mutate(&mut s, &t, b"s", vec![add_to_cell("sum", b"c", 1000, 2)])
        .await
        .unwrap();
    assert_eq!(
        read_row(&mut s, &t, b"s").await,
        vec![("sum".into(), b"c".to_vec(), 1000, i64be(42), vec![])]
    );
    // Set then add, and delete then add, within one request.
    mutate(
        &mut s,
        &t,
        b"s",
        vec![
            delete_row(),
            add_to_cell("sum", b"c", 1000, 7),
            add_to_cell("sum", b"c", 1000, 1),
        ],
    )
    .await
    .unwrap();
    assert_eq!(read_row(&mut s, &t, b"s").await[0].3, i64be(8));
    // Deletes remove aggregate cells, merged or not.
    mutate(
        &mut s,
        &t,
        b"d",
        vec![
            add_to_cell("sum", b"c", 1000, 3),
            add_to_cell("max", b"c", 1000, 3),
        ],
    )
    .await
    .unwrap();
    mutate(&mut s, &t, b"d", vec![add_to_cell("sum", b"c", 1000, 4)])
        .await
        .unwrap();
    mutate(&mut s, &t, b"d", vec![delete_family("sum")])
        .await
        .unwrap();
    assert_eq!(
        read_row(&mut s, &t, b"d").await,
        vec![("max".into(), b"c".to_vec(), 1000, i64be(3), vec![])]
    );
    mutate(&mut s, &t, b"d", vec![add_to_cell("sum", b"c", 1000, 5)])
        .await
        .unwrap();
    mutate(&mut s, &t, b"d", vec![delete_column("max", b"c", None)])
        .await
        .unwrap();
    assert_eq!(
        read_row(&mut s, &t, b"d").await,
        vec![("sum".into(), b"c".to_vec(), 1000, i64be(5), vec![])]
    );
    // Errors: AddToCell on a bytes family, SetCell of the wrong width, bad timestamp.
    let bytes_t = table_name("t");
    let e = mutate(
        &mut s,
        &bytes_t,
        b"r",
        vec![add_to_cell("cf", b"c", 1000, 1)],
    )
    .await
    .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    let e = mutate(&mut s, &t, b"r", vec![set_cell("sum", b"c", 1000, b"abc")])
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    let e = mutate(&mut s, &t, b"r", vec![add_to_cell("sum", b"c", 1001, 1)])
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
}

#[tokio::test]
async fn mutations_apply_in_order() {
    let mut s = Server::start().await;
    let t = setup(&mut s).await;
    put(&mut s, &t, b"a", "cf", b"old", 1000, b"x").await;
    mutate(
        &mut s,
        &t,
        b"a",
        vec![set_cell("cf", b"q", 1000, b"v"), delete_row()],
    )
    .await
    .unwrap();
    assert!(
        read_all(&mut s, &t).await.is_empty(),
        "SetCell then DeleteFromRow leaves nothing"
    );
    put(&mut s, &t, b"b", "cf", b"old", 1000, b"x").await;
    mutate(
        &mut s,
        &t,
        b"b",
        vec![delete_row(), set_cell("cf", b"q", 1000, b"new")],
    )
    .await
    .unwrap();
    assert_eq!(
        read_row(&mut s, &t, b"b").await,
        vec![cell("cf", "q", 1000, "new")]
    );
    mutate(
        &mut s,
        &t,
        b"c",
        vec![
            set_cell("cf", b"q", 1000, b"1"),
            set_cell("cf", b"q", 2000, b"2"),
            delete_column("cf", b"q", Some((2000, 0))),
            set_cell("cf", b"q", 3000, b"3"),
            set_cell("cf2", b"q", 1000, b"f"),
            delete_family("cf2"),
        ],
    )
    .await
    .unwrap();
    assert_eq!(
        read_row(&mut s, &t, b"c").await,
        vec![cell("cf", "q", 3000, "3"), cell("cf", "q", 1000, "1")]
    );
}

#[tokio::test]
async fn bad_mutations_apply_nothing() {
    let mut s = Server::start().await;
    let t = setup(&mut s).await;
    let good = || set_cell("cf", b"q", 1000, b"good");
    let cases: Vec<(&str, Vec<u8>, Vec<Mutation>)> = vec![
        (
            "unknown family",
            b"r".to_vec(),
            vec![good(), set_cell("nope", b"q", 1000, b"v")],
        ),
        (
            "ts not a multiple of 1000",
            b"r".to_vec(),
            vec![good(), set_cell("cf", b"q", 1500, b"v")],
        ),
        (
            "negative ts",
            b"r".to_vec(),
            vec![good(), set_cell("cf", b"q", -2000, b"v")],
        ),
        (
            "ts -2",
            b"r".to_vec(),
            vec![good(), set_cell("cf", b"q", -2, b"v")],
        ),
        ("row key too long", vec![b'k'; 4097], vec![good()]),
        ("empty row key", vec![], vec![good()]),
        ("no mutations", b"r".to_vec(), vec![]),
        (
            "no operation set",
            b"r".to_vec(),
            vec![good(), Mutation { mutation: None }],
        ),
        (
            "qualifier too long",
            b"r".to_vec(),
            vec![good(), set_cell("cf", &[b'q'; 16 * 1024 + 1], 1000, b"v")],
        ),
        (
            "delete from unknown family",
            b"r".to_vec(),
            vec![good(), delete_family("nope")],
        ),
    ];
    for (what, key, muts) in cases {
        let e = mutate(&mut s, &t, &key, muts).await.unwrap_err();
        if what.contains("unknown family") {
            // Bigtable's answer: NOT_FOUND, naming the family.
            assert_eq!(e.code(), Code::NotFound, "{what}: {e:?}");
            assert!(
                e.message().contains("Requested column family not found")
                    && e.message().contains("nope"),
                "{what}: {e:?}"
            );
        } else {
            assert_eq!(e.code(), Code::InvalidArgument, "{what}: {e:?}");
        }
        assert!(
            read_all(&mut s, &t).await.is_empty(),
            "{what}: nothing applied"
        );
    }
    let e = mutate(&mut s, &table_name("missing"), b"r", vec![good()])
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
    let e = mutate(&mut s, "not/a/table", b"r", vec![good()])
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    // The limits themselves are fine.
    mutate(&mut s, &t, &[b'k'; 4096], vec![good()])
        .await
        .unwrap();
    mutate(
        &mut s,
        &t,
        b"max",
        vec![set_cell("cf", b"q", i64::MAX - i64::MAX % 1000, b"v")],
    )
    .await
    .unwrap();
    assert_eq!(read_all(&mut s, &t).await.len(), 2);
}

#[tokio::test]
async fn value_over_100_mib_is_rejected_and_100_mib_round_trips() {
    let mut s = Server::start().await;
    let t = setup(&mut s).await;
    let started = std::time::Instant::now();
    let mut big = vec![7u8; (100 << 20) + 1];
    let e = mutate(&mut s, &t, b"r", vec![set_cell("cf", b"q", 1000, &big)])
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    assert!(read_all(&mut s, &t).await.is_empty());
    // Exactly the limit is fine, and reads back (split into chunks).
    big.pop();
    big[12345] = 1;
    mutate(&mut s, &t, b"r", vec![set_cell("cf", b"q", 1000, &big)])
        .await
        .unwrap();
    s.db().engine().flush_all().unwrap();
    let rows = read_all(&mut s, &t).await;
    assert_eq!(rows.len(), 1);
    assert!(rows[0].1[0].3 == big, "the 100 MiB value reads back");
    assert!(
        started.elapsed().as_secs() < 30,
        "took {:?}",
        started.elapsed()
    );
}
