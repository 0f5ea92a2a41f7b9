#!/usr/bin/env bash
# A/B two (or more) strata server binaries with the same YCSB client,
# alternated per round, each run on a fresh data directory. For measuring a
# change: build the release binary at each commit, copy it aside, pass both.
#
# Usage: scripts/bench-ab.sh ROUNDS BINARY...
# Environment: THREADS (16), RECORDS (100000), OPERATIONS (100000),
#   WORKLOADS (load,a,c), DISTRIBUTION (uniform), CARGO_TARGET_DIR.
# Prints one line per binary, round and phase: ops/s, p99 and p999 in µs,
# and the server's CPU time per operation in µs (user + system, from
# /proc/PID/stat over the phase: `strata-bench ycsb --server-pid`).
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:?usage: scripts/bench-ab.sh ROUNDS BINARY...}
shift
[[ $# -ge 1 ]] || { echo "bench-ab.sh: name at least one strata binary" >&2; exit 1; }
bench=${CARGO_TARGET_DIR:-target}/release/strata-bench
cargo build --release -q -p strata-bench
port=${PORT:-9391}
for r in $(seq "$rounds"); do
  for bin in "$@"; do
    dir=$(mktemp -d)
    "$bin" serve --data-dir "$dir" --listen "127.0.0.1:$port" 2>/dev/null &
    pid=$!
    sleep 1
    "$bench" ycsb --addr "127.0.0.1:$port" --records "${RECORDS:-100000}" \
      --operations "${OPERATIONS:-100000}" --threads "${THREADS:-16}" \
      --workloads "${WORKLOADS:-load,a,c}" --distribution "${DISTRIBUTION:-uniform}" \
      --server-pid "$pid" 2>/dev/null |
      awk -v b="$bin" -v r="$r" '$3 == "all" { printf "round %s %s %s %s ops/s %s p99 %s p999 %s server_cpu_us/op %s\n", r, b, $1, $2, $6, $8, $9, $12 }'
    kill "$pid"
    wait "$pid" 2>/dev/null || true
    rm -rf "$dir"
  done
done
