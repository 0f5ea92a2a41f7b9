//! In-memory storage with an exact durability model, for tests.
//!
//! Every file keeps its bytes and how many of them are synced; the namespace
//! keeps its current entries and the entries as of the last `sync_dir`.
//! `crash_copy` gives the state a process would find after power loss:
//! only durable namespace entries, each file cut to its synced length, and
//! optionally a torn tail (part of the unsynced bytes, possibly garbled).
//! `process_crash_copy` gives what survives a kill -9: everything handed to
//! the OS.
//!
//! `MemStorage::objects()` models an object store instead: a created file
//! appears, whole and durable, when its writer syncs (an upload), removes
//! are durable at once, and there is no rename or truncate.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};

use super::{RandomAccessFile, Storage, WholeObjectWriter, WritableFile};
use crate::error::{Error, Result};

#[derive(Default)]
struct MemFile {
    /// Bytes written (for a file made by `create_zeroed`, from its start,
    /// over its zeros).
    data: Vec<u8>,
    synced_len: usize,
    /// Made by `create_zeroed`: the file is this long, its bytes past
    /// `data` durable zeros (0 for other files).
    zeros_to: usize,
}

impl MemFile {
    fn len(&self) -> usize {
        self.data.len().max(self.zeros_to)
    }

    /// `prefix` (what survives of `data`) followed by the file's zeros.
    fn with_zeros(&self, mut prefix: Vec<u8>) -> Vec<u8> {
        if prefix.len() < self.zeros_to {
            prefix.resize(self.zeros_to, 0);
        }
        prefix
    }
}

type FileRef = Arc<RwLock<MemFile>>;

#[derive(Default)]
struct Namespace {
    current: HashMap<String, FileRef>,
    durable: HashMap<String, FileRef>,
}

/// How much of the unsynced data a simulated power loss keeps.
#[derive(Clone, Copy, Debug)]
pub enum TornWrite {
    /// Every unsynced byte is lost.
    None,
    /// A prefix of the unsynced bytes survives: `keep_per_mille` thousandths
    /// of them; when `garble` is set, the last surviving bytes are
    /// overwritten with junk (a torn sector).
    Prefix { keep_per_mille: u32, garble: bool },
}

/// Memory-backed storage; clones share the same files.
#[derive(Clone, Default)]
pub struct MemStorage {
    ns: Arc<Mutex<Namespace>>,
    /// Whole objects, as an object store keeps them.
    objects: bool,
}

impl MemStorage {
    pub fn new() -> Arc<MemStorage> {
        Arc::new(MemStorage::default())
    }

    /// A memory object store (see the module docs).
    pub fn objects() -> Arc<MemStorage> {
        Arc::new(MemStorage {
            ns: Arc::default(),
            objects: true,
        })
    }

    /// Publishes `data` as `name`, durably.
    fn publish(ns: &mut Namespace, name: &str, data: Vec<u8>) {
        let file = Arc::new(RwLock::new(MemFile {
            synced_len: data.len(),
            data,
            zeros_to: 0,
        }));
        ns.current.insert(name.to_string(), file.clone());
        ns.durable.insert(name.to_string(), file);
    }

    fn no_objects(&self, what: &str, name: &str) -> Result<()> {
        if self.objects {
            return Err(Error::InvalidArgument(format!(
                "{what} {name}: an object store has no {what}"
            )));
        }
        Ok(())
    }

    fn get(&self, name: &str) -> Result<FileRef> {
        self.ns
            .lock()
            .current
            .get(name)
            .cloned()
            .ok_or_else(|| not_found(name))
    }

