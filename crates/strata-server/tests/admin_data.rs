//! Table-admin RPCs over gRPC: ModifyColumnFamilies, DropRowRange,
//! consistency tokens, and the RPCs Strata does not implement.

mod common;

use common::*;
use googleapis_tonic_google_bigtable_admin_v2::google::bigtable::admin::v2 as a;
use tonic::Code;

#[tokio::test]
async fn modify_column_families() {
    use a::modify_column_families_request::modification::Mod;
    let mut s = Server::start().await;
    let name = create_table(&mut s, "t", &["keep"]).await;
    let t = modify(
        &mut s,
        &name,
        vec![modification("x", Mod::Create(family(None)))],
    )
    .await
    .unwrap();
    assert!(t.column_families.contains_key("x"));
    let e = modify(
        &mut s,
        &name,
        vec![modification("x", Mod::Create(family(None)))],
    )
    .await
    .unwrap_err();
    assert_eq!(e.code(), Code::AlreadyExists);
    for ts in [1000, 2000, 3000] {
        put(&mut s, &name, b"r", "x", b"q", ts, b"old").await;
    }
    put(&mut s, &name, b"r", "keep", b"q", 1000, b"kept").await;

    // Update the GC rule (with the mask cbt sends): reads apply it.
    let mut upd = modification("x", Mod::Update(family(Some(versions(1)))));
    upd.update_mask = Some(prost_types::FieldMask {
        paths: vec!["gc_rule".into()],
    });
    let t = modify(&mut s, &name, vec![upd]).await.unwrap();
    assert_eq!(
        t.column_families["x"].gc_rule.as_ref().unwrap().rule,
        versions(1).rule
    );
    let rows = read_all(&mut s, &name).await;
    assert_eq!(
        rows[0].1,
        vec![cell("keep", "q", 1000, "kept"), cell("x", "q", 3000, "old")]
    );
    // Without a mask too.
    modify(
        &mut s,
        &name,
        vec![modification("x", Mod::Update(family(Some(versions(2)))))],
    )
    .await
    .unwrap();
    assert_eq!(read_all(&mut s, &name).await[0].1.len(), 3);
    let mut bad = modification("x", Mod::Update(agg_family(Agg::Sum)));
    bad.update_mask = Some(prost_types::FieldMask {
        paths: vec!["value_type".into()],
    });
    assert_eq!(
        modify(&mut s, &name, vec![bad]).await.unwrap_err().code(),
        Code::InvalidArgument
    );
    let e = modify(
        &mut s,
        &name,
        vec![modification("nope", Mod::Update(family(None)))],
    )
    .await
    .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
    let e = modify(
        &mut s,
        &name,
        vec![modification("x", Mod::Update(family(Some(versions(0)))))],
    )
    .await
    .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);

    // All or nothing: a good create with a bad drop creates nothing.
    let e = modify(
        &mut s,
        &name,
        vec![
            modification("y", Mod::Create(family(None))),
            modification("nope", Mod::Drop(true)),
        ],
    )
    .await
    .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
    let t = get_table(&mut s, &name, a::table::View::SchemaView)
        .await
        .unwrap();
    assert!(!t.column_families.contains_key("y"));

    // Drop purges the family's cells: recreated, it is empty.
    let t = modify(&mut s, &name, vec![modification("x", Mod::Drop(true))])
        .await
        .unwrap();
    assert!(!t.column_families.contains_key("x"));
    let e = mutate(&mut s, &name, b"r", vec![set_cell("x", b"q", 1000, b"v")])
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound, "a dropped family is not found");
    modify(
        &mut s,
        &name,
        vec![modification("x", Mod::Create(family(None)))],
    )
    .await
    .unwrap();
    assert_eq!(
        read_all(&mut s, &name).await,
        vec![(b"r".to_vec(), vec![cell("keep", "q", 1000, "kept")])]
    );
    put(&mut s, &name, b"r", "x", b"q", 5000, b"new").await;
    assert_eq!(
        read_all(&mut s, &name).await[0].1,
        vec![cell("keep", "q", 1000, "kept"), cell("x", "q", 5000, "new")]
    );

    // Bad requests.
    assert_eq!(
        modify(&mut s, &name, vec![]).await.unwrap_err().code(),
        Code::InvalidArgument
    );
    let e = modify(&mut s, &name, vec![modification("x", Mod::Drop(false))])
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    let e = modify(
        &mut s,
        &name,
        vec![modification("-bad", Mod::Create(family(None)))],
    )
    .await
    .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    let e = modify(
        &mut s,
        &table_name("missing"),
        vec![modification("z", Mod::Create(family(None)))],
    )
    .await
    .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
}

