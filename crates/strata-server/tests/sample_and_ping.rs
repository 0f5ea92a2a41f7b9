//! SampleRowKeys and PingAndWarm over gRPC.

mod common;

use common::*;
use googleapis_tonic_google_bigtable_v2::google::bigtable::v2;
use tonic::Code;

#[tokio::test]
async fn sample_row_keys() {
    let mut s = Server::start().await;
    let t = create_table(&mut s, "t", &["cf"]).await;
    let sample = |s: &mut Server, table: String| {
        let mut client = s.data.clone();
        async move {
            let mut stream = client
                .sample_row_keys(v2::SampleRowKeysRequest {
                    table_name: table,
                    ..Default::default()
                })
                .await?
                .into_inner();
            let mut out = Vec::new();
            while let Some(r) = stream.message().await? {
                out.push((r.row_key, r.offset_bytes));
            }
            Ok::<_, tonic::Status>(out)
        }
    };
    let empty = sample(&mut s, t.clone()).await.unwrap();
    assert_eq!(empty.len(), 1);
    assert!(empty[0].0.is_empty());
    let value = vec![b'x'; 64 << 10];
    for i in 0..64 {
        put(
            &mut s,
            &t,
            format!("row{i:03}").as_bytes(),
            "cf",
            b"q",
            1000,
            &value,
        )
        .await;
    }
    s.db().engine().flush_all().unwrap();
    let got = sample(&mut s, t.clone()).await.unwrap();
    let (last, rest) = got.split_last().unwrap();
    assert!(last.0.is_empty(), "the last sample is the empty key");
    assert!(last.1 > 0, "the last offset is the table size");
    assert!(
        got.windows(2).all(|w| w[0].1 <= w[1].1),
        "offsets never decrease: {got:?}"
    );
    assert!(rest.windows(2).all(|w| w[0].0 < w[1].0), "keys increase");
    assert!(rest.iter().all(|(k, _)| !k.is_empty()));
    let e = sample(&mut s, table_name("missing")).await.unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
}

#[tokio::test]
async fn sample_row_keys_splits_a_large_table() {
    let mut s = Server::start().await;
    let t = create_table(&mut s, "t", &["cf"]).await;
    // 80 MiB of incompressible values: more than one 64 MiB sample step.
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for batch in 0..10 {
        let entries = (0..8)
            .map(|i| {
                let value: Vec<u8> = (0..1 << 20)
                    .map(|_| {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        x as u8
                    })
                    .collect();
                v2::mutate_rows_request::Entry {
                    row_key: format!("row{:03}", batch * 8 + i).into_bytes(),
                    mutations: vec![set_cell("cf", b"q", 1000, &value)],
                    idempotency: None,
                }
            })
            .collect();
        let req = v2::MutateRowsRequest {
            table_name: t.clone(),
            entries,
            ..Default::default()
        };
        let mut stream = s.data.mutate_rows(req).await.unwrap().into_inner();
        while let Some(r) = stream.message().await.unwrap() {
            assert!(r
                .entries
                .iter()
                .all(|e| e.status.as_ref().is_none_or(|s| s.code == 0)));
        }
    }
    s.db().engine().flush_all().unwrap();
    let mut stream = s
        .data
        .sample_row_keys(v2::SampleRowKeysRequest {
            table_name: t.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let mut got = Vec::new();
    while let Some(r) = stream.message().await.unwrap() {
        got.push((r.row_key, r.offset_bytes));
    }
    let (last, rest) = got.split_last().unwrap();
    assert!(last.0.is_empty() && last.1 >= 80 << 20, "{last:?}");
    assert!(!rest.is_empty(), "a sample inside the table: {got:?}");
    assert!(
        got.windows(2).all(|w| w[0].1 <= w[1].1),
        "offsets never decrease: {got:?}"
    );
    assert!(rest.windows(2).all(|w| w[0].0 < w[1].0));
    for (k, off) in rest {
        assert!(
            k.as_slice() > &b"row000"[..] && k.as_slice() <= &b"row079\xff"[..],
            "{k:?}"
        );
        assert!(*off > 0 && *off < last.1);
    }
}

#[tokio::test]
async fn ping_and_warm() {
    let mut s = Server::start().await;
    let ping = |name: &str| v2::PingAndWarmRequest {
        name: name.into(),
        app_profile_id: String::new(),
    };
    s.data.ping_and_warm(ping(PARENT)).await.unwrap();
    for bad in [
        "",
        "projects/p",
        "projects//instances/i",
        "projects/p/instances/i/tables/t",
    ] {
        let e = s.data.ping_and_warm(ping(bad)).await.unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument, "{bad:?}");
    }
}
