//! The `strata` command.
//!
//! Until the Bigtable API server lands, `strata demo` exercises the
//! embedded engine on a local directory: it writes, reads back, reopens and
//! verifies, printing what it did.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use strata_engine::{Direction, Engine, EngineOptions, TreeOptions};

#[derive(Parser)]
#[command(
    name = "strata",
    version,
    about = "Strata: a wide-column database in the line of Bigtable"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Write, read back, reopen and verify rows with the embedded engine.
    Demo {
        /// Where the data lives.
        #[arg(long, default_value = "./strata-data")]
        data_dir: PathBuf,
        /// How many rows to write.
        #[arg(long, default_value_t = 100_000)]
        rows: u64,
    },
}

fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().command {
        Command::Demo { data_dir, rows } => demo(&data_dir, rows),
    }
}

fn row_key(i: u64) -> Vec<u8> {
    format!("row{i:010}").into_bytes()
}

fn demo(dir: &std::path::Path, rows: u64) -> Result<()> {
    let opts = EngineOptions::default();
    let engine =
        Engine::open_dir(dir, opts.clone()).with_context(|| format!("open {}", dir.display()))?;
    let tree = engine.open_tree("demo", TreeOptions::default())?;
    let start = Instant::now();
    let mut batch = strata_engine::WriteBatch::new();
    for i in 0..rows {
        batch.put(
            tree.id(),
            &row_key(i),
            format!("value of row {i}").as_bytes(),
        );
        if batch.len() == 1000 {
            engine.write(std::mem::take(&mut batch))?;
        }
    }
    engine.write(batch)?;
    println!("wrote {rows} rows durably in {:.2?}", start.elapsed());
    engine.close()?;

    let engine = Engine::open_dir(dir, opts)?;
    let tree = engine.open_tree("demo", TreeOptions::default())?;
    let start = Instant::now();
    let mut n = 0u64;
    for item in tree.iter(Direction::Forward)? {
        let (k, _) = item?;
        if k.starts_with(b"row") {
            n += 1;
        }
    }
    if n < rows {
        bail!("reopened engine holds {n} rows, expected at least {rows}");
    }
    let last = row_key(rows.saturating_sub(1));
    let got = tree.get(&last)?.context("last row missing after reopen")?;
    println!(
        "reopened: scanned {n} rows in {:.2?}; {} = {}",
        start.elapsed(),
        String::from_utf8_lossy(&last),
        String::from_utf8_lossy(&got)
    );
    let st = engine.stats();
    println!(
        "log segments {}, flushes {}, compactions {}, last seq {}",
        st.log_segments, st.flushes, st.compactions, st.last_seq
    );
    Ok(())
}
