//! Keeping only a range of a table's rows: what a cluster tablet does when
//! it opens as one half of a split (docs/cluster.md, "Splits"). Its
//! storage starts as a copy of its parent's, which holds the other half
//! too.

use crate::cell_key::row_prefix;
use crate::database::Database;
use crate::error::Result;

impl Database {
    /// Deletes every row of `table` outside `[start, end)` (`start` empty:
    /// from the first row; `end` None: to the last). The engine's tablets
    /// are split at both bounds first, so that what lies outside is whole
    /// tablets, emptied by one manifest edit each without reading them;
    /// files reaching across a bound stay, read only within the range,
    /// until compaction rewrites them. Returns whether anything was
    /// outside. Idempotent: a second call finds nothing and writes
    /// nothing.
    pub fn retain_rows(&self, table: &str, start: &[u8], end: Option<&[u8]>) -> Result<bool> {
        let t = self.table(table)?;
        let st = t.state.write();
        let lo = (!start.is_empty()).then(|| row_prefix(start));
        let hi = end.map(row_prefix);
        if let (Some(lo), Some(hi)) = (&lo, &hi) {
            if lo >= hi {
                return crate::error::invalid(format!(
                    "retaining rows of {table}: the range's start is not below its end"
                ));
            }
        }
        for bound in [&lo, &hi].into_iter().flatten() {
            st.tree.split_at(bound)?;
        }
        let tablets = st.tree.tablets();
        let holds_data = |t: &strata_engine::TabletInfo| {
            t.size_bytes > 0 || t.memtable_bytes > 0 || t.files_per_level.iter().any(|&n| n > 0)
        };
        let mut changed = false;
        if let Some(lo) = &lo {
            let below = tablets
                .iter()
                .filter(|t| t.hi.as_ref().is_some_and(|h| h <= lo));
            if below.clone().any(holds_data) {
                st.tree.drop_whole_files(&[], Some(lo))?;
                changed = true;
            }
        }
        if let Some(hi) = &hi {
            let above = tablets.iter().filter(|t| t.lo.as_slice() >= hi.as_slice());
            if above.clone().any(holds_data) {
                st.tree.drop_whole_files(hi, None)?;
                changed = true;
            }
        }
        Ok(changed)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use crate::database::{Database, DatabaseOptions};
    use crate::mutation::Mutation;
    use crate::read::ReadRequest;
    use crate::row::RowSet;
    use crate::schema::Family;

    const T: &str = "projects/p/instances/i/tables/t";

    fn rows(db: &Database) -> Vec<Vec<u8>> {
        let req = ReadRequest {
            rows: RowSet::all(),
            filter: None,
            rows_limit: 0,
            reversed: false,
        };
        db.read_rows(T, req)
            .unwrap()
            .map(|r| r.unwrap().key)
            .collect()
    }

    #[test]
    fn keeps_the_range_and_drops_the_rest_once() {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::open(dir.path(), DatabaseOptions::default()).unwrap();
        let mut families = BTreeMap::new();
        families.insert("f".to_string(), Family::default());
        db.create_table(T, families, false).unwrap();
        for r in ["a", "b", "c", "d", "e"] {
            let m = Mutation::SetCell {
                family: "f".into(),
                qualifier: b"q".to_vec(),
                timestamp_micros: 1000,
                value: r.as_bytes().to_vec(),
            };
            db.mutate_row(T, r.as_bytes(), &[m]).unwrap();
        }
        db.engine().flush_all().unwrap();
        assert!(db.retain_rows(T, b"b", Some(b"d")).unwrap());
        assert_eq!(rows(&db), vec![b"b".to_vec(), b"c".to_vec()]);
        assert!(!db.retain_rows(T, b"b", Some(b"d")).unwrap());

        // Reopened: the same rows (the drop is in the manifest).
        db.close().unwrap();
        let db = Database::open(dir.path(), DatabaseOptions::default()).unwrap();
        assert_eq!(rows(&db), vec![b"b".to_vec(), b"c".to_vec()]);
        assert!(!db.retain_rows(T, b"b", Some(b"d")).unwrap());
        // Unbounded on one side.
        assert!(db.retain_rows(T, b"c", None).unwrap());
        assert_eq!(rows(&db), vec![b"c".to_vec()]);
        assert!(db.retain_rows(T, b"", Some(b"b")).unwrap());
        assert!(rows(&db).is_empty());
        assert!(db.retain_rows(T, b"d", Some(b"c")).is_err());
    }
}
