//! Taking a range of a table's rows from another database's copy of the
//! table, by its files: what a cluster merge does to give the merged
//! tablet its right half (docs/cluster.md, "Merges"). The other database
//! is closed; its manifest is read (`strata_engine::manifest::read_stored`)
//! and its tables copied, never its rows.

use strata_engine::manifest::StoredState;
use strata_engine::Ingested;

use crate::cell_key::row_prefix;
use crate::database::{Database, CATALOG_TREE};
use crate::error::{invalid, Result};

impl Database {
    /// Gives `table` the rows `[start, end)` (`start` empty: from the
    /// first row; `end` None: to the last) that `source` holds: the stored
    /// state of a closed database holding only this table (a cluster
    /// tablet's). `table` must hold no row in the range
    /// ([`Database::retain_rows`] empties what lies outside a tablet's
    /// own). `place(source number, number here)` copies each of the
    /// source's tables into this database's storage; then one manifest
    /// edit makes them the range's data.
    pub fn ingest_rows(
        &self,
        table: &str,
        source: &StoredState,
        start: &[u8],
        end: Option<&[u8]>,
        place: &mut dyn FnMut(u64, u64) -> strata_engine::Result<()>,
    ) -> Result<Ingested> {
        let trees: Vec<u32> = source
            .trees
            .iter()
            .filter(|(_, name)| name.as_str() != CATALOG_TREE)
            .map(|(&id, _)| id)
            .collect();
        let [tree] = trees[..] else {
            return invalid(format!(
                "ingesting rows of {table}: the source holds {} tables, not one",
                trees.len()
            ));
        };
        let lo = if start.is_empty() {
            Vec::new()
        } else {
            row_prefix(start)
        };
        let hi = end.map(row_prefix);
        let tablets: Vec<_> = source.tablets_of(tree).into_iter().cloned().collect();
        let t = self.table(table)?;
        let st = t.state.write();
        Ok(st
            .tree
            .ingest(&lo, hi.as_deref(), &tablets, source.last_seq, place)?)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use strata_engine::manifest::{read_stored, table_file_name};
    use strata_engine::storage::LocalStorage;

    use crate::database::{Database, DatabaseOptions};
    use crate::mutation::Mutation;
    use crate::read::ReadRequest;
    use crate::row::RowSet;
    use crate::schema::Family;

    const T: &str = "projects/p/instances/i/tables/t";

    fn with_rows(dir: &std::path::Path, rows: &[&str], value: &str) -> Database {
        let db = Database::open(dir, DatabaseOptions::default()).unwrap();
        let mut families = BTreeMap::new();
        families.insert("f".to_string(), Family::default());
        db.create_table(T, families, false).unwrap();
        for r in rows {
            let m = Mutation::SetCell {
                family: "f".into(),
                qualifier: b"q".to_vec(),
                timestamp_micros: 1000,
                value: value.as_bytes().to_vec(),
            };
            db.mutate_row(T, r.as_bytes(), &[m]).unwrap();
        }
        db.engine().flush_all().unwrap();
        db
    }

    fn rows(db: &Database) -> Vec<(String, String)> {
        let req = ReadRequest {
            rows: RowSet::all(),
            filter: None,
            rows_limit: 0,
            reversed: false,
        };
        db.read_rows(T, req)
            .unwrap()
            .map(|r| {
                let r = r.unwrap();
                let v = r.cells[0].value.clone();
                (
                    String::from_utf8(r.key).unwrap(),
                    String::from_utf8(v).unwrap(),
                )
            })
            .collect()
    }

    #[test]
    fn the_right_half_comes_from_the_other_database() {
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        // Each holds rows of the other's range too (as split children do
        // until compaction), which must not show.
        let left = with_rows(a.path(), &["a", "b", "x"], "left");
        left.retain_rows(T, b"", Some(b"m")).unwrap();
        with_rows(b.path(), &["c", "n", "o"], "right")
            .close()
            .unwrap();
        let b_db = Database::open(b.path(), DatabaseOptions::default()).unwrap();
        b_db.retain_rows(T, b"m", None).unwrap();
        b_db.close().unwrap();

        let stored = read_stored(&*LocalStorage::open(b.path()).unwrap()).unwrap();
        let mut place = |from: u64, to: u64| {
            std::fs::copy(
                b.path().join(table_file_name(from)),
                a.path().join(table_file_name(to)),
            )
            .map(|_| ())
            .map_err(|e| strata_engine::Error::io("copy", e))
        };
        // Rows of its own in the range: refused.
        assert!(left
            .ingest_rows(T, &stored, b"a", None, &mut place)
            .is_err());
        let done = left
            .ingest_rows(T, &stored, b"m", None, &mut place)
            .unwrap();
        assert!(done.files >= 1);
        let want = vec![
            ("a".to_string(), "left".to_string()),
            ("b".to_string(), "left".to_string()),
            ("n".to_string(), "right".to_string()),
            ("o".to_string(), "right".to_string()),
        ];
        assert_eq!(rows(&left), want);
        left.close().unwrap();
        let left = Database::open(a.path(), DatabaseOptions::default()).unwrap();
        assert_eq!(rows(&left), want);
    }
}
