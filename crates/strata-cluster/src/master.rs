//! The master's loop: keeps every tablet on a live server (docs/cluster.md,
//! "Failover").
//!
//! Level-triggered: on changes under the cluster's prefix (a server
//! joining or leaving, a tablet record changing; the changes that arrive
//! together make one pass, and servers' load reports alone wait for the
//! tick), and at least once a [`MasterOptions::tick`], it makes one pass
//! over the live servers (read afresh) and its copy of the tablet map
//! (read once, then followed by watch, with its own writes applied as it
//! makes them):
//!
//! 1. a tablet whose owner is not live is marked `recovering` (same owner,
//!    next epoch): from here on no server may serve it at an older epoch;
//! 2. every tablet without a live owner goes to the least loaded live
//!    server ([`assign_orphans`]), `serving` at the next epoch;
//! 3. a split its owner has made ready replaces its parent by the two
//!    children, and a split whose parent changed (or that stayed prepared
//!    too long) is abandoned ([`splits`](crate::splits)); likewise a
//!    merge made ready replaces its two tablets by the merged one, or is
//!    abandoned ([`merges`](crate::merges));
//! 4. a moving tablet whose source has released it (or that waited
//!    [`MOVE_RELEASE_WAIT`]) goes to its target ([`moves`](crate::moves));
//! 5. the data of deleted tables' tablets and of split parents
//!    (`garbage/<id>`, written with the deletion or the split) is deleted
//!    from the store by the [`Collector`], once
//!    [`MasterOptions::garbage_delay`] has passed (their owners have
//!    closed them);
//! 6. with no move in progress, up to [`MOVES_PER_PASS`] tablets start
//!    moving from the most loaded live server to the least loaded: by the
//!    servers' reports of their tablets' sizes and request rates
//!    ([`balance_by_load`], `load`) once every live server has reported,
//!    else by count while they differ by more than one ([`balance`]). A
//!    server that joins gets its share.
//! 7. with no balancing move started, neighbouring tablets whose sizes
//!    add up to at most [`MasterOptions::merge_size_bytes`], and have for
//!    [`MasterOptions::merge_delay`], merge: on one server the merge is
//!    recorded (its owner makes it); on two, the right one first moves to
//!    the left one's server.
//!
//! The recovery itself is the new owner's: each tablet has its own
//! manifest and log in the store, and opening them takes them over (a new
//! manifest epoch and a fence in the log, docs/formats/object-store.md),
//! which stops the old owner, if it still runs, from committing anything,
//! before the log is replayed (docs/cluster.md, "Failover").
//!
//! Each write is a txn guarded by the master's term and by the record it
//! replaces ([`tablet_store::reassign_many`], up to 64 records per txn),
//! so a pass that raced with another change fails harmlessly and the next
//! pass starts from what etcd holds.
//! The loop ends when the leadership is lost.
//!
//! A pass reads no map from etcd: what it reads each time is the servers,
//! the records of splits, merges and moves in progress, and (for
//! balancing) the load reports. Its work in memory is O(tablets).

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use futures::FutureExt;
use std::time::{Duration, Instant};

use crate::assign::{assign_orphans, balance, balance_by_load};
use crate::client::Etcd;
use crate::election::{Leadership, LeadershipLoss};
use crate::error::{Error, Result};
use crate::membership::{servers, ServerInfo};
use crate::moves::{begin_move, finish_move, forget, load_moves, load_released, MOVE_RELEASE_WAIT};
use crate::tablet_map::{TabletMap, TabletRecord, TabletState};
use crate::tablet_store::{load, reassign_many, TabletFollower, REASSIGN_BATCH};
use crate::txn::{Op, Txn};
use crate::watch::WatchOptions;

/// Deletes what a deleted tablet left in the store.
pub trait Collector: Send + Sync {
    /// Deletes every object of tablet `id`. Idempotent.
    fn delete_tablet(
        &self,
        id: u64,
    ) -> std::pin::Pin<
        Box<dyn std::future::Future<Output = std::result::Result<(), String>> + Send + '_>,
    >;
}

/// Tablets one pass moves to even out the load (each move makes its
/// tablet unavailable for a moment).
pub const MOVES_PER_PASS: usize = 4;

