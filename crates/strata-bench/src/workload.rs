//! db_bench's keys, values and workloads.
//!
//! - Keys: the key number as 16 zero-padded decimal digits (`format!("{:016}", k)`), so
//!   numeric order is byte order and fillseq is sequential.
//! - Values: db_bench's `RandomGenerator`: a 1 MiB buffer of 100-byte pieces, each made
//!   of `100 * compression_ratio` random printable bytes repeated to 100 bytes; values
//!   are consecutive `value_size` windows of that buffer.
//! - fillrandom writes every key of 0..num exactly once in a random permutation (db_bench
//!   draws with replacement, leaving ~63% distinct keys; a permutation makes the database
//!   the same size as fillseq's and lets readrandom find every key). The read workloads
//!   run on such a database.
//! - overwrite, readrandom, seekrandom and both threads of readwhilewriting draw keys
//!   uniformly from 0..num with replacement, as db_bench does.

use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{anyhow, Result};
use clap::ValueEnum;
use rand::rngs::SmallRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

use crate::engines::BenchEngine;
use crate::report::{Measurement, Recorder};

pub const KEY_LEN: usize = 16;

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum WorkloadKind {
    Fillseq,
    Fillrandom,
    Overwrite,
    Readrandom,
    Readseq,
    Seekrandom,
    Readwhilewriting,
}

impl WorkloadKind {
    pub fn name(self) -> &'static str {
        match self {
            WorkloadKind::Fillseq => "fillseq",
            WorkloadKind::Fillrandom => "fillrandom",
            WorkloadKind::Overwrite => "overwrite",
            WorkloadKind::Readrandom => "readrandom",
            WorkloadKind::Readseq => "readseq",
            WorkloadKind::Seekrandom => "seekrandom",
            WorkloadKind::Readwhilewriting => "readwhilewriting",
        }
    }

    /// Fill workloads start from an empty database; the others run on a loaded one.
    pub fn is_fill(self) -> bool {
        matches!(self, WorkloadKind::Fillseq | WorkloadKind::Fillrandom)
    }

    /// Whether the workload writes (and so leaves work to settle afterwards).
    pub fn writes(self) -> bool {
        self.is_fill()
            || matches!(
                self,
                WorkloadKind::Overwrite | WorkloadKind::Readwhilewriting
            )
    }

    /// Whether the result line carries write amplification.
    pub fn reports_write_amp(self) -> bool {
        self.is_fill() || self == WorkloadKind::Overwrite
    }
}

/// Per-run workload parameters.
#[derive(Clone, Debug)]
pub struct Params {
    pub num: u64,
    pub value_size: usize,
    pub compression_ratio: f64,
    pub seed: u64,
}

/// Encodes key number `k` as 16 zero-padded decimal digits.
pub fn encode_key(mut k: u64) -> [u8; KEY_LEN] {
    let mut buf = [b'0'; KEY_LEN];
    for b in buf.iter_mut().rev() {
        *b = b'0' + (k % 10) as u8;
        k /= 10;
    }
    buf
}

/// db_bench's `RandomGenerator` (values of tunable compressibility).
pub struct ValueGen {
    data: Vec<u8>,
    pos: usize,
    len: usize,
}

impl ValueGen {
    pub fn new(value_size: usize, compression_ratio: f64, seed: u64) -> Self {
        const PIECE: usize = 100;
        let mut rng = SmallRng::seed_from_u64(seed);
        let target = value_size.max(1 << 20);
        let raw_len = ((PIECE as f64 * compression_ratio) as usize).clamp(1, PIECE);
        let mut data = Vec::with_capacity(target + PIECE);
        while data.len() < target {
            let raw: Vec<u8> = (0..raw_len)
                .map(|_| b' ' + rng.gen_range(0..95u8))
                .collect();
            data.extend(raw.iter().cycle().take(PIECE));
        }
        Self {
            data,
            pos: 0,
            len: value_size,
        }
    }

    pub fn next_value(&mut self) -> &[u8] {
        if self.pos + self.len > self.data.len() {
            self.pos = 0;
        }
        self.pos += self.len;
        &self.data[self.pos - self.len..self.pos]
    }
}

fn shuffled_keys(num: u64, seed: u64) -> Vec<u64> {
    let mut keys: Vec<u64> = (0..num).collect();
    keys.shuffle(&mut SmallRng::seed_from_u64(seed));
    keys
}

/// Loads `0..num` in random order without measuring (setup for the read workloads).
pub fn load(engine: &dyn BenchEngine, p: &Params, label: &str) -> Result<()> {
    let keys = shuffled_keys(p.num, p.seed);
    write_keys(engine, keys.into_iter(), p, label).map(|_| ())
}

