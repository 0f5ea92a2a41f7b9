//! GC rules enforced in compaction: the engine's compaction filter for
//! table trees. Along each column (versions newest first, as compaction
//! sees them) it counts live versions and drops those the family's rule
//! erases, and every cell of a family the schema no longer has.
//!
//! Ranks are counted among the versions the compaction reads. A newer
//! version outside its inputs only makes ranks smaller (fewer cells
//! dropped); a newer version deleted by a tombstone outside its inputs
//! still counts, so a version dropped as beyond `max_versions` stays gone
//! if newer versions are deleted later — as in Bigtable and HBase, where
//! collected cells do not come back.

use crate::gc::GcRule;
use crate::mutation::ts_of;
use crate::rows::server_now_micros;
use crate::schema::Schema;
use parking_lot::RwLock;
use std::sync::Arc;
use strata_engine::{CompactionFilter, KeyFilter};

/// A table's current schema, shared with its compaction filter.
pub(crate) type SchemaCell = Arc<RwLock<Arc<Schema>>>;

pub(crate) struct GcFilter {
    pub(crate) schema: SchemaCell,
}

impl CompactionFilter for GcFilter {
    fn name(&self) -> &str {
        "strata.gc.v1"
    }

    fn start(&self) -> Box<dyn KeyFilter> {
        Box::new(GcKeyFilter {
            schema: self.schema.read().clone(),
            now_micros: server_now_micros(),
            column: Vec::new(),
            rank: 0,
            rule: Rule::Keep,
        })
    }
}

enum Rule {
    /// Undecodable key: never drop.
    Keep,
    /// The family is gone: drop.
    Unknown,
    Gc(GcRule),
}

struct GcKeyFilter {
    schema: Arc<Schema>,
    now_micros: i64,
    /// The current column: the key without its timestamp.
    column: Vec<u8>,
    rank: usize,
    rule: Rule,
}

impl KeyFilter for GcKeyFilter {
    fn drop_key(&mut self, key: &[u8]) -> bool {
        if key.len() < 8 {
            return false;
        }
        let column = &key[..key.len() - 8];
        if column == self.column.as_slice() {
            self.rank += 1;
        } else {
            self.column.clear();
            self.column.extend_from_slice(column);
            self.rank = 0;
            self.rule = match crate::cell_key::decode(key) {
                Err(_) => Rule::Keep,
                Ok(c) => match self.schema.families.get(&c.family) {
                    None => Rule::Unknown,
                    Some(f) => Rule::Gc(f.gc_rule.clone()),
                },
            };
        }
        match &self.rule {
            Rule::Keep => false,
            Rule::Unknown => true,
            Rule::Gc(r) => r.erases(self.rank, ts_of(key), self.now_micros),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cell_key::encode;
    use crate::schema::Family;
    use std::collections::BTreeMap;

    #[test]
    fn ranks_per_column_and_unknown_families() {
        let mut families = BTreeMap::new();
        families.insert(
            "v".to_string(),
            Family {
                gc_rule: GcRule::MaxVersions(2),
                ..Family::default()
            },
        );
        families.insert("all".to_string(), Family::default());
        let schema = Schema {
            tree: "t1".into(),
            deletion_protection: false,
            families,
        };
        let f = GcFilter {
            schema: Arc::new(RwLock::new(Arc::new(schema))),
        };
        let mut kf = f.start();
        let k = |fam: &str, q: &[u8], ts: i64| encode(b"r", fam, q, ts).unwrap();
        // In key order: family "all", then "gone", then "v" columns a, b.
        assert!(!kf.drop_key(&k("all", b"a", 3000)));
        assert!(!kf.drop_key(&k("all", b"a", 2000)));
        assert!(!kf.drop_key(&k("all", b"a", 1000)));
        assert!(kf.drop_key(&k("gone", b"a", 1000)));
        assert!(!kf.drop_key(&k("v", b"a", 3000)));
        assert!(!kf.drop_key(&k("v", b"a", 2000)));
        assert!(kf.drop_key(&k("v", b"a", 1000)));
        assert!(!kf.drop_key(&k("v", b"b", 1000)));
    }
}
