//! The version set: the current file set of every tree, and the manifest
//! file that records its changes.
//!
//! Commit protocol of an edit: append the edit's frame and an empty commit
//! frame, fsync the manifest, and only then apply the edit in memory. The
//! empty frame means a damaged last edit is always followed by a valid
//! frame, so it is reported as corruption rather than mistaken for a torn
//! write. Opening writes a fresh manifest holding one snapshot edit and
//! swaps CURRENT to it: write CURRENT.tmp, fsync it, rename it over
//! CURRENT, fsync the directory.
//!
//! On a storage of whole objects the manifest is instead one object per
//! version (`objects.rs`): opening takes the store over with a snapshot at
//! the next version and epoch, and each edit commits as the version after.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::edit::{NewFile, NewTablet, VersionEdit};
use super::frame;
use super::objects::{self, ManifestObjects};
use super::stored::{initial_tablets, read_manifest, CURRENT};
use super::version::{table_file_name, FileMeta, Version, NUM_LEVELS};
use crate::batch::TreeId;
use crate::error::{Error, Result};
use crate::key::{cmp_internal, SeqNo};
use crate::sst::BlockCache;
use crate::storage::{write_file_durably, Storage, WritableFile};

const CURRENT_TMP: &str = "CURRENT.tmp";

/// Attempts at taking over a storage of whole objects that another owner
/// is still changing.
const TAKEOVER_ATTEMPTS: u64 = 100;

/// A manifest larger than this is rewritten as one snapshot edit.
const MANIFEST_BYTES_MAX: u64 = 32 << 20;

pub fn manifest_file_name(number: u64) -> String {
    format!("MANIFEST-{number:06}")
}

/// The persisted state of one tablet: the part `[lo, hi)` of a tree's
/// keys, with its own files. A file may belong to several tablets (the
/// halves of a split share their parent's files until compaction rewrites
/// them); each sees only the keys within its bounds.
#[derive(Clone)]
pub struct TabletFiles {
    pub tree: TreeId,
    pub lo: Vec<u8>,
    pub hi: Option<Vec<u8>>,
    pub pinned_lo: bool,
    /// Every write of the tablet up to this sequence number is in its files.
    pub flushed_seq: SeqNo,
    pub version: Arc<Version>,
}

impl TabletFiles {
    pub fn describe(&self, id: TreeId) -> NewTablet {
        NewTablet {
            id,
            tree: self.tree,
            lo: self.lo.clone(),
            hi: self.hi.clone(),
            pinned_lo: self.pinned_lo,
        }
    }
}

pub struct VersionSet {
    storage: Arc<dyn Storage>,
    next_file_number: Arc<AtomicU64>,
    /// File numbers are allocated below this: on whole objects, the end of
    /// this owner's epoch's numbers (`objects::file_numbers_of_epoch`).
    file_numbers_end: u64,
    last_seq: SeqNo,
    /// Tree names by id.
    trees: BTreeMap<TreeId, String>,
    tablets: BTreeMap<TreeId, TabletFiles>,
    /// Ids (of trees and tablets) are never handed out twice by one process.
    next_id: TreeId,
    manifest: Persist,
    /// Bytes written to manifests by this process (write amplification).
    bytes_written: u64,
    /// Unreferenced tables numbered below this are garbage the sweep at
    /// open may delete. On local files, every one; on whole objects only
    /// those numbered below what the manifest had recorded: a higher one
    /// may be an upload of an old owner still running (whose edit naming
    /// it will fail), and is deleted by a later owner's sweep instead.
    sweep_below: u64,
    /// What opening took (for the log line at open).
    opening: Opening,
}

/// What opening a version set took.
#[derive(Clone, Debug, Default)]
pub struct Opening {
    /// Manifest edits read (on whole objects, one per version: the
    /// snapshot and the edits after it) and the time it took.
    pub manifest_edits: usize,
    pub manifest_read: std::time::Duration,
    /// Tables opened and the time it took.
    pub tables: usize,
    pub tables_opened: std::time::Duration,
}

/// Where edits go.
enum Persist {
    /// Local files: appended to `MANIFEST-n`, which CURRENT names.
    Appended {
        file: Box<dyn WritableFile>,
        name: String,
    },
    /// Whole objects: one object per version.
    Versioned(ManifestObjects),
}

