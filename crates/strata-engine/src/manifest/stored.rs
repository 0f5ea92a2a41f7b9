//! Reading a manifest without taking the storage over: the recovery's
//! first half (which tables make up which tablets), and what a closed
//! engine holds, for copying its tables into another engine
//! (`Tree::ingest`).

use std::collections::BTreeMap;

use super::edit::{NewFile, NewTablet, VersionEdit};
use super::frame;
use super::objects;
use super::version::NUM_LEVELS;
use crate::batch::TreeId;
use crate::error::{Error, Result};
use crate::key::SeqNo;
use crate::storage::{read_file, Storage};

pub(super) const CURRENT: &str = "CURRENT";

/// Tablet state during recovery, before tables are opened.
pub(super) struct PendingTablet {
    pub desc: NewTablet,
    pub flushed_seq: SeqNo,
    pub levels: [BTreeMap<u64, NewFile>; NUM_LEVELS],
}

#[derive(Default)]
pub(super) struct Pending {
    pub trees: BTreeMap<TreeId, String>,
    pub tablets: BTreeMap<TreeId, PendingTablet>,
}

/// A manifest as read.
pub(super) struct ReadManifest {
    pub pending: Pending,
    /// The largest next file number an edit recorded (1 if none).
    pub next_file_number: u64,
    pub last_seq: SeqNo,
    /// On local files: the manifest CURRENT names.
    pub old_manifest: Option<String>,
    /// On whole objects: the versions read.
    pub loaded_objects: Option<objects::Loaded>,
    /// Edits applied.
    pub edits: usize,
}

/// Reads the manifest of `storage` (whose objects are `names`): the
/// versions on whole objects, else the file CURRENT names. No manifest at
/// all is an empty engine, unless tables or logs are there (corruption:
/// the engine refuses to start empty over existing data).
pub(super) fn read_manifest(storage: &dyn Storage, names: &[String]) -> Result<ReadManifest> {
    let mut read = ReadManifest {
        pending: Pending::default(),
        next_file_number: 1,
        last_seq: 0,
        old_manifest: None,
        loaded_objects: None,
        edits: 0,
    };
    fn apply_payload(read: &mut ReadManifest, payload: &[u8], name: &str) -> Result<()> {
        read.edits += 1;
        let edit = VersionEdit::decode(payload, name)?;
        if let Some(n) = edit.next_file_number {
            read.next_file_number = read.next_file_number.max(n);
        }
        if let Some(s) = edit.last_seq {
            read.last_seq = read.last_seq.max(s);
        }
        apply_pending(&mut read.pending, &edit, name)
    }
    if storage.whole_objects() {
        let loaded = objects::load(storage)?;
        for (name, payload) in &loaded.payloads {
            apply_payload(&mut read, payload, name)?;
        }
        if loaded.version == 0
            && names
                .iter()
                .any(|n| n.ends_with(".sst") || n.starts_with("wal/"))
        {
            return Err(Error::corruption(
                "manifest/",
                "no manifest version, but the store holds tables or logs: refusing to start empty",
            ));
        }
        read.loaded_objects = Some(loaded);
    } else if names.iter().any(|n| n == CURRENT) {
        let current = read_file(storage, CURRENT)?;
        let name = std::str::from_utf8(&current)
            .ok()
            .and_then(|s| s.strip_suffix('\n'))
            .filter(|s| s.starts_with("MANIFEST-") && !s.contains('/'))
            .ok_or_else(|| Error::corruption(CURRENT, "does not name a manifest"))?
            .to_string();
        let bytes = read_file(storage, &name)?;
        for payload in frame::decode_all(&bytes, &name)? {
            if payload.is_empty() {
                continue; // commit frame
            }
            apply_payload(&mut read, payload, &name)?;
        }
        read.old_manifest = Some(name);
    } else if names
        .iter()
        .any(|n| n.ends_with(".sst") || n.ends_with(".log"))
    {
        return Err(Error::corruption(
            CURRENT,
            "missing, but the directory holds tables or logs: refusing to start empty",
        ));
    }
    Ok(read)
}

