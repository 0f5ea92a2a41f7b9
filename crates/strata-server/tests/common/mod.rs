//! Test harness: a Strata server on 127.0.0.1:0 over a fresh database,
//! the googleapis tonic clients connected to it, builders for the protos,
//! and a strict ReadRows reassembler (docs/notes/bigtable-api.md §2).
#![allow(dead_code)]

use googleapis_tonic_google_bigtable_admin_v2::google::bigtable::admin::v2 as a;
use googleapis_tonic_google_bigtable_v2::google::bigtable::v2;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use strata_server::{serve, serve_on_threads, ServerOptions};
use strata_table::{Database, DatabaseOptions};
use tonic::transport::Channel;

mod admin;
mod reassemble;
pub use admin::*;
pub use reassemble::*;

pub use a::bigtable_table_admin_client::BigtableTableAdminClient;
pub use v2::bigtable_client::BigtableClient;
pub use v2::row_filter::Filter as F;
pub use v2::{Mutation, ReadRowsRequest, RowFilter, RowRange, RowSet};

pub const PARENT: &str = "projects/p/instances/i";
pub const MESSAGE_BYTES_MAX: usize = 256 << 20;

/// A cell as reassembled: (family, qualifier, timestamp, value, labels).
pub type Cell = (String, Vec<u8>, i64, Vec<u8>, Vec<String>);
/// A row as reassembled: (key, cells).
pub type Row = (Vec<u8>, Vec<Cell>);

/// A running server with connected clients. The tempdir lives as long as
/// the server unless the test owns the directory.
pub struct Server {
    pub data: BigtableClient<Channel>,
    pub admin: BigtableTableAdminClient<Channel>,
    /// Where the server listens, for clients a test connects itself.
    pub addr: std::net::SocketAddr,
    db: Arc<Database>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<Result<(), String>>>,
    _dir: Option<tempfile::TempDir>,
}

impl Server {
    /// A server over a new database in a fresh tempdir.
    pub async fn start() -> Server {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut s = Server::start_in(dir.path()).await;
        s._dir = Some(dir);
        s
    }

    /// A server over the database in `dir` (created if missing).
    pub async fn start_in(dir: &Path) -> Server {
        Server::start_with(dir, None).await
    }

    /// A server over a new database, serving with `serve_on_threads`.
    pub async fn start_on_threads(threads: usize) -> Server {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut s = Server::start_with(dir.path(), Some(threads)).await;
        s._dir = Some(dir);
        s
    }

