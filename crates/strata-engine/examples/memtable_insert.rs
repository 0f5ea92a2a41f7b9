//! Times memtable inserts and point lookups of random keys (db_bench's
//! shape: 16-byte keys, 100-byte values) in a memtable the size of a
//! default one, to compare skiplist layouts without the rest of the write
//! path. `cargo run --release -p strata-engine --example memtable_insert [N]
//! [CELLS]` prints five rounds; compare medians of builds run alternately.
//! With CELLS > 1 the keys come as rows of CELLS ascending keys (a
//! Bigtable row's cells, inserted one after another), rows in random order.

use std::time::Instant;

use strata_engine::key::lookup_key;
use strata_engine::memtable::{Lookup, Memtable};
use strata_engine::ValueKind;

const ROUNDS: usize = 5;

fn main() {
    let n: u64 = match std::env::args().nth(1) {
        Some(s) => s.parse().expect("N: a number of keys"),
        None => 440_000, // about a 64 MiB memtable of these entries
    };
    let cells: u64 = match std::env::args().nth(2) {
        Some(s) => s.parse().expect("CELLS: a number of keys per row"),
        None => 1,
    };
    // Distinct keys, rows in an order unrelated to their sort order, each
    // row's cells ascending.
    let keys: Vec<[u8; 16]> = (0..n)
        .map(|i| {
            let (row, cell) = (i / cells, i % cells);
            let mut k = [0u8; 16];
            k[..8].copy_from_slice(&row.wrapping_mul(0x9e37_79b9_7f4a_7c15).to_be_bytes());
            k[8..].copy_from_slice(&cell.to_be_bytes());
            k
        })
        .collect();
    let lookups: Vec<Vec<u8>> = keys
        .iter()
        .step_by(4)
        .map(|k| lookup_key(k, n + 1))
        .collect();
    let value = [7u8; 100];
    for round in 0..ROUNDS {
        let m = Memtable::new();
        let t = Instant::now();
        for (i, k) in keys.iter().enumerate() {
            m.insert(k, i as u64 + 1, ValueKind::Put, &value);
        }
        let insert_ns = t.elapsed().as_nanos() as f64 / n as f64;
        let t = Instant::now();
        let found = lookups
            .iter()
            .filter(|k| matches!(m.get(k, &mut Vec::new()), Lookup::Found(_)))
            .count();
        let get_ns = t.elapsed().as_nanos() as f64 / lookups.len() as f64;
        assert_eq!(found, lookups.len(), "every key is found");
        println!(
            "round {round}: insert {insert_ns:.0} ns/op, get {get_ns:.0} ns/op, {} bytes",
            m.size_bytes()
        );
    }
}
