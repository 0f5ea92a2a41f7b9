//! `ObjectStorage`: the engine's `Storage` over an object store.
//!
//! Names: the engine's SSTables (`000012.sst`) live at `PREFIX/sst/…`; the
//! manifest's and the log's objects are named `manifest/…` and `wal/…` by
//! the engine and live at `PREFIX/manifest/…` and `PREFIX/wal/…`. A table
//! is written in memory and uploaded whole, with create-if-absent, when
//! the engine syncs it; it is then kept in the local cache. A table read
//! from the store is served by ranged GETs until a background download
//! has put it in the cache.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path as FsPath;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};
use strata_engine::storage::{put_new, RandomAccessFile, Storage, WholeObjectWriter, WritableFile};
use strata_engine::{Error, Result};

use crate::bridge::Bridge;
use crate::cache::FileCache;
use crate::counters::Counters;
use crate::url::StorageUrl;
use crate::SetupError;

const SST_DIR: &str = "sst";

/// Objects `read_many` fetches at once.
const READ_MANY_IN_FLIGHT: usize = 32;

/// One storage's view of the store: its prefix, and what it shares with
/// the storages of the same store (`ObjectStorage::child`): the client,
/// the runtime, the cache directory, the counters and the fill limit.
struct Shared {
    url: String,
    store: Arc<dyn ObjectStore>,
    prefix: Path,
    bridge: Bridge,
    cache: Option<Arc<FileCache>>,
    /// Prepended to a table's name in the shared cache (children's tables
    /// are numbered independently).
    cache_ns: String,
    counters: Arc<Counters>,
    /// Bounds the tables fetched into the cache at once: a fresh server
    /// opening a large store would otherwise fetch every table at once,
    /// holding them all in memory and crowding out the reads it serves.
    /// No permits until the engine has recovered (`Storage::recovered`):
    /// a fill competes with the small reads that open the tables.
    fills: Arc<tokio::sync::Semaphore>,
    fills_started: Arc<AtomicBool>,
}

/// Tables this large or larger are uploaded in parts of `PART_BYTES`
/// (S3's smallest part is 5 MiB), `PARTS_IN_FLIGHT` at once.
const MULTIPART_MIN_BYTES: u64 = 16 << 20;
const PART_BYTES: usize = 8 << 20;
const PARTS_IN_FLIGHT: usize = 4;

/// Whole tables fetched into the cache at once.
const FILLS_IN_FLIGHT: usize = 4;

/// An engine's storage in one prefix of an object store.
pub struct ObjectStorage {
    shared: Arc<Shared>,
}

/// GETs a whole object.
fn micros_since(t: Instant) -> u64 {
    u64::try_from(t.elapsed().as_micros()).unwrap_or(u64::MAX)
}

async fn get_whole(store: &dyn ObjectStore, path: &Path) -> object_store::Result<bytes::Bytes> {
    store.get(path).await?.bytes().await
}

fn store_err(what: &str, name: &str, e: object_store::Error) -> Error {
    let kind = match e {
        object_store::Error::NotFound { .. } => std::io::ErrorKind::NotFound,
        _ => std::io::ErrorKind::Other,
    };
    Error::io(format!("{what} {name}"), std::io::Error::new(kind, e))
}

impl ObjectStorage {
    /// A table or object from the cache, else read from the store by
    /// range: `len` if the caller knows it, else asked for (a HEAD).
    fn open_with_len(&self, name: &str, len: Option<u64>) -> Result<Arc<dyn RandomAccessFile>> {
        let local = Arc::new(OnceLock::new());
        if let Some(f) = self.shared.cache_get(name) {
            let len = f
                .metadata()
                .map_err(|e| Error::io(format!("stat cached {name}"), e))?
                .len();
            let _ = local.set(f);
            return Ok(Arc::new(ObjectReadable {
                shared: self.shared.clone(),
                name: name.to_string(),
                len,
                local,
            }));
        }
        let len = match len {
            Some(len) => Some(len),
            None => self.shared.head(name)?,
        };
        let Some(len) = len else {
            return Err(Error::io(
                format!("open {name}"),
                std::io::Error::new(std::io::ErrorKind::NotFound, "no such object"),
            ));
        };
        if self.shared.cache.is_some() && name.ends_with(".sst") {
            self.shared.fill_cache(name.to_string(), local.clone());
        }
        Ok(Arc::new(ObjectReadable {
            shared: self.shared.clone(),
            name: name.to_string(),
            len,
            local,
        }))
    }

