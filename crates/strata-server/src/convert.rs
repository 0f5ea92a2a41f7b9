//! Conversions between the Bigtable protos and strata-table's types, with
//! the validation that turns bad input into INVALID_ARGUMENT.

use crate::admin_pb as a;
use crate::data_pb as v2;
use strata_table::filter::FilterError;
use strata_table::{
    AggregateInput, ByteBound, Family, FilterSpec, GcRule, Mutation, RowBound, RowRange, RowSet,
    TableError, ValueType,
};
use tonic::Status;

/// The gRPC status of a table error.
pub fn status(e: TableError) -> Status {
    Status::new(code(&e), e.to_string())
}

pub fn invalid(msg: impl Into<String>) -> Status {
    Status::invalid_argument(msg.into())
}

/// The gRPC code of a table error.
pub fn code(e: &TableError) -> tonic::Code {
    match e {
        TableError::NotFound(_) => tonic::Code::NotFound,
        TableError::AlreadyExists(_) => tonic::Code::AlreadyExists,
        TableError::InvalidArgument(_) => tonic::Code::InvalidArgument,
        TableError::FailedPrecondition(_) => tonic::Code::FailedPrecondition,
        TableError::Corrupt(_) => tonic::Code::DataLoss,
        TableError::Engine(
            strata_engine::Error::Fenced(_) | strata_engine::Error::Unavailable(_),
        ) => tonic::Code::Unavailable,
        TableError::Engine(strata_engine::Error::NoSpace(_)) => tonic::Code::ResourceExhausted,
        TableError::Engine(_) => tonic::Code::Internal,
    }
}

/// `google.rpc.Status` of a table result (for MutateRows entries).
pub fn rpc_status(r: &Result<(), TableError>) -> crate::RpcStatus {
    match r {
        Ok(()) => crate::RpcStatus::default(),
        Err(e) => crate::RpcStatus {
            code: code(e) as i32,
            message: e.to_string(),
            details: vec![],
        },
    }
}

fn value_bytes(v: &Option<v2::Value>, what: &str) -> Result<Vec<u8>, Status> {
    use v2::value::Kind;
    match v.as_ref().and_then(|v| v.kind.as_ref()) {
        Some(Kind::RawValue(b)) | Some(Kind::BytesValue(b)) => Ok(b.clone()),
        Some(Kind::StringValue(s)) => Ok(s.as_bytes().to_vec()),
        None => Ok(Vec::new()),
        Some(_) => Err(invalid(format!("{what} must be a raw or bytes value"))),
    }
}

fn value_ts(v: &Option<v2::Value>, what: &str) -> Result<i64, Status> {
    use v2::value::Kind;
    match v.as_ref().and_then(|v| v.kind.as_ref()) {
        Some(Kind::RawTimestampMicros(t)) | Some(Kind::IntValue(t)) => Ok(*t),
        Some(Kind::TimestampValue(t)) => t
            .seconds
            .checked_mul(1_000_000)
            .and_then(|us| us.checked_add(i64::from(t.nanos) / 1000))
            .ok_or_else(|| invalid(format!("{what} is out of range"))),
        None => Ok(0),
        Some(_) => Err(invalid(format!(
            "{what} must be a timestamp in microseconds"
        ))),
    }
}

/// An AddToCell / MergeToCell input; whether it fits the family is the
/// table layer's check.
fn value_aggregate(v: &Option<v2::Value>, what: &str) -> Result<AggregateInput, Status> {
    use v2::value::Kind;
    match v.as_ref().and_then(|v| v.kind.as_ref()) {
        Some(Kind::IntValue(i)) => Ok(AggregateInput::Int(*i)),
        Some(Kind::RawValue(b)) | Some(Kind::BytesValue(b)) => Ok(AggregateInput::Bytes(b.clone())),
        Some(Kind::StringValue(s)) => Ok(AggregateInput::Bytes(s.as_bytes().to_vec())),
        None => Err(invalid(format!("{what} is missing"))),
        Some(_) => Err(invalid(format!(
            "{what} must be an int64, raw or bytes value"
        ))),
    }
}

