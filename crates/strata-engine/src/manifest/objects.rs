//! The manifest on a storage of whole objects: one object per committed
//! version, `manifest/<version>`, each made with create-if-absent, so two
//! writers that read one version can never both commit the next
//! (docs/formats/object-store.md, "Manifest objects").
//!
//! Object: `magic u32 | format u8 | kind u8 | epoch u64 | payload_len u32 |
//! crc32c u32 | payload`, little-endian, the crc covering the 18 bytes
//! before it and the payload. The payload is a version edit
//! (`edit.rs`); a snapshot's edit recreates every tree, tablet and file.

use crate::coding::{get_u32, get_u64};
use crate::error::{Error, Result};
use crate::storage::{put_new, Storage};

/// "SMOB" read as a little-endian u32.
pub const MAGIC: u32 = u32::from_le_bytes(*b"SMOB");
pub const FORMAT: u8 = 1;
const HEADER_BYTES: usize = 22;

/// The kinds of manifest objects. Stored: never renumber.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Every live tree, tablet and file.
    Snapshot = 1,
    /// One version edit on top of the versions before it.
    Edit = 2,
}

/// File numbers each owner epoch has: epoch `e` numbers its tables from
/// `e * FILE_NUMBERS_PER_EPOCH`, so that an old owner still writing and the
/// owner that took over never name two tables alike (and a table can be
/// uploaded in parts, which cannot be conditional).
pub const FILE_NUMBERS_PER_EPOCH: u64 = 1 << 40;

/// The file numbers of owner epoch `epoch`.
pub fn file_numbers_of_epoch(epoch: u64) -> Result<std::ops::Range<u64>> {
    epoch
        .checked_mul(FILE_NUMBERS_PER_EPOCH)
        .and_then(|start| Some(start..start.checked_add(FILE_NUMBERS_PER_EPOCH)?))
        .ok_or_else(|| {
            Error::corruption(
                "manifest",
                format!("epoch {epoch}: past the last epoch with file numbers"),
            )
        })
}

/// The most manifest objects `load` fetches at once.
const LOAD_BATCH_MAX: u64 = 32;

/// A new snapshot is written after this many edits.
pub const EDITS_PER_SNAPSHOT: u64 = 1000;

const PREFIX: &str = "manifest/";

/// The object name of manifest version `version`.
pub fn object_name(version: u64) -> String {
    format!("{PREFIX}{version:020}")
}

/// The version of a manifest object name; `None` for any other name.
pub fn parse_object_name(name: &str) -> Option<u64> {
    let digits = name.strip_prefix(PREFIX)?;
    let v = digits.parse().ok()?;
    (object_name(v) == name).then_some(v)
}

pub fn encode(kind: Kind, epoch: u64, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_BYTES + payload.len());
    out.extend_from_slice(&MAGIC.to_le_bytes());
    out.push(FORMAT);
    out.push(kind as u8);
    out.extend_from_slice(&epoch.to_le_bytes());
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    let crc = crate::checksum::crc32c_append(crate::checksum::crc32c(&out), payload);
    out.extend_from_slice(&crc.to_le_bytes());
    out.extend_from_slice(payload);
    debug_assert_eq!(out.len(), HEADER_BYTES + payload.len());
    out
}

/// A decoded manifest object.
pub struct Object<'a> {
    pub kind: Kind,
    pub epoch: u64,
    pub payload: &'a [u8],
}

pub fn decode<'a>(buf: &'a [u8], name: &str) -> Result<Object<'a>> {
    let bad = |detail: &str| Error::corruption(name, detail.to_string());
    if buf.len() < HEADER_BYTES {
        return Err(bad("shorter than a manifest object header"));
    }
    if get_u32(buf, 0) != Some(MAGIC) {
        return Err(bad("bad magic: not a manifest object"));
    }
    if buf[4] != FORMAT {
        return Err(bad(&format!("unknown manifest object format {}", buf[4])));
    }
    let len = get_u32(buf, 14).unwrap_or(0) as usize;
    let crc = get_u32(buf, 18).unwrap_or(0);
    if buf.len() != HEADER_BYTES + len {
        return Err(bad("length does not match the header"));
    }
    let payload = &buf[HEADER_BYTES..];
    if crate::checksum::crc32c_append(crate::checksum::crc32c(&buf[..18]), payload) != crc {
        return Err(bad("checksum mismatch"));
    }
    let kind = match buf[5] {
        1 => Kind::Snapshot,
        2 => Kind::Edit,
        k => return Err(bad(&format!("unknown manifest object kind {k}"))),
    };
    Ok(Object {
        kind,
        epoch: get_u64(buf, 6).unwrap_or(0),
        payload,
    })
}

