//! Local-filesystem storage: positional reads (pread) on shared handles,
//! buffered appends (direct writes into preallocated log segments, on
//! Linux), fsync of files and of the directory.

use std::fs::{self, File, OpenOptions};
use std::io::{BufWriter, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{RandomAccessFile, Storage, SyncHandle, WritableFile};
use crate::error::{Error, IoContext, Result};

/// Buffer size for appends: large enough to batch small writes into few
/// system calls.
const WRITE_BUFFER_BYTES: usize = 256 * 1024;

/// Zeros written per call by `create_zeroed`.
const ZERO_CHUNK_BYTES: usize = 1 << 20;

/// Files in one local directory.
pub struct LocalStorage {
    dir: PathBuf,
    /// `LOCK`, held exclusively (flock) while this storage is open, so two
    /// processes never open one directory.
    _lock: fs::File,
}

/// The lock file's name.
pub const LOCK_FILE: &str = "LOCK";

impl LocalStorage {
    /// Opens (creating if needed) a directory as storage.
    pub fn open(dir: impl AsRef<Path>) -> Result<Arc<LocalStorage>> {
        let dir = dir.as_ref().to_path_buf();
        fs::create_dir_all(&dir).ctx("create directory", &dir.display().to_string())?;
        let lock_path = dir.join(LOCK_FILE);
        let lock = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .ctx("open", &lock_path.display().to_string())?;
        if let Err(e) = lock.try_lock() {
            return Err(Error::InvalidArgument(format!(
                "{} is in use by another process ({e}); one directory serves one engine",
                dir.display()
            )));
        }
        Ok(Arc::new(LocalStorage { dir, _lock: lock }))
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, name: &str) -> Result<PathBuf> {
        if name.is_empty() || name.contains('/') || name == "." || name == ".." {
            return Err(Error::InvalidArgument(format!("bad file name {name:?}")));
        }
        Ok(self.dir.join(name))
    }
}

struct LocalWritable {
    name: String,
    path: PathBuf,
    out: BufWriter<File>,
    len: u64,
}

/// A second open of a file being written, for `fdatasync` from another
/// thread.
struct LocalSyncHandle {
    name: String,
    file: File,
}

impl SyncHandle for LocalSyncHandle {
    fn sync(&self) -> Result<()> {
        self.file.sync_data().ctx("fsync", &self.name)
    }
}

impl WritableFile for LocalWritable {
    fn append(&mut self, data: &[u8]) -> Result<()> {
        self.out.write_all(data).ctx("write", &self.name)?;
        self.len += data.len() as u64;
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        self.out.flush().ctx("flush", &self.name)
    }

    fn sync(&mut self) -> Result<()> {
        self.flush()?;
        self.out.get_ref().sync_data().ctx("fsync", &self.name)
    }

    fn len(&self) -> u64 {
        self.len
    }

    fn abandon(self: Box<Self>) {
        // Dropping a BufWriter writes its buffer: take the file without.
        let (_file, _unwritten) = self.out.into_parts();
    }

    fn sync_handle(&self) -> Result<Option<Box<dyn SyncHandle>>> {
        open_sync_handle(&self.name, &self.path)
    }
}

/// A sync handle for the file at `path`: opened anew (not dup'ed), its
/// own open file description, so its fdatasync reports every write-back
/// error itself.
pub(super) fn open_sync_handle(name: &str, path: &Path) -> Result<Option<Box<dyn SyncHandle>>> {
    let file = OpenOptions::new()
        .write(true)
        .open(path)
        .ctx("open for fsync", name)?;
    Ok(Some(Box::new(LocalSyncHandle {
        name: name.to_string(),
        file,
    })))
}

struct LocalReadable {
    name: String,
    file: File,
    len: u64,
}

impl RandomAccessFile for LocalReadable {
    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        self.file.read_exact_at(buf, offset).ctx("read", &self.name)
    }

    fn len(&self) -> u64 {
        self.len
    }
}

impl Storage for LocalStorage {
    fn create(&self, name: &str) -> Result<Box<dyn WritableFile>> {
        let path = self.path(name)?;
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .ctx("create", name)?;
        Ok(Box::new(LocalWritable {
            name: name.to_string(),
            path,
            out: BufWriter::with_capacity(WRITE_BUFFER_BYTES, file),
            len: 0,
        }))
    }

    fn can_preallocate(&self) -> bool {
        true
    }