/// A tablet moved for balance stays where it went at least this long
/// (its request rate starts afresh on its new server).
pub const MOVE_COOLDOWN: Duration = Duration::from_secs(60);

/// How long two small neighbours stay small before they merge, by
/// default (tablets of a new table made with initial splits are small at
/// first: they are merged only if they stay so).
pub const MERGE_DELAY_DEFAULT: Duration = Duration::from_secs(600);

/// Settings of the master's loop.
#[derive(Clone, Debug)]
pub struct MasterOptions {
    /// A pass runs at least this often, changes or not.
    pub tick: Duration,
    /// After a change, wait this long for more before a pass (a server's
    /// departure deletes one key, a table's creation writes many).
    pub settle: Duration,
    /// How long a deleted table's tablets wait before their data is
    /// deleted: time for their owners to close them.
    pub garbage_delay: Duration,
    /// Tablet records changed per txn when many change at once (a dead
    /// server's); at most [`REASSIGN_BATCH`].
    pub reassign_batch: usize,
    /// Two neighbouring tablets whose sizes add up to at most this merge
    /// (`merges`); 0: never.
    pub merge_size_bytes: u64,
    /// How long a pair must have been small (as this master saw) before
    /// it merges.
    pub merge_delay: Duration,
    /// What this process's master passes did, added up (for metrics).
    pub totals: Arc<PassTotals>,
}

/// Every [`Pass`] of a process's master terms added up.
#[derive(Debug, Default)]
pub struct PassTotals {
    pub marked: AtomicU64,
    pub assigned: AtomicU64,
    pub moves_started: AtomicU64,
    pub moves_finished: AtomicU64,
    pub splits_finished: AtomicU64,
    pub splits_abandoned: AtomicU64,
    pub merges_started: AtomicU64,
    pub merges_finished: AtomicU64,
    pub merges_abandoned: AtomicU64,
}

impl PassTotals {
    fn add(&self, p: &Pass) {
        let add = |a: &AtomicU64, n: usize| {
            a.fetch_add(n as u64, Ordering::Relaxed);
        };
        add(&self.marked, p.marked);
        add(&self.assigned, p.assigned);
        add(&self.moves_started, p.moves_started);
        add(&self.moves_finished, p.moves_finished);
        add(&self.splits_finished, p.splits_finished);
        add(&self.splits_abandoned, p.splits_abandoned);
        add(&self.merges_started, p.merges_started);
        add(&self.merges_finished, p.merges_finished);
        add(&self.merges_abandoned, p.merges_abandoned);
    }

    /// `(action, count)` for each kind of change, as the metrics name them.
    pub fn all(&self) -> [(&'static str, u64); 9] {
        let ld = |a: &AtomicU64| a.load(Ordering::Relaxed);
        [
            ("marked_recovering", ld(&self.marked)),
            ("assigned", ld(&self.assigned)),
            ("move_started", ld(&self.moves_started)),
            ("move_finished", ld(&self.moves_finished)),
            ("split_finished", ld(&self.splits_finished)),
            ("split_abandoned", ld(&self.splits_abandoned)),
            ("merge_started", ld(&self.merges_started)),
            ("merge_finished", ld(&self.merges_finished)),
            ("merge_abandoned", ld(&self.merges_abandoned)),
        ]
    }
}

impl Default for MasterOptions {
    fn default() -> Self {
        MasterOptions {
            tick: Duration::from_secs(1),
            settle: Duration::from_millis(50),
            garbage_delay: Duration::from_secs(30),
            reassign_batch: REASSIGN_BATCH,
            merge_size_bytes: 0,
            merge_delay: MERGE_DELAY_DEFAULT,
            totals: Arc::default(),
        }
    }
}

/// What one pass did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Pass {
    /// Tablets marked recovering.
    pub marked: usize,
    /// Tablets given to a live server.
    pub assigned: usize,
    /// Moves started for balance.
    pub moves_started: usize,
    /// Moves finished (the tablet given to its target).
    pub moves_finished: usize,
    /// Splits finished (the parent replaced by its children).
    pub splits_finished: usize,
    /// Splits abandoned.
    pub splits_abandoned: usize,
    /// Merges recorded, finished (two tablets replaced by one) and
    /// abandoned.
    pub merges_started: usize,
    pub merges_finished: usize,
    pub merges_abandoned: usize,
}

