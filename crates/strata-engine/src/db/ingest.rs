//! Ingesting another engine's tablets into a tree: how a cluster merge
//! gives one engine the data of two (docs/cluster.md, "Merges"). The
//! other engine is closed and read, not opened: its manifest tells which
//! tables make up its tablets (`manifest::read_stored`), the caller copies
//! those tables into this engine's storage under numbers this engine
//! allocates, and one manifest edit replaces this tree's (empty) tablets
//! over the range by tablets holding the copies at their levels.
//!
//! Sequence numbers: the copies keep the other engine's. The edit raises
//! this engine's last sequence number to at least the other's, so every
//! later write is newer than anything copied. Within the range only the
//! copies hold keys (its tablets must be empty), so the two numberings
//! never order versions of one key.
//!
//! Crash analysis: the edit is the commit point. Before it, the copies are
//! unreferenced tables (deleted by a later open's sweep, or with the
//! storage when the merge is abandoned); after it, they are the range's
//! data. The range's flushed sequence becomes the new last sequence
//! number, so no log record replays into it.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::split::publish;
use super::tablet::{TabletState, TreeState};
use super::Inner;
use crate::error::{Error, Result};
use crate::key::SeqNo;
use crate::manifest::{open_file, FileMeta, NewFile, NewTablet, StoredTablet, VersionEdit};

/// What an ingest did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ingested {
    /// Tablets created over the range.
    pub tablets: usize,
    /// Tables copied (a table shared by several source tablets once).
    pub files: usize,
    pub bytes: u64,
}

fn overlaps(lo: &[u8], hi: Option<&[u8]>, t_lo: &[u8], t_hi: Option<&[u8]>) -> bool {
    hi.is_none_or(|hi| t_lo < hi) && t_hi.is_none_or(|th| th > lo)
}

/// The source tablets cut to `[lo, hi)`, checked to cover it exactly.
fn cut(lo: &[u8], hi: Option<&[u8]>, source: &[StoredTablet]) -> Result<Vec<NewTablet>> {
    let mut sorted: Vec<&StoredTablet> = source
        .iter()
        .filter(|t| overlaps(lo, hi, &t.desc.lo, t.desc.hi.as_deref()))
        .collect();
    sorted.sort_by(|a, b| a.desc.lo.cmp(&b.desc.lo));
    let mut out: Vec<NewTablet> = Vec::with_capacity(sorted.len());
    let mut at: Vec<u8> = lo.to_vec();
    for t in sorted {
        if t.desc.lo.as_slice() > at.as_slice() {
            return Err(Error::InvalidArgument(format!(
                "the ingested tablets leave a gap at {:?}",
                String::from_utf8_lossy(&at)
            )));
        }
        let end = match (t.desc.hi.as_deref(), hi) {
            (None, h) => h.map(<[u8]>::to_vec),
            (Some(th), Some(h)) if th > h => Some(h.to_vec()),
            (Some(th), _) => Some(th.to_vec()),
        };
        if end.as_deref().is_some_and(|e| e <= at.as_slice()) {
            return Err(Error::InvalidArgument(
                "the ingested tablets overlap".to_string(),
            ));
        }
        out.push(NewTablet {
            id: t.desc.id,
            tree: t.desc.tree,
            lo: at.clone(),
            hi: end.clone(),
            pinned_lo: t.desc.pinned_lo && t.desc.lo == at,
        });
        match end {
            Some(e) => at = e,
            None => return Ok(out),
        }
        if hi == Some(at.as_slice()) {
            return Ok(out);
        }
    }
    Err(Error::InvalidArgument(format!(
        "the ingested tablets end before the range does, at {:?}",
        String::from_utf8_lossy(&at)
    )))
}

