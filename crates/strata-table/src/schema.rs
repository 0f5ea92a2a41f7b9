//! Table schemas: column families with their GC rules and value types,
//! and their binary encoding in the catalog (docs/formats/catalog.md).

use crate::cell_key::is_valid_family;
use crate::gc::GcRule;
use std::collections::BTreeMap;
use strata_engine::coding::{put_len_prefixed, put_u32, put_u64, Reader};

/// Column families a table may have (Bigtable's limit).
pub const FAMILIES_MAX: usize = 1000;
/// A table id is at most this long (Bigtable's limit).
pub const TABLE_ID_BYTES_MAX: usize = 50;
/// Encoded schemas larger than this are rejected on decode.
const SCHEMA_BYTES_MAX: usize = 16 << 20;

/// What a family's cells hold. The tag is stored in the catalog: never
/// renumber.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ValueType {
    /// Plain bytes written by SetCell (the default).
    Bytes = 0,
    /// An int64 aggregate: AddToCell adds (8-byte big-endian cells).
    Int64Sum = 1,
    /// An int64 aggregate keeping the minimum.
    Int64Min = 2,
    /// An int64 aggregate keeping the maximum.
    Int64Max = 3,
    /// An HLL++ unique count of int64 inputs (cells hold sketches,
    /// docs/formats/hll.md).
    HllInt64 = 4,
    /// An HLL++ unique count of raw byte inputs.
    HllBytes = 5,
}

impl ValueType {
    fn from_tag(t: u8) -> Option<ValueType> {
        Some(match t {
            0 => ValueType::Bytes,
            1 => ValueType::Int64Sum,
            2 => ValueType::Int64Min,
            3 => ValueType::Int64Max,
            4 => ValueType::HllInt64,
            5 => ValueType::HllBytes,
            _ => return None,
        })
    }

    /// Whether cells of this type are aggregates (written by AddToCell and
    /// MergeToCell).
    pub fn is_aggregate(self) -> bool {
        self != ValueType::Bytes
    }

    /// Whether cells of this type are HLL++ sketches.
    pub fn is_hll(self) -> bool {
        matches!(self, ValueType::HllInt64 | ValueType::HllBytes)
    }
}

/// One column family.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Family {
    pub gc_rule: GcRule,
    pub value_type: ValueType,
}

impl Default for Family {
    fn default() -> Self {
        Family {
            gc_rule: GcRule::KeepAll,
            value_type: ValueType::Bytes,
        }
    }
}

/// A table's schema as the catalog stores it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Schema {
    /// The engine tree holding the table's cells.
    pub tree: String,
    pub deletion_protection: bool,
    pub families: BTreeMap<String, Family>,
}

/// Why a schema cannot be decoded.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("corrupt catalog entry: {0}")]
pub struct SchemaDecodeError(pub &'static str);

/// Whether `id` is a valid table id: `[_a-zA-Z0-9][-_.a-zA-Z0-9]*`, at most
/// 50 bytes.
pub fn is_valid_table_id(id: &str) -> bool {
    id.len() <= TABLE_ID_BYTES_MAX && is_valid_family(id)
}

const SCHEMA_VERSION: u8 = 1;
// GC rule tags, stored in the catalog: never renumber.
const GC_KEEP_ALL: u8 = 0;
const GC_MAX_VERSIONS: u8 = 1;
const GC_MAX_AGE: u8 = 2;
const GC_UNION: u8 = 3;
const GC_INTERSECTION: u8 = 4;

impl Schema {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![SCHEMA_VERSION];
        put_len_prefixed(&mut out, self.tree.as_bytes());
        out.push(self.deletion_protection as u8);
        put_u32(&mut out, self.families.len() as u32);
        for (name, fam) in &self.families {
            put_len_prefixed(&mut out, name.as_bytes());
            out.push(fam.value_type as u8);
            put_gc(&mut out, &fam.gc_rule);
        }
        out
    }

    pub fn decode(src: &[u8]) -> Result<Schema, SchemaDecodeError> {
        if src.len() > SCHEMA_BYTES_MAX {
            return Err(SchemaDecodeError("entry too large"));
        }
        let mut r = Reader::new(src, "catalog entry");
        if r.u8().map_err(truncated)? != SCHEMA_VERSION {
            return Err(SchemaDecodeError("unknown schema version"));
        }
        let tree = r.string().map_err(truncated)?;
        let deletion_protection = match r.u8().map_err(truncated)? {
            0 => false,
            1 => true,
            _ => return Err(SchemaDecodeError("bad deletion_protection flag")),
        };
        let n = r.u32().map_err(truncated)? as usize;
        if n > FAMILIES_MAX {
            return Err(SchemaDecodeError("too many families"));
        }
        let mut families = BTreeMap::new();
        for _ in 0..n {
            let name = r.string().map_err(truncated)?;
            if !is_valid_family(&name) {
                return Err(SchemaDecodeError("bad family name"));
            }
            let value_type = ValueType::from_tag(r.u8().map_err(truncated)?)
                .ok_or(SchemaDecodeError("unknown value type"))?;
            let gc_rule = decode_gc(&mut r, 0)?;
            families.insert(
                name,
                Family {
                    gc_rule,
                    value_type,
                },
            );
        }
        if !r.is_empty() {
            return Err(SchemaDecodeError("trailing bytes"));
        }
        Ok(Schema {
            tree,
            deletion_protection,
            families,
        })
    }
}

