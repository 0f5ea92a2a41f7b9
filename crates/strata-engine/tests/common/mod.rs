//! Shared helpers of the engine's integration tests.
#![allow(dead_code)]

use std::sync::Arc;

use strata_engine::{EngineOptions, MergeOperator, TreeOptions};

/// Options that make every mechanism run on tiny data: small memtables,
/// blocks, files and levels.
pub fn tiny_tree_options() -> TreeOptions {
    TreeOptions {
        memtable_bytes_max: 8 << 10,
        block_size_bytes: 256,
        target_file_size_bytes: 8 << 10,
        level_base_bytes: 32 << 10,
        level_size_multiplier: 4,
        l0_compaction_trigger: 2,
        l0_slowdown_trigger: 8,
        l0_stop_trigger: 12,
        merge_operator: Some(Arc::new(Concat)),
        ..TreeOptions::default()
    }
}

pub fn tiny_engine_options() -> EngineOptions {
    EngineOptions {
        block_cache_bytes: 64 << 10,
        log_segment_bytes_max: 16 << 10,
        ..EngineOptions::default()
    }
}

/// Merge operator of the tests: joins operands onto the base with ','.
pub struct Concat;

impl MergeOperator for Concat {
    fn name(&self) -> &str {
        "concat"
    }

    fn full_merge(&self, _key: &[u8], base: Option<&[u8]>, operands: &[&[u8]]) -> Vec<u8> {
        let mut out: Option<Vec<u8>> = base.map(|b| b.to_vec());
        for op in operands {
            out = Some(concat(out.as_deref(), op));
        }
        out.unwrap_or_default()
    }
}

/// What a merge of `op` onto `base` gives, for the model.
pub fn concat(base: Option<&[u8]>, op: &[u8]) -> Vec<u8> {
    match base {
        Some(b) => {
            let mut v = b.to_vec();
            v.push(b',');
            v.extend_from_slice(op);
            v
        }
        None => op.to_vec(),
    }
}

/// A deterministic xorshift generator.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}
