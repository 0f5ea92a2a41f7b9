//! A database of Bigtable tables in one engine: the catalog (schemas in
//! the `catalog` tree), one engine tree per table, and table-level
//! operations (create, list, modify families, drop row ranges, delete).
//! Row operations are in `rows.rs`.
//!
//! Crash safety: creating a table writes its catalog entry (with the next
//! tree id) in one engine batch before the tree exists; deleting removes
//! the entry before dropping the tree. At open, trees no entry names are
//! dropped, so a crash between the two steps leaves no orphan.

use crate::error::{Result, TableError};
use crate::gc::GcRule;
use crate::gc_compaction::{GcFilter, SchemaCell};
use crate::locks::RowLocks;
use crate::row::{RowRange, RowSet};
use crate::schema::{is_valid_table_id, Family, Schema, FAMILIES_MAX};
use crate::{aggregate::AggregateMerge, cell_key::is_valid_family};
use parking_lot::{Mutex, RwLock};
use std::collections::BTreeMap;
use std::ops::Bound;
use std::path::Path;
use std::sync::Arc;
use strata_engine::{Direction, Engine, EngineOptions, Tree, TreeOptions, WriteBatch};

pub(crate) const CATALOG_TREE: &str = "catalog";
const TABLE_KEY_PREFIX: &[u8] = b"table\0";
const NEXT_TREE_KEY: &[u8] = b"next_tree";
/// Deletes per engine batch when purging a family or a row range.
const PURGE_BATCH_OPS: usize = 10_000;

/// A tablet of a table larger than this splits, by default (Bigtable's
/// order of magnitude; `strata serve --tablet-split-size`).
pub const TABLET_SPLIT_BYTES_DEFAULT: u64 = 512 << 20;

/// The schema `changes` (ModifyColumnFamilies, all or none) make of
/// `schema`, and the families they drop (whose cells must be purged).
/// A table with deletion protection refuses any drop (FAILED_PRECONDITION,
/// as Bigtable: protection covers the table's families).
pub fn plan_family_changes(
    name: &str,
    schema: &Schema,
    changes: &[FamilyChange],
) -> Result<(Schema, Vec<String>)> {
    if schema.deletion_protection {
        if let Some(FamilyChange::Drop(f)) =
            changes.iter().find(|c| matches!(c, FamilyChange::Drop(_)))
        {
            return Err(TableError::FailedPrecondition(format!(
                "table {name:?} has deletion protection enabled, which protects its column \
                 families: cannot drop {f:?}; disable it with UpdateTable first"
            )));
        }
    }
    let mut schema = schema.clone();
    let mut dropped = Vec::new();
    for c in changes {
        match c {
            FamilyChange::Create(f, fam) => {
                validate_family(f, fam)?;
                if schema.families.contains_key(f) {
                    return Err(TableError::AlreadyExists(format!(
                        "column family {f:?} already exists"
                    )));
                }
                // A family dropped earlier in this request stays on the
                // purge list: the new family starts empty.
                schema.families.insert(f.clone(), fam.clone());
            }
            FamilyChange::UpdateGcRule(f, rule) => {
                let Some(fam) = schema.families.get_mut(f) else {
                    return Err(TableError::NotFound(format!(
                        "column family {f:?} not found"
                    )));
                };
                let updated = Family {
                    gc_rule: rule.clone(),
                    value_type: fam.value_type,
                };
                validate_family(f, &updated)?;
                *fam = updated;
            }
            FamilyChange::Drop(f) => {
                if schema.families.remove(f).is_none() {
                    return Err(TableError::NotFound(format!(
                        "column family {f:?} not found"
                    )));
                }
                dropped.push(f.clone());
            }
        }
    }
    if schema.families.len() > FAMILIES_MAX {
        return Err(TableError::InvalidArgument(format!(
            "{} column families, above the limit of {FAMILIES_MAX}",
            schema.families.len()
        )));
    }
    Ok((schema, dropped))
}

/// Checks a new table's families (count, names, rules).
pub fn validate_families(families: &BTreeMap<String, Family>) -> Result<()> {
    if families.len() > FAMILIES_MAX {
        return Err(TableError::InvalidArgument(format!(
            "{} column families, above the limit of {FAMILIES_MAX}",
            families.len()
        )));
    }
    for (n, f) in families {
        validate_family(n, f)?;
    }
    Ok(())
}

