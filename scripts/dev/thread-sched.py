#!/usr/bin/env python3
"""Sets the scheduling of a running server's threads, by thread name, as
they appear (an on-demand thread such as strata-commit is set when it
starts): for "Where a write at 16 in flight waits, on a slow day" in
docs/benchmarks.md, which measured whether the committer waits less for
a core given an earlier deadline or more weight.

Usage: scripts/dev/thread-sched.py PID MODE:VALUE NAME[,NAME...]
  slice:NS  EEVDF's request size of a fair thread (sched_setattr's
            sched_runtime, 100000 .. 100000000 ns; kernel 6.12 and later)
  nice:N    the thread's nice value (below 0 needs CAP_SYS_NICE)
  fifo:P    SCHED_FIFO at priority P (needs CAP_SYS_NICE)
Runs until the process exits.
"""
import ctypes
import os
import struct
import sys
import time

SYS_SCHED_SETATTR = 314  # x86_64
SCHED_FIFO = 1

libc = ctypes.CDLL(None, use_errno=True)


def apply(tid, mode, value):
    if mode == "slice":
        # struct sched_attr, SCHED_ATTR_SIZE_VER1 (56 bytes), SCHED_OTHER.
        attr = struct.pack("IIQiIQQQII", 56, 0, 0, 0, 0, value, 0, 0, 0, 0)
        return libc.syscall(SYS_SCHED_SETATTR, tid, ctypes.create_string_buffer(attr, 56), 0)
    if mode == "nice":
        return libc.setpriority(0, tid, value)  # PRIO_PROCESS of a tid: that thread
    if mode == "fifo":
        os.sched_setscheduler(tid, SCHED_FIFO, os.sched_param(value))
        return 0
    sys.exit(f"unknown mode {mode}")


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    pid = int(sys.argv[1])
    mode, value = sys.argv[2].split(":")
    names = sys.argv[3].split(",")
    done = set()
    while os.path.exists(f"/proc/{pid}"):
        for tid in os.listdir(f"/proc/{pid}/task"):
            if tid in done:
                continue
            try:
                with open(f"/proc/{pid}/task/{tid}/comm") as f:
                    comm = f.read().strip()
            except OSError:
                continue
            if any(comm.startswith(n) for n in names):
                r = apply(int(tid), mode, int(value))
                print(f"{comm} ({tid}): {mode} {value}: {'set' if r == 0 else os.strerror(ctypes.get_errno())}",
                      flush=True)
                done.add(tid)
        time.sleep(0.02)


main()
