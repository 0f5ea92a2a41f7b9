//! ReadRows streams a scan as responses that start small (a few rows or
//! about 64 KiB) and double up to 1 MiB, so clients see the first rows at
//! once, a short scan arrives as several messages, and a client can resume
//! a failed stream from the last row it received.

mod common;

use common::*;
use googleapis_tonic_google_bigtable_v2::google::bigtable::v2;
use strata_server::chunks::{
    CHUNK_VALUE_BYTES_MAX, FIRST_RESPONSE_BYTES_TARGET, FIRST_RESPONSE_ROWS_TARGET,
    RESPONSE_BYTES_TARGET_MAX,
};
use v2::read_rows_response::cell_chunk::RowStatus;

const ROWS: usize = 32;
const COLUMNS: usize = 32;

fn key(i: usize) -> Vec<u8> {
    format!("row{i:04}").into_bytes()
}

fn qualifier(j: usize) -> Vec<u8> {
    format!("col{j:03}").into_bytes()
}

fn value(i: usize, j: usize, len: usize) -> Vec<u8> {
    let mut v = format!("{i}/{j}:").into_bytes();
    v.resize(len, b'a' + (i + j) as u8 % 26);
    v
}

/// A table of `rows` x `columns` cells of `len` bytes.
async fn grid(s: &mut Server, rows: usize, columns: usize, len: usize) -> String {
    let t = create_table(s, "t", &["cf"]).await;
    for i in 0..rows {
        let muts = (0..columns)
            .map(|j| set_cell("cf", &qualifier(j), 1000, &value(i, j, len)))
            .collect();
        mutate(s, &t, &key(i), muts).await.expect("write row");
    }
    t
}

/// The rows `grid` wrote, in the order given.
fn expected(rows: impl Iterator<Item = usize>, columns: usize, len: usize) -> Vec<Row> {
    let cell = |i, j| {
        (
            "cf".to_string(),
            qualifier(j),
            1000,
            value(i, j, len),
            vec![],
        )
    };
    rows.map(|i| (key(i), (0..columns).map(|j| cell(i, j)).collect()))
        .collect()
}

/// The rows a response commits.
fn rows_in(resp: &v2::ReadRowsResponse) -> usize {
    let commit = Some(RowStatus::CommitRow(true));
    resp.chunks
        .iter()
        .filter(|c| c.row_status == commit)
        .count()
}

/// Checks response `n` (from 0) of a stream against its bounds: at most
/// FIRST_RESPONSE_ROWS_TARGET << n rows, and under its byte target
/// (FIRST_RESPONSE_BYTES_TARGET << n, at most RESPONSE_BYTES_TARGET_MAX) of
/// values before its last chunk.
fn check_bounds(n: usize, resp: &v2::ReadRowsResponse) {
    let rows = rows_in(resp);
    let rows_target = FIRST_RESPONSE_ROWS_TARGET << n;
    let bytes_target = (FIRST_RESPONSE_BYTES_TARGET << n).min(RESPONSE_BYTES_TARGET_MAX);
    let value_bytes: usize = resp.chunks.iter().map(|c| c.value.len()).sum();
    let last_value = resp.chunks.last().map_or(0, |c| c.value.len());
    assert!(
        rows <= rows_target,
        "response {n} has {rows} rows (bound {rows_target})"
    );
    assert!(
        value_bytes - last_value < bytes_target,
        "response {n} has {value_bytes} value bytes (bound {bytes_target} before its last chunk)"
    );
    assert!(last_value <= CHUNK_VALUE_BYTES_MAX);
}

/// The responses of one ReadRows, each within the bounds, whose rows (the
/// reassembler checks the chunk protocol) must be `want`.
async fn scan(s: &mut Server, req: ReadRowsRequest, want: Vec<Row>) -> Vec<v2::ReadRowsResponse> {
    let mut r = Reassembler::new(req.reversed);
    let mut stream = s.data.read_rows(req).await.expect("read").into_inner();
    let mut all = Vec::new();
    while let Some(resp) = stream.message().await.expect("stream") {
        check_bounds(all.len(), &resp);
        r.response(resp.clone());
        all.push(resp);
    }
    assert!(r.finish().rows == want, "every row complete and in order");
    all
}