#[tokio::test]
async fn drop_row_range_prefix_and_all() {
    use a::drop_row_range_request::Target;
    let mut s = Server::start().await;
    let name = create_table(&mut s, "t", &["cf"]).await;
    let other = create_table(&mut s, "other", &["cf"]).await;
    for k in ["a", "a1", "ab", "a\u{7f}", "b", "b1", "`"] {
        put(&mut s, &name, k.as_bytes(), "cf", b"q", 1000, b"v").await;
    }
    put(&mut s, &other, b"a1", "cf", b"q", 1000, b"v").await;
    drop_rows(&mut s, &name, Some(Target::RowKeyPrefix(b"a".to_vec())))
        .await
        .unwrap();
    assert_eq!(
        keys(&read_all(&mut s, &name).await),
        bkeys(&["`", "b", "b1"])
    );
    assert_eq!(
        keys(&read_all(&mut s, &other).await),
        bkeys(&["a1"]),
        "other tables untouched"
    );
    put(&mut s, &name, b"a2", "cf", b"q", 1000, b"v").await;
    assert_eq!(
        keys(&read_all(&mut s, &name).await),
        bkeys(&["`", "a2", "b", "b1"])
    );

    drop_rows(&mut s, &name, Some(Target::DeleteAllDataFromTable(true)))
        .await
        .unwrap();
    assert!(read_all(&mut s, &name).await.is_empty());
    assert_eq!(keys(&read_all(&mut s, &other).await), bkeys(&["a1"]));
    let t = get_table(&mut s, &name, a::table::View::SchemaView)
        .await
        .unwrap();
    assert!(t.column_families.contains_key("cf"), "the schema survives");
    put(&mut s, &name, b"z", "cf", b"q", 1000, b"after").await;
    assert_eq!(
        read_all(&mut s, &name).await,
        vec![(b"z".to_vec(), vec![cell("cf", "q", 1000, "after")])]
    );

    // (delete_all_data_from_table = false is a no-op: tests/error_codes.rs.)
    for target in [None, Some(Target::RowKeyPrefix(vec![]))] {
        let e = drop_rows(&mut s, &name, target).await.unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument);
    }
    let e = drop_rows(
        &mut s,
        &table_name("missing"),
        Some(Target::DeleteAllDataFromTable(true)),
    )
    .await
    .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
}

