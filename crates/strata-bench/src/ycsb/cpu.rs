//! CPU time of processes, from `/proc/PID/stat` (Linux): the server's
//! (`--server-pid`, one or more: a cluster's servers) and the benchmark's
//! own, read before and after each phase, so that a phase reports the CPU
//! each operation cost, not only how fast operations went.

use std::time::Duration;

use anyhow::{bail, Context, Result};

/// Clock ticks per second of `/proc/PID/stat`'s times (`USER_HZ`, 100 on
/// every Linux architecture the kernel exports to user space).
const TICKS_PER_SEC: u64 = 100;

/// User plus system CPU time of process `pid` so far (`"self"` for this
/// one).
pub fn process_cpu(pid: &str) -> Result<Duration> {
    let path = format!("/proc/{pid}/stat");
    let stat = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    parse_stat(&stat).with_context(|| format!("parsing {path}"))
}

/// utime + stime of a `/proc/PID/stat` line: fields 14 and 15, counted
/// after the command name, which is in parentheses and may hold spaces.
fn parse_stat(stat: &str) -> Result<Duration> {
    let Some(close) = stat.rfind(')') else {
        bail!("no ')' after the command name");
    };
    // Fields from the 3rd (state) on.
    let rest: Vec<&str> = stat[close + 1..].split_whitespace().collect();
    if rest.len() < 13 {
        bail!(
            "{} fields after the command name, expected at least 13",
            rest.len()
        );
    }
    let ticks = |i: usize| -> Result<u64> {
        rest[i]
            .parse::<u64>()
            .with_context(|| format!("field {}: {:?}", i + 3, rest[i]))
    };
    let total = ticks(11)? + ticks(12)?;
    Ok(Duration::from_micros(total * 1_000_000 / TICKS_PER_SEC))
}

/// CPU time of several processes together.
pub struct CpuMeter {
    pids: Vec<String>,
}

impl CpuMeter {
    /// Checks that every process can be read now.
    pub fn new(pids: &[u32]) -> Result<CpuMeter> {
        let meter = CpuMeter {
            pids: pids.iter().map(u32::to_string).collect(),
        };
        meter.read()?;
        Ok(meter)
    }

    /// Their CPU time so far, summed.
    pub fn read(&self) -> Result<Duration> {
        self.pids.iter().map(|p| process_cpu(p)).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stat_line_gives_utime_plus_stime() {
        // pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt
        // majflt cmajflt utime stime ...
        let line = "4242 (strata serve) S 1 4242 4242 0 -1 4194560 900 0 3 0 250 75 0 0 20 0 9";
        assert_eq!(parse_stat(line).unwrap(), Duration::from_millis(3250));
    }

    #[test]
    fn a_command_name_with_parentheses_and_spaces_is_skipped() {
        let line = "7 (a (b) c) R 1 7 7 0 -1 0 0 0 0 0 1 2 0 0 20 0 1";
        assert_eq!(parse_stat(line).unwrap(), Duration::from_millis(30));
    }

    #[test]
    fn a_short_or_garbled_line_is_an_error() {
        assert!(parse_stat("1 (x) S 1 2 3").is_err());
        assert!(parse_stat("no parenthesis").is_err());
        assert!(parse_stat("1 (x) S 1 1 1 0 -1 0 0 0 0 0 ab 2 0").is_err());
    }

    #[test]
    fn this_process_cpu_time_advances_as_it_spins() {
        let before = process_cpu("self").unwrap();
        let started = std::time::Instant::now();
        let mut x = 0u64;
        while process_cpu("self").unwrap() < before + Duration::from_millis(50) {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "no CPU time counted"
            );
            for _ in 0..100_000 {
                x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
            }
        }
    }
}
