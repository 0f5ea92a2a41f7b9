//! Running one compaction: merge the input files, keep what some reader can
//! still see, write sorted output files, and swap them in with one edit.
//!
//! What is kept, per user key, with the live snapshots s0 < s1 < ... cutting
//! the versions into stripes (a version with seq <= s_i and > s_(i-1) is in
//! stripe i; versions newer than every snapshot are in the last stripe):
//! within a stripe only the newest version is visible to anyone, so older
//! ones are dropped; merge operands are folded into the value below them
//! in the same stripe; a tombstone in the oldest stripe is dropped when no
//! deeper level holds the key (nothing below it is left to hide).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::picker::Plan;
use crate::db::{Inner, JobGuard, SuperVersion, TableFile, TabletState};
use crate::error::{Error, Result};
use crate::iter::merge::MergingIterator;
use crate::iter::InternalIterator;
use crate::key::{append_internal_key, lookup_key, parse_internal_key, SeqNo, ValueKind, SEQ_MAX};
use crate::manifest::{new_file_of, FileMeta, LevelIterator, VersionEdit, NUM_LEVELS};
use crate::merge::MergeOperator;

struct Entry {
    seq: SeqNo,
    kind: ValueKind,
    value: Vec<u8>,
}

pub(crate) fn run(inner: &Inner, t: &TabletState, plan: &Plan) -> Result<()> {
    let mut edit = VersionEdit::default();
    for f in &plan.inputs {
        edit.removed_files.push((t.id, plan.level as u32, f.number));
    }
    let filtered = plan.forced && t.options().compaction_filter.is_some();
    if plan.is_trivial_move() && !filtered {
        let f = &plan.inputs[0];
        edit.added_files
            .push(new_file_of(t.id, plan.output_level, f));
        return inner.apply_tree_edit(t, edit, Vec::new(), None);
    }
    let read_bytes: u64 = plan.all_files().map(|f| f.size_bytes).sum();
    let job = inner.jobs.start(
        crate::db::JobKind::Compaction {
            from: plan.level,
            to: plan.output_level,
        },
        &t.name,
        u64::from(t.id),
        read_bytes,
    );
    let result = merge(inner, t, plan, edit, &job, read_bytes);
    inner
        .stats
        .compaction_micros
        .fetch_add(job.running_for().as_micros() as u64, Ordering::Relaxed);
    result
}

/// A compaction that merges: the inputs' versions of each key of the
/// tablet's range written to new files, keeping what some reader can
/// still see, then one edit that swaps them in.
fn merge(
    inner: &Inner,
    t: &TabletState,
    plan: &Plan,
    mut edit: VersionEdit,
    job: &JobGuard<'_>,
    read_bytes: u64,
) -> Result<()> {
    for f in &plan.overlapping {
        edit.removed_files
            .push((t.id, plan.output_level as u32, f.number));
    }
    let sv = t.super_version();
    let opts = t.options();
    let mut children: Vec<Box<dyn InternalIterator>> = Vec::new();
    if plan.level == 0 {
        for f in &plan.inputs {
            children.push(Box::new(f.table.iter(false)));
        }
    } else {
        children.push(Box::new(LevelIterator::new(plan.inputs.clone(), false)));
    }
    children.push(Box::new(LevelIterator::new(
        plan.overlapping.clone(),
        false,
    )));
    let mut it = MergingIterator::new(children);
    // Files shared since a split hold the neighbour's keys too: only the
    // tablet's own range is written.
    if t.lo.is_empty() {
        it.seek_to_first()?;
    } else {
        it.seek(&lookup_key(&t.lo, SEQ_MAX))?;
    }

    let snapshots = inner.snapshot_seqs();
    let mut deeper = Deeper::new(&sv, plan.output_level);
    let merge = opts.merge_operator.clone();
    let mut key_filter = opts.compaction_filter.as_ref().map(|f| f.start());
    let mut out = Outputs::new(inner, &opts);
    let mut entries: Vec<Entry> = Vec::new();
    let mut key: Vec<u8> = Vec::new();
    let mut progress = Progress::new(t.id, plan, read_bytes);
    loop {
        // Gather every version of the next user key.
        entries.clear();
        if !it.valid() {
            break;
        }
        {
            let p = parse_internal_key(it.key())
                .ok_or_else(|| Error::corruption("compaction input", "malformed key"))?;
            if t.hi.as_ref().is_some_and(|hi| p.user_key >= hi.as_slice()) {
                break;
            }
            key.clear();
            key.extend_from_slice(p.user_key);
        }
        while it.valid() {
            let p = parse_internal_key(it.key())
                .ok_or_else(|| Error::corruption("compaction input", "malformed key"))?;
            if p.user_key != key.as_slice() {
                break;
            }
            entries.push(Entry {
                seq: p.seq,
                kind: p.kind,
                value: it.value().to_vec(),
            });
            it.next()?;
        }
        if inner.bg.lock().shutdown {
            return Err(Error::Closed("shutdown during compaction".into()));
        }
        let bottommost = deeper.is_bottommost(&key);
        let mut kept = compact_key(&key, &entries, &snapshots, bottommost, merge.as_deref());
        if let Some(kf) = key_filter.as_mut() {
            apply_filter(kf.as_mut(), &key, &mut kept, &snapshots, bottommost);
        }
        out.add_key(&key, &kept)?;
        progress.key_done();
        job.keys_done(1);
    }
    let new_tables = out.finish()?;
    inner
        .stats
        .compaction_bytes_read
        .fetch_add(read_bytes, Ordering::Relaxed);
    for f in &new_tables {
        edit.added_files
            .push(new_file_of(t.id, plan.output_level, f));
    }
    inner.apply_tree_edit(t, edit, new_tables, None)
}

