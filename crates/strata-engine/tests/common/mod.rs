//! Shared helpers of the engine's integration tests.
#![allow(dead_code)]

use std::sync::Arc;

use strata_engine::{EngineOptions, MergeOperator, TreeOptions};

/// Options that make every mechanism run on tiny data: small memtables,
/// blocks, files and levels.
pub fn tiny_tree_options() -> TreeOptions {
    TreeOptions {
        memtable_bytes_max: 8 << 10,
        block_size_bytes: 256,
        target_file_size_bytes: 8 << 10,
        level_base_bytes: 32 << 10,
        level_size_multiplier: 4,
        l0_compaction_trigger: 2,
        l0_slowdown_trigger: 8,
        l0_stop_trigger: 12,
        merge_operator: Some(Arc::new(Concat)),
        ..TreeOptions::default()
    }
}

pub fn tiny_engine_options() -> EngineOptions {
    EngineOptions {
        block_cache_bytes: 64 << 10,
        log_segment_bytes_max: 16 << 10,
        ..EngineOptions::default()
    }
}

/// Merge operator of the tests: joins operands onto the base with ','.
pub struct Concat;

impl MergeOperator for Concat {
    fn name(&self) -> &str {
        "concat"
    }

    fn full_merge(&self, _key: &[u8], base: Option<&[u8]>, operands: &[&[u8]]) -> Vec<u8> {
        let mut out: Option<Vec<u8>> = base.map(|b| b.to_vec());
        for op in operands {
            out = Some(concat(out.as_deref(), op));
        }
        out.unwrap_or_default()
    }
}

/// What a merge of `op` onto `base` gives, for the model.
pub fn concat(base: Option<&[u8]>, op: &[u8]) -> Vec<u8> {
    match base {
        Some(b) => {
            let mut v = b.to_vec();
            v.push(b',');
            v.extend_from_slice(op);
            v
        }
        None => op.to_vec(),
    }
}

/// A deterministic xorshift generator.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Writer threads putting keys `w{writer}-{i:08}` until stopped, each
/// recording which puts were acknowledged and which failed (an
/// `Unavailable` error: an unknown outcome; after one, a writer waits
/// 20 ms).
pub struct Writers {
    pub acked: Arc<std::sync::Mutex<Vec<Vec<u8>>>>,
    pub failed: Arc<std::sync::Mutex<Vec<Vec<u8>>>>,
    /// Puts acknowledged after the first failure was seen.
    pub acked_after_failure: Arc<std::sync::atomic::AtomicUsize>,
    stop: Arc<std::sync::atomic::AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Writers {
    pub fn start(tree: &strata_engine::Tree, writers: u64) -> Writers {
        use std::sync::atomic::Ordering;
        let acked = Arc::new(std::sync::Mutex::new(Vec::new()));
        let failed = Arc::new(std::sync::Mutex::new(Vec::new()));
        let after = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let threads = (0..writers)
            .map(|w| {
                let tree = tree.clone();
                let (acked, failed, after, stop) =
                    (acked.clone(), failed.clone(), after.clone(), stop.clone());
                std::thread::spawn(move || {
                    for i in 0.. {
                        if stop.load(Ordering::Acquire) {
                            break;
                        }
                        let k = format!("w{w}-{i:08}").into_bytes();
                        match tree.put(&k, b"v") {
                            Ok(_) => {
                                acked.lock().unwrap().push(k);
                                if !failed.lock().unwrap().is_empty() {
                                    after.fetch_add(1, Ordering::AcqRel);
                                }
                            }
                            Err(e) => {
                                assert!(matches!(e, strata_engine::Error::Unavailable(_)), "{e}");
                                failed.lock().unwrap().push(k);
                                std::thread::sleep(std::time::Duration::from_millis(20));
                            }
                        }
                    }
                })
            })
            .collect();
        Writers {
            acked,
            failed,
            acked_after_failure: after,
            stop,
            threads,
        }
    }

    /// Waits until `n` puts were acknowledged; panics after `within`.
    pub fn wait_acked(&self, n: usize, within: std::time::Duration) {
        let deadline = std::time::Instant::now() + within;
        while self.acked.lock().unwrap().len() < n {
            assert!(std::time::Instant::now() < deadline, "writes stalled");
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    }

    /// Waits until `n` puts were acknowledged after a failure (the engine
    /// repaired its log and writes resumed); panics after `within`.
    pub fn wait_resumed(&self, n: usize, within: std::time::Duration) {
        use std::sync::atomic::Ordering;
        let deadline = std::time::Instant::now() + within;
        while self.acked_after_failure.load(Ordering::Acquire) < n {
            assert!(std::time::Instant::now() < deadline, "writes never resumed");
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }

    /// Stops the writers; returns the keys acknowledged and those failed.
    pub fn stop(self) -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
        self.stop.store(true, std::sync::atomic::Ordering::Release);
        for t in self.threads {
            t.join().unwrap();
        }
        let acked = self.acked.lock().unwrap().clone();
        let failed = self.failed.lock().unwrap().clone();
        (acked, failed)
    }
}
