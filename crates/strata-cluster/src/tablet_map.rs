//! The tablet map: which server serves which row range of which table, at
//! which assignment epoch (docs/cluster.md, "etcd keys").
//!
//! One etcd key per tablet, `/<cluster>/tablets/<table>/<id>`, written only
//! by the master (in txns its term guards); every server holds the whole
//! map in memory, filled by a watch, and routes requests with it.
//!
//! A record's value is text, one `field value` per line, readable with
//! `etcdctl get`:
//!
//! ```text
//! format 1
//! table users
//! id 17
//! start 7573657234
//! end -
//! owner server-a@1042
//! epoch 3
//! state serving
//! ```
//!
//! Row keys are hex (`-` for an unbounded end; the start of a table's
//! first tablet is the empty string). `owner` is `-` when no server has the
//! tablet, else the server's id and incarnation (`master::owner_name`). The epoch grows by one at every change of owner: a server acts
//! on an assignment only at the epoch it was given.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::ops::Bound;

use crate::error::{Error, Result};

/// The format number written in every record.
pub const FORMAT: u32 = 1;

/// A row key's or name's longest accepted length (Bigtable's row keys are
/// at most 4 KiB; names are short).
const ROW_KEY_BYTES_MAX: usize = 4096;
const NAME_BYTES_MAX: usize = 256;

/// The key prefix of a cluster's tablet map: `/<cluster>/tablets/`.
pub fn tablets_prefix(cluster: &str) -> String {
    format!("/{cluster}/tablets/")
}

/// The key of one tablet: `/<cluster>/tablets/<table>/<id, 20 digits>`.
pub fn tablet_key(cluster: &str, table: &str, id: u64) -> String {
    format!("{}{table}/{id:020}", tablets_prefix(cluster))
}

/// Where a tablet is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TabletState {
    /// No server has it (a new table's tablets, or a dead server's before
    /// recovery assigns them).
    Unassigned,
    /// `owner` serves it.
    Serving,
    /// Leaving `owner` for another server (docs/cluster.md, "Moves").
    Moving,
    /// Its owner died; its log records are being recovered.
    Recovering,
}

impl TabletState {
    /// The state's name in a record (and in `strata cluster status`).
    pub fn name(self) -> &'static str {
        match self {
            TabletState::Unassigned => "unassigned",
            TabletState::Serving => "serving",
            TabletState::Moving => "moving",
            TabletState::Recovering => "recovering",
        }
    }

    fn parse(s: &str) -> Option<TabletState> {
        Some(match s {
            "unassigned" => TabletState::Unassigned,
            "serving" => TabletState::Serving,
            "moving" => TabletState::Moving,
            "recovering" => TabletState::Recovering,
            _ => return None,
        })
    }
}

/// One tablet of the map.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TabletRecord {
    pub table: String,
    /// Cluster-wide, never reused.
    pub id: u64,
    /// Rows `[start, end)`; `end` None: to the end of the table.
    pub start: Vec<u8>,
    pub end: Option<Vec<u8>>,
    /// The server that has it, if any.
    pub owner: Option<String>,
    /// Grows by one at every change of owner.
    pub epoch: u64,
    pub state: TabletState,
}

impl TabletRecord {
    /// Whether `row` is in the tablet's range.
    pub fn contains(&self, row: &[u8]) -> bool {
        row >= self.start.as_slice() && self.end.as_deref().is_none_or(|end| row < end)
    }

    /// The record's etcd value.
    pub fn encode(&self) -> Vec<u8> {
        let mut s = String::with_capacity(128);
        let _ = writeln!(s, "format {FORMAT}");
        let _ = writeln!(s, "table {}", self.table);
        let _ = writeln!(s, "id {}", self.id);
        let _ = writeln!(s, "start {}", hex(&self.start));
        let _ = writeln!(s, "end {}", self.end.as_deref().map_or("-".into(), hex));
        let _ = writeln!(s, "owner {}", self.owner.as_deref().unwrap_or("-"));
        let _ = writeln!(s, "epoch {}", self.epoch);
        let _ = writeln!(s, "state {}", self.state.name());
        s.into_bytes()
    }

