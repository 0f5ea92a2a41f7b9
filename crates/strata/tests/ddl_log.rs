//! `strata serve` logs table and column-family creation and deletion at
//! info, so an operator can see schema changes in the log.

mod common;

use common::{connect, free_port, serve};
use googleapis_tonic_google_bigtable_admin_v2::google::bigtable::admin::v2 as admin;
use std::process::Stdio;

use admin::bigtable_table_admin_client::BigtableTableAdminClient;
use admin::modify_column_families_request::{modification::Mod, Modification};

#[tokio::test]
async fn schema_changes_are_logged_at_info() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let log = tmp.path().join("server.log");
    let port = free_port();
    let mut server = serve(
        &tmp.path().join("data"),
        &format!("127.0.0.1:{port}"),
        Stdio::from(std::fs::File::create(&log).expect("log file")),
    );
    let mut admin = BigtableTableAdminClient::new(connect(port).await);
    let name = "projects/my-project/instances/my-instance/tables/logged";
    admin
        .create_table(admin::CreateTableRequest {
            parent: "projects/my-project/instances/my-instance".into(),
            table_id: "logged".into(),
            table: Some(admin::Table {
                column_families: [("cf".to_string(), admin::ColumnFamily::default())].into(),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .expect("create table");
    let modify = |id: &str, m: Mod| Modification {
        id: id.into(),
        r#mod: Some(m),
        ..Default::default()
    };
    admin
        .modify_column_families(admin::ModifyColumnFamiliesRequest {
            name: name.into(),
            modifications: vec![
                modify("extra", Mod::Create(admin::ColumnFamily::default())),
                modify("cf", Mod::Drop(true)),
            ],
            ignore_warnings: false,
        })
        .await
        .expect("modify families");
    admin
        .delete_table(admin::DeleteTableRequest { name: name.into() })
        .await
        .expect("delete table");
    let _ = server.0.kill();
    let _ = server.0.wait();
    let text = std::fs::read_to_string(&log).expect("read log");
    for want in [
        "created table",
        "created column family",
        "deleted column family",
        "deleted table",
    ] {
        let line = text
            .lines()
            .find(|l| l.contains(want) && l.contains(name))
            .unwrap_or_else(|| panic!("no {want:?} line naming the table in\n{text}"));
        assert!(line.contains("INFO"), "{line}");
    }
}