/// What a manifest holds, read without taking the storage over: meant for
/// an engine that no one writes (closed by its owner, who holds it), whose
/// tables another engine copies (`Tree::ingest`).
#[derive(Clone, Debug, Default)]
pub struct StoredState {
    /// Tree names by id.
    pub trees: BTreeMap<TreeId, String>,
    /// Tablets in key order within each tree.
    pub tablets: Vec<StoredTablet>,
    /// The last sequence number the manifest recorded.
    pub last_seq: SeqNo,
}

/// One tablet of a [`StoredState`].
#[derive(Clone, Debug)]
pub struct StoredTablet {
    pub desc: NewTablet,
    pub flushed_seq: SeqNo,
    /// Files by level (the `tree` of each names this tablet).
    pub levels: Vec<Vec<NewFile>>,
}

impl StoredState {
    /// The tablets of tree `tree`, in key order.
    pub fn tablets_of(&self, tree: TreeId) -> Vec<&StoredTablet> {
        let mut out: Vec<&StoredTablet> = self
            .tablets
            .iter()
            .filter(|t| t.desc.tree == tree)
            .collect();
        out.sort_by(|a, b| a.desc.lo.cmp(&b.desc.lo));
        out
    }
}

/// Reads what the manifest of `storage` holds, writing nothing.
pub fn read_stored(storage: &dyn Storage) -> Result<StoredState> {
    let names = storage.list()?;
    let read = read_manifest(storage, &names)?;
    let tablets = read
        .pending
        .tablets
        .into_values()
        .map(|p| StoredTablet {
            desc: p.desc,
            flushed_seq: p.flushed_seq,
            levels: p
                .levels
                .into_iter()
                .map(|files| files.into_values().collect())
                .collect(),
        })
        .collect();
    Ok(StoredState {
        trees: read.pending.trees,
        tablets,
        last_seq: read.last_seq,
    })
}

/// The tablets an edit's created trees start with: the ones the edit
/// creates for them, or else one covering every key, numbered like the tree.
pub(super) fn initial_tablets(edit: &VersionEdit) -> Vec<NewTablet> {
    let mut out = edit.created_tablets.clone();
    for (id, _) in &edit.created_trees {
        if !edit.created_tablets.iter().any(|t| t.tree == *id) {
            out.push(NewTablet {
                id: *id,
                tree: *id,
                lo: Vec::new(),
                hi: None,
                pinned_lo: false,
            });
        }
    }
    out
}

pub(super) fn apply_pending(pending: &mut Pending, edit: &VersionEdit, file: &str) -> Result<()> {
    for (id, name) in &edit.created_trees {
        pending.trees.insert(*id, name.clone());
    }
    for t in initial_tablets(edit) {
        if !pending.trees.contains_key(&t.tree) {
            return Err(Error::corruption(
                file,
                format!("tablet {} of unknown tree {}", t.id, t.tree),
            ));
        }
        pending.tablets.insert(
            t.id,
            PendingTablet {
                desc: t,
                flushed_seq: 0,
                levels: Default::default(),
            },
        );
    }
    for &(tablet, level, number) in &edit.removed_files {
        let t = pending.tablets.get_mut(&tablet).ok_or_else(|| {
            Error::corruption(
                file,
                format!("edit removes a file of unknown tablet {tablet}"),
            )
        })?;
        let lvl = t
            .levels
            .get_mut(level as usize)
            .ok_or_else(|| Error::corruption(file, format!("level {level} out of range")))?;
        lvl.remove(&number);
    }
    for nf in &edit.added_files {
        let t = pending.tablets.get_mut(&nf.tree).ok_or_else(|| {
            Error::corruption(
                file,
                format!("edit adds a file to unknown tablet {}", nf.tree),
            )
        })?;
        let lvl = t
            .levels
            .get_mut(nf.level as usize)
            .ok_or_else(|| Error::corruption(file, format!("level {} out of range", nf.level)))?;
        lvl.insert(nf.number, nf.clone());
    }
    for &(tablet, seq) in &edit.flushed_seqs {
        if let Some(t) = pending.tablets.get_mut(&tablet) {
            t.flushed_seq = t.flushed_seq.max(seq);
        }
    }
    for id in &edit.dropped_tablets {
        pending.tablets.remove(id);
    }
    for id in &edit.dropped_trees {
        pending.trees.remove(id);
        pending.tablets.retain(|_, t| t.desc.tree != *id);
    }
    Ok(())
}
