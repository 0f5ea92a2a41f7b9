//! Generates tonic *server* stubs for google.bigtable.v2.Bigtable,
//! google.bigtable.admin.v2.BigtableTableAdmin and BigtableInstanceAdmin,
//! and google.longrunning.Operations, reusing the prost message types
//! from the googleapis-tonic-* crates (no protoc, no .proto files). Every
//! method defaults to UNIMPLEMENTED; `src/data.rs`, `src/admin.rs`,
//! `src/instances.rs` and `src/operations.rs` override the ones Strata
//! serves.
//!
//! Also generates the server *and* client stubs of Strata's own operator
//! service, strata.admin.v1.StrataAdmin, whose messages are hand-written in
//! `src/tablets.rs` (wire format: docs/formats/admin-rpc.md).
use tonic_build::manual::{Method, Service};
use tonic_build::CodeGenBuilder;

const V2: &str = "::googleapis_tonic_google_bigtable_v2::google::bigtable::v2";
const ADMIN: &str = "::googleapis_tonic_google_bigtable_admin_v2::google::bigtable::admin::v2";
const LRO: &str = "::googleapis_tonic_google_bigtable_admin_v2::google::longrunning::Operation";
const IAM: &str = "::googleapis_tonic_google_bigtable_admin_v2::google::iam::v1";
// google.protobuf.Empty is `()` in prost, but manual::Method needs a syn::Path.
const EMPTY: &str = "crate::Empty";

fn m(rust: &str, route: &str, input: String, output: String, server_streaming: bool) -> Method {
    let b = Method::builder()
        .name(rust)
        .route_name(route)
        .input_type(input)
        .output_type(output)
        .codec_path("::tonic_prost::ProstCodec");
    (if server_streaming {
        b.server_streaming()
    } else {
        b
    })
    .build()
}

