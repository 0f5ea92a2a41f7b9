//! Choosing what to compact: leveled compaction.
//!
//! Score of L0: files / l0_compaction_trigger. Score of Ln (n >= 1): bytes /
//! target bytes of the level. The level with the highest score >= 1 is
//! compacted into the next one: all of L0 (with the L1 files it overlaps),
//! or one file of Ln chosen round-robin (with the Ln+1 files it overlaps).

use std::collections::HashSet;
use std::sync::Arc;

use crate::db::TreeOptions;
use crate::manifest::{FileMeta, Version, NUM_LEVELS};

/// One planned compaction.
pub struct Plan {
    pub level: usize,
    pub output_level: usize,
    /// Files of `level`.
    pub inputs: Vec<Arc<FileMeta>>,
    /// Files of `output_level` that overlap the inputs.
    pub overlapping: Vec<Arc<FileMeta>>,
    pub score: f64,
    /// Planned by a manual compaction: rewrite even a single file, so a
    /// compaction filter sees every key.
    pub forced: bool,
}

impl Plan {
    /// A single file with nothing to merge in can move down unchanged
    /// (a rewrite in place, which clips a file to its tablet, cannot).
    pub fn is_trivial_move(&self) -> bool {
        self.inputs.len() == 1 && self.overlapping.is_empty() && self.output_level > self.level
    }

    pub fn all_files(&self) -> impl Iterator<Item = &Arc<FileMeta>> {
        self.inputs.iter().chain(self.overlapping.iter())
    }
}

/// Per-level scores; index = level (the last level never has a score).
pub fn scores(v: &Version, opts: &TreeOptions) -> [f64; NUM_LEVELS] {
    let mut s = [0.0; NUM_LEVELS];
    s[0] = v.levels[0].len() as f64 / opts.l0_compaction_trigger as f64;
    for (level, score) in s.iter_mut().enumerate().take(NUM_LEVELS - 1).skip(1) {
        *score = v.level_bytes(level) as f64 / opts.level_target_bytes(level) as f64;
    }
    s
}

pub fn max_score(v: &Version, opts: &TreeOptions) -> f64 {
    scores(v, opts).into_iter().fold(0.0, f64::max)
}

fn user_range(files: &[Arc<FileMeta>]) -> (Vec<u8>, Vec<u8>) {
    let lo = files
        .iter()
        .map(|f| f.smallest_user_key())
        .min()
        .unwrap_or_default();
    let hi = files
        .iter()
        .map(|f| f.largest_user_key())
        .max()
        .unwrap_or_default();
    (lo.to_vec(), hi.to_vec())
}

/// Plans the most urgent compaction whose files are all free, if any level
/// scores at least 1. With `force` (a manual compaction), plans the next
/// step of moving everything into the deepest non-empty level (L1 if all
/// data is in L0).
pub fn pick(
    v: &Version,
    opts: &TreeOptions,
    busy: &HashSet<u64>,
    pointers: &mut [Vec<u8>],
    force: bool,
) -> Option<Plan> {
    let s = scores(v, opts);
    let levels: Vec<usize> = if force {
        let last = (0..NUM_LEVELS).rev().find(|&l| !v.levels[l].is_empty())?;
        (0..NUM_LEVELS - 1)
            .filter(|&l| !v.levels[l].is_empty() && (l < last || l == 0))
            .collect()
    } else {
        let mut by_score: Vec<usize> = (0..NUM_LEVELS - 1).filter(|&l| s[l] >= 1.0).collect();
        by_score.sort_by(|a, b| s[*b].total_cmp(&s[*a]));
        by_score
    };
    for level in levels {
        let plan = if level == 0 {
            pick_l0(v, busy, s[0])
        } else {
            pick_level(v, level, busy, &mut pointers[level], s[level])
        };
        if let Some(mut plan) = plan {
            plan.forced = force;
            return Some(plan);
        }
    }
    None
}

pub(crate) fn pick_l0(v: &Version, busy: &HashSet<u64>, score: f64) -> Option<Plan> {
    let inputs: Vec<Arc<FileMeta>> = v.levels[0].clone();
    if inputs.is_empty() || inputs.iter().any(|f| busy.contains(&f.number)) {
        return None;
    }
    let (lo, hi) = user_range(&inputs);
    let overlapping = v.overlapping(1, Some(&lo), Some(&hi));
    if overlapping.iter().any(|f| busy.contains(&f.number)) {
        return None;
    }
    Some(Plan {
        level: 0,
        output_level: 1,
        inputs,
        overlapping,
        score,
        forced: false,
    })
}

fn pick_level(
    v: &Version,
    level: usize,
    busy: &HashSet<u64>,
    pointer: &mut Vec<u8>,
    score: f64,
) -> Option<Plan> {
    let files = &v.levels[level];
    if files.is_empty() {
        return None;
    }
    // Start after the pointer, wrap around.
    let start = files.partition_point(|f| f.largest_user_key() <= pointer.as_slice());
    for i in (start..files.len()).chain(0..start) {
        let f = &files[i];
        if busy.contains(&f.number) {
            continue;
        }
        let overlapping = v.overlapping(
            level + 1,
            Some(f.smallest_user_key()),
            Some(f.largest_user_key()),
        );
        if overlapping.iter().any(|o| busy.contains(&o.number)) {
            continue;
        }
        *pointer = f.largest_user_key().to_vec();
        return Some(Plan {
            level,
            output_level: level + 1,
            inputs: vec![f.clone()],
            overlapping,
            score,
            forced: false,
        });
    }
    None
}
