//! The master's assignment policy: which live server gets each tablet that
//! has none, and which tablets move to even out the load. Pure functions of
//! the tablet map and the live servers; the master carries the plans out
//! (docs/cluster.md, "Moves" and "Failover").
//!
//! Load is counted in tablets ([`balance`]) until the servers report their
//! tablets' sizes and request rates (`load`); then each tablet weighs its
//! share of the cluster's tablets, bytes and requests
//! ([`balance_by_load`]).

use std::collections::{BTreeMap, BTreeSet};

use crate::load::TabletLoad;
use crate::tablet_map::{TabletMap, TabletState};

/// Servers differing in load by less than this share of the mean server
/// load are left as they are (no churn over small differences).
pub const BALANCE_TOLERANCE: f64 = 0.25;

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

/// Each serving tablet of a live server, weighed: the mean of its share of
/// those tablets, of their bytes and of their requests (the last two only
/// when some tablet has any; a tablet `loads` lacks counts at the mean of
/// those it has). The weights sum to 1.
fn weights(
    map: &TabletMap,
    live: &BTreeSet<String>,
    loads: &BTreeMap<u64, TabletLoad>,
) -> BTreeMap<u64, f64> {
    let served: Vec<u64> = map
        .all()
        .filter(|t| t.owner.as_ref().is_some_and(|o| live.contains(o)))
        .map(|t| t.id)
        .collect();
    // A tablet no report lists (opened since its server's last report)
    // counts at the mean of those listed.
    let listed: Vec<&TabletLoad> = served.iter().filter_map(|id| loads.get(id)).collect();
    let mean = if listed.is_empty() {
        TabletLoad::default()
    } else {
        TabletLoad {
            size_bytes: listed.iter().map(|l| l.size_bytes).sum::<u64>() / listed.len() as u64,
            requests_per_sec: listed.iter().map(|l| l.requests_per_sec).sum::<f64>()
                / listed.len() as f64,
        }
    };
    let load_of = |id: &u64| loads.get(id).copied().unwrap_or(mean);
    let size_total: u64 = served.iter().map(|id| load_of(id).size_bytes).sum();
    let rate_total: f64 = served.iter().map(|id| load_of(id).requests_per_sec).sum();
    let terms = 1.0 + f64::from(u8::from(size_total > 0)) + f64::from(u8::from(rate_total > 0.0));
    let n = served.len() as f64;
    served
        .iter()
        .map(|id| {
            let l = load_of(id);
            let mut w = 1.0 / n;
            if size_total > 0 {
                w += l.size_bytes as f64 / size_total as f64;
            }
            if rate_total > 0.0 {
                w += l.requests_per_sec / rate_total;
            }
            (*id, w / terms)
        })
        .collect()
}

