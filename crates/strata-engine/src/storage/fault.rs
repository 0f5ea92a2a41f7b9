//! A storage wrapper that injects I/O errors, for fault-injection tests.
//!
//! Arm it with `fail_after(n, ops)`: the first `n` matching operations
//! succeed, and every matching one after that fails with an I/O error until
//! `heal` is called (a dead disk, not a flaky one: the engine must stop
//! acknowledging, never acknowledge what it did not persist).
//!
//! With `set_ambiguous(true)`, a failing `put_if_absent` (or publishing
//! `sync` of a whole object) first does its work and then reports failure:
//! an upload that succeeded but whose answer was lost.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;

use super::{RandomAccessFile, Storage, WritableFile};
use crate::error::{Error, Result};

/// Operation classes that can be made to fail (a bit set).
#[derive(Clone, Copy, Debug)]
pub struct FaultOp(u32);

impl FaultOp {
    pub const WRITE: FaultOp = FaultOp(1);
    pub const SYNC: FaultOp = FaultOp(2);
    pub const CREATE: FaultOp = FaultOp(4);
    pub const RENAME: FaultOp = FaultOp(8);
    pub const REMOVE: FaultOp = FaultOp(16);
    pub const SYNC_DIR: FaultOp = FaultOp(32);
    pub const READ: FaultOp = FaultOp(64);
    /// `put_if_absent`, and on a storage of whole objects the `sync` that
    /// publishes a created file.
    pub const PUT: FaultOp = FaultOp(128);
    pub const ALL_MUTATING: FaultOp = FaultOp(1 | 2 | 4 | 8 | 16 | 32 | 128);
    pub const ALL: FaultOp = FaultOp(255);

    pub fn union(self, other: FaultOp) -> FaultOp {
        FaultOp(self.0 | other.0)
    }
}

#[derive(Default)]
struct Faults {
    armed: AtomicBool,
    ambiguous: AtomicBool,
    /// Injected errors say the storage is full instead of failing.
    no_space: AtomicBool,
    mask: AtomicU32,
    remaining: AtomicI64,
    /// Fail only the one operation that finds `remaining` at zero.
    once: AtomicBool,
    ops_seen: AtomicU64,
    /// Every put waits this long first (a slow store).
    put_delay_micros: AtomicU64,
    puts_in_flight: AtomicU64,
    puts_in_flight_max: AtomicU64,
    /// Every file sync waits this long first (a slow disk).
    sync_delay_micros: AtomicU64,
    syncs_in_flight: AtomicU64,
    syncs_in_flight_max: AtomicU64,
}

impl Faults {
    /// A file sync: counted in flight, delayed, then checked.
    fn sync(&self, what: &str, sync: impl FnOnce() -> Result<()>) -> Result<()> {
        let now = self.syncs_in_flight.fetch_add(1, Ordering::AcqRel) + 1;
        self.syncs_in_flight_max.fetch_max(now, Ordering::AcqRel);
        let delay = self.sync_delay_micros.load(Ordering::Acquire);
        if delay > 0 {
            std::thread::sleep(std::time::Duration::from_micros(delay));
        }
        let outcome = self.check(FaultOp::SYNC, what).and_then(|()| sync());
        self.syncs_in_flight.fetch_sub(1, Ordering::AcqRel);
        outcome
    }
}

impl Faults {
    fn check(&self, op: FaultOp, what: &str) -> Result<()> {
        self.ops_seen.fetch_add(1, Ordering::Relaxed);
        if !self.armed.load(Ordering::Acquire) || self.mask.load(Ordering::Acquire) & op.0 == 0 {
            return Ok(());
        }
        let remaining = self.remaining.fetch_sub(1, Ordering::AcqRel);
        if remaining > 0 || (remaining < 0 && self.once.load(Ordering::Acquire)) {
            return Ok(());
        }
        let kind = if self.no_space.load(Ordering::Acquire) {
            std::io::ErrorKind::StorageFull
        } else {
            std::io::ErrorKind::Other
        };
        Err(Error::io(
            format!("{what} (injected fault)"),
            std::io::Error::new(kind, "injected fault"),
        ))
    }
}

/// Wraps a storage and fails operations on demand.
pub struct FaultStorage {
    inner: Arc<dyn Storage>,
    faults: Arc<Faults>,
}

