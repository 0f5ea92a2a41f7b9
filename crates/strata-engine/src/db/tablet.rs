//! Tablets: a tree's keys split into contiguous ranges `[lo, hi)`, each
//! range with its own memtables and files (its own LSM tree), all sharing
//! the engine's commit log, block cache and manifest. Writes and reads are
//! routed to the tablet whose range holds their key.

use std::ops::Bound;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};

use super::{SuperVersion, TreeOptions};
use crate::batch::TreeId;
use crate::manifest::{FileMeta, NewTablet, Version, NUM_LEVELS};
use crate::memtable::Memtable;

/// One tablet: the keys `[lo, hi)` of a tree.
pub(crate) struct TabletState {
    pub id: TreeId,
    pub tree: TreeId,
    /// The tree's name (for messages).
    pub name: String,
    pub lo: Vec<u8>,
    /// None: unbounded above.
    pub hi: Option<Vec<u8>>,
    /// The lower boundary was asked for (an initial split): never merged.
    pub pinned_lo: bool,
    /// Shared with the tree and its other tablets.
    pub opts: Arc<RwLock<Arc<TreeOptions>>>,
    pub sv: RwLock<Arc<SuperVersion>>,
    /// Per level, the largest key of the last file compacted from it
    /// (round-robin choice of the next one).
    pub compact_pointers: Mutex<Vec<Vec<u8>>>,
    /// Held while one of its memtables is being flushed.
    pub flush_lock: Mutex<()>,
    /// Set when the tablet is split, merged, emptied or dropped: from then
    /// on it takes no writes and its background work is discarded.
    pub retired: AtomicBool,
}

impl TabletState {
    pub fn new(
        desc: &NewTablet,
        name: &str,
        opts: Arc<RwLock<Arc<TreeOptions>>>,
        sv: SuperVersion,
    ) -> Arc<TabletState> {
        Arc::new(TabletState {
            id: desc.id,
            tree: desc.tree,
            name: name.to_string(),
            lo: desc.lo.clone(),
            hi: desc.hi.clone(),
            pinned_lo: desc.pinned_lo,
            opts,
            sv: RwLock::new(Arc::new(sv)),
            compact_pointers: Mutex::new(vec![Vec::new(); NUM_LEVELS]),
            flush_lock: Mutex::new(()),
            retired: AtomicBool::new(false),
        })
    }

    /// An empty memtable over `version`.
    pub fn empty_sv(version: Arc<Version>) -> SuperVersion {
        SuperVersion {
            mem: Memtable::new(),
            imms: Vec::new(),
            version,
        }
    }

    pub fn describe(&self) -> NewTablet {
        NewTablet {
            id: self.id,
            tree: self.tree,
            lo: self.lo.clone(),
            hi: self.hi.clone(),
            pinned_lo: self.pinned_lo,
        }
    }

    pub fn super_version(&self) -> Arc<SuperVersion> {
        self.sv.read().clone()
    }

    pub fn options(&self) -> Arc<TreeOptions> {
        self.opts.read().clone()
    }

    pub fn is_retired(&self) -> bool {
        self.retired.load(Ordering::Acquire)
    }

    pub fn contains(&self, key: &[u8]) -> bool {
        key >= self.lo.as_slice() && self.hi.as_ref().is_none_or(|hi| key < hi.as_slice())
    }

    /// Whether a file's keys reach outside the tablet (it is shared with a
    /// neighbour, or holds data a drop left behind).
    pub fn file_exceeds(&self, f: &FileMeta) -> bool {
        f.smallest_user_key() < self.lo.as_slice()
            || self
                .hi
                .as_ref()
                .is_some_and(|hi| f.largest_user_key() >= hi.as_slice())
    }

    /// Approximate bytes on disk of the tablet's own keys: whole files
    /// within its range, and for files that reach outside it the blocks
    /// (from the file's index) that fall inside.
    pub fn size_bytes(&self, version: &Version) -> u64 {
        version
            .levels
            .iter()
            .flatten()
            .map(|f| {
                if self.file_exceeds(f) {
                    self.blocks_within(f).iter().map(|b| b.1).sum()
                } else {
                    f.size_bytes
                }
            })
            .sum()
    }

