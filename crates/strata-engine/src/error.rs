//! The engine's typed errors.

use std::io;

/// Result alias used throughout the engine.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong inside the engine.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An I/O operation failed; `context` names the operation and the file.
    #[error("i/o error during {context}: {source}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },
    /// Stored bytes failed a checksum or did not decode: never returned as data.
    #[error("corruption in {file}: {detail}")]
    Corruption { file: String, detail: String },
    /// The caller passed something the engine cannot accept.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// A named tree does not exist.
    #[error("tree not found: {0}")]
    TreeNotFound(String),
    /// A tree with this name exists already.
    #[error("tree already exists: {0}")]
    TreeExists(String),
    /// A newer owner took the storage over (a conditional write found its
    /// name taken): this engine must stop writing, and never acknowledges
    /// another write.
    #[error("storage taken over by another owner: {0}")]
    Fenced(String),
    /// The storage is full (a full disk, a quota): the engine refuses writes
    /// until a retry of what failed succeeds, which it attempts by itself.
    #[error("storage full: {0}")]
    NoSpace(String),
    /// The storage failed or could not be reached: the engine refuses
    /// writes until a retry of what failed succeeds, which it attempts by
    /// itself.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// The engine was closed, or a background failure made it read-only.
    #[error("engine is closed or failed: {0}")]
    Closed(String),
    /// A read made under `sst::memory_only` needed a block that is not in
    /// the block cache (or more blocks than it allows): the caller retries
    /// it where it may wait for storage. Never a failure of the data.
    #[error("the read needs storage I/O, which this memory-only read does not do")]
    WouldBlock,
}

impl Error {
    pub fn io(context: impl Into<String>, source: io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }

    pub fn corruption(file: impl Into<String>, detail: impl Into<String>) -> Self {
        Error::Corruption {
            file: file.into(),
            detail: detail.into(),
        }
    }

    /// True when a newer owner took the storage over.
    pub fn is_fenced(&self) -> bool {
        matches!(self, Error::Fenced(_))
    }

    /// What writers are told after this error stopped a group commit or a
    /// background job: the same class, so a fenced, full or unreachable
    /// storage keeps its meaning (and its gRPC code) across the engine.
    pub fn for_writers(&self) -> Error {
        match self {
            Error::NoSpace(m) => Error::NoSpace(m.clone()),
            Error::Unavailable(m) => Error::Unavailable(m.clone()),
            Error::Fenced(why) => Error::Fenced(why.clone()),
            Error::Closed(why) => Error::Closed(why.clone()),
            e => match e.retry_class() {
                Some(RetryClass::NoSpace) => Error::NoSpace(e.to_string()),
                Some(RetryClass::Unavailable) => Error::Unavailable(e.to_string()),
                None => Error::Closed(e.to_string()),
            },
        }
    }

    /// `for_writers`' classes (fenced, no space, unavailable, closed)
    /// with another message; any other error becomes `Closed`.
    pub fn with_message(&self, message: String) -> Error {
        match self {
            Error::NoSpace(_) => Error::NoSpace(message),
            Error::Unavailable(_) => Error::Unavailable(message),
            Error::Fenced(_) => Error::Fenced(message),
            _ => Error::Closed(message),
        }
    }

    /// Whether the engine may leave the state this error put it in by
    /// retrying: I/O errors (a full disk, an unreachable store) are; a
    /// missing file, corruption, a newer owner are not.
    pub fn retry_class(&self) -> Option<RetryClass> {
        match self {
            Error::Io { source, .. } => match source.kind() {
                io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded => {
                    Some(RetryClass::NoSpace)
                }
                io::ErrorKind::NotFound => None,
                _ => Some(RetryClass::Unavailable),
            },
            Error::NoSpace(_) => Some(RetryClass::NoSpace),
            Error::Unavailable(_) => Some(RetryClass::Unavailable),
            _ => None,
        }
    }

    /// True for a memory-only read that needed storage (`sst::memory_only`).
    pub fn is_would_block(&self) -> bool {
        matches!(self, Error::WouldBlock)
    }

    /// True for an I/O error saying the file does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::Io { source, .. } if source.kind() == io::ErrorKind::NotFound)
    }

    /// True for checksum and decoding failures.
    pub fn is_corruption(&self) -> bool {
        matches!(self, Error::Corruption { .. })
    }
}

/// The kinds of failure the engine retries by itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RetryClass {
    NoSpace,
    Unavailable,
}

/// Adds file context to an `io::Result`.
pub trait IoContext<T> {
    fn ctx(self, what: &str, name: &str) -> Result<T>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn ctx(self, what: &str, name: &str) -> Result<T> {
        self.map_err(|e| Error::io(format!("{what} {name}"), e))
    }
}