/// What the master remembers between passes: when it first saw each move
/// in progress (a new master starts the clocks afresh).
#[derive(Default)]
pub struct MasterState {
    moves_seen: HashMap<u64, Instant>,
    splits_seen: HashMap<u64, Instant>,
    /// Tablets this master moved for balance, and when.
    moved: HashMap<u64, Instant>,
    garbage_seen: HashMap<u64, Instant>,
    /// Merges in progress (by left tablet), and when first seen.
    merges_seen: HashMap<u64, Instant>,
    /// Pairs small enough to merge, and since when.
    small_pairs: HashMap<(u64, u64), Instant>,
}

/// Runs the master's loop until the leadership is lost; returns why.
pub async fn run(
    etcd: &Etcd,
    cluster: &str,
    master: &Leadership,
    collector: &dyn Collector,
    opts: &MasterOptions,
) -> LeadershipLoss {
    let prefix = format!("/{cluster}/");
    let load_reports = crate::load::load_prefix(cluster);
    let mut changes = etcd.watch_prefix(prefix.as_bytes(), WatchOptions::default());
    let mut state = MasterState::default();
    let mut followed: Option<(TabletMap, TabletFollower)> = None;
    loop {
        // The map as of now: read once, then followed by watch, every
        // revision that has arrived applied (a pass reads no map).
        if followed.is_none() {
            match load(etcd, cluster).await {
                Ok((map, revision)) => {
                    followed = Some((map, TabletFollower::new(etcd, cluster, revision)))
                }
                Err(e) => tracing::warn!("master: reading the tablet map: {e}; trying again"),
            }
        }
        if let Some((map, follower)) = followed.as_mut() {
            let mut ended = false;
            while let Some(next) = follower.apply_next(map).now_or_never() {
                match next {
                    Some(Ok(_)) => {}
                    Some(Err(e)) => {
                        tracing::warn!("master: following the tablet map: {e}; reading it again");
                        ended = true;
                        break;
                    }
                    None => {
                        ended = true;
                        break;
                    }
                }
            }
            if ended {
                followed = None;
                continue;
            }
        }
        let result = match followed.as_mut() {
            Some((map, _)) => pass(etcd, cluster, master, &mut state, opts, map).await,
            None => Err(Error::Protocol("no tablet map yet".into())),
        };
        if let Ok(p) = &result {
            opts.totals.add(p);
        }
        match result {
            Ok(p) if p != Pass::default() => tracing::info!(
                "master pass: {} tablets of lost servers marked recovering, {} tablets assigned, {} moves started, {} finished, {} splits finished, {} abandoned, {} merges started, {} finished, {} abandoned",
                p.marked,
                p.assigned,
                p.moves_started,
                p.moves_finished,
                p.splits_finished,
                p.splits_abandoned,
                p.merges_started,
                p.merges_finished,
                p.merges_abandoned
            ),
            Ok(_) => {}
            Err(Error::NotLeader { .. }) => {}
            Err(e) => tracing::warn!("master pass failed: {e}; trying again"),
        }
        match collect(
            etcd,
            cluster,
            master,
            collector,
            opts.garbage_delay,
            &mut state,
        )
        .await
        {
            Ok(0) => {}
            Ok(n) => tracing::info!("deleted the data of {n} tablets of deleted tables"),
            Err(Error::NotLeader { .. }) => {}
            Err(e) => tracing::warn!("collecting garbage failed: {e}; trying again"),
        }
        if !master.is_leader() {
            return master.lost().await;
        }
        tokio::select! {
            why = master.lost() => return why,
            event = changes.next() => {
                let mut ended = event.is_none();
                let mut relevant = event.as_ref().is_none_or(|e| !is_load_report(e, &load_reports));
                tokio::time::sleep(opts.settle).await;
                // Every change that arrived meanwhile is covered by this
                // one pass (a dead server's recovery writes many txns).
                while let Some(event) = changes.next().now_or_never() {
                    ended |= event.is_none();
                    relevant |= event.as_ref().is_none_or(|e| !is_load_report(e, &load_reports));
                    if event.is_none() {
                        break;
                    }
                }
                if ended {
                    // The watch ended (etcd restarted, history compacted):
                    // a new one from now, and the map read again.
                    changes = etcd.watch_prefix(prefix.as_bytes(), WatchOptions::default());
                    followed = None;
                }
                if !relevant {
                    // Load reports alone (every server's, every 10 s):
                    // the tick's pass balances by them.
                    tokio::select! {
                        why = master.lost() => return why,
                        _ = tokio::time::sleep(opts.tick) => {}
                    }
                }
            }
            _ = tokio::time::sleep(opts.tick) => {}
        }
    }
}

