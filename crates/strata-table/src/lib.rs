//! The Bigtable data model on Strata's engine.
//!
//! - `cell_key`: a cell's coordinates as one engine key
//!   (docs/formats/cell-key.md);
//! - `schema`: tables' column families, GC rules and value types, as the
//!   catalog stores them (docs/formats/catalog.md);
//! - `mutation`: row mutations and their validation;
//! - `filter`: the RowFilter tree; `byte_regex`: its RE2 patterns on bytes;
//! - `read`: streaming reads with read-time GC and filters;
//! - `database`: tables in one engine: the catalog, row-atomic writes,
//!   CheckAndMutateRow, ReadModifyWriteRow, DropRowRange.

pub mod aggregate;
pub mod byte_regex;
pub mod cell_key;
pub mod database;
pub mod error;
pub mod filter;
pub mod gc;
mod gc_compaction;
pub mod hll;
mod ingest;
mod locks;
mod meta;
pub mod mutation;
pub(crate) mod pending;
pub mod read;
mod retain;
pub mod row;
pub mod rows;
pub mod rows_async;
pub mod schema;

pub use aggregate::AggregateInput;
pub use cell_key::{CellKey, KeyError};
pub use database::{
    plan_family_changes, validate_families, Database, DatabaseOptions, FamilyChange, RmwRule,
    TableInfo, TabletInfo, TABLET_SPLIT_BYTES_DEFAULT,
};
pub use error::{Result, TableError};
pub use filter::{ByteBound, Filter, FilterSpec};
pub use gc::{GcRule, GcRuleError};
pub use meta::{MetaChange, MetaKind, META_NAME_BYTES_MAX, META_VALUE_BYTES_MAX};
pub use mutation::Mutation;
pub use read::{ReadRequest, ReadStats, RowReader};
pub use row::{Cell, Row, RowBound, RowRange, RowSet};
pub use schema::{Family, Schema, ValueType};
