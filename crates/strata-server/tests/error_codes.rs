//! Error answers checked against Bigtable's documented behaviour (the
//! googleapis protos' comments; docs/server.md, "Error codes"): each test
//! here pins a code Strata once answered differently.

mod common;

use a::drop_row_range_request::Target;
use a::modify_column_families_request::modification::Mod;
use common::*;
use googleapis_tonic_google_bigtable_admin_v2::google::bigtable::admin::v2 as a;
use tonic::transport::Channel;
use tonic::Code;

type Instances = a::bigtable_instance_admin_client::BigtableInstanceAdminClient<Channel>;

/// "Deleting … the column families in the table … [is] prohibited" on a
/// table with deletion protection: a request with any drop is refused as
/// a whole (the others are not applied); creating and updating families
/// stays allowed.
#[tokio::test]
async fn deletion_protection_blocks_dropping_a_family() {
    let mut s = Server::start().await;
    let name = create_table(&mut s, "t", &["a", "b"]).await;
    put(&mut s, &name, b"r", "b", b"q", 1000, b"v").await;
    set_protection(&mut s, &name, true).await.unwrap();
    let e = modify(
        &mut s,
        &name,
        vec![
            modification("c", Mod::Create(family(None))),
            modification("b", Mod::Drop(true)),
        ],
    )
    .await
    .unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition, "{e:?}");
    assert!(e.message().contains("deletion protection"), "{e:?}");
    // Even a drop of a family the table lacks: protection is checked first.
    let e = modify(&mut s, &name, vec![modification("nope", Mod::Drop(true))])
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition, "{e:?}");
    let t = get_table(&mut s, &name, a::table::View::SchemaView)
        .await
        .unwrap();
    let fams: Vec<&str> = t.column_families.keys().map(|k| k.as_str()).collect();
    assert_eq!(fams, ["a", "b"], "nothing of the request applied");
    assert_eq!(read_all(&mut s, &name).await.len(), 1, "the data stays");

    let t = modify(
        &mut s,
        &name,
        vec![modification("c", Mod::Create(family(None)))],
    )
    .await
    .unwrap();
    assert!(t.column_families.contains_key("c"));
    set_protection(&mut s, &name, false).await.unwrap();
    let t = modify(&mut s, &name, vec![modification("b", Mod::Drop(true))])
        .await
        .unwrap();
    assert!(!t.column_families.contains_key("b"));
}

/// "Delete all rows in the table. Setting this to false is a no-op."
#[tokio::test]
async fn drop_row_range_delete_all_false_is_a_no_op() {
    let mut s = Server::start().await;
    let name = create_table(&mut s, "t", &["cf"]).await;
    put(&mut s, &name, b"r", "cf", b"q", 1000, b"v").await;
    drop_rows(&mut s, &name, Some(Target::DeleteAllDataFromTable(false)))
        .await
        .unwrap();
    assert_eq!(read_all(&mut s, &name).await.len(), 1);
    // The table must still exist.
    let e = drop_rows(
        &mut s,
        &table_name("missing"),
        Some(Target::DeleteAllDataFromTable(false)),
    )
    .await
    .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
}

/// UpdateTable's mask: `column_families` is UNIMPLEMENTED (the proto says
/// so), as are the fields Bigtable updates and Strata does not; a path
/// that names no updatable field is INVALID_ARGUMENT.
#[tokio::test]
async fn update_table_mask_paths() {
    let mut s = Server::start().await;
    let name = create_table(&mut s, "t", &["cf"]).await;
    for p in [
        "column_families",
        "change_stream_config",
        "change_stream_config.retention_period",
        "row_key_schema",
        "automated_backup_policy",
    ] {
        assert_eq!(
            update_code(&mut s, &name, &[p]).await,
            Code::Unimplemented,
            "{p}"
        );
    }
    for p in ["bogus", "name", "granularity", "*", "deletion_protection.x"] {
        assert_eq!(
            update_code(&mut s, &name, &[p]).await,
            Code::InvalidArgument,
            "{p}"
        );
    }
    // A bad path anywhere refuses the whole request.
    assert_eq!(
        update_code(&mut s, &name, &["deletion_protection", "bogus"]).await,
        Code::InvalidArgument
    );
    let t = get_table(&mut s, &name, a::table::View::SchemaView)
        .await
        .unwrap();
    assert!(!t.deletion_protection, "nothing applied");
    assert_eq!(
        update_code(&mut s, &name, &["deletion_protection"]).await,
        Code::Ok
    );
}

/// The code of an UpdateTable setting deletion protection under `paths`.
async fn update_code(s: &mut Server, name: &str, paths: &[&str]) -> Code {
    let req = a::UpdateTableRequest {
        table: Some(a::Table {
            name: name.into(),
            deletion_protection: true,
            ..Default::default()
        }),
        update_mask: Some(prost_types::FieldMask {
            paths: paths.iter().map(|p| p.to_string()).collect(),
        }),
        ignore_warnings: false,
    };
    match s.admin.update_table(req).await {
        Ok(_) => Code::Ok,
        Err(e) => e.code(),
    }
}