/// How often a long compaction reports how far it is.
const PROGRESS_EVERY: Duration = Duration::from_secs(10);
/// Keys between looks at the clock.
const PROGRESS_KEYS: u64 = 4096;

/// A long compaction's progress, reported every few seconds.
struct Progress {
    tablet: u64,
    levels: (usize, usize),
    read_bytes: u64,
    keys: u64,
    started: Instant,
    last: Instant,
    every: Duration,
}

impl Progress {
    fn new(tablet: impl Into<u64>, plan: &Plan, read_bytes: u64) -> Progress {
        Progress::every(
            tablet.into(),
            (plan.level, plan.output_level),
            read_bytes,
            PROGRESS_EVERY,
        )
    }

    fn every(tablet: u64, levels: (usize, usize), read_bytes: u64, every: Duration) -> Progress {
        let now = Instant::now();
        Progress {
            tablet,
            levels,
            read_bytes,
            keys: 0,
            started: now,
            last: now,
            every,
        }
    }

    /// One more key is written: logs a line if the last was long enough
    /// ago (the clock is read once every `PROGRESS_KEYS` keys).
    fn key_done(&mut self) {
        if let Some(line) = self.line() {
            tracing::info!(tablet = self.tablet, "{line}");
        }
    }

    fn line(&mut self) -> Option<String> {
        self.keys += 1;
        if !self.keys.is_multiple_of(PROGRESS_KEYS) || self.last.elapsed() < self.every {
            return None;
        }
        self.last = Instant::now();
        Some(format!(
            "compaction L{} to L{} of {} input bytes: {} keys written, {:.0?} so far",
            self.levels.0,
            self.levels.1,
            self.read_bytes,
            self.keys,
            self.started.elapsed()
        ))
    }
}

type Kept<'a> = Vec<(SeqNo, ValueKind, std::borrow::Cow<'a, [u8]>)>;

/// Asks the compaction filter about a live key; if it is garbage, its
/// versions newer than every snapshot become one tombstone, or vanish when
/// nothing older of the key exists anywhere.
fn apply_filter(
    kf: &mut dyn crate::merge::KeyFilter,
    key: &[u8],
    kept: &mut Kept<'_>,
    snapshots: &[SeqNo],
    bottommost: bool,
) {
    let live = kept.first().is_some_and(|e| e.1 != ValueKind::Delete);
    if !live || !kf.drop_key(key) {
        return;
    }
    let last_stripe = snapshots.len();
    let stripe = |seq: SeqNo| snapshots.partition_point(|&s| s < seq);
    let newest = kept
        .iter()
        .take_while(|e| stripe(e.0) == last_stripe)
        .count();
    if newest == 0 {
        return; // a snapshot sees the newest version: keep it
    }
    let seq = kept[0].0;
    kept.drain(..newest);
    if !(kept.is_empty() && bottommost) {
        kept.insert(
            0,
            (seq, ValueKind::Delete, std::borrow::Cow::Borrowed(&[][..])),
        );
    }
}

