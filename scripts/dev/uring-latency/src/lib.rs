//! What both measurements share: a zero-filled file on the disk under
//! test, opened for `O_DIRECT` writes, and a page-aligned buffer.

use std::fs::File;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

pub const WRITE_BYTES: usize = 8192;
pub const FILE_BYTES: usize = 64 << 20;
pub const OPS_PER_ROUND: usize = 2000;
pub const ROUNDS: usize = 3;

/// A measurement's file, buffer and ring.
pub struct Target {
    /// For the file's removal at the end.
    pub path: PathBuf,
    pub file: File,
    pub buf: AlignedBuf,
    pub ring: io_uring::IoUring,
}

impl Target {
    /// `name` in the folder given as the first argument (default: here).
    pub fn open(name: &str) -> std::io::Result<Target> {
        let dir = std::env::args().nth(1).unwrap_or_else(|| ".".into());
        let (path, file) = zeroed_direct_file(&dir, name)?;
        Ok(Target {
            path,
            file,
            buf: AlignedBuf::new(7),
            ring: io_uring::IoUring::new(8)?,
        })
    }
}

/// `FILE_BYTES` of zeros at `dir/name`, made durable, opened `O_DIRECT`
/// for writing (the file's path comes back for its removal).
fn zeroed_direct_file(dir: &str, name: &str) -> std::io::Result<(PathBuf, File)> {
    let path = Path::new(dir).join(name);
    std::fs::write(&path, vec![0u8; FILE_BYTES])?;
    File::open(&path)?.sync_all()?;
    let file = std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_DIRECT)
        .open(&path)?;
    Ok((path, file))
}

/// `WRITE_BYTES` of 4 KiB-aligned memory for `O_DIRECT` writes.
pub struct AlignedBuf {
    backing: Vec<u8>,
    start: usize,
}

impl AlignedBuf {
    pub fn new(fill: u8) -> AlignedBuf {
        let backing = vec![fill; WRITE_BYTES + 4096];
        let start = backing.as_ptr().align_offset(4096);
        AlignedBuf { backing, start }
    }

    pub fn bytes(&mut self) -> &mut [u8] {
        &mut self.backing[self.start..self.start + WRITE_BYTES]
    }
}
