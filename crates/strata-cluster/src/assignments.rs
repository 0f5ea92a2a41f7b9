//! A tablet server's view of its assignments: the tablet map followed from
//! etcd, and what changed for this server after each change: tablets to
//! open (assigned to it, `serving`, at an epoch it does not hold yet) and
//! tablets to close (no longer its own at the epoch it holds). The server
//! acts on these; the map also routes its forwarded requests
//! (docs/cluster.md, "Serving a tablet").
//!
//! A server never serves a tablet at an epoch other than the map's: when
//! the epoch of a tablet it holds changes, the tablet is closed and, if it
//! is still this server's, opened again at the new epoch.

use std::collections::BTreeMap;

use crate::client::Etcd;
use crate::error::Result;
use crate::tablet_map::{TabletMap, TabletRecord, TabletState};
use crate::tablet_store::{load, TabletFollower};

/// One thing a server must do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// Start serving this tablet at its epoch.
    Open(TabletRecord),
    /// Stop serving tablet `id` (held at `epoch`).
    Close { id: u64, epoch: u64 },
}

/// What `owner` should hold in `map`: its serving tablets and their epochs.
pub fn wanted(map: &TabletMap, owner: &str) -> BTreeMap<u64, u64> {
    map.all()
        .filter(|t| t.state == TabletState::Serving && t.owner.as_deref() == Some(owner))
        .map(|t| (t.id, t.epoch))
        .collect()
}

/// The changes that take a server holding `held` to `want`: closes first,
/// then opens, each in id order.
pub fn diff(map: &TabletMap, held: &BTreeMap<u64, u64>, want: &BTreeMap<u64, u64>) -> Vec<Change> {
    let closes = held
        .iter()
        .filter(|(id, epoch)| want.get(id) != Some(epoch))
        .map(|(&id, &epoch)| Change::Close { id, epoch });
    let opens = want
        .iter()
        .filter(|(id, epoch)| held.get(id) != Some(epoch))
        .filter_map(|(id, _)| map.get(*id).cloned().map(Change::Open));
    closes.chain(opens).collect()
}

/// A server's assignments, kept up to date.
pub struct Assignments {
    owner: String,
    map: TabletMap,
    follower: TabletFollower,
    /// What the server holds, as far as this view has told it.
    held: BTreeMap<u64, u64>,
}

impl Assignments {
    /// Reads the map for `owner` (its `master::owner_name`); returns the
    /// view and the tablets to open now.
    pub async fn start(
        etcd: &Etcd,
        cluster: &str,
        owner: &str,
    ) -> Result<(Assignments, Vec<Change>)> {
        let (map, revision) = load(etcd, cluster).await?;
        let mut view = Assignments {
            owner: owner.to_string(),
            map,
            follower: TabletFollower::new(etcd, cluster, revision),
            held: BTreeMap::new(),
        };
        let changes = view.settle();
        Ok((view, changes))
    }

    /// Waits for the next change of the map; returns what this server must
    /// do about it (often nothing). `None`: the watch ended; the server
    /// must stop serving (it cannot know its assignments) and start over.
    pub async fn next(&mut self) -> Option<Result<Vec<Change>>> {
        match self.follower.apply_next(&mut self.map).await? {
            Ok(_) => Some(Ok(self.settle())),
            Err(e) => Some(Err(e)),
        }
    }

    /// The map as of the last change (for routing).
    pub fn map(&self) -> &TabletMap {
        &self.map
    }

    /// The tablets this server holds and their epochs.
    pub fn held(&self) -> &BTreeMap<u64, u64> {
        &self.held
    }

    /// The revision of the last change applied.
    pub fn revision(&self) -> i64 {
        self.follower.revision
    }

    fn settle(&mut self) -> Vec<Change> {
        let want = wanted(&self.map, &self.owner);
        let changes = diff(&self.map, &self.held, &want);
        self.held = want;
        changes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(id: u64, owner: Option<&str>, epoch: u64, state: TabletState) -> TabletRecord {
        TabletRecord {
            table: "t".into(),
            id,
            start: if id == 1 { vec![] } else { vec![id as u8] },
            end: None,
            owner: owner.map(str::to_string),
            epoch,
            state,
        }
    }

    #[test]
    fn changes_follow_owner_epoch_and_state() {
        let mut map = TabletMap::default();
        map.upsert(rec(1, Some("me"), 1, TabletState::Serving));
        map.upsert(rec(2, Some("other"), 1, TabletState::Serving));
        map.upsert(rec(3, Some("me"), 4, TabletState::Recovering));
        map.upsert(rec(4, None, 0, TabletState::Unassigned));
        let held = BTreeMap::new();
        let want = wanted(&map, "me");
        assert_eq!(want, BTreeMap::from([(1, 1)]));
        assert_eq!(
            diff(&map, &held, &want),
            vec![Change::Open(map.get(1).unwrap().clone())]
        );

        // Tablet 1 moves away; 2 comes here; 1's epoch change alone would
        // also close it.
        let held = want;
        map.upsert(rec(1, Some("other"), 2, TabletState::Serving));
        map.upsert(rec(2, Some("me"), 2, TabletState::Serving));
        let want = wanted(&map, "me");
        assert_eq!(
            diff(&map, &held, &want),
            vec![
                Change::Close { id: 1, epoch: 1 },
                Change::Open(map.get(2).unwrap().clone())
            ]
        );
        // Reassigned to the same server at a new epoch: closed and opened.
        let held = want;
        map.upsert(rec(2, Some("me"), 3, TabletState::Serving));
        let want = wanted(&map, "me");
        assert_eq!(
            diff(&map, &held, &want),
            vec![
                Change::Close { id: 2, epoch: 2 },
                Change::Open(map.get(2).unwrap().clone())
            ]
        );
        assert!(diff(&map, &want, &want).is_empty());
    }
}
