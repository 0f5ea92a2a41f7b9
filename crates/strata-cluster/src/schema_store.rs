//! Table schemas in etcd, and a table's creation and deletion
//! (docs/cluster.md, "Schema").
//!
//! One key per table, `/<cluster>/schema/<table>`, whose value is text:
//!
//! ```text
//! format 1
//! table projects/p/instances/i/tables/users
//! schema 0102…
//! ```
//!
//! `schema` is the table's schema in the catalog's encoding
//! (docs/formats/catalog.md), hex; this crate treats it as opaque bytes.
//!
//! Any server may change a schema: every change is a txn that compares
//! what it replaces (a create: the key is absent; an update or a delete:
//! the key's mod revision as read), so concurrent changes to one table
//! apply one at a time and the loser reads again. Creating a table writes
//! its schema and its first tablet records (unassigned) in one txn;
//! deleting it removes both in one txn. The schema's mod revision is its
//! version: servers following by watch apply it to the tablets they hold.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::client::{Etcd, KeyValue};
use crate::error::{Error, Result};
use crate::tablet_map::{hex, tablet_key, tablets_prefix, unhex, TabletRecord, TabletState};
use crate::tablet_store::{parse_counter, tablet_ids_key, INITIAL_TABLETS_MAX};
use crate::txn::{Cmp, Compare, Op, Txn};
use crate::watch::{EventKind, WatchOptions, WatchStream};

/// The format number written in every schema record.
pub const FORMAT: u32 = 1;

/// A table name's longest accepted length.
const TABLE_NAME_BYTES_MAX: usize = 256;

/// Times `create_table` re-reads the id counter after losing a race for it.
const CREATE_ATTEMPTS_MAX: usize = 16;

/// `/<cluster>/schema/`.
pub fn schemas_prefix(cluster: &str) -> String {
    format!("/{cluster}/schema/")
}

/// `/<cluster>/schema/<table>`.
pub fn schema_key(cluster: &str, table: &str) -> String {
    format!("{}{table}", schemas_prefix(cluster))
}

/// A table's schema as etcd holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableSchema {
    pub table: String,
    /// The schema in the catalog's encoding (opaque here).
    pub schema: Vec<u8>,
    /// The revision of its last change: its version.
    pub mod_revision: i64,
}

fn check_table_name(table: &str) -> Result<()> {
    let ok = !table.is_empty()
        && table.len() <= TABLE_NAME_BYTES_MAX
        && !table.starts_with('/')
        && !table.ends_with('/')
        && !table.contains("//")
        && !table.contains(['\n', ' ']);
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidArgument(format!("bad table name {table:?}")))
    }
}

fn encode(table: &str, schema: &[u8]) -> Vec<u8> {
    let mut s = String::new();
    let _ = writeln!(s, "format {FORMAT}");
    let _ = writeln!(s, "table {table}");
    let _ = writeln!(s, "schema {}", hex(schema));
    s.into_bytes()
}

fn decode(kv: &KeyValue) -> Result<TableSchema> {
    let key = String::from_utf8_lossy(&kv.key);
    let bad = |why: &str| Error::Protocol(format!("schema record {key}: {why}"));
    let text = std::str::from_utf8(&kv.value).map_err(|_| bad("not UTF-8"))?;
    let mut fields = BTreeMap::new();
    for line in text.lines() {
        let (name, v) = line
            .split_once(' ')
            .ok_or_else(|| bad("a line is not `field value`"))?;
        if fields.insert(name, v).is_some() {
            return Err(bad("a field twice"));
        }
    }
    if fields.get("format") != Some(&FORMAT.to_string().as_str()) {
        return Err(bad("unknown format"));
    }
    let table = fields.get("table").ok_or_else(|| bad("no table"))?;
    if !key.ends_with(&format!("/{table}")) {
        return Err(bad("the table differs from the key's"));
    }
    let schema = fields
        .get("schema")
        .and_then(|h| unhex(h))
        .ok_or_else(|| bad("no hex schema"))?;
    Ok(TableSchema {
        table: table.to_string(),
        schema,
        mod_revision: kv.mod_revision,
    })
}