    /// The blocks of a file within the tablet's range: (user key of the
    /// block's index separator, block bytes), in key order.
    pub fn blocks_within(&self, f: &FileMeta) -> Vec<(Vec<u8>, u64)> {
        let entries = f.table.index_entries();
        let mut out = Vec::new();
        let mut prev_sep: Option<&[u8]> = None;
        for (i, (sep, off)) in entries.iter().enumerate() {
            let end = entries.get(i + 1).map_or(f.size_bytes, |e| e.1);
            let sep_user = crate::key::user_key(sep);
            // A block holds keys in (previous separator, its separator].
            let starts_below_hi = match (&self.hi, prev_sep) {
                (Some(hi), Some(p)) => p < hi.as_slice(),
                _ => true,
            };
            if sep_user >= self.lo.as_slice() && starts_below_hi {
                out.push((sep_user.to_vec(), end.saturating_sub(*off)));
            }
            prev_sep = Some(sep_user);
        }
        out
    }

    /// The tablet's range intersected with [lower, upper].
    pub fn clip<'a>(
        &'a self,
        lower: Bound<&'a [u8]>,
        upper: Bound<&'a [u8]>,
    ) -> (Bound<&'a [u8]>, Bound<&'a [u8]>) {
        let lower = match lower {
            Bound::Unbounded => Bound::Included(self.lo.as_slice()),
            Bound::Included(k) | Bound::Excluded(k) if k < self.lo.as_slice() => {
                Bound::Included(self.lo.as_slice())
            }
            b => b,
        };
        let upper = match (&self.hi, upper) {
            (None, b) => b,
            (Some(hi), Bound::Unbounded) => Bound::Excluded(hi.as_slice()),
            (Some(hi), Bound::Included(k) | Bound::Excluded(k)) if k >= hi.as_slice() => {
                Bound::Excluded(hi.as_slice())
            }
            (_, b) => b,
        };
        (lower, upper)
    }
}

/// A named tree: its options and its tablets in key order.
pub(crate) struct TreeState {
    pub id: TreeId,
    pub name: String,
    pub opts: Arc<RwLock<Arc<TreeOptions>>>,
    /// Sorted by `lo`, covering every key without overlap. Replaced whole
    /// (under the write mutex) by splits, merges and drops.
    pub tablets: RwLock<Arc<Vec<Arc<TabletState>>>>,
    pub dropped: AtomicBool,
}

impl TreeState {
    pub fn options(&self) -> Arc<TreeOptions> {
        self.opts.read().clone()
    }

    pub fn tablets(&self) -> Arc<Vec<Arc<TabletState>>> {
        self.tablets.read().clone()
    }

    /// The tablet whose range holds `key`.
    pub fn tablet_for(&self, key: &[u8]) -> Arc<TabletState> {
        let tablets = self.tablets.read();
        tablets[index_for(&tablets, key)].clone()
    }

    /// Checks that the tablets cover every key exactly once, in order.
    pub fn check_tablets(tablets: &[Arc<TabletState>]) -> Result<(), String> {
        let Some(first) = tablets.first() else {
            return Err("a tree without tablets".into());
        };
        if !first.lo.is_empty() {
            return Err("the first tablet does not start at the empty key".into());
        }
        for w in tablets.windows(2) {
            if w[0].hi.as_deref() != Some(w[1].lo.as_slice()) {
                return Err(format!("tablets {} and {} do not meet", w[0].id, w[1].id));
            }
        }
        if tablets.last().is_some_and(|t| t.hi.is_some()) {
            return Err("the last tablet is bounded above".into());
        }
        Ok(())
    }
}

/// Index of the tablet (of a sorted, covering list) whose range holds `key`.
pub(crate) fn index_for(tablets: &[Arc<TabletState>], key: &[u8]) -> usize {
    debug_assert!(!tablets.is_empty());
    if tablets.len() == 1 {
        return 0; // an unsplit tree: its one tablet covers every key
    }
    tablets
        .partition_point(|t| t.lo.as_slice() <= key)
        .saturating_sub(1)
}
