//! `strata-bench ycsb`: YCSB-style workloads against any Bigtable API server over gRPC.
//!
//! The data model is that of YCSB's `googlebigtable` binding: table `usertable`,
//! family `cf` (max versions 1), row keys `"user" + fnvhash64(i)`, qualifiers
//! `field0..field{n-1}`, random values of `--field-length` bytes, every write at
//! server time (`timestamp_micros: -1`).
//!
//! Phases: `load` inserts every record (one MutateRow per record, or MutateRows
//! batches with `--batch-size`); `a` is 50% read / 50% update, `b` 95/5, `c` reads
//! only, `f` 50% read / 50% read-modify-write. A read is ReadRows of one key
//! (`rows_limit: 1`), stream consumed, the row checked; an update is a MutateRow
//! SetCell of one random field; F's read-modify-write is one ReadModifyWriteRow
//! appending `--rmw-append-bytes` to one random field (YCSB instead reads the row
//! and then writes a field with MutateRow; an atomic append is the Bigtable way,
//! one round trip that reads and writes on the server).
//!
//! Concurrency: `--threads` tokio tasks, each issuing its requests one after the
//! other, sharing `--channels` HTTP/2 connections; the phase ends when the shared
//! operation counter is exhausted.

pub(crate) mod client;
mod cpu;
mod report;
mod workload;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use client::{Ops, ReadFilter, ReadOutcome};
use report::{Phase, Stats};
use workload::{qualifier, random_value, row_key, Distribution, KeyChooser, Op, Workload};

/// Arguments of the `ycsb` subcommand. Defaults follow YCSB's core workloads.
#[derive(clap::Args, Debug, Clone)]
pub struct YcsbArgs {
    #[command(flatten)]
    pub target: client::Target,

    /// Records inserted by `load` (and the key space of the other workloads).
    #[arg(long, default_value_t = 100_000)]
    pub records: u64,

    /// Operations per run phase (a, b, c, f).
    #[arg(long, default_value_t = 100_000)]
    pub operations: u64,

    /// Concurrent in-flight requests: this many tasks, each issuing requests sequentially.
    #[arg(long, alias = "concurrency", default_value_t = 16)]
    pub threads: usize,

    /// HTTP/2 connections the tasks share (round robin).
    #[arg(long, default_value_t = 1)]
    pub channels: usize,

    /// Tokio worker threads of the client.
    #[arg(long, default_value_t = 1)]
    pub client_threads: usize,

    /// Key distributions of the run phases (each runs every run workload in turn).
    #[arg(
        long,
        alias = "distributions",
        value_delimiter = ',',
        default_value = "uniform"
    )]
    pub distribution: Vec<Distribution>,

    /// Phases: `load` (run first, once) then, per distribution, the others in order.
    #[arg(long, value_delimiter = ',', default_value = "load,a,b,c,f")]
    pub workloads: Vec<Workload>,

    #[arg(long, default_value_t = 10)]
    pub field_count: usize,

    #[arg(long, default_value_t = 100)]
    pub field_length: usize,

    /// Records per load request: 1 = MutateRow per record, more = MutateRows batches.
    #[arg(long, default_value_t = 1)]
    pub batch_size: u64,

    /// Bytes appended by F's read-modify-write (small, so hot cells grow slowly).
    #[arg(long, default_value_t = 8)]
    pub rmw_append_bytes: usize,

    /// Filter of reads.
    #[arg(long, value_enum, default_value_t = ReadFilter::Latest)]
    pub read_filter: ReadFilter,

    /// Write the results as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,

    /// Seed of the key and value generators (task t of a phase uses a seed derived from it).
    #[arg(long, default_value_t = 301)]
    pub seed: u64,

    /// The server's process id (several, comma-separated, for a cluster's
    /// servers on this machine): each phase then reports the server's CPU
    /// time per operation (user + system, from /proc/PID/stat), beside
    /// this client's own.
    #[arg(long, value_delimiter = ',')]
    pub server_pid: Vec<u32>,
}

pub fn run(args: YcsbArgs) -> Result<()> {
    if args.threads == 0 || args.channels == 0 || args.batch_size == 0 || args.field_count == 0 {
        bail!("--threads, --channels, --batch-size and --field-count must be positive");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.client_threads.max(1))
        .enable_all()
        .build()?;
    runtime.block_on(run_async(args))
}