impl VersionSet {
    /// Opens the manifest named by CURRENT (or starts an empty one), opens
    /// every live table, and writes a fresh manifest.
    ///
    /// On a storage of whole objects, a previous owner still writing may
    /// commit a version (and delete the tables it replaced) between this
    /// owner's reading and its takeover; then the takeover's version is
    /// taken, or a table the read manifest names is gone, and the opening
    /// starts over from the newer manifest (a few times at most).
    pub fn open(storage: Arc<dyn Storage>, cache: Arc<BlockCache>) -> Result<VersionSet> {
        let mut attempt = 1;
        loop {
            match Self::open_once(storage.clone(), cache.clone()) {
                Err(e)
                    if storage.whole_objects()
                        && attempt < TAKEOVER_ATTEMPTS
                        && (e.is_fenced() || e.is_not_found()) =>
                {
                    tracing::debug!(
                        "the store changed while this owner took it over ({e}); reading it again"
                    );
                    // Another try at once, then with growing pauses: an old
                    // owner still committing makes every try a race.
                    std::thread::sleep(std::time::Duration::from_millis((attempt - 1).min(50)));
                    attempt += 1;
                }
                r => return r,
            }
        }
    }

    fn open_once(storage: Arc<dyn Storage>, cache: Arc<BlockCache>) -> Result<VersionSet> {
        let names = storage.list()?;
        let mut opening = Opening::default();
        let manifest_started = std::time::Instant::now();
        let read = read_manifest(&*storage, &names)?;
        let (pending, mut next_file_number, last_seq) =
            (read.pending, read.next_file_number, read.last_seq);
        let (old_manifest, loaded_objects) = (read.old_manifest, read.loaded_objects);
        opening.manifest_edits = read.edits;
        opening.manifest_read = manifest_started.elapsed();
        // Tables numbered from here on may belong to an old owner still
        // writing (see `sweep_below`).
        let recorded_next_file_number = next_file_number;
        // Any file number in use bounds the counter from below.
        for n in &names {
            if let Some(num) = file_number_of(n) {
                next_file_number = next_file_number.max(num + 1);
            }
        }
        let mut file_numbers_end = u64::MAX;
        if let Some(loaded) = &loaded_objects {
            // An old owner may still be writing tables numbered from its
            // counter, past what its last edit recorded: this owner takes
            // the file numbers of its epoch, which no other owner uses, so
            // that their uploads never take one name.
            let epoch = loaded.epoch.saturating_add(1);
            let ours = objects::file_numbers_of_epoch(epoch)?;
            next_file_number = next_file_number.max(ours.start);
            file_numbers_end = ours.end;
        }
        let next_file_number = Arc::new(AtomicU64::new(next_file_number));
        let mut tablets = BTreeMap::new();
        // Every table the manifest names, opened at once (on an object
        // store each open is a few requests; one by one, a 1 GB table's
        // 129 files took 5 s to open).
        let wanted: Vec<&NewFile> = pending
            .tablets
            .values()
            .flat_map(|p| p.levels.iter().flat_map(|files| files.values()))
            .collect();
        let started = std::time::Instant::now();
        let mut opened = open_files(&storage, &cache, &wanted)?.into_iter();
        opening.tables = wanted.len();
        opening.tables_opened = started.elapsed();
        for (id, p) in pending.tablets {
            let mut version = Version::default();
            for (level, files) in p.levels.iter().enumerate() {
                for _ in files.values() {
                    let file = opened.next().expect("one opened file per file named");
                    version.levels[level].push(file);
                }
            }
            sort_levels(&mut version);
            version
                .check_invariants()
                .map_err(|e| Error::corruption(old_manifest.clone().unwrap_or_default(), e))?;
            tablets.insert(
                id,
                TabletFiles {
                    tree: p.desc.tree,
                    lo: p.desc.lo,
                    hi: p.desc.hi,
                    pinned_lo: p.desc.pinned_lo,
                    flushed_seq: p.flushed_seq,
                    version: Arc::new(version),
                },
            );
        }
        let trees = pending.trees;
        let next_id = trees
            .keys()
            .chain(tablets.keys())
            .max()
            .map_or(1, |m| m.saturating_add(1));
        let manifest = match &loaded_objects {
            // Replaced below, once the snapshot can be made.
            Some(loaded) => Persist::Versioned(ManifestObjects::before_take_over(loaded)),
            None => {
                let name = manifest_file_name(next_file_number.fetch_add(1, Ordering::SeqCst));
                let file = storage.create(&name)?;
                Persist::Appended { file, name }
            }
        };
        let mut set = VersionSet {
            storage,
            next_file_number,
            file_numbers_end,
            last_seq,
            trees,
            tablets,
            next_id,
            manifest,
            bytes_written: 0,
            opening,
            sweep_below: if loaded_objects.is_some() {
                recorded_next_file_number
            } else {
                u64::MAX
            },
        };
        if let Some(loaded) = loaded_objects {
            let snapshot = set.snapshot_edit().encode();
            let (m, written) = ManifestObjects::take_over(&*set.storage, &loaded, &snapshot)?;
            set.bytes_written += written;
            set.manifest = Persist::Versioned(m);
            return Ok(set);
        }
        set.write_snapshot()?;
        set.install_current()?;
        if let Some(old) = old_manifest {
            set.storage.remove(&old)?;
        }
        Ok(set)
    }

