//! MutateRows over gRPC: per-entry statuses, order, whole-request errors.

mod common;

use common::*;
use googleapis_tonic_google_bigtable_v2::google::bigtable::v2;
use tonic::Code;

#[tokio::test]
async fn mutate_rows_reports_each_entry() {
    let mut s = Server::start().await;
    let t = create_table(&mut s, "t", &["cf", "cf2"]).await;
    let set = |v: &[u8]| set_cell("cf", b"q", 1000, v);
    let codes = mutate_rows(
        &mut s,
        &t,
        vec![
            entry(b"r1", vec![set(b"1")]),
            entry(b"r2", vec![set(b"2"), set_cell("nope", b"q", 1000, b"x")]),
            entry(b"r3", vec![set(b"3"), set_cell("cf2", b"q", 2000, b"3b")]),
            entry(b"", vec![set(b"4")]),
            entry(b"r5", vec![]),
            entry(b"r6", vec![set_cell("cf", b"q", 1234, b"6")]),
            entry(b"r7", vec![Mutation { mutation: None }]),
            entry(b"r1", vec![set_cell("cf", b"q", 2000, b"1b")]),
        ],
    )
    .await
    .unwrap();
    let ok = Code::Ok as i32;
    let bad = Code::InvalidArgument as i32;
    // The entry naming a family the table lacks is NOT_FOUND, as Bigtable.
    let missing = Code::NotFound as i32;
    assert_eq!(codes, vec![ok, missing, ok, bad, bad, bad, bad, ok]);
    let rows = read_all(&mut s, &t).await;
    assert_eq!(
        rows,
        vec![
            (
                b"r1".to_vec(),
                vec![cell("cf", "q", 2000, "1b"), cell("cf", "q", 1000, "1")]
            ),
            (
                b"r3".to_vec(),
                vec![cell("cf", "q", 1000, "3"), cell("cf2", "q", 2000, "3b")]
            ),
        ]
    );
    // Entries for the same row apply in order.
    let codes = mutate_rows(
        &mut s,
        &t,
        vec![
            entry(b"r9", vec![set(b"x")]),
            entry(b"r9", vec![delete_row()]),
            entry(b"r9", vec![set_cell("cf", b"z", 1000, b"y")]),
        ],
    )
    .await
    .unwrap();
    assert_eq!(codes, vec![ok; 3]);
    assert_eq!(
        read_row(&mut s, &t, b"r9").await,
        vec![cell("cf", "z", 1000, "y")]
    );
    // Whole-request errors.
    let e = mutate_rows(
        &mut s,
        &table_name("missing"),
        vec![entry(b"r", vec![set(b"x")])],
    )
    .await
    .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
    let e = mutate_rows(&mut s, &t, vec![]).await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    // Many entries in one request.
    let many: Vec<_> = (0..500)
        .map(|i| entry(format!("m{i:04}").as_bytes(), vec![set(b"v")]))
        .collect();
    let codes = mutate_rows(&mut s, &t, many).await.unwrap();
    assert!(codes.iter().all(|&c| c == ok));
    assert_eq!(read_all(&mut s, &t).await.len(), 3 + 500);
}

fn entry(key: &[u8], mutations: Vec<Mutation>) -> v2::mutate_rows_request::Entry {
    v2::mutate_rows_request::Entry {
        row_key: key.to_vec(),
        mutations,
        idempotency: None,
    }
}

async fn mutate_rows(
    s: &mut Server,
    table: &str,
    entries: Vec<v2::mutate_rows_request::Entry>,
) -> Result<Vec<i32>, tonic::Status> {
    let n = entries.len();
    let mut stream = s
        .data
        .mutate_rows(v2::MutateRowsRequest {
            table_name: table.into(),
            entries,
            ..Default::default()
        })
        .await?
        .into_inner();
    let mut codes = vec![None; n];
    while let Some(resp) = stream.message().await? {
        for e in resp.entries {
            let i = e.index as usize;
            assert!(codes[i].is_none(), "entry {i} reported twice");
            codes[i] = Some(e.status.map_or(0, |s| s.code));
        }
    }
    Ok(codes
        .into_iter()
        .enumerate()
        .map(|(i, c)| c.unwrap_or_else(|| panic!("entry {i} has no status")))
        .collect())
}

#[tokio::test]
async fn add_to_cell_value_kinds() {
    use v2::value::Kind;
    let mut s = Server::start().await;
    try_create_table(&mut s, "agg", vec![("sum", agg_family(Agg::Sum))])
        .await
        .unwrap();
    let t = table_name("agg");
    let add = |q: Kind, ts: Kind, input: Kind| {
        let value = |k: Kind| {
            Some(v2::Value {
                r#type: None,
                kind: Some(k),
            })
        };
        Mutation {
            mutation: Some(v2::mutation::Mutation::AddToCell(v2::mutation::AddToCell {
                family_name: "sum".into(),
                column_qualifier: value(q),
                timestamp: value(ts),
                input: value(input),
            })),
        }
    };
    let ts = |seconds: i64| Kind::TimestampValue(prost_types::Timestamp { seconds, nanos: 0 });
    // Qualifiers as bytes or strings, timestamps as micros or Timestamps,
    // inputs as ints or 8-byte big-endian bytes.
    let ok = vec![
        add(Kind::BytesValue(b"q".to_vec()), ts(2), Kind::IntValue(1)),
        add(
            Kind::StringValue("q".into()),
            Kind::RawTimestampMicros(2_000_000),
            Kind::RawValue(i64be(2)),
        ),
        add(
            Kind::RawValue(b"q".to_vec()),
            Kind::IntValue(2_000_000),
            Kind::BytesValue(i64be(3)),
        ),
    ];
    mutate(&mut s, &t, b"r", ok).await.unwrap();
    assert_eq!(
        read_row(&mut s, &t, b"r").await,
        vec![("sum".into(), b"q".to_vec(), 2_000_000, i64be(6), vec![])]
    );
    let bad = [
        (
            "timestamp overflows",
            add(
                Kind::RawValue(b"q".to_vec()),
                ts(i64::MAX),
                Kind::IntValue(1),
            ),
        ),
        (
            "negative timestamp",
            add(Kind::RawValue(b"q".to_vec()), ts(-1), Kind::IntValue(1)),
        ),
        (
            "input of 4 bytes",
            add(
                Kind::RawValue(b"q".to_vec()),
                ts(1),
                Kind::RawValue(vec![0; 4]),
            ),
        ),
        (
            "qualifier as an int",
            add(Kind::IntValue(1), ts(1), Kind::IntValue(1)),
        ),
    ];
    for (what, m) in bad {
        let e = mutate(&mut s, &t, b"r", vec![m]).await.unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument, "{what}: {e:?}");
    }
    assert_eq!(read_row(&mut s, &t, b"r").await[0].3, i64be(6));
}
