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
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::RwLock;
use strata_cluster::tablet_map::TabletRecord;
use strata_engine::storage::Storage;
use strata_table::{Database, DatabaseOptions, Family, Schema};

/// Makes the storage of tablet `id` (a child of the cluster's storage).
pub type StorageFor = Arc<dyn Fn(u64) -> Result<Arc<dyn Storage>, String> + Send + Sync>;

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
}

impl Hosted {
    pub fn schema_revision(&self) -> i64 {
        self.schema_revision.load(Ordering::Acquire)
    }
}

/// The tablets this server serves, by id.
pub struct TabletHost {
    storage_for: StorageFor,
    opts: DatabaseOptions,
    tablets: RwLock<HashMap<u64, Arc<Hosted>>>,
}

impl TabletHost {
    pub fn new(storage_for: StorageFor, opts: DatabaseOptions) -> TabletHost {
        TabletHost {
            storage_for,
            opts,
            tablets: RwLock::new(HashMap::new()),
        }
    }

    /// The storage of tablet `id` (its prefix of the store).
    pub fn storage(&self, id: u64) -> Result<Arc<dyn Storage>, String> {
        (self.storage_for)(id)
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
    /// replayed) with `schema`, and serves it.
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
        let storage = (self.storage_for)(record.id)?;
        let db = Database::open_storage(storage, self.opts.clone())
            .map_err(|e| format!("opening tablet {}: {e}", record.id))?;
        db.apply_schema(&record.table, &schema.families, schema.deletion_protection)
            .map_err(|e| format!("tablet {}: applying its schema: {e}", record.id))?;
        let hosted = Arc::new(Hosted {
            record: record.clone(),
            db: Arc::new(db),
            schema_revision: AtomicI64::new(schema.revision),
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
        // Requests still running hold it (or its database): wait for them,
        // a while.
        while Arc::strong_count(&h) > 1 || Arc::strong_count(&h.db) > 1 {
            if started.elapsed() > CLOSE_WAIT {
                tracing::warn!(
                    tablet = id,
                    "requests still use the tablet after {CLOSE_WAIT:?}; syncing its log and leaving it to them"
                );
                let _ = h.db.engine().sync_log();
                return;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let table = h.record.table.clone();
        let closed = match Arc::try_unwrap(h).map(|h| Arc::try_unwrap(h.db)) {
            Ok(Ok(db)) => db.close().map_err(|e| e.to_string()),
            Ok(Err(db)) => db.engine().sync_log().map_err(|e| e.to_string()),
            Err(h) => h.db.engine().sync_log().map_err(|e| e.to_string()),
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