    /// What opening took.
    pub fn opening(&self) -> &Opening {
        &self.opening
    }

    /// See the field.
    pub fn sweep_below(&self) -> u64 {
        self.sweep_below
    }

    /// The epoch of this owner of a storage of whole objects; 0 on local
    /// files.
    pub fn epoch(&self) -> u64 {
        match &self.manifest {
            Persist::Appended { .. } => 0,
            Persist::Versioned(m) => m.epoch,
        }
    }

    fn snapshot_edit(&self) -> VersionEdit {
        let mut e = VersionEdit {
            next_file_number: Some(self.next_file_number.load(Ordering::SeqCst)),
            last_seq: Some(self.last_seq),
            ..VersionEdit::default()
        };
        for (&id, name) in &self.trees {
            e.created_trees.push((id, name.clone()));
        }
        for (&id, t) in &self.tablets {
            e.created_tablets.push(t.describe(id));
            e.flushed_seqs.push((id, t.flushed_seq));
            for (level, files) in t.version.levels.iter().enumerate() {
                for f in files {
                    e.added_files.push(new_file_of(id, level, f));
                }
            }
        }
        e
    }

    fn append_synced(&mut self, edit: &VersionEdit) -> Result<()> {
        let payload = edit.encode();
        match &mut self.manifest {
            Persist::Appended { file, .. } => {
                let mut buf = Vec::new();
                frame::encode(&payload, &mut buf);
                frame::encode(&[], &mut buf);
                file.append(&buf)?;
                file.sync()?;
                self.bytes_written += buf.len() as u64;
            }
            Persist::Versioned(m) => {
                self.bytes_written += m.commit(&*self.storage, objects::Kind::Edit, &payload)?;
            }
        }
        Ok(())
    }

    fn write_snapshot(&mut self) -> Result<()> {
        let edit = self.snapshot_edit();
        self.append_synced(&edit)
    }

    fn install_current(&mut self) -> Result<()> {
        let Persist::Appended { name, .. } = &self.manifest else {
            return Ok(());
        };
        let content = format!("{name}\n");
        write_file_durably(&*self.storage, CURRENT_TMP, content.as_bytes())?;
        self.storage.rename(CURRENT_TMP, CURRENT)?;
        self.storage.sync_dir()
    }

    /// Starts a new manifest holding one snapshot edit.
    fn roll_manifest(&mut self) -> Result<()> {
        if matches!(self.manifest, Persist::Versioned(_)) {
            let snapshot = self.snapshot_edit().encode();
            if let Persist::Versioned(m) = &mut self.manifest {
                self.bytes_written +=
                    m.commit(&*self.storage, objects::Kind::Snapshot, &snapshot)?;
            }
            return Ok(());
        }
        let name = manifest_file_name(self.new_file_number()?);
        let file = self.storage.create(&name)?;
        let old = match &mut self.manifest {
            Persist::Appended { file: f, name: n } => {
                *f = file;
                std::mem::replace(n, name)
            }
            Persist::Versioned(_) => return Ok(()),
        };
        self.write_snapshot()?;
        self.install_current()?;
        self.storage.remove(&old)
    }

    fn roll_due(&self) -> bool {
        match &self.manifest {
            Persist::Appended { file, .. } => file.len() > MANIFEST_BYTES_MAX,
            Persist::Versioned(m) => m.snapshot_due(),
        }
    }