/// What loading found: the payloads to apply in order (the newest
/// snapshot, then every edit after it), the newest version and the
/// highest epoch.
pub struct Loaded {
    pub payloads: Vec<(String, Vec<u8>)>,
    pub version: u64,
    pub epoch: u64,
    /// The version of the snapshot the payloads start with (0: none).
    pub snapshot_version: u64,
}

/// Reads the newest snapshot and the edits after it. An empty store loads
/// as version 0, epoch 0.
pub fn load(storage: &dyn Storage) -> Result<Loaded> {
    let mut versions: Vec<u64> = storage
        .list_prefix(PREFIX)?
        .iter()
        .filter_map(|n| parse_object_name(n))
        .collect();
    versions.sort_unstable();
    let Some(&newest) = versions.last() else {
        return Ok(Loaded {
            payloads: Vec::new(),
            version: 0,
            epoch: 0,
            snapshot_version: 0,
        });
    };
    // Walk down from the newest version to its snapshot; every version in
    // between must be there. The objects are fetched a batch at a time
    // (`Storage::read_many`: at once on an object store), the first batch
    // only the newest (after a take-over, the snapshot), then batches
    // doubling up to `LOAD_BATCH_MAX`.
    let mut chain = Vec::new();
    let mut epoch_above = u64::MAX;
    let mut epoch = 0;
    let mut next = newest;
    let mut batch_len = 1u64;
    let v = 'walk: loop {
        let batch: Vec<u64> = (next.saturating_sub(batch_len - 1).max(1)..=next)
            .rev()
            .collect();
        batch_len = (batch_len * 2).min(LOAD_BATCH_MAX);
        // Fetch down to the first version the listing lacks (below the
        // snapshot, older versions may be deleted); the walk reports it
        // missing only if it reaches it.
        let listed = batch
            .iter()
            .take_while(|v| versions.binary_search(v).is_ok())
            .count();
        if listed == 0 {
            return Err(Error::corruption(
                object_name(next),
                format!(
                    "missing: manifest version {newest} needs every version down to its snapshot"
                ),
            ));
        }
        let batch = &batch[..listed];
        let names: Vec<String> = batch.iter().map(|&v| object_name(v)).collect();
        let fetched = storage.read_many(&names);
        for ((&v, name), bytes) in batch.iter().zip(names).zip(fetched) {
            let bytes = bytes?;
            let obj = decode(&bytes, &name)?;
            if obj.epoch > epoch_above {
                return Err(Error::corruption(
                    name,
                    format!("epoch {} above the epoch of a later version", obj.epoch),
                ));
            }
            epoch_above = obj.epoch;
            epoch = epoch.max(obj.epoch);
            let snapshot = obj.kind == Kind::Snapshot;
            chain.push((name, obj.payload.to_vec()));
            if snapshot {
                break 'walk v;
            }
            if v == 1 {
                return Err(Error::corruption(
                    object_name(1),
                    "the first manifest version is not a snapshot",
                ));
            }
        }
        next = batch.last().copied().unwrap_or(1) - 1;
    };
    chain.reverse();
    Ok(Loaded {
        payloads: chain,
        version: newest,
        epoch,
        snapshot_version: v,
    })
}

/// The writer's side: the version it last committed and its epoch.
pub struct ManifestObjects {
    pub version: u64,
    pub epoch: u64,
    /// Edits committed since the newest snapshot.
    edits_since_snapshot: u64,
    /// The newest snapshot's version: when a newer one is written, the
    /// versions below this one are deleted (two chains stay readable).
    newest_snapshot: u64,
}

impl ManifestObjects {
    /// The state `loaded` describes, before this writer takes over.
    pub fn before_take_over(loaded: &Loaded) -> Self {
        ManifestObjects {
            version: loaded.version,
            epoch: loaded.epoch,
            edits_since_snapshot: 0,
            newest_snapshot: loaded.snapshot_version,
        }
    }

