//! `strata check`: verifies every checksum of a stopped server's data
//! (`strata_engine::check`) and exits non-zero on damage, naming each
//! damaged file and where in it. With `--cluster`, every tablet of a
//! cluster's store (each tablet's prefix is an engine of its own).

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use strata_engine::check::{check, CheckProgress, CheckReport};
use strata_engine::storage::{LocalStorage, Storage};
use strata_object_store::ObjectStorage;
use strata_server::cluster::tablet_prefix;

/// What `strata check` was asked.
#[derive(clap::Args)]
pub struct CheckArgs {
    /// The data directory of a stopped server (a running one holds its
    /// lock, and the check refuses).
    #[arg(long, default_value = "./strata-data")]
    pub data_dir: PathBuf,
    /// Check an object store instead (as `strata serve --storage`; the
    /// server must be stopped: a running one changes it meanwhile).
    #[arg(long, value_name = "URL")]
    pub storage: Option<String>,
    /// The store is a cluster's (`strata serve --etcd --storage URL`):
    /// check every tablet under it, `tablets/<id>/`. Stop the cluster's
    /// servers first.
    #[arg(long, requires = "storage")]
    pub cluster: bool,
}

pub fn run(args: CheckArgs) -> Result<()> {
    if let (true, Some(url)) = (args.cluster, &args.storage) {
        let parsed = strata_object_store::parse_storage_url(url)?;
        return check_cluster(&ObjectStorage::open(parsed, None, 0)?, url);
    }
    let (storage, shown): (Arc<dyn Storage>, String) = match &args.storage {
        None => {
            let s = LocalStorage::open(&args.data_dir).with_context(|| {
                format!(
                    "cannot open {} (is a server running on it? stop it first)",
                    args.data_dir.display()
                )
            })?;
            (s, args.data_dir.display().to_string())
        }
        Some(url) => {
            let parsed = strata_object_store::parse_storage_url(url)?;
            (ObjectStorage::open(parsed, None, 0)?, url.clone())
        }
    };
    eprintln!("checking {shown}");
    let report = check_one(&*storage)?;
    print_report(&report, &shown, "");
    if !report.is_clean() {
        anyhow::bail!(
            "{} damaged file(s) in {shown}: restore them from a backup or a replica",
            report.damage.len()
        );
    }
    Ok(())
}

/// Checks one engine's files, saying how far it is on stderr.
fn check_one(storage: &dyn Storage) -> Result<CheckReport> {
    let mut progress = |p: &CheckProgress| {
        let pct = (p.bytes_done * 100)
            .checked_div(p.bytes_total)
            .unwrap_or(100);
        eprintln!(
            "  {} of {} tables checked ({pct}% of their bytes)",
            p.tables_done, p.tables_total
        );
    };
    check(storage, &mut progress).context("checking")
}

/// Prints a report's notes, damage and summary; `what` names the engine
/// in a cluster (`tablet N: `).
fn print_report(report: &CheckReport, shown: &str, what: &str) {
    for n in &report.notes {
        println!("{what}note: {n}");
    }
    for d in &report.damage {
        println!("{what}DAMAGED {}: {}", d.file, d.detail);
    }
    println!(
        "{what}{}: the manifest, {} tables ({} bytes), {} log files ({} records) checked; {}",
        shown,
        report.tables_checked,
        report.table_bytes_checked,
        report.log_files_checked,
        report.log_records_checked,
        if report.is_clean() {
            "no damage".to_string()
        } else {
            format!("{} damaged", report.damage.len())
        }
    );
}

/// Every tablet of a cluster's store: the tablets are the `tablets/<id>`
/// prefixes that hold objects.
fn check_cluster(root: &Arc<ObjectStorage>, shown: &str) -> Result<()> {
    let names = root.list().with_context(|| format!("listing {shown}"))?;
    let mut ids: Vec<u64> = names
        .iter()
        .filter_map(|n| n.strip_prefix("tablets/")?.split_once('/'))
        .filter_map(|(id, _)| id.parse().ok())
        .collect();
    ids.sort_unstable();
    ids.dedup();
    if ids.is_empty() {
        anyhow::bail!("{shown} holds no tablets (tablets/<id>/...): is it a cluster's store?");
    }
    eprintln!("checking {} tablets in {shown}", ids.len());
    let mut damaged = Vec::new();
    for id in &ids {
        let prefix = tablet_prefix(*id);
        let child = root
            .child(&prefix)
            .with_context(|| format!("opening {prefix}"))?;
        let what = format!("tablet {id}: ");
        match check_one(&*child) {
            Ok(report) => {
                print_report(&report, &format!("{shown}/{prefix}"), &what);
                if !report.is_clean() {
                    damaged.push(*id);
                }
            }
            Err(e) => {
                // A prefix with no manifest (a tablet deleted and partly
                // collected, or one never opened) cannot be checked; say so.
                println!("{what}not checked: {e:#}");
                damaged.push(*id);
            }
        }
    }
    println!(
        "{shown}: {} tablets checked; {}",
        ids.len(),
        if damaged.is_empty() {
            "no damage".to_string()
        } else {
            format!("{} with damage or not checkable", damaged.len())
        }
    );
    if !damaged.is_empty() {
        anyhow::bail!("tablets {damaged:?} of {shown} are damaged or could not be checked");
    }
    Ok(())
}
