//! `serve_on_threads`: connections spread over serving threads, each
//! served whole; a bad thread count refused; a clean stop.

mod common;

use common::*;
use googleapis_tonic_google_bigtable_v2::google::bigtable::v2::{
    MutateRowRequest, ReadRowsRequest,
};
use std::sync::Arc;
use strata_server::{serve_on_threads, ServeError, ServerOptions};
use strata_table::{Database, DatabaseOptions};
use tonic::transport::Channel;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_connections_write_and_read_concurrently() {
    let mut s = Server::start_on_threads(3).await;
    let table = create_table(&mut s, "t", &["cf"]).await;
    let mut tasks = Vec::new();
    for c in 0..7u32 {
        let mut client = BigtableClient::new(connect(s.addr).await);
        let table = table.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..50u32 {
                let row = format!("c{c}-r{i:03}").into_bytes();
                client
                    .mutate_row(MutateRowRequest {
                        table_name: table.clone(),
                        row_key: row.clone(),
                        mutations: vec![set_cell("cf", b"q", 1000, &i.to_be_bytes())],
                        ..Default::default()
                    })
                    .await
                    .expect("mutate_row");
                let mut stream = client
                    .read_rows(ReadRowsRequest {
                        table_name: table.clone(),
                        rows: Some(RowSet {
                            row_keys: vec![row],
                            row_ranges: vec![],
                        }),
                        ..Default::default()
                    })
                    .await
                    .expect("read_rows")
                    .into_inner();
                let mut values = Vec::new();
                while let Some(resp) = stream.message().await.expect("read_rows stream") {
                    values.extend(resp.chunks.into_iter().map(|ch| ch.value));
                }
                assert_eq!(values, vec![i.to_be_bytes().to_vec()], "read back on {c}");
            }
        }));
    }
    for t in tasks {
        t.await.expect("client task");
    }
    let rows = read_all(&mut s, &table).await;
    assert_eq!(rows.len(), 7 * 50, "every connection's writes are there");
    s.shutdown().await;
}

#[tokio::test]
async fn a_stopped_server_refuses_new_connections() {
    let s = Server::start_on_threads(2).await;
    let addr = s.addr;
    s.shutdown().await;
    let refused = Channel::from_shared(format!("http://{addr}"))
        .expect("uri")
        .connect()
        .await;
    assert!(refused.is_err(), "nothing listens after the stop");
}

#[tokio::test]
async fn zero_or_too_many_threads_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Arc::new(Database::open(dir.path(), DatabaseOptions::default()).expect("open"));
    for threads in [0, strata_server::SERVING_THREADS_MAX + 1] {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let served = serve_on_threads(
            db.clone(),
            listener,
            ServerOptions::default(),
            threads,
            std::future::pending(),
        )
        .await;
        match served {
            Err(e @ ServeError::Threads(n)) => {
                assert_eq!(n, threads);
                assert!(e.to_string().contains("serving threads must be 1 to"));
            }
            other => panic!("{threads} threads: {other:?}"),
        }
    }
}
