//! `strata tablets` against a `strata serve` it starts: a table created
//! with two initial splits lists three tablets; a server that is not there
//! is an error naming its address, whether --server or
//! BIGTABLE_EMULATOR_HOST gave it.

mod common;

use common::{connect, free_port, serve, strata};
use googleapis_tonic_google_bigtable_admin_v2::google::bigtable::admin::v2 as admin;
use std::process::{Output, Stdio};

use admin::bigtable_table_admin_client::BigtableTableAdminClient;

fn tablets(args: &[&str]) -> Output {
    strata()
        .arg("tablets")
        .args(args)
        .output()
        .expect("run strata tablets")
}

#[tokio::test]
async fn strata_tablets_lists_a_served_tables_tablets() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let _server = serve(
        &tmp.path().join("data"),
        &format!("127.0.0.1:{port}"),
        Stdio::null(),
    );
    let ch = connect(port).await;
    let split = |k: &str| admin::create_table_request::Split {
        key: k.as_bytes().to_vec(),
    };
    BigtableTableAdminClient::new(ch)
        .create_table(admin::CreateTableRequest {
            // The project and instance `strata tablets` defaults to.
            parent: "projects/my-project/instances/my-instance".into(),
            table_id: "t".into(),
            table: Some(admin::Table {
                column_families: [("cf".to_string(), admin::ColumnFamily::default())]
                    .into_iter()
                    .collect(),
                ..Default::default()
            }),
            initial_splits: vec![split("g"), split("p")],
        })
        .await
        .expect("create table");

    let addr = format!("127.0.0.1:{port}");
    let out = tablets(&["t", "--server", &addr]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(lines[0].starts_with("TABLET"), "{stdout}");
    let rows: Vec<Vec<&str>> = lines[1..lines.len() - 1]
        .iter()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(rows.len(), 3, "{stdout}");
    let ranges: Vec<(&str, &str)> = rows.iter().map(|r| (r[1], r[2])).collect();
    assert_eq!(
        ranges,
        [("(start)", "\"g\""), ("\"g\"", "\"p\""), ("\"p\"", "(end)")],
        "{stdout}"
    );
    assert!(
        lines[lines.len() - 1].starts_with("3 tablets, total "),
        "{stdout}"
    );

    // A full name works too, and BIGTABLE_EMULATOR_HOST stands for
    // --server; a missing table is an error.
    let out = tablets(&[
        "projects/my-project/instances/my-instance/tables/t",
        "--server",
        &addr,
    ]);
    assert!(out.status.success());
    let out = strata()
        .args(["tablets", "t"])
        .env("BIGTABLE_EMULATOR_HOST", &addr)
        .output()
        .expect("run strata tablets");
    assert_eq!(out.stdout, stdout.as_bytes());
    let out = tablets(&["nope", "--server", &addr]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("NotFound"));
}

#[test]
fn strata_tablets_names_an_unreachable_server() {
    let addr = format!("127.0.0.1:{}", free_port());
    let by_flag = tablets(&["t", "--server", &addr]);
    let by_env = strata()
        .args(["tablets", "t"])
        .env("BIGTABLE_EMULATOR_HOST", &addr)
        .output()
        .expect("run strata tablets");
    for out in [by_flag, by_env] {
        assert!(!out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(&format!("cannot connect to the Strata server at {addr}")),
            "{stderr}"
        );
    }
}
