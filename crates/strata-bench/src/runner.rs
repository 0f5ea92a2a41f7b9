//! Orchestration of the `engine` subcommand: for each workload, `rounds` rounds, and in
//! each round every engine once, in the given order (A B A B ...).
//!
//! Database lifecycle:
//! - fillseq/fillrandom: a fresh directory per (engine, workload, round), deleted after
//!   the run unless `--keep`.
//! - the other workloads: one database per engine, `<dir>/<engine>-readdb`, loaded once
//!   (unmeasured) with a random permutation of 0..num and settled (flush + compactions
//!   idle). Every run reopens it, so each starts with a cold engine cache but a warm OS
//!   page cache, and no engine has background work pending while another is measured.
//! - After every writing run the engine is settled before the counters are read and the
//!   database is closed; that time is reported as `settle_s` and is not in `ops_per_s`.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};

use crate::engines::{self, BenchEngine, EngineConfig, EngineKind, WriteCounters};
use crate::report::{self, RunResult};
use crate::workload::{self, Params, WorkloadKind};
use crate::EngineArgs;

pub fn run(args: &EngineArgs, dir: &Path) -> Result<()> {
    if args.num == 0 || args.rounds == 0 || args.value_size == 0 {
        bail!("--num, --rounds and --value-size must be positive");
    }
    if args.engines.is_empty() || args.workloads.is_empty() {
        bail!("--engines and --workloads must not be empty");
    }
    let mut seen = HashSet::new();
    if !args.engines.iter().all(|e| seen.insert(*e)) {
        bail!("--engines lists an engine twice");
    }
    let cfg = EngineConfig {
        cache_bytes: args.cache_bytes,
        block_size: args.block_size,
        compression: args.compression,
        bloom_bits: args.bloom_bits,
        memtable_bytes: args.memtable_bytes,
        sync: args.sync,
    };
    for &kind in &args.engines {
        engines::check_supported(kind, &cfg).with_context(|| kind.name())?;
    }

    report::print_header(args, &cfg, dir);
    let mut runner = Runner {
        args,
        cfg,
        dir: dir.to_path_buf(),
        loaded: HashSet::new(),
    };
    for &wl in &args.workloads {
        let mut results: Vec<Vec<RunResult>> = vec![Vec::new(); args.engines.len()];
        for round in 1..=args.rounds {
            for (i, &kind) in args.engines.iter().enumerate() {
                let r = runner
                    .run_one(kind, wl, round)
                    .with_context(|| format!("{} {} round {round}", kind.name(), wl.name()))?;
                report::print_line(kind.name(), wl.name(), &round.to_string(), &r);
                results[i].push(r);
            }
        }
        for (i, &kind) in args.engines.iter().enumerate() {
            if let Some(m) = RunResult::median(&results[i]) {
                report::print_line(kind.name(), wl.name(), "median", &m);
            }
        }
    }
    Ok(())
}

struct Runner<'a> {
    args: &'a EngineArgs,
    cfg: EngineConfig,
    dir: PathBuf,
    /// Engines whose read database has been loaded.
    loaded: HashSet<EngineKind>,
}

impl Runner<'_> {
    fn params(&self, seed: u64) -> Params {
        Params {
            num: self.args.num,
            value_size: self.args.value_size,
            compression_ratio: self.args.compression_ratio,
            seed,
        }
    }

    fn run_one(&mut self, kind: EngineKind, wl: WorkloadKind, round: usize) -> Result<RunResult> {
        // Same seed for every engine within a round, a different one per round.
        let params = self.params(self.args.seed.wrapping_add(round as u64));
        let label = format!("{} {} r{round}", kind.name(), wl.name());
        if wl.is_fill() {
            let db_dir = self
                .dir
                .join(format!("{}-{}-r{round}", kind.name(), wl.name()));
            remove_dir_if_exists(&db_dir)?;
            let engine = engines::open(kind, &db_dir, &self.cfg)?;
            let r = measure(engine.as_ref(), wl, &params, &label);
            engine.close()?;
            if !self.args.keep {
                remove_dir_if_exists(&db_dir)?;
            }
            r
        } else {
            let db_dir = self.read_db(kind)?;
            let engine = engines::open(kind, &db_dir, &self.cfg)?;
            let r = measure(engine.as_ref(), wl, &params, &label);
            engine.close()?;
            r
        }
    }

    /// The engine's loaded and settled read database, loading it on first use.
    fn read_db(&mut self, kind: EngineKind) -> Result<PathBuf> {
        let db_dir = self.dir.join(format!("{}-readdb", kind.name()));
        if self.loaded.contains(&kind) {
            return Ok(db_dir);
        }
        remove_dir_if_exists(&db_dir)?;
        let label = format!("{} load", kind.name());
        eprintln!("[{label}] loading {} keys (not measured)", self.args.num);
        let engine = engines::open(kind, &db_dir, &self.cfg)?;
        let start = Instant::now();
        workload::load(engine.as_ref(), &self.params(self.args.seed), &label)?;
        engine.settle()?;
        engine.close()?;
        eprintln!(
            "[{label}] loaded and settled in {:.1} s",
            start.elapsed().as_secs_f64()
        );
        self.loaded.insert(kind);
        Ok(db_dir)
    }
}

/// Runs `wl`, then (for writing workloads) settles the engine and computes write amp.
fn measure(
    engine: &dyn BenchEngine,
    wl: WorkloadKind,
    params: &Params,
    label: &str,
) -> Result<RunResult> {
    let before = engine.write_counters();
    let m = workload::run(wl, engine, params, label)?;
    let mut write_amp = None;
    let mut settle_s = None;
    if wl.writes() {
        eprintln!("[{label}] settling (flush + compactions, not measured)");
        let start = Instant::now();
        engine.settle()?;
        settle_s = Some(start.elapsed().as_secs_f64());
        if wl.reports_write_amp() {
            write_amp = match (before, engine.write_counters()) {
                (Some(b), Some(a)) => amplification(b, a),
                _ => None,
            };
        }
    }
    let mut r = RunResult::from_measurement(&m, write_amp);
    if let Some(s) = settle_s {
        r.extra.push(("settle_s", s));
    }
    Ok(r)
}

fn amplification(before: WriteCounters, after: WriteCounters) -> Option<f64> {
    let user = after.user_bytes.checked_sub(before.user_bytes)?;
    let storage = after.storage_bytes.checked_sub(before.storage_bytes)?;
    (user > 0).then(|| storage as f64 / user as f64)
}

fn remove_dir_if_exists(dir: &Path) -> Result<()> {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("removing {}", dir.display())),
    }
}