    /// Storage at `url`, with SSTables cached in `cache_dir` up to
    /// `cache_bytes_max` (none when `cache_dir` is `None`).
    pub fn open(
        url: StorageUrl,
        cache_dir: Option<&FsPath>,
        cache_bytes_max: u64,
    ) -> Result<Arc<ObjectStorage>, SetupError> {
        let cache = cache_dir
            .map(|dir| FileCache::open(dir, cache_bytes_max, &url.url).map(Arc::new))
            .transpose()?;
        Ok(Arc::new(ObjectStorage {
            shared: Arc::new(Shared {
                url: url.url,
                store: url.store,
                prefix: url.prefix,
                bridge: Bridge::new()?,
                cache,
                cache_ns: String::new(),
                fills: Arc::new(tokio::sync::Semaphore::new(0)),
                fills_started: Arc::new(AtomicBool::new(false)),
                counters: Arc::new(Counters::default()),
            }),
        }))
    }

    /// The storage of the sub-prefix `sub` (`a/b`: no leading, trailing or
    /// doubled `/`), an engine's own: the same store, runtime, cache
    /// directory and counters, its own names. A cluster server keeps each
    /// tablet it serves in one (docs/cluster.md).
    pub fn child(&self, sub: &str) -> Result<Arc<ObjectStorage>> {
        let bad = || Error::InvalidArgument(format!("bad storage sub-prefix {sub:?}"));
        if sub.is_empty() || sub.starts_with('/') || sub.ends_with('/') || sub.contains("//") {
            return Err(bad());
        }
        let mut prefix = self.shared.prefix.clone();
        for part in sub.split('/') {
            prefix = prefix.join(part);
        }
        let s = &self.shared;
        Ok(Arc::new(ObjectStorage {
            shared: Arc::new(Shared {
                url: format!("{}/{sub}", s.url.trim_end_matches('/')),
                store: s.store.clone(),
                prefix,
                bridge: s.bridge.clone(),
                cache: s.cache.clone(),
                cache_ns: format!("{}{}-", s.cache_ns, sub.replace('/', "-")),
                fills: s.fills.clone(),
                fills_started: s.fills_started.clone(),
                counters: s.counters.clone(),
            }),
        }))
    }

    /// Requests and bytes so far (shared with its children and parent).
    pub fn counters(&self) -> &Counters {
        &self.shared.counters
    }

    /// Whether `other` is a storage of the same store (this one's parent,
    /// child or sibling).
    pub(crate) fn same_store(&self, other: &ObjectStorage) -> bool {
        Arc::ptr_eq(&self.shared.store, &other.shared.store)
    }

    /// The object path of an engine file name.
    pub(crate) fn object_path(&self, name: &str) -> Result<Path> {
        self.shared.path(name)
    }

    pub(crate) fn store(&self) -> Arc<dyn ObjectStore> {
        self.shared.store.clone()
    }

    pub(crate) fn bridge(&self) -> &Bridge {
        &self.shared.bridge
    }
}

impl Shared {
    fn cache_key(&self, name: &str) -> String {
        format!("{}{name}", self.cache_ns)
    }

    fn cache_get(&self, name: &str) -> Option<File> {
        self.cache.as_ref()?.get(&self.cache_key(name))
    }

    fn cache_insert(&self, name: &str, data: &[u8]) -> Option<File> {
        self.cache.as_ref()?.insert(&self.cache_key(name), data)
    }

    fn cache_remove(&self, name: &str) {
        if let Some(c) = &self.cache {
            c.remove(&self.cache_key(name));
        }
    }

    /// The object path of an engine file name.
    fn path(&self, name: &str) -> Result<Path> {
        let bad = || Error::InvalidArgument(format!("bad object name {name:?}"));
        if name.is_empty() || name.starts_with('/') || name.ends_with('/') || name.contains("//") {
            return Err(bad());
        }
        let rel = if name.ends_with(".sst") && !name.contains('/') {
            format!("{SST_DIR}/{name}")
        } else {
            name.to_string()
        };
        let mut path = self.prefix.clone();
        for part in rel.split('/') {
            path = path.clone().join(part);
        }
        Ok(path)
    }

    /// The engine file name of an object path under the prefix.
    fn name_of(&self, path: &Path) -> Option<String> {
        let rel: Vec<_> = path
            .prefix_match(&self.prefix)?
            .map(|p| p.as_ref().to_string())
            .collect();
        match rel.as_slice() {
            [dir, file] if dir == SST_DIR => Some(file.clone()),
            parts if !parts.is_empty() => Some(parts.join("/")),
            _ => None,
        }
    }

