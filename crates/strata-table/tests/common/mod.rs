//! What the row-operation tests share: a database with one table.

use std::collections::BTreeMap;

use strata_table::{
    Database, DatabaseOptions, Family, GcRule, ReadRequest, RmwRule, RowSet, ValueType,
};

/// The table every test writes.
pub const T: &str = "projects/p/instances/i/tables/t";

/// Opens a database in `dir` with table `T`: one family `cf` keeping
/// every version.
pub fn open(dir: &std::path::Path) -> Database {
    let db = Database::open(dir, DatabaseOptions::default()).unwrap();
    let families: BTreeMap<String, Family> = [(
        "cf".to_string(),
        Family {
            gc_rule: GcRule::KeepAll,
            value_type: ValueType::Bytes,
        },
    )]
    .into();
    db.create_table(T, families, false).unwrap();
    db
}

/// A ReadModifyWriteRow rule appending `v` to `cf:q`.
pub fn append(q: &str, v: &str) -> RmwRule {
    RmwRule::Append {
        family: "cf".into(),
        qualifier: q.as_bytes().to_vec(),
        value: v.as_bytes().to_vec(),
    }
}

/// (qualifier, value) of every cell of `row`, newest first per column.
pub fn cells(db: &Database, row: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
    let req = ReadRequest {
        rows: RowSet {
            keys: vec![row.to_vec()],
            ranges: vec![],
        },
        filter: None,
        rows_limit: 0,
        reversed: false,
    };
    db.read_rows(T, req)
        .unwrap()
        .flat_map(|r| r.unwrap().cells)
        .map(|c| (c.qualifier, c.value))
        .collect()
}
