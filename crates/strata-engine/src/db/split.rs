//! Changing a tree's tablets: split, merge, and emptying whole tablets or
//! whole files. Each change is one manifest edit made under the write
//! mutex (so no write group is in flight), then published in memory.
//!
//! Crash analysis: the edit is the commit point. Before it is durable the
//! manifest still describes the old tablets, and the commit log replays
//! into them by key; after it, into the new ones. Both describe the same
//! keys with the same files, so a crash at any step leaves either the
//! parent or its children (a split), the two neighbours or their merger (a
//! merge), never both and never neither.
//!
//! Split: the children get every parent file that meets their range (the
//! files are shared, not rewritten: each child reads only its range, and
//! compaction later rewrites them clipped), the parent's flushed sequence
//! number, and the parent's memtables (sealed; each child flushes only its
//! range of them). Writes continue: the next write group routes by key to
//! the children.
//!
//! Merge: both neighbours are flushed, then flushed again under the write
//! mutex (only what arrived meanwhile), so that neither holds anything in
//! memory and the merged tablet starts flushed up to the current sequence
//! number. Their
//! files must stay disjoint per level once combined (no file shared with
//! a different level or overlapping a neighbour's); otherwise the merge
//! waits for cleanup compactions.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::tablet::{index_for, TabletState, TreeState};
use super::{background, Inner, SuperVersion};
use crate::error::{Error, Result};
use crate::manifest::{new_file_of, sort_levels, NewTablet, Version, VersionEdit, NUM_LEVELS};

/// One tablet, for operators and for clients that split work.
#[derive(Clone, Debug)]
pub struct TabletInfo {
    pub id: u32,
    pub lo: Vec<u8>,
    /// None: unbounded above.
    pub hi: Option<Vec<u8>>,
    /// Approximate bytes on disk of the tablet's own keys.
    pub size_bytes: u64,
    pub memtable_bytes: u64,
    pub files_per_level: [usize; NUM_LEVELS],
    /// Files that reach outside the tablet (shared since a split).
    pub shared_files: usize,
}

pub(crate) fn split_at(inner: &Inner, tree: &TreeState, key: &[u8]) -> Result<bool> {
    let _w = inner.lock_writes();
    split_at_locked(inner, tree, key)
}

/// `split_at` with the write mutex held by the caller (who may change the
/// tablets further before anything else does).
pub(crate) fn split_at_locked(inner: &Inner, tree: &TreeState, key: &[u8]) -> Result<bool> {
    inner.check_bg_error()?;
    if tree.dropped.load(Ordering::Acquire) {
        return Err(Error::TreeNotFound(tree.name.clone()));
    }
    let tablets = tree.tablets();
    let i = index_for(&tablets, key);
    let parent = tablets[i].clone();
    if parent.lo.as_slice() == key {
        return Ok(false);
    }
    let mut versions = inner.versions.lock();
    let (left_id, right_id) = (versions.allocate_id()?, versions.allocate_id()?);
    let flushed_seq = versions
        .tablet(parent.id)
        .ok_or_else(|| Error::corruption("manifest", format!("tablet {} missing", parent.id)))?
        .flushed_seq;
    let left = NewTablet {
        id: left_id,
        tree: tree.id,
        lo: parent.lo.clone(),
        hi: Some(key.to_vec()),
        pinned_lo: parent.pinned_lo,
    };
    let right = NewTablet {
        id: right_id,
        tree: tree.id,
        lo: key.to_vec(),
        hi: parent.hi.clone(),
        pinned_lo: false,
    };
    let sv = parent.super_version();
    let mut edit = VersionEdit {
        created_tablets: vec![left.clone(), right.clone()],
        dropped_tablets: vec![parent.id],
        flushed_seqs: vec![(left_id, flushed_seq), (right_id, flushed_seq)],
        ..Default::default()
    };
    for (level, files) in sv.version.levels.iter().enumerate() {
        for f in files {
            if f.smallest_user_key() < key {
                edit.added_files.push(new_file_of(left_id, level, f));
            }
            if f.largest_user_key() >= key {
                edit.added_files.push(new_file_of(right_id, level, f));
            }
        }
    }
    if let Err(e) = versions.log_and_apply(edit, Vec::new()) {
        inner.set_bg_error(&e);
        return Err(e);
    }
    // The parent's memtables, sealed, become both children's. The parent
    // keeps them as sealed ones too, for readers still holding it, with an
    // empty active memtable that nothing will write to or seal again.
    let mut imms = sv.imms.clone();
    if !sv.mem.is_empty() {
        sv.mem.seal(inner.last_seq.load(Ordering::Acquire));
        imms.push(sv.mem.clone());
    }
    *parent.sv.write() = Arc::new(SuperVersion {
        mem: crate::memtable::Memtable::new(),
        imms: imms.clone(),
        version: sv.version.clone(),
    });
    let child = |desc: &NewTablet| {
        let version = versions
            .tablet(desc.id)
            .map(|t| t.version.clone())
            .unwrap_or_default();
        TabletState::new(
            desc,
            &tree.name,
            tree.opts.clone(),
            SuperVersion {
                mem: crate::memtable::Memtable::new(),
                imms: imms.clone(),
                version,
            },
        )
    };
    let (l, r) = (child(&left), child(&right));
    parent.retired.store(true, Ordering::Release);
    let mut next: Vec<Arc<TabletState>> = tablets.to_vec();
    next.splice(i..=i, [l, r]);
    publish(tree, next);
    drop(versions);
    tracing::info!(
        "tree {}: split tablet {} at {:?} into {left_id} and {right_id}",
        tree.name,
        parent.id,
        String::from_utf8_lossy(key)
    );
    let _bg = inner.bg.lock();
    inner.notify_bg();
    Ok(true)
}