/// Options of a database.
#[derive(Clone)]
pub struct DatabaseOptions {
    pub engine: EngineOptions,
    /// Options of every table's tree (the merge operator and the row
    /// boundaries of splits are set here).
    pub table: TreeOptions,
}

impl Default for DatabaseOptions {
    fn default() -> Self {
        DatabaseOptions {
            engine: EngineOptions::default(),
            table: TreeOptions {
                tablet_split_bytes: Some(TABLET_SPLIT_BYTES_DEFAULT),
                ..TreeOptions::default()
            },
        }
    }
}

/// One tablet of a table, for operators: rows `[start_row, end_row)`.
#[derive(Clone, Debug)]
pub struct TabletInfo {
    pub id: u32,
    pub start_row: Vec<u8>,
    /// None: to the end of the table.
    pub end_row: Option<Vec<u8>>,
    /// Approximate bytes on disk of the tablet's own cells.
    pub size_bytes: u64,
    pub memtable_bytes: u64,
    pub files_per_level: Vec<usize>,
    /// Files shared with a neighbour since a split, not yet rewritten.
    pub shared_files: usize,
}

/// One table: its schema and tree, swapped as a unit by DDL.
pub struct Table {
    pub(crate) name: String,
    /// Shared so a write can hold it (`read_arc`) until its batch commits.
    pub(crate) state: Arc<RwLock<TableState>>,
    /// The schema as the table's compaction filter sees it; updated with
    /// `state` under its write lock.
    gc_schema: SchemaCell,
}

impl Table {
    fn new(name: String, schema: Arc<Schema>, tree: Tree, gc_schema: SchemaCell) -> Table {
        Table {
            name,
            state: Arc::new(RwLock::new(TableState { schema, tree })),
            gc_schema,
        }
    }

    /// Publishes a new schema (caller holds the state's write lock).
    fn set_schema(&self, st: &mut TableState, schema: Schema) {
        let schema = Arc::new(schema);
        *self.gc_schema.write() = schema.clone();
        st.schema = schema;
    }
}

/// The options of a table's tree: the shared ones plus its GC filter.
fn tree_options(base: &TreeOptions, gc_schema: &SchemaCell) -> TreeOptions {
    TreeOptions {
        compaction_filter: Some(Arc::new(GcFilter {
            schema: gc_schema.clone(),
        })),
        ..base.clone()
    }
}

#[derive(Clone)]
pub(crate) struct TableState {
    pub(crate) schema: Arc<Schema>,
    pub(crate) tree: Tree,
}

/// A table's name and schema, as listed.
#[derive(Clone, Debug)]
pub struct TableInfo {
    pub name: String,
    pub schema: Arc<Schema>,
}

/// One change of ModifyColumnFamilies.
#[derive(Clone, Debug)]
pub enum FamilyChange {
    Create(String, Family),
    /// Replaces the family's GC rule (its value type cannot change).
    UpdateGcRule(String, GcRule),
    Drop(String),
}

/// A ReadModifyWriteRow rule.
#[derive(Clone, Debug)]
pub enum RmwRule {
    Append {
        family: String,
        qualifier: Vec<u8>,
        value: Vec<u8>,
    },
    Increment {
        family: String,
        qualifier: Vec<u8>,
        amount: i64,
    },
}

/// Bigtable tables stored in one engine.
pub struct Database {
    pub(crate) engine: Engine,
    catalog: Tree,
    tables: RwLock<BTreeMap<String, Arc<Table>>>,
    /// Serializes DDL; holds the next tree id.
    ddl: Mutex<u64>,
    pub(crate) locks: RowLocks,
    /// Read-modify-writes queued and not yet committed, per row.
    pub(crate) pending: Arc<crate::pending::PendingRmws>,
    table_opts: TreeOptions,
}

fn table_key(name: &str) -> Vec<u8> {
    [TABLE_KEY_PREFIX, name.as_bytes()].concat()
}

