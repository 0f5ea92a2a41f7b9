#!/usr/bin/env python3
"""Function-by-function difference of two callgrind dumps, per operation.

Usage: scripts/callgrind-diff.py A.callgrind B.callgrind OPERATIONS [TOP]

Prints the instructions each function executed itself (exclusive) in A
minus in B, divided by OPERATIONS, largest first: with the dumps of
scripts/bench-metrics-instructions.sh (A metrics on, B off), what counting
costs per request and where.
"""
import re
import subprocess
import sys


def exclusive(path):
    out = subprocess.run(
        ["callgrind_annotate", "--inclusive=no", "--threshold=100", "--auto=no", path],
        capture_output=True, text=True, check=True,
    ).stdout
    costs = {}
    for line in out.splitlines():
        m = re.match(r"\s*([\d,]+) \(\s*[\d.]+%\)\s+(\S.*)$", line)
        if not m or "PROGRAM TOTALS" in line:
            continue
        name = m.group(2).rsplit(" [", 1)[0]
        if ":" in name:
            name = name.split(":", 1)[1]  # drop the source file
        costs[name] = costs.get(name, 0) + int(m.group(1).replace(",", ""))
    return costs


def main():
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    a, b, ops = exclusive(sys.argv[1]), exclusive(sys.argv[2]), int(sys.argv[3])
    top = int(sys.argv[4]) if len(sys.argv) > 4 else 20
    diff = sorted(((a.get(k, 0) - b.get(k, 0), k) for k in a.keys() | b.keys()), reverse=True)
    for d, name in diff[:top]:
        print(f"{d / ops:9.1f}  {name[:150]}")


if __name__ == "__main__":
    main()
