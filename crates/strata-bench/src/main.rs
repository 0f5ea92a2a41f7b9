//! `strata-bench`: benchmarks for Strata.
//!
//! Subcommands:
//! - `engine`: db_bench-style embedded-engine comparison (Strata vs fjall [vs RocksDB]).
//! - `ycsb`: YCSB-style workloads against a Bigtable API server over gRPC (see `ycsb/mod.rs`).
//! - `scan`: full-table ReadRows scans over gRPC, rows/s and MB/s (see `scan.rs`).
//!
//! For `engine`, stdout is machine-readable (`# ...` header lines, then one `key=value` line per
//! engine, workload and round, plus a `round=median` line per engine and workload);
//! progress goes to stderr.

mod engines;
mod report;
mod runner;
mod scan;
mod workload;
mod ycsb;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::engines::{CompressionKind, EngineKind};
use crate::workload::WorkloadKind;

#[derive(Parser, Debug)]
#[command(
    name = "strata-bench",
    about = "Benchmarks for Strata: the storage engine and the Bigtable API server"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// db_bench-style workloads against embedded engines, alternated in one run.
    Engine(EngineArgs),
    /// YCSB-style workloads (load, A, B, C, F) against a Bigtable API server over gRPC.
    Ycsb(ycsb::YcsbArgs),
    /// Full-table ReadRows scans against a Bigtable API server over gRPC.
    Scan(scan::ScanArgs),
}

/// Arguments of the `engine` subcommand. Defaults follow db_bench where it has one.
#[derive(clap::Args, Debug, Clone)]
pub struct EngineArgs {
    /// Engines to compare, run alternately in this order for every workload and round.
    #[arg(long, value_delimiter = ',', default_value = "strata,fjall")]
    pub engines: Vec<EngineKind>,

    /// Workloads to run, in this order.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "fillseq,fillrandom,overwrite,readrandom,readseq,seekrandom,readwhilewriting"
    )]
    pub workloads: Vec<WorkloadKind>,

    /// Number of keys (the key space is 0..num) and of operations per workload.
    #[arg(long, default_value_t = 1_000_000)]
    pub num: u64,

    /// Value size in bytes (keys are always 16 bytes, as in db_bench).
    #[arg(long, default_value_t = 100)]
    pub value_size: usize,

    /// Fraction of each value that is random (db_bench --compression_ratio).
    #[arg(long, default_value_t = 0.5)]
    pub compression_ratio: f64,

    /// Block cache capacity in bytes, the same for every engine (db_bench default 8 MiB).
    #[arg(long, default_value_t = 8 << 20)]
    pub cache_bytes: u64,

    /// Data block size in bytes, the same for every engine (db_bench default 4096).
    #[arg(long, default_value_t = 4096)]
    pub block_size: u32,

    /// Data block compression, the same for every engine.
    #[arg(long, value_enum, default_value_t = CompressionKind::Lz4)]
    pub compression: CompressionKind,

    /// Bloom filter bits per key, the same for every engine.
    #[arg(long, default_value_t = 10)]
    pub bloom_bits: u32,

    /// Memtable (write buffer) size in bytes, the same for every engine (db_bench default 64 MiB).
    #[arg(long, default_value_t = 64 << 20)]
    pub memtable_bytes: u64,

    /// Make every write durable before it is acknowledged (fsync/fdatasync per write).
    #[arg(long)]
    pub sync: bool,

    /// Rounds per workload; engines alternate within each round; medians are reported.
    #[arg(long, default_value_t = 1)]
    pub rounds: usize,

    /// Base directory for the databases (default: a fresh directory under the temp dir).
    #[arg(long)]
    pub dir: Option<PathBuf>,

    /// Keep the databases after the run instead of deleting them.
    #[arg(long)]
    pub keep: bool,

    /// Seed for key order and values; round r uses seed + r, the same for every engine.
    #[arg(long, default_value_t = 301)]
    pub seed: u64,
}

/// How a `--dir` argument (or its absence) maps to a directory and who cleans it up.
fn base_dir(args: &EngineArgs) -> (PathBuf, bool) {
    match &args.dir {
        Some(d) => (d.clone(), false),
        None => (
            std::env::temp_dir().join(format!("strata-bench-{}", std::process::id())),
            true,
        ),
    }
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Engine(args) => {
            let (dir, owned) = base_dir(&args);
            std::fs::create_dir_all(&dir)?;
            let result = runner::run(&args, &dir);
            if owned && !args.keep {
                let _ = std::fs::remove_dir_all(&dir);
            }
            result
        }
        Command::Ycsb(args) => ycsb::run(args),
        Command::Scan(args) => scan::run(args),
    }
}