async fn run_async(args: YcsbArgs) -> Result<()> {
    let instance = args.target.instance_name();
    let table_name = args.target.table_name();
    let mut clients = Vec::new();
    for _ in 0..args.channels {
        let channel = args.target.connect().await?;
        clients.push(Ops::new(channel, table_name.clone(), args.read_filter));
    }
    let admin_channel = args.target.connect().await?;
    client::create_table(admin_channel, &instance, &args.target.table).await?;
    let server_cpu = match args.server_pid.as_slice() {
        [] => None,
        pids => Some(cpu::CpuMeter::new(pids).context("--server-pid")?),
    };

    let mut plan: Vec<(Workload, Option<Distribution>)> = Vec::new();
    if args.workloads.contains(&Workload::Load) {
        plan.push((Workload::Load, None));
    }
    for &dist in &args.distribution {
        for &w in args.workloads.iter().filter(|w| **w != Workload::Load) {
            plan.push((w, Some(dist)));
        }
    }

    eprintln!(
        "ycsb: {} records, {} ops/phase, {} tasks on {} connection(s), {}x{} B fields, {}",
        args.records,
        args.operations,
        args.threads,
        args.channels,
        args.field_count,
        args.field_length,
        table_name
    );
    println!("{}", report::table_header());
    let args = Arc::new(args);
    let mut phases = Vec::new();
    for (i, &(w, dist)) in plan.iter().enumerate() {
        let phase = run_phase(&clients, &args, w, dist, i as u64, server_cpu.as_ref()).await?;
        for line in report::table_lines(&phase) {
            println!("{line}");
        }
        phases.push(phase);
    }

    if let Some(path) = &args.json {
        let config = [
            ("addr", report::quote(&args.target.addr)),
            ("table", report::quote(&table_name)),
            ("records", args.records.to_string()),
            ("operations", args.operations.to_string()),
            ("threads", args.threads.to_string()),
            ("channels", args.channels.to_string()),
            ("client_threads", args.client_threads.to_string()),
            ("field_count", args.field_count.to_string()),
            ("field_length", args.field_length.to_string()),
            ("batch_size", args.batch_size.to_string()),
            ("rmw_append_bytes", args.rmw_append_bytes.to_string()),
            (
                "read_filter",
                report::quote(&format!("{:?}", args.read_filter)),
            ),
            (
                "server_pid",
                format!(
                    "[{}]",
                    args.server_pid
                        .iter()
                        .map(u32::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ),
        ];
        std::fs::write(path, report::to_json(&config, &phases))
            .with_context(|| format!("writing {}", path.display()))?;
    }
    let errors: u64 = phases.iter().map(|p| p.errors() + p.missing()).sum();
    if errors > 0 {
        eprintln!("ycsb: {errors} errors or missing rows in total (see the table)");
    }
    Ok(())
}

/// Runs one phase with `args.threads` tasks and merges their statistics.
async fn run_phase(
    clients: &[Ops],
    args: &Arc<YcsbArgs>,
    workload: Workload,
    dist: Option<Distribution>,
    phase_index: u64,
    server_cpu: Option<&cpu::CpuMeter>,
) -> Result<Phase> {
    let total = match workload {
        Workload::Load => args.records.div_ceil(args.batch_size),
        _ => args.operations,
    };
    let dist_name = dist.map_or("-", Distribution::name);
    let chooser = KeyChooser::new(args.records, dist.unwrap_or(Distribution::Uniform));
    let next = Arc::new(AtomicU64::new(0));
    eprintln!("[{} {}] started", workload.name(), dist_name);
    let server_cpu_before = server_cpu.map(cpu::CpuMeter::read).transpose()?;
    let client_cpu_before = cpu::process_cpu("self")?;
    let start = Instant::now();
    let mut handles = Vec::with_capacity(args.threads);
    for t in 0..args.threads {
        let ops = clients[t % clients.len()].clone();
        let seed = args.seed ^ (phase_index << 32) ^ (t as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let task = Task {
            ops,
            args: Arc::clone(args),
            workload,
            chooser,
            next: Arc::clone(&next),
            total,
            rng: SmallRng::seed_from_u64(seed),
            stats: Stats::default(),
        };
        handles.push(tokio::spawn(task.run()));
    }
    let progress = {
        let next = Arc::clone(&next);
        let label = format!("{} {}", workload.name(), dist_name);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(10)).await;
                let done = next.load(Ordering::Relaxed).min(total);
                let secs = start.elapsed().as_secs_f64();
                eprintln!(
                    "[{label}] {done}/{total} requests, {:.0}/s",
                    done as f64 / secs
                );
            }
        })
    };
    let mut stats = Stats::default();
    for h in handles {
        stats.merge(&h.await.context("benchmark task panicked")?);
    }
    let elapsed = start.elapsed();
    progress.abort();
    let server_cpu = match (server_cpu, server_cpu_before) {
        (Some(m), Some(before)) => Some(m.read()?.saturating_sub(before)),
        _ => None,
    };
    Ok(Phase {
        workload: workload.name(),
        distribution: dist_name,
        elapsed,
        stats,
        server_cpu,
        client_cpu: cpu::process_cpu("self")?.saturating_sub(client_cpu_before),
    })
}