/// The versions of one key that must survive (newest first).
fn compact_key<'a>(
    key: &[u8],
    entries: &'a [Entry],
    snapshots: &[SeqNo],
    bottommost: bool,
    merge: Option<&dyn MergeOperator>,
) -> Kept<'a> {
    use std::borrow::Cow;
    let stripe = |seq: SeqNo| snapshots.partition_point(|&s| s < seq);
    let mut kept = Vec::new();
    let mut i = 0;
    while i < entries.len() {
        let st = stripe(entries[i].seq);
        let mut k = i;
        while k < entries.len() && stripe(entries[k].seq) == st {
            k += 1;
        }
        let nothing_older = k == entries.len() && bottommost;
        let newest = &entries[i];
        match newest.kind {
            ValueKind::Put => kept.push((
                newest.seq,
                ValueKind::Put,
                Cow::Borrowed(newest.value.as_slice()),
            )),
            ValueKind::Delete => {
                if !(st == 0 && nothing_older) {
                    kept.push((newest.seq, ValueKind::Delete, Cow::Borrowed(&[][..])));
                }
            }
            ValueKind::Merge => match merge {
                None => {
                    // Cannot fold without the operator: keep the stripe as is.
                    for e in &entries[i..k] {
                        kept.push((e.seq, e.kind, Cow::Borrowed(e.value.as_slice())));
                    }
                }
                Some(op) => {
                    let run_end = (i..k)
                        .find(|&j| entries[j].kind != ValueKind::Merge)
                        .unwrap_or(k);
                    let operands: Vec<&[u8]> = entries[i..run_end]
                        .iter()
                        .rev()
                        .map(|e| e.value.as_slice())
                        .collect();
                    let folded = if run_end < k {
                        let base = entries[run_end].kind == ValueKind::Put;
                        let base = base.then_some(entries[run_end].value.as_slice());
                        Some(op.full_merge(key, base, &operands))
                    } else if nothing_older {
                        Some(op.full_merge(key, None, &operands))
                    } else {
                        None
                    };
                    match folded {
                        Some(v) => kept.push((newest.seq, ValueKind::Put, Cow::Owned(v))),
                        None => match op.partial_merge(key, &operands) {
                            Some(v) if operands.len() > 1 => {
                                kept.push((newest.seq, ValueKind::Merge, Cow::Owned(v)))
                            }
                            _ => {
                                for e in &entries[i..run_end] {
                                    kept.push((
                                        e.seq,
                                        ValueKind::Merge,
                                        Cow::Borrowed(e.value.as_slice()),
                                    ));
                                }
                            }
                        },
                    }
                }
            },
        }
        i = k;
    }
    kept
}

/// Whether levels below the output hold a key, for keys asked in order.
struct Deeper {
    levels: Vec<Vec<Arc<FileMeta>>>,
    idx: Vec<usize>,
}

impl Deeper {
    fn new(sv: &SuperVersion, output_level: usize) -> Deeper {
        let levels: Vec<Vec<Arc<FileMeta>>> = (output_level + 1..NUM_LEVELS)
            .map(|l| sv.version.levels[l].clone())
            .collect();
        let idx = vec![0; levels.len()];
        Deeper { levels, idx }
    }

    fn is_bottommost(&mut self, key: &[u8]) -> bool {
        for (files, i) in self.levels.iter().zip(self.idx.iter_mut()) {
            while *i < files.len() && files[*i].largest_user_key() < key {
                *i += 1;
            }
            if *i < files.len() && files[*i].smallest_user_key() <= key {
                return false;
            }
        }
        true
    }
}

/// The output files of a compaction, cut at key boundaries.
struct Outputs<'a> {
    inner: &'a Inner,
    opts: Arc<crate::db::TreeOptions>,
    current: Option<TableFile>,
    done: Vec<Arc<FileMeta>>,
    ikey: Vec<u8>,
}

