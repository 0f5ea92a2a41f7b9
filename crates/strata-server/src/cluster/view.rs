//! What a cluster server knows of the cluster, kept up to date by watches
//! (`node`): the tablet map, the servers' addresses, the table schemas,
//! and this server's own incarnation and lease. Requests read it to route.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::RwLock;
use strata_cluster::schema_store::TableSchema;
use strata_cluster::tablet_map::{TabletMap, TabletRecord, TabletState};
use strata_cluster::Lease;
use tokio::sync::Notify;

/// This server's current incarnation.
#[derive(Clone)]
pub struct Incarnation {
    /// Its owner name in the tablet map (`id@revision`).
    pub owner: String,
    pub lease: Lease,
}

#[derive(Default)]
pub struct View {
    map: RwLock<Arc<TabletMap>>,
    /// Owner name (`id@incarnation`) to advertised address.
    servers: RwLock<HashMap<String, String>>,
    schemas: RwLock<HashMap<String, TableSchema>>,
    me: RwLock<Option<Incarnation>>,
    /// The master's term while this server is the master.
    master_term: RwLock<Option<i64>>,
    /// The master as etcd last said (owner name and term), polled.
    master: RwLock<Option<(String, i64)>>,
    /// Woken at every change of the map, the servers or the schemas.
    changed: Notify,
}

/// Where a tablet is served, as far as this view knows.
pub enum Placement {
    /// Serving on the server with this owner name and address.
    Serving { owner: String, addr: String },
    /// Not served right now (unassigned, moving, recovering, or its owner
    /// is not known yet): retry after the next change.
    Unavailable(String),
}

impl View {
    pub fn map(&self) -> Arc<TabletMap> {
        self.map.read().clone()
    }

    pub fn set_map(&self, map: TabletMap) {
        *self.map.write() = Arc::new(map);
        self.changed.notify_waiters();
    }

    pub fn set_servers(&self, servers: HashMap<String, String>) {
        *self.servers.write() = servers;
        self.changed.notify_waiters();
    }

    /// Whether the view has `table`'s schema (no copy of it).
    pub fn has_schema(&self, table: &str) -> bool {
        self.schemas.read().contains_key(table)
    }

    /// Records a schema unless the view has a newer one.
    pub fn put_schema(&self, s: TableSchema) {
        let mut schemas = self.schemas.write();
        let newer = schemas
            .get(&s.table)
            .is_some_and(|old| old.mod_revision > s.mod_revision);
        if !newer {
            schemas.insert(s.table.clone(), s);
        }
        drop(schemas);
        self.changed.notify_waiters();
    }

    pub fn remove_schema(&self, table: &str) {
        self.schemas.write().remove(table);
        self.changed.notify_waiters();
    }

    pub fn replace_schemas(&self, all: Vec<TableSchema>) {
        *self.schemas.write() = all.into_iter().map(|s| (s.table.clone(), s)).collect();
        self.changed.notify_waiters();
    }

    pub fn set_me(&self, me: Option<Incarnation>) {
        *self.me.write() = me;
        self.changed.notify_waiters();
    }

    pub fn me(&self) -> Option<Incarnation> {
        self.me.read().clone()
    }

    /// Whether `owner` names this server's current incarnation.
    pub fn is_me(&self, owner: &str) -> bool {
        self.me.read().as_ref().is_some_and(|m| m.owner == owner)
    }

    /// Whether this server may serve its tablets now: it has an
    /// incarnation whose lease is held at this instant.
    pub fn serving(&self) -> bool {
        self.me.read().as_ref().is_some_and(|m| m.lease.held_now())
    }

    /// Waits for the next change (or `timeout`).
    pub async fn changed(&self, timeout: std::time::Duration) {
        let _ = tokio::time::timeout(timeout, self.changed.notified()).await;
    }

    /// Where `tablet` is served.
    pub fn placement(&self, tablet: &TabletRecord) -> Placement {
        let (Some(owner), TabletState::Serving) = (&tablet.owner, tablet.state) else {
            return Placement::Unavailable(format!(
                "tablet {} of {} is {}",
                tablet.id,
                tablet.table,
                tablet.state.name()
            ));
        };
        match self.servers.read().get(owner) {
            Some(addr) => Placement::Serving {
                owner: owner.clone(),
                addr: addr.clone(),
            },
            None => Placement::Unavailable(format!(
                "tablet {} of {}: its server {owner} is not registered",
                tablet.id, tablet.table
            )),
        }
    }
}

impl View {
    pub fn set_master_term(&self, term: Option<i64>) {
        *self.master_term.write() = term;
    }

    /// The master as etcd says (owner name and term), for the status.
    pub fn set_master(&self, master: Option<(String, i64)>) {
        *self.master.write() = master;
    }

    /// The view as the status page shows it: this server, the servers
    /// with the tablets the map gives each, and every table's tablets (at
    /// most `TABLETS_SHOWN_MAX` each).
    pub fn cluster_status(&self) -> crate::observe::ClusterStatus {
        use crate::observe::{
            row_text, ClusterStatus, ClusterTableStatus, ClusterTabletStatus, ServerStatus,
            TABLETS_SHOWN_MAX,
        };
        let map = self.map();
        let mut per_owner: HashMap<&str, usize> = HashMap::new();
        let mut tables: Vec<ClusterTableStatus> = Vec::new();
        for t in map.all() {
            if let Some(o) = &t.owner {
                *per_owner.entry(o.as_str()).or_default() += 1;
            }
            if tables.last().is_none_or(|l| l.name != t.table) {
                tables.push(ClusterTableStatus {
                    name: t.table.clone(),
                    tablet_count: 0,
                    tablets: Vec::new(),
                });
            }
            let Some(table) = tables.last_mut() else {
                continue;
            };
            table.tablet_count += 1;
            if table.tablets.len() < TABLETS_SHOWN_MAX {
                table.tablets.push(ClusterTabletStatus {
                    id: t.id,
                    start_row: row_text(&t.start),
                    end_row: t.end.as_deref().map(row_text),
                    owner: t.owner.clone(),
                    state: t.state.name().to_string(),
                    epoch: t.epoch,
                });
            }
        }
        let mut servers: Vec<ServerStatus> = self
            .servers
            .read()
            .iter()
            .map(|(owner, addr)| ServerStatus {
                owner: owner.clone(),
                address: addr.clone(),
                tablets: per_owner.get(owner.as_str()).copied().unwrap_or(0),
            })
            .collect();
        servers.sort_by(|a, b| a.owner.cmp(&b.owner));
        ClusterStatus {
            me: self.me().map(|m| m.owner),
            is_master: self.master_term.read().is_some(),
            master_changes: Vec::new(),
            master: self.master.read().clone().map(|m| m.0),
            master_term: self
                .master_term
                .read()
                .or_else(|| self.master.read().as_ref().map(|m| m.1)),
            servers,
            tables,
        }
    }
}
