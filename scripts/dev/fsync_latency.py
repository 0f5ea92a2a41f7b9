#!/usr/bin/env python3
"""Latency of write + fdatasync on this disk: appending to a file, overwriting a
zero-filled (written and synced) file, and writing into a posix_fallocate'd file.
Prints the median and p99 in µs per mode, two rounds.

Usage: scripts/dev/fsync_latency.py [DIR]   (default: target/)"""

import os
import statistics
import sys
import time


def bench(path: str, mode: str, n: int = 1500, size: int = 6000) -> tuple[int, int]:
    fd = os.open(path, os.O_CREAT | os.O_TRUNC | os.O_WRONLY, 0o644)
    try:
        if mode == "zeros":
            os.write(fd, b"\0" * (n * size + 4096))
            os.fsync(fd)
            os.lseek(fd, 0, 0)
        elif mode == "fallocate":
            os.posix_fallocate(fd, 0, n * size + 4096)
            os.fsync(fd)
        lat = []
        for _ in range(n):
            t = time.perf_counter()
            os.write(fd, b"x" * size)
            os.fdatasync(fd)
            lat.append(time.perf_counter() - t)
    finally:
        os.close(fd)
        os.unlink(path)
    lat.sort()
    return round(statistics.median(lat) * 1e6), round(lat[int(n * 0.99)] * 1e6)


def main() -> None:
    d = sys.argv[1] if len(sys.argv) > 1 else "target"
    os.makedirs(d, exist_ok=True)
    for _ in range(2):
        for mode in ("append", "zeros", "fallocate"):
            med, p99 = bench(os.path.join(d, "fsync-latency.tmp"), mode)
            print(f"{mode:10} median {med} µs  p99 {p99} µs")


if __name__ == "__main__":
    main()