/// Deletes the data of deleted tables' tablets recorded at least
/// `delay` ago (as this master has seen them), and their records.
pub async fn collect(
    etcd: &Etcd,
    cluster: &str,
    master: &Leadership,
    collector: &dyn Collector,
    delay: Duration,
    state: &mut MasterState,
) -> Result<usize> {
    let prefix = crate::schema_store::garbage_prefix(cluster);
    let listing = etcd.get_prefix(prefix.as_bytes()).await?;
    let ids: Vec<u64> = listing
        .kvs
        .iter()
        .filter_map(|kv| {
            std::str::from_utf8(kv.key.strip_prefix(prefix.as_bytes())?)
                .ok()?
                .parse()
                .ok()
        })
        .collect();
    state.garbage_seen.retain(|id, _| ids.contains(id));
    let mut done = 0;
    for id in ids {
        let seen = *state.garbage_seen.entry(id).or_insert_with(Instant::now);
        if seen.elapsed() < delay {
            continue;
        }
        if let Err(e) = collector.delete_tablet(id).await {
            tracing::warn!(
                tablet = id,
                "deleting a deleted tablet's data: {e}; trying again later"
            );
            continue;
        }
        let key = crate::schema_store::garbage_key(cluster, id);
        master
            .txn(Txn::new().and_then([Op::delete(key.as_bytes())]))
            .await?;
        state.garbage_seen.remove(&id);
        done += 1;
    }
    Ok(done)
}

/// Records a pass wrote (and deleted), for the master's copy of the map.
#[derive(Default)]
struct Written {
    removed: Vec<u64>,
    put: Vec<TabletRecord>,
}

impl Written {
    fn apply(&mut self, map: &mut TabletMap) {
        for id in self.removed.drain(..) {
            map.remove(id);
        }
        for r in self.put.drain(..) {
            map.upsert(r);
        }
    }
}

/// Whether a watch event is a server's load report.
fn is_load_report(event: &Result<crate::watch::WatchEvent>, prefix: &str) -> bool {
    event
        .as_ref()
        .is_ok_and(|e| e.kv.key.starts_with(prefix.as_bytes()))
}

/// Applies the records a write of the pass made (if it landed) to the
/// master's copy of the map.
fn apply_written(map: &mut TabletMap, written: Result<Vec<TabletRecord>>) -> Result<()> {
    for r in written? {
        map.upsert(r);
    }
    Ok(())
}

/// How the tablet map names a server: its id and its incarnation (the
/// revision its registration was created at), `id@incarnation`. A server
/// that restarts under the same id is a new owner: what the old one held
/// is recovered, not handed back.
pub fn owner_name(server: &ServerInfo) -> String {
    format!("{}@{}", server.id, server.create_revision)
}