    fn run<F>(&self, what: &str, name: &str, f: F) -> Result<F::Output>
    where
        F: std::future::Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.bridge.run(&format!("{what} {name}"), f)
    }

    /// PUT with create-if-absent: Ok(false) if the name is taken.
    fn put_create(&self, name: &str, data: Vec<u8>) -> Result<bool> {
        let path = self.path(name)?;
        let store = self.store.clone();
        let len = data.len() as u64;
        let opts = PutOptions {
            mode: PutMode::Create,
            ..PutOptions::default()
        };
        let started = Instant::now();
        let r = self.run("upload", name, async move {
            store.put_opts(&path, PutPayload::from(data), opts).await
        })?;
        self.counters
            .put_latency_micros
            .record(micros_since(started));
        Counters::add(&self.counters.puts, 1);
        match r {
            Ok(_) => {
                Counters::add(&self.counters.put_bytes, len);
                Ok(true)
            }
            Err(
                object_store::Error::AlreadyExists { .. }
                | object_store::Error::Precondition { .. },
            ) => {
                Counters::add(&self.counters.put_conflicts, 1);
                Ok(false)
            }
            Err(e) => {
                Counters::add(&self.counters.errors, 1);
                Err(store_err("upload", name, e))
            }
        }
    }

    /// Uploads `data` as `name` in parts of `PART_BYTES`, up to
    /// `PARTS_IN_FLIGHT` at once (each retried by the client), then
    /// completes it; a failure aborts the upload (parts left by a crash
    /// are the store's lifecycle rules' to clean up).
    fn put_parts(&self, name: &str, data: &[u8]) -> Result<()> {
        let path = self.path(name)?;
        let store = self.store.clone();
        let data = bytes::Bytes::copy_from_slice(data);
        let len = data.len() as u64;
        let parts = data.len().div_ceil(PART_BYTES);
        let started = Instant::now();
        let r = self.run("upload", name, async move {
            let mut upload = store.put_multipart(&path).await?;
            let sends: Vec<_> = (0..parts)
                .map(|i| {
                    let end = ((i + 1) * PART_BYTES).min(data.len());
                    upload.put_part(PutPayload::from(data.slice(i * PART_BYTES..end)))
                })
                .collect();
            let sent = futures::stream::iter(sends)
                .buffer_unordered(PARTS_IN_FLIGHT)
                .try_collect::<Vec<()>>()
                .await;
            match sent {
                Ok(_) => upload.complete().await.map(|_| ()),
                Err(e) => {
                    let _ = upload.abort().await;
                    Err(e)
                }
            }
        })?;
        self.counters
            .put_latency_micros
            .record(micros_since(started));
        // Counted as requests: the start, every part, the completion.
        Counters::add(&self.counters.puts, parts as u64 + 2);
        match r {
            Ok(()) => {
                Counters::add(&self.counters.put_bytes, len);
                Counters::add(&self.counters.multipart_uploads, 1);
                Ok(())
            }
            Err(e) => {
                Counters::add(&self.counters.errors, 1);
                Err(store_err("upload", name, e))
            }
        }
    }

    fn get_range(&self, name: &str, offset: u64, len: usize) -> Result<bytes::Bytes> {
        let path = self.path(name)?;
        let store = self.store.clone();
        let range = offset..offset + len as u64;
        let started = Instant::now();
        let r = self.run(
            "read",
            name,
            async move { store.get_range(&path, range).await },
        )?;
        self.counters
            .get_latency_micros
            .record(micros_since(started));
        Counters::add(&self.counters.gets, 1);
        match r {
            Ok(b) => {
                Counters::add(&self.counters.get_bytes, b.len() as u64);
                Ok(b)
            }
            Err(e) => {
                Counters::add(&self.counters.errors, 1);
                Err(store_err("read", name, e))
            }
        }
    }

    fn head(&self, name: &str) -> Result<Option<u64>> {
        let path = self.path(name)?;
        let store = self.store.clone();
        let r = self.run("stat", name, async move { store.head(&path).await })?;
        Counters::add(&self.counters.heads, 1);
        match r {
            Ok(meta) => Ok(Some(meta.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => {
                Counters::add(&self.counters.errors, 1);
                Err(store_err("stat", name, e))
            }
        }
    }

    fn list_under(&self, dir: Option<&str>) -> Result<Vec<String>> {
        let mut prefix = self.prefix.clone();
        if let Some(d) = dir {
            prefix = prefix.join(d);
        }
        let store = self.store.clone();
        let what = prefix.to_string();
        let r = self.run("list", &what, async move {
            store.list(Some(&prefix)).try_collect::<Vec<_>>().await
        })?;
        Counters::add(&self.counters.lists, 1);
        let metas = r.map_err(|e| {
            Counters::add(&self.counters.errors, 1);
            store_err("list", &what, e)
        })?;
        Ok(metas
            .iter()
            .filter_map(|m| self.name_of(&m.location))
            .collect())
    }

    /// Downloads `name` whole into the cache, in the background, and
    /// hands the opened copy to `slot`.
    fn fill_cache(self: &Arc<Self>, name: String, slot: Arc<OnceLock<File>>) {
        let Ok(path) = self.path(&name) else { return };
        let shared = self.clone();
        self.bridge.spawn(async move {
            let Ok(_permit) = shared.fills.clone().acquire_owned().await else {
                return;
            };
            if slot.get().is_some() {
                return;
            }
            let started = Instant::now();
            let got = get_whole(&*shared.store, &path).await;
            shared
                .counters
                .get_latency_micros
                .record(micros_since(started));
            Counters::add(&shared.counters.gets, 1);
            match got {
                Ok(bytes) => {
                    Counters::add(&shared.counters.get_bytes, bytes.len() as u64);
                    let shared2 = shared.clone();
                    // Writing the file blocks: off the runtime's workers.
                    let _ = tokio::task::spawn_blocking(move || {
                        if let Some(f) = shared2.cache_insert(&name, &bytes) {
                            let _ = slot.set(f);
                        }
                    })
                    .await;
                }
                // Compacted away while it waited for its turn.
                Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => {
                    Counters::add(&shared.counters.errors, 1);
                    tracing::warn!("cannot fetch {name} into the cache: {e}");
                }
            }
        });
    }
}

/// A table read from the cache, or from the store until the cache has it.
struct ObjectReadable {
    shared: Arc<Shared>,
    name: String,
    len: u64,
    local: Arc<OnceLock<File>>,
}

impl RandomAccessFile for ObjectReadable {
    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        if offset
            .checked_add(buf.len() as u64)
            .is_none_or(|end| end > self.len)
        {
            return Err(Error::io(
                format!("read {}", self.name),
                std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "read past end"),
            ));
        }
        if let Some(f) = self.local.get() {
            Counters::add(&self.shared.counters.cache_hits, 1);
            return f
                .read_exact_at(buf, offset)
                .map_err(|e| Error::io(format!("read cached {}", self.name), e));
        }
        Counters::add(&self.shared.counters.cache_misses, 1);
        let got = self.shared.get_range(&self.name, offset, buf.len())?;
        if got.len() != buf.len() {
            return Err(Error::io(
                format!("read {}", self.name),
                std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    format!("asked for {} bytes, got {}", buf.len(), got.len()),
                ),
            ));
        }
        buf.copy_from_slice(&got);
        Ok(())
    }

    fn len(&self) -> u64 {
        self.len
    }
}

