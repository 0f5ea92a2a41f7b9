//! `strata cluster status`: what etcd says about a cluster: the master and
//! its term, the live servers with their tablet counts, the splits, merges and moves in
//! progress, and every tablet that is not being served (docs/cluster.md).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use anyhow::{Context, Result};
use strata_cluster::master::owner_name;
use strata_cluster::merges::MergeRecord;
use strata_cluster::splits::SplitRecord;
use strata_cluster::tablet_map::{TabletMap, TabletRecord, TabletState};
use strata_cluster::{master, servers, Etcd, MasterInfo, ServerInfo};

/// `strata cluster …`.
#[derive(clap::Subcommand)]
pub enum ClusterCommand {
    /// The master, the servers and their tablets, and the tablets not
    /// being served, as etcd has them.
    Status(StatusArgs),
}

/// What `strata cluster status` was asked.
#[derive(clap::Args)]
pub struct StatusArgs {
    /// etcd endpoints, `http://HOST:PORT[,…]`.
    #[arg(long, value_name = "URLS", env = "STRATA_ETCD")]
    pub etcd: String,
    /// The cluster's name (its key prefix in etcd).
    #[arg(long, default_value = "strata")]
    pub cluster: String,
}

pub fn run(cmd: ClusterCommand) -> Result<()> {
    let ClusterCommand::Status(args) = cmd;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let text = rt.block_on(status(&args))?;
    print!("{text}");
    Ok(())
}

async fn status(args: &StatusArgs) -> Result<String> {
    let etcd = Etcd::connect(&args.etcd)
        .await
        .with_context(|| format!("cannot reach etcd at {}", args.etcd))?;
    let (live, revision) = servers(&etcd, &args.cluster)
        .await
        .context("reading the servers")?;
    let master = master(&etcd, &args.cluster)
        .await
        .context("reading the master")?;
    let (map, _) = strata_cluster::tablet_store::load(&etcd, &args.cluster)
        .await
        .context("reading the tablet map")?;
    let moves = strata_cluster::moves::load_moves(&etcd, &args.cluster)
        .await
        .context("reading the moves")?;
    let splits = strata_cluster::splits::load(&etcd, &args.cluster)
        .await
        .context("reading the splits")?;
    let merges = strata_cluster::merges::load(&etcd, &args.cluster)
        .await
        .context("reading the merges")?;
    let changes = InProgress {
        moves,
        splits,
        merges,
    };
    Ok(render(
        &args.cluster,
        revision,
        master.as_ref(),
        &live,
        &map,
        &changes,
    ))
}

/// The changes of the tablet map in progress.
#[derive(Default)]
pub struct InProgress {
    /// Tablet id to the move's target.
    pub moves: BTreeMap<u64, String>,
    /// By parent id.
    pub splits: BTreeMap<u64, SplitRecord>,
    /// By left tablet id.
    pub merges: BTreeMap<u64, MergeRecord>,
}

/// The report, as printed.
pub fn render(
    cluster: &str,
    revision: i64,
    master: Option<&MasterInfo>,
    live: &[ServerInfo],
    map: &TabletMap,
    changes: &InProgress,
) -> String {
    let (moves, splits) = (&changes.moves, &changes.splits);
    let mut out = String::new();
    let _ = writeln!(out, "cluster {cluster} (etcd revision {revision})");
    let _ = match master {
        Some(m) => writeln!(out, "master: {} (term {})", m.id, m.term),
        None => writeln!(out, "master: none"),
    };
    let mut per_owner: BTreeMap<&str, usize> = BTreeMap::new();
    let mut per_state: BTreeMap<&str, usize> = BTreeMap::new();
    for t in map.all() {
        if let Some(o) = &t.owner {
            *per_owner.entry(o).or_default() += 1;
        }
        *per_state.entry(t.state.name()).or_default() += 1;
    }
    let _ = writeln!(out, "servers: {}", live.len());
    for s in live {
        let name = owner_name(s);
        let n = per_owner.get(name.as_str()).copied().unwrap_or(0);
        let _ = writeln!(out, "  {name:<24} {:<22} {n} tablets", s.addr);
    }
    let tables = map
        .all()
        .map(|t| &t.table)
        .collect::<std::collections::BTreeSet<_>>();
    let states: Vec<String> = per_state.iter().map(|(s, n)| format!("{n} {s}")).collect();
    let _ = writeln!(
        out,
        "tablets: {} in {} tables ({})",
        map.len(),
        tables.len(),
        if states.is_empty() {
            "none".to_string()
        } else {
            states.join(", ")
        }
    );
    let live_names: std::collections::BTreeSet<String> = live.iter().map(owner_name).collect();
    let waiting: Vec<&TabletRecord> = map
        .all()
        .filter(|t| {
            t.state != TabletState::Serving
                || !t.owner.as_ref().is_some_and(|o| live_names.contains(o))
        })
        .collect();
    if !moves.is_empty() {
        let _ = writeln!(out, "moves in progress: {}", moves.len());
    }
    if !splits.is_empty() {
        let _ = writeln!(out, "splits in progress: {}", splits.len());
        for s in splits.values() {
            let _ = writeln!(
                out,
                "  {} tablet {} at {} into {} and {} ({})",
                s.table,
                s.parent,
                printable(&s.at),
                s.children[0],
                s.children[1],
                if s.ready { "ready" } else { "copying" }
            );
        }
    }
    if !changes.merges.is_empty() {
        let _ = writeln!(out, "merges in progress: {}", changes.merges.len());
        for m in changes.merges.values() {
            let _ = writeln!(
                out,
                "  {} tablets {} and {} into {} on {} ({})",
                m.table,
                m.left.0,
                m.right.0,
                m.merged,
                m.owner,
                if m.ready { "ready" } else { "building" }
            );
        }
    }
    if !waiting.is_empty() {
        let _ = writeln!(out, "not served:");
        for t in waiting {
            let _ = writeln!(
                out,
                "  {} tablet {} [{}, {}) {} owner {} epoch {}{}",
                t.table,
                t.id,
                printable(&t.start),
                t.end.as_deref().map_or("end".to_string(), printable),
                t.state.name(),
                t.owner.as_deref().unwrap_or("-"),
                t.epoch,
                moves
                    .get(&t.id)
                    .map_or(String::new(), |to| format!(", moving to {to}"))
            );
        }
    }
    out
}

/// A row key for a terminal: printable ASCII as is, other bytes `\xNN`.
fn printable(row: &[u8]) -> String {
    if row.is_empty() {
        return "\"\"".to_string();
    }
    row.iter()
        .map(|&b| match b {
            b' '..=b'~' if b != b'\\' => (b as char).to_string(),
            _ => format!("\\x{b:02x}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_in_progress_are_listed() {
        let mut changes = InProgress::default();
        changes.merges.insert(
            7,
            MergeRecord {
                table: "t".into(),
                left: (7, 2),
                right: (8, 1),
                merged: 12,
                owner: "a@5".into(),
                ready: false,
                mod_revision: 1,
            },
        );
        changes.splits.insert(
            9,
            SplitRecord {
                parent: 9,
                table: "t".into(),
                epoch: 1,
                at: b"m\x00".to_vec(),
                children: [13, 14],
                ready: true,
                mod_revision: 2,
            },
        );
        let out = render("c", 5, None, &[], &TabletMap::default(), &changes);
        assert!(
            out.contains("merges in progress: 1\n  t tablets 7 and 8 into 12 on a@5 (building)"),
            "{out}"
        );
        assert!(
            out.contains("splits in progress: 1\n  t tablet 9 at m\\x00 into 13 and 14 (ready)"),
            "{out}"
        );
    }
}