    /// Makes `edit` durable, then applies it. `new_tables` holds the
    /// opened files the edit adds (files moved between levels are found in
    /// the current versions). Files no tree holds any more are marked
    /// obsolete and deleted when their last reader lets go.
    pub fn log_and_apply(
        &mut self,
        mut edit: VersionEdit,
        new_tables: Vec<Arc<FileMeta>>,
    ) -> Result<()> {
        edit.next_file_number = Some(self.next_file_number.load(Ordering::SeqCst));
        // Flushes on several threads read the last sequence number before
        // writing their tables: the recorded one never goes back.
        if let Some(s) = edit.last_seq.as_mut() {
            *s = (*s).max(self.last_seq);
        }
        // Validate before anything is written.
        let mut known: HashMap<u64, Arc<FileMeta>> =
            new_tables.into_iter().map(|f| (f.number, f)).collect();
        for t in self.tablets.values() {
            for files in &t.version.levels {
                for f in files {
                    known.entry(f.number).or_insert_with(|| f.clone());
                }
            }
        }
        for nf in &edit.added_files {
            if !known.contains_key(&nf.number) {
                return Err(Error::InvalidArgument(format!(
                    "edit adds unopened file {}",
                    nf.number
                )));
            }
            if nf.level as usize >= NUM_LEVELS {
                return Err(Error::InvalidArgument(format!(
                    "level {} out of range",
                    nf.level
                )));
            }
        }
        self.append_synced(&edit)?;
        let before: HashSet<u64> = self.live_file_numbers();
        self.apply(&edit, &known);
        if let Some(s) = edit.last_seq {
            self.last_seq = self.last_seq.max(s);
        }
        let after = self.live_file_numbers();
        for number in before.difference(&after) {
            if let Some(f) = known.get(number) {
                f.mark_obsolete();
            }
        }
        if self.roll_due() {
            self.roll_manifest()?;
        }
        Ok(())
    }

    fn apply(&mut self, edit: &VersionEdit, known: &HashMap<u64, Arc<FileMeta>>) {
        for (id, name) in &edit.created_trees {
            self.trees.insert(*id, name.clone());
        }
        for t in initial_tablets(edit) {
            self.next_id = self.next_id.max(t.id.saturating_add(1));
            self.tablets.insert(
                t.id,
                TabletFiles {
                    tree: t.tree,
                    lo: t.lo,
                    hi: t.hi,
                    pinned_lo: t.pinned_lo,
                    flushed_seq: 0,
                    version: Arc::new(Version::default()),
                },
            );
        }
        let mut touched: BTreeMap<TreeId, Version> = BTreeMap::new();
        for &(tablet, level, number) in &edit.removed_files {
            if let Some(t) = self.tablets.get(&tablet) {
                let v = touched
                    .entry(tablet)
                    .or_insert_with(|| (*t.version).clone());
                v.levels[level as usize].retain(|f| f.number != number);
            }
        }
        for nf in &edit.added_files {
            if let (Some(t), Some(f)) = (self.tablets.get(&nf.tree), known.get(&nf.number)) {
                let v = touched
                    .entry(nf.tree)
                    .or_insert_with(|| (*t.version).clone());
                v.levels[nf.level as usize].push(f.clone());
            }
        }
        for (tablet, mut v) in touched {
            sort_levels(&mut v);
            debug_assert_eq!(v.check_invariants(), Ok(()));
            if let Some(t) = self.tablets.get_mut(&tablet) {
                t.version = Arc::new(v);
            }
        }
        for &(tablet, seq) in &edit.flushed_seqs {
            if let Some(t) = self.tablets.get_mut(&tablet) {
                t.flushed_seq = t.flushed_seq.max(seq);
            }
        }
        for id in &edit.dropped_tablets {
            self.tablets.remove(id);
        }
        for id in &edit.dropped_trees {
            self.trees.remove(id);
            self.tablets.retain(|_, t| t.tree != *id);
        }
    }

    fn live_file_numbers(&self) -> HashSet<u64> {
        self.tablets
            .values()
            .flat_map(|t| t.version.levels.iter().flatten().map(|f| f.number))
            .collect()
    }

    /// Every file name the current state needs (tables and the manifest).
    pub fn live_file_names(&self) -> HashSet<String> {
        let mut s: HashSet<String> = self
            .live_file_numbers()
            .into_iter()
            .map(table_file_name)
            .collect();
        if let Persist::Appended { name, .. } = &self.manifest {
            s.insert(name.clone());
        }
        s
    }

