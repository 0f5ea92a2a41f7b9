//! Per-phase statistics (latency histograms per operation type and overall), the
//! table printed to stdout and the JSON file.

use std::fmt::Write as _;
use std::time::Duration;

use hdrhistogram::Histogram;

use super::workload::Op;

/// Latencies in ns, 1 ns to 10 minutes, 3 significant digits.
fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000_000, 3).expect("valid histogram bounds")
}

/// Counters and latencies of one operation type (or of all of them).
#[derive(Clone)]
pub struct OpStats {
    /// Requests completed (successfully or not).
    pub requests: u64,
    /// Records or rows the requests covered (> requests for batched inserts).
    pub ops: u64,
    pub errors: u64,
    /// Reads that found no row.
    pub missing: u64,
    /// Reads that found the row with fewer cells than fields.
    pub partial: u64,
    pub hist: Histogram<u64>,
}

impl OpStats {
    fn new() -> Self {
        Self {
            requests: 0,
            ops: 0,
            errors: 0,
            missing: 0,
            partial: 0,
            hist: new_histogram(),
        }
    }

    fn merge(&mut self, other: &OpStats) {
        self.requests += other.requests;
        self.ops += other.ops;
        self.errors += other.errors;
        self.missing += other.missing;
        self.partial += other.partial;
        self.hist.add(&other.hist).expect("same histogram bounds");
    }

    fn quantile_us(&self, q: f64) -> f64 {
        if self.hist.is_empty() {
            return 0.0;
        }
        self.hist.value_at_quantile(q) as f64 / 1000.0
    }

    fn mean_us(&self) -> f64 {
        self.hist.mean() / 1000.0
    }

    fn max_us(&self) -> f64 {
        self.hist.max() as f64 / 1000.0
    }
}

/// What one task (or, merged, a whole phase) recorded, per operation type.
#[derive(Clone)]
pub struct Stats {
    pub by_op: Vec<OpStats>,
}

impl Default for Stats {
    fn default() -> Self {
        Self {
            by_op: Op::ALL.iter().map(|_| OpStats::new()).collect(),
        }
    }
}

impl Stats {
    /// Records one request of `op` that covered `ops` records and took `latency`.
    pub fn record(&mut self, op: Op, ops: u64, latency: Duration) -> &mut OpStats {
        let s = &mut self.by_op[op.index()];
        s.requests += 1;
        s.ops += ops;
        let ns = u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX);
        s.hist.saturating_record(ns.max(1));
        s
    }

    pub fn merge(&mut self, other: &Stats) {
        for (a, b) in self.by_op.iter_mut().zip(&other.by_op) {
            a.merge(b);
        }
    }

    fn overall(&self) -> OpStats {
        let mut all = OpStats::new();
        for s in &self.by_op {
            all.merge(s);
        }
        all
    }

    /// ("all", overall) followed by each operation type that ran.
    fn rows(&self) -> Vec<(&'static str, OpStats)> {
        let mut rows = vec![("all", self.overall())];
        for op in Op::ALL {
            let s = &self.by_op[op.index()];
            if s.requests > 0 {
                rows.push((op.name(), s.clone()));
            }
        }
        rows
    }
}

/// The result of one workload phase.
pub struct Phase {
    pub workload: &'static str,
    pub distribution: &'static str,
    pub elapsed: Duration,
    pub stats: Stats,
    /// CPU time the server's processes spent during the phase (with
    /// `--server-pid`), and this client's.
    pub server_cpu: Option<Duration>,
    pub client_cpu: Duration,
}

impl Phase {
    pub fn errors(&self) -> u64 {
        self.stats.by_op.iter().map(|s| s.errors).sum()
    }

    pub fn missing(&self) -> u64 {
        self.stats.by_op.iter().map(|s| s.missing + s.partial).sum()
    }

    /// Operations of the phase (records, for batched inserts).
    fn ops(&self) -> u64 {
        self.stats.by_op.iter().map(|s| s.ops).sum()
    }

    /// CPU µs per operation of `cpu` over this phase.
    fn per_op_us(&self, cpu: Duration) -> f64 {
        cpu.as_secs_f64() * 1e6 / self.ops().max(1) as f64
    }
}