/// Checks a full table name `projects/P/instances/I/tables/T`.
pub fn validate_table_name(name: &str) -> Result<()> {
    let parts: Vec<&str> = name.split('/').collect();
    let ok = parts.len() == 6
        && parts[0] == "projects"
        && !parts[1].is_empty()
        && parts[2] == "instances"
        && !parts[3].is_empty()
        && parts[4] == "tables"
        && is_valid_table_id(parts[5]);
    if !ok {
        return Err(TableError::InvalidArgument(format!(
            "invalid table name {name:?}: want projects/<project>/instances/<instance>/tables/<id>, \
             with an id matching [_a-zA-Z0-9][-_.a-zA-Z0-9]* of at most 50 bytes"
        )));
    }
    Ok(())
}

fn validate_family(name: &str, fam: &Family) -> Result<()> {
    if !is_valid_family(name) {
        return Err(TableError::InvalidArgument(format!(
            "invalid column family name {name:?}: must match [_a-zA-Z0-9][-_.a-zA-Z0-9]* and be at most 64 bytes"
        )));
    }
    fam.gc_rule
        .validate()
        .map_err(|e| TableError::InvalidArgument(format!("family {name:?}: {e}")))
}

impl Database {
    /// Opens (or creates) a database in a directory.
    pub fn open(dir: impl AsRef<Path>, opts: DatabaseOptions) -> Result<Database> {
        let engine = Engine::open_dir(dir, opts.engine.clone())?;
        Database::with_engine(engine, opts.table)
    }

    /// Opens (or creates) a database on a storage: an object store, or
    /// any other backend of the engine.
    pub fn open_storage(
        storage: Arc<dyn strata_engine::storage::Storage>,
        opts: DatabaseOptions,
    ) -> Result<Database> {
        let engine = Engine::open(storage, opts.engine.clone())?;
        Database::with_engine(engine, opts.table)
    }

    /// Opens the database held by an engine.
    pub fn with_engine(engine: Engine, mut table_opts: TreeOptions) -> Result<Database> {
        table_opts.merge_operator = Some(Arc::new(AggregateMerge));
        // Tablets split between rows, never inside one.
        table_opts.split_boundary = Some(Arc::new(|k: &[u8]| {
            crate::cell_key::row_prefix(&crate::cell_key::row_of_prefix(k))
        }));
        let catalog = engine.open_tree(
            CATALOG_TREE,
            TreeOptions {
                memtable_bytes_max: 4 << 20,
                ..TreeOptions::default()
            },
        )?;
        let mut next_tree = match catalog.get(NEXT_TREE_KEY)? {
            Some(v) => u64::from_le_bytes(
                v.as_slice()
                    .try_into()
                    .map_err(|_| TableError::Corrupt("next tree id".into()))?,
            ),
            None => 1,
        };
        let mut tables = BTreeMap::new();
        let end = crate::mutation::prefix_end(TABLE_KEY_PREFIX);
        for entry in catalog.range(
            Bound::Included(TABLE_KEY_PREFIX),
            Bound::Excluded(&end),
            Direction::Forward,
            None,
        )? {
            let (k, v) = entry?;
            let name = String::from_utf8(k[TABLE_KEY_PREFIX.len()..].to_vec())
                .map_err(|_| TableError::Corrupt("table name is not UTF-8".into()))?;
            let schema = Schema::decode(&v).map_err(|e| TableError::Corrupt(e.to_string()))?;
            if let Some(id) = schema
                .tree
                .strip_prefix('t')
                .and_then(|s| s.parse::<u64>().ok())
            {
                next_tree = next_tree.max(id + 1);
            }
            let schema = Arc::new(schema);
            let cell: SchemaCell = Arc::new(RwLock::new(schema.clone()));
            let tree = engine.open_tree(&schema.tree, tree_options(&table_opts, &cell))?;
            tables.insert(name.clone(), Arc::new(Table::new(name, schema, tree, cell)));
        }
        let referenced: std::collections::HashSet<String> = tables
            .values()
            .map(|t| t.state.read().schema.tree.clone())
            .collect();
        for name in engine.tree_names() {
            if name != CATALOG_TREE && !referenced.contains(&name) {
                tracing::info!(tree = %name, "dropping a tree no table refers to");
                engine.drop_tree(&name)?;
            }
        }
        Ok(Database {
            engine,
            catalog,
            tables: RwLock::new(tables),
            ddl: Mutex::new(next_tree),
            locks: RowLocks::new(),
            pending: Arc::new(crate::pending::PendingRmws::new()),
            table_opts,
        })
    }