/// One pass over the servers and the tablet map (see the module docs).
/// `map` is the master's copy of the tablet map, followed by watch; the
/// records the pass itself writes are applied to it as they are written.
/// It may lag etcd by a moment: every write is guarded by the record it
/// replaces, so a write made on a stale record fails and the next pass
/// starts from the newer one.
pub async fn pass(
    etcd: &Etcd,
    cluster: &str,
    master: &Leadership,
    state: &mut MasterState,
    opts: &MasterOptions,
    map: &mut TabletMap,
) -> Result<Pass> {
    let mut done = Pass::default();
    let (registered, _) = servers(etcd, cluster).await?;
    let live: BTreeSet<String> = registered.iter().map(owner_name).collect();

    // 1. Tablets of servers that are gone: recovering.
    let lost: Vec<_> = map
        .all()
        .filter_map(|t| {
            let owner = t.owner.as_deref().filter(|o| !live.contains(*o))?;
            (t.state != TabletState::Recovering).then_some((
                t,
                Some(owner),
                TabletState::Recovering,
            ))
        })
        .collect();
    let marked = lost.len();
    let written = reassign_many(master, cluster, &lost, opts.reassign_batch).await;
    apply_written(map, written)?;
    done.marked += marked;
    if live.is_empty() {
        return Ok(done);
    }

    // 2. Owners for every tablet without a live one.
    let plan = assign_orphans(map, &live);
    let given: Vec<_> = plan
        .iter()
        .filter_map(|a| {
            Some((
                map.get(a.tablet)?,
                Some(a.to.as_str()),
                TabletState::Serving,
            ))
        })
        .collect();
    let assigned = given.len();
    let written = reassign_many(master, cluster, &given, opts.reassign_batch).await;
    apply_written(map, written)?;
    done.assigned += assigned;
    if done.assigned > 0 {
        return Ok(done); // balance from the map these made, next pass
    }

    // What steps 3 to 7 write, applied to `map` when each step is done.
    let mut written = Written::default();

    // 3. Splits.
    let splits = crate::splits::load(etcd, cluster).await?;
    state.splits_seen.retain(|id, _| splits.contains_key(id));
    for (&id, split) in &splits {
        let parent = map.get(id).filter(|t| {
            t.epoch == split.epoch
                && t.state == TabletState::Serving
                && t.owner.as_deref().is_some_and(|o| live.contains(o))
        });
        let seen = *state.splits_seen.entry(id).or_insert_with(Instant::now);
        match parent {
            Some(parent) if split.ready => {
                let children =
                    crate::splits::finish(master, cluster, parent, split, parent.owner.as_deref())
                        .await?;
                written.removed.push(parent.id);
                written.put.extend(children);
                done.splits_finished += 1;
                tracing::info!(
                    tablet = id,
                    left = split.children[0],
                    right = split.children[1],
                    "tablet split"
                );
            }
            Some(_) if seen.elapsed() < crate::splits::SPLIT_PREPARE_WAIT => {}
            _ => {
                if crate::splits::abandon(master, cluster, split).await? {
                    done.splits_abandoned += 1;
                    tracing::warn!(
                        tablet = id,
                        "split abandoned (the tablet changed, or it took too long)"
                    );
                }
            }
        }
    }
    written.apply(map);
    if done.splits_finished + done.splits_abandoned > 0 {
        return Ok(done); // the map changed: move and balance from it, next pass
    }

    // 3b. Merges.
    let merges = crate::merges::load(etcd, cluster).await?;
    state.merges_seen.retain(|id, _| merges.contains_key(id));
    for (&id, rec) in &merges {
        let on = match (map.get(rec.left.0), map.get(rec.right.0)) {
            (Some(l), Some(r)) if rec.still_on(l, r) && live.contains(&rec.owner) => Some((l, r)),
            _ => None,
        };
        let seen = *state.merges_seen.entry(id).or_insert_with(Instant::now);
        match on {
            Some((l, r)) if rec.ready => {
                let m = crate::merges::finish(master, cluster, l, r, rec).await?;
                written.removed.extend([l.id, r.id]);
                written.put.push(m.clone());
                done.merges_finished += 1;
                tracing::info!(left = l.id, right = r.id, merged = m.id, "tablets merged");
            }
            Some(_) if seen.elapsed() < crate::merges::MERGE_PREPARE_WAIT => {}
            _ => {
                if crate::merges::abandon(master, cluster, rec).await? {
                    done.merges_abandoned += 1;
                    tracing::warn!(
                        left = rec.left.0,
                        right = rec.right.0,
                        "merge abandoned (a tablet changed, or it took too long)"
                    );
                }
            }
        }
    }
    written.apply(map);
    if done.merges_finished + done.merges_abandoned > 0 {
        return Ok(done);
    }
    let merging: BTreeSet<u64> = merges
        .values()
        .flat_map(|m| [m.left.0, m.right.0])
        .collect();

    // 4. Moves whose source has let go.
    let moves = load_moves(etcd, cluster).await?;
    let released = load_released(etcd, cluster).await?;
    state.moves_seen.retain(|id, _| moves.contains_key(id));
    let mut in_progress = 0;
    for (&id, to) in &moves {
        let Some(t) = map.get(id).filter(|t| t.state == TabletState::Moving) else {
            // Abandoned (its source died and it was recovered) or gone.
            forget(master, cluster, id).await?;
            continue;
        };
        let seen = *state.moves_seen.entry(id).or_insert_with(Instant::now);
        let let_go = released.get(&id) == Some(&t.epoch);
        if !let_go && seen.elapsed() < MOVE_RELEASE_WAIT {
            in_progress += 1;
            continue;
        }
        if !let_go {
            tracing::warn!(
                tablet = id,
                "the source of a move did not release the tablet within {MOVE_RELEASE_WAIT:?}; moving it anyway (the target's open fences the source)"
            );
        }
        // The target, or if it is gone the least loaded other server.
        let target = if live.contains(to) {
            Some(to.clone())
        } else {
            live.iter()
                .find(|s| Some(s.as_str()) != t.owner.as_deref())
                .cloned()
        };
        let Some(target) = target else { continue };
        written
            .put
            .push(finish_move(master, cluster, t, &target).await?);
        state.moves_seen.remove(&id);
        done.moves_finished += 1;
    }
    written.apply(map);
    if in_progress > 0 || done.moves_finished > 0 {
        return Ok(done);
    }

    // 5. Balance (never a tablet splitting, nor one moved a moment ago):
    // by the servers' load reports once every live server has reported
    // (a partial picture would move tablets toward the silent ones), else
    // by count.
    let reports = crate::load::load_all(etcd, cluster).await?;
    let loads = &reports.tablets;
    state.moved.retain(|_, at| at.elapsed() < MOVE_COOLDOWN);
    let plan = if !live.iter().all(|o| reports.owners.contains(o)) {
        balance(map, &live, MOVES_PER_PASS)
    } else {
        let fixed: BTreeSet<u64> = splits
            .keys()
            .chain(state.moved.keys())
            .chain(&merging)
            .copied()
            .collect();
        balance_by_load(map, &live, loads, &fixed, MOVES_PER_PASS)
    };
    for a in plan {
        let Some(t) = map.get(a.tablet) else { continue };
        if t.state != TabletState::Serving || splits.contains_key(&t.id) || merging.contains(&t.id)
        {
            continue;
        }
        written
            .put
            .push(begin_move(master, cluster, t, &a.to).await?);
        state.moved.insert(t.id, Instant::now());
        done.moves_started += 1;
    }
    written.apply(map);
    if done.moves_started > 0 || !live.iter().all(|o| reports.owners.contains(o)) {
        return Ok(done);
    }

    // 7. Merges of small neighbours that have stayed small: on one
    // server, recorded; on two, the right one moves to the left's server
    // first (the merge follows on a later pass).
    let fixed: BTreeSet<u64> = splits.keys().chain(&merging).copied().collect();
    let pairs = crate::merges::candidates(map, loads, opts.merge_size_bytes, &fixed);
    state.small_pairs.retain(|(l, r), _| {
        pairs.contains(&(*l, *r))
            || [l, r].iter().any(|id| {
                map.get(**id)
                    .is_some_and(|t| t.state == TabletState::Moving)
            })
    });
    for (l, r) in pairs {
        let since = *state.small_pairs.entry((l, r)).or_insert_with(Instant::now);
        if since.elapsed() < opts.merge_delay
            || done.merges_started + done.moves_started >= crate::merges::MERGES_PER_PASS
        {
            continue;
        }
        let (Some(left), Some(right)) = (map.get(l), map.get(r)) else {
            continue;
        };
        if left.owner != right.owner {
            let Some(to) = left.owner.as_deref() else {
                continue;
            };
            written
                .put
                .push(begin_move(master, cluster, right, to).await?);
            // Neither is moved for balance meanwhile.
            state.moved.insert(l, Instant::now());
            state.moved.insert(r, Instant::now());
            done.moves_started += 1;
            tracing::info!(
                tablet = r,
                "moving tablet to {to} to merge it with its neighbour {l}"
            );
            continue;
        }
        let merged = crate::tablet_store::allocate_ids(etcd, cluster, 1).await?;
        match crate::merges::begin(master, cluster, left, right, merged).await {
            Ok(_) => {
                done.merges_started += 1;
                state.small_pairs.remove(&(l, r));
                tracing::info!(left = l, right = r, merged, "merging tablets");
            }
            // Changed since read (a split began): the next pass sees it.
            Err(Error::Conflict(e)) => tracing::debug!("merge not begun: {e}"),
            Err(e) => return Err(e),
        }
    }
    written.apply(map);
    Ok(done)
}