    /// What survives power loss: durable names, synced bytes, plus a torn
    /// tail as asked. The copy shares nothing with `self`, so handles still
    /// held by a "dead" engine cannot change it.
    pub fn crash_copy(&self, torn: TornWrite) -> Arc<MemStorage> {
        let ns = self.ns.lock();
        Self::copy_of(self.objects, &ns.durable, |f| {
            let mut keep = f.synced_len;
            if let TornWrite::Prefix { keep_per_mille, .. } = torn {
                let unsynced = f.data.len() - f.synced_len;
                keep += unsynced * keep_per_mille.min(1000) as usize / 1000;
            }
            let mut data = f.data[..keep].to_vec();
            if let TornWrite::Prefix { garble: true, .. } = torn {
                let garble_from = f.synced_len.max(keep.saturating_sub(7));
                for b in &mut data[garble_from..] {
                    *b ^= 0x5a;
                }
            }
            // Lost bytes written over zeros read as the zeros they replaced.
            f.with_zeros(data)
        })
    }

    /// What survives a process crash (kill -9): every byte handed to the
    /// OS and every namespace change.
    pub fn process_crash_copy(&self) -> Arc<MemStorage> {
        let ns = self.ns.lock();
        Self::copy_of(self.objects, &ns.current, |f| f.with_zeros(f.data.clone()))
    }

    /// A new storage holding `names`, each file's bytes chosen by `bytes`,
    /// all durable.
    fn copy_of(
        objects: bool,
        names: &HashMap<String, FileRef>,
        bytes: impl Fn(&MemFile) -> Vec<u8>,
    ) -> Arc<MemStorage> {
        let mut copy = Namespace::default();
        for (name, f) in names {
            let data = bytes(&f.read());
            let file = Arc::new(RwLock::new(MemFile {
                synced_len: data.len(),
                data,
                zeros_to: 0,
            }));
            copy.current.insert(name.clone(), file.clone());
            copy.durable.insert(name.clone(), file);
        }
        Arc::new(MemStorage {
            ns: Arc::new(Mutex::new(copy)),
            objects,
        })
    }

    /// Flips bits of one byte of a file in place (corruption tests).
    pub fn corrupt_byte(&self, name: &str, offset: usize) -> Result<()> {
        let f = self.get(name)?;
        let mut f = f.write();
        let len = f.data.len();
        let b = f.data.get_mut(offset).ok_or_else(|| {
            Error::InvalidArgument(format!("offset {offset} beyond {name} of {len} bytes"))
        })?;
        *b ^= 0x01;
        Ok(())
    }

    /// Current length of a file.
    pub fn file_len(&self, name: &str) -> Result<usize> {
        Ok(self.get(name)?.read().len())
    }
}

fn not_found(name: &str) -> Error {
    Error::io(
        format!("open {name}"),
        std::io::Error::new(std::io::ErrorKind::NotFound, "no such file"),
    )
}

struct MemWritable {
    file: FileRef,
    len: u64,
}

impl WritableFile for MemWritable {
    fn append(&mut self, data: &[u8]) -> Result<()> {
        self.file.write().data.extend_from_slice(data);
        self.len += data.len() as u64;
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        Ok(())
    }

    fn sync(&mut self) -> Result<()> {
        let mut f = self.file.write();
        f.synced_len = f.data.len();
        Ok(())
    }

    fn len(&self) -> u64 {
        self.len
    }

    fn sync_handle(&self) -> Result<Option<Box<dyn super::SyncHandle>>> {
        Ok(Some(Box::new(MemSyncHandle(self.file.clone()))))
    }
}

/// Syncs, from another thread, what a `MemWritable` has written so far.
struct MemSyncHandle(FileRef);

impl super::SyncHandle for MemSyncHandle {
    fn sync(&self) -> Result<()> {
        let mut f = self.0.write();
        // Another handle's sync may have covered more already.
        f.synced_len = f.synced_len.max(f.data.len());
        Ok(())
    }
}

struct MemReadable {
    name: String,
    file: FileRef,
}

