//! Long-running operations: what CreateInstance, UpdateTable and the other
//! LRO-returning admin RPCs return, and google.longrunning.Operations over
//! them, so that clients' `operation.result()` works.
//!
//! Every Strata admin change completes before its RPC returns, so every
//! operation is born done, with its response (or error) and metadata
//! holding the request and its start and end times. The server keeps the
//! newest `OPERATIONS_RETAINED_MAX` in memory for GetOperation,
//! ListOperations and WaitOperation; a restart forgets them (their effect
//! is in the catalog).
//!
//! Names: `operations/<resource>/operations/<id>`, where `<resource>` is
//! the instance, cluster, app profile or table acted on and `<id>` is
//! unique in the server's life (its start time in milliseconds, then a
//! counter).

use crate::longrunning_pb as lr;
use crate::pb::operations_server::Operations;
use lr::operation::Result as OpResult;
use parking_lot::Mutex;
use prost::Message;
use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::SystemTime;
use tonic::{Request, Response, Status};

/// Operations kept for GetOperation and ListOperations.
pub const OPERATIONS_RETAINED_MAX: usize = 1000;
/// Operations one ListOperations page holds by default and at most.
const LIST_PAGE_SIZE_MAX: usize = 1000;

/// A protobuf timestamp of a moment.
pub fn timestamp(t: SystemTime) -> prost_types::Timestamp {
    let d = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    prost_types::Timestamp {
        seconds: d.as_secs() as i64,
        nanos: d.subsec_nanos() as i32,
    }
}

/// A message packed in `google.protobuf.Any` under its full type name.
pub fn any(type_name: &str, message: &impl Message) -> prost_types::Any {
    prost_types::Any {
        type_url: format!("type.googleapis.com/{type_name}"),
        value: message.encode_to_vec(),
    }
}

/// The server's operations, newest last.
pub struct OperationStore {
    ops: Mutex<Retained>,
    epoch_ms: u128,
    next: AtomicU64,
}

#[derive(Default)]
struct Retained {
    by_name: BTreeMap<String, lr::Operation>,
    order: VecDeque<String>,
}

impl Default for OperationStore {
    fn default() -> Self {
        OperationStore {
            ops: Mutex::new(Retained::default()),
            epoch_ms: SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap_or_default()
                .as_millis(),
            next: AtomicU64::new(1),
        }
    }
}

impl OperationStore {
    /// Records a finished operation on `resource` and returns it.
    pub fn finish(
        &self,
        resource: &str,
        metadata: prost_types::Any,
        result: Result<prost_types::Any, Status>,
    ) -> lr::Operation {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let op = lr::Operation {
            name: format!("operations/{resource}/operations/{}{id:06}", self.epoch_ms),
            metadata: Some(metadata),
            done: true,
            result: Some(match result {
                Ok(response) => OpResult::Response(response),
                Err(s) => OpResult::Error(crate::RpcStatus {
                    code: s.code() as i32,
                    message: s.message().to_string(),
                    details: vec![],
                }),
            }),
        };
        let mut r = self.ops.lock();
        r.by_name.insert(op.name.clone(), op.clone());
        r.order.push_back(op.name.clone());
        while r.order.len() > OPERATIONS_RETAINED_MAX {
            if let Some(old) = r.order.pop_front() {
                r.by_name.remove(&old);
            }
        }
        debug_assert!(r.by_name.len() <= OPERATIONS_RETAINED_MAX);
        op
    }

    fn get(&self, name: &str) -> Result<lr::Operation, Status> {
        if name.is_empty() {
            return Err(Status::invalid_argument("name is required"));
        }
        self.ops.lock().by_name.get(name).cloned().ok_or_else(|| {
            Status::not_found(format!(
                "operation {name:?} not found (the server keeps its newest \
                 {OPERATIONS_RETAINED_MAX} operations, and none across restarts)"
            ))
        })
    }
}

/// google.longrunning.Operations over the server's `OperationStore`.
pub struct OperationsService {
    pub(crate) store: Arc<OperationStore>,
}

#[tonic::async_trait]
impl Operations for OperationsService {
    async fn list_operations(
        &self,
        request: Request<lr::ListOperationsRequest>,
    ) -> Result<Response<lr::ListOperationsResponse>, Status> {
        let r = request.into_inner();
        if !r.filter.is_empty() {
            return Err(Status::invalid_argument(format!(
                "filter {:?}: ListOperations filters are not supported by Strata; list without one",
                r.filter
            )));
        }
        if r.page_size < 0 {
            return Err(Status::invalid_argument("page_size must not be negative"));
        }
        let page = match r.page_size {
            0 => LIST_PAGE_SIZE_MAX,
            n => (n as usize).min(LIST_PAGE_SIZE_MAX),
        };
        // `name` is the collection, e.g. `operations/projects/p/instances/i`;
        // empty lists every operation.
        let prefix = if r.name.is_empty() {
            String::new()
        } else {
            format!("{}/", r.name.trim_end_matches('/'))
        };
        let all = self.store.ops.lock();
        let mut operations: Vec<lr::Operation> = all
            .by_name
            .range(prefix.clone()..)
            .take_while(|(n, _)| n.starts_with(&prefix))
            .filter(|(n, _)| r.page_token.is_empty() || n.as_str() > r.page_token.as_str())
            .take(page + 1)
            .map(|(_, op)| op.clone())
            .collect();
        let next_page_token = if operations.len() > page {
            operations.truncate(page);
            operations
                .last()
                .map(|o| o.name.clone())
                .unwrap_or_default()
        } else {
            String::new()
        };
        Ok(Response::new(lr::ListOperationsResponse {
            operations,
            next_page_token,
            unreachable: vec![],
        }))
    }

    async fn get_operation(
        &self,
        request: Request<lr::GetOperationRequest>,
    ) -> Result<Response<lr::Operation>, Status> {
        Ok(Response::new(self.store.get(&request.into_inner().name)?))
    }

    async fn delete_operation(
        &self,
        request: Request<lr::DeleteOperationRequest>,
    ) -> Result<Response<()>, Status> {
        let name = request.into_inner().name;
        self.store.get(&name)?;
        let mut r = self.store.ops.lock();
        r.by_name.remove(&name);
        r.order.retain(|n| *n != name);
        Ok(Response::new(()))
    }

    async fn cancel_operation(
        &self,
        request: Request<lr::CancelOperationRequest>,
    ) -> Result<Response<()>, Status> {
        let name = request.into_inner().name;
        self.store.get(&name)?;
        Err(Status::failed_precondition(format!(
            "operation {name:?} has already completed and cannot be cancelled"
        )))
    }

    async fn wait_operation(
        &self,
        request: Request<lr::WaitOperationRequest>,
    ) -> Result<Response<lr::Operation>, Status> {
        // Every operation is done when it is created.
        Ok(Response::new(self.store.get(&request.into_inner().name)?))
    }
}