impl FaultStorage {
    pub fn new(inner: Arc<dyn Storage>) -> Arc<FaultStorage> {
        Arc::new(FaultStorage {
            inner,
            faults: Arc::default(),
        })
    }

    /// Lets `n` more operations of the classes in `ops` succeed, then fails
    /// all of them.
    pub fn fail_after(&self, n: u64, ops: FaultOp) {
        self.faults.once.store(false, Ordering::Release);
        self.faults.remaining.store(n as i64, Ordering::Release);
        self.faults.mask.store(ops.0, Ordering::Release);
        self.faults.armed.store(true, Ordering::Release);
    }

    /// Lets `n` more operations of the classes in `ops` succeed, fails the
    /// next one, and lets every later one succeed.
    pub fn fail_once_after(&self, n: u64, ops: FaultOp) {
        self.fail_after(n, ops);
        self.faults.once.store(true, Ordering::Release);
    }

    /// Makes every put (an object upload) take `delay` first.
    pub fn set_put_delay(&self, delay: std::time::Duration) {
        self.faults
            .put_delay_micros
            .store(delay.as_micros() as u64, Ordering::Release);
    }

    /// Makes every file sync take `delay` first.
    pub fn set_sync_delay(&self, delay: std::time::Duration) {
        self.faults
            .sync_delay_micros
            .store(delay.as_micros() as u64, Ordering::Release);
    }

    /// The most file syncs seen in progress at once.
    pub fn syncs_in_flight_max(&self) -> u64 {
        self.faults.syncs_in_flight_max.load(Ordering::Acquire)
    }

    /// The most puts seen in progress at once.
    pub fn puts_in_flight_max(&self) -> u64 {
        self.faults.puts_in_flight_max.load(Ordering::Acquire)
    }

    /// Makes injected errors say the storage is full (ENOSPC).
    pub fn set_no_space(&self, no_space: bool) {
        self.faults.no_space.store(no_space, Ordering::Release);
    }

    /// Makes failing puts succeed first and then report failure.
    pub fn set_ambiguous(&self, ambiguous: bool) {
        self.faults.ambiguous.store(ambiguous, Ordering::Release);
    }

    /// Stops failing.
    pub fn heal(&self) {
        self.faults.armed.store(false, Ordering::Release);
    }

    /// Operations seen so far (to size a sweep over every step).
    pub fn ops_seen(&self) -> u64 {
        self.faults.ops_seen.load(Ordering::Relaxed)
    }
}

struct FaultWritable {
    name: String,
    inner: Box<dyn WritableFile>,
    faults: Arc<Faults>,
    /// The inner storage keeps whole objects: `sync` is an upload.
    whole_objects: bool,
}

impl WritableFile for FaultWritable {
    fn append(&mut self, data: &[u8]) -> Result<()> {
        self.faults
            .check(FaultOp::WRITE, &format!("write {}", self.name))?;
        self.inner.append(data)
    }

    fn flush(&mut self) -> Result<()> {
        self.faults
            .check(FaultOp::WRITE, &format!("flush {}", self.name))?;
        self.inner.flush()
    }

    fn sync(&mut self) -> Result<()> {
        if self.whole_objects {
            let what = format!("upload {}", self.name);
            return match self.faults.check(FaultOp::PUT, &what) {
                Ok(()) => self.inner.sync(),
                Err(e) if self.faults.ambiguous.load(Ordering::Acquire) => {
                    self.inner.sync()?;
                    Err(e)
                }
                Err(e) => Err(e),
            };
        }
        let inner = &mut self.inner;
        self.faults
            .sync(&format!("fsync {}", self.name), || inner.sync())
    }

    fn len(&self) -> u64 {
        self.inner.len()
    }

    fn abandon(self: Box<Self>) {
        self.inner.abandon();
    }

    fn sync_handle(&self) -> Result<Option<Box<dyn super::SyncHandle>>> {
        if self.whole_objects {
            return Ok(None);
        }
        Ok(self.inner.sync_handle()?.map(|inner| {
            Box::new(FaultSyncHandle {
                name: self.name.clone(),
                inner,
                faults: self.faults.clone(),
            }) as Box<dyn super::SyncHandle>
        }))
    }
}

/// A sync handle whose syncs fail like the file's own (`FaultOp::SYNC`).
struct FaultSyncHandle {
    name: String,
    inner: Box<dyn super::SyncHandle>,
    faults: Arc<Faults>,
}