impl RandomAccessFile for MemReadable {
    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        let f = self.file.read();
        let start = usize::try_from(offset).unwrap_or(usize::MAX);
        let end = start.saturating_add(buf.len());
        if end > f.len() {
            return Err(Error::io(
                format!("read {}", self.name),
                std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "read past end"),
            ));
        }
        // Bytes past `data` are the zeros of a `create_zeroed` file.
        let written = f.data.len().clamp(start, end);
        buf[..written - start].copy_from_slice(&f.data[start..written]);
        buf[written - start..].fill(0);
        Ok(())
    }

    fn len(&self) -> u64 {
        self.file.read().len() as u64
    }
}

impl Storage for MemStorage {
    fn create(&self, name: &str) -> Result<Box<dyn WritableFile>> {
        if self.objects {
            let ns = self.ns.clone();
            return Ok(Box::new(WholeObjectWriter::new(
                name,
                Vec::new(),
                Box::new(move |name, data| {
                    MemStorage::publish(&mut ns.lock(), name, data.to_vec());
                    Ok(())
                }),
            )));
        }
        let file: FileRef = Arc::default();
        self.ns
            .lock()
            .current
            .insert(name.to_string(), file.clone());
        Ok(Box::new(MemWritable { file, len: 0 }))
    }

    fn open(&self, name: &str) -> Result<Arc<dyn RandomAccessFile>> {
        Ok(Arc::new(MemReadable {
            name: name.to_string(),
            file: self.get(name)?,
        }))
    }

    fn remove(&self, name: &str) -> Result<()> {
        let mut ns = self.ns.lock();
        ns.current.remove(name);
        if self.objects {
            ns.durable.remove(name);
        }
        Ok(())
    }

    fn rename(&self, from: &str, to: &str) -> Result<()> {
        self.no_objects("rename", from)?;
        let mut ns = self.ns.lock();
        let f = ns.current.remove(from).ok_or_else(|| not_found(from))?;
        ns.current.insert(to.to_string(), f);
        Ok(())
    }

    fn truncate(&self, name: &str, len: u64) -> Result<()> {
        self.no_objects("truncate", name)?;
        let f = self.get(name)?;
        let mut f = f.write();
        let len = usize::try_from(len).unwrap_or(usize::MAX).min(f.len());
        f.data.truncate(len);
        f.zeros_to = if len > f.data.len() { len } else { 0 };
        f.synced_len = f.data.len(); // truncate is durable, as in the trait
        Ok(())
    }

    fn can_preallocate(&self) -> bool {
        !self.objects
    }

    fn create_zeroed(&self, name: &str, size_bytes: u64) -> Result<()> {
        self.no_objects("preallocation", name)?;
        let file = Arc::new(RwLock::new(MemFile {
            zeros_to: usize::try_from(size_bytes).unwrap_or(usize::MAX),
            ..MemFile::default()
        }));
        self.ns.lock().current.insert(name.to_string(), file);
        Ok(())
    }

    fn overwrite(&self, name: &str) -> Result<Box<dyn WritableFile>> {
        self.no_objects("overwrite", name)?;
        let file = self.get(name)?;
        if !file.read().data.is_empty() {
            return Err(Error::InvalidArgument(format!(
                "{name}: memory storage overwrites only files made by create_zeroed"
            )));
        }
        Ok(Box::new(MemWritable { file, len: 0 }))
    }

    fn list(&self) -> Result<Vec<String>> {
        Ok(self.ns.lock().current.keys().cloned().collect())
    }

    fn sync_dir(&self) -> Result<()> {
        let mut ns = self.ns.lock();
        ns.durable = ns.current.clone();
        Ok(())
    }

    fn exists(&self, name: &str) -> Result<bool> {
        Ok(self.ns.lock().current.contains_key(name))
    }

    fn describe(&self) -> String {
        if self.objects {
            "memory-objects"
        } else {
            "memory"
        }
        .to_string()
    }

    fn put_if_absent(&self, name: &str, data: &[u8]) -> Result<bool> {
        let mut ns = self.ns.lock();
        if ns.current.contains_key(name) {
            return Ok(false);
        }
        MemStorage::publish(&mut ns, name, data.to_vec());
        Ok(true)
    }

    fn whole_objects(&self) -> bool {
        self.objects
    }
}
