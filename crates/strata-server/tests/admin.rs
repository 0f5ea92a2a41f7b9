//! Table-admin RPCs over gRPC: creating, listing, getting, updating and
//! deleting tables.

mod common;

use common::*;
use googleapis_tonic_google_bigtable_admin_v2::google::bigtable::admin::v2 as a;
use tonic::Code;

fn every_family_shape() -> Vec<(&'static str, ColumnFamily)> {
    vec![
        ("keep", family(None)),
        ("versions", family(Some(versions(3)))),
        ("age", family(Some(max_age(86_400)))),
        (
            "union",
            family(Some(union(vec![versions(2), max_age(3600)]))),
        ),
        (
            "inter",
            family(Some(intersection(vec![versions(1), max_age(60)]))),
        ),
        (
            "nested",
            family(Some(union(vec![
                intersection(vec![versions(5), max_age(7 * 86_400)]),
                versions(10),
            ]))),
        ),
        ("sum", agg_family(Agg::Sum)),
        ("min", agg_family(Agg::Min)),
        ("max", agg_family(Agg::Max)),
        ("hll", agg_family(Agg::HllInt64)),
        ("hllraw", agg_family(Agg::HllRaw)),
    ]
}

fn agg_of(t: &Option<a::Type>) -> Option<&a::r#type::aggregate::Aggregator> {
    match t.as_ref()?.kind.as_ref()? {
        a::r#type::Kind::AggregateType(agg) => agg.aggregator.as_ref(),
        _ => None,
    }
}