pub(crate) fn publish(tree: &TreeState, next: Vec<Arc<TabletState>>) {
    debug_assert_eq!(TreeState::check_tablets(&next), Ok(()));
    *tree.tablets.write() = Arc::new(next);
}

pub(crate) fn merge_at(inner: &Inner, tree: &TreeState, key: &[u8]) -> Result<bool> {
    let tablets = tree.tablets();
    let j = index_for(&tablets, key);
    if j == 0 || tablets[j].lo.as_slice() != key {
        return Ok(false);
    }
    let (a, b) = (tablets[j - 1].clone(), tablets[j].clone());
    // Flush first with writes flowing, then again with writes held back:
    // the second flush holds only what arrived during the first. Files
    // shared since a split are rewritten within each tablet first, so the
    // two file sets combine into disjoint levels.
    background::flush_tree(inner, &a)?;
    background::flush_tree(inner, &b)?;
    crate::compaction::clean_up(inner, &a)?;
    crate::compaction::clean_up(inner, &b)?;
    let _w = inner.lock_writes();
    inner.check_bg_error()?;
    if !Arc::ptr_eq(&tablets, &tree.tablets()) {
        return Ok(false);
    }
    background::flush_tree_locked(inner, &a)?;
    background::flush_tree_locked(inner, &b)?;
    let (sa, sb) = (a.super_version(), b.super_version());
    debug_assert!(sa.mem.is_empty() && sa.imms.is_empty());
    debug_assert!(sb.mem.is_empty() && sb.imms.is_empty());
    {
        // Read the file sets under the version lock: a compaction may have
        // changed them since (compactions do not take the write mutex).
        let mut versions = inner.versions.lock();
        let version_of = |id| versions.tablet(id).map(|t| t.version.clone());
        let (Some(va), Some(vb)) = (version_of(a.id), version_of(b.id)) else {
            return Err(Error::corruption("manifest", "a merged tablet is missing"));
        };
        let Some(combined) = combine(&va, &vb) else {
            return Ok(false);
        };
        let id = versions.allocate_id()?;
        let desc = NewTablet {
            id,
            tree: tree.id,
            lo: a.lo.clone(),
            hi: b.hi.clone(),
            pinned_lo: a.pinned_lo,
        };
        let last_seq = inner.last_seq.load(Ordering::Acquire);
        let mut edit = VersionEdit {
            created_tablets: vec![desc.clone()],
            dropped_tablets: vec![a.id, b.id],
            flushed_seqs: vec![(id, last_seq)],
            ..Default::default()
        };
        for (level, files) in combined.levels.iter().enumerate() {
            for f in files {
                edit.added_files.push(new_file_of(id, level, f));
            }
        }
        if let Err(e) = versions.log_and_apply(edit, Vec::new()) {
            inner.set_bg_error(&e);
            return Err(e);
        }
        let version = versions
            .tablet(id)
            .map(|t| t.version.clone())
            .unwrap_or_default();
        let m = TabletState::new(
            &desc,
            &tree.name,
            tree.opts.clone(),
            TabletState::empty_sv(version),
        );
        a.retired.store(true, Ordering::Release);
        b.retired.store(true, Ordering::Release);
        let mut next: Vec<Arc<TabletState>> = tablets.to_vec();
        next.splice(j - 1..=j, [m]);
        publish(tree, next);
        tracing::info!(
            "tree {}: merged tablets {} and {} into {id}",
            tree.name,
            a.id,
            b.id
        );
        Ok(true)
    }
}