/// Runs one measured workload on `engine`.
pub fn run(
    kind: WorkloadKind,
    engine: &dyn BenchEngine,
    p: &Params,
    label: &str,
) -> Result<Measurement> {
    match kind {
        WorkloadKind::Fillseq => write_keys(engine, 0..p.num, p, label),
        WorkloadKind::Fillrandom => {
            let keys = shuffled_keys(p.num, p.seed);
            write_keys(engine, keys.into_iter(), p, label)
        }
        WorkloadKind::Overwrite => {
            let mut rng = SmallRng::seed_from_u64(p.seed);
            let num = p.num;
            write_keys(engine, (0..num).map(|_| rng.gen_range(0..num)), p, label)
        }
        WorkloadKind::Readrandom => read_random(engine, p, label, None),
        WorkloadKind::Readseq => read_seq(engine, p, label),
        WorkloadKind::Seekrandom => seek_random(engine, p, label),
        WorkloadKind::Readwhilewriting => read_while_writing(engine, p, label),
    }
}

fn write_keys(
    engine: &dyn BenchEngine,
    keys: impl Iterator<Item = u64>,
    p: &Params,
    label: &str,
) -> Result<Measurement> {
    let mut values = ValueGen::new(p.value_size, p.compression_ratio, p.seed);
    let mut rec = Recorder::new(label, p.num);
    for k in keys {
        engine.put(&encode_key(k), values.next_value())?;
        rec.record();
    }
    Ok(rec.finish())
}

/// `num` point reads of uniformly random keys; stops early if `stop` is given and set.
fn read_random(
    engine: &dyn BenchEngine,
    p: &Params,
    label: &str,
    stop: Option<&AtomicBool>,
) -> Result<Measurement> {
    let mut rng = SmallRng::seed_from_u64(p.seed);
    let mut rec = Recorder::new(label, p.num);
    let mut found = 0u64;
    for _ in 0..p.num {
        if stop.is_some_and(|s| s.load(Ordering::Relaxed)) {
            break;
        }
        if engine.get(&encode_key(rng.gen_range(0..p.num)))? {
            found += 1;
        }
        rec.record();
    }
    let mut m = rec.finish();
    m.extra.push(("found", found as f64));
    Ok(m)
}

fn read_seq(engine: &dyn BenchEngine, p: &Params, label: &str) -> Result<Measurement> {
    let mut rec = Recorder::new(label, p.num);
    let mut bytes = 0u64;
    engine.scan_all(&mut |n| {
        bytes += n as u64;
        rec.record();
    })?;
    let mut m = rec.finish();
    let secs = m.elapsed.as_secs_f64().max(1e-9);
    m.extra.push(("entries", m.ops as f64));
    m.extra.push(("mb_per_s", bytes as f64 / secs / 1e6));
    Ok(m)
}

fn seek_random(engine: &dyn BenchEngine, p: &Params, label: &str) -> Result<Measurement> {
    let mut rng = SmallRng::seed_from_u64(p.seed);
    let mut rec = Recorder::new(label, p.num);
    let mut found = 0u64;
    for _ in 0..p.num {
        if engine.seek_read_one(&encode_key(rng.gen_range(0..p.num)))? {
            found += 1;
        }
        rec.record();
    }
    let mut m = rec.finish();
    m.extra.push(("found", found as f64));
    Ok(m)
}

/// One reader doing `num` random gets while one writer overwrites random keys at full
/// speed until the reader is done; the reported throughput and latencies are the reader's.
fn read_while_writing(engine: &dyn BenchEngine, p: &Params, label: &str) -> Result<Measurement> {
    let stop = AtomicBool::new(false);
    let (reader, writes) = std::thread::scope(|s| {
        let writer = s.spawn(|| -> Result<u64> {
            let mut rng = SmallRng::seed_from_u64(p.seed ^ 0x5bd1_e995);
            let mut values = ValueGen::new(p.value_size, p.compression_ratio, p.seed ^ 1);
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let key = encode_key(rng.gen_range(0..p.num));
                if let Err(e) = engine.put(&key, values.next_value()) {
                    stop.store(true, Ordering::Relaxed);
                    return Err(e);
                }
                n += 1;
            }
            Ok(n)
        });
        let reader = read_random(engine, p, label, Some(&stop));
        stop.store(true, Ordering::Relaxed);
        let writes = writer
            .join()
            .map_err(|_| anyhow!("readwhilewriting writer thread panicked"));
        (reader, writes)
    });
    let mut m = reader?;
    let writes = writes??;
    let secs = m.elapsed.as_secs_f64().max(1e-9);
    m.extra.push(("writer_ops_per_s", writes as f64 / secs));
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_zero_padded_decimal() {
        assert_eq!(&encode_key(0), b"0000000000000000");
        assert_eq!(&encode_key(1234567), format!("{:016}", 1234567).as_bytes());
        assert!(encode_key(9) < encode_key(10));
    }

    #[test]
    fn values_are_half_compressible() {
        let mut g = ValueGen::new(100, 0.5, 7);
        let v = g.next_value().to_vec();
        assert_eq!(v.len(), 100);
        assert_eq!(v[..50], v[50..]);
        assert_ne!(g.next_value(), &v[..]);
    }
}