pub fn table_header() -> String {
    format!(
        "{:<5} {:<8} {:<7} {:>9} {:>7} {:>10} {:>9} {:>9} {:>9} {:>7} {:>7} {:>10} {:>10}",
        "phase",
        "dist",
        "op",
        "ops",
        "secs",
        "ops/s",
        "p50 µs",
        "p99 µs",
        "p999 µs",
        "errors",
        "missing",
        "srv cpu µs",
        "cli cpu µs"
    )
}

/// The table lines of one phase: overall, then each operation type. The
/// CPU columns (per operation, the server's with `--server-pid` and the
/// client's) are the phase's, on its overall line.
pub fn table_lines(p: &Phase) -> Vec<String> {
    let secs = p.elapsed.as_secs_f64().max(1e-9);
    p.stats
        .rows()
        .into_iter()
        .enumerate()
        .map(|(i, (name, s))| {
            let (server, client) = if i == 0 {
                (
                    p.server_cpu
                        .map_or("-".to_string(), |c| format!("{:.1}", p.per_op_us(c))),
                    format!("{:.1}", p.per_op_us(p.client_cpu)),
                )
            } else {
                ("-".to_string(), "-".to_string())
            };
            format!(
                "{:<5} {:<8} {:<7} {:>9} {:>7.2} {:>10.0} {:>9.1} {:>9.1} {:>9.1} {:>7} {:>7} {:>10} {:>10}",
                p.workload,
                p.distribution,
                name,
                s.ops,
                secs,
                s.ops as f64 / secs,
                s.quantile_us(0.5),
                s.quantile_us(0.99),
                s.quantile_us(0.999),
                s.errors,
                s.missing + s.partial,
                server,
                client,
            )
        })
        .collect()
}

fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn json_op(s: &OpStats, secs: f64) -> String {
    format!(
        "{{\"ops\": {}, \"requests\": {}, \"ops_per_sec\": {:.1}, \"errors\": {}, \"missing\": {}, \"partial\": {}, \
         \"p50_us\": {:.1}, \"p99_us\": {:.1}, \"p999_us\": {:.1}, \"mean_us\": {:.1}, \"max_us\": {:.1}}}",
        s.ops,
        s.requests,
        s.ops as f64 / secs,
        s.errors,
        s.missing,
        s.partial,
        s.quantile_us(0.5),
        s.quantile_us(0.99),
        s.quantile_us(0.999),
        s.mean_us(),
        s.max_us(),
    )
}

/// The whole run as JSON: `{"config": {...}, "phases": [{workload, distribution,
/// seconds, ops, ops_per_sec, errors, missing, latency: {all, read, ...}}]}`.
pub fn to_json(config: &[(&str, String)], phases: &[Phase]) -> String {
    let mut out = String::from("{\n  \"config\": {");
    for (i, (k, v)) in config.iter().enumerate() {
        let sep = if i == 0 { "" } else { ", " };
        let _ = write!(out, "{sep}{}: {v}", json_string(k));
    }
    out.push_str("},\n  \"phases\": [");
    for (i, p) in phases.iter().enumerate() {
        let secs = p.elapsed.as_secs_f64().max(1e-9);
        let rows = p.stats.rows();
        let all = &rows[0].1;
        let _ = write!(
            out,
            "{}\n    {{\"workload\": {}, \"distribution\": {}, \"seconds\": {:.3}, \"ops\": {}, \
             \"ops_per_sec\": {:.1}, \"errors\": {}, \"missing\": {}, \"server_cpu_us_per_op\": {}, \
             \"client_cpu_us_per_op\": {:.1}, \"latency\": {{",
            if i == 0 { "" } else { "," },
            json_string(p.workload),
            json_string(p.distribution),
            secs,
            all.ops,
            all.ops as f64 / secs,
            p.errors(),
            p.missing(),
            p.server_cpu
                .map_or("null".to_string(), |c| format!("{:.1}", p.per_op_us(c))),
            p.per_op_us(p.client_cpu),
        );
        for (j, (name, s)) in rows.iter().enumerate() {
            let sep = if j == 0 { "" } else { ", " };
            let _ = write!(
                out,
                "{sep}\n      {}: {}",
                json_string(name),
                json_op(s, secs)
            );
        }
        out.push_str("}}");
    }
    out.push_str("\n  ]\n}\n");
    out
}

pub fn quote(s: &str) -> String {
    json_string(s)
}
