#!/usr/bin/env bash
# Tablets under load: YCSB load of RECORDS rows (10 columns x 100 bytes) into
# `strata serve --tablet-split-size SPLIT` against the same load with splits
# off, alternated (split, off, split, off, ...), each on a fresh server and
# data directory; then workload C on the loaded table. Reports per run the
# load and C throughput, the tablets at the end (`strata tablets`), the peak
# RSS of the server, and the medians and ratios over the rounds.
#
# Usage: scripts/bench-tablets.sh [ROUNDS]
# Environment: RECORDS (2000000), OPERATIONS (200000, for C), THREADS (64),
#   SPLIT (64MiB), BUDGET (256MiB: --memtable-budget), BENCH_OUT
#   (bench-results), CARGO_TARGET_DIR.
set -euo pipefail
cd "$(dirname "$0")/.."

rounds=${1:-2}
records=${RECORDS:-2000000}
operations=${OPERATIONS:-200000}
threads=${THREADS:-64}
split=${SPLIT:-64MiB}
budget=${BUDGET:-256MiB}
target=${CARGO_TARGET_DIR:-target}
strata=$target/release/strata
bench=$target/release/strata-bench

cargo build --release -p strata -p strata-bench
out=${BENCH_OUT:-bench-results}/tablets-$(date +%Y%m%d-%H%M%S)
mkdir -p "$out"
echo "results in $out" >&2

# shellcheck source=scripts/bench-lib.sh
source scripts/bench-lib.sh

for ((r = 1; r <= rounds; r++)); do
  for mode in split off; do
    name=$mode-r$r
    size=$split
    [[ $mode == off ]] && size=off
    port=$(free_port)
    data_dir=$(mktemp -d "${TMPDIR:-/tmp}/strata-bench-tablets.XXXXXX")
    echo "== round $r/$rounds, --tablet-split-size $size (127.0.0.1:$port)" >&2
    "$strata" serve --data-dir "$data_dir" --listen "127.0.0.1:$port" \
      --tablet-split-size "$size" --memtable-budget "$budget" >"$out/$name.server.log" 2>&1 &
    server_pid=$!
    sleep 0.3
    "$bench" ycsb --addr "127.0.0.1:$port" --records "$records" --operations "$operations" \
      --threads "$threads" --workloads load,c --distribution uniform \
      --json "$out/$name.json" | tee "$out/$name.txt"
    kill -0 "$server_pid" 2>/dev/null || { echo "server died; see $out/$name.server.log" >&2; exit 1; }
    grep VmHWM "/proc/$server_pid/status" | awk '{print $2}' >"$out/$name.rss_kib"
    "$strata" tablets usertable --server "127.0.0.1:$port" --project strata-bench --instance bench \
      >"$out/$name.tablets" 2>&1 || true
    du -sb "$data_dir" | awk '{print $1}' >"$out/$name.disk_bytes"
    stop_server
  done
done

python3 - "$out" "$split" "$budget" <<'PY' | tee "$out/summary.md"
import json, os, statistics, sys
out, split, budget = sys.argv[1:4]
rows = {"split": [], "off": []}
for name in sorted(os.listdir(out)):
    if not name.endswith(".json"):
        continue
    mode = name.split("-")[0]
    base = os.path.join(out, name[:-5])
    phases = {p["workload"]: p for p in json.load(open(base + ".json"))["phases"]}
    # Tablet lines start with the tablet id; the last line is the total.
    tablets = sum(1 for l in open(base + ".tablets") if l[:1].isdigit() and ", total " not in l)
    rows[mode].append({
        "load": phases["load"]["ops_per_sec"],
        "c": phases["c"]["ops_per_sec"],
        "rss": int(open(base + ".rss_kib").read()) / 1024,
        "disk": int(open(base + ".disk_bytes").read()) / 2**20,
        "tablets": tablets,
    })
def med(mode, k):
    return statistics.median(r[k] for r in rows[mode]) if rows[mode] else float("nan")
print(f"| --tablet-split-size | runs | tablets at end | load rows/s | C reads/s | peak RSS MiB (budget {budget}) | disk MiB |")
print("|---|---|---|---|---|---|---|")
for mode, label in (("split", split), ("off", "off")):
    print(f"| {label} | {len(rows[mode])} | {med(mode,'tablets'):.0f} | {med(mode,'load'):,.0f} | {med(mode,'c'):,.0f} | {med(mode,'rss'):,.0f} | {med(mode,'disk'):,.0f} |")
print()
print(f"load ratio split/off: {med('split','load') / med('off','load'):.2f}; "
      f"C ratio split/off: {med('split','c') / med('off','c'):.2f}")
PY