    /// Decodes the value of etcd key `key`; any damage is
    /// `Error::Protocol` naming the key.
    pub fn decode(key: &str, value: &[u8]) -> Result<TabletRecord> {
        let bad = |why: String| Error::Protocol(format!("tablet record {key}: {why}"));
        let text = std::str::from_utf8(value).map_err(|_| bad("not UTF-8".into()))?;
        let mut fields: BTreeMap<&str, &str> = BTreeMap::new();
        for line in text.lines() {
            let (name, v) = line
                .split_once(' ')
                .ok_or_else(|| bad(format!("line {line:?} is not `field value`")))?;
            if fields.insert(name, v).is_some() {
                return Err(bad(format!("field {name} twice")));
            }
        }
        let field = |name: &str| {
            fields
                .get(name)
                .copied()
                .ok_or_else(|| bad(format!("no field {name}")))
        };
        let number = |name: &str| -> Result<u64> {
            field(name)?
                .parse()
                .map_err(|_| bad(format!("field {name} is not a number")))
        };
        let format = number("format")?;
        if format != u64::from(FORMAT) {
            return Err(bad(format!("format {format}, this server reads {FORMAT}")));
        }
        let row = |name: &str| -> Result<Vec<u8>> {
            let v = unhex(field(name)?).ok_or_else(|| bad(format!("field {name} is not hex")))?;
            if v.len() > ROW_KEY_BYTES_MAX {
                return Err(bad(format!("field {name} is longer than a row key")));
            }
            Ok(v)
        };
        let table = field("table")?;
        if table.is_empty() || table.len() > NAME_BYTES_MAX {
            return Err(bad("bad table name".into()));
        }
        let record = TabletRecord {
            table: table.to_string(),
            id: number("id")?,
            start: row("start")?,
            end: match field("end")? {
                "-" => None,
                _ => Some(row("end")?),
            },
            owner: match field("owner")? {
                "-" => None,
                o if o.len() <= NAME_BYTES_MAX => Some(o.to_string()),
                _ => return Err(bad("owner name too long".into())),
            },
            epoch: number("epoch")?,
            state: TabletState::parse(field("state")?)
                .ok_or_else(|| bad("unknown state".into()))?,
        };
        if record.end.as_ref().is_some_and(|end| *end <= record.start) {
            return Err(bad("end is not above start".into()));
        }
        if (record.owner.is_none()) != (record.state == TabletState::Unassigned) {
            return Err(bad("an owner exactly when assigned".into()));
        }
        Ok(record)
    }
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

pub(crate) fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// The whole map in memory: each table's tablets by start row.
#[derive(Clone, Debug, Default)]
pub struct TabletMap {
    tables: BTreeMap<String, BTreeMap<Vec<u8>, TabletRecord>>,
    /// Table and start of each tablet id (for updates and deletes by key).
    by_id: BTreeMap<u64, (String, Vec<u8>)>,
}

impl TabletMap {
    /// Puts `record` in, replacing the tablet of the same id (its range
    /// may have changed) and any other tablet starting at its start.
    pub fn upsert(&mut self, record: TabletRecord) {
        self.remove(record.id);
        let table = self.tables.entry(record.table.clone()).or_default();
        if let Some(old) = table.insert(record.start.clone(), record.clone()) {
            self.by_id.remove(&old.id);
        }
        self.by_id
            .insert(record.id, (record.table.clone(), record.start));
    }

    /// Takes tablet `id` out; returns it.
    pub fn remove(&mut self, id: u64) -> Option<TabletRecord> {
        let (table, start) = self.by_id.remove(&id)?;
        let tablets = self.tables.get_mut(&table)?;
        let removed = tablets.remove(&start);
        if tablets.is_empty() {
            self.tables.remove(&table);
        }
        removed
    }

    /// The tablet of `table` whose range holds `row`.
    pub fn route(&self, table: &str, row: &[u8]) -> Option<&TabletRecord> {
        let (_, t) = self
            .tables
            .get(table)?
            .range::<[u8], _>((Bound::Unbounded, Bound::Included(row)))
            .next_back()?;
        t.contains(row).then_some(t)
    }

    /// A table's tablets in row order.
    pub fn tablets(&self, table: &str) -> impl Iterator<Item = &TabletRecord> {
        self.tables.get(table).into_iter().flat_map(|t| t.values())
    }