    /// With `threads`, serves with `serve_on_threads`; else with `serve`
    /// on the test's runtime.
    async fn start_with(dir: &Path, threads: Option<usize>) -> Server {
        // A read abandoned before a restart may hold the engine (and its
        // directory lock) for a moment after the server stopped.
        let mut tries = 0;
        let db = loop {
            match Database::open(dir, DatabaseOptions::default()) {
                Ok(db) => break Arc::new(db),
                Err(_) if tries < 100 => {
                    tries += 1;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => panic!("open database: {e}"),
            }
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let stopped = async move {
            let _ = stopped.await;
        };
        let (db2, opts) = (db.clone(), ServerOptions::default());
        let task = tokio::spawn(async move {
            match threads {
                None => serve(db2, listener, opts, stopped)
                    .await
                    .map_err(|e| e.to_string()),
                Some(n) => serve_on_threads(db2, listener, opts, n, stopped)
                    .await
                    .map_err(|e| e.to_string()),
            }
        });
        let channel = connect(addr).await;
        Server {
            data: BigtableClient::new(channel.clone())
                .max_decoding_message_size(MESSAGE_BYTES_MAX)
                .max_encoding_message_size(MESSAGE_BYTES_MAX),
            admin: BigtableTableAdminClient::new(channel)
                .max_decoding_message_size(MESSAGE_BYTES_MAX)
                .max_encoding_message_size(MESSAGE_BYTES_MAX),
            addr,
            db,
            stop: Some(stop),
            task: Some(task),
            _dir: None,
        }
    }

    /// The database under the server.
    pub fn db(&self) -> &Database {
        &self.db
    }

    /// Stops the server, waits for it, and closes the database.
    pub async fn shutdown(self) {
        let Server {
            data,
            admin,
            addr: _,
            db,
            stop,
            task,
            _dir,
        } = self;
        drop(data);
        drop(admin);
        if let Some(s) = stop {
            let _ = s.send(());
        }
        if let Some(t) = task {
            tokio::time::timeout(Duration::from_secs(10), t)
                .await
                .expect("server stops in time")
                .expect("server task")
                .expect("server result");
        }
        let mut db = db;
        for _ in 0..500 {
            match Arc::try_unwrap(db) {
                Ok(d) => {
                    d.close().expect("close database");
                    return;
                }
                Err(d) => {
                    db = d;
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        }
        panic!("the server still holds the database after it stopped");
    }
}

/// A channel on a connection of its own to `addr` (tonic opens one per
/// `connect`).
pub async fn connect(addr: std::net::SocketAddr) -> Channel {
    Channel::from_shared(format!("http://{addr}"))
        .expect("uri")
        .connect()
        .await
        .expect("connect")
}

pub fn table_name(id: &str) -> String {
    format!("{PARENT}/tables/{id}")
}

// ---- mutation builders ----

pub fn set_cell(fam: &str, qual: &[u8], ts: i64, value: &[u8]) -> Mutation {
    use v2::mutation::{Mutation as M, SetCell};
    Mutation {
        mutation: Some(M::SetCell(SetCell {
            family_name: fam.into(),
            column_qualifier: qual.to_vec(),
            timestamp_micros: ts,
            value: value.to_vec(),
        })),
    }
}

pub fn delete_column(fam: &str, qual: &[u8], range: Option<(i64, i64)>) -> Mutation {
    use v2::mutation::{DeleteFromColumn, Mutation as M};
    Mutation {
        mutation: Some(M::DeleteFromColumn(DeleteFromColumn {
            family_name: fam.into(),
            column_qualifier: qual.to_vec(),
            time_range: range.map(|(s, e)| v2::TimestampRange {
                start_timestamp_micros: s,
                end_timestamp_micros: e,
            }),
        })),
    }
}

pub fn delete_family(fam: &str) -> Mutation {
    use v2::mutation::{DeleteFromFamily, Mutation as M};
    Mutation {
        mutation: Some(M::DeleteFromFamily(DeleteFromFamily {
            family_name: fam.into(),
        })),
    }
}

pub fn delete_row() -> Mutation {
    use v2::mutation::{DeleteFromRow, Mutation as M};
    Mutation {
        mutation: Some(M::DeleteFromRow(DeleteFromRow {})),
    }
}

pub fn add_to_cell(fam: &str, qual: &[u8], ts: i64, input: i64) -> Mutation {
    use v2::mutation::{AddToCell, Mutation as M};
    use v2::value::Kind;
    let value = |k: Kind| {
        Some(v2::Value {
            r#type: None,
            kind: Some(k),
        })
    };
    Mutation {
        mutation: Some(M::AddToCell(AddToCell {
            family_name: fam.into(),
            column_qualifier: value(Kind::RawValue(qual.to_vec())),
            timestamp: value(Kind::RawTimestampMicros(ts)),
            input: value(Kind::IntValue(input)),
        })),
    }
}

pub async fn mutate(
    s: &mut Server,
    table: &str,
    key: &[u8],
    mutations: Vec<Mutation>,
) -> Result<(), tonic::Status> {
    s.data
        .mutate_row(v2::MutateRowRequest {
            table_name: table.into(),
            row_key: key.to_vec(),
            mutations,
            ..Default::default()
        })
        .await
        .map(|_| ())
}

/// Writes one cell, which must succeed.
pub async fn put(
    s: &mut Server,
    table: &str,
    key: &[u8],
    fam: &str,
    qual: &[u8],
    ts: i64,
    v: &[u8],
) {
    mutate(s, table, key, vec![set_cell(fam, qual, ts, v)])
        .await
        .expect("put");
}

// ---- reads ----

pub async fn try_read(s: &mut Server, req: ReadRowsRequest) -> Result<ReadOut, tonic::Status> {
    let reversed = req.reversed;
    let mut stream = s.data.read_rows(req).await?.into_inner();
    let mut r = Reassembler::new(reversed);
    while let Some(resp) = stream.message().await? {
        r.response(resp);
    }
    Ok(r.finish())
}

pub fn read_req(table: &str, rows: Option<RowSet>, filter: Option<RowFilter>) -> ReadRowsRequest {
    ReadRowsRequest {
        table_name: table.into(),
        rows,
        filter,
        ..Default::default()
    }
}

/// Reads with a filter (None = all cells) over every row.
pub async fn read_filtered(s: &mut Server, table: &str, filter: Option<RowFilter>) -> Vec<Row> {
    try_read(s, read_req(table, None, filter))
        .await
        .expect("read")
        .rows
}

/// The cells of one row (none if it does not exist).
pub async fn read_row(s: &mut Server, table: &str, key: &[u8]) -> Vec<Cell> {
    let rows = RowSet {
        row_keys: vec![key.to_vec()],
        row_ranges: vec![],
    };
    let out = try_read(s, read_req(table, Some(rows), None))
        .await
        .expect("read");
    assert!(out.rows.len() <= 1);
    out.rows.into_iter().next().map_or(Vec::new(), |r| r.1)
}

pub async fn read_all(s: &mut Server, table: &str) -> Vec<Row> {
    read_filtered(s, table, None).await
}

/// The code of a failed read, or panics if it succeeded.
pub async fn read_code(s: &mut Server, req: ReadRowsRequest) -> tonic::Code {
    match try_read(s, req).await {
        Ok(out) => panic!("the read succeeded: {:?}", out.rows),
        Err(e) => e.code(),
    }
}

pub fn keys(rows: &[Row]) -> Vec<Vec<u8>> {
    rows.iter().map(|r| r.0.clone()).collect()
}

pub fn bkeys(ks: &[&str]) -> Vec<Vec<u8>> {
    ks.iter().map(|k| k.as_bytes().to_vec()).collect()
}

/// A cell without labels.
pub fn cell(fam: &str, qual: &str, ts: i64, value: &str) -> Cell {
    (
        fam.into(),
        qual.as_bytes().to_vec(),
        ts,
        value.as_bytes().to_vec(),
        vec![],
    )
}

pub fn filter(f: F) -> RowFilter {
    RowFilter { filter: Some(f) }
}

pub fn chain(fs: Vec<RowFilter>) -> RowFilter {
    filter(F::Chain(v2::row_filter::Chain { filters: fs }))
}

pub fn interleave(fs: Vec<RowFilter>) -> RowFilter {
    filter(F::Interleave(v2::row_filter::Interleave { filters: fs }))
}

pub fn condition(p: RowFilter, t: Option<RowFilter>, f: Option<RowFilter>) -> RowFilter {
    filter(F::Condition(Box::new(v2::row_filter::Condition {
        predicate_filter: Some(Box::new(p)),
        true_filter: t.map(Box::new),
        false_filter: f.map(Box::new),
    })))
}

pub fn row_keys(ks: &[&str]) -> RowSet {
    RowSet {
        row_keys: bkeys(ks),
        row_ranges: vec![],
    }
}

pub fn ranges(rs: Vec<RowRange>) -> RowSet {
    RowSet {
        row_keys: vec![],
        row_ranges: rs,
    }
}

/// A row range from optional (key, closed) bounds.
pub fn range(start: Option<(&str, bool)>, end: Option<(&str, bool)>) -> RowRange {
    use v2::row_range::{EndKey, StartKey};
    RowRange {
        start_key: start.map(|(k, closed)| {
            let k = k.as_bytes().to_vec();
            if closed {
                StartKey::StartKeyClosed(k)
            } else {
                StartKey::StartKeyOpen(k)
            }
        }),
        end_key: end.map(|(k, closed)| {
            let k = k.as_bytes().to_vec();
            if closed {
                EndKey::EndKeyClosed(k)
            } else {
                EndKey::EndKeyOpen(k)
            }
        }),
    }
}

/// Server time rounded to the millisecond, in microseconds.
pub fn now_micros() -> i64 {
    let us = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_micros() as i64;
    us - us % 1000
}

pub fn i64be(n: i64) -> Vec<u8> {
    n.to_be_bytes().to_vec()
}

/// Rows as strings `key/family:qualifier@ts=value[labels]`, for compact
/// assertions.
pub fn flat(rows: &[Row]) -> Vec<String> {
    let mut out = Vec::new();
    for (k, cells) in rows {
        for (f, q, ts, v, labels) in cells {
            let mut s = format!(
                "{}/{f}:{}@{ts}={}",
                String::from_utf8_lossy(k),
                String::from_utf8_lossy(q),
                String::from_utf8_lossy(v)
            );
            if !labels.is_empty() {
                s.push_str(&format!("[{}]", labels.join(",")));
            }
            out.push(s);
        }
    }
    out
}

/// The filter tests' table `t`:
/// r1: cf1:a@3000=v3 cf1:a@2000=v2 cf1:a@1000=v1 cf1:b@1000=b1 cf2:c@5000=c5
/// r2: cf1:a@1000=x cf2:d@2000=yy
/// r3: cf2:c@1000=zzz
pub async fn filter_table(s: &mut Server) -> String {
    let t = create_table(s, "t", &["cf1", "cf2"]).await;
    let rows: [(&str, Vec<Mutation>); 3] = [
        (
            "r1",
            vec![
                set_cell("cf1", b"a", 3000, b"v3"),
                set_cell("cf1", b"a", 2000, b"v2"),
                set_cell("cf1", b"a", 1000, b"v1"),
                set_cell("cf1", b"b", 1000, b"b1"),
                set_cell("cf2", b"c", 5000, b"c5"),
            ],
        ),
        (
            "r2",
            vec![
                set_cell("cf1", b"a", 1000, b"x"),
                set_cell("cf2", b"d", 2000, b"yy"),
            ],
        ),
        ("r3", vec![set_cell("cf2", b"c", 1000, b"zzz")]),
    ];
    for (k, m) in rows {
        mutate(s, &t, k.as_bytes(), m).await.expect("fill");
    }
    t
}

pub const ALL_CELLS: [&str; 8] = [
    "r1/cf1:a@3000=v3",
    "r1/cf1:a@2000=v2",
    "r1/cf1:a@1000=v1",
    "r1/cf1:b@1000=b1",
    "r1/cf2:c@5000=c5",
    "r2/cf1:a@1000=x",
    "r2/cf2:d@2000=yy",
    "r3/cf2:c@1000=zzz",
];

/// The cells a filter passes on the filter table, flattened.
pub async fn apply(s: &mut Server, t: &str, f: RowFilter) -> Vec<String> {
    flat(&read_filtered(s, t, Some(f)).await)
}

/// The code a filter fails with.
pub async fn filter_code(s: &mut Server, t: &str, f: RowFilter) -> tonic::Code {
    read_code(s, read_req(t, None, Some(f))).await
}
