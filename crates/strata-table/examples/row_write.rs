//! Times MutateRow's table-layer and engine work per row on one thread:
//! rows of 10 SetCells of 100 bytes (YCSB's shape) in random row order,
//! the log synced by a timer rather than per write, so that the time is
//! the CPU of building, logging and inserting the row's batch.
//! `cargo run --release -p strata-table --example row_write [ROWS]` prints
//! five rounds, each on a fresh database; compare medians of builds run
//! alternately.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use strata_engine::SyncMode;
use strata_table::{Database, DatabaseOptions, Family, GcRule, Mutation, ValueType};

const T: &str = "projects/p/instances/i/tables/usertable";
const ROUNDS: usize = 5;

fn main() {
    let rows: u64 = match std::env::args().nth(1) {
        Some(s) => s.parse().expect("ROWS: a number of rows"),
        None => 50_000,
    };
    let mutations: Vec<Mutation> = (0..10)
        .map(|f| Mutation::SetCell {
            family: "cf".into(),
            qualifier: format!("field{f}").into_bytes(),
            timestamp_micros: -1,
            value: vec![b'v'; 100],
        })
        .collect();
    for round in 0..ROUNDS {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut opts = DatabaseOptions::default();
        opts.engine.sync_mode = SyncMode::Periodic(Duration::from_secs(3600));
        let db = Database::open(dir.path(), opts).expect("open");
        let families = BTreeMap::from([(
            "cf".to_string(),
            Family {
                gc_rule: GcRule::MaxVersions(1),
                value_type: ValueType::Bytes,
            },
        )]);
        db.create_table(T, families, false).expect("create table");
        let t = Instant::now();
        for i in 0..rows {
            let row = format!("user{:020}", i.wrapping_mul(0x9e37_79b9_7f4a_7c15));
            db.mutate_row(T, row.as_bytes(), &mutations)
                .expect("mutate_row");
        }
        let ns = t.elapsed().as_nanos() as f64 / rows as f64;
        println!("round {round}: {ns:.0} ns per row of 10 cells");
        db.close().expect("close");
    }
}
