//! Whether a group's memtable insert could hide behind its log write: an
//! 8 KiB `O_DIRECT` write into a zero-filled file, then `SPIN_MICROS` of
//! CPU work (standing in for the insert), then fdatasync, two ways,
//! alternated in rounds of 2,000 (medians and p90 of the whole, and for
//! the first way the write's and the sync's own medians):
//! - pwrite, work, fdatasync (the work waits for the write);
//! - the write submitted to io_uring (no link: issued inline), the work
//!   while the device writes, then wait for the write and fdatasync.
//!
//! `cargo run --release --bin overlap -- /path/on/the/data/disk [SPIN_MICROS]`

use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::time::{Duration, Instant};

use io_uring::{opcode, types};

use uring_latency::{Target, FILE_BYTES, OPS_PER_ROUND, ROUNDS, WRITE_BYTES};

fn spin(d: Duration) {
    let t = Instant::now();
    while t.elapsed() < d {
        std::hint::spin_loop();
    }
}

fn median_p90(v: &mut [u64]) -> (u64, u64) {
    v.sort_unstable();
    (v[v.len() / 2], v[v.len() * 9 / 10])
}

fn main() -> std::io::Result<()> {
    let spin_micros: u64 = std::env::args()
        .nth(2)
        .map_or(40, |s| s.parse().expect("SPIN_MICROS"));
    let work = Duration::from_micros(spin_micros);
    let Target {
        path,
        file,
        buf: mut aligned,
        mut ring,
    } = Target::open("uring-overlap.dat")?;
    let fd = file.as_raw_fd();
    let buf = aligned.bytes();
    let mut offset = 0u64;
    for round in 0..ROUNDS {
        for mode in 0..2 {
            let (mut total, mut w, mut s) = (Vec::new(), Vec::new(), Vec::new());
            for _ in 0..OPS_PER_ROUND {
                let at = offset % (FILE_BYTES - WRITE_BYTES) as u64;
                offset += WRITE_BYTES as u64;
                let t0 = Instant::now();
                if mode == 0 {
                    file.write_all_at(buf, at)?;
                    let t1 = Instant::now();
                    spin(work);
                    let t2 = Instant::now();
                    file.sync_data()?;
                    w.push((t1 - t0).as_micros() as u64);
                    s.push(t2.elapsed().as_micros() as u64);
                } else {
                    let write = opcode::Write::new(types::Fd(fd), buf.as_ptr(), WRITE_BYTES as u32)
                        .offset(at)
                        .build();
                    // SAFETY: `buf` outlives the wait for the completion below.
                    unsafe { ring.submission().push(&write) }
                        .map_err(|_| std::io::Error::other("queue full"))?;
                    ring.submit()?;
                    spin(work);
                    ring.submit_and_wait(1)?;
                    for c in ring.completion() {
                        if c.result() < 0 {
                            return Err(std::io::Error::from_raw_os_error(-c.result()));
                        }
                    }
                    file.sync_data()?;
                }
                total.push(t0.elapsed().as_micros() as u64);
            }
            let (m, p) = median_p90(&mut total);
            if mode == 0 {
                let (wm, _) = median_p90(&mut w);
                let (sm, _) = median_p90(&mut s);
                println!("round {round}  pwrite, {spin_micros} µs work, fdatasync        median {m:>4} µs  p90 {p:>4} µs  (write {wm}, sync {sm})");
            } else {
                println!("round {round}  io_uring write, work in flight, fdatasync median {m:>4} µs  p90 {p:>4} µs");
            }
        }
    }
    std::fs::remove_file(&path)
}
