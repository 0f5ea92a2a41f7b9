#!/usr/bin/env bash
# Heap allocations per operation on a strata server's serving thread over
# one YCSB phase, counted exactly (not sampled): uprobes on mimalloc's
# allocation entry points (the Rust global allocator calls
# mi_malloc_aligned / mi_realloc_aligned), read with `perf stat
# --per-thread`. A fresh server on a fresh directory; unless WORKLOAD is
# load, a load of RECORDS rows first (not counted). The uprobes slow the
# server a hundredfold: the counts are exact, the run's times are not.
# For "Fewer allocations per read" in docs/benchmarks.md.
#
# Needs root (uprobes) and a binary with symbols (the release profile
# keeps them).
#
# Usage: scripts/dev/allocs-per-op.sh STRATA_BINARY STRATA_BENCH_BINARY WORKLOAD [RECORDS]
set -euo pipefail
bin=$(realpath "$1") bench=$2 workload=$3 records=${4:-5000}
group=allocs_$(basename "$bin" | tr -c 'a-zA-Z0-9\n' _)
perf probe -q -d "$group:*" 2>/dev/null || true
perf probe -q -x "$bin" -a "$group:malloc=mi_malloc_aligned"
perf probe -q -x "$bin" -a "$group:realloc=mi_realloc_aligned"
dir=$(mktemp -d "${TMPDIR:-/tmp}/allocs.XXXXXX")
"$bin" serve --data-dir "$dir/data" --listen 127.0.0.1:8088 --http-listen off >"$dir/log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; perf probe -q -d "$group:*" 2>/dev/null; rm -rf "$dir"' EXIT
sleep 1
run() { "$bench" ycsb --addr 127.0.0.1:8088 --records "$records" --operations "$1" --threads 16 --workloads "$2" >/dev/null 2>&1; }
if [[ $workload != load ]]; then run 1 load; fi
perf stat -e "$group:*" --per-thread -p "$pid" -o "$dir/stat" &
perf_pid=$!
sleep 0.5
run "$records" "$workload"
kill -INT $perf_pid
wait $perf_pid || true
awk -v n="$records" '$1 ~ /^strata-grpc/ && $2 + 0 > 0 {sub(/-[0-9]+$/, "", $1); c[$1 " " $3] += $2}
  END {for (k in c) printf "%-40s %10d  %.1f per op\n", k, c[k], c[k] / n}' "$dir/stat" | sort
