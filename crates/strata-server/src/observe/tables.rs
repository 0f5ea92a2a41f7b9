//! Per-table counters of the data API: rows and bytes read and written.
//! Kept in a map looked up by name without allocating (a request adds to
//! an existing table's counters under a read lock), encoded at scrape.

use std::sync::Arc;

use parking_lot::RwLock;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::MetricType;
use rustc_hash::FxHashMap;

/// Tables that get counters of their own; past this many the rest are
/// counted under the table name `other` (Bigtable allows 1,000 tables an
/// instance).
const TABLES_MAX: usize = 4096;

/// One table's counters.
#[derive(Debug, Default)]
pub struct TableCounters {
    rows_read: Counter,
    bytes_read: Counter,
    rows_written: Counter,
    bytes_written: Counter,
}

impl TableCounters {
    /// Rows returned by a read, and the bytes of its responses.
    pub fn read(&self, rows: u64, bytes: u64) {
        self.rows_read.inc_by(rows);
        self.bytes_read.inc_by(bytes);
    }

    /// Rows changed by a write, and the bytes of their mutations.
    pub fn written(&self, rows: u64, bytes: u64) {
        self.rows_written.inc_by(rows);
        self.bytes_written.inc_by(bytes);
    }

    pub fn rows_read(&self) -> u64 {
        self.rows_read.get()
    }

    pub fn rows_written(&self) -> u64 {
        self.rows_written.get()
    }
}

/// A request's way to its table's counters: found when the request
/// starts, created only once the request succeeds (a request to a table
/// that does not exist adds no series).
#[derive(Debug)]
pub enum TableTally {
    /// No metrics kept.
    Off,
    Known(Arc<TableCounters>),
    New(Arc<TableMetrics>, String),
}

impl TableTally {
    /// The counters, created if need be.
    pub fn counters(self) -> Option<Arc<TableCounters>> {
        match self {
            TableTally::Off => None,
            TableTally::Known(c) => Some(c),
            TableTally::New(m, name) => Some(m.table(&name)),
        }
    }

    pub fn is_on(&self) -> bool {
        !matches!(self, TableTally::Off)
    }
}

/// Every table's counters, looked up by name on every request (FxHash:
/// at most `TABLES_MAX` names, each a table that exists).
#[derive(Debug, Default)]
pub struct TableMetrics {
    tables: RwLock<FxHashMap<String, Arc<TableCounters>>>,
}

impl TableMetrics {
    /// The counters of table `name` (its id, not its full resource name).
    pub fn table(&self, name: &str) -> Arc<TableCounters> {
        if let Some(c) = self.tables.read().get(name) {
            return c.clone();
        }
        let mut tables = self.tables.write();
        let key = if tables.len() < TABLES_MAX || tables.contains_key(name) {
            name
        } else {
            "other"
        };
        tables.entry(key.to_string()).or_default().clone()
    }

    /// The way to `name`'s counters (see [`TableTally`]).
    pub fn tally(self: &Arc<Self>, name: &str) -> TableTally {
        match self.table_if_known(name) {
            Some(c) => TableTally::Known(c),
            None => TableTally::New(self.clone(), name.to_string()),
        }
    }

    /// The counters of a table that has had any.
    pub fn table_if_known(&self, name: &str) -> Option<Arc<TableCounters>> {
        self.tables.read().get(name).cloned()
    }

    fn all(&self) -> Vec<(String, Arc<TableCounters>)> {
        let mut v: Vec<(String, Arc<TableCounters>)> = self
            .tables
            .read()
            .iter()
            .map(|(k, c)| (k.clone(), c.clone()))
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }
}

/// Encodes [`TableMetrics`] at each scrape.
#[derive(Debug)]
pub(crate) struct TableCollector(pub(crate) Arc<TableMetrics>);

impl Collector for TableCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let all = self.0.all();
        type Pick = fn(&TableCounters) -> &Counter;
        let families: [(&str, &str, Pick); 4] = [
            ("strata_table_rows_read", "Rows returned by ReadRows", |c| {
                &c.rows_read
            }),
            (
                "strata_table_read_bytes",
                "Bytes of ReadRows responses",
                |c| &c.bytes_read,
            ),
            (
                "strata_table_rows_written",
                "Rows changed by MutateRow, MutateRows, CheckAndMutateRow and ReadModifyWriteRow",
                |c| &c.rows_written,
            ),
            (
                "strata_table_written_bytes",
                "Bytes of the mutations applied (as sent)",
                |c| &c.bytes_written,
            ),
        ];
        for (name, help, pick) in families {
            let mut e = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
            for (table, c) in &all {
                pick(c).encode(e.encode_family(&[("table", table.as_str())])?)?;
            }
        }
        Ok(())
    }
}
