//! The Bigtable data model on Strata's engine.
//!
//! So far: the encoding of a cell's coordinates into one engine key
//! (`cell_key`, specified in docs/formats/cell-key.md) and the semantics of
//! column-family GC rules (`gc`). Mutations, filters and reads follow with
//! the API server.

pub mod cell_key;
pub mod gc;

pub use cell_key::{CellKey, KeyError};
pub use gc::{GcRule, GcRuleError};
