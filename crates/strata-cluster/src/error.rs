//! Errors of the etcd client and the coordination primitives.

use std::time::Duration;

/// Everything that can go wrong talking to etcd.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    /// An endpoint in the `--etcd` list is not a usable `http://host:port`.
    #[error("invalid etcd endpoint {endpoint:?}: {reason}")]
    InvalidEndpoint { endpoint: String, reason: String },
    /// No etcd endpoint answered, or etcd has no leader: retry later.
    #[error("etcd unavailable: {0}")]
    Unavailable(String),
    /// An RPC did not finish within its bound.
    #[error("etcd {what} timed out after {after:?}")]
    Timeout { what: &'static str, after: Duration },
    /// A read or watch asked for history etcd has compacted away.
    /// `compact_revision` is the oldest revision still available, when
    /// etcd says (watches do; reads do not).
    #[error(
        "etcd revision {revision} has been compacted (oldest available: {compact_revision:?})"
    )]
    Compacted {
        revision: i64,
        compact_revision: Option<i64>,
    },
    /// The lease does not exist (expired, revoked, or never granted).
    #[error("etcd lease {0:#x} not found (expired or revoked)")]
    LeaseNotFound(i64),
    /// A lease this process kept alive was lost (see [`crate::LeaseLoss`]).
    #[error("etcd lease {id:#x} lost: {reason}")]
    LeaseLost {
        id: i64,
        reason: crate::lease::LeaseLoss,
    },
    /// `register` found the server's key held by another live lease.
    #[error("server {id:?} is already registered (by lease {lease:#x})")]
    AlreadyRegistered { id: String, lease: i64 },
    /// A txn guarded by a master term failed because the master key is
    /// gone or belongs to a newer term: this process is not the master.
    #[error("not the master: term {term} is over (master key now has create_revision {current})")]
    NotLeader { term: i64, current: i64 },
    /// A watch was canceled by etcd for a reason other than compaction.
    #[error("etcd canceled the watch: {0}")]
    WatchCanceled(String),
    /// etcd refused the request as malformed (too many ops in a txn, a
    /// key modified twice in one txn, an empty key, ...).
    #[error("etcd rejected the request: {0}")]
    InvalidRequest(String),
    /// Any other gRPC failure.
    #[error("etcd error {code:?}: {message}")]
    Rpc { code: tonic::Code, message: String },
    /// A master's write found what it replaces changed since it read it
    /// (another plan, or a change it has not seen yet): read and decide
    /// again.
    #[error("conflict: {0}")]
    Conflict(String),
    /// What a create names exists already (a table).
    #[error("{0}")]
    AlreadyExists(String),
    /// A caller's argument is not valid (a bad table name, split rows out
    /// of order).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// The answer broke an invariant of the API (a missing field).
    #[error("malformed etcd response: {0}")]
    Protocol(String),
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Whether retrying the same request later can succeed (etcd
    /// unreachable, no leader, a timeout). A retried write may have been
    /// applied the first time: retry only idempotent ones, or txns whose
    /// compares make a second application fail.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Unavailable(_) | Error::Timeout { .. } => true,
            Error::Rpc { code, .. } => matches!(
                code,
                tonic::Code::Unavailable
                    | tonic::Code::DeadlineExceeded
                    | tonic::Code::Aborted
                    | tonic::Code::ResourceExhausted
            ),
            _ => false,
        }
    }

    /// Maps a gRPC status from etcd. etcd's error messages are stable
    /// strings (`etcdserver: ...`, `mvcc: ...`), matched for the cases the
    /// code alone does not tell apart.
    pub(crate) fn from_status(status: tonic::Status, lease: i64, revision: i64) -> Error {
        let message = status.message().to_string();
        match status.code() {
            _ if message.contains("required revision has been compacted") => Error::Compacted {
                revision,
                compact_revision: None,
            },
            _ if message.contains("requested lease not found") => Error::LeaseNotFound(lease),
            tonic::Code::Unavailable | tonic::Code::Cancelled => Error::Unavailable(message),
            tonic::Code::DeadlineExceeded => Error::Unavailable(format!("deadline: {message}")),
            tonic::Code::InvalidArgument => Error::InvalidRequest(message),
            code => Error::Rpc { code, message },
        }
    }
}