/// "The total serialized size of a RowFilter message must not exceed
/// 20480 bytes" (Bigtable: "Row filter exceeds maximum size of 20480
/// bytes"), for ReadRows and CheckAndMutateRow's predicate.
#[tokio::test]
async fn row_filter_over_20_kib_is_invalid() {
    let mut s = Server::start().await;
    let name = create_table(&mut s, "t", &["cf"]).await;
    put(&mut s, &name, b"r", "cf", b"q", 1000, b"v").await;
    // A value regex of n bytes (16 KiB or more) serializes to n + 4 bytes:
    // a tag and a 3-byte length.
    let regex = |n: usize| filter(F::ValueRegexFilter(vec![b'v'; n]));
    let fits = regex(20480 - 4);
    assert_eq!(prost::Message::encoded_len(&fits), 20480);
    let rows = try_read(&mut s, read_req(&name, None, Some(fits)))
        .await
        .unwrap();
    assert!(rows.rows.is_empty(), "a valid filter that matches nothing");
    let too_big = regex(20480 - 3);
    let e = try_read(&mut s, read_req(&name, None, Some(too_big.clone())))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    assert!(e.message().contains("20480"), "{e:?}");
    let e = s
        .data
        .check_and_mutate_row(v2_check(&name, too_big))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
}

fn v2_check(
    table: &str,
    predicate: RowFilter,
) -> googleapis_tonic_google_bigtable_v2::google::bigtable::v2::CheckAndMutateRowRequest {
    googleapis_tonic_google_bigtable_v2::google::bigtable::v2::CheckAndMutateRowRequest {
        table_name: table.into(),
        row_key: b"r".to_vec(),
        predicate_filter: Some(predicate),
        true_mutations: vec![set_cell("cf", b"q", 2000, b"x")],
        ..Default::default()
    }
}

/// "For technical reasons, the regex must not contain the `:` character,
/// even if it is not being used as a literal."
#[tokio::test]
async fn family_regex_with_a_colon_is_invalid() {
    let mut s = Server::start().await;
    let name = create_table(&mut s, "t", &["cf"]).await;
    for re in ["cf:", "(?:cf)", "[:]"] {
        let f = filter(F::FamilyNameRegexFilter(re.into()));
        assert_eq!(
            filter_code(&mut s, &name, f).await,
            Code::InvalidArgument,
            "{re}"
        );
    }
    put(&mut s, &name, b"r", "cf", b"q", 1000, b"v").await;
    let f = filter(F::FamilyNameRegexFilter("(cf)".into()));
    assert_eq!(read_filtered(&mut s, &name, Some(f)).await.len(), 1);
}

/// "Garbage collection rule specified as a protobuf. Must serialize to at
/// most 500 bytes", on create and on update.
#[tokio::test]
async fn gc_rule_over_500_bytes_is_invalid() {
    let mut s = Server::start().await;
    // A union of 123 max_num_versions(1) rules (4 bytes each: tag, length,
    // tag, 1-byte varint) and one more whose varint is `last`'s, 3 bytes
    // around them: 500 bytes with a 2-byte varint, 501 with a 3-byte one.
    let rule = |last: i32| {
        let mut rules = vec![versions(1); 123];
        rules.push(versions(last));
        union(rules)
    };
    let fits = rule(128);
    assert_eq!(prost::Message::encoded_len(&fits), 500);
    try_create_table(&mut s, "ok", vec![("cf", family(Some(fits)))])
        .await
        .unwrap();
    let too_big = rule(1 << 14);
    assert_eq!(prost::Message::encoded_len(&too_big), 501);
    let e = try_create_table(&mut s, "big", vec![("cf", family(Some(too_big.clone())))])
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    assert!(e.message().contains("500"), "{e:?}");
    let e = modify(
        &mut s,
        &table_name("ok"),
        vec![modification("cf", Mod::Update(family(Some(too_big))))],
    )
    .await
    .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
}

/// ListAppProfiles: "Use `{instance} = '-'` to list AppProfiles for all
/// Instances in a project", paged in name order.
#[tokio::test]
async fn list_app_profiles_of_every_instance() {
    let mut s = Server::start().await;
    // Two implicit instances (they hold tables); `i-a` sorts before `i/`.
    for parent in ["projects/p/instances/i", "projects/p/instances/i-a"] {
        s.admin
            .create_table(a::CreateTableRequest {
                parent: parent.into(),
                table_id: "t".into(),
                table: Some(a::Table::default()),
                initial_splits: vec![],
            })
            .await
            .unwrap();
    }
    let ch = Channel::from_shared(format!("http://{}", s.addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut inst = Instances::new(ch);
    let list = |page_size: i32, page_token: String| a::ListAppProfilesRequest {
        parent: "projects/p/instances/-".into(),
        page_size,
        page_token,
    };
    let all = inst
        .list_app_profiles(list(0, String::new()))
        .await
        .unwrap();
    let names: Vec<String> = all
        .into_inner()
        .app_profiles
        .into_iter()
        .map(|p| p.name)
        .collect();
    assert_eq!(
        names,
        [
            "projects/p/instances/i-a/appProfiles/default",
            "projects/p/instances/i/appProfiles/default",
        ]
    );
    let first = inst
        .list_app_profiles(list(1, String::new()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first.app_profiles.len(), 1);
    assert_eq!(first.app_profiles[0].name, names[0]);
    let second = inst
        .list_app_profiles(list(1, first.next_page_token))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(second.app_profiles.len(), 1);
    assert_eq!(second.app_profiles[0].name, names[1]);
    assert!(second.next_page_token.is_empty());
    // A project with no instances lists nothing; a bad project is invalid.
    let mut empty = list(0, String::new());
    empty.parent = "projects/none/instances/-".into();
    let r = inst.list_app_profiles(empty).await.unwrap().into_inner();
    assert!(r.app_profiles.is_empty());
    let mut bad = list(0, String::new());
    bad.parent = "projects//instances/-".into();
    let e = inst.list_app_profiles(bad).await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
}
