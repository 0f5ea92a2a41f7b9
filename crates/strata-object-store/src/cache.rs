//! The local cache of SSTables: whole files in a directory, bounded in
//! bytes, the least recently opened evicted first. It holds only copies of
//! immutable objects (an SSTable's name is never reused for other bytes),
//! so deleting it loses nothing; it is written through when a table is
//! uploaded and filled in the background when one is read from the store.
//! A file evicted while open stays readable through its open handle.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;

use crate::SetupError;

/// The file naming the store the cache holds copies of.
const IDENTITY_FILE: &str = "STORE";
const LOCK_FILE: &str = "LOCK";
const TMP_SUFFIX: &str = ".tmp";

struct Entry {
    size_bytes: u64,
    last_used: u64,
}

#[derive(Default)]
struct State {
    files: HashMap<String, Entry>,
    bytes: u64,
    tick: u64,
}

pub struct FileCache {
    dir: PathBuf,
    bytes_max: u64,
    state: Mutex<State>,
    /// Numbers each insert's temporary file: two inserts of one name at
    /// once (two readers filling it) must not write one file.
    tmp_seq: AtomicU64,
    _lock: File,
}

fn setup_err(dir: &Path, source: std::io::Error) -> SetupError {
    SetupError::Cache {
        dir: dir.display().to_string(),
        source,
    }
}

