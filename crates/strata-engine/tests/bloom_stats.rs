//! The engine counts its tables' bloom filter answers on point lookups: a
//! key inside a table's range but absent from it is (almost always) a
//! "useful" answer, a present key a "positive" one.

mod common;

use common::{tiny_engine_options, tiny_tree_options};
use strata_engine::storage::MemStorage;
use strata_engine::Engine;

#[test]
fn point_lookups_count_bloom_answers() {
    let engine = Engine::open(MemStorage::new(), tiny_engine_options()).expect("open");
    let tree = engine.open_tree("t", tiny_tree_options()).expect("tree");
    for i in (0..200u32).step_by(2) {
        tree.put(format!("k{i:04}").as_bytes(), b"v").expect("put");
    }
    engine.flush_all().expect("flush");
    engine.wait_for_compactions().expect("compactions");
    let before = engine.stats();
    for i in (0..200u32).step_by(2) {
        assert!(tree
            .get(format!("k{i:04}").as_bytes())
            .expect("get")
            .is_some());
    }
    let mid = engine.stats();
    assert!(mid.bloom_positive - before.bloom_positive >= 100, "{mid:?}");
    // Odd keys: inside the tables' ranges, in none of them. With 10 bits
    // a key the filters' false positives are about 1%.
    for i in (1..200u32).step_by(2) {
        assert!(tree
            .get(format!("k{i:04}").as_bytes())
            .expect("get")
            .is_none());
    }
    let after = engine.stats();
    let useful = after.bloom_useful - mid.bloom_useful;
    assert!(
        useful >= 90,
        "only {useful} of 100 absent keys skipped by the filters"
    );
}
