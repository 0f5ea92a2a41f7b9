//! The master's assignment policy: which live server gets each tablet that
//! has none, and which tablets move to even out the load. Pure functions of
//! the tablet map and the live servers; the master carries the plans out
//! (docs/cluster.md, "Moves" and "Failover").
//!
//! Load is counted in tablets for now; sizes and request rates come with
//! the load balancer.

use std::collections::{BTreeMap, BTreeSet};

use crate::tablet_map::TabletMap;

/// Give `tablet` to `to`. `from`: its current owner, if it has one (a dead
/// server's tablet is recovered from that owner's log first; a live one's
/// is moved).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Assignment {
    pub tablet: u64,
    pub from: Option<String>,
    pub to: String,
}

/// Tablets per live server, counting only tablets owned by live servers.
fn loads<'a>(map: &'a TabletMap, live: &'a BTreeSet<String>) -> BTreeMap<&'a str, usize> {
    let mut loads: BTreeMap<&str, usize> = live.iter().map(|s| (s.as_str(), 0)).collect();
    for t in map.all() {
        if let Some(n) = t.owner.as_deref().and_then(|o| loads.get_mut(o)) {
            *n += 1;
        }
    }
    loads
}

/// The least loaded server (ties: the first by name).
fn least_loaded<'a>(loads: &BTreeMap<&'a str, usize>) -> Option<&'a str> {
    loads
        .iter()
        .min_by_key(|(name, n)| (**n, **name))
        .map(|(name, _)| *name)
}

/// An owner for every tablet without a live one: unassigned tablets, and
/// those of servers not in `live` (dead). Each goes to the server with the
/// fewest tablets at that point of the plan. Empty if no server is live.
pub fn assign_orphans(map: &TabletMap, live: &BTreeSet<String>) -> Vec<Assignment> {
    let mut loads = loads(map, live);
    let mut plan = Vec::new();
    for t in map.all() {
        if t.owner.as_ref().is_some_and(|o| live.contains(o)) {
            continue;
        }
        let Some(to) = least_loaded(&loads) else {
            return Vec::new();
        };
        *loads.entry(to).or_default() += 1;
        plan.push(Assignment {
            tablet: t.id,
            from: t.owner.clone(),
            to: to.to_string(),
        });
    }
    plan
}