/// Moves, at most `moves_max`, evening out the servers' load by
/// [`weights`]: from the heaviest live server to the lightest, the
/// serving tablet (not in `fixed`: splitting, or moved a moment ago) that
/// narrows their gap the most, while the gap exceeds
/// [`BALANCE_TOLERANCE`] of the mean server load. A tablet heavier than
/// the gap stays (moving it would only turn the imbalance around; a split
/// is its owner's remedy).
pub fn balance_by_load(
    map: &TabletMap,
    live: &BTreeSet<String>,
    loads: &BTreeMap<u64, TabletLoad>,
    fixed: &BTreeSet<u64>,
    moves_max: usize,
) -> Vec<Assignment> {
    if live.len() < 2 {
        return Vec::new();
    }
    let weight = weights(map, live, loads);
    let mut per_server: BTreeMap<&str, f64> = live.iter().map(|s| (s.as_str(), 0.0)).collect();
    let mut movable: BTreeMap<&str, Vec<(u64, f64)>> = BTreeMap::new();
    for t in map.all() {
        let (Some(o), Some(&w)) = (t.owner.as_deref(), weight.get(&t.id)) else {
            continue;
        };
        let Some(load) = per_server.get_mut(o) else {
            continue;
        };
        *load += w;
        if t.state == TabletState::Serving && !fixed.contains(&t.id) {
            movable.entry(o).or_default().push((t.id, w));
        }
    }
    let tolerance = BALANCE_TOLERANCE / live.len() as f64;
    let mut plan = Vec::new();
    while plan.len() < moves_max {
        let by_load = |a: &(&&str, &f64), b: &(&&str, &f64)| a.1.total_cmp(b.1).then(b.0.cmp(a.0));
        let (Some((&heavy, &high)), Some((&light, &low))) = (
            per_server.iter().max_by(by_load),
            per_server.iter().min_by(by_load),
        ) else {
            break;
        };
        let gap = high - low;
        if gap <= tolerance {
            break;
        }
        let Some(candidates) = movable.get_mut(heavy) else {
            break;
        };
        let best = candidates
            .iter()
            .enumerate()
            .filter(|(_, (_, w))| *w < gap)
            .min_by(|a, b| {
                let off = |w: f64| (gap - 2.0 * w).abs();
                off(a.1 .1)
                    .total_cmp(&off(b.1 .1))
                    .then(a.1 .0.cmp(&b.1 .0))
            })
            .map(|(i, _)| i);
        let Some(i) = best else { break };
        let (tablet, w) = candidates.swap_remove(i);
        *per_server.entry(heavy).or_default() -= w;
        *per_server.entry(light).or_default() += w;
        plan.push(Assignment {
            tablet,
            from: Some(heavy.to_string()),
            to: light.to_string(),
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

    /// A small deterministic generator: `next(n)` in `0..n`.
    fn xorshift(seed: u64) -> impl FnMut(u64) -> u64 {
        let mut x = seed;
        move |n| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % n
        }
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
        let mut next = xorshift(0x2545_F491_4F6C_DD1D);
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

    fn sized(sizes: &[(u64, u64)]) -> BTreeMap<u64, TabletLoad> {
        sizes
            .iter()
            .map(|&(id, size_bytes)| {
                (
                    id,
                    TabletLoad {
                        size_bytes,
                        requests_per_sec: 0.0,
                    },
                )
            })
            .collect()
    }

    #[test]
    fn load_balancing_moves_what_narrows_the_gap() {
        // a: one huge tablet and a small one; b: two small ones. Counts
        // are even; bytes are not. The small tablet of a moves; the huge
        // one stays (moving it would turn the imbalance around).
        let m = map_of(&[Some("a"), Some("a"), Some("b"), Some("b")]);
        let servers = live(&["a", "b"]);
        let loads = sized(&[(1, 1000), (2, 10), (3, 10), (4, 10)]);
        let plan = balance_by_load(&m, &servers, &loads, &BTreeSet::new(), 10);
        assert_eq!(
            plan,
            vec![Assignment {
                tablet: 2,
                from: Some("a".into()),
                to: "b".into()
            }]
        );
        let mut m2 = m.clone();
        apply(&mut m2, &plan);
        assert!(balance_by_load(&m2, &servers, &loads, &BTreeSet::new(), 10).is_empty());
        // Fixed tablets stay.
        assert!(balance_by_load(&m, &servers, &loads, &BTreeSet::from([2]), 10).is_empty());
    }

    #[test]
    fn request_rates_count_as_much_as_bytes() {
        // Equal bytes and counts, but a's first tablet takes every
        // request: a's other tablet moves to b.
        let m = map_of(&[Some("a"), Some("a"), Some("b"), Some("b")]);
        let servers = live(&["a", "b"]);
        let mut loads = sized(&[(1, 100), (2, 100), (3, 100), (4, 100)]);
        loads.get_mut(&1).unwrap().requests_per_sec = 1000.0;
        let plan = balance_by_load(&m, &servers, &loads, &BTreeSet::new(), 10);
        assert_eq!(
            plan,
            vec![Assignment {
                tablet: 2,
                from: Some("a".into()),
                to: "b".into()
            }]
        );
        // Within the tolerance: nothing moves.
        let even = sized(&[(1, 100), (2, 110), (3, 100), (4, 95)]);
        assert!(balance_by_load(&m, &servers, &even, &BTreeSet::new(), 10).is_empty());
    }

    /// Random loads: every plan narrows the gap between the heaviest and
    /// the lightest server, and a second plan on its result is no larger
    /// than the first (it converges).
    #[test]
    fn randomized_load_plans_narrow_the_gap() {
        let mut next = xorshift(0x9E37_79B9_7F4A_7C15);
        let names = ["a", "b", "c"];
        for _ in 0..200 {
            let n = 2 + next(20) as usize;
            let owners: Vec<Option<&str>> = (0..n).map(|_| Some(names[next(3) as usize])).collect();
            let m = map_of(&owners);
            let servers = live(&names);
            let loads: BTreeMap<u64, TabletLoad> = (1..=n as u64)
                .map(|id| {
                    (
                        id,
                        TabletLoad {
                            size_bytes: next(1 << 30),
                            requests_per_sec: next(1000) as f64,
                        },
                    )
                })
                .collect();
            let spread = |m: &TabletMap| {
                let w = weights(m, &servers, &loads);
                let mut per: BTreeMap<String, f64> =
                    names.iter().map(|s| (s.to_string(), 0.0)).collect();
                for t in m.all() {
                    *per.get_mut(t.owner.as_deref().unwrap()).unwrap() += w[&t.id];
                }
                let v: Vec<f64> = per.into_values().collect();
                v.iter().cloned().fold(f64::MIN, f64::max)
                    - v.iter().cloned().fold(f64::MAX, f64::min)
            };
            let before = spread(&m);
            let plan = balance_by_load(&m, &servers, &loads, &BTreeSet::new(), usize::MAX);
            let mut after_map = m.clone();
            apply(&mut after_map, &plan);
            let after = spread(&after_map);
            assert!(
                plan.is_empty() || after < before + 1e-9,
                "{before} -> {after}"
            );
        }
    }
}