fn main() {
    let d = |rust: &str, route: &str, ss: bool| {
        m(
            rust,
            route,
            format!("{V2}::{route}Request"),
            format!("{V2}::{route}Response"),
            ss,
        )
    };
    let data = Service::builder()
        .name("Bigtable")
        .package("google.bigtable.v2")
        .method(d("read_rows", "ReadRows", true))
        .method(d("sample_row_keys", "SampleRowKeys", true))
        .method(d("mutate_row", "MutateRow", false))
        .method(d("mutate_rows", "MutateRows", true))
        .method(d("check_and_mutate_row", "CheckAndMutateRow", false))
        .method(d("ping_and_warm", "PingAndWarm", false))
        .method(d("read_modify_write_row", "ReadModifyWriteRow", false))
        .method(d(
            "generate_initial_change_stream_partitions",
            "GenerateInitialChangeStreamPartitions",
            true,
        ))
        .method(d("read_change_stream", "ReadChangeStream", true))
        .method(d("prepare_query", "PrepareQuery", false))
        .method(d("execute_query", "ExecuteQuery", true))
        .build();

    // (rust name, route, request, response); all admin RPCs are unary.
    let a = |rust: &str, route: &str, out: &str| {
        let output = match out {
            "LRO" => LRO.to_string(),
            "EMPTY" => EMPTY.to_string(),
            t => format!("{ADMIN}::{t}"),
        };
        m(
            rust,
            route,
            format!("{ADMIN}::{route}Request"),
            output,
            false,
        )
    };
    let iam = |rust: &str, route: &str, out: &str| {
        m(
            rust,
            route,
            format!("{IAM}::{route}Request"),
            format!("{IAM}::{out}"),
            false,
        )
    };
    let admin = Service::builder()
        .name("BigtableTableAdmin")
        .package("google.bigtable.admin.v2")
        .method(a("create_table", "CreateTable", "Table"))
        .method(a(
            "create_table_from_snapshot",
            "CreateTableFromSnapshot",
            "LRO",
        ))
        .method(a("list_tables", "ListTables", "ListTablesResponse"))
        .method(a("get_table", "GetTable", "Table"))
        .method(a("update_table", "UpdateTable", "LRO"))
        .method(a("delete_table", "DeleteTable", "EMPTY"))
        .method(a("undelete_table", "UndeleteTable", "LRO"))
        .method(a("create_authorized_view", "CreateAuthorizedView", "LRO"))
        .method(a(
            "list_authorized_views",
            "ListAuthorizedViews",
            "ListAuthorizedViewsResponse",
        ))
        .method(a(
            "get_authorized_view",
            "GetAuthorizedView",
            "AuthorizedView",
        ))
        .method(a("update_authorized_view", "UpdateAuthorizedView", "LRO"))
        .method(a("delete_authorized_view", "DeleteAuthorizedView", "EMPTY"))
        .method(a("modify_column_families", "ModifyColumnFamilies", "Table"))
        .method(a("drop_row_range", "DropRowRange", "EMPTY"))
        .method(a(
            "generate_consistency_token",
            "GenerateConsistencyToken",
            "GenerateConsistencyTokenResponse",
        ))
        .method(a(
            "check_consistency",
            "CheckConsistency",
            "CheckConsistencyResponse",
        ))
        .method(a("snapshot_table", "SnapshotTable", "LRO"))
        .method(a("get_snapshot", "GetSnapshot", "Snapshot"))
        .method(a(
            "list_snapshots",
            "ListSnapshots",
            "ListSnapshotsResponse",
        ))
        .method(a("delete_snapshot", "DeleteSnapshot", "EMPTY"))
        .method(a("create_backup", "CreateBackup", "LRO"))
        .method(a("get_backup", "GetBackup", "Backup"))
        .method(a("update_backup", "UpdateBackup", "Backup"))
        .method(a("delete_backup", "DeleteBackup", "EMPTY"))
        .method(a("list_backups", "ListBackups", "ListBackupsResponse"))
        .method(a("restore_table", "RestoreTable", "LRO"))
        .method(a("copy_backup", "CopyBackup", "LRO"))
        .method(iam("get_iam_policy", "GetIamPolicy", "Policy"))
        .method(iam("set_iam_policy", "SetIamPolicy", "Policy"))
        .method(iam(
            "test_iam_permissions",
            "TestIamPermissions",
            "TestIamPermissionsResponse",
        ))
        .method(a("create_schema_bundle", "CreateSchemaBundle", "LRO"))
        .method(a("update_schema_bundle", "UpdateSchemaBundle", "LRO"))
        .method(a("get_schema_bundle", "GetSchemaBundle", "SchemaBundle"))
        .method(a(
            "list_schema_bundles",
            "ListSchemaBundles",
            "ListSchemaBundlesResponse",
        ))
        .method(a("delete_schema_bundle", "DeleteSchemaBundle", "EMPTY"))
        .build();

    let instance_admin = instance_admin_service(&a, &iam);
    let operations = operations_service();

    let out = std::path::PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    let mut gen = CodeGenBuilder::new();
    gen.emit_package(true) // routes "/google.bigtable.v2.Bigtable/ReadRows"
        .build_transport(true)
        .generate_default_stubs(true); // every trait method defaults to UNIMPLEMENTED
    for (svc, file) in [
        (&data, "bigtable_server.rs"),
        (&admin, "bigtable_table_admin_server.rs"),
        (&instance_admin, "bigtable_instance_admin_server.rs"),
        (&operations, "operations_server.rs"),
    ] {
        let code = gen.generate_server(svc, "").to_string();
        std::fs::write(out.join(file), code).expect("write generated server stubs");
    }

    // Written as strata.admin.v1.StrataAdmin.rs (client, then server).
    let tablets = Service::builder()
        .name("StrataAdmin")
        .package("strata.admin.v1")
        .method(m(
            "list_tablets",
            "ListTablets",
            "crate::tablets::ListTabletsRequest".to_string(),
            "crate::tablets::ListTabletsResponse".to_string(),
            false,
        ))
        .method(m(
            "compact_table",
            "CompactTable",
            "crate::tablets::CompactTableRequest".to_string(),
            "crate::tablets::CompactTableResponse".to_string(),
            false,
        ))
        .build();
    tonic_build::manual::Builder::new()
        .build_client(true)
        .build_server(true)
        .out_dir(&out)
        .compile(&[tablets]);
    println!("cargo:rerun-if-changed=build.rs");
}