#[tokio::test]
async fn consistency_tokens() {
    let mut s = Server::start().await;
    let name = create_table(&mut s, "t", &["cf"]).await;
    let other = create_table(&mut s, "u", &["cf"]).await;
    let token = s
        .admin
        .generate_consistency_token(a::GenerateConsistencyTokenRequest { name: name.clone() })
        .await
        .unwrap()
        .into_inner()
        .consistency_token;
    assert!(!token.is_empty());
    let check = |name: &str, token: &str| a::CheckConsistencyRequest {
        name: name.into(),
        consistency_token: token.into(),
        mode: None,
    };
    let r = s
        .admin
        .check_consistency(check(&name, &token))
        .await
        .unwrap()
        .into_inner();
    assert!(r.consistent);
    let e = s
        .admin
        .check_consistency(check(&name, "bogus"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    let e = s
        .admin
        .check_consistency(check(&other, &token))
        .await
        .unwrap_err();
    assert_eq!(
        e.code(),
        Code::InvalidArgument,
        "a token is for its own table"
    );
    let missing = table_name("missing");
    let e = s
        .admin
        .generate_consistency_token(a::GenerateConsistencyTokenRequest {
            name: missing.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
    let e = s
        .admin
        .check_consistency(check(&missing, &token))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
}

#[tokio::test]
async fn unimplemented_admin_rpcs() {
    let mut s = Server::start().await;
    create_table(&mut s, "t", &["cf"]).await;
    let e = s
        .admin
        .create_backup(a::CreateBackupRequest {
            parent: format!("{PARENT}/clusters/c"),
            backup_id: "b".into(),
            backup: Some(a::Backup {
                source_table: table_name("t"),
                ..Default::default()
            }),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Unimplemented);
    let e = s
        .admin
        .snapshot_table(a::SnapshotTableRequest {
            name: table_name("t"),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Unimplemented);
    let e = s
        .admin
        .list_authorized_views(a::ListAuthorizedViewsRequest {
            parent: table_name("t"),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Unimplemented);
}

#[tokio::test]
async fn drop_and_recreate_a_family_in_one_request_purges_it() {
    use a::modify_column_families_request::modification::Mod;
    let mut s = Server::start().await;
    let name = create_table(&mut s, "t", &["x", "keep"]).await;
    put(&mut s, &name, b"r", "x", b"q", 1000, b"old").await;
    put(&mut s, &name, b"r", "keep", b"q", 1000, b"kept").await;
    let t = modify(
        &mut s,
        &name,
        vec![
            modification("x", Mod::Drop(true)),
            modification("x", Mod::Create(family(Some(versions(1))))),
        ],
    )
    .await
    .unwrap();
    assert_eq!(
        t.column_families["x"].gc_rule.as_ref().unwrap().rule,
        versions(1).rule
    );
    assert_eq!(
        read_all(&mut s, &name).await,
        vec![(b"r".to_vec(), vec![cell("keep", "q", 1000, "kept")])]
    );
}

#[tokio::test]
async fn malformed_table_names_are_invalid_arguments() {
    use a::modify_column_families_request::modification::Mod;
    let mut s = Server::start().await;
    create_table(&mut s, "t", &["cf"]).await;
    for bad in [
        "",
        "t",
        "projects/p/instances/i/tables/",
        "projects/p/instances/i/tables/a/b",
        "projects/p/tables/t",
    ] {
        let code = |r: Result<a::Table, tonic::Status>| r.unwrap_err().code();
        assert_eq!(
            code(get_table(&mut s, bad, a::table::View::NameOnly).await),
            Code::InvalidArgument,
            "get {bad:?}"
        );
        let m = vec![modification("x", Mod::Create(family(None)))];
        assert_eq!(
            code(modify(&mut s, bad, m).await),
            Code::InvalidArgument,
            "modify {bad:?}"
        );
        assert_eq!(
            set_protection(&mut s, bad, true).await.unwrap_err().code(),
            Code::InvalidArgument,
            "update {bad:?}"
        );
        assert_eq!(
            delete_table(&mut s, bad).await.unwrap_err().code(),
            Code::InvalidArgument,
            "delete {bad:?}"
        );
        let target = Some(a::drop_row_range_request::Target::DeleteAllDataFromTable(
            true,
        ));
        assert_eq!(
            drop_rows(&mut s, bad, target).await.unwrap_err().code(),
            Code::InvalidArgument,
            "drop {bad:?}"
        );
        let e = s
            .admin
            .generate_consistency_token(a::GenerateConsistencyTokenRequest { name: bad.into() })
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument, "token {bad:?}");
        let e = s
            .admin
            .check_consistency(a::CheckConsistencyRequest {
                name: bad.into(),
                consistency_token: "x".into(),
                mode: None,
            })
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument, "check {bad:?}");
    }
}
