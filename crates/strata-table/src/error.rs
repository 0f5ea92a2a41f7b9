//! Errors of the data model, one variant per gRPC status class.

/// What went wrong with a table operation.
#[derive(Debug, thiserror::Error)]
pub enum TableError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    AlreadyExists(String),
    #[error("{0}")]
    InvalidArgument(String),
    #[error("{0}")]
    FailedPrecondition(String),
    #[error("storage error: {0}")]
    Engine(#[from] strata_engine::Error),
    #[error("corrupt data: {0}")]
    Corrupt(String),
}

pub type Result<T, E = TableError> = std::result::Result<T, E>;

impl TableError {
    /// A memory-only read needed storage (`strata_engine::sst::memory_only`):
    /// retry it where it may wait.
    pub fn is_would_block(&self) -> bool {
        matches!(self, TableError::Engine(e) if e.is_would_block())
    }
}

/// A mutation or rule names a family the table lacks: NOT_FOUND, in the
/// words Bigtable uses, with the family named.
pub(crate) fn family_not_found(family: &str) -> TableError {
    TableError::NotFound(format!(
        "Requested column family not found: {family:?} is not a column family of the table"
    ))
}

pub(crate) fn invalid<T>(msg: impl Into<String>) -> Result<T> {
    Err(TableError::InvalidArgument(msg.into()))
}