    fn create_zeroed(&self, name: &str, size_bytes: u64) -> Result<()> {
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(self.path(name)?)
            .ctx("create", name)?;
        // Written, not fallocated: ext4 and xfs record a write into an
        // allocated-but-unwritten extent as a metadata change, which would
        // bring back the journal commit per fdatasync this avoids.
        let zeros = vec![0u8; ZERO_CHUNK_BYTES];
        let mut left = size_bytes;
        while left > 0 {
            let n = left.min(ZERO_CHUNK_BYTES as u64) as usize;
            file.write_all(&zeros[..n]).ctx("write", name)?;
            left -= n as u64;
        }
        file.sync_all().ctx("fsync", name)
    }

    /// Written with direct I/O where the file system allows it
    /// (`direct.rs`), else buffered.
    fn overwrite(&self, name: &str) -> Result<Box<dyn WritableFile>> {
        let path = self.path(name)?;
        #[cfg(target_os = "linux")]
        if let Some(w) = super::direct::DirectWritable::open(name, &path)? {
            return Ok(Box::new(w));
        }
        let file = OpenOptions::new()
            .write(true)
            .open(&path)
            .ctx("open for writing", name)?;
        Ok(Box::new(LocalWritable {
            name: name.to_string(),
            path,
            out: BufWriter::with_capacity(WRITE_BUFFER_BYTES, file),
            len: 0,
        }))
    }

    fn open(&self, name: &str) -> Result<Arc<dyn RandomAccessFile>> {
        let path = self.path(name)?;
        let file = File::open(&path).ctx("open", name)?;
        let len = file.metadata().ctx("stat", name)?.len();
        Ok(Arc::new(LocalReadable {
            name: name.to_string(),
            file,
            len,
        }))
    }

    fn remove(&self, name: &str) -> Result<()> {
        match fs::remove_file(self.path(name)?) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            r => r.ctx("remove", name),
        }
    }

    fn rename(&self, from: &str, to: &str) -> Result<()> {
        fs::rename(self.path(from)?, self.path(to)?).ctx("rename", &format!("{from} -> {to}"))
    }

    fn truncate(&self, name: &str, len: u64) -> Result<()> {
        let f = OpenOptions::new()
            .write(true)
            .open(self.path(name)?)
            .ctx("open for truncate", name)?;
        f.set_len(len).ctx("truncate", name)?;
        f.sync_all().ctx("fsync", name)
    }

    fn list(&self) -> Result<Vec<String>> {
        let shown = self.dir.display().to_string();
        let mut names = Vec::new();
        for entry in fs::read_dir(&self.dir).ctx("list", &shown)? {
            let entry = entry.ctx("list", &shown)?;
            // The lock file belongs to the storage, not to its user.
            if let Some(n) = entry.file_name().to_str().filter(|n| *n != LOCK_FILE) {
                names.push(n.to_string());
            }
        }
        Ok(names)
    }

    fn sync_dir(&self) -> Result<()> {
        let shown = self.dir.display().to_string();
        File::open(&self.dir)
            .ctx("open directory", &shown)?
            .sync_all()
            .ctx("fsync directory", &shown)
    }

    fn exists(&self, name: &str) -> Result<bool> {
        Ok(self.path(name)?.exists())
    }

    fn describe(&self) -> String {
        format!("local:{}", self.dir.display())
    }

    /// Writes and fsyncs a temporary file, then publishes it with a hard
    /// link (which fails if the name exists: atomic create-if-absent), and
    /// fsyncs the directory.
    fn put_if_absent(&self, name: &str, data: &[u8]) -> Result<bool> {
        let path = self.path(name)?;
        let tmp = self.path(&format!("{name}.put-tmp"))?;
        let mut f = File::create(&tmp).ctx("create", name)?;
        f.write_all(data).ctx("write", name)?;
        f.sync_data().ctx("fsync", name)?;
        drop(f);
        let linked = fs::hard_link(&tmp, &path);
        let _ = fs::remove_file(&tmp);
        match linked {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(false),
            Err(e) => return Err(Error::io(format!("link {name}"), e)),
        }
        self.sync_dir()?;
        Ok(true)
    }
}

#[cfg(test)]
mod lock_tests {
    use super::*;

    #[test]
    fn a_directory_opens_once_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let first = LocalStorage::open(dir.path()).unwrap();
        let err = LocalStorage::open(dir.path())
            .err()
            .expect("second open refused");
        assert!(err.to_string().contains("in use"), "{err}");
        drop(first);
        LocalStorage::open(dir.path()).expect("reopens once released");
    }
}