/// See `Tree::ingest`.
pub(crate) fn ingest(
    inner: &Inner,
    tree: &TreeState,
    lo: &[u8],
    hi: Option<&[u8]>,
    source: &[StoredTablet],
    source_last_seq: SeqNo,
    place: &mut dyn FnMut(u64, u64) -> Result<()>,
) -> Result<Ingested> {
    if hi.is_some_and(|hi| hi <= lo) {
        return Err(Error::InvalidArgument(
            "ingest: the range's end is not above its start".to_string(),
        ));
    }
    let cuts = cut(lo, hi, source)?;
    // Refused before anything is copied (and checked again at the commit,
    // with the bounds made).
    holds_nothing_inside(tree, lo, hi)?;
    // Copy each source table once, under a number of this engine's.
    let mut numbers: BTreeMap<u64, u64> = BTreeMap::new();
    for t in source
        .iter()
        .filter(|t| cuts.iter().any(|c| c.id == t.desc.id))
    {
        for f in t.levels.iter().flatten() {
            if let std::collections::btree_map::Entry::Vacant(e) = numbers.entry(f.number) {
                e.insert(inner.versions.lock().new_file_number()?);
            }
        }
    }
    let mut opened: BTreeMap<u64, Arc<FileMeta>> = BTreeMap::new();
    let result = (|| -> Result<Ingested> {
        for t in source
            .iter()
            .filter(|t| cuts.iter().any(|c| c.id == t.desc.id))
        {
            for f in t.levels.iter().flatten() {
                let to = numbers[&f.number];
                if opened.contains_key(&to) {
                    continue;
                }
                place(f.number, to)?;
                let copy = NewFile {
                    number: to,
                    ..f.clone()
                };
                opened.insert(to, open_file(&inner.storage, &inner.cache, &copy)?);
            }
        }
        commit(
            inner,
            tree,
            lo,
            hi,
            source,
            &cuts,
            &numbers,
            &opened,
            source_last_seq,
        )
    })();
    if result.is_err() {
        // Best effort: the copies are unreferenced either way.
        drop(opened);
        for n in numbers.values() {
            let _ = inner.storage.remove(&crate::manifest::table_file_name(*n));
        }
    }
    result
}

/// Whether the tree's tablets wholly inside `[lo, hi)` hold no data
/// (those reaching across a bound are checked at the commit).
fn holds_nothing_inside(tree: &TreeState, lo: &[u8], hi: Option<&[u8]>) -> Result<()> {
    for t in tree.tablets().iter() {
        let inside = t.lo.as_slice() >= lo
            && match (t.hi.as_deref(), hi) {
                (_, None) => true,
                (Some(th), Some(h)) => th <= h,
                (None, Some(_)) => false,
            };
        if inside && holds_data(t) {
            return Err(Error::InvalidArgument(format!(
                "ingest: tree {} holds data in the range (tablet {})",
                tree.name, t.id
            )));
        }
    }
    Ok(())
}

fn holds_data(t: &TabletState) -> bool {
    let sv = t.super_version();
    !sv.mem.is_empty() || !sv.imms.is_empty() || sv.version.levels.iter().any(|l| !l.is_empty())
}

/// The indexes of `tablets` (the tree's) over `[lo, hi)`, the first and
/// the last: they must start and end at the bounds and hold no data.
fn empty_range(
    tree: &TreeState,
    tablets: &[Arc<TabletState>],
    lo: &[u8],
    hi: Option<&[u8]>,
) -> Result<(Vec<usize>, usize, usize)> {
    let inside: Vec<usize> = (0..tablets.len())
        .filter(|&i| overlaps(lo, hi, &tablets[i].lo, tablets[i].hi.as_deref()))
        .collect();
    let (Some(&first), Some(&last)) = (inside.first(), inside.last()) else {
        return Err(Error::InvalidArgument(
            "ingest: no tablet in the range".into(),
        ));
    };
    if tablets[first].lo.as_slice() != lo || tablets[last].hi.as_deref() != hi {
        return Err(Error::InvalidArgument(
            "ingest: the tree's tablets do not start and end at the range's bounds".into(),
        ));
    }
    for &i in &inside {
        if holds_data(&tablets[i]) {
            return Err(Error::InvalidArgument(format!(
                "ingest: tree {} holds data in the range (tablet {})",
                tree.name, tablets[i].id
            )));
        }
    }
    Ok((inside, first, last))
}