/// The files of two neighbouring tablets as one version, if they stay
/// disjoint per level (None while shared files still need cleanup).
fn combine(a: &Version, b: &Version) -> Option<Version> {
    let mut v = Version::default();
    // Each file once, and at one level only.
    let mut level_of: HashMap<u64, usize> = HashMap::new();
    for version in [a, b] {
        for (level, files) in version.levels.iter().enumerate() {
            for f in files {
                match level_of.insert(f.number, level) {
                    None => v.levels[level].push(f.clone()),
                    Some(l) if l == level => {}
                    Some(_) => return None,
                }
            }
        }
    }
    sort_levels(&mut v);
    v.check_invariants().ok()?;
    Some(v)
}

/// Empties the tablets inside [lo, hi) and drops the files inside it that
/// hide nothing older outside the drop. Returns (tablets, files).
pub(crate) fn drop_whole_files(
    inner: &Inner,
    tree: &TreeState,
    lo: &[u8],
    hi: Option<&[u8]>,
) -> Result<(usize, usize)> {
    let _w = inner.lock_writes();
    inner.check_bg_error()?;
    let tablets = tree.tablets();
    let busy = inner.bg.lock().busy_files.clone();
    let mut versions = inner.versions.lock();
    let last_seq = inner.last_seq.load(Ordering::Acquire);
    let within = |k: &[u8]| k >= lo && hi.is_none_or(|hi| k < hi);
    let mut edit = VersionEdit::default();
    let mut emptied: Vec<(usize, NewTablet)> = Vec::new();
    for (i, t) in tablets.iter().enumerate() {
        let starts_inside = t.lo.as_slice() >= lo;
        let ends_inside = match (&t.hi, hi) {
            (_, None) => true,
            (Some(th), Some(hi)) => th.as_slice() <= hi,
            (None, Some(_)) => false,
        };
        let meets = hi.is_none_or(|hi| t.lo.as_slice() < hi)
            && t.hi.as_ref().is_none_or(|th| th.as_slice() > lo);
        if !meets {
            continue;
        }
        if starts_inside && ends_inside {
            let desc = NewTablet {
                id: versions.allocate_id()?,
                ..t.describe()
            };
            edit.dropped_tablets.push(t.id);
            edit.created_tablets.push(desc.clone());
            edit.flushed_seqs.push((desc.id, last_seq));
            emptied.push((i, desc));
            continue;
        }
        // Deepest first: a file may go only if nothing older that it
        // hides stays behind.
        let v = &t.super_version().version;
        let mut kept: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
        let order = (1..NUM_LEVELS)
            .rev()
            .flat_map(|l| v.levels[l].iter().map(move |f| (l, f)))
            .chain(v.levels[0].iter().rev().map(|f| (0, f)));
        for (level, f) in order {
            let (s, l) = (f.smallest_user_key(), f.largest_user_key());
            let hides_kept = kept
                .iter()
                .any(|(ks, kl)| s <= kl.as_slice() && ks.as_slice() <= l);
            if within(s) && within(l) && !hides_kept && !busy.contains(&f.number) {
                edit.removed_files.push((t.id, level as u32, f.number));
            } else {
                kept.push((s.to_vec(), l.to_vec()));
            }
        }
    }
    let files = edit.removed_files.len();
    if emptied.is_empty() && files == 0 {
        return Ok((0, 0));
    }
    if let Err(e) = versions.log_and_apply(edit, Vec::new()) {
        inner.set_bg_error(&e);
        return Err(e);
    }
    let mut next: Vec<Arc<TabletState>> = tablets.to_vec();
    for (i, desc) in &emptied {
        let version = versions
            .tablet(desc.id)
            .map(|t| t.version.clone())
            .unwrap_or_default();
        next[*i].retired.store(true, Ordering::Release);
        next[*i] = TabletState::new(
            desc,
            &tree.name,
            tree.opts.clone(),
            TabletState::empty_sv(version),
        );
    }
    // Tablets that lost files read from their new versions.
    for t in next.iter().filter(|t| !t.is_retired()) {
        if let Some(files) = versions.tablet(t.id) {
            let mut sv = t.sv.write();
            if !Arc::ptr_eq(&sv.version, &files.version) {
                *sv = Arc::new(SuperVersion {
                    mem: sv.mem.clone(),
                    imms: sv.imms.clone(),
                    version: files.version.clone(),
                });
            }
        }
    }
    publish(tree, next);
    Ok((emptied.len(), files))
}

pub(crate) fn tablet_infos(tree: &TreeState) -> Vec<TabletInfo> {
    tree.tablets()
        .iter()
        .map(|t| {
            let sv = t.super_version();
            let mut files_per_level = [0; NUM_LEVELS];
            for (l, files) in sv.version.levels.iter().enumerate() {
                files_per_level[l] = files.len();
            }
            TabletInfo {
                id: t.id,
                lo: t.lo.clone(),
                hi: t.hi.clone(),
                size_bytes: t.size_bytes(&sv.version),
                memtable_bytes: memtable_bytes(&sv),
                files_per_level,
                shared_files: sv
                    .version
                    .levels
                    .iter()
                    .flatten()
                    .filter(|f| t.file_exceeds(f))
                    .count(),
            }
        })
        .collect()
}