    /// A file number no file has had (on whole objects, of this owner's
    /// epoch's numbers).
    pub fn new_file_number(&self) -> Result<u64> {
        let n = self.next_file_number.fetch_add(1, Ordering::SeqCst);
        if n >= self.file_numbers_end {
            return Err(Error::NoSpace(format!(
                "the file numbers of owner epoch {} are used up; a restart takes a new epoch",
                self.epoch()
            )));
        }
        Ok(n)
    }

    pub fn file_number_counter(&self) -> Arc<AtomicU64> {
        self.next_file_number.clone()
    }

    pub fn last_seq(&self) -> SeqNo {
        self.last_seq
    }

    /// Tree names by id.
    pub fn trees(&self) -> &BTreeMap<TreeId, String> {
        &self.trees
    }

    pub fn tablets(&self) -> &BTreeMap<TreeId, TabletFiles> {
        &self.tablets
    }

    pub fn tablet(&self, id: TreeId) -> Option<&TabletFiles> {
        self.tablets.get(&id)
    }

    /// A tree or tablet id never used by this process or the manifest.
    pub fn allocate_id(&mut self) -> Result<TreeId> {
        let id = self.next_id;
        self.next_id = id
            .checked_add(1)
            .ok_or_else(|| Error::InvalidArgument("tree and tablet ids exhausted".into()))?;
        Ok(id)
    }

    pub fn bytes_written(&self) -> u64 {
        self.bytes_written
    }
}

/// Tables opened at once by `open_files` on an object store.
const OPENS_IN_FLIGHT: usize = 16;

/// Opens the tables the manifest names (`open_file`), in order: on a
/// storage of whole objects `OPENS_IN_FLIGHT` at a time, each open being
/// requests to the store; else one by one.
fn open_files(
    storage: &Arc<dyn Storage>,
    cache: &Arc<BlockCache>,
    files: &[&NewFile],
) -> Result<Vec<Arc<FileMeta>>> {
    if !storage.whole_objects() || files.len() < 2 {
        return files
            .iter()
            .map(|nf| open_file(storage, cache, nf))
            .collect();
    }
    let next = std::sync::atomic::AtomicUsize::new(0);
    let slots: Vec<parking_lot::Mutex<Option<Result<Arc<FileMeta>>>>> = files
        .iter()
        .map(|_| parking_lot::Mutex::new(None))
        .collect();
    std::thread::scope(|scope| {
        for _ in 0..OPENS_IN_FLIGHT.min(files.len()) {
            // A thread that cannot start leaves its share to the others
            // (with none, the opens are reported as not run).
            let _ = std::thread::Builder::new()
                .name("strata-open-table".into())
                .spawn_scoped(scope, || loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(nf) = files.get(i) else { break };
                    *slots[i].lock() = Some(open_file(storage, cache, nf));
                });
        }
    });
    slots
        .into_iter()
        .map(|slot| {
            slot.into_inner()
                .unwrap_or_else(|| Err(Error::Closed("a table open did not run".into())))
        })
        .collect()
}

/// Opens a table the manifest names, checking it is the file it recorded.
pub fn open_file(
    storage: &Arc<dyn Storage>,
    cache: &Arc<BlockCache>,
    nf: &NewFile,
) -> Result<Arc<FileMeta>> {
    FileMeta::open(
        storage,
        cache,
        nf.number,
        nf.size_bytes,
        nf.smallest.clone(),
        nf.largest.clone(),
        nf.seq_min,
        nf.seq_max,
    )
}

pub fn new_file_of(tree: TreeId, level: usize, f: &FileMeta) -> NewFile {
    NewFile {
        tree,
        level: level as u32,
        number: f.number,
        size_bytes: f.size_bytes,
        smallest: f.smallest.clone(),
        largest: f.largest.clone(),
        seq_min: f.seq_min,
        seq_max: f.seq_max,
    }
}

/// Orders a version's levels: L0 newest first, deeper levels by key.
pub fn sort_levels(v: &mut Version) {
    v.levels[0].sort_by(|a, b| b.seq_max.cmp(&a.seq_max).then(b.number.cmp(&a.number)));
    for files in v.levels.iter_mut().skip(1) {
        files.sort_by(|a, b| cmp_internal(&a.smallest, &b.smallest));
    }
}

/// The number in a file name of the engine's ("000012.sst", "000013.log",
/// "MANIFEST-000014").
pub fn file_number_of(name: &str) -> Option<u64> {
    let digits = name
        .strip_suffix(".sst")
        .or_else(|| name.strip_suffix(".log"))
        .or_else(|| name.strip_prefix("MANIFEST-"))?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}