    /// The engine underneath (for stats and shutdown).
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Flushes and closes the engine.
    pub fn close(self) -> Result<()> {
        Ok(self.engine.close()?)
    }

    /// The catalog tree (schemas, and the records of `meta`).
    pub(crate) fn catalog(&self) -> &Tree {
        &self.catalog
    }

    pub(crate) fn table(&self, name: &str) -> Result<Arc<Table>> {
        self.tables
            .read()
            .get(name)
            .cloned()
            .ok_or_else(|| TableError::NotFound(format!("table {name:?} not found")))
    }

    /// A table's schema.
    pub fn get_table(&self, name: &str) -> Result<TableInfo> {
        let t = self.table(name)?;
        let schema = t.state.read().schema.clone();
        Ok(TableInfo {
            name: t.name.clone(),
            schema,
        })
    }

    /// Tables whose names start with `prefix` (e.g. `projects/p/instances/i/tables/`).
    pub fn list_tables(&self, prefix: &str) -> Vec<TableInfo> {
        self.tables
            .read()
            .range(prefix.to_string()..)
            .take_while(|(n, _)| n.starts_with(prefix))
            .map(|(n, t)| TableInfo {
                name: n.clone(),
                schema: t.state.read().schema.clone(),
            })
            .collect()
    }

    fn alloc_tree(&self, next: &mut u64, batch: &mut WriteBatch) -> String {
        let name = format!("t{next}");
        *next += 1;
        batch.put(self.catalog.id(), NEXT_TREE_KEY, &next.to_le_bytes());
        name
    }

    /// Creates a table.
    pub fn create_table(
        &self,
        name: &str,
        families: BTreeMap<String, Family>,
        deletion_protection: bool,
    ) -> Result<TableInfo> {
        self.create_table_with_splits(name, families, deletion_protection, &[])
    }

    /// Creates a table as one tablet per row range between `splits` (row
    /// keys, in any order; duplicates count once). Those boundaries stay:
    /// merges never remove them.
    pub fn create_table_with_splits(
        &self,
        name: &str,
        families: BTreeMap<String, Family>,
        deletion_protection: bool,
        splits: &[Vec<u8>],
    ) -> Result<TableInfo> {
        validate_table_name(name)?;
        let mut split_keys: Vec<Vec<u8>> = splits
            .iter()
            .filter(|r| !r.is_empty())
            .map(|r| crate::cell_key::row_prefix(r))
            .collect();
        split_keys.sort();
        split_keys.dedup();
        if families.len() > FAMILIES_MAX {
            return Err(TableError::InvalidArgument(format!(
                "{} column families, above the limit of {FAMILIES_MAX}",
                families.len()
            )));
        }
        for (n, f) in &families {
            validate_family(n, f)?;
        }
        let mut next = self.ddl.lock();
        if self.tables.read().contains_key(name) {
            return Err(TableError::AlreadyExists(format!(
                "table {name:?} already exists"
            )));
        }
        let mut batch = WriteBatch::new();
        let tree_name = self.alloc_tree(&mut next, &mut batch);
        let schema = Schema {
            tree: tree_name,
            deletion_protection,
            families,
        };
        batch.put(self.catalog.id(), &table_key(name), &schema.encode());
        self.engine.write(batch)?;
        let schema = Arc::new(schema);
        let cell: SchemaCell = Arc::new(RwLock::new(schema.clone()));
        let tree = self.engine.open_tree_with_splits(
            &schema.tree,
            tree_options(&self.table_opts, &cell),
            &split_keys,
        )?;
        let table = Arc::new(Table::new(name.to_string(), schema.clone(), tree, cell));
        self.tables.write().insert(name.to_string(), table);
        tracing::info!(
            table = name,
            tree = %schema.tree,
            families = ?schema.families.keys().collect::<Vec<_>>(),
            tablets = split_keys.len() + 1,
            "created table"
        );
        Ok(TableInfo {
            name: name.to_string(),
            schema,
        })
    }

