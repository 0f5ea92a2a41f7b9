//! Persistence: a server's tables, schemas and data survive shutting it
//! down and reopening the database in the same directory.

mod common;

use common::*;
use googleapis_tonic_google_bigtable_admin_v2::google::bigtable::admin::v2 as a;

async fn schema(s: &mut Server) -> Vec<a::Table> {
    s.admin
        .list_tables(a::ListTablesRequest {
            parent: PARENT.into(),
            view: a::table::View::SchemaView as i32,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .tables
}

async fn everything(s: &mut Server) -> (Vec<a::Table>, Vec<Vec<Row>>) {
    let tables = schema(s).await;
    let mut data = Vec::new();
    for t in &tables {
        data.push(read_all(s, &t.name).await);
    }
    (tables, data)
}

#[tokio::test]
async fn tables_schemas_and_data_survive_a_restart() {
    use a::modify_column_families_request::{modification::Mod, Modification};
    let dir = tempfile::tempdir().unwrap();
    let mut s = Server::start_in(dir.path()).await;
    let fams = vec![
        (
            "cf",
            family(Some(union(vec![versions(3), max_age(86_400 * 365 * 100)]))),
        ),
        ("keep", family(None)),
        ("gone", family(None)),
        ("sum", agg_family(Agg::Sum)),
        ("max", agg_family(Agg::Max)),
    ];
    try_create_table(&mut s, "t", fams).await.unwrap();
    let t = table_name("t");
    let other = create_table(&mut s, "other", &["cf"]).await;
    let dropped = create_table(&mut s, "dropped", &["cf"]).await;
    let truncated = create_table(&mut s, "truncated", &["cf"]).await;
    for i in 0..50 {
        let k = format!("row{i:02}");
        let mut m = vec![
            set_cell("cf", b"a", 1000, format!("v{i}").as_bytes()),
            set_cell("cf", b"a", 2000, b"newer"),
            set_cell("keep", b"\x00bin", 5000, &[0, 1, 2, 255]),
            set_cell("gone", b"x", 1000, b"dropped family"),
            add_to_cell("sum", b"n", 0, i),
            add_to_cell("max", b"n", 0, i),
        ];
        if i % 10 == 0 {
            m.push(add_to_cell("sum", b"n", 0, 1000));
        }
        mutate(&mut s, &t, k.as_bytes(), m).await.unwrap();
        put(&mut s, &other, k.as_bytes(), "cf", b"q", 1000, b"o").await;
        put(&mut s, &dropped, k.as_bytes(), "cf", b"q", 1000, b"d").await;
        put(&mut s, &truncated, k.as_bytes(), "cf", b"q", 1000, b"d").await;
    }
    // Schema changes and deletions before the restart.
    s.admin
        .modify_column_families(a::ModifyColumnFamiliesRequest {
            name: t.clone(),
            modifications: vec![Modification {
                id: "gone".into(),
                update_mask: None,
                r#mod: Some(Mod::Drop(true)),
            }],
            ignore_warnings: false,
        })
        .await
        .unwrap();
    mutate(&mut s, &t, b"row07", vec![delete_row()])
        .await
        .unwrap();
    s.admin
        .delete_table(a::DeleteTableRequest {
            name: dropped.clone(),
        })
        .await
        .unwrap();
    s.admin
        .drop_row_range(a::DropRowRangeRequest {
            name: truncated.clone(),
            target: Some(a::drop_row_range_request::Target::DeleteAllDataFromTable(
                true,
            )),
        })
        .await
        .unwrap();
    put(&mut s, &truncated, b"after", "cf", b"q", 1000, b"a").await;
    s.admin
        .update_table(a::UpdateTableRequest {
            table: Some(a::Table {
                name: other.clone(),
                deletion_protection: true,
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["deletion_protection".into()],
            }),
            ignore_warnings: false,
        })
        .await
        .unwrap();

    let before = everything(&mut s).await;
    assert_eq!(before.0.len(), 3);
    let names: Vec<&str> = before.0.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, [other.as_str(), t.as_str(), truncated.as_str()]);
    let rows = &before.1[1];
    assert_eq!(rows.len(), 49);
    let r10 = &rows.iter().find(|r| r.0 == b"row10").unwrap().1;
    assert!(r10.iter().all(|c| c.0 != "gone"));
    assert!(r10.contains(&("sum".into(), b"n".to_vec(), 0, i64be(1010), vec![])));
    assert!(r10.contains(&("max".into(), b"n".to_vec(), 0, i64be(10), vec![])));
    assert_eq!(
        before.1[2],
        vec![(b"after".to_vec(), vec![cell("cf", "q", 1000, "a")])]
    );

    // Restart with the data only in the log, then again after a flush.
    s.shutdown().await;
    let mut s = Server::start_in(dir.path()).await;
    assert_eq!(everything(&mut s).await, before);
    s.db().engine().flush_all().unwrap();
    s.shutdown().await;
    let mut s = Server::start_in(dir.path()).await;
    assert_eq!(everything(&mut s).await, before);

    // The reopened database takes writes, DDL and aggregates as before.
    let e = s
        .admin
        .delete_table(a::DeleteTableRequest {
            name: other.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(
        e.code(),
        tonic::Code::FailedPrecondition,
        "deletion protection persisted"
    );
    mutate(&mut s, &t, b"row10", vec![add_to_cell("sum", b"n", 0, 5)])
        .await
        .unwrap();
    let e = mutate(
        &mut s,
        &t,
        b"row10",
        vec![set_cell("gone", b"x", 1000, b"v")],
    )
    .await
    .unwrap_err();
    assert_eq!(
        e.code(),
        tonic::Code::NotFound,
        "the dropped family stays dropped"
    );
    create_table(&mut s, "dropped", &["cf"]).await;
    create_table(&mut s, "new", &["cf"]).await;
    put(&mut s, &table_name("new"), b"k", "cf", b"q", 1000, b"v").await;
    assert!(
        read_all(&mut s, &dropped).await.is_empty(),
        "a deleted table's data stays deleted"
    );
    s.shutdown().await;
    let mut s = Server::start_in(dir.path()).await;
    let rows = read_filtered(
        &mut s,
        &t,
        Some(filter(F::FamilyNameRegexFilter("sum".into()))),
    )
    .await;
    let r10 = rows.iter().find(|r| r.0 == b"row10").unwrap();
    assert_eq!(
        r10.1,
        vec![("sum".into(), b"n".to_vec(), 0, i64be(1015), vec![])]
    );
    assert_eq!(read_all(&mut s, &table_name("new")).await.len(), 1);
    assert!(read_all(&mut s, &dropped).await.is_empty());
    assert_eq!(schema(&mut s).await.len(), 5);
    s.shutdown().await;
}

#[tokio::test]
async fn shutdown_with_connected_clients_and_abandoned_reads() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Server::start_in(dir.path()).await;
    let t = create_table(&mut s, "t", &["cf"]).await;
    let value = vec![b'v'; 256 << 10];
    for i in 0..40 {
        put(
            &mut s,
            &t,
            format!("r{i:02}").as_bytes(),
            "cf",
            b"q",
            1000,
            &value,
        )
        .await;
    }
    // A read abandoned after its first response.
    let mut stream = s
        .data
        .read_rows(read_req(&t, None, None))
        .await
        .unwrap()
        .into_inner();
    assert!(stream.message().await.unwrap().is_some());
    drop(stream);
    // The server still serves, and stops although a client stays connected.
    assert_eq!(read_all(&mut s, &t).await.len(), 40);
    let idle = s.data.clone();
    s.shutdown().await;
    drop(idle);
    let mut s = Server::start_in(dir.path()).await;
    assert_eq!(read_all(&mut s, &t).await.len(), 40);
    s.shutdown().await;
}