impl Storage for ObjectStorage {
    /// A table: uploaded by `sync`, then kept in the cache. A table below
    /// `MULTIPART_MIN_BYTES` is one PUT with create-if-absent, the outcome
    /// of a failed one resolved by reading it back; a larger one is
    /// uploaded in parts (which cannot be conditional: its name is safe
    /// because every owner epoch numbers its tables apart, docs/formats/
    /// object-store.md).
    fn create(&self, name: &str) -> Result<Box<dyn WritableFile>> {
        self.shared.path(name)?;
        let shared = self.shared.clone();
        Ok(Box::new(WholeObjectWriter::new(
            name,
            Vec::new(),
            Box::new(move |name, data| {
                if data.len() as u64 >= MULTIPART_MIN_BYTES {
                    shared.put_parts(name, data)?;
                } else {
                    let storage = ObjectStorage {
                        shared: shared.clone(),
                    };
                    if !put_new(&storage, name, data)? {
                        return Err(Error::Fenced(format!(
                            "{name} exists in the store: another owner wrote it"
                        )));
                    }
                }
                shared.cache_insert(name, data);
                Ok(())
            }),
        )))
    }

    /// A table the manifest names: its recorded size, not a HEAD.
    fn open_sized(&self, name: &str, size_bytes: u64) -> Result<Arc<dyn RandomAccessFile>> {
        self.open_with_len(name, Some(size_bytes))
    }

    fn open(&self, name: &str) -> Result<Arc<dyn RandomAccessFile>> {
        self.open_with_len(name, None)
    }

    fn remove(&self, name: &str) -> Result<()> {
        let path = self.shared.path(name)?;
        let store = self.shared.store.clone();
        let r = self
            .shared
            .run("delete", name, async move { store.delete(&path).await })?;
        Counters::add(&self.shared.counters.deletes, 1);
        self.shared.cache_remove(name);
        match r {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => {
                Counters::add(&self.shared.counters.errors, 1);
                Err(store_err("delete", name, e))
            }
        }
    }

