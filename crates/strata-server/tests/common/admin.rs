//! Table-admin builders and calls.

use super::{table_name, Server, PARENT};
use googleapis_tonic_google_bigtable_admin_v2::google::bigtable::admin::v2 as a;
use prost::Message;

pub use a::{gc_rule, ColumnFamily, GcRule};

pub fn versions(n: i32) -> GcRule {
    GcRule {
        rule: Some(gc_rule::Rule::MaxNumVersions(n)),
    }
}

pub fn max_age(seconds: i64) -> GcRule {
    GcRule {
        rule: Some(gc_rule::Rule::MaxAge(prost_types::Duration {
            seconds,
            nanos: 0,
        })),
    }
}

pub fn union(rules: Vec<GcRule>) -> GcRule {
    GcRule {
        rule: Some(gc_rule::Rule::Union(gc_rule::Union { rules })),
    }
}

pub fn intersection(rules: Vec<GcRule>) -> GcRule {
    GcRule {
        rule: Some(gc_rule::Rule::Intersection(gc_rule::Intersection { rules })),
    }
}

pub fn family(gc: Option<GcRule>) -> ColumnFamily {
    ColumnFamily {
        gc_rule: gc,
        value_type: None,
    }
}

#[derive(Clone, Copy, Debug)]
pub enum Agg {
    Sum,
    Min,
    Max,
    /// HLL++ unique count of int64 inputs.
    HllInt64,
    /// HLL++ unique count of raw inputs (no input type).
    HllRaw,
}

/// An aggregate type: int64 Sum/Min/Max or HLL++.
pub fn agg_type(agg: Agg) -> a::Type {
    use a::r#type::aggregate::{Aggregator, HyperLogLogPlusPlusUniqueCount as Hll, Max, Min, Sum};
    use a::r#type::{Aggregate, Int64, Kind};
    let int64 = a::Type {
        kind: Some(Kind::Int64Type(Int64::default())),
    };
    a::Type {
        kind: Some(Kind::AggregateType(Box::new(Aggregate {
            input_type: match agg {
                Agg::HllRaw => None,
                _ => Some(Box::new(int64)),
            },
            state_type: None,
            aggregator: Some(match agg {
                Agg::Sum => Aggregator::Sum(Sum {}),
                Agg::Min => Aggregator::Min(Min {}),
                Agg::Max => Aggregator::Max(Max {}),
                Agg::HllInt64 | Agg::HllRaw => Aggregator::HllppUniqueCount(Hll {}),
            }),
        }))),
    }
}

pub fn agg_family(agg: Agg) -> ColumnFamily {
    ColumnFamily {
        gc_rule: None,
        value_type: Some(agg_type(agg)),
    }
}

pub async fn try_create_table(
    s: &mut Server,
    id: &str,
    families: Vec<(&str, ColumnFamily)>,
) -> Result<a::Table, tonic::Status> {
    let table = a::Table {
        column_families: families
            .into_iter()
            .map(|(n, f)| (n.to_string(), f))
            .collect(),
        ..Default::default()
    };
    s.admin
        .create_table(a::CreateTableRequest {
            parent: PARENT.into(),
            table_id: id.into(),
            table: Some(table),
            initial_splits: vec![],
        })
        .await
        .map(|r| r.into_inner())
}

/// Creates a table with families that keep every cell; returns its name.
pub async fn create_table(s: &mut Server, id: &str, families: &[&str]) -> String {
    let fams = families.iter().map(|f| (*f, family(None))).collect();
    try_create_table(s, id, fams).await.expect("create table");
    table_name(id)
}

pub fn view(v: a::table::View) -> i32 {
    v as i32
}

pub async fn get_table(
    s: &mut Server,
    name: &str,
    v: a::table::View,
) -> Result<a::Table, tonic::Status> {
    s.admin
        .get_table(a::GetTableRequest {
            name: name.into(),
            view: view(v),
        })
        .await
        .map(|r| r.into_inner())
}

pub async fn delete_table(s: &mut Server, name: &str) -> Result<(), tonic::Status> {
    s.admin
        .delete_table(a::DeleteTableRequest { name: name.into() })
        .await
        .map(|_| ())
}

pub fn modification(
    id: &str,
    m: a::modify_column_families_request::modification::Mod,
) -> a::modify_column_families_request::Modification {
    a::modify_column_families_request::Modification {
        id: id.into(),
        update_mask: None,
        r#mod: Some(m),
    }
}

pub async fn modify(
    s: &mut Server,
    name: &str,
    modifications: Vec<a::modify_column_families_request::Modification>,
) -> Result<a::Table, tonic::Status> {
    s.admin
        .modify_column_families(a::ModifyColumnFamiliesRequest {
            name: name.into(),
            modifications,
            ignore_warnings: false,
        })
        .await
        .map(|r| r.into_inner())
}

pub async fn set_protection(
    s: &mut Server,
    name: &str,
    on: bool,
) -> Result<a::Table, tonic::Status> {
    use googleapis_tonic_google_bigtable_admin_v2::google::longrunning::operation::Result as OpResult;
    let op = s
        .admin
        .update_table(a::UpdateTableRequest {
            table: Some(a::Table {
                name: name.into(),
                deletion_protection: on,
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["deletion_protection".into()],
            }),
            ignore_warnings: false,
        })
        .await?
        .into_inner();
    assert!(op.done, "UpdateTable's operation is done");
    match op.result {
        Some(OpResult::Response(any)) => {
            assert!(any.type_url.ends_with("google.bigtable.admin.v2.Table"));
            Ok(a::Table::decode(any.value.as_slice()).expect("a Table"))
        }
        other => panic!("unexpected operation result {other:?}"),
    }
}

pub async fn drop_rows(
    s: &mut Server,
    name: &str,
    target: Option<a::drop_row_range_request::Target>,
) -> Result<(), tonic::Status> {
    s.admin
        .drop_row_range(a::DropRowRangeRequest {
            name: name.into(),
            target,
        })
        .await
        .map(|_| ())
}
