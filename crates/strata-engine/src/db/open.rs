//! Opening an engine: recover the manifest, replay the commit log into
//! memtables, sweep files nothing refers to, and start a new log segment.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::Arc;

use parking_lot::{Condvar, Mutex, RwLock};

use super::{EngineOptions, Inner, Stats, TabletState, TreeOptions, TreeState, Trees};
use crate::batch::{decode_payload, TreeId};
use crate::error::Result;
use crate::log::{self, CommitLog, LogLayout, LogOptions};
use crate::manifest::{file_number_of, VersionSet};
use crate::sst::BlockCache;
use crate::storage::Storage;

/// The in-memory state of tree `id` as the version set records it: its
/// tablets, each with an empty memtable over its files.
pub(crate) fn tree_state(
    versions: &VersionSet,
    id: TreeId,
    name: &str,
    opts: Arc<TreeOptions>,
) -> Arc<TreeState> {
    let opts = Arc::new(RwLock::new(opts));
    let mut tablets: Vec<Arc<TabletState>> = versions
        .tablets()
        .iter()
        .filter(|(_, t)| t.tree == id)
        .map(|(&tid, t)| {
            TabletState::new(
                &t.describe(tid),
                name,
                opts.clone(),
                TabletState::empty_sv(t.version.clone()),
            )
        })
        .collect();
    tablets.sort_by(|a, b| a.lo.cmp(&b.lo));
    debug_assert_eq!(TreeState::check_tablets(&tablets), Ok(()));
    Arc::new(TreeState {
        id,
        name: name.to_string(),
        opts,
        tablets: RwLock::new(Arc::new(tablets)),
        dropped: AtomicBool::new(false),
    })
}

pub(crate) fn recover(storage: Arc<dyn Storage>, opts: EngineOptions) -> Result<Arc<Inner>> {
    opts.validate()?;
    let cache = match &opts.shared_block_cache {
        Some(shared) => shared.sibling(),
        None => BlockCache::new(opts.block_cache_bytes),
    };
    let versions = VersionSet::open(storage.clone(), cache.clone())?;
    let mut trees = Trees::default();
    for (&id, name) in versions.trees() {
        let state = tree_state(&versions, id, name, Arc::new(TreeOptions::default()));
        TreeState::check_tablets(&state.tablets())
            .map_err(|e| crate::Error::corruption("manifest", format!("tree {name}: {e}")))?;
        trees.by_name.insert(name.clone(), id);
        trees.by_id.insert(id, state);
    }
    let flushed: HashMap<TreeId, u64> = versions
        .tablets()
        .iter()
        .map(|(&id, t)| (id, t.flushed_seq))
        .collect();

    // Replay: every op above its tablet's flushed sequence number goes
    // back into the tablet's memtable (the tablet whose range holds the
    // key now, whatever tablet held it when it was written).
    let mut last_seq = versions.last_seq();
    let mut replayed_ops = 0u64;
    let mut replay = |seq_first: u64, payload: &[u8]| -> Result<()> {
        let ops = decode_payload(payload, "commit log")?;
        for (i, op) in ops.iter().enumerate() {
            let seq = seq_first + i as u64;
            last_seq = last_seq.max(seq);
            let Some(tree) = trees.by_id.get(&op.tree) else {
                continue; // the tree was dropped
            };
            let t = tree.tablet_for(op.key);
            if seq > flushed[&t.id] {
                t.sv.read().mem.insert(op.key, seq, op.kind, op.value);
                replayed_ops += 1;
            }
        }
        Ok(())
    };
    let log_started = std::time::Instant::now();
    let (report, layout) = if storage.whole_objects() {
        let epoch = versions.epoch();
        let r = log::objects::recover(&storage, epoch, &mut replay)?;
        let layout = LogLayout::Objects {
            epoch,
            next_id: r.fence + 1,
        };
        (r.report, layout)
    } else {
        (log::recover(&*storage, &mut replay)?, LogLayout::Segments)
    };
    last_seq = last_seq.max(report.last_seq);
    let log_replayed = log_started.elapsed();
    if let Some((file, offset)) = &report.truncated {
        tracing::warn!("commit log {file} had a torn tail: truncated at byte {offset}");
    }
    let o = versions.opening();
    tracing::info!(
        "opened {}{}: {} trees, {} log records in {} segments, {replayed_ops} ops replayed, last seq {last_seq}; \
         {} manifest edits read in {:.0?}, {} tables opened in {:.0?}, log replayed in {:.0?}",
        storage.describe(),
        match versions.epoch() {
            0 => String::new(),
            e => format!(" as owner epoch {e}"),
        },
        trees.by_id.len(),
        report.records,
        report.segments.len(),
        o.manifest_edits,
        o.manifest_read,
        o.tables,
        o.tables_opened,
        log_replayed,
    );

    // Sweep files no one refers to: tables of crashed flushes and
    // compactions, old manifests, a leftover CURRENT.tmp.
    let live = versions.live_file_names();
    let log_names: Vec<String> = report
        .segments
        .iter()
        .map(|s| crate::log::segment_file_name(s.number))
        .collect();
    for name in storage.list()? {
        let ours = file_number_of(&name).is_some_and(|n| n < versions.sweep_below())
            || name == "CURRENT.tmp"
            || crate::log::prealloc::is_prepared(&name);
        if ours && !live.contains(&name) && !log_names.contains(&name) && !name.ends_with(".log") {
            tracing::info!("removing unreferenced file {name}");
            storage.remove(&name)?;
        }
    }

    let log = CommitLog::open(
        storage.clone(),
        versions.file_number_counter(),
        LogOptions {
            segment_size_bytes_max: opts.log_segment_bytes_max,
            layout,
            preallocate: opts.log_preallocate
                && opts.sync_mode == super::options::SyncMode::Always
                && storage.can_preallocate(),
        },
        report.segments,
    )?;
    let pipeline = match layout {
        LogLayout::Objects { epoch, .. } => Some(super::pipeline::Pipeline::uploads(
            opts.log_uploads_in_flight_max,
            epoch,
        )),
        LogLayout::Segments
            if opts.sync_mode == super::options::SyncMode::Always
                && opts.log_syncs_in_flight_max > 0 =>
        {
            Some(super::pipeline::Pipeline::syncs(
                opts.log_syncs_in_flight_max,
            ))
        }
        LogLayout::Segments => None,
    };
    let pool = opts.memtable_pool.as_ref().map(|p| p.join());
    let workers = opts
        .background_pool
        .as_ref()
        .map(|p| p.join(opts.max_background_compactions));
    Ok(Arc::new_cyclic(|me| Inner {
        storage,
        opts,
        cache,
        log: Mutex::new(log),
        versions: Mutex::new(versions),
        trees: RwLock::new(trees),
        queue: Mutex::default(),
        commit_cv: Arc::new(Condvar::new()),
        write_mutex: Mutex::new(()),
        last_seq: AtomicU64::new(last_seq),
        snapshots: Mutex::default(),
        bg: Mutex::default(),
        bg_cv: Condvar::new(),
        stopped: AtomicBool::new(false),
        stats: Stats::default(),
        jobs: Default::default(),
        budget: Default::default(),
        pool,
        pipeline,
        workers,
        me: me.clone(),
        spawned: Mutex::default(),
    }))
}
