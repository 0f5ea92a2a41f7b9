//! Leveled compaction: choosing what to compact (`picker`), doing it
//! (`job`), and scheduling it across trees (here).

mod job;
mod picker;

pub use picker::{max_score, scores, Plan};

use std::sync::atomic::Ordering;
use std::sync::Arc;

use crate::db::{Inner, TabletState, TreeOptions};
use crate::error::Result;
use crate::manifest::Version;

pub(crate) fn needs_compaction(v: &Version, opts: &TreeOptions) -> bool {
    max_score(v, opts) >= 1.0
}

/// Score of a cleanup: below every needed compaction.
const CLEANUP_SCORE: f64 = 0.5;

/// When nothing more urgent is due: rewrite a file that reaches outside
/// the tablet (one the tablet shares with its neighbour since a split), so
/// that the space of the other half is freed once every sharer has done
/// the same. L0 goes down to L1 as usual; deeper files are rewritten in
/// place, clipped to the tablet's range.
fn cleanup_plan(
    t: &TabletState,
    v: &Version,
    busy: &std::collections::HashSet<u64>,
    force: bool,
) -> Option<Plan> {
    if force {
        return None;
    }
    if v.levels[0].iter().any(|f| t.file_exceeds(f)) {
        return picker::pick_l0(v, busy, CLEANUP_SCORE);
    }
    for (level, files) in v.levels.iter().enumerate().skip(1) {
        if let Some(f) = files
            .iter()
            .find(|f| t.file_exceeds(f) && !busy.contains(&f.number))
        {
            return Some(Plan {
                level,
                output_level: level,
                inputs: vec![f.clone()],
                overlapping: Vec::new(),
                score: CLEANUP_SCORE,
                forced: false,
            });
        }
    }
    None
}

/// Runs the most urgent compaction of any tree, if one is needed and its
/// files are free. Returns whether it did any work.
pub(crate) fn run_one(inner: &Inner) -> Result<bool> {
    let (busy, manual) = {
        let bg = inner.bg.lock();
        (bg.busy_files.clone(), bg.manual_compactions.clone())
    };
    let tablets = inner.all_tablets();
    // Manual requests for tablets split or merged away meanwhile.
    let gone: Vec<_> = manual
        .iter()
        .filter(|id| !tablets.iter().any(|t| t.id == **id))
        .copied()
        .collect();
    if !gone.is_empty() {
        let mut bg = inner.bg.lock();
        for id in gone {
            bg.manual_compactions.remove(&id);
        }
        inner.notify_bg();
    }
    let mut best: Option<(Arc<TabletState>, Plan, Vec<Vec<u8>>)> = None;
    for t in tablets {
        let sv = t.super_version();
        let force = manual.contains(&t.id);
        let mut pointers = t.compact_pointers.lock().clone();
        let plan = picker::pick(&sv.version, &t.options(), &busy, &mut pointers, force)
            .or_else(|| cleanup_plan(&t, &sv.version, &busy, force));
        match plan {
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
                    inner.notify_bg();
                }
            }
            None => {}
        }
    }
    let Some((t, plan, pointers)) = best else {
        return Ok(false);
    };
    *t.compact_pointers.lock() = pointers;
    run_plan(inner, &t, &plan)
}

/// Runs a plan unless another thread took one of its files meanwhile.
/// Returns whether it ran.
fn run_plan(inner: &Inner, t: &TabletState, plan: &Plan) -> Result<bool> {
    {
        let mut bg = inner.bg.lock();
        if plan.all_files().any(|f| bg.busy_files.contains(&f.number)) {
            return Ok(false);
        }
        for f in plan.all_files() {
            bg.busy_files.insert(f.number);
        }
        bg.compactions_running += 1;
    }
    let result = job::run(inner, t, plan);
    {
        let mut bg = inner.bg.lock();
        for f in plan.all_files() {
            bg.busy_files.remove(&f.number);
        }
        bg.compactions_running -= 1;
        inner.notify_bg();
    }
    result?;
    inner.stats.compactions.fetch_add(1, Ordering::Relaxed);
    Ok(true)
}

/// Rewrites, on the calling thread, every file of the tablet that reaches
/// outside it (a merge needs its tablets' files disjoint). Waits for files
/// other compactions hold.
pub(crate) fn clean_up(inner: &Inner, t: &TabletState) -> Result<()> {
    loop {
        inner.check_bg_error()?;
        if t.is_retired() {
            return Ok(());
        }
        let version = t.super_version().version.clone();
        if !version.levels.iter().flatten().any(|f| t.file_exceeds(f)) {
            return Ok(());
        }
        let busy = inner.bg.lock().busy_files.clone();
        let ran = match cleanup_plan(t, &version, &busy, false) {
            Some(plan) => run_plan(inner, t, &plan)?,
            None => false,
        };
        if !ran {
            let mut bg = inner.bg.lock();
            if bg.shutdown {
                return Err(crate::Error::Closed("engine is shutting down".into()));
            }
            inner
                .bg_cv
                .wait_for(&mut bg, std::time::Duration::from_millis(20));
        }
    }
}