    /// Deletes a table and its data.
    pub fn delete_table(&self, name: &str) -> Result<()> {
        let _ddl = self.ddl.lock();
        let t = self.table(name)?;
        let st = t.state.write();
        if st.schema.deletion_protection {
            return Err(TableError::FailedPrecondition(format!(
                "table {name:?} has deletion protection enabled; disable it with UpdateTable first"
            )));
        }
        let mut batch = WriteBatch::new();
        batch.delete(self.catalog.id(), &table_key(name));
        self.engine.write(batch)?;
        self.tables.write().remove(name);
        self.engine.drop_tree(st.tree.name())?;
        tracing::info!(table = name, tree = %st.tree.name(), "deleted table");
        Ok(())
    }

    /// Persists a table's new schema, then publishes it.
    fn commit_schema(&self, t: &Table, st: &mut TableState, schema: Schema) -> Result<TableInfo> {
        let mut batch = WriteBatch::new();
        self.put_schema(&t.name, &schema, &mut batch);
        self.engine.write(batch)?;
        t.set_schema(st, schema);
        Ok(TableInfo {
            name: t.name.clone(),
            schema: st.schema.clone(),
        })
    }

    fn put_schema(&self, name: &str, schema: &Schema, batch: &mut WriteBatch) {
        batch.put(self.catalog.id(), &table_key(name), &schema.encode());
    }

    /// Sets or clears deletion protection.
    pub fn set_deletion_protection(&self, name: &str, on: bool) -> Result<TableInfo> {
        let _ddl = self.ddl.lock();
        let t = self.table(name)?;
        let mut st = t.state.write();
        let mut schema = (*st.schema).clone();
        schema.deletion_protection = on;
        self.commit_schema(&t, &mut st, schema)
    }

    /// Applies ModifyColumnFamilies changes, all or none. Dropping a family
    /// deletes its cells; a table with deletion protection refuses any
    /// request that drops one (FAILED_PRECONDITION, as Bigtable: protection
    /// covers the table's families).
    pub fn modify_families(&self, name: &str, changes: &[FamilyChange]) -> Result<TableInfo> {
        self.modify_families_checked(name, changes, true)
    }

    fn modify_families_checked(
        &self,
        name: &str,
        changes: &[FamilyChange],
        check_protection: bool,
    ) -> Result<TableInfo> {
        let _ddl = self.ddl.lock();
        let t = self.table(name)?;
        let mut st = t.state.write();
        let (schema, dropped) = if check_protection {
            plan_family_changes(name, &st.schema, changes)?
        } else {
            let unprotected = Schema {
                deletion_protection: false,
                ..(*st.schema).clone()
            };
            let (mut s, d) = plan_family_changes(name, &unprotected, changes)?;
            s.deletion_protection = st.schema.deletion_protection;
            (s, d)
        };
        // Purge before the schema changes: a crash in between leaves the
        // family in place, partly emptied, which its drop asked for anyway.
        if !dropped.is_empty() {
            self.purge(&st.tree, RowSet::all(), |k| {
                crate::cell_key::decode(k).is_ok_and(|c| dropped.contains(&c.family))
            })?;
        }
        let info = self.commit_schema(&t, &mut st, schema)?;
        for c in changes {
            match c {
                FamilyChange::Create(f, _) => {
                    tracing::info!(table = name, family = %f, "created column family")
                }
                FamilyChange::UpdateGcRule(f, rule) => {
                    tracing::info!(table = name, family = %f, gc_rule = ?rule, "changed column family's GC rule")
                }
                FamilyChange::Drop(f) => {
                    tracing::info!(table = name, family = %f, "deleted column family")
                }
            }
        }
        Ok(info)
    }