#[tokio::test]
async fn a_scan_of_small_rows_arrives_as_several_bounded_messages() {
    let mut s = Server::start().await;
    // Rows of 32 x 16 bytes: about 2 KB each, all 32 about 64 KB, which
    // used to be one response.
    let t = grid(&mut s, ROWS, COLUMNS, 16).await;
    let want = expected(0..ROWS, COLUMNS, 16);
    let resps = scan(&mut s, read_req(&t, None, None), want).await;
    // 4 rows, then twice as many each time; a response ends with a whole
    // row (small rows never straddle two).
    assert_eq!(resps.iter().map(rows_in).collect::<Vec<_>>(), [4, 8, 16, 4]);
    for r in &resps {
        let last = r.chunks.last().and_then(|c| c.row_status);
        assert_eq!(last, Some(RowStatus::CommitRow(true)));
    }
    // Reversed, and with a limit.
    let reversed = ReadRowsRequest {
        reversed: true,
        ..read_req(&t, None, None)
    };
    let want = expected((0..ROWS).rev(), COLUMNS, 16);
    let resps = scan(&mut s, reversed, want).await;
    assert_eq!(resps.iter().map(rows_in).collect::<Vec<_>>(), [4, 8, 16, 4]);
    let limited = ReadRowsRequest {
        rows_limit: 20,
        ..read_req(&t, None, None)
    };
    let resps = scan(&mut s, limited, expected(0..20, COLUMNS, 16)).await;
    assert_eq!(resps.iter().map(rows_in).collect::<Vec<_>>(), [4, 8, 8]);
}

#[tokio::test]
async fn a_scan_of_large_rows_is_cut_by_bytes() {
    let mut s = Server::start().await;
    // Rows of 32 x 1 KiB: about half the first byte target each, so the
    // bytes, not the row count, cut the responses, some inside a row.
    let t = grid(&mut s, ROWS, COLUMNS, 1024).await;
    let want = expected(0..ROWS, COLUMNS, 1024);
    let resps = scan(&mut s, read_req(&t, None, None), want).await;
    assert!(resps.len() >= 4, "{} responses", resps.len());
    assert!(rows_in(&resps[0]) < FIRST_RESPONSE_ROWS_TARGET);
    assert!(resps
        .iter()
        .any(|r| r.chunks.last().unwrap().row_status.is_none()));
}

#[tokio::test]
async fn the_first_rows_arrive_before_a_long_scan_is_read() {
    let mut s = Server::start().await;
    // More rows than the server reads ahead of a client.
    let n = 1000;
    let t = grid(&mut s, n, 1, 100).await;
    let req = read_req(&t, None, None);
    let mut stream = s.data.read_rows(req).await.unwrap().into_inner();
    // The first message holds the first rows only; the client reads it
    // while the server is held back by the unread rest.
    let first = stream.message().await.unwrap().expect("a first response");
    let keys: Vec<&[u8]> = first.chunks.iter().map(|c| c.row_key.as_slice()).collect();
    assert_eq!(keys.len(), FIRST_RESPONSE_ROWS_TARGET);
    assert_eq!(keys[0], key(0).as_slice());
    let mut rows = vec![rows_in(&first)];
    let mut r = Reassembler::new(false);
    r.response(first);
    while let Some(resp) = stream.message().await.unwrap() {
        check_bounds(rows.len(), &resp);
        rows.push(rows_in(&resp));
        r.response(resp);
    }
    assert!(r.finish().rows == expected(0..n, 1, 100));
    assert_eq!(rows, [4, 8, 16, 32, 64, 128, 256, 492]);
}
