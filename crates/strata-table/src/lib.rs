//! The Bigtable data model on Strata's engine.
//!
//! So far: the encoding of a cell's coordinates into one engine key
//! (`cell_key`, specified in docs/formats/cell-key.md). Mutations, GC rules,
//! filters and reads follow with the API server.

pub mod cell_key;

pub use cell_key::{CellKey, KeyError};
