//! The background jobs running now (flushes and compactions), for the
//! status page: each job registers itself for as long as it runs and
//! counts its progress with relaxed atomics.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// Jobs kept track of at once; more run only with a pool of many engines,
/// and those past the limit go unlisted (they still run).
const JOBS_MAX: usize = 256;

/// What a job does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JobKind {
    /// A memtable written to a level-0 table.
    Flush,
    /// Files of level `from` merged into level `to`.
    Compaction { from: usize, to: usize },
}

#[derive(Debug)]
struct Job {
    kind: JobKind,
    tree: String,
    tablet: u64,
    input_bytes: u64,
    started: Instant,
    keys_done: AtomicU64,
}

/// A job running now, as the status page shows it.
#[derive(Clone, Debug)]
pub struct JobInfo {
    pub kind: JobKind,
    /// The name of the tree (a table's tree, to the table layer).
    pub tree: String,
    pub tablet: u64,
    /// Bytes of the input files (a compaction) or of the memtable (a flush).
    pub input_bytes: u64,
    pub keys_done: u64,
    pub running_for: Duration,
}

/// The jobs running now.
#[derive(Debug, Default)]
pub(crate) struct Jobs {
    running: Mutex<Vec<Arc<Job>>>,
}

/// A job's registration: it leaves the list when dropped.
#[derive(Debug)]
pub(crate) struct JobGuard<'a> {
    jobs: &'a Jobs,
    job: Option<Arc<Job>>,
    started: Instant,
}

impl Jobs {
    pub(crate) fn start(
        &self,
        kind: JobKind,
        tree: &str,
        tablet: u64,
        input_bytes: u64,
    ) -> JobGuard<'_> {
        let started = Instant::now();
        let mut running = self.running.lock();
        let job = (running.len() < JOBS_MAX).then(|| {
            let job = Arc::new(Job {
                kind,
                tree: tree.to_string(),
                tablet,
                input_bytes,
                started,
                keys_done: AtomicU64::new(0),
            });
            running.push(job.clone());
            job
        });
        JobGuard {
            jobs: self,
            job,
            started,
        }
    }

    pub(crate) fn list(&self) -> Vec<JobInfo> {
        self.running
            .lock()
            .iter()
            .map(|j| JobInfo {
                kind: j.kind,
                tree: j.tree.clone(),
                tablet: j.tablet,
                input_bytes: j.input_bytes,
                keys_done: j.keys_done.load(Ordering::Relaxed),
                running_for: j.started.elapsed(),
            })
            .collect()
    }
}

impl JobGuard<'_> {
    /// How long the job has run.
    pub(crate) fn running_for(&self) -> Duration {
        self.started.elapsed()
    }

    /// Adds `n` keys written.
    pub(crate) fn keys_done(&self, n: u64) {
        if let Some(j) = &self.job {
            j.keys_done.fetch_add(n, Ordering::Relaxed);
        }
    }
}

impl Drop for JobGuard<'_> {
    fn drop(&mut self) {
        if let Some(job) = self.job.take() {
            self.jobs.running.lock().retain(|j| !Arc::ptr_eq(j, &job));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_job_is_listed_while_it_runs() {
        let jobs = Jobs::default();
        {
            let a = jobs.start(JobKind::Flush, "t", 1, 100);
            let _b = jobs.start(JobKind::Compaction { from: 0, to: 1 }, "t", 2, 200);
            a.keys_done(7);
            let l = jobs.list();
            assert_eq!(l.len(), 2);
            assert_eq!(l[0].keys_done, 7);
            assert_eq!(l[1].kind, JobKind::Compaction { from: 0, to: 1 });
        }
        assert!(jobs.list().is_empty());
    }

    #[test]
    fn jobs_past_the_limit_run_unlisted() {
        let jobs = Jobs::default();
        let guards: Vec<_> = (0..JOBS_MAX + 3)
            .map(|i| jobs.start(JobKind::Flush, "t", i as u64, 0))
            .collect();
        assert_eq!(jobs.list().len(), JOBS_MAX);
        drop(guards);
        assert!(jobs.list().is_empty());
    }
}
