//! The latency of an 8 KiB `O_DIRECT` write into a zero-filled file made
//! durable four ways, alternated in rounds of 2,000 (medians and p90):
//! pwrite + fdatasync (what the commit log does), an io_uring write
//! linked to an fdatasync (IOSQE_IO_LINK), an io_uring write with
//! RWF_DSYNC, and pwritev2 with RWF_DSYNC.

use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::time::Instant;

use io_uring::{opcode, squeue, types};

use uring_latency::{Target, FILE_BYTES, OPS_PER_ROUND, ROUNDS, WRITE_BYTES};
const MODES: [&str; 4] = [
    "pwrite + fdatasync",
    "io_uring write linked to fdatasync",
    "io_uring write, RWF_DSYNC",
    "pwritev2, RWF_DSYNC",
];

fn main() -> std::io::Result<()> {
    let Target {
        path,
        file,
        buf: mut aligned,
        mut ring,
    } = Target::open("uring-latency.dat")?;
    let fd = file.as_raw_fd();
    let buf = aligned.bytes();
    let mut offset = 0u64;
    for round in 0..ROUNDS {
        for (mode, name) in MODES.iter().enumerate() {
            let mut micros = Vec::with_capacity(OPS_PER_ROUND);
            for _ in 0..OPS_PER_ROUND {
                let at = offset % (FILE_BYTES - WRITE_BYTES) as u64;
                offset += WRITE_BYTES as u64;
                let started = Instant::now();
                match mode {
                    0 => {
                        file.write_all_at(buf, at)?;
                        file.sync_data()?;
                    }
                    1 | 2 => {
                        let write =
                            opcode::Write::new(types::Fd(fd), buf.as_ptr(), WRITE_BYTES as u32)
                                .offset(at);
                        let entries = if mode == 1 {
                            let sync = opcode::Fsync::new(types::Fd(fd))
                                .flags(types::FsyncFlags::DATASYNC)
                                .build();
                            vec![write.build().flags(squeue::Flags::IO_LINK), sync]
                        } else {
                            vec![write.rw_flags(libc::RWF_DSYNC).build()]
                        };
                        // SAFETY: `buf` outlives the wait for every completion below.
                        unsafe { ring.submission().push_multiple(&entries) }
                            .map_err(|_| std::io::Error::other("queue full"))?;
                        ring.submit_and_wait(entries.len())?;
                        for c in ring.completion() {
                            if c.result() < 0 {
                                return Err(std::io::Error::from_raw_os_error(-c.result()));
                            }
                        }
                    }
                    _ => {
                        let iov = libc::iovec {
                            iov_base: buf.as_mut_ptr().cast(),
                            iov_len: WRITE_BYTES,
                        };
                        // SAFETY: one iovec over `buf`, which outlives the call.
                        let n = unsafe { libc::pwritev2(fd, &iov, 1, at as i64, libc::RWF_DSYNC) };
                        if n != WRITE_BYTES as isize {
                            return Err(std::io::Error::last_os_error());
                        }
                    }
                }
                micros.push(started.elapsed().as_micros() as u64);
            }
            micros.sort_unstable();
            println!(
                "round {round}  {name:<36} median {:>4} µs  p90 {:>4} µs",
                micros[OPS_PER_ROUND / 2],
                micros[OPS_PER_ROUND * 9 / 10]
            );
        }
    }
    std::fs::remove_file(&path)
}
