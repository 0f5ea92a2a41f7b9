//! `strata check`: verifies every checksum of a stopped server's data
//! (`strata_engine::check`) and exits non-zero on damage, naming each
//! damaged file and where in it.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use strata_engine::check::{check, CheckProgress};
use strata_engine::storage::{LocalStorage, Storage};
use strata_object_store::ObjectStorage;

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
}

pub fn run(args: CheckArgs) -> Result<()> {
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
    let mut progress = |p: &CheckProgress| {
        let pct = (p.bytes_done * 100)
            .checked_div(p.bytes_total)
            .unwrap_or(100);
        eprintln!(
            "  {} of {} tables checked ({pct}% of their bytes)",
            p.tables_done, p.tables_total
        );
    };
    let report = check(&*storage, &mut progress).context("checking")?;
    for n in &report.notes {
        println!("note: {n}");
    }
    for d in &report.damage {
        println!("DAMAGED {}: {}", d.file, d.detail);
    }
    println!(
        "{}: the manifest, {} tables ({} bytes), {} log files ({} records) checked; {}",
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
    if !report.is_clean() {
        anyhow::bail!(
            "{} damaged file(s) in {shown}: restore them from a backup or a replica",
            report.damage.len()
        );
    }
    Ok(())
}