/// Moves, at most `moves_max`, from the most loaded live server to the
/// least loaded while they differ by more than one tablet. Tablets whose
/// owner is not live are left to [`assign_orphans`].
pub fn balance(map: &TabletMap, live: &BTreeSet<String>, moves_max: usize) -> Vec<Assignment> {
    let mut loads = loads(map, live);
    // Each server's movable tablets, last first (the highest ids: usually
    // the newest halves of splits).
    let mut owned: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
    for t in map.all() {
        if let Some(o) = t.owner.as_deref().filter(|o| live.contains(*o)) {
            owned.entry(o).or_default().push(t.id);
        }
    }
    for ids in owned.values_mut() {
        ids.sort_unstable();
    }
    let mut plan = Vec::new();
    while plan.len() < moves_max {
        let Some((&busiest, &most)) = loads
            .iter()
            .max_by_key(|(name, n)| (**n, std::cmp::Reverse(**name)))
        else {
            break;
        };
        let Some(idlest) = least_loaded(&loads) else {
            break;
        };
        if most <= loads[idlest] + 1 {
            break;
        }
        let Some(tablet) = owned.get_mut(busiest).and_then(Vec::pop) else {
            break;
        };
        *loads.entry(busiest).or_default() -= 1;
        *loads.entry(idlest).or_default() += 1;
        plan.push(Assignment {
            tablet,
            from: Some(busiest.to_string()),
            to: idlest.to_string(),
        });
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tablet_map::{TabletRecord, TabletState};

    fn map_of(owners: &[Option<&str>]) -> TabletMap {
        let mut m = TabletMap::default();
        let n = owners.len();
        for (i, owner) in owners.iter().enumerate() {
            let start = if i == 0 { vec![] } else { vec![i as u8] };
            let end = (i + 1 < n).then(|| vec![i as u8 + 1]);
            m.upsert(TabletRecord {
                table: "t".into(),
                id: i as u64 + 1,
                start,
                end,
                owner: owner.map(str::to_string),
                epoch: 1,
                state: if owner.is_some() {
                    TabletState::Serving
                } else {
                    TabletState::Unassigned
                },
            });
        }
        m.check().unwrap();
        m
    }

    fn live(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    fn apply(map: &mut TabletMap, plan: &[Assignment]) {
        for a in plan {
            let mut t = map.get(a.tablet).unwrap().clone();
            assert_eq!(t.owner, a.from, "plan starts from the map");
            t.owner = Some(a.to.clone());
            t.state = TabletState::Serving;
            t.epoch += 1;
            map.upsert(t);
        }
    }

    fn counts(map: &TabletMap) -> BTreeMap<String, usize> {
        let mut c = BTreeMap::new();
        for t in map.all() {
            *c.entry(t.owner.clone().unwrap_or_default()).or_default() += 1;
        }
        c
    }

    #[test]
    fn orphans_go_to_the_least_loaded_live_servers() {
        let mut m = map_of(&[None, Some("a"), Some("dead"), Some("dead"), None, Some("a")]);
        let servers = live(&["a", "b", "c"]);
        let plan = assign_orphans(&m, &servers);
        assert_eq!(plan.len(), 4, "two unassigned, two of the dead server");
        assert!(plan.iter().all(|a| a.to != "a"), "a already has two");
        apply(&mut m, &plan);
        assert_eq!(
            counts(&m),
            BTreeMap::from([("a".into(), 2), ("b".into(), 2), ("c".into(), 2)])
        );
        assert!(assign_orphans(&m, &servers).is_empty());
        assert!(assign_orphans(&m, &live(&[])).is_empty());
    }

    #[test]
    fn balancing_evens_counts_within_one_and_respects_the_bound() {
        let mut m = map_of(&[Some("a"); 7]);
        let servers = live(&["a", "b", "c"]);
        assert_eq!(balance(&m, &servers, 2).len(), 2);
        let plan = balance(&m, &servers, 100);
        apply(&mut m, &plan);
        let c = counts(&m);
        let (min, max) = (c.values().min().unwrap(), c.values().max().unwrap());
        assert!(max - min <= 1, "{c:?}");
        assert!(balance(&m, &servers, 100).is_empty(), "balanced is stable");
    }

    /// Random maps and server sets: orphans then balance leave every
    /// tablet on a live server, counts within one.
    #[test]
    fn randomized_plans_converge() {
        let mut x: u64 = 0x2545_F491_4F6C_DD1D;
        let mut next = |n: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % n
        };
        let names = ["a", "b", "c", "d", "e"];
        for _ in 0..200 {
            let tablets = 1 + next(40) as usize;
            let owners: Vec<Option<&str>> = (0..tablets)
                .map(|_| match next(7) {
                    5 => None,
                    6 => Some("gone"),
                    i => Some(names[i as usize % names.len()]),
                })
                .collect();
            let mut m = map_of(&owners);
            let servers: BTreeSet<String> = names
                .iter()
                .filter(|_| next(3) != 0)
                .map(|s| s.to_string())
                .collect();
            if servers.is_empty() {
                continue;
            }
            let plan = assign_orphans(&m, &servers);
            apply(&mut m, &plan);
            let plan = balance(&m, &servers, usize::MAX);
            apply(&mut m, &plan);
            let c = counts(&m);
            assert!(c.keys().all(|o| servers.contains(o)), "{c:?}");
            let mut per: Vec<usize> = servers
                .iter()
                .map(|s| c.get(s).copied().unwrap_or(0))
                .collect();
            per.sort_unstable();
            assert!(per[per.len() - 1] - per[0] <= 1, "{per:?}");
        }
    }
}
