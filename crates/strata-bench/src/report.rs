//! Latency recording, progress on stderr, medians, and the machine-readable stdout.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use crate::engines::{self, EngineConfig};
use crate::EngineArgs;

/// Latencies are recorded in ns, from 1 ns up to one hour, 3 significant digits.
fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000_000, 3).expect("valid histogram bounds")
}

/// What one measured workload run produced.
pub struct Measurement {
    pub ops: u64,
    pub elapsed: Duration,
    pub hist: Histogram<u64>,
    /// Workload-specific numbers printed after the standard fields (e.g. `found`).
    pub extra: Vec<(&'static str, f64)>,
}

/// Times consecutive operations (one clock read per op) and reports progress every 10%.
pub struct Recorder {
    label: String,
    total: u64,
    next_report: u64,
    hist: Histogram<u64>,
    start: Instant,
    last: Instant,
    ops: u64,
}

impl Recorder {
    pub fn new(label: &str, total: u64) -> Self {
        let now = Instant::now();
        Self {
            label: label.to_string(),
            total,
            next_report: (total / 10).max(1),
            hist: new_histogram(),
            start: now,
            last: now,
            ops: 0,
        }
    }

    /// Marks the end of one operation (which started when the previous one ended).
    #[inline]
    pub fn record(&mut self) {
        let now = Instant::now();
        let ns = u64::try_from((now - self.last).as_nanos()).unwrap_or(u64::MAX);
        self.hist.saturating_record(ns.max(1));
        self.last = now;
        self.ops += 1;
        if self.ops >= self.next_report {
            self.progress(now);
        }
    }

    fn progress(&mut self, now: Instant) {
        let secs = (now - self.start).as_secs_f64().max(1e-9);
        eprintln!(
            "[{}] {}% ({}/{}) {:.0} ops/s",
            self.label,
            self.ops * 100 / self.total.max(1),
            self.ops,
            self.total,
            self.ops as f64 / secs
        );
        self.next_report += (self.total / 10).max(1);
    }

    pub fn finish(self) -> Measurement {
        Measurement {
            ops: self.ops,
            elapsed: self.last - self.start,
            hist: self.hist,
            extra: Vec::new(),
        }
    }
}

/// One result line: a round's numbers, or the medians over rounds.
#[derive(Clone, Debug)]
pub struct RunResult {
    pub ops_per_s: f64,
    pub p50_us: f64,
    pub p99_us: f64,
    pub write_amp: Option<f64>,
    pub extra: Vec<(&'static str, f64)>,
}

impl RunResult {
    pub fn from_measurement(m: &Measurement, write_amp: Option<f64>) -> Self {
        let secs = m.elapsed.as_secs_f64().max(1e-9);
        let us = |q: f64| {
            if m.hist.is_empty() {
                0.0
            } else {
                m.hist.value_at_quantile(q) as f64 / 1000.0
            }
        };
        Self {
            ops_per_s: m.ops as f64 / secs,
            p50_us: us(0.50),
            p99_us: us(0.99),
            write_amp,
            extra: m.extra.clone(),
        }
    }

    /// Field-wise medians over rounds (mean of the middle two for an even count).
    pub fn median(results: &[RunResult]) -> Option<RunResult> {
        let first = results.first()?;
        let amps: Vec<f64> = results.iter().filter_map(|r| r.write_amp).collect();
        let extra = first
            .extra
            .iter()
            .enumerate()
            .map(|(i, (name, _))| {
                let vals: Vec<f64> = results
                    .iter()
                    .filter_map(|r| r.extra.get(i))
                    .map(|e| e.1)
                    .collect();
                (*name, median(vals))
            })
            .collect();
        Some(RunResult {
            ops_per_s: median(results.iter().map(|r| r.ops_per_s).collect()),
            p50_us: median(results.iter().map(|r| r.p50_us).collect()),
            p99_us: median(results.iter().map(|r| r.p99_us).collect()),
            write_amp: (!amps.is_empty()).then(|| median(amps)),
            extra,
        })
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Prints one result line to stdout; `round` is a number or `median`.
pub fn print_line(engine: &str, workload: &str, round: &str, r: &RunResult) {
    let mut line = format!(
        "engine={engine} workload={workload} round={round} ops_per_s={:.0} p50_us={:.2} p99_us={:.2}",
        r.ops_per_s, r.p50_us, r.p99_us
    );
    if let Some(wa) = r.write_amp {
        let _ = write!(line, " write_amp={wa:.2}");
    }
    for (name, v) in &r.extra {
        if v.fract() == 0.0 && v.abs() < 1e15 {
            let _ = write!(line, " {name}={v:.0}");
        } else {
            let _ = write!(line, " {name}={v:.2}");
        }
    }
    println!("{line}");
}

/// Prints the `#`-prefixed header: machine, parameters, and each engine's configuration.
pub fn print_header(args: &EngineArgs, cfg: &EngineConfig, dir: &std::path::Path) {
    let nproc = std::thread::available_parallelism().map_or(0, |n| n.get());
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .and_then(|l| l.split_once(':'))
        .map_or("unknown", |(_, v)| v.trim());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_kib: u64 = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0);
    println!("# strata-bench engine");
    println!(
        "# machine nproc={nproc} cpu=\"{cpu}\" mem_gib={:.1}",
        mem_kib as f64 / (1024.0 * 1024.0)
    );
    println!(
        "# params num={} key_size={} value_size={} compression_ratio={} cache_bytes={} \
         block_size={} compression={} bloom_bits={} memtable_bytes={} sync={} rounds={} seed={} dir={}",
        args.num,
        crate::workload::KEY_LEN,
        args.value_size,
        args.compression_ratio,
        cfg.cache_bytes,
        cfg.block_size,
        cfg.compression.name(),
        cfg.bloom_bits,
        cfg.memtable_bytes,
        cfg.sync,
        args.rounds,
        args.seed,
        dir.display()
    );
    for &kind in &args.engines {
        println!(
            "# engine={} config=\"{}\"",
            kind.name(),
            engines::describe(kind, cfg)
        );
    }
    println!(
        "# method: fills start from an empty DB; other workloads run on a DB loaded (unmeasured) \
         with a random permutation of 0..num, flushed and compaction-settled, reopened for every \
         run; writes are settled after each run (unmeasured, settle_s); write_amp = storage bytes \
         / user bytes including that settle"
    );
}
