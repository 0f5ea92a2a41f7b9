#!/usr/bin/env python3
"""Whether concurrent write + fdatasync calls on one file overlap on this
disk: 1, 2 and 4 threads each pwrite 6 KB at distinct offsets of one file
and fdatasync it, over a zero-filled (written and synced) file and
appending to an empty one. Prints syncs per second per mode and thread
count (more syncs per second with more threads: the syncs overlap).

Usage: scripts/dev/fsync_concurrency.py [DIR]   (default: target/)"""

import os
import sys
import threading
import time

SIZE = 6000
SYNCS = 1200


def run(path: str, mode: str) -> None:
    fd = os.open(path, os.O_CREAT | os.O_TRUNC | os.O_RDWR, 0o644)
    try:
        if mode == "zeros":
            os.write(fd, b"\0" * (SYNCS * SIZE + 4096))
            os.fsync(fd)
        for threads in (1, 2, 4):
            if mode == "append":
                os.ftruncate(fd, 0)
                os.fsync(fd)
            lock = threading.Lock()
            next_offset = [0]

            def worker(n: int) -> None:
                for _ in range(n):
                    with lock:
                        offset = next_offset[0]
                        next_offset[0] += SIZE
                    os.pwrite(fd, b"x" * SIZE, offset)
                    os.fdatasync(fd)

            workers = [threading.Thread(target=worker, args=(SYNCS // threads,)) for _ in range(threads)]
            started = time.perf_counter()
            for w in workers:
                w.start()
            for w in workers:
                w.join()
            elapsed = time.perf_counter() - started
            print(f"{mode:7} threads={threads}: {SYNCS / elapsed:8.0f} syncs/s")
    finally:
        os.close(fd)
        os.unlink(path)


def main() -> None:
    directory = sys.argv[1] if len(sys.argv) > 1 else "target"
    os.makedirs(directory, exist_ok=True)
    for mode in ("zeros", "append"):
        run(os.path.join(directory, "fsync_concurrency.tmp"), mode)


if __name__ == "__main__":
    main()
