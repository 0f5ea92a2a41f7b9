//! HyperLogLog++ unique-count sketches for HLL aggregate families,
//! compatible with ZetaSketch and BigQuery's HLL_COUNT functions
//! (docs/formats/hll.md).
//!
//! - `fingerprint`: the 64-bit hash values are counted by;
//! - `sketch`: sparse and dense registers, add, merge, estimate;
//! - `wire`: the serialized form stored in cells and sent to clients.

pub mod fingerprint;
pub mod sketch;
pub mod wire;

pub use sketch::{Registers, Sketch};

/// Lowest and highest normal precision accepted (BigQuery's range).
pub const PRECISION_MIN: u32 = 10;
pub const PRECISION_MAX: u32 = 24;
/// Highest sparse precision.
pub const SPARSE_PRECISION_MAX: u32 = 25;
/// The precisions of sketches started by AddToCell: BigQuery's default
/// normal precision and ZetaSketch's default sparse delta of 5.
pub const PRECISION_DEFAULT: u32 = 15;
pub const SPARSE_PRECISION_DEFAULT: u32 = 20;

/// ZetaSketch's value type ids for what a sketch counts.
pub const VALUE_TYPE_INT64: i32 = 4;
pub const VALUE_TYPE_BYTES: i32 = 11;

/// A sketch that is not well formed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid HLL++ sketch: {0}")]
pub struct HllError(String);

impl HllError {
    pub fn new(msg: impl Into<String>) -> HllError {
        HllError(msg.into())
    }
}
