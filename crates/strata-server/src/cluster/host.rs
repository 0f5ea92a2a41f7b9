//! The tablets a cluster server serves: each one a `Database` of its own
//! over its own prefix of the store (`tablets/<id>/`: a manifest, a
//! commit log and tables, docs/cluster.md "Object-store layout"), holding
//! the one table the tablet belongs to.
//!
//! Opening a tablet is the single-server open on that prefix: it takes the
//! prefix over (a new manifest epoch and a fence in the log), so a
//! previous owner still running can commit nothing more, and replays the
//! log. Closing one flushes its memtables and closes it, so the next owner
//! replays nothing (Bigtable's fast migration).

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::RwLock;
use strata_cluster::tablet_map::TabletRecord;
use strata_engine::storage::Storage;
use strata_table::{Database, DatabaseOptions, Family, Schema};

/// The cluster's store, as tablets use it.
pub trait TabletStore: Send + Sync {
    /// The storage of tablet `id` (its prefix of the store).
    fn storage(&self, id: u64) -> Result<Arc<dyn Storage>, String>;

    /// Makes tablet `to`'s storage hold tablet `from`'s objects (a
    /// split): only its tables, which may be copied while `from` serves,
    /// or (`everything`) all of them, deleting what `from` lacks, once
    /// `from` is closed. Copies are the store's own. Returns the number
    /// of objects copied.
    fn mirror(&self, from: u64, to: u64, everything: bool) -> Result<usize, String>;

    /// Copies tablet `from`'s table numbered `number` into tablet `to` as
    /// number `to_number` (a merge: the right tablet's tables, numbered
    /// anew in the merged one). The store's own copy.
    fn copy_table(&self, from: u64, number: u64, to: u64, to_number: u64) -> Result<(), String>;
}

/// How long a close waits for the requests still using a tablet before
/// it syncs the log and lets them finish on their own.
const CLOSE_WAIT: Duration = Duration::from_secs(5);

/// The storage prefix of tablet `id`, under the cluster's.
pub fn tablet_prefix(id: u64) -> String {
    format!("tablets/{id:020}")
}

/// A table's schema as the cluster agreed on it, and its version (the
/// etcd revision of its last change).
#[derive(Clone, Debug)]
pub struct ClusterSchema {
    pub families: BTreeMap<String, Family>,
    pub deletion_protection: bool,
    pub revision: i64,
}

impl ClusterSchema {
    pub fn decode(bytes: &[u8], revision: i64) -> Result<ClusterSchema, String> {
        let s = Schema::decode(bytes).map_err(|e| e.to_string())?;
        Ok(ClusterSchema {
            families: s.families,
            deletion_protection: s.deletion_protection,
            revision,
        })
    }
}

/// One tablet being served.
pub struct Hosted {
    /// The assignment it is served under (its epoch).
    pub record: TabletRecord,
    pub db: Arc<Database>,
    /// The schema version applied to it.
    schema_revision: AtomicI64,
    /// Parts of requests served from it (its load, for balancing).
    pub requests: AtomicU64,
}

impl Hosted {
    /// The tablet's bytes on disk and in memtables (0 if its table is
    /// gone).
    pub fn size_bytes(&self) -> u64 {
        self.db.tablets(&self.record.table).map_or(0, |ts| {
            ts.iter().map(|t| t.size_bytes + t.memtable_bytes).sum()
        })
    }

    pub fn schema_revision(&self) -> i64 {
        self.schema_revision.load(Ordering::Acquire)
    }
}

/// The tablets this server serves, by id.
pub struct TabletHost {
    store: Arc<dyn TabletStore>,
    opts: DatabaseOptions,
    tablets: RwLock<HashMap<u64, Arc<Hosted>>>,
}

impl TabletHost {
    pub fn new(store: Arc<dyn TabletStore>, opts: DatabaseOptions) -> TabletHost {
        TabletHost {
            store,
            opts,
            tablets: RwLock::new(HashMap::new()),
        }
    }

    /// Options of each tablet's database.
    pub fn options(&self) -> &DatabaseOptions {
        &self.opts
    }

    /// The cluster's store.
    pub fn store(&self) -> &Arc<dyn TabletStore> {
        &self.store
    }

    /// The tablet `id`, if served here.
    pub fn get(&self, id: u64) -> Option<Arc<Hosted>> {
        self.tablets.read().get(&id).cloned()
    }

    /// Every tablet served here.
    pub fn all(&self) -> Vec<Arc<Hosted>> {
        self.tablets.read().values().cloned().collect()
    }

