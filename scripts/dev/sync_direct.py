#!/usr/bin/env python3
"""Whether O_DIRECT log writes would sync faster than buffered ones on this
disk: 5,000-byte records appended into a zero-filled file, each made durable
by (a) a buffered pwrite + fdatasync (what the commit log does), (b) an
O_DIRECT|O_DSYNC pwrite of the 4 KiB-aligned blocks the record touches, or
(c) an O_DIRECT pwrite + fdatasync. Prints the median and p99 in µs per
mode, and the process's CPU time (user + system) per record, two rounds.

Usage: scripts/dev/sync_direct.py [DIR]   (default: target/)"""

import mmap
import os
import statistics
import sys
import time

SIZE = 64 << 20
N = 3000
RECORD = 5000


def zero_filled(path: str) -> None:
    fd = os.open(path, os.O_CREAT | os.O_RDWR | os.O_TRUNC, 0o644)
    try:
        zeros = b"\0" * (1 << 20)
        for off in range(0, SIZE, len(zeros)):
            os.pwrite(fd, zeros, off)
        os.fsync(fd)
    finally:
        os.close(fd)


def buffered(path: str) -> list[int]:
    fd = os.open(path, os.O_RDWR)
    lat, off, rec = [], 0, b"x" * RECORD
    try:
        for _ in range(N):
            t = time.perf_counter_ns()
            os.pwrite(fd, rec, off)
            os.fdatasync(fd)
            lat.append(time.perf_counter_ns() - t)
            off += RECORD
    finally:
        os.close(fd)
    return lat


def direct(path: str, dsync: bool) -> list[int]:
    fd = os.open(path, os.O_RDWR | os.O_DIRECT | (os.O_DSYNC if dsync else 0))
    buf = mmap.mmap(-1, 16384)  # page-aligned, as O_DIRECT needs
    lat, off = [], 0
    try:
        for _ in range(N):
            start, end = off & ~4095, (off + RECORD + 4095) & ~4095
            t = time.perf_counter_ns()
            os.pwrite(fd, memoryview(buf)[: end - start], start)
            if not dsync:
                os.fdatasync(fd)
            lat.append(time.perf_counter_ns() - t)
            off += RECORD
    finally:
        os.close(fd)
    return lat


def main() -> None:
    d = sys.argv[1] if len(sys.argv) > 1 else "target"
    os.makedirs(d, exist_ok=True)
    path = os.path.join(d, "sync_direct.bin")
    modes = [
        ("buffered+fdatasync", buffered),
        ("O_DIRECT|O_DSYNC", lambda p: direct(p, True)),
        ("O_DIRECT+fdatasync", lambda p: direct(p, False)),
    ]
    try:
        for _ in range(2):
            for name, run in modes:
                zero_filled(path)
                cpu_start = time.process_time_ns()
                lat = sorted(run(path))
                cpu = (time.process_time_ns() - cpu_start) / N / 1000
                p99 = lat[int(len(lat) * 0.99)]
                print(
                    f"{name:20s} median {statistics.median(lat) / 1000:6.0f} µs  "
                    f"p99 {p99 / 1000:6.0f} µs  cpu {cpu:4.0f} µs"
                )
    finally:
        os.remove(path)


if __name__ == "__main__":
    main()