impl<'a> Outputs<'a> {
    fn new(inner: &'a Inner, opts: &Arc<crate::db::TreeOptions>) -> Outputs<'a> {
        Outputs {
            inner,
            opts: opts.clone(),
            current: None,
            done: Vec::new(),
            ikey: Vec::new(),
        }
    }

    fn add_key(
        &mut self,
        key: &[u8],
        kept: &[(SeqNo, ValueKind, std::borrow::Cow<'_, [u8]>)],
    ) -> Result<()> {
        if kept.is_empty() {
            return Ok(());
        }
        if self
            .current
            .as_ref()
            .is_some_and(|f| f.estimated_size_bytes() >= self.opts.target_file_size_bytes)
        {
            self.close_current()?;
        }
        let file = match &mut self.current {
            Some(f) => f,
            None => self
                .current
                .insert(TableFile::create(self.inner, &self.opts)?),
        };
        for (seq, kind, value) in kept {
            self.ikey.clear();
            append_internal_key(&mut self.ikey, key, *seq, *kind);
            file.add(&self.ikey, value)?;
        }
        Ok(())
    }

    fn close_current(&mut self) -> Result<()> {
        if let Some(f) = self.current.take() {
            let meta = f.finish(self.inner, &self.inner.stats.compaction_bytes_written)?;
            self.done.push(meta);
        }
        Ok(())
    }

    fn finish(mut self) -> Result<Vec<Arc<FileMeta>>> {
        self.close_current()?;
        if !self.done.is_empty() {
            self.inner.storage.sync_dir()?;
        }
        Ok(std::mem::take(&mut self.done))
    }
}

impl Drop for Outputs<'_> {
    /// Outputs finished but never named in an edit (the compaction failed
    /// or was cut short) are deleted.
    fn drop(&mut self) {
        for f in &self.done {
            f.mark_obsolete();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(seq: SeqNo, kind: ValueKind, v: &str) -> Entry {
        Entry {
            seq,
            kind,
            value: v.as_bytes().to_vec(),
        }
    }

    fn shape(kept: &[(SeqNo, ValueKind, std::borrow::Cow<'_, [u8]>)]) -> Vec<(SeqNo, ValueKind)> {
        kept.iter().map(|(s, k, _)| (*s, *k)).collect()
    }

    #[test]
    fn a_long_compaction_reports_progress_once_per_interval_every_4096_keys() {
        let mut quiet = Progress::every(3, (1, 2), 1 << 20, Duration::from_secs(3600));
        assert!((0..3 * PROGRESS_KEYS).all(|_| quiet.line().is_none()));

        let mut p = Progress::every(3, (1, 2), 1 << 20, Duration::ZERO);
        let lines: Vec<String> = (0..2 * PROGRESS_KEYS).filter_map(|_| p.line()).collect();
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert!(
            lines[1].starts_with("compaction L1 to L2 of 1048576 input bytes: 8192 keys written"),
            "{}",
            lines[1]
        );
    }

    #[test]
    fn keeps_one_version_per_stripe_and_drops_bottom_tombstones() {
        let entries = vec![
            e(9, ValueKind::Put, "c"),
            e(5, ValueKind::Put, "b"),
            e(2, ValueKind::Put, "a"),
        ];
        assert_eq!(
            shape(&compact_key(b"k", &entries, &[], true, None)),
            vec![(9, ValueKind::Put)]
        );
        assert_eq!(
            shape(&compact_key(b"k", &entries, &[3, 6], true, None)),
            vec![
                (9, ValueKind::Put),
                (5, ValueKind::Put),
                (2, ValueKind::Put)
            ]
        );
        assert_eq!(
            shape(&compact_key(b"k", &entries, &[5], true, None)),
            vec![(9, ValueKind::Put), (5, ValueKind::Put)]
        );
        let del = vec![e(9, ValueKind::Delete, ""), e(2, ValueKind::Put, "a")];
        assert!(compact_key(b"k", &del, &[], true, None).is_empty());
        assert_eq!(
            shape(&compact_key(b"k", &del, &[], false, None)),
            vec![(9, ValueKind::Delete)]
        );
        assert_eq!(
            shape(&compact_key(b"k", &del, &[4], true, None)),
            vec![(9, ValueKind::Delete), (2, ValueKind::Put)]
        );
    }
}

#[cfg(test)]
mod filter_tests {
    use super::*;
    use std::borrow::Cow;

    struct DropAll;
    impl crate::merge::KeyFilter for DropAll {
        fn drop_key(&mut self, _: &[u8]) -> bool {
            true
        }
    }

    fn put(seq: SeqNo) -> (SeqNo, ValueKind, Cow<'static, [u8]>) {
        (seq, ValueKind::Put, Cow::Borrowed(&b"v"[..]))
    }

    fn kinds(k: &Kept<'_>) -> Vec<(SeqNo, ValueKind)> {
        k.iter().map(|e| (e.0, e.1)).collect()
    }

    #[test]
    fn garbage_vanishes_at_the_bottom_and_is_a_tombstone_above_it() {
        let mut k = vec![put(7)];
        apply_filter(&mut DropAll, b"k", &mut k, &[], true);
        assert!(k.is_empty());
        let mut k = vec![put(7)];
        apply_filter(&mut DropAll, b"k", &mut k, &[], false);
        assert_eq!(kinds(&k), vec![(7, ValueKind::Delete)]);
    }

    #[test]
    fn versions_a_snapshot_sees_stay() {
        // Snapshot at 5: version 7 is newer than it, version 3 is its view.
        let mut k = vec![put(7), put(3)];
        apply_filter(&mut DropAll, b"k", &mut k, &[5], true);
        assert_eq!(kinds(&k), vec![(7, ValueKind::Delete), (3, ValueKind::Put)]);
        // Snapshot at 9 sees version 7: nothing changes.
        let mut k = vec![put(7)];
        apply_filter(&mut DropAll, b"k", &mut k, &[9], true);
        assert_eq!(kinds(&k), vec![(7, ValueKind::Put)]);
    }

    #[test]
    fn tombstoned_keys_are_not_offered() {
        struct Never;
        impl crate::merge::KeyFilter for Never {
            fn drop_key(&mut self, _: &[u8]) -> bool {
                panic!("a deleted key was offered")
            }
        }
        let mut k = vec![(7, ValueKind::Delete, Cow::Borrowed(&[][..]))];
        apply_filter(&mut Never, b"k", &mut k, &[], false);
        assert_eq!(kinds(&k), vec![(7, ValueKind::Delete)]);
    }
}