/// Creates `table` with `schema` and `splits.len() + 1` unassigned
/// tablets split at `splits` (sorted, distinct, non-empty rows), with new
/// ids. `Error::AlreadyExists` if the table exists. Returns the tablets
/// and the revision of the creation.
pub async fn create_table(
    etcd: &Etcd,
    cluster: &str,
    table: &str,
    splits: &[Vec<u8>],
    schema: &[u8],
) -> Result<(Vec<TabletRecord>, i64)> {
    check_table_name(table)?;
    if splits.len() + 1 > INITIAL_TABLETS_MAX {
        return Err(Error::InvalidArgument(format!(
            "{} initial tablets: at most {INITIAL_TABLETS_MAX}",
            splits.len() + 1
        )));
    }
    if splits.first().is_some_and(Vec::is_empty) || splits.windows(2).any(|w| w[0] >= w[1]) {
        return Err(Error::InvalidArgument(
            "split rows must be non-empty, sorted and distinct".into(),
        ));
    }
    let key = schema_key(cluster, table);
    let ids_key = tablet_ids_key(cluster);
    for _ in 0..CREATE_ATTEMPTS_MAX {
        let (counter, _) = etcd.get_with_revision(ids_key.as_bytes()).await?;
        let (first_id, counter_rev) = parse_counter(&ids_key, counter.as_ref())?;
        let bounds: Vec<&[u8]> = std::iter::once(&[][..])
            .chain(splits.iter().map(Vec::as_slice))
            .collect();
        let records: Vec<TabletRecord> = bounds
            .iter()
            .enumerate()
            .map(|(i, start)| TabletRecord {
                table: table.to_string(),
                id: first_id + i as u64,
                start: start.to_vec(),
                end: bounds.get(i + 1).map(|e| e.to_vec()),
                owner: None,
                epoch: 0,
                state: TabletState::Unassigned,
            })
            .collect();
        let next_id = first_id + records.len() as u64;
        let mut ops = vec![
            Op::put(ids_key.as_bytes(), next_id.to_string().as_bytes()),
            Op::put(key.as_bytes(), &encode(table, schema)),
        ];
        for r in &records {
            ops.push(Op::put(
                tablet_key(cluster, table, r.id).as_bytes(),
                &r.encode(),
            ));
        }
        let txn = Txn::new()
            .when([
                Compare::create_revision(key.as_bytes(), Cmp::Equal, 0),
                Compare::mod_revision(ids_key.as_bytes(), Cmp::Equal, counter_rev),
            ])
            .and_then(ops)
            .or_else([Op::get(key.as_bytes())]);
        let resp = etcd.txn(txn).await?;
        if resp.succeeded {
            return Ok((records, resp.revision));
        }
        if resp.responses.first().is_some_and(|r| !r.kvs().is_empty()) {
            return Err(Error::AlreadyExists(format!(
                "table {table} already exists"
            )));
        }
        // Another table took the ids meanwhile: read the counter again.
    }
    Err(Error::Conflict(format!(
        "creating table {table}: the tablet id counter kept changing"
    )))
}

/// Table `table`'s schema, read from etcd (linearizable).
pub async fn get(etcd: &Etcd, cluster: &str, table: &str) -> Result<Option<TableSchema>> {
    check_table_name(table)?;
    etcd.get(schema_key(cluster, table).as_bytes())
        .await?
        .map(|kv| decode(&kv))
        .transpose()
}

/// Every table's schema, and the revision they were read at.
pub async fn list(etcd: &Etcd, cluster: &str) -> Result<(Vec<TableSchema>, i64)> {
    let listing = etcd.get_prefix(schemas_prefix(cluster).as_bytes()).await?;
    let tables = listing.kvs.iter().map(decode).collect::<Result<Vec<_>>>()?;
    Ok((tables, listing.revision))
}

/// Replaces `old`'s schema with `schema` if the table has not changed
/// since `old` was read (`Error::Conflict` if it has, `NotFound`-like
/// `Error::Conflict` if it was deleted: read again to tell).
pub async fn update(
    etcd: &Etcd,
    cluster: &str,
    old: &TableSchema,
    schema: &[u8],
) -> Result<TableSchema> {
    let key = schema_key(cluster, &old.table);
    let txn = Txn::new()
        .when([Compare::mod_revision(
            key.as_bytes(),
            Cmp::Equal,
            old.mod_revision,
        )])
        .and_then([Op::put(key.as_bytes(), &encode(&old.table, schema))]);
    let resp = etcd.txn(txn).await?;
    if !resp.succeeded {
        return Err(Error::Conflict(format!(
            "table {} changed since it was read",
            old.table
        )));
    }
    Ok(TableSchema {
        table: old.table.clone(),
        schema: schema.to_vec(),
        mod_revision: resp.revision,
    })
}

