//! `strata-bench scan`: full-table scans over gRPC, for ReadRows streaming
//! throughput. Each scan is one ReadRows of the whole table (no row set),
//! its stream consumed and its rows counted from the chunks' `commit_row`.
//! The table is whatever is there: load it first, e.g. with
//! `strata-bench ycsb --workloads load` (the default table, `usertable`).
//!
//! stdout: one `key=value` line per scan: rows, cells, responses, bytes (the
//! chunks' row keys, families, qualifiers and values: the payload, not the
//! protobuf framing), the largest response in those bytes, the time to the
//! first response (from sending the request), seconds, rows/s
//! and MB/s (10^6 payload bytes per second), and the CPU seconds (user +
//! system, from /proc) the scan cost this client and, with `--server-pid`,
//! the server, and what every other process on the machine used meanwhile
//! (`other_cpu_secs`): on a shared machine wall-clock rates move with
//! whatever else runs, so a scan that ran beside other work can be told
//! apart and repeated.

use std::time::Instant;

use anyhow::{bail, Result};
use googleapis_tonic_google_bigtable_v2::google::bigtable::v2;
use v2::read_rows_response::cell_chunk::RowStatus;

use crate::ycsb::client::{data_client, ReadFilter, Target};

/// Arguments of the `scan` subcommand.
#[derive(clap::Args, Debug, Clone)]
pub struct ScanArgs {
    #[command(flatten)]
    pub target: Target,

    /// Scans, one after the other.
    #[arg(long, default_value_t = 3)]
    pub scans: usize,

    /// Filter of the scans.
    #[arg(long, value_enum, default_value_t = ReadFilter::None)]
    pub read_filter: ReadFilter,

    /// Fail unless every scan returns this many rows.
    #[arg(long)]
    pub expect_rows: Option<u64>,

    /// The server's process id, to report the CPU time each scan cost it.
    #[arg(long)]
    pub server_pid: Option<u32>,
}

/// What one scan returned.
#[derive(Default)]
struct ScanStats {
    rows: u64,
    cells: u64,
    responses: u64,
    bytes: u64,
    max_response_bytes: usize,
    first_response_ms: f64,
}

pub fn run(args: ScanArgs) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run_async(args))
}

async fn run_async(args: ScanArgs) -> Result<()> {
    let mut client = data_client(args.target.connect().await?);
    let table_name = args.target.table_name();
    let filter = args.read_filter.row_filter();
    let server = args.server_pid.map(|p| p.to_string());
    for scan in 1..=args.scans {
        let request = v2::ReadRowsRequest {
            table_name: table_name.clone(),
            filter: filter.clone(),
            ..Default::default()
        };
        let started = Instant::now();
        let cpu_before = (cpu_secs("self"), server.as_deref().map(cpu_secs));
        let machine_before = machine_busy_secs();
        let mut stream = client.read_rows(request).await?.into_inner();
        let mut s = ScanStats::default();
        while let Some(response) = stream.message().await? {
            let mut len = 0;
            for chunk in &response.chunks {
                len += chunk.row_key.len()
                    + chunk.family_name.as_ref().map_or(0, String::len)
                    + chunk.qualifier.as_ref().map_or(0, Vec::len)
                    + chunk.value.len();
                s.cells += u64::from(chunk.value_size == 0);
                s.rows += u64::from(chunk.row_status == Some(RowStatus::CommitRow(true)));
            }
            if s.responses == 0 {
                s.first_response_ms = started.elapsed().as_secs_f64() * 1e3;
            }
            s.responses += 1;
            s.bytes += len as u64;
            s.max_response_bytes = s.max_response_bytes.max(len);
        }
        let secs = started.elapsed().as_secs_f64();
        let client_cpu = cpu_secs("self") - cpu_before.0;
        let server_cpu = match (server.as_deref(), cpu_before.1) {
            (Some(pid), Some(before)) => Some(cpu_secs(pid) - before),
            _ => None,
        };
        let other_cpu =
            machine_busy_secs() - machine_before - client_cpu - server_cpu.unwrap_or(0.0);
        let server_cpu = server_cpu.map_or(String::new(), |c| {
            format!(
                " server_cpu_secs={c:.2} other_cpu_secs={:.2}",
                other_cpu.max(0.0)
            )
        });
        println!(
            "scan={scan} rows={} cells={} responses={} bytes={} max_response_bytes={} first_response_ms={:.1} secs={secs:.3} rows_per_sec={:.0} mb_per_sec={:.1} client_cpu_secs={client_cpu:.2}{server_cpu}",
            s.rows,
            s.cells,
            s.responses,
            s.bytes,
            s.max_response_bytes,
            s.first_response_ms,
            s.rows as f64 / secs,
            s.bytes as f64 / secs / 1e6,
        );
        if let Some(want) = args.expect_rows {
            if s.rows != want {
                bail!("scan {scan} returned {} rows, expected {want}", s.rows);
            }
        }
    }
    Ok(())
}

/// Busy CPU seconds of the whole machine so far (every CPU's user, nice,
/// system, irq and softirq time in /proc/stat); 0 if unreadable.
fn machine_busy_secs() -> f64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let Some(cpu) = stat.lines().next().and_then(|l| l.strip_prefix("cpu ")) else {
        return 0.0;
    };
    let f: Vec<u64> = cpu
        .split_whitespace()
        .map(|v| v.parse().unwrap_or(0))
        .collect();
    // user nice system idle iowait irq softirq
    let busy: u64 = [0, 1, 2, 5, 6].iter().filter_map(|&i| f.get(i)).sum();
    busy as f64 / 100.0
}

/// User + system CPU seconds of a process (`self` or a pid) so far, from
/// /proc/PID/stat (clock ticks of 1/100 s, Linux's USER_HZ); 0 if unreadable.
fn cpu_secs(pid: &str) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // Fields after the command (which may hold spaces) in parentheses:
    // state is field 3, utime 14 and stime 15.
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return 0.0;
    };
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        f.get(i - 3)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    (ticks(14) + ticks(15)) as f64 / 100.0
}