/// Errors printed to stderr (the first few only; all are counted).
static ERRORS_PRINTED: AtomicU64 = AtomicU64::new(0);

fn report_error(op: Op, e: &anyhow::Error) {
    if ERRORS_PRINTED.fetch_add(1, Ordering::Relaxed) < 10 {
        eprintln!("ycsb: {} failed: {e:#}", op.name());
    }
}

/// One concurrent client: takes operation numbers from the shared counter until done.
struct Task {
    ops: Ops,
    args: Arc<YcsbArgs>,
    workload: Workload,
    chooser: KeyChooser,
    next: Arc<AtomicU64>,
    total: u64,
    rng: SmallRng,
    stats: Stats,
}

impl Task {
    async fn run(mut self) -> Stats {
        loop {
            let n = self.next.fetch_add(1, Ordering::Relaxed);
            if n >= self.total {
                return self.stats;
            }
            match self.workload.choose(self.rng.gen()) {
                None => self.insert_batch(n).await,
                Some(op) => self.one_op(op).await,
            }
        }
    }

    fn record_cells(&mut self) -> client::Cells {
        (0..self.args.field_count)
            .map(|f| {
                (
                    qualifier(f),
                    random_value(&mut self.rng, self.args.field_length),
                )
            })
            .collect()
    }

    /// Inserts batch `b` of the load: records `b * batch_size ..` (all fields).
    async fn insert_batch(&mut self, b: u64) {
        let lo = b * self.args.batch_size;
        let hi = (lo + self.args.batch_size).min(self.args.records);
        let mut rows: Vec<_> = (lo..hi).map(|i| (row_key(i), Vec::new())).collect();
        for row in rows.iter_mut() {
            row.1 = self.record_cells();
        }
        let t = Instant::now();
        let result = if rows.len() == 1 {
            let (key, cells) = rows.pop().expect("one row");
            self.ops.mutate_row(key, cells).await
        } else {
            self.ops.mutate_rows(rows).await
        };
        let s = self.stats.record(Op::Insert, hi - lo, t.elapsed());
        if let Err(e) = result {
            s.errors += 1;
            report_error(Op::Insert, &e);
        }
    }

    async fn one_op(&mut self, op: Op) {
        let key = row_key(self.chooser.next(&mut self.rng));
        let field = qualifier(self.rng.gen_range(0..self.args.field_count));
        let payload = match op {
            Op::Update => random_value(&mut self.rng, self.args.field_length),
            Op::ReadModifyWrite => random_value(&mut self.rng, self.args.rmw_append_bytes),
            _ => Vec::new(),
        };
        let t = Instant::now();
        let result = match op {
            Op::Read => self.ops.read_row(key).await.map(Some),
            Op::Update => self
                .ops
                .mutate_row(key, vec![(field, payload)])
                .await
                .map(|()| None),
            Op::ReadModifyWrite => self.ops.append(key, field, payload).await.map(|()| None),
            Op::Insert => unreachable!("run phases do not insert"),
        };
        self.finish(op, t, result)
    }

    fn finish(&mut self, op: Op, started: Instant, result: Result<Option<ReadOutcome>>) {
        let fields = self.args.field_count;
        let filtered = self.args.read_filter == ReadFilter::Latest;
        let s = self.stats.record(op, 1, started.elapsed());
        match result {
            Err(e) => {
                s.errors += 1;
                report_error(op, &e);
            }
            Ok(Some(ReadOutcome::Missing)) => s.missing += 1,
            Ok(Some(ReadOutcome::Found { cells }))
                if cells < fields || (filtered && cells > fields) =>
            {
                s.partial += 1
            }
            Ok(_) => {}
        }
    }
}