/// `/<cluster>/garbage/`: tablets of deleted tables whose data the master
/// is to delete from the store.
pub fn garbage_prefix(cluster: &str) -> String {
    format!("/{cluster}/garbage/")
}

pub fn garbage_key(cluster: &str, id: u64) -> String {
    format!("{}{id:020}", garbage_prefix(cluster))
}

/// Deletes `old`'s table (its schema and every tablet record) if it has
/// not changed since `old` was read, and records its tablets as garbage
/// (`garbage/<id>`) in the same txn. Returns the revision of the deletion.
pub async fn delete_table(etcd: &Etcd, cluster: &str, old: &TableSchema) -> Result<i64> {
    let key = schema_key(cluster, &old.table);
    let tablets = format!("{}{}/", tablets_prefix(cluster), old.table);
    for _ in 0..CREATE_ATTEMPTS_MAX {
        // The tablets as of the listing; the txn holds only if none has
        // changed since (a split replaces one by two).
        let listing = etcd.get_prefix(tablets.as_bytes()).await?;
        let mut ops = vec![
            Op::delete(key.as_bytes()),
            Op::delete_prefix(tablets.as_bytes()),
        ];
        for kv in &listing.kvs {
            let record = TabletRecord::decode(&String::from_utf8_lossy(&kv.key), &kv.value)?;
            ops.push(Op::put(garbage_key(cluster, record.id).as_bytes(), b""));
        }
        let txn = Txn::new()
            .when([
                Compare::mod_revision(key.as_bytes(), Cmp::Equal, old.mod_revision),
                Compare::prefix_mod_revision(tablets.as_bytes(), Cmp::Less, listing.revision + 1),
            ])
            .and_then(ops)
            .or_else([Op::get(key.as_bytes())]);
        let resp = etcd.txn(txn).await?;
        if resp.succeeded {
            return Ok(resp.revision);
        }
        let schema_now = resp.responses.first().and_then(|r| r.kvs().first());
        if schema_now.is_none_or(|kv| kv.mod_revision != old.mod_revision) {
            return Err(Error::Conflict(format!(
                "table {} changed since it was read",
                old.table
            )));
        }
        // A tablet split meanwhile: list them again.
    }
    Err(Error::Conflict(format!(
        "deleting table {}: its tablets kept changing",
        old.table
    )))
}

/// A change of one table's schema, as a follower sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SchemaChange {
    Put(TableSchema),
    Deleted { table: String, revision: i64 },
}

/// Follows every table's schema from a revision.
pub struct SchemaFollower {
    cluster: String,
    stream: WatchStream,
}

impl SchemaFollower {
    /// Follows `cluster`'s schemas from after `revision` (what [`list`]
    /// returned).
    pub fn new(etcd: &Etcd, cluster: &str, revision: i64) -> SchemaFollower {
        let opts = WatchOptions {
            start_revision: revision + 1,
            prev_kv: false,
        };
        SchemaFollower {
            cluster: cluster.to_string(),
            stream: etcd.watch_prefix(schemas_prefix(cluster).as_bytes(), opts),
        }
    }

    /// The next change; `None`: the watch ended (list and follow anew).
    pub async fn next(&mut self) -> Option<Result<SchemaChange>> {
        let event = match self.stream.next().await? {
            Ok(e) => e,
            Err(e) => return Some(Err(e)),
        };
        Some(match event.kind {
            EventKind::Put => decode(&event.kv).map(SchemaChange::Put),
            EventKind::Delete => {
                let key = String::from_utf8_lossy(&event.kv.key);
                match key.strip_prefix(&schemas_prefix(&self.cluster)) {
                    Some(table) => Ok(SchemaChange::Deleted {
                        table: table.to_string(),
                        revision: event.revision(),
                    }),
                    None => Err(Error::Protocol(format!("not a schema key: {key}"))),
                }
            }
        })
    }
}