/// Converts one mutation, taking its strings and bytes (a row write's
/// cells are moved from the request, not copied).
pub fn mutation(m: v2::Mutation) -> Result<Mutation, Status> {
    use v2::mutation::Mutation as M;
    let Some(m) = m.mutation else {
        return Err(invalid("a mutation has no operation set"));
    };
    Ok(match m {
        M::SetCell(s) => Mutation::SetCell {
            family: s.family_name,
            qualifier: s.column_qualifier,
            timestamp_micros: s.timestamp_micros,
            value: s.value,
        },
        M::AddToCell(x) => Mutation::AddToCell {
            qualifier: value_bytes(&x.column_qualifier, "AddToCell column_qualifier")?,
            timestamp_micros: value_ts(&x.timestamp, "AddToCell timestamp")?,
            input: value_aggregate(&x.input, "AddToCell input")?,
            family: x.family_name,
        },
        M::MergeToCell(x) => Mutation::MergeToCell {
            qualifier: value_bytes(&x.column_qualifier, "MergeToCell column_qualifier")?,
            timestamp_micros: value_ts(&x.timestamp, "MergeToCell timestamp")?,
            input: value_aggregate(&x.input, "MergeToCell input")?,
            family: x.family_name,
        },
        M::DeleteFromColumn(d) => {
            let (s, e) = d.time_range.as_ref().map_or((0, 0), |r| {
                (r.start_timestamp_micros, r.end_timestamp_micros)
            });
            Mutation::DeleteFromColumn {
                family: d.family_name,
                qualifier: d.column_qualifier,
                start_micros: s,
                end_micros: e,
            }
        }
        M::DeleteFromFamily(d) => Mutation::DeleteFromFamily {
            family: d.family_name,
        },
        M::DeleteFromRow(_) => Mutation::DeleteFromRow,
    })
}

pub fn mutations(ms: Vec<v2::Mutation>) -> Result<Vec<Mutation>, Status> {
    // Sized once (collecting into a Result grows the Vec step by step).
    let mut out = Vec::with_capacity(ms.len());
    for m in ms {
        out.push(mutation(m)?);
    }
    Ok(out)
}

/// Converts a row set.
///
/// A range whose start key sorts after its end key is INVALID_ARGUMENT, as
/// Bigtable answers it (an empty range such as `[a, a)` is not an error).
pub fn row_set(rows: Option<&v2::RowSet>) -> Result<RowSet, Status> {
    use v2::row_range::{EndKey, StartKey};
    let Some(rs) = rows else {
        return Ok(RowSet::all());
    };
    for (i, r) in rs.row_ranges.iter().enumerate() {
        let start = match &r.start_key {
            Some(StartKey::StartKeyClosed(k) | StartKey::StartKeyOpen(k)) => k,
            None => continue,
        };
        let end = match &r.end_key {
            Some(EndKey::EndKeyClosed(k) | EndKey::EndKeyOpen(k)) => k,
            None => continue,
        };
        if !end.is_empty() && start > end {
            return Err(invalid(format!(
                "row_ranges[{i}]: the start key {:?} sorts after the end key {:?}",
                start.escape_ascii().to_string(),
                end.escape_ascii().to_string()
            )));
        }
    }
    Ok(RowSet {
        keys: rs.row_keys.clone(),
        ranges: rs
            .row_ranges
            .iter()
            .map(|r| RowRange {
                start: match &r.start_key {
                    None => RowBound::Unbounded,
                    Some(StartKey::StartKeyClosed(k)) if k.is_empty() => RowBound::Unbounded,
                    Some(StartKey::StartKeyOpen(k)) if k.is_empty() => RowBound::Unbounded,
                    Some(StartKey::StartKeyClosed(k)) => RowBound::Included(k.clone()),
                    Some(StartKey::StartKeyOpen(k)) => RowBound::Excluded(k.clone()),
                },
                end: match &r.end_key {
                    None => RowBound::Unbounded,
                    Some(EndKey::EndKeyClosed(k)) if k.is_empty() => RowBound::Unbounded,
                    Some(EndKey::EndKeyOpen(k)) if k.is_empty() => RowBound::Unbounded,
                    Some(EndKey::EndKeyClosed(k)) => RowBound::Included(k.clone()),
                    Some(EndKey::EndKeyOpen(k)) => RowBound::Excluded(k.clone()),
                },
            })
            .collect(),
    })
}

fn filter_err(e: FilterError) -> Status {
    invalid(e.to_string())
}

