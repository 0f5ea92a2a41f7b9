//! Leveled compaction: choosing what to compact (`picker`), doing it
//! (`job`), and scheduling it across trees (here).

mod job;
mod picker;

pub use picker::{max_score, scores, Plan};

use std::sync::atomic::Ordering;
use std::sync::Arc;

use crate::db::{Inner, TreeOptions, TreeState};
use crate::error::Result;
use crate::manifest::Version;

pub(crate) fn needs_compaction(v: &Version, opts: &TreeOptions) -> bool {
    max_score(v, opts) >= 1.0
}

/// Runs the most urgent compaction of any tree, if one is needed and its
/// files are free. Returns whether it did any work.
pub(crate) fn run_one(inner: &Inner) -> Result<bool> {
    let (busy, manual) = {
        let bg = inner.bg.lock();
        (bg.busy_files.clone(), bg.manual_compactions.clone())
    };
    let trees: Vec<Arc<TreeState>> = inner.trees.read().by_id.values().cloned().collect();
    let mut best: Option<(Arc<TreeState>, Plan, Vec<Vec<u8>>)> = None;
    for t in trees {
        let sv = t.super_version();
        let force = manual.contains(&t.id);
        let mut pointers = t.compact_pointers.lock().clone();
        match picker::pick(&sv.version, &t.options(), &busy, &mut pointers, force) {
            Some(mut plan) => {
                if force {
                    plan.score = f64::INFINITY;
                }
                if best.as_ref().is_none_or(|(_, b, _)| plan.score > b.score) {
                    best = Some((t, plan, pointers));
                }
            }
            None if force => {
                // Done once none of its files is still being compacted.
                let mine_busy = sv
                    .version
                    .levels
                    .iter()
                    .flatten()
                    .any(|f| busy.contains(&f.number));
                if !mine_busy {
                    let mut bg = inner.bg.lock();
                    bg.manual_compactions.remove(&t.id);
                    inner.bg_cv.notify_all();
                }
            }
            None => {}
        }
    }
    let Some((t, plan, pointers)) = best else {
        return Ok(false);
    };
    {
        let mut bg = inner.bg.lock();
        if plan.all_files().any(|f| bg.busy_files.contains(&f.number)) {
            return Ok(false); // another thread took a file meanwhile
        }
        for f in plan.all_files() {
            bg.busy_files.insert(f.number);
        }
        bg.compactions_running += 1;
    }
    *t.compact_pointers.lock() = pointers;
    let result = job::run(inner, &t, &plan);
    {
        let mut bg = inner.bg.lock();
        for f in plan.all_files() {
            bg.busy_files.remove(&f.number);
        }
        bg.compactions_running -= 1;
        inner.bg_cv.notify_all();
    }
    result?;
    inner.stats.compactions.fetch_add(1, Ordering::Relaxed);
    Ok(true)
}
