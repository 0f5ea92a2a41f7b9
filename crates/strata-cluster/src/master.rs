//! The master's loop: keeps every tablet on a live server (docs/cluster.md,
//! "Failover").
//!
//! Level-triggered: on every change under the cluster's prefix (a server
//! joining or leaving, a tablet record changing), and at least once a
//! [`MasterOptions::tick`], it reads the servers and the tablet map afresh
//! and makes one pass:
//!
//! 1. a tablet whose owner is not live is marked `recovering` (same owner,
//!    next epoch): from here on no server may serve it at an older epoch;
//! 2. the recovering tablets of each dead server are handed to
//!    [`Recovery::recover`] (fence the dead server's storage, cut its log
//!    by tablet), which must finish before any of them is assigned again;
//! 3. every tablet without a live owner goes to the least loaded live
//!    server ([`assign_orphans`]), `serving` at the next epoch.
//!
//! Each write is a txn guarded by the master's term and by the record it
//! replaces ([`tablet_store::reassign`]), so a pass that raced with another
//! change fails harmlessly and the next pass starts from what etcd holds.
//! The loop ends when the leadership is lost.
//!
//! Reading everything at each pass costs O(tablets) per change; fine for
//! thousands of tablets, to be made incremental for more.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use crate::assign::assign_orphans;
use crate::client::Etcd;
use crate::election::{Leadership, LeadershipLoss};
use crate::error::{Error, Result};
use crate::membership::{servers, ServerInfo};
use crate::tablet_map::{TabletRecord, TabletState};
use crate::tablet_store::{load, reassign};
use crate::watch::WatchOptions;

/// What recovers a dead server's tablets before they are assigned again.
pub trait Recovery: Send + Sync {
    /// Makes `tablets` (all `recovering`, owned by `dead`) safe to give to
    /// another server: fences `dead` in the store so it can acknowledge no
    /// more writes to them, and cuts their records out of its log. Called
    /// again for the same tablets if it fails or the master changes: must
    /// be idempotent.
    fn recover<'a>(
        &'a self,
        dead: &'a str,
        tablets: &'a [TabletRecord],
    ) -> Pin<Box<dyn Future<Output = Result<()>> + Send + 'a>>;
}

/// Settings of the master's loop.
#[derive(Clone, Debug)]
pub struct MasterOptions {
    /// A pass runs at least this often, changes or not.
    pub tick: Duration,
    /// After a change, wait this long for more before a pass (a server's
    /// departure deletes one key, a table's creation writes many).
    pub settle: Duration,
}

impl Default for MasterOptions {
    fn default() -> Self {
        MasterOptions {
            tick: Duration::from_secs(1),
            settle: Duration::from_millis(50),
        }
    }
}

/// What one pass did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Pass {
    /// Tablets marked recovering.
    pub marked: usize,
    /// Dead servers whose tablets were recovered.
    pub recovered: usize,
    /// Tablets given to a live server.
    pub assigned: usize,
}

/// Runs the master's loop until the leadership is lost; returns why.
pub async fn run(
    etcd: &Etcd,
    cluster: &str,
    master: &Leadership,
    recovery: &dyn Recovery,
    opts: &MasterOptions,
) -> LeadershipLoss {
    let prefix = format!("/{cluster}/");
    let mut changes = etcd.watch_prefix(prefix.as_bytes(), WatchOptions::default());
    loop {
        match pass(etcd, cluster, master, recovery).await {
            Ok(p) if p != Pass::default() => tracing::info!(
                "master pass: {} tablets marked recovering, {} dead servers recovered, {} tablets assigned",
                p.marked,
                p.recovered,
                p.assigned
            ),
            Ok(_) => {}
            Err(Error::NotLeader { .. }) => {}
            Err(e) => tracing::warn!("master pass failed: {e}; trying again"),
        }
        if !master.is_leader() {
            return master.lost().await;
        }
        tokio::select! {
            why = master.lost() => return why,
            event = changes.next() => {
                if event.is_none() {
                    // The watch ended (etcd restarted, history compacted):
                    // a new one from now; the next pass reads everything.
                    changes = etcd.watch_prefix(prefix.as_bytes(), WatchOptions::default());
                }
                tokio::time::sleep(opts.settle).await;
            }
            _ = tokio::time::sleep(opts.tick) => {}
        }
    }
}

/// How the tablet map names a server: its id and its incarnation (the
/// revision its registration was created at), `id@incarnation`. A server
/// that restarts under the same id is a new owner: what the old one held
/// is recovered, not handed back.
pub fn owner_name(server: &ServerInfo) -> String {
    format!("{}@{}", server.id, server.create_revision)
}

/// One pass over the servers and the tablet map (see the module docs).
pub async fn pass(
    etcd: &Etcd,
    cluster: &str,
    master: &Leadership,
    recovery: &dyn Recovery,
) -> Result<Pass> {
    let mut done = Pass::default();
    let (registered, _) = servers(etcd, cluster).await?;
    let live: BTreeSet<String> = registered.iter().map(owner_name).collect();
    let (map, _) = load(etcd, cluster).await?;

    // 1. Tablets of servers that are gone: recovering.
    let mut recovering: BTreeMap<String, Vec<TabletRecord>> = BTreeMap::new();
    for t in map.all() {
        let Some(owner) = t.owner.as_deref().filter(|o| !live.contains(*o)) else {
            continue;
        };
        let t = if t.state == TabletState::Recovering {
            t.clone()
        } else {
            done.marked += 1;
            reassign(master, cluster, t, Some(owner), TabletState::Recovering).await?
        };
        recovering.entry(owner.to_string()).or_default().push(t);
    }
    if live.is_empty() {
        return Ok(done);
    }

    // 2. Their recovery, server by server.
    for (dead, tablets) in &recovering {
        recovery.recover(dead, tablets).await?;
        done.recovered += 1;
    }

    // 3. Owners for every tablet without a live one.
    let (map, _) = load(etcd, cluster).await?;
    for a in assign_orphans(&map, &live) {
        let Some(t) = map.get(a.tablet) else { continue };
        if t.state == TabletState::Recovering
            && !recovering.contains_key(a.from.as_deref().unwrap_or(""))
        {
            // Marked by another pass whose recovery has not run here yet.
            continue;
        }
        reassign(master, cluster, t, Some(&a.to), TabletState::Serving).await?;
        done.assigned += 1;
    }
    Ok(done)
}