/// Converts a filter tree (validated later by `Filter::compile`).
pub fn filter_spec(f: &v2::RowFilter, depth: usize) -> Result<FilterSpec, Status> {
    use v2::row_filter::Filter as F;
    if depth > strata_table::filter::FILTER_DEPTH_MAX {
        return Err(invalid("invalid filter: nested too deeply"));
    }
    let sub = |f: &v2::RowFilter| filter_spec(f, depth + 1);
    let Some(kind) = f.filter.as_ref() else {
        return Err(invalid("invalid filter: a RowFilter has no filter set"));
    };
    let bound = |closed: Option<&Vec<u8>>, open: Option<&Vec<u8>>| match (closed, open) {
        (Some(c), _) => ByteBound::Included(c.clone()),
        (_, Some(o)) => ByteBound::Excluded(o.clone()),
        _ => ByteBound::Unbounded,
    };
    Ok(match kind {
        F::Chain(c) => FilterSpec::Chain(c.filters.iter().map(sub).collect::<Result<_, _>>()?),
        F::Interleave(i) => {
            FilterSpec::Interleave(i.filters.iter().map(sub).collect::<Result<_, _>>()?)
        }
        F::Condition(c) => {
            let Some(p) = c.predicate_filter.as_ref() else {
                return Err(invalid(
                    "invalid filter: condition needs a predicate_filter",
                ));
            };
            FilterSpec::Condition {
                predicate: Box::new(sub(p)?),
                true_filter: c
                    .true_filter
                    .as_ref()
                    .map(|f| sub(f))
                    .transpose()?
                    .map(Box::new),
                false_filter: c
                    .false_filter
                    .as_ref()
                    .map(|f| sub(f))
                    .transpose()?
                    .map(Box::new),
            }
        }
        F::Sink(true) => FilterSpec::Sink,
        F::Sink(false) => return Err(invalid("invalid filter: sink must be true")),
        F::PassAllFilter(true) => FilterSpec::PassAll,
        F::PassAllFilter(false) => {
            return Err(invalid("invalid filter: pass_all_filter must be true"))
        }
        F::BlockAllFilter(true) => FilterSpec::BlockAll,
        F::BlockAllFilter(false) => {
            return Err(invalid("invalid filter: block_all_filter must be true"))
        }
        F::RowKeyRegexFilter(r) => FilterSpec::RowKeyRegex(r.clone()),
        F::RowSampleFilter(p) => FilterSpec::RowSample(*p),
        // "For technical reasons, the regex must not contain the `:`
        // character, even if it is not being used as a literal" (the proto).
        F::FamilyNameRegexFilter(r) if r.contains(':') => {
            return Err(invalid(format!(
                "invalid filter: family_name_regex_filter {r:?} must not contain ':'"
            )))
        }
        F::FamilyNameRegexFilter(r) => FilterSpec::FamilyNameRegex(r.clone()),
        F::ColumnQualifierRegexFilter(r) => FilterSpec::ColumnQualifierRegex(r.clone()),
        F::ColumnRangeFilter(r) => {
            use v2::column_range::{EndQualifier as E, StartQualifier as S};
            FilterSpec::ColumnRange {
                family: r.family_name.clone(),
                start: match &r.start_qualifier {
                    Some(S::StartQualifierClosed(q)) => bound(Some(q), None),
                    Some(S::StartQualifierOpen(q)) => bound(None, Some(q)),
                    None => ByteBound::Unbounded,
                },
                end: match &r.end_qualifier {
                    Some(E::EndQualifierClosed(q)) => bound(Some(q), None),
                    // An empty open end means no upper bound.
                    Some(E::EndQualifierOpen(q)) if q.is_empty() => ByteBound::Unbounded,
                    Some(E::EndQualifierOpen(q)) => bound(None, Some(q)),
                    None => ByteBound::Unbounded,
                },
            }
        }
        F::TimestampRangeFilter(t) => FilterSpec::TimestampRange {
            start_micros: t.start_timestamp_micros,
            end_micros: t.end_timestamp_micros,
        },
        F::ValueRegexFilter(r) => FilterSpec::ValueRegex(r.clone()),
        F::ValueRangeFilter(r) => {
            use v2::value_range::{EndValue as E, StartValue as S};
            FilterSpec::ValueRange {
                start: match &r.start_value {
                    Some(S::StartValueClosed(v)) => bound(Some(v), None),
                    Some(S::StartValueOpen(v)) => bound(None, Some(v)),
                    None => ByteBound::Unbounded,
                },
                end: match &r.end_value {
                    Some(E::EndValueClosed(v)) => bound(Some(v), None),
                    Some(E::EndValueOpen(v)) if v.is_empty() => ByteBound::Unbounded,
                    Some(E::EndValueOpen(v)) => bound(None, Some(v)),
                    None => ByteBound::Unbounded,
                },
            }
        }
        F::CellsPerRowOffsetFilter(n) => FilterSpec::CellsPerRowOffset(*n),
        F::CellsPerRowLimitFilter(n) => FilterSpec::CellsPerRowLimit(*n),
        F::CellsPerColumnLimitFilter(n) => FilterSpec::CellsPerColumnLimit(*n),
        F::StripValueTransformer(true) => FilterSpec::StripValue,
        F::StripValueTransformer(false) => {
            return Err(invalid(
                "invalid filter: strip_value_transformer must be true",
            ))
        }
        F::ApplyLabelTransformer(l) => FilterSpec::ApplyLabel(l.clone()),
    })
}