fn put_gc(out: &mut Vec<u8>, rule: &GcRule) {
    match rule {
        GcRule::KeepAll => out.push(GC_KEEP_ALL),
        GcRule::MaxVersions(n) => {
            out.push(GC_MAX_VERSIONS);
            put_u32(out, *n);
        }
        GcRule::MaxAgeMicros(m) => {
            out.push(GC_MAX_AGE);
            put_u64(out, *m as u64);
        }
        GcRule::Union(rules) | GcRule::Intersection(rules) => {
            out.push(if matches!(rule, GcRule::Union(_)) {
                GC_UNION
            } else {
                GC_INTERSECTION
            });
            put_u32(out, rules.len() as u32);
            rules.iter().for_each(|r| put_gc(out, r));
        }
    }
}

/// Decoding with the engine's cursor; a truncated or malformed field is a
/// corrupt entry.
fn truncated(_: strata_engine::Error) -> SchemaDecodeError {
    SchemaDecodeError("truncated or malformed field")
}

fn decode_gc(r: &mut Reader<'_>, depth: usize) -> Result<GcRule, SchemaDecodeError> {
    if depth >= crate::gc::GC_RULE_DEPTH_MAX {
        return Err(SchemaDecodeError("GC rule nested too deep"));
    }
    Ok(match r.u8().map_err(truncated)? {
        GC_KEEP_ALL => GcRule::KeepAll,
        GC_MAX_VERSIONS => GcRule::MaxVersions(r.u32().map_err(truncated)?),
        GC_MAX_AGE => GcRule::MaxAgeMicros(r.u64().map_err(truncated)? as i64),
        t @ (GC_UNION | GC_INTERSECTION) => {
            let n = r.u32().map_err(truncated)? as usize;
            if n > r.remaining().len() {
                return Err(SchemaDecodeError("truncated GC rule list"));
            }
            let rules = (0..n)
                .map(|_| decode_gc(r, depth + 1))
                .collect::<Result<Vec<_>, _>>()?;
            if t == GC_UNION {
                GcRule::Union(rules)
            } else {
                GcRule::Intersection(rules)
            }
        }
        _ => return Err(SchemaDecodeError("unknown GC rule tag")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Schema {
        let mut families = BTreeMap::new();
        families.insert("cf".into(), Family::default());
        families.insert(
            "agg".into(),
            Family {
                gc_rule: GcRule::Union(vec![
                    GcRule::MaxVersions(3),
                    GcRule::Intersection(vec![GcRule::MaxAgeMicros(86_400_000_000)]),
                ]),
                value_type: ValueType::Int64Max,
            },
        );
        Schema {
            tree: "t/7".into(),
            deletion_protection: true,
            families,
        }
    }

    #[test]
    fn round_trip() {
        let s = sample();
        assert_eq!(Schema::decode(&s.encode()).unwrap(), s);
    }

    #[test]
    fn every_truncation_and_flip_is_an_error_or_valid() {
        let enc = sample().encode();
        for n in 0..enc.len() {
            assert!(Schema::decode(&enc[..n]).is_err(), "truncated at {n}");
        }
        for i in 0..enc.len() {
            for bit in 0..8 {
                let mut e = enc.clone();
                e[i] ^= 1 << bit;
                // The catalog entry is guarded by the engine's checksums;
                // here decoding just must not panic.
                let _ = Schema::decode(&e);
            }
        }
    }

    #[test]
    fn table_ids() {
        assert!(is_valid_table_id("my-table_1.x"));
        assert!(!is_valid_table_id(""));
        assert!(!is_valid_table_id("-x"));
        assert!(!is_valid_table_id(&"a".repeat(51)));
        assert!(!is_valid_table_id("a/b"));
    }
}
