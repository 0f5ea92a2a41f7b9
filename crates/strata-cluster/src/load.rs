//! Each server's report of its tablets' load, for the master's balancing
//! (docs/cluster.md, "Balance"): `/<cluster>/load/<owner>`, written by
//! the server every [`LOAD_REPORT_EVERY`] on its lease (a dead server's
//! report goes with it).
//!
//! ```text
//! format 1
//! tablet 17 size 134217728 rate 120.5
//! tablet 18 size 1048576 rate 0
//! ```
//!
//! `size` is the tablet's bytes on disk and in memtables; `rate` its
//! requests per second (parts of requests served, forwarded or local)
//! since the previous report. A tablet opened since the previous report
//! is not listed (its rate is not known yet); the master counts it at the
//! mean load of the tablets listed.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::time::Duration;

use crate::client::{Etcd, LeaseId};
use crate::error::{Error, Result};
use crate::tablet_map::FORMAT;

/// How often a server reports its tablets' load.
pub const LOAD_REPORT_EVERY: Duration = Duration::from_secs(10);

/// Tablets one report may list (a report is one etcd value; etcd's
/// default request bound is 1.5 MiB, and a line is under 60 bytes).
pub const REPORT_TABLETS_MAX: usize = 20_000;

/// One tablet's load.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct TabletLoad {
    pub size_bytes: u64,
    pub requests_per_sec: f64,
}

pub fn load_prefix(cluster: &str) -> String {
    format!("/{cluster}/load/")
}

pub fn load_key(cluster: &str, owner: &str) -> String {
    format!("{}{owner}", load_prefix(cluster))
}

fn encode(loads: &BTreeMap<u64, TabletLoad>) -> Vec<u8> {
    let mut s = String::with_capacity(16 + loads.len() * 48);
    let _ = writeln!(s, "format {FORMAT}");
    for (id, l) in loads.iter().take(REPORT_TABLETS_MAX) {
        let _ = writeln!(
            s,
            "tablet {id} size {} rate {:.1}",
            l.size_bytes, l.requests_per_sec
        );
    }
    s.into_bytes()
}

fn decode(key: &str, value: &[u8]) -> Result<BTreeMap<u64, TabletLoad>> {
    let bad = |why: &str| Error::Protocol(format!("load report {key}: {why}"));
    let text = std::str::from_utf8(value).map_err(|_| bad("not UTF-8"))?;
    let mut lines = text.lines();
    if lines.next() != Some(&format!("format {FORMAT}")) {
        return Err(bad("unknown format"));
    }
    let mut out = BTreeMap::new();
    for line in lines {
        let f: Vec<&str> = line.split(' ').collect();
        let ["tablet", id, "size", size, "rate", rate] = f.as_slice() else {
            return Err(bad("a line is not `tablet ID size BYTES rate PER_SEC`"));
        };
        let rate: f64 = rate.parse().map_err(|_| bad("rate"))?;
        if !rate.is_finite() || rate < 0.0 {
            return Err(bad("rate"));
        }
        out.insert(
            id.parse().map_err(|_| bad("tablet id"))?,
            TabletLoad {
                size_bytes: size.parse().map_err(|_| bad("size"))?,
                requests_per_sec: rate,
            },
        );
    }
    Ok(out)
}

/// Writes `owner`'s report, attached to its lease.
pub async fn publish(
    etcd: &Etcd,
    cluster: &str,
    owner: &str,
    lease: LeaseId,
    loads: &BTreeMap<u64, TabletLoad>,
) -> Result<()> {
    etcd.put(
        load_key(cluster, owner).as_bytes(),
        &encode(loads),
        Some(lease),
    )
    .await?;
    Ok(())
}

/// The live servers' reports.
#[derive(Clone, Debug, Default)]
pub struct Reports {
    /// Tablet id to its load, from every report.
    pub tablets: BTreeMap<u64, TabletLoad>,
    /// The owners that have reported.
    pub owners: BTreeSet<String>,
}

/// Every live server's report, merged. A damaged report is skipped
/// (logged), as if its server had not reported yet.
pub async fn load_all(etcd: &Etcd, cluster: &str) -> Result<Reports> {
    let prefix = load_prefix(cluster);
    let listing = etcd.get_prefix(prefix.as_bytes()).await?;
    let mut out = Reports::default();
    for kv in &listing.kvs {
        let key = String::from_utf8_lossy(&kv.key);
        match decode(&key, &kv.value) {
            Ok(loads) => {
                out.tablets.extend(loads);
                if let Some(owner) = key.strip_prefix(&prefix) {
                    out.owners.insert(owner.to_string());
                }
            }
            Err(e) => tracing::warn!("{e}"),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_round_trip_and_damage_is_refused() {
        let mut loads = BTreeMap::new();
        loads.insert(
            17,
            TabletLoad {
                size_bytes: 1 << 27,
                requests_per_sec: 120.5,
            },
        );
        loads.insert(18, TabletLoad::default());
        assert_eq!(decode("k", &encode(&loads)).unwrap(), loads);
        assert!(decode("k", b"format 1\ntablet x size 1 rate 0\n").is_err());
        assert!(decode("k", b"format 1\ntablet 1 size 1 rate -1\n").is_err());
        assert!(decode("k", b"format 1\ntablet 1 size 1 rate NaN\n").is_err());
        assert!(decode("k", b"format 2\n").is_err());
    }
}