/// A RowFilter's serialized size is at most this (the RowFilter proto's
/// comment; Bigtable answers "Row filter exceeds maximum size").
pub const FILTER_BYTES_MAX: usize = 20480;
/// A GC rule's serialized size is at most this (the ColumnFamily proto's
/// comment).
pub const GC_RULE_BYTES_MAX: usize = 500;

/// `what` serializes to at most `max` bytes, or INVALID_ARGUMENT.
fn check_size(m: &impl prost::Message, max: usize, what: &str) -> Result<(), Status> {
    let n = m.encoded_len();
    if n > max {
        return Err(invalid(format!(
            "{what} is {n} bytes serialized, above the limit of {max} bytes"
        )));
    }
    Ok(())
}

/// Converts and compiles an optional filter.
pub fn filter(f: Option<&v2::RowFilter>) -> Result<Option<strata_table::Filter>, Status> {
    f.map(|f| {
        check_size(f, FILTER_BYTES_MAX, "invalid filter: the row filter")?;
        strata_table::Filter::compile(&filter_spec(f, 0)?).map_err(filter_err)
    })
    .transpose()
}

/// Converts a GC rule.
pub fn gc_rule(r: Option<&a::GcRule>, depth: usize) -> Result<GcRule, Status> {
    use a::gc_rule::Rule;
    if depth >= strata_table::gc::GC_RULE_DEPTH_MAX {
        return Err(invalid("GC rules nest too deeply"));
    }
    if let (0, Some(r)) = (depth, r) {
        check_size(r, GC_RULE_BYTES_MAX, "gc_rule")?;
    }
    Ok(match r.and_then(|r| r.rule.as_ref()) {
        None => GcRule::KeepAll,
        Some(Rule::MaxNumVersions(n)) => {
            if *n < 1 {
                return Err(invalid(format!(
                    "max_num_versions must be at least 1, got {n}"
                )));
            }
            GcRule::MaxVersions(*n as u32)
        }
        Some(Rule::MaxAge(d)) => {
            if d.seconds < 0 || d.nanos < 0 {
                return Err(invalid("max_age must not be negative"));
            }
            let micros = d
                .seconds
                .checked_mul(1_000_000)
                .and_then(|s| s.checked_add(i64::from(d.nanos) / 1000))
                .ok_or_else(|| invalid("max_age is too large"))?;
            GcRule::MaxAgeMicros(micros)
        }
        Some(Rule::Intersection(i)) => GcRule::Intersection(
            i.rules
                .iter()
                .map(|r| gc_rule(Some(r), depth + 1))
                .collect::<Result<_, _>>()?,
        ),
        Some(Rule::Union(u)) => GcRule::Union(
            u.rules
                .iter()
                .map(|r| gc_rule(Some(r), depth + 1))
                .collect::<Result<_, _>>()?,
        ),
    })
}

pub fn gc_rule_pb(r: &GcRule) -> a::GcRule {
    use a::gc_rule::{Intersection, Rule, Union};
    a::GcRule {
        rule: match r {
            GcRule::KeepAll => None,
            GcRule::MaxVersions(n) => Some(Rule::MaxNumVersions(*n as i32)),
            GcRule::MaxAgeMicros(m) => Some(Rule::MaxAge(prost_types::Duration {
                seconds: m / 1_000_000,
                nanos: ((m % 1_000_000) * 1000) as i32,
            })),
            GcRule::Intersection(rs) => Some(Rule::Intersection(Intersection {
                rules: rs.iter().map(gc_rule_pb).collect(),
            })),
            GcRule::Union(rs) => Some(Rule::Union(Union {
                rules: rs.iter().map(gc_rule_pb).collect(),
            })),
        },
    }
}

