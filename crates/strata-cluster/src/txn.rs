//! Transactions: compares on keys' revisions, versions or values, then one
//! list of operations if every compare holds and another if not, applied
//! atomically at one revision (etcd's `Txn`).
//!
//! ```no_run
//! # async fn f(etcd: strata_cluster::Etcd) -> strata_cluster::Result<()> {
//! use strata_cluster::{Cmp, Compare, Op, Txn};
//! // Create /k only if it does not exist; otherwise read it.
//! let resp = etcd
//!     .txn(
//!         Txn::new()
//!             .when([Compare::create_revision(b"/k", Cmp::Equal, 0)])
//!             .and_then([Op::put(b"/k", b"v")])
//!             .or_else([Op::get(b"/k")]),
//!     )
//!     .await?;
//! if !resp.succeeded {
//!     let current = resp.responses[0].kvs();
//! }
//! # Ok(()) }
//! ```

use crate::client::{header_revision, kv, Ctx, Etcd, KeyValue, LeaseId};
use crate::error::{Error, Result};
use crate::pb::{self, compare::TargetUnion, request_op::Request, response_op::Response};

/// A comparison operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cmp {
    Equal,
    NotEqual,
    Greater,
    Less,
}

impl Cmp {
    fn pb(self) -> pb::CompareResult {
        match self {
            Cmp::Equal => pb::CompareResult::Equal,
            Cmp::NotEqual => pb::CompareResult::NotEqual,
            Cmp::Greater => pb::CompareResult::Greater,
            Cmp::Less => pb::CompareResult::Less,
        }
    }
}

/// One compare of a txn. An absent key has create_revision, mod_revision
/// and version 0 (so `create_revision == 0` means "does not exist").
#[derive(Clone, Debug, PartialEq)]
pub struct Compare(pub(crate) pb::Compare);

impl Compare {
    fn new(key: &[u8], cmp: Cmp, target: pb::CompareTarget, value: TargetUnion) -> Compare {
        Compare(pb::Compare {
            result: cmp.pb() as i32,
            target: target as i32,
            key: key.to_vec(),
            target_union: Some(value),
            range_end: Vec::new(),
        })
    }

    /// The revision at which `key` was last created.
    pub fn create_revision(key: &[u8], cmp: Cmp, revision: i64) -> Compare {
        let t = TargetUnion::CreateRevision(revision);
        Compare::new(key, cmp, pb::CompareTarget::Create, t)
    }

    /// The revision at which `key` was last modified.
    pub fn mod_revision(key: &[u8], cmp: Cmp, revision: i64) -> Compare {
        let t = TargetUnion::ModRevision(revision);
        Compare::new(key, cmp, pb::CompareTarget::Mod, t)
    }

    /// The mod revision of every key starting with `prefix` (holds when
    /// there is none).
    pub fn prefix_mod_revision(prefix: &[u8], cmp: Cmp, revision: i64) -> Compare {
        let mut c = Compare::mod_revision(prefix, cmp, revision);
        c.0.range_end = pb::prefix_end(prefix);
        c
    }

    /// The number of writes to `key` since its creation.
    pub fn version(key: &[u8], cmp: Cmp, version: i64) -> Compare {
        let t = TargetUnion::Version(version);
        Compare::new(key, cmp, pb::CompareTarget::Version, t)
    }

    /// The value of `key` (bytewise). An absent key compares unequal to
    /// everything: etcd fails an `Equal` on it, but also a `NotEqual`.
    pub fn value(key: &[u8], cmp: Cmp, value: &[u8]) -> Compare {
        let t = TargetUnion::Value(value.to_vec());
        Compare::new(key, cmp, pb::CompareTarget::Value, t)
    }

    /// The lease `key` is attached to (0: none).
    pub fn lease(key: &[u8], cmp: Cmp, lease: i64) -> Compare {
        let t = TargetUnion::Lease(lease);
        Compare::new(key, cmp, pb::CompareTarget::Lease, t)
    }
}

/// One operation of a txn.
#[derive(Clone, Debug, PartialEq)]
pub struct Op(pub(crate) pb::RequestOp);

impl Op {
    fn of(request: Request) -> Op {
        Op(pb::RequestOp {
            request: Some(request),
        })
    }

    /// Reads `key`.
    pub fn get(key: &[u8]) -> Op {
        Op::of(Request::RequestRange(pb::RangeRequest {
            key: key.to_vec(),
            ..Default::default()
        }))
    }

    /// Reads every key starting with `prefix` (unpaged: keep it small).
    pub fn get_prefix(prefix: &[u8]) -> Op {
        Op::of(Request::RequestRange(pb::RangeRequest {
            key: prefix.to_vec(),
            range_end: pb::prefix_end(prefix),
            ..Default::default()
        }))
    }