#[tokio::test]
async fn create_table_with_every_gc_rule_shape_and_aggregate_type() {
    use a::r#type::aggregate::Aggregator;
    let mut s = Server::start().await;
    let want = every_family_shape();
    let created = try_create_table(&mut s, "t", want.clone()).await.unwrap();
    assert_eq!(created.name, table_name("t"));
    for t in [
        created,
        get_table(&mut s, &table_name("t"), a::table::View::SchemaView)
            .await
            .unwrap(),
        get_table(&mut s, &table_name("t"), a::table::View::Unspecified)
            .await
            .unwrap(),
    ] {
        assert_eq!(t.column_families.len(), want.len());
        assert_eq!(t.granularity, a::table::TimestampGranularity::Millis as i32);
        for (name, cf) in &want {
            let got = &t.column_families[*name];
            let want_rule = cf.gc_rule.as_ref().and_then(|g| g.rule.clone());
            assert_eq!(
                got.gc_rule.as_ref().and_then(|g| g.rule.clone()),
                want_rule,
                "{name}"
            );
            let want_agg = agg_of(&cf.value_type).copied();
            assert_eq!(agg_of(&got.value_type).copied(), want_agg, "{name}");
        }
    }
    let t = get_table(&mut s, &table_name("t"), a::table::View::SchemaView)
        .await
        .unwrap();
    assert!(matches!(
        agg_of(&t.column_families["sum"].value_type),
        Some(Aggregator::Sum(_))
    ));
    // HLL++ families report their input type (raw inputs as bytes) and a
    // bytes state.
    let input_state = |fam: &str| match t.column_families[fam]
        .value_type
        .as_ref()
        .and_then(|v| v.kind.as_ref())
    {
        Some(a::r#type::Kind::AggregateType(agg)) => (
            agg.input_type.as_ref().and_then(|t| t.kind.clone()),
            agg.state_type.as_ref().and_then(|t| t.kind.clone()),
        ),
        other => panic!("{fam}: {other:?}"),
    };
    assert!(matches!(
        input_state("hll"),
        (
            Some(a::r#type::Kind::Int64Type(_)),
            Some(a::r#type::Kind::BytesType(_))
        )
    ));
    assert!(matches!(
        input_state("hllraw"),
        (
            Some(a::r#type::Kind::BytesType(_)),
            Some(a::r#type::Kind::BytesType(_))
        )
    ));
}

#[tokio::test]
async fn create_table_errors() {
    let mut s = Server::start().await;
    create_table(&mut s, "t", &["cf"]).await;
    let e = try_create_table(&mut s, "t", vec![]).await.unwrap_err();
    assert_eq!(e.code(), Code::AlreadyExists);
    for bad in ["-x", "a/b", "", "a b", &"f".repeat(65)] {
        let e = try_create_table(&mut s, "u", vec![(bad, family(None))])
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument, "family {bad:?}");
    }
    let neg_age = GcRule {
        rule: Some(gc_rule::Rule::MaxAge(prost_types::Duration {
            seconds: -1,
            nanos: 0,
        })),
    };
    let tiny_age = GcRule {
        rule: Some(gc_rule::Rule::MaxAge(prost_types::Duration {
            seconds: 0,
            nanos: 1000,
        })),
    };
    for rule in [
        versions(0),
        versions(-3),
        neg_age,
        tiny_age,
        union(vec![versions(0)]),
    ] {
        let e = try_create_table(&mut s, "u", vec![("cf", family(Some(rule.clone())))])
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument, "{rule:?}");
    }
    // An aggregate over strings is not an int64 aggregate.
    let mut bad_agg = agg_type(Agg::Sum);
    if let Some(a::r#type::Kind::AggregateType(agg)) = bad_agg.kind.as_mut() {
        agg.input_type = Some(Box::new(a::Type {
            kind: Some(a::r#type::Kind::StringType(Default::default())),
        }));
    }
    let cf = ColumnFamily {
        gc_rule: None,
        value_type: Some(bad_agg),
    };
    let e = try_create_table(&mut s, "u", vec![("cf", cf)])
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    // HLL++ of strings is refused; a string family is not supported.
    let mut hll_of_strings = agg_type(Agg::HllInt64);
    if let Some(a::r#type::Kind::AggregateType(agg)) = hll_of_strings.kind.as_mut() {
        agg.input_type = Some(Box::new(a::Type {
            kind: Some(a::r#type::Kind::StringType(Default::default())),
        }));
    }
    let string = a::Type {
        kind: Some(a::r#type::Kind::StringType(Default::default())),
    };
    for (vt, code) in [
        (hll_of_strings, Code::InvalidArgument),
        (string, Code::Unimplemented),
    ] {
        let cf = ColumnFamily {
            gc_rule: None,
            value_type: Some(vt),
        };
        let e = try_create_table(&mut s, "u", vec![("cf", cf)])
            .await
            .unwrap_err();
        assert_eq!(e.code(), code);
    }
    let mut deep = versions(1);
    for _ in 0..20 {
        deep = union(vec![deep]);
    }
    let e = try_create_table(&mut s, "u", vec![("cf", family(Some(deep)))])
        .await
        .unwrap_err();
    assert_eq!(
        e.code(),
        Code::InvalidArgument,
        "GC rules nested too deeply"
    );
    let e = s
        .admin
        .create_table(a::CreateTableRequest {
            parent: PARENT.into(),
            table_id: "u".into(),
            table: Some(a::Table {
                granularity: 7,
                ..Default::default()
            }),
            initial_splits: vec![],
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "granularity");
    for (parent, id) in [
        ("projects/p", "u"),
        ("", "u"),
        ("projects//instances/i", "u"),
        ("projects/p/instances/i/tables", "u"),
        (PARENT, ""),
        (PARENT, "bad/id"),
        (PARENT, "-x"),
    ] {
        let e = s
            .admin
            .create_table(a::CreateTableRequest {
                parent: parent.into(),
                table_id: id.into(),
                table: None,
                initial_splits: vec![],
            })
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument, "{parent:?} {id:?}");
    }
    // Nothing but the first table was created.
    let list = s
        .admin
        .list_tables(a::ListTablesRequest {
            parent: PARENT.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(list.tables.len(), 1);
}

#[tokio::test]
async fn list_tables_views_and_paging() {
    let mut s = Server::start().await;
    for id in ["t3", "t1", "t5", "t2", "t4"] {
        create_table(&mut s, id, &["cf"]).await;
    }
    // Another instance's table is not listed.
    s.admin
        .create_table(a::CreateTableRequest {
            parent: "projects/p/instances/other".into(),
            table_id: "t0".into(),
            table: None,
            initial_splits: vec![],
        })
        .await
        .unwrap();
    let list = |page_size: i32, page_token: String, v: a::table::View| a::ListTablesRequest {
        parent: PARENT.into(),
        view: view(v),
        page_size,
        page_token,
    };
    let all = s
        .admin
        .list_tables(list(0, String::new(), a::table::View::Unspecified))
        .await
        .unwrap()
        .into_inner();
    let names: Vec<String> = all.tables.iter().map(|t| t.name.clone()).collect();
    let want: Vec<String> = (1..=5).map(|i| table_name(&format!("t{i}"))).collect();
    assert_eq!(names, want);
    assert!(all.next_page_token.is_empty());
    assert!(
        all.tables.iter().all(|t| t.column_families.is_empty()),
        "NAME_ONLY by default"
    );
    let schema = s
        .admin
        .list_tables(list(0, String::new(), a::table::View::SchemaView))
        .await
        .unwrap()
        .into_inner();
    assert!(schema
        .tables
        .iter()
        .all(|t| t.column_families.contains_key("cf")));

    let mut token = String::new();
    let mut pages = Vec::new();
    loop {
        let page = s
            .admin
            .list_tables(list(2, token, a::table::View::NameOnly))
            .await
            .unwrap()
            .into_inner();
        pages.push(
            page.tables
                .iter()
                .map(|t| t.name.clone())
                .collect::<Vec<_>>(),
        );
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
        assert!(pages.len() < 10, "paging does not end");
    }
    assert_eq!(
        pages.iter().map(Vec::len).collect::<Vec<_>>(),
        vec![2, 2, 1]
    );
    assert_eq!(pages.concat(), want);

    let e = s
        .admin
        .list_tables(list(-1, String::new(), a::table::View::NameOnly))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    let e = s
        .admin
        .list_tables(a::ListTablesRequest {
            parent: "projects/p".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
}

#[tokio::test]
async fn get_table_views_and_not_found() {
    let mut s = Server::start().await;
    let name = create_table(&mut s, "t", &["cf1", "cf2"]).await;
    let e = get_table(&mut s, &table_name("missing"), a::table::View::SchemaView)
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
    let e = get_table(&mut s, "tables/t", a::table::View::SchemaView)
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    let t = get_table(&mut s, &name, a::table::View::NameOnly)
        .await
        .unwrap();
    assert_eq!(t.name, name);
    assert!(t.column_families.is_empty());
    let t = get_table(&mut s, &name, a::table::View::SchemaView)
        .await
        .unwrap();
    assert_eq!(t.name, name);
    assert_eq!(
        t.column_families.keys().collect::<Vec<_>>(),
        vec!["cf1", "cf2"]
    );
}

#[tokio::test]
async fn deletion_protection_blocks_delete_table() {
    let mut s = Server::start().await;
    let name = create_table(&mut s, "t", &["cf"]).await;
    put(&mut s, &name, b"r", "cf", b"q", 1000, b"v").await;
    let t = set_protection(&mut s, &name, true).await.unwrap();
    assert!(t.deletion_protection);
    assert!(
        get_table(&mut s, &name, a::table::View::SchemaView)
            .await
            .unwrap()
            .deletion_protection
    );
    let e = delete_table(&mut s, &name).await.unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition);
    assert_eq!(
        read_all(&mut s, &name).await.len(),
        1,
        "the table and its data remain"
    );
    let t = set_protection(&mut s, &name, false).await.unwrap();
    assert!(!t.deletion_protection);
    delete_table(&mut s, &name).await.unwrap();
    let e = get_table(&mut s, &name, a::table::View::NameOnly)
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);

    // Errors: unknown table, no mask, a field that cannot change.
    assert_eq!(
        set_protection(&mut s, &name, true)
            .await
            .unwrap_err()
            .code(),
        Code::NotFound
    );
    let req = |paths: Vec<String>| a::UpdateTableRequest {
        table: Some(a::Table {
            name: table_name("t"),
            ..Default::default()
        }),
        update_mask: Some(prost_types::FieldMask { paths }),
        ignore_warnings: false,
    };
    let e = s.admin.update_table(req(vec![])).await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    let e = s
        .admin
        .update_table(req(vec!["change_stream_config".into()]))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Unimplemented);

    // Created protected.
    let table = a::Table {
        deletion_protection: true,
        ..Default::default()
    };
    s.admin
        .create_table(a::CreateTableRequest {
            parent: PARENT.into(),
            table_id: "p".into(),
            table: Some(table),
            initial_splits: vec![],
        })
        .await
        .unwrap();
    let e = delete_table(&mut s, &table_name("p")).await.unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition);
}

#[tokio::test]
async fn delete_table_then_recreate_is_empty() {
    let mut s = Server::start().await;
    let e = delete_table(&mut s, &table_name("missing"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
    let e = delete_table(&mut s, "bad").await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    let name = create_table(&mut s, "t", &["cf"]).await;
    put(&mut s, &name, b"r", "cf", b"q", 1000, b"v").await;
    delete_table(&mut s, &name).await.unwrap();
    let e = mutate(&mut s, &name, b"r", vec![set_cell("cf", b"q", 1000, b"v")])
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
    let e = try_read(&mut s, read_req(&name, None, None))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
    create_table(&mut s, "t", &["cf"]).await;
    assert!(
        read_all(&mut s, &name).await.is_empty(),
        "a recreated table starts empty"
    );
}

#[tokio::test]
async fn create_table_with_initial_splits() {
    let mut s = Server::start().await;
    let split = |k: &[u8]| a::create_table_request::Split { key: k.to_vec() };
    let req = |id: &str, splits: Vec<a::create_table_request::Split>| a::CreateTableRequest {
        parent: PARENT.into(),
        table_id: id.into(),
        table: Some(a::Table {
            column_families: [("cf".to_string(), family(None))].into_iter().collect(),
            ..Default::default()
        }),
        initial_splits: splits,
    };
    s.admin
        .create_table(req("t", vec![split(b"g"), split(b"p")]))
        .await
        .unwrap();
    for k in ["a", "h", "z"] {
        put(
            &mut s,
            &table_name("t"),
            k.as_bytes(),
            "cf",
            b"q",
            1000,
            b"v",
        )
        .await;
    }
    assert_eq!(
        keys(&read_all(&mut s, &table_name("t")).await),
        bkeys(&["a", "h", "z"])
    );
    let e = s
        .admin
        .create_table(req("u", vec![split(b"")]))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    let e = get_table(&mut s, &table_name("u"), a::table::View::NameOnly)
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
}
