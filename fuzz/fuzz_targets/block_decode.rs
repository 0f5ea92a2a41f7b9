//! Arbitrary bytes as SSTable block contents (first byte: 0 = plain,
//! 1 = lz4 payload, 2 = zstd payload): iterate both ways and seek. Must
//! never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    strata_engine::sst::fuzz_block(data);
});