    /// Writes `value` at `key`.
    pub fn put(key: &[u8], value: &[u8]) -> Op {
        Op::put_with_lease(key, value, None)
    }

    /// Writes `value` at `key`, attached to `lease` if given.
    pub fn put_with_lease(key: &[u8], value: &[u8], lease: Option<LeaseId>) -> Op {
        Op::of(Request::RequestPut(pb::PutRequest {
            key: key.to_vec(),
            value: value.to_vec(),
            lease: lease.map_or(0, |l| l.0),
            prev_kv: false,
        }))
    }

    /// Deletes `key`.
    pub fn delete(key: &[u8]) -> Op {
        Op::of(Request::RequestDeleteRange(pb::DeleteRangeRequest {
            key: key.to_vec(),
            ..Default::default()
        }))
    }

    /// Deletes every key starting with `prefix`.
    pub fn delete_prefix(prefix: &[u8]) -> Op {
        Op::of(Request::RequestDeleteRange(pb::DeleteRangeRequest {
            key: prefix.to_vec(),
            range_end: pb::prefix_end(prefix),
            prev_kv: false,
        }))
    }
}

/// A transaction: `if every compare holds { then ops } else { else ops }`.
/// etcd refuses a txn that writes one key twice, and more than 128 ops
/// (its default `--max-txn-ops`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Txn {
    pub(crate) compares: Vec<Compare>,
    pub(crate) then: Vec<Op>,
    pub(crate) otherwise: Vec<Op>,
}

impl Txn {
    /// An empty txn (no compares: the `then` branch runs).
    pub fn new() -> Txn {
        Txn::default()
    }

    /// Adds compares; all must hold.
    pub fn when(mut self, compares: impl IntoIterator<Item = Compare>) -> Txn {
        self.compares.extend(compares);
        self
    }

    /// Adds operations run when every compare holds.
    pub fn and_then(mut self, ops: impl IntoIterator<Item = Op>) -> Txn {
        self.then.extend(ops);
        self
    }

    /// Adds operations run when a compare fails.
    pub fn or_else(mut self, ops: impl IntoIterator<Item = Op>) -> Txn {
        self.otherwise.extend(ops);
        self
    }

    fn into_pb(self) -> pb::TxnRequest {
        pb::TxnRequest {
            compare: self.compares.into_iter().map(|c| c.0).collect(),
            success: self.then.into_iter().map(|o| o.0).collect(),
            failure: self.otherwise.into_iter().map(|o| o.0).collect(),
        }
    }
}

/// The outcome of a txn.
#[derive(Clone, Debug, PartialEq)]
pub struct TxnResponse {
    /// Whether every compare held (the `then` branch ran).
    pub succeeded: bool,
    /// The store's revision after the txn (its writes' revision, if any).
    pub revision: i64,
    /// One per operation of the branch that ran, in order.
    pub responses: Vec<OpResponse>,
}

/// The result of one operation of a txn.
#[derive(Clone, Debug, PartialEq)]
pub enum OpResponse {
    /// A get's keys.
    Get(Vec<KeyValue>),
    /// A put's revision.
    Put { revision: i64 },
    /// How many keys a delete removed.
    Delete { deleted: i64 },
}

impl OpResponse {
    /// The keys of a get; empty for other operations.
    pub fn kvs(&self) -> &[KeyValue] {
        match self {
            OpResponse::Get(kvs) => kvs,
            _ => &[],
        }
    }
}

impl Etcd {
    /// Runs `txn` atomically. Not retried on failure: a txn whose answer
    /// was lost may have been applied.
    pub async fn txn(&self, txn: Txn) -> Result<TxnResponse> {
        let req = txn.into_pb();
        let resp = self
            .unary("txn", false, Ctx::default(), req, |ch, r| async move {
                kv(ch).txn(r).await
            })
            .await?;
        let revision = header_revision(resp.header.as_ref())?;
        let responses = resp
            .responses
            .into_iter()
            .map(|r| match r.response {
                Some(Response::ResponseRange(r)) => Ok(OpResponse::Get(r.kvs)),
                Some(Response::ResponsePut(p)) => Ok(OpResponse::Put {
                    revision: p.header.map_or(revision, |h| h.revision),
                }),
                Some(Response::ResponseDeleteRange(d)) => {
                    Ok(OpResponse::Delete { deleted: d.deleted })
                }
                None => Err(Error::Protocol("txn response op without a result".into())),
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(TxnResponse {
            succeeded: resp.succeeded,
            revision,
            responses,
        })
    }
}