fn memtable_bytes(sv: &SuperVersion) -> u64 {
    sv.mem.size_bytes() as u64 + sv.imms.iter().map(|m| m.size_bytes() as u64).sum::<u64>()
}

/// The blocks of a tablet's files within its range, in key order:
/// (separator user key, bytes).
fn tablet_blocks(t: &TabletState, v: &Version) -> Vec<(Vec<u8>, u64)> {
    let mut blocks: Vec<(Vec<u8>, u64)> = v
        .levels
        .iter()
        .flatten()
        .flat_map(|f| t.blocks_within(f))
        .collect();
    blocks.sort_by(|a, b| a.0.cmp(&b.0));
    blocks
}

pub(crate) fn sample_keys(tree: &TreeState, step_bytes_min: u64) -> (Vec<(Vec<u8>, u64)>, u64) {
    let mut out: Vec<(Vec<u8>, u64)> = Vec::new();
    let mut total = 0u64;
    for t in tree.tablets().iter() {
        let sv = t.super_version();
        let mut since = 0u64;
        for (k, size) in tablet_blocks(t, &sv.version) {
            total += size;
            since += size;
            let inside = k.as_slice() > t.lo.as_slice()
                && t.hi.as_ref().is_none_or(|hi| k.as_slice() < hi.as_slice());
            if inside && since >= step_bytes_min.max(1) && out.last().is_none_or(|(l, _)| *l < k) {
                out.push((k, total));
                since = 0;
            }
        }
        total += memtable_bytes(&sv);
        if let Some(hi) = &t.hi {
            out.push((hi.clone(), total));
        }
    }
    (out, total)
}

/// Where to split a tablet: the key halfway through its bytes, moved to a
/// unit boundary; None if no boundary lies strictly inside it.
fn split_key(t: &TabletState, v: &Version) -> Option<Vec<u8>> {
    let blocks = tablet_blocks(t, v);
    let total: u64 = blocks.iter().map(|b| b.1).sum();
    let mid = blocks
        .iter()
        .scan(0u64, |acc, b| {
            *acc += b.1;
            Some(*acc)
        })
        .position(|acc| acc * 2 >= total)?;
    let opts = t.options();
    let fits = |k: &[u8]| k > t.lo.as_slice() && t.hi.as_ref().is_none_or(|hi| k < hi.as_slice());
    let candidates = blocks[mid..]
        .iter()
        .chain(blocks[..mid].iter().rev())
        .map(|b| b.0.as_slice());
    for k in candidates {
        let k = match &opts.split_boundary {
            Some(f) => f(k),
            None => k.to_vec(),
        };
        if fits(&k) {
            return Some(k);
        }
    }
    None
}

/// One pass of the tablet policy over every tree with a split size:
/// split what grew past it, merge one pair of neighbours that together
/// stay under a quarter of it. Returns whether it changed anything.
pub(crate) fn maintain(inner: &Inner) -> Result<bool> {
    let trees: Vec<Arc<TreeState>> = inner.trees.read().by_id.values().cloned().collect();
    let mut changed = false;
    for tree in trees {
        let Some(split_bytes) = tree.options().tablet_split_bytes else {
            continue;
        };
        let tablets = tree.tablets();
        let sizes: Vec<u64> = tablets
            .iter()
            .map(|t| {
                let sv = t.super_version();
                t.size_bytes(&sv.version) + memtable_bytes(&sv)
            })
            .collect();
        for (t, &size) in tablets.iter().zip(&sizes) {
            if size <= split_bytes {
                continue;
            }
            if let Some(key) = split_key(t, &t.super_version().version) {
                changed |= split_at(inner, &tree, &key)?;
            }
        }
        if changed {
            continue;
        }
        // Only neighbours with nothing in memory: merging flushes them,
        // and tablets still taking writes would flush for nothing.
        let idle = |t: &TabletState| {
            let sv = t.super_version();
            sv.mem.is_empty() && sv.imms.is_empty()
        };
        for j in 1..tablets.len() {
            let (a, b) = (&tablets[j - 1], &tablets[j]);
            if b.pinned_lo || sizes[j - 1] + sizes[j] >= split_bytes / 4 || !idle(a) || !idle(b) {
                continue;
            }
            if merge_at(inner, &tree, &b.lo)? {
                changed = true;
                break;
            }
        }
    }
    Ok(changed)
}