    /// Deletes with bulk requests (S3's DeleteObjects), one batch of at
    /// most `REMOVE_MANY_BATCH` names at a time, in order.
    fn remove_many(&self, names: &[String]) -> Result<()> {
        for batch in names.chunks(strata_engine::storage::REMOVE_MANY_BATCH) {
            let paths = batch
                .iter()
                .map(|n| self.shared.path(n))
                .collect::<Result<Vec<Path>>>()?;
            let store = self.shared.store.clone();
            let first = batch.first().map_or("", |n| n.as_str());
            let results = self.shared.run("delete", first, async move {
                let paths = futures::stream::iter(paths.into_iter().map(Ok)).boxed();
                store.delete_stream(paths).collect::<Vec<_>>().await
            })?;
            Counters::add(&self.shared.counters.deletes, batch.len() as u64);
            for n in batch {
                self.shared.cache_remove(n);
            }
            for r in results {
                match r {
                    Ok(_) | Err(object_store::Error::NotFound { .. }) => {}
                    Err(e) => {
                        Counters::add(&self.shared.counters.errors, 1);
                        return Err(store_err("delete", first, e));
                    }
                }
            }
        }
        Ok(())
    }

    fn rename(&self, from: &str, _to: &str) -> Result<()> {
        Err(Error::InvalidArgument(format!(
            "rename {from}: an object store has no rename"
        )))
    }

    fn truncate(&self, name: &str, _len: u64) -> Result<()> {
        Err(Error::InvalidArgument(format!(
            "truncate {name}: an object store has no truncate"
        )))
    }

    fn list(&self) -> Result<Vec<String>> {
        self.shared.list_under(None)
    }

    /// Fetches up to `READ_MANY_IN_FLIGHT` objects at once.
    fn read_many(&self, names: &[String]) -> Vec<Result<Vec<u8>>> {
        let paths: Vec<Result<Path>> = names.iter().map(|n| self.shared.path(n)).collect();
        let store = self.shared.store.clone();
        let fetch = async move {
            futures::stream::iter(paths)
                .map(|p| {
                    let store = store.clone();
                    async move {
                        match p {
                            Ok(p) => Some(get_whole(&*store, &p).await),
                            Err(_) => None,
                        }
                    }
                })
                .buffered(READ_MANY_IN_FLIGHT)
                .collect::<Vec<_>>()
                .await
        };
        let results = match self.shared.run("read", "log objects", fetch) {
            Ok(r) => r,
            Err(e) => {
                return names
                    .iter()
                    .map(|_| Err(Error::io("read", std::io::Error::other(e.to_string()))))
                    .collect()
            }
        };
        names
            .iter()
            .zip(results)
            .map(|(name, r)| {
                Counters::add(&self.shared.counters.gets, 1);
                match r {
                    None => Err(Error::InvalidArgument(format!("bad object name {name:?}"))),
                    Some(Ok(b)) => {
                        Counters::add(&self.shared.counters.get_bytes, b.len() as u64);
                        Ok(b.to_vec())
                    }
                    Some(Err(e)) => {
                        Counters::add(&self.shared.counters.errors, 1);
                        Err(store_err("read", name, e))
                    }
                }
            })
            .collect()
    }

    fn list_prefix(&self, prefix: &str) -> Result<Vec<String>> {
        // The engine's object names are `dir/number`: list that directory.
        let mut names = match prefix.split_once('/') {
            Some((dir, _)) if !dir.is_empty() => self.shared.list_under(Some(dir))?,
            _ => self.shared.list_under(None)?,
        };
        names.retain(|n| n.starts_with(prefix));
        Ok(names)
    }

    /// Every upload is durable when it returns: nothing to sync.
    fn sync_dir(&self) -> Result<()> {
        Ok(())
    }

    fn exists(&self, name: &str) -> Result<bool> {
        Ok(self.shared.head(name)?.is_some())
    }

    fn describe(&self) -> String {
        self.shared.url.clone()
    }

    fn put_if_absent(&self, name: &str, data: &[u8]) -> Result<bool> {
        self.shared.put_create(name, data.to_vec())
    }

    fn whole_objects(&self) -> bool {
        true
    }

    /// Lets the cache fills queued while the engine opened its tables run.
    fn recovered(&self) {
        if !self.shared.fills_started.swap(true, Ordering::AcqRel) {
            self.shared.fills.add_permits(FILLS_IN_FLIGHT);
        }
    }
}