/// google.bigtable.admin.v2.BigtableInstanceAdmin, every RPC of the
/// googleapis crate's client.
fn instance_admin_service(
    a: &dyn Fn(&str, &str, &str) -> Method,
    iam: &dyn Fn(&str, &str, &str) -> Method,
) -> Service {
    // UpdateInstance and UpdateCluster take the resource itself.
    let whole = |rust: &str, route: &str, input: &str, out: &str| {
        let output = if out == "LRO" {
            LRO.to_string()
        } else {
            format!("{ADMIN}::{out}")
        };
        m(rust, route, format!("{ADMIN}::{input}"), output, false)
    };
    let mut b = Service::builder()
        .name("BigtableInstanceAdmin")
        .package("google.bigtable.admin.v2")
        .method(a("create_instance", "CreateInstance", "LRO"))
        .method(a("get_instance", "GetInstance", "Instance"))
        .method(a(
            "list_instances",
            "ListInstances",
            "ListInstancesResponse",
        ))
        .method(whole(
            "update_instance",
            "UpdateInstance",
            "Instance",
            "Instance",
        ))
        .method(a("partial_update_instance", "PartialUpdateInstance", "LRO"))
        .method(a("delete_instance", "DeleteInstance", "EMPTY"))
        .method(a("create_cluster", "CreateCluster", "LRO"))
        .method(a("get_cluster", "GetCluster", "Cluster"))
        .method(a("list_clusters", "ListClusters", "ListClustersResponse"))
        .method(whole("update_cluster", "UpdateCluster", "Cluster", "LRO"))
        .method(a("partial_update_cluster", "PartialUpdateCluster", "LRO"))
        .method(a("delete_cluster", "DeleteCluster", "EMPTY"))
        .method(a("create_app_profile", "CreateAppProfile", "AppProfile"))
        .method(a("get_app_profile", "GetAppProfile", "AppProfile"))
        .method(a(
            "list_app_profiles",
            "ListAppProfiles",
            "ListAppProfilesResponse",
        ))
        .method(a("update_app_profile", "UpdateAppProfile", "LRO"))
        .method(a("delete_app_profile", "DeleteAppProfile", "EMPTY"))
        .method(iam("get_iam_policy", "GetIamPolicy", "Policy"))
        .method(iam("set_iam_policy", "SetIamPolicy", "Policy"))
        .method(iam(
            "test_iam_permissions",
            "TestIamPermissions",
            "TestIamPermissionsResponse",
        ))
        .method(a(
            "list_hot_tablets",
            "ListHotTablets",
            "ListHotTabletsResponse",
        ));
    for (kind, list) in [
        ("LogicalView", "ListLogicalViewsResponse"),
        ("MaterializedView", "ListMaterializedViewsResponse"),
    ] {
        let snake = if kind == "LogicalView" {
            "logical_view"
        } else {
            "materialized_view"
        };
        b = b
            .method(a(
                &format!("create_{snake}"),
                &format!("Create{kind}"),
                "LRO",
            ))
            .method(a(&format!("get_{snake}"), &format!("Get{kind}"), kind))
            .method(a(&format!("list_{snake}s"), &format!("List{kind}s"), list))
            .method(a(
                &format!("update_{snake}"),
                &format!("Update{kind}"),
                "LRO",
            ))
            .method(a(
                &format!("delete_{snake}"),
                &format!("Delete{kind}"),
                "EMPTY",
            ));
    }
    b.build()
}

/// google.longrunning.Operations.
fn operations_service() -> Service {
    const LR: &str = "::googleapis_tonic_google_bigtable_admin_v2::google::longrunning";
    let o = |rust: &str, route: &str, out: &str| {
        let output = if out == "EMPTY" {
            EMPTY.to_string()
        } else {
            format!("{LR}::{out}")
        };
        m(rust, route, format!("{LR}::{route}Request"), output, false)
    };
    Service::builder()
        .name("Operations")
        .package("google.longrunning")
        .method(o(
            "list_operations",
            "ListOperations",
            "ListOperationsResponse",
        ))
        .method(o("get_operation", "GetOperation", "Operation"))
        .method(o("delete_operation", "DeleteOperation", "EMPTY"))
        .method(o("cancel_operation", "CancelOperation", "EMPTY"))
        .method(o("wait_operation", "WaitOperation", "Operation"))
        .build()
}