impl super::SyncHandle for FaultSyncHandle {
    fn sync(&self) -> Result<()> {
        self.faults
            .sync(&format!("fsync {}", self.name), || self.inner.sync())
    }
}

struct FaultReadable {
    name: String,
    inner: Arc<dyn RandomAccessFile>,
    faults: Arc<Faults>,
}

impl RandomAccessFile for FaultReadable {
    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        self.faults
            .check(FaultOp::READ, &format!("read {}", self.name))?;
        self.inner.read_exact_at(offset, buf)
    }

    fn len(&self) -> u64 {
        self.inner.len()
    }
}

impl Storage for FaultStorage {
    fn create(&self, name: &str) -> Result<Box<dyn WritableFile>> {
        self.faults
            .check(FaultOp::CREATE, &format!("create {name}"))?;
        Ok(Box::new(FaultWritable {
            name: name.to_string(),
            inner: self.inner.create(name)?,
            faults: self.faults.clone(),
            whole_objects: self.inner.whole_objects(),
        }))
    }

    fn can_preallocate(&self) -> bool {
        self.inner.can_preallocate()
    }

    fn create_zeroed(&self, name: &str, size_bytes: u64) -> Result<()> {
        self.faults
            .check(FaultOp::CREATE, &format!("create {name}"))?;
        self.faults
            .check(FaultOp::WRITE, &format!("write {name}"))?;
        self.faults.check(FaultOp::SYNC, &format!("fsync {name}"))?;
        self.inner.create_zeroed(name, size_bytes)
    }

    fn overwrite(&self, name: &str) -> Result<Box<dyn WritableFile>> {
        self.faults
            .check(FaultOp::CREATE, &format!("open for writing {name}"))?;
        Ok(Box::new(FaultWritable {
            name: name.to_string(),
            inner: self.inner.overwrite(name)?,
            faults: self.faults.clone(),
            whole_objects: false,
        }))
    }

    fn open(&self, name: &str) -> Result<Arc<dyn RandomAccessFile>> {
        self.faults.check(FaultOp::READ, &format!("open {name}"))?;
        Ok(Arc::new(FaultReadable {
            name: name.to_string(),
            inner: self.inner.open(name)?,
            faults: self.faults.clone(),
        }))
    }

    fn remove(&self, name: &str) -> Result<()> {
        self.faults
            .check(FaultOp::REMOVE, &format!("remove {name}"))?;
        self.inner.remove(name)
    }

    fn rename(&self, from: &str, to: &str) -> Result<()> {
        self.faults
            .check(FaultOp::RENAME, &format!("rename {from}"))?;
        self.inner.rename(from, to)
    }

    fn truncate(&self, name: &str, len: u64) -> Result<()> {
        self.faults
            .check(FaultOp::WRITE, &format!("truncate {name}"))?;
        self.inner.truncate(name, len)
    }

    fn list(&self) -> Result<Vec<String>> {
        self.inner.list()
    }

    fn sync_dir(&self) -> Result<()> {
        self.faults.check(FaultOp::SYNC_DIR, "fsync directory")?;
        self.inner.sync_dir()
    }

    fn exists(&self, name: &str) -> Result<bool> {
        self.inner.exists(name)
    }

    fn describe(&self) -> String {
        format!("fault({})", self.inner.describe())
    }

    fn put_if_absent(&self, name: &str, data: &[u8]) -> Result<bool> {
        let f = &self.faults;
        let now = f.puts_in_flight.fetch_add(1, Ordering::AcqRel) + 1;
        f.puts_in_flight_max.fetch_max(now, Ordering::AcqRel);
        let delay = f.put_delay_micros.load(Ordering::Acquire);
        if delay > 0 {
            std::thread::sleep(std::time::Duration::from_micros(delay));
        }
        let outcome = match f.check(FaultOp::PUT, &format!("put {name}")) {
            Ok(()) => self.inner.put_if_absent(name, data),
            Err(e) if f.ambiguous.load(Ordering::Acquire) => {
                self.inner.put_if_absent(name, data).and(Err(e))
            }
            Err(e) => Err(e),
        };
        f.puts_in_flight.fetch_sub(1, Ordering::AcqRel);
        outcome
    }

    fn whole_objects(&self) -> bool {
        self.inner.whole_objects()
    }

    fn recovered(&self) {
        self.inner.recovered()
    }

    fn list_prefix(&self, prefix: &str) -> Result<Vec<String>> {
        self.inner.list_prefix(prefix)
    }
}