impl FileCache {
    /// Opens (creating) the cache in `dir` for the store named `identity`;
    /// a cache of another store is emptied first.
    pub fn open(dir: &Path, bytes_max: u64, identity: &str) -> Result<FileCache, SetupError> {
        let err = |e| setup_err(dir, e);
        fs::create_dir_all(dir).map_err(err)?;
        let lock = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join(LOCK_FILE))
            .map_err(err)?;
        lock.try_lock().map_err(|e| {
            setup_err(
                dir,
                std::io::Error::other(format!(
                    "in use by another process ({e}); one cache directory serves one server"
                )),
            )
        })?;
        let same_store =
            fs::read_to_string(dir.join(IDENTITY_FILE)).ok().as_deref() == Some(identity);
        let mut state = State::default();
        for entry in fs::read_dir(dir).map_err(err)? {
            let entry = entry.map_err(err)?;
            let Some(name) = entry.file_name().to_str().map(str::to_string) else {
                continue;
            };
            if name == LOCK_FILE || name == IDENTITY_FILE {
                continue;
            }
            if !same_store || name.ends_with(TMP_SUFFIX) || !name.ends_with(".sst") {
                let _ = fs::remove_file(entry.path());
                continue;
            }
            let size_bytes = entry.metadata().map_err(err)?.len();
            state.bytes += size_bytes;
            state.files.insert(
                name,
                Entry {
                    size_bytes,
                    last_used: 0,
                },
            );
        }
        if !same_store {
            fs::write(dir.join(IDENTITY_FILE), identity).map_err(err)?;
        }
        let cache = FileCache {
            dir: dir.to_path_buf(),
            bytes_max,
            state: Mutex::new(state),
            tmp_seq: AtomicU64::new(0),
            _lock: lock,
        };
        cache.evict();
        Ok(cache)
    }

    /// The cached copy of `name`, opened.
    pub fn get(&self, name: &str) -> Option<File> {
        let mut st = self.state.lock();
        st.tick += 1;
        let tick = st.tick;
        let e = st.files.get_mut(name)?;
        e.last_used = tick;
        match File::open(self.dir.join(name)) {
            Ok(f) => Some(f),
            Err(_) => {
                if let Some(e) = st.files.remove(name) {
                    st.bytes -= e.size_bytes;
                }
                None
            }
        }
    }

    /// Keeps a copy of `name` (best effort: a failure only means a later
    /// read goes to the store). Returns the copy, opened.
    pub fn insert(&self, name: &str, data: &[u8]) -> Option<File> {
        if data.len() as u64 > self.bytes_max {
            return None;
        }
        let path = self.dir.join(name);
        let seq = self.tmp_seq.fetch_add(1, Ordering::Relaxed);
        let tmp = self.dir.join(format!("{name}.{seq}{TMP_SUFFIX}"));
        let written = (|| -> std::io::Result<File> {
            let mut f = File::create(&tmp)?;
            f.write_all(data)?;
            // A copy that a power loss could cut short must not survive
            // under its name.
            f.sync_data()?;
            fs::rename(&tmp, &path)?;
            File::open(&path)
        })();
        let file = match written {
            Ok(f) => f,
            Err(e) => {
                tracing::warn!("cannot cache {name} in {}: {e}", self.dir.display());
                let _ = fs::remove_file(&tmp);
                return None;
            }
        };
        {
            let mut st = self.state.lock();
            st.tick += 1;
            let entry = Entry {
                size_bytes: data.len() as u64,
                last_used: st.tick,
            };
            if let Some(old) = st.files.insert(name.to_string(), entry) {
                st.bytes -= old.size_bytes;
            }
            st.bytes += data.len() as u64;
        }
        self.evict();
        Some(file)
    }

    pub fn remove(&self, name: &str) {
        let mut st = self.state.lock();
        if let Some(e) = st.files.remove(name) {
            st.bytes -= e.size_bytes;
            let _ = fs::remove_file(self.dir.join(name));
        }
    }

    /// Bytes held.
    #[cfg(test)]
    pub fn bytes(&self) -> u64 {
        self.state.lock().bytes
    }

    /// Evicts the least recently used files until the cache fits.
    fn evict(&self) {
        let mut st = self.state.lock();
        while st.bytes > self.bytes_max {
            let Some(victim) = st
                .files
                .iter()
                .min_by_key(|(_, e)| e.last_used)
                .map(|(n, _)| n.clone())
            else {
                break;
            };
            if let Some(e) = st.files.remove(&victim) {
                st.bytes -= e.size_bytes;
            }
            let _ = fs::remove_file(self.dir.join(&victim));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_lru_and_identity() {
        let dir = tempfile::tempdir().unwrap();
        let c = FileCache::open(dir.path(), 250, "s3://a").unwrap();
        c.insert("1.sst", &[1; 100]).unwrap();
        c.insert("2.sst", &[2; 100]).unwrap();
        assert!(c.get("1.sst").is_some()); // 1 is now the most recent
        c.insert("3.sst", &[3; 100]).unwrap(); // evicts 2
        assert!(c.get("2.sst").is_none());
        assert!(c.get("1.sst").is_some() && c.get("3.sst").is_some());
        assert_eq!(c.bytes(), 200);
        assert!(
            c.insert("big.sst", &[0; 300]).is_none(),
            "larger than the cache"
        );
        drop(c);
        let c = FileCache::open(dir.path(), 250, "s3://a").unwrap();
        assert_eq!(c.bytes(), 200, "kept across restarts");
        drop(c);
        let c = FileCache::open(dir.path(), 250, "s3://b").unwrap();
        assert_eq!(c.bytes(), 0, "another store's copies are dropped");
        assert!(c.get("1.sst").is_none());
        assert!(
            FileCache::open(dir.path(), 250, "s3://b").is_err(),
            "locked"
        );
    }

    /// Two inserts of one name at once (two readers filling the same
    /// table): each returns a whole copy, never one the other truncated.
    #[test]
    fn concurrent_inserts_of_one_name_keep_whole_copies() {
        let dir = tempfile::tempdir().unwrap();
        let c = std::sync::Arc::new(FileCache::open(dir.path(), 1 << 30, "s3://a").unwrap());
        let data = vec![7u8; 4 << 20];
        for _ in 0..20 {
            let handles: Vec<_> = (0..4)
                .map(|_| {
                    let (c, data) = (c.clone(), data.clone());
                    std::thread::spawn(move || {
                        let f = c.insert("1.sst", &data).unwrap();
                        assert_eq!(f.metadata().unwrap().len(), data.len() as u64);
                    })
                })
                .collect();
            for h in handles {
                h.join().unwrap();
            }
        }
        assert_eq!(c.get("1.sst").unwrap().metadata().unwrap().len(), 4 << 20);
        let leftovers = fs::read_dir(dir.path())
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .ends_with(TMP_SUFFIX)
            })
            .count();
        assert_eq!(leftovers, 0);
    }
}
