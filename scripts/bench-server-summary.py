#!/usr/bin/env python3
"""Summarizes scripts/bench-server.sh results: medians over rounds, strata / emulator.

Usage: scripts/bench-server-summary.py DIR
DIR holds `strata-bench ycsb --json` files named SYSTEM-DISTRIBUTION-rROUND.json.
Prints a Markdown table per phase (load pools both distributions' runs, since
loading does not depend on the key distribution). Standard library only.
"""

import json
import os
import re
import statistics
import sys
from collections import defaultdict

NAME = re.compile(r"^(?P<system>[a-z0-9_]+)-(?P<dist>uniform|zipfian)-r(?P<round>\d+)\.json$")
SYSTEMS = ["emulator", "strata"]
WORKLOAD_ORDER = ["load", "a", "b", "c", "f"]


def load(directory):
    """(workload, distribution) -> system -> list of phase dicts."""
    runs = defaultdict(lambda: defaultdict(list))
    for name in sorted(os.listdir(directory)):
        m = NAME.match(name)
        if not m:
            continue
        with open(os.path.join(directory, name)) as f:
            data = json.load(f)
        for phase in data["phases"]:
            dist = phase["distribution"] if phase["workload"] != "load" else "-"
            runs[(phase["workload"], dist)][m["system"]].append(phase)
    return runs


def median(phases, get):
    return statistics.median(get(p) for p in phases) if phases else None


def fmt(x, digits=0):
    return "–" if x is None else f"{x:,.{digits}f}"


def op_p99(phase, op):
    lat = phase["latency"].get(op)
    return lat["p99_us"] if lat else None


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    runs = load(sys.argv[1])
    if not runs:
        sys.exit(f"no SYSTEM-DIST-rN.json files in {sys.argv[1]}")
    systems = [s for s in SYSTEMS if any(s in v for v in runs.values())]
    systems += sorted({s for v in runs.values() for s in v} - set(systems))

    head = ["phase", "dist"]
    head += [f"{s} ops/s" for s in systems]
    if "strata" in systems and "emulator" in systems:
        head.append("strata ÷ emulator")
    head += [f"p50 / p99 µs {s}" for s in systems]
    head += [f"cpu µs/op {s}" for s in systems]
    if "strata ÷ emulator" in head:
        head.append("cpu strata ÷ emulator")
    head += ["runs", "errors+missing"]
    print("| " + " | ".join(head) + " |")
    print("|" + "|".join(["---"] * 2 + ["---:"] * (len(head) - 2)) + "|")

    def key(k):
        w, d = k
        return (d != "-", d, WORKLOAD_ORDER.index(w) if w in WORKLOAD_ORDER else 99, w)

    bad = 0
    for (workload, dist) in sorted(runs, key=key):
        by_sys = runs[(workload, dist)]
        rate = {s: median(by_sys.get(s, []), lambda p: p["ops_per_sec"]) for s in systems}
        row = [workload, dist] + [fmt(rate[s]) for s in systems]
        if "strata ÷ emulator" in head:
            e, s = rate["emulator"], rate["strata"]
            row.append(f"{s / e:.2f}" if e and s else "–")
        for s in systems:
            ph = by_sys.get(s, [])
            p50 = median(ph, lambda p: p["latency"]["all"]["p50_us"])
            p99 = median(ph, lambda p: p["latency"]["all"]["p99_us"])
            row.append(f"{fmt(p50)} / {fmt(p99)}")
        cpu = {}
        for s in systems:
            ph = [p for p in by_sys.get(s, []) if p.get("server_cpu_us_per_op") is not None]
            cpu[s] = median(ph, lambda p: p["server_cpu_us_per_op"])
            row.append(fmt(cpu[s], 1))
        if "cpu strata ÷ emulator" in head:
            e, s = cpu["emulator"], cpu["strata"]
            row.append(f"{s / e:.2f}" if e and s else "–")
        row.append(" / ".join(str(len(by_sys.get(s, []))) for s in systems))
        errs = [sum(p["errors"] + p["missing"] for p in by_sys.get(s, [])) for s in systems]
        bad += sum(errs)
        row.append(" / ".join(str(e) for e in errs))
        print("| " + " | ".join(row) + " |")

    print()
    print(f"Medians over rounds; ops/s and latency are per phase, all operation types together "
          f"(per-type figures are in the JSON files); columns with several values are {' / '.join(systems)}.")
    commit_file = os.path.join(sys.argv[1], "commit")
    if os.path.exists(commit_file):
        with open(commit_file) as f:
            print(f"Strata built from {f.read().strip()}.")
    if bad:
        print(f"WARNING: {bad} failed requests or missing rows in total; see the .txt files.")


if __name__ == "__main__":
    main()