    /// Opens `record`'s tablet (blocking: the store is read and the log
    /// replayed) with `schema`, keeps only the rows of its range (a split's
    /// child starts with its parent's), and serves it.
    pub fn open(&self, record: &TabletRecord, schema: &ClusterSchema) -> Result<(), String> {
        if let Some(h) = self.get(record.id) {
            if h.record.epoch == record.epoch {
                return Ok(());
            }
            return Err(format!(
                "tablet {} is served here at epoch {}, not {}",
                record.id, h.record.epoch, record.epoch
            ));
        }
        let started = Instant::now();
        let storage = self.store.storage(record.id)?;
        let db = Database::open_storage(storage, self.opts.clone())
            .map_err(|e| format!("opening tablet {}: {e}", record.id))?;
        db.apply_schema(&record.table, &schema.families, schema.deletion_protection)
            .map_err(|e| format!("tablet {}: applying its schema: {e}", record.id))?;
        if db
            .retain_rows(&record.table, &record.start, record.end.as_deref())
            .map_err(|e| format!("tablet {}: dropping rows outside its range: {e}", record.id))?
        {
            tracing::info!(
                tablet = record.id,
                "dropped the rows outside the tablet's range (it is half of a split)"
            );
        }
        let hosted = Arc::new(Hosted {
            record: record.clone(),
            db: Arc::new(db),
            schema_revision: AtomicI64::new(schema.revision),
            requests: AtomicU64::new(0),
        });
        self.tablets.write().insert(record.id, hosted);
        tracing::info!(
            tablet = record.id,
            table = %record.table,
            epoch = record.epoch,
            "serving tablet (opened in {:.2?})",
            started.elapsed()
        );
        Ok(())
    }

    /// Stops serving tablet `id`: no new request reaches it; once the
    /// running ones are done (or after `CLOSE_WAIT`), its memtables are
    /// flushed and it is closed (blocking).
    pub fn close(&self, id: u64) {
        let Some(h) = self.tablets.write().remove(&id) else {
            return;
        };
        let started = Instant::now();
        let table = h.record.table.clone();
        let closed = match wait_unused(h) {
            Ok(db) => db.close().map_err(|e| e.to_string()),
            Err(h) => {
                tracing::warn!(
                    tablet = id,
                    "requests still use the tablet after {CLOSE_WAIT:?}; syncing its log and leaving it to them"
                );
                h.db.engine().sync_log().map_err(|e| e.to_string())
            }
        };
        match closed {
            Ok(()) => tracing::info!(
                tablet = id,
                table = %table,
                "closed tablet in {:.2?}",
                started.elapsed()
            ),
            // Another owner took it over first: what it has is in the log
            // the new owner replays.
            Err(e) => tracing::warn!(tablet = id, "closing tablet: {e}"),
        }
    }

    /// Stops serving tablet `id` at `epoch` and closes it, flushed, for a
    /// split or a merge: its storage is then one state, to be copied. If
    /// requests still use it after `CLOSE_WAIT`, it is served again and
    /// the split or merge must not go on (Err).
    pub fn close_for_handover(&self, id: u64, epoch: u64) -> Result<(), String> {
        let h = {
            let mut tablets = self.tablets.write();
            match tablets.get(&id) {
                Some(h) if h.record.epoch == epoch => {}
                _ => return Err(format!("tablet {id} is not served here at epoch {epoch}")),
            }
            tablets.remove(&id).expect("present")
        };
        match wait_unused(h) {
            Ok(db) => db
                .close()
                .map_err(|e| format!("closing tablet {id} for its split or merge: {e}")),
            Err(h) => {
                self.tablets.write().insert(id, h);
                Err(format!(
                    "requests still used tablet {id} after {CLOSE_WAIT:?}: it is served again"
                ))
            }
        }
    }

    /// Applies a new version of `table`'s schema to its tablets served
    /// here (blocking: dropped families are purged).
    pub fn apply_schema(&self, table: &str, schema: &ClusterSchema) {
        let hosted: Vec<Arc<Hosted>> = self
            .all()
            .into_iter()
            .filter(|h| h.record.table == table && h.schema_revision() < schema.revision)
            .collect();
        for h in hosted {
            match h
                .db
                .apply_schema(table, &schema.families, schema.deletion_protection)
            {
                Ok(_) => h
                    .schema_revision
                    .fetch_max(schema.revision, Ordering::AcqRel),
                Err(e) => {
                    tracing::error!(tablet = h.record.id, "applying the schema of {table}: {e}");
                    continue;
                }
            };
        }
    }

    /// Closes every tablet (at shutdown, or when the lease is lost).
    pub fn close_all(&self) {
        let ids: Vec<u64> = self.tablets.read().keys().copied().collect();
        for id in ids {
            self.close(id);
        }
    }
}

/// Waits (up to `CLOSE_WAIT`) until no request holds the tablet, then
/// hands over its database; else gives the tablet back.
fn wait_unused(h: Arc<Hosted>) -> Result<Database, Arc<Hosted>> {
    let started = Instant::now();
    let mut h = h;
    loop {
        match Arc::try_unwrap(h) {
            Ok(hosted) => match Arc::try_unwrap(hosted.db) {
                Ok(db) => return Ok(db),
                Err(db) => {
                    h = Arc::new(Hosted {
                        record: hosted.record,
                        db,
                        schema_revision: hosted.schema_revision,
                        requests: hosted.requests,
                    })
                }
            },
            Err(back) => h = back,
        }
        if started.elapsed() > CLOSE_WAIT {
            return Err(h);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}