#[allow(clippy::too_many_arguments)]
fn commit(
    inner: &Inner,
    tree: &TreeState,
    lo: &[u8],
    hi: Option<&[u8]>,
    source: &[StoredTablet],
    cuts: &[NewTablet],
    numbers: &BTreeMap<u64, u64>,
    opened: &BTreeMap<u64, Arc<FileMeta>>,
    source_last_seq: SeqNo,
) -> Result<Ingested> {
    // The bounds are made under the write mutex held to the end: the
    // engine's own maintenance merges empty neighbours, and would merge
    // them away again in between.
    let _w = inner.lock_writes();
    inner.check_bg_error()?;
    if tree.dropped.load(Ordering::Acquire) {
        return Err(Error::TreeNotFound(tree.name.clone()));
    }
    if !lo.is_empty() {
        super::split::split_at_locked(inner, tree, lo)?;
    }
    if let Some(hi) = hi {
        super::split::split_at_locked(inner, tree, hi)?;
    }
    let tablets = tree.tablets();
    let (inside, first, last) = empty_range(tree, &tablets, lo, hi)?;
    let mut versions = inner.versions.lock();
    inner.last_seq.fetch_max(source_last_seq, Ordering::AcqRel);
    let last_seq = inner.last_seq.load(Ordering::Acquire);
    let mut edit = VersionEdit {
        last_seq: Some(last_seq),
        dropped_tablets: inside.iter().map(|&i| tablets[i].id).collect(),
        ..Default::default()
    };
    let mut made: Vec<NewTablet> = Vec::with_capacity(cuts.len());
    let mut done = Ingested::default();
    for (k, c) in cuts.iter().enumerate() {
        let id = versions.allocate_id()?;
        let desc = NewTablet {
            id,
            tree: tree.id,
            lo: c.lo.clone(),
            hi: c.hi.clone(),
            pinned_lo: if k == 0 {
                tablets[first].pinned_lo
            } else {
                c.pinned_lo
            },
        };
        let src = source
            .iter()
            .find(|t| t.desc.id == c.id)
            .ok_or_else(|| Error::InvalidArgument("ingest: a cut without its tablet".into()))?;
        for (level, files) in src.levels.iter().enumerate() {
            for f in files {
                edit.added_files.push(NewFile {
                    tree: id,
                    level: level as u32,
                    number: numbers[&f.number],
                    ..f.clone()
                });
            }
        }
        edit.flushed_seqs.push((id, last_seq));
        edit.created_tablets.push(desc.clone());
        made.push(desc);
    }
    done.tablets = made.len();
    done.files = opened.len();
    done.bytes = opened.values().map(|f| f.size_bytes).sum();
    if let Err(e) = versions.log_and_apply(edit, opened.values().cloned().collect()) {
        inner.set_bg_error(&e);
        return Err(e);
    }
    let mut fresh: Vec<Arc<TabletState>> = Vec::with_capacity(made.len());
    for desc in &made {
        let version = versions
            .tablet(desc.id)
            .map(|t| t.version.clone())
            .unwrap_or_default();
        fresh.push(TabletState::new(
            desc,
            &tree.name,
            tree.opts.clone(),
            TabletState::empty_sv(version),
        ));
    }
    for &i in &inside {
        tablets[i].retired.store(true, Ordering::Release);
    }
    let mut next: Vec<Arc<TabletState>> = tablets.to_vec();
    next.splice(first..=last, fresh);
    publish(tree, next);
    tracing::info!(
        "tree {}: ingested {} tables ({} bytes) as {} tablets",
        tree.name,
        done.files,
        done.bytes,
        done.tablets
    );
    Ok(done)
}

#[cfg(test)]
mod tests {
    use crate::db::{Direction, Engine, EngineOptions, TreeOptions};
    use crate::manifest::{read_stored, table_file_name};
    use crate::storage::LocalStorage;

    fn key(i: usize) -> Vec<u8> {
        format!("k{i:05}").into_bytes()
    }

    fn all(tree: &crate::db::Tree) -> Vec<(Vec<u8>, Vec<u8>)> {
        tree.iter(Direction::Forward)
            .unwrap()
            .map(|r| r.unwrap())
            .collect()
    }

    /// An engine holding keys [from, to) in several tablets and levels,
    /// with files shared across a split; closed.
    fn source(dir: &std::path::Path, from: usize, to: usize) {
        let e = Engine::open_dir(dir, EngineOptions::default()).unwrap();
        let t = e.open_tree("t", TreeOptions::default()).unwrap();
        for i in from..to {
            t.put(&key(i), b"old").unwrap();
        }
        t.flush().unwrap();
        t.compact().unwrap();
        for i in (from..to).step_by(3) {
            t.put(&key(i), format!("src{i}").as_bytes()).unwrap();
        }
        t.flush().unwrap();
        // Shared files across this split; and rows outside [from, to)
        // that must never show (the other half of an earlier split).
        t.split_at(&key((from + to) / 2)).unwrap();
        e.close().unwrap();
    }

