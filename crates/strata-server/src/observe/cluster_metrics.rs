//! A cluster server's view of its cluster as gauges, read at each scrape:
//! the servers registered, the tablets by state and by server, and whether
//! this server is the master. Every server reports the same map (as its
//! watch has it), so dashboards take the `max` over servers, not the sum.

use std::sync::Arc;

use parking_lot::RwLock;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::metrics::MetricType;

use super::engine_metrics::{put, Sample};
use super::ClusterFacts;

/// The cluster facts, once the server has joined.
pub(crate) type ClusterSlot = Arc<RwLock<Option<Arc<dyn ClusterFacts>>>>;

pub(crate) struct ClusterCollector(pub(crate) ClusterSlot);

impl std::fmt::Debug for ClusterCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClusterCollector")
    }
}

/// Tablet states as the tablet map names them.
const STATES: [&str; 4] = ["serving", "moving", "recovering", "unassigned"];

impl Collector for ClusterCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Some(facts) = self.0.read().clone() else {
            return Ok(());
        };
        let c = facts.cluster_status();
        use MetricType::Gauge as G;
        put(
            &mut enc,
            "strata_cluster_servers",
            "Servers registered in the cluster, as this server's view has them",
            None,
            G,
            &[(vec![], c.servers.len() as f64)],
        )?;
        let mut by_state = [0usize; STATES.len()];
        for t in c.tables.iter().flat_map(|t| &t.tablets) {
            if let Some(i) = STATES.iter().position(|s| *s == t.state) {
                by_state[i] += 1;
            }
        }
        // Tablets past the status's per-table listing limit are counted by
        // table only; add them as serving would be a guess: they are left
        // out of the states and in the total.
        let total: usize = c.tables.iter().map(|t| t.tablet_count).sum();
        let mut states: Vec<Sample> = STATES
            .iter()
            .zip(by_state)
            .map(|(s, n)| (vec![("state", *s)], n as f64))
            .collect();
        states.push((vec![("state", "all")], total as f64));
        put(
            &mut enc,
            "strata_cluster_tablets",
            "Tablets in the cluster's tablet map, by state (`all`: every tablet)",
            None,
            G,
            &states,
        )?;
        let per_server: Vec<Sample> = c
            .servers
            .iter()
            .map(|s| (vec![("server", s.owner.as_str())], s.tablets as f64))
            .collect();
        put(
            &mut enc,
            "strata_cluster_server_tablets",
            "Tablets the tablet map gives each server (`id@incarnation`)",
            None,
            G,
            &per_server,
        )?;
        put(
            &mut enc,
            "strata_cluster_master",
            "1 while this server is the cluster's master, else 0",
            None,
            G,
            &[(vec![], f64::from(u8::from(c.is_master)))],
        )?;
        let changes: Vec<Sample> = c
            .master_changes
            .iter()
            .map(|(action, n)| (vec![("action", action.as_str())], *n as f64))
            .collect();
        put(
            &mut enc,
            "strata_cluster_master_changes",
            "Changes this server made to the tablet map as master, by action (marked_recovering: a lost server's tablets; assigned; move_, split_ and merge_ started, finished, abandoned)",
            None,
            MetricType::Counter,
            &changes,
        )
    }
}