    /// Takes the store over: commits a snapshot as the version after
    /// `loaded` with the next epoch; returns the writer and the bytes
    /// written. Fails with `Error::Fenced` if another writer committed that
    /// version first.
    pub fn take_over(
        storage: &dyn Storage,
        loaded: &Loaded,
        snapshot: &[u8],
    ) -> Result<(Self, u64)> {
        let mut m = Self::before_take_over(loaded);
        m.epoch = m
            .epoch
            .checked_add(1)
            .ok_or_else(|| Error::corruption("manifest", "epoch exhausted"))?;
        let written = m.commit(storage, Kind::Snapshot, snapshot)?;
        Ok((m, written))
    }

    /// Commits `payload` as the next version; returns the bytes written.
    /// `Error::Fenced` if the version exists: a newer owner took the store
    /// over.
    pub fn commit(&mut self, storage: &dyn Storage, kind: Kind, payload: &[u8]) -> Result<u64> {
        let version = self.version + 1;
        let name = object_name(version);
        let bytes = encode(kind, self.epoch, payload);
        if !put_new(storage, &name, &bytes)? {
            return Err(Error::Fenced(format!(
                "manifest version {version} was written by another owner (this one has epoch {})",
                self.epoch
            )));
        }
        self.version = version;
        match kind {
            Kind::Edit => self.edits_since_snapshot += 1,
            Kind::Snapshot => {
                self.edits_since_snapshot = 0;
                let previous = std::mem::replace(&mut self.newest_snapshot, version);
                self.remove_below(storage, previous);
            }
        }
        Ok(bytes.len() as u64)
    }

    /// Deletes the versions below `version` (best effort: a leftover is
    /// only garbage, never read again).
    fn remove_below(&self, storage: &dyn Storage, version: u64) {
        let names = match storage.list_prefix(PREFIX) {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!("cannot list old manifest versions: {e}");
                return;
            }
        };
        for name in names {
            if parse_object_name(&name).is_some_and(|v| v < version) {
                if let Err(e) = storage.remove(&name) {
                    tracing::warn!("cannot remove old manifest version {name}: {e}");
                }
            }
        }
    }

    /// Whether the next commit should be a snapshot.
    pub fn snapshot_due(&self) -> bool {
        self.edits_since_snapshot >= EDITS_PER_SNAPSHOT
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::MemStorage;

    /// A chain: a snapshot at version 1, then `edits` edits, payloads
    /// naming their version.
    fn chain(storage: &dyn Storage, edits: u64) -> ManifestObjects {
        let loaded = load(storage).unwrap();
        let (mut m, _) = ManifestObjects::take_over(storage, &loaded, b"v1").unwrap();
        for v in 2..=edits + 1 {
            m.commit(storage, Kind::Edit, format!("v{v}").as_bytes())
                .unwrap();
        }
        m
    }

    fn payloads(loaded: &Loaded) -> Vec<String> {
        loaded
            .payloads
            .iter()
            .map(|(_, p)| String::from_utf8(p.clone()).unwrap())
            .collect()
    }

    #[test]
    fn a_long_chain_loads_in_order_across_batches() {
        let mem = MemStorage::objects();
        chain(&*mem, 100);
        let loaded = load(&*mem).unwrap();
        let want: Vec<String> = (1..=101).map(|v| format!("v{v}")).collect();
        assert_eq!(payloads(&loaded), want);
        assert_eq!(
            (loaded.version, loaded.epoch, loaded.snapshot_version),
            (101, 1, 1)
        );
    }

    #[test]
    fn loading_stops_at_the_newest_snapshot() {
        let mem = MemStorage::objects();
        let mut m = chain(&*mem, 40);
        m.commit(&*mem, Kind::Snapshot, b"s42").unwrap();
        m.commit(&*mem, Kind::Edit, b"v43").unwrap();
        let loaded = load(&*mem).unwrap();
        assert_eq!(payloads(&loaded), ["s42", "v43"]);
        assert_eq!(loaded.snapshot_version, 42);
        // Versions below the older snapshot are gone; nothing needs them.
        mem.remove(&object_name(1)).unwrap();
        mem.remove(&object_name(20)).unwrap();
        assert_eq!(payloads(&load(&*mem).unwrap()), ["s42", "v43"]);
    }

    #[test]
    fn a_missing_version_in_the_chain_is_corruption() {
        for gap in [2, 50, 100] {
            let mem = MemStorage::objects();
            chain(&*mem, 100);
            mem.remove(&object_name(gap)).unwrap();
            let err = load(&*mem).err().expect("gap found");
            assert!(err.is_corruption(), "{err}");
            assert!(err.to_string().contains(&object_name(gap)), "{err}");
        }
    }
}