/// The value type of a family: bytes, an int64 Sum/Min/Max aggregate, or
/// an HLL++ unique count of int64 or raw byte inputs.
pub fn value_type(t: Option<&a::Type>) -> Result<ValueType, Status> {
    use a::r#type::aggregate::Aggregator;
    use a::r#type::Kind;
    match t.and_then(|t| t.kind.as_ref()) {
        None | Some(Kind::BytesType(_)) => Ok(ValueType::Bytes),
        Some(Kind::AggregateType(agg)) => {
            let input = agg.input_type.as_ref().and_then(|t| t.kind.as_ref());
            match (input, agg.aggregator.as_ref()) {
                (Some(Kind::Int64Type(_)), Some(Aggregator::Sum(_))) => Ok(ValueType::Int64Sum),
                (Some(Kind::Int64Type(_)), Some(Aggregator::Min(_))) => Ok(ValueType::Int64Min),
                (Some(Kind::Int64Type(_)), Some(Aggregator::Max(_))) => Ok(ValueType::Int64Max),
                (Some(Kind::Int64Type(_)), Some(Aggregator::HllppUniqueCount(_))) => {
                    Ok(ValueType::HllInt64)
                }
                (None | Some(Kind::BytesType(_)), Some(Aggregator::HllppUniqueCount(_))) => {
                    Ok(ValueType::HllBytes)
                }
                (_, Some(Aggregator::HllppUniqueCount(_))) => Err(invalid(
                    "HyperLogLog++ families count int64 or raw bytes inputs: set input_type to int64, bytes, or leave it unset",
                )),
                _ => Err(invalid(
                    "Sum, Min and Max aggregate families need an int64 input type",
                )),
            }
        }
        Some(_) => Err(Status::unimplemented(
            "column family value types other than bytes and aggregates are not implemented by Strata",
        )),
    }
}

fn int64_type() -> a::Type {
    use a::r#type::int64::{encoding::BigEndianBytes, Encoding};
    use a::r#type::{Int64, Kind};
    a::Type {
        kind: Some(Kind::Int64Type(Int64 {
            encoding: Some(Encoding {
                encoding: Some(a::r#type::int64::encoding::Encoding::BigEndianBytes(
                    BigEndianBytes::default(),
                )),
            }),
        })),
    }
}

fn bytes_type() -> a::Type {
    use a::r#type::{Bytes, Kind};
    a::Type {
        kind: Some(Kind::BytesType(Bytes::default())),
    }
}

pub fn value_type_pb(t: ValueType) -> Option<a::Type> {
    use a::r#type::aggregate::{Aggregator, HyperLogLogPlusPlusUniqueCount, Max, Min, Sum};
    use a::r#type::{Aggregate, Kind};
    let (aggregator, input, state) = match t {
        ValueType::Bytes => return None,
        ValueType::Int64Sum => (Aggregator::Sum(Sum {}), int64_type(), int64_type()),
        ValueType::Int64Min => (Aggregator::Min(Min {}), int64_type(), int64_type()),
        ValueType::Int64Max => (Aggregator::Max(Max {}), int64_type(), int64_type()),
        ValueType::HllInt64 => (
            Aggregator::HllppUniqueCount(HyperLogLogPlusPlusUniqueCount {}),
            int64_type(),
            bytes_type(),
        ),
        ValueType::HllBytes => (
            Aggregator::HllppUniqueCount(HyperLogLogPlusPlusUniqueCount {}),
            bytes_type(),
            bytes_type(),
        ),
    };
    Some(a::Type {
        kind: Some(Kind::AggregateType(Box::new(Aggregate {
            input_type: Some(Box::new(input)),
            state_type: Some(Box::new(state)),
            aggregator: Some(aggregator),
        }))),
    })
}

pub fn family(cf: &a::ColumnFamily) -> Result<Family, Status> {
    Ok(Family {
        gc_rule: gc_rule(cf.gc_rule.as_ref(), 0)?,
        value_type: value_type(cf.value_type.as_ref())?,
    })
}
