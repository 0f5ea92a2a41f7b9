//! Helpers for tests that run the `strata` binary: a free port, a
//! `strata serve` killed when the test ends, and a channel to a server
//! that is still starting.
#![allow(dead_code)]

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The `strata` command, with no BIGTABLE_EMULATOR_HOST from the
/// environment the tests run in.
pub fn strata() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_strata"));
    c.env_remove("BIGTABLE_EMULATOR_HOST");
    c
}

/// `strata SUBCOMMAND --help`.
pub fn help(subcommand: &str) -> String {
    let out = strata()
        .args([subcommand, "--help"])
        .output()
        .expect("strata --help");
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A `strata serve`, killed when the test ends, passing or not.
pub struct Serve(pub Child);

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `strata serve --data-dir DIR --listen LISTEN`, its stderr to
/// `stderr`.
pub fn serve(dir: &std::path::Path, listen: &str, stderr: Stdio) -> Serve {
    Serve(
        strata()
            .args(["serve", "--data-dir"])
            .arg(dir)
            .args(["--listen", listen])
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("start strata serve"),
    )
}

/// A port nothing listens on at the moment of asking, outside the range
/// the kernel hands out (see `strata_cluster::testkit::free_port`).
pub fn free_port() -> u16 {
    strata_cluster::testkit::free_port().expect("a free test port")
}

/// Connects to the server on `port`, retrying for up to a minute while it
/// starts.
pub async fn connect(port: u16) -> tonic::transport::Channel {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match tonic::transport::Endpoint::from_shared(format!("http://127.0.0.1:{port}"))
            .expect("endpoint")
            .connect()
            .await
        {
            Ok(c) => return c,
            Err(e) if Instant::now() > deadline => panic!("server did not come up: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// A MutateRow setting `cf:v` of `row` to `value` at timestamp 1000.
pub fn set_cell(
    table: &str,
    row: &str,
    value: &str,
) -> googleapis_tonic_google_bigtable_v2::google::bigtable::v2::MutateRowRequest {
    use googleapis_tonic_google_bigtable_v2::google::bigtable::v2;
    v2::MutateRowRequest {
        table_name: table.into(),
        row_key: row.as_bytes().to_vec(),
        mutations: vec![v2::Mutation {
            mutation: Some(v2::mutation::Mutation::SetCell(v2::mutation::SetCell {
                family_name: "cf".into(),
                column_qualifier: b"v".to_vec(),
                timestamp_micros: 1000,
                value: value.as_bytes().to_vec(),
            })),
        }],
        ..Default::default()
    }
}

/// Every row of `table` (UTF-8 keys and values, one cell per row: the
/// last cell read wins).
pub async fn read_all(
    ch: tonic::transport::Channel,
    table: &str,
) -> std::collections::BTreeMap<String, String> {
    use googleapis_tonic_google_bigtable_v2::google::bigtable::v2;
    let mut client =
        v2::bigtable_client::BigtableClient::new(ch).max_decoding_message_size(256 << 20);
    let mut stream = client
        .read_rows(v2::ReadRowsRequest {
            table_name: table.into(),
            ..Default::default()
        })
        .await
        .expect("read_rows")
        .into_inner();
    let mut out = std::collections::BTreeMap::new();
    let mut key = Vec::new();
    while let Some(resp) = stream.message().await.expect("read stream") {
        for c in resp.chunks {
            if !c.row_key.is_empty() {
                key = c.row_key.clone();
            }
            out.insert(
                String::from_utf8(key.clone()).expect("utf8"),
                String::from_utf8(c.value).expect("utf8"),
            );
        }
    }
    out
}