    /// Every tablet, by table then row.
    pub fn all(&self) -> impl Iterator<Item = &TabletRecord> {
        self.tables.values().flat_map(|t| t.values())
    }

    pub fn get(&self, id: u64) -> Option<&TabletRecord> {
        let (table, start) = self.by_id.get(&id)?;
        self.tables.get(table)?.get(start)
    }

    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    /// Checks that each table's tablets cover its rows exactly once: the
    /// first starts at the empty row, each ends where the next starts, the
    /// last is unbounded. (A map read from etcd between the writes of one
    /// txn never shows a gap: a split or merge is one txn.)
    pub fn check(&self) -> std::result::Result<(), String> {
        for (name, tablets) in &self.tables {
            let mut expected_start: Option<&[u8]> = Some(&[]);
            for t in tablets.values() {
                match expected_start {
                    Some(s) if s == t.start.as_slice() => {}
                    Some(s) => {
                        return Err(format!(
                            "table {name}: tablet {} starts at {} where {} was expected",
                            t.id,
                            hex(&t.start),
                            hex(s)
                        ))
                    }
                    None => {
                        return Err(format!(
                            "table {name}: tablet {} follows an unbounded tablet",
                            t.id
                        ))
                    }
                }
                expected_start = t.end.as_deref();
            }
            if let Some(end) = expected_start {
                return Err(format!(
                    "table {name}: the last tablet ends at {}, not unbounded",
                    hex(end)
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(id: u64, start: &[u8], end: Option<&[u8]>, owner: Option<&str>) -> TabletRecord {
        TabletRecord {
            table: "t".into(),
            id,
            start: start.to_vec(),
            end: end.map(<[u8]>::to_vec),
            owner: owner.map(str::to_string),
            epoch: 1,
            state: if owner.is_some() {
                TabletState::Serving
            } else {
                TabletState::Unassigned
            },
        }
    }

    #[test]
    fn records_round_trip_and_damage_is_an_error() {
        for r in [
            rec(1, b"", None, None),
            rec(u64::MAX, b"\x00\xffrow", Some(b"\x01"), Some("server-a")),
        ] {
            let bytes = r.encode();
            assert_eq!(TabletRecord::decode("k", &bytes).unwrap(), r);
        }
        let good = String::from_utf8(rec(2, b"a", Some(b"b"), Some("s")).encode()).unwrap();
        for bad in [
            good.replace("format 1", "format 2"),
            good.replace("start 61", "start 6"),
            good.replace("end 62", "end 60"),
            good.replace("state serving", "state unassigned"),
            good.replace("owner s", "owner -"),
            good.replace("id 2\n", ""),
            good.clone() + "id 3\n",
            good.replace("epoch 1", "epoch x"),
        ] {
            let err = TabletRecord::decode("k", bad.as_bytes()).expect_err(&bad);
            assert!(err.to_string().contains("tablet record k"), "{err}");
        }
    }

    #[test]
    fn routing_finds_the_tablet_of_a_row() {
        let mut m = TabletMap::default();
        m.upsert(rec(1, b"", Some(b"m"), Some("a")));
        m.upsert(rec(2, b"m", None, Some("b")));
        m.check().unwrap();
        assert_eq!(m.route("t", b"").unwrap().id, 1);
        assert_eq!(m.route("t", b"lzzz").unwrap().id, 1);
        assert_eq!(m.route("t", b"m").unwrap().id, 2);
        assert_eq!(m.route("t", b"\xff\xff").unwrap().id, 2);
        assert!(m.route("other", b"m").is_none());

        // A split of tablet 2 in place: 2 shrinks, 3 takes the rest.
        m.upsert(rec(2, b"m", Some(b"t"), Some("b")));
        assert!(m.check().is_err(), "a gap until the other half arrives");
        assert!(m.route("t", b"u").is_none());
        m.upsert(rec(3, b"t", None, Some("c")));
        m.check().unwrap();
        assert_eq!(m.route("t", b"u").unwrap().owner.as_deref(), Some("c"));
        assert_eq!(m.len(), 3);
        assert_eq!(m.remove(3).unwrap().id, 3);
        assert!(m.get(3).is_none());
    }
}