    /// Makes table `name` have `families` and `deletion_protection`:
    /// creates it if absent, else creates, updates and drops families (the
    /// dropped ones' cells purged) whatever the protection. For a cluster
    /// server, whose tables follow the schema the cluster agreed on (the
    /// checks ran where the change was made).
    pub fn apply_schema(
        &self,
        name: &str,
        families: &BTreeMap<String, Family>,
        deletion_protection: bool,
    ) -> Result<TableInfo> {
        let current = match self.get_table(name) {
            Ok(info) => info.schema,
            Err(TableError::NotFound(_)) => {
                return self.create_table(name, families.clone(), deletion_protection)
            }
            Err(e) => return Err(e),
        };
        let mut changes = Vec::new();
        for (f, fam) in &current.families {
            match families.get(f) {
                None => changes.push(FamilyChange::Drop(f.clone())),
                // A family recreated with another type: dropped, then new.
                Some(new) if new.value_type != fam.value_type => {
                    changes.push(FamilyChange::Drop(f.clone()));
                    changes.push(FamilyChange::Create(f.clone(), new.clone()));
                }
                Some(new) if new.gc_rule != fam.gc_rule => {
                    changes.push(FamilyChange::UpdateGcRule(f.clone(), new.gc_rule.clone()))
                }
                Some(_) => {}
            }
        }
        for (f, fam) in families {
            if !current.families.contains_key(f) {
                changes.push(FamilyChange::Create(f.clone(), fam.clone()));
            }
        }
        if !changes.is_empty() {
            self.modify_families_checked(name, &changes, false)?;
        }
        if current.deletion_protection != deletion_protection {
            return self.set_deletion_protection(name, deletion_protection);
        }
        self.get_table(name)
    }

    /// Deletes every row starting with `prefix`, or (None) every row.
    /// Tablets inside the range are emptied and files inside it dropped
    /// whole (one manifest edit, nothing read); what is left (memtables,
    /// files reaching outside the range) is deleted cell by cell.
    pub fn drop_row_range(&self, name: &str, prefix: Option<&[u8]>) -> Result<()> {
        let t = self.table(name)?;
        let st = t.state.write();
        let rows = RowSet {
            keys: vec![],
            ranges: vec![match prefix {
                Some(p) if !p.is_empty() => RowRange::prefix(p),
                _ => RowRange::all(),
            }],
        };
        for span in rows.spans() {
            let (tablets, files) = st.tree.drop_whole_files(&span.start, span.end.as_deref())?;
            tracing::debug!(
                table = name,
                tablets,
                files,
                "dropped whole tablets and files"
            );
        }
        self.purge(&st.tree, rows, |_| true)
    }

    /// A major compaction of table `name`: flushes its memtables, then
    /// compacts every tablet down to one sorted level, and waits (GC rules
    /// apply on the way, so expired cells are gone after it).
    pub fn compact_table(&self, name: &str) -> Result<()> {
        let t = self.table(name)?;
        let tree = t.state.read().tree.clone();
        tracing::info!(table = name, "major compaction started");
        tree.compact()?;
        tracing::info!(table = name, "major compaction done");
        Ok(())
    }

    /// The table's tablets in row order.
    pub fn tablets(&self, name: &str) -> Result<Vec<TabletInfo>> {
        let t = self.table(name)?;
        let tree = t.state.read().tree.clone();
        Ok(tree
            .tablets()
            .into_iter()
            .map(|t| TabletInfo {
                id: t.id,
                start_row: crate::cell_key::row_of_prefix(&t.lo),
                end_row: t.hi.as_deref().map(crate::cell_key::row_of_prefix),
                size_bytes: t.size_bytes,
                memtable_bytes: t.memtable_bytes,
                files_per_level: t.files_per_level.to_vec(),
                shared_files: t.shared_files,
            })
            .collect())
    }

    /// Deletes the keys of `rows` that `pred` accepts, in bounded batches.
    fn purge(&self, tree: &Tree, rows: RowSet, pred: impl Fn(&[u8]) -> bool) -> Result<()> {
        let snapshot = self.engine.snapshot();
        for span in rows.spans() {
            let lower = if span.start.is_empty() {
                Bound::Unbounded
            } else {
                Bound::Included(span.start.as_slice())
            };
            let upper = span
                .end
                .as_deref()
                .map_or(Bound::Unbounded, Bound::Excluded);
            let mut batch = WriteBatch::new();
            for entry in tree.range(lower, upper, Direction::Forward, Some(&snapshot))? {
                let (k, _) = entry?;
                if pred(&k) {
                    batch.delete(tree.id(), &k);
                }
                if batch.len() >= PURGE_BATCH_OPS {
                    self.engine.write(std::mem::take(&mut batch))?;
                }
            }
            if !batch.is_empty() {
                self.engine.write(batch)?;
            }
        }
        Ok(())
    }
}