    #[test]
    fn ingests_a_closed_engines_range_and_keeps_it_across_reopen() {
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        source(b.path(), 500, 1000);
        let stored = read_stored(&*LocalStorage::open(b.path()).unwrap()).unwrap();
        let (&tree_id, _) = stored.trees.iter().find(|(_, n)| *n == "t").unwrap();
        let tablets: Vec<_> = stored.tablets_of(tree_id).into_iter().cloned().collect();
        assert!(tablets.len() >= 2);

        let e = Engine::open_dir(a.path(), EngineOptions::default()).unwrap();
        let t = e.open_tree("t", TreeOptions::default()).unwrap();
        for i in 0..500 {
            t.put(&key(i), b"a").unwrap();
        }
        t.flush().unwrap();
        // A range holding data is refused, and nothing changes.
        let mut copies = 0;
        let mut place = |from: u64, to: u64| {
            copies += 1;
            std::fs::copy(
                b.path().join(table_file_name(from)),
                a.path().join(table_file_name(to)),
            )
            .map(|_| ())
            .map_err(|e| crate::error::Error::io("copy", e))
        };
        assert!(t
            .ingest(&key(400), None, &tablets, stored.last_seq, &mut place)
            .is_err());
        assert_eq!(all(&t).len(), 500);
        // The range above the data: ingested.
        let done = t
            .ingest(&key(500), None, &tablets, stored.last_seq, &mut place)
            .unwrap();
        assert!(done.files >= 2 && done.tablets >= 2, "{done:?}");
        let check = |t: &crate::db::Tree| {
            let rows = all(t);
            assert_eq!(rows.len(), 1000);
            for (i, (k, v)) in rows.iter().enumerate() {
                assert_eq!(k, &key(i));
                let want = match i {
                    i if i < 500 => b"a".to_vec(),
                    i if (i - 500) % 3 == 0 => format!("src{i}").into_bytes(),
                    _ => b"old".to_vec(),
                };
                assert_eq!(v, &want, "key {i}");
            }
        };
        check(&t);
        // A write after the ingest is newer than anything ingested.
        t.put(&key(501), b"new").unwrap();
        assert_eq!(t.get(&key(501)).unwrap().as_deref(), Some(&b"new"[..]));
        t.put(&key(501), b"old").unwrap();
        drop(t);
        e.close().unwrap();

        let e = Engine::open_dir(a.path(), EngineOptions::default()).unwrap();
        let t = e.tree("t").unwrap();
        check(&t);
        t.put(&key(998), b"src998").unwrap();
        t.compact().unwrap();
        check(&t);
    }

    #[test]
    fn a_bounded_range_takes_only_its_part() {
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        source(b.path(), 0, 1000);
        let stored = read_stored(&*LocalStorage::open(b.path()).unwrap()).unwrap();
        let (&tree_id, _) = stored.trees.iter().find(|(_, n)| *n == "t").unwrap();
        let tablets: Vec<_> = stored.tablets_of(tree_id).into_iter().cloned().collect();
        let e = Engine::open_dir(a.path(), EngineOptions::default()).unwrap();
        let t = e.open_tree("t", TreeOptions::default()).unwrap();
        let mut place = |from: u64, to: u64| {
            std::fs::copy(
                b.path().join(table_file_name(from)),
                a.path().join(table_file_name(to)),
            )
            .map(|_| ())
            .map_err(|e| crate::error::Error::io("copy", e))
        };
        t.ingest(
            &key(200),
            Some(&key(700)),
            &tablets,
            stored.last_seq,
            &mut place,
        )
        .unwrap();
        let rows = all(&t);
        assert_eq!(rows.len(), 500);
        assert_eq!(rows[0].0, key(200));
        assert_eq!(rows[499].0, key(699));
        let tablets_here = t.tablets();
        assert!(tablets_here.iter().any(|x| x.lo == key(200)));
        assert!(tablets_here.iter().any(|x| x.lo == key(700)));
    }
}
