#!/usr/bin/env bash
# The instructions a server executes per operation with metrics on
# (`--http-listen`, one scrape at the end) and off (`--http-listen off`),
# counted by callgrind: unlike a throughput A/B on a shared machine, the
# count does not move with what else the machine is doing, only with the
# server's thread interleaving (group-commit sizes), about ±1% a run.
#
# For each round and mode: a server under `valgrind --tool=callgrind`, a
# YCSB phase (`load`, or `c` after an uncounted load) of RECORDS operations
# at 16 in flight, counters zeroed before the phase and dumped after it.
# Prints one line per run with the instructions per operation, and keeps
# each dump (DIR/MODE.WORKLOAD.ROUND.callgrind) for
# `callgrind_annotate --inclusive=no` to compare function by function.
#
# Usage: scripts/bench-metrics-instructions.sh ROUNDS [WORKLOAD...]
# Environment: STRATA (default $CARGO_TARGET_DIR/release/strata, built
#   first), RECORDS (20000), DIR (a new temporary directory).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/bench-lib.sh
rounds=${1:?usage: scripts/bench-metrics-instructions.sh ROUNDS [WORKLOAD...]}
shift
workloads=("${@:-load}")
target=${CARGO_TARGET_DIR:-target}
cargo build --release -q -p strata -p strata-bench
strata=${STRATA:-$target/release/strata}
bench=$target/release/strata-bench
records=${RECORDS:-20000}
out=${DIR:-$(mktemp -d)}
mkdir -p "$out"
command -v valgrind >/dev/null || { echo "valgrind is not installed" >&2; exit 1; }

run() { # MODE WORKLOAD ROUND
  local mode=$1 wl=$2 round=$3 port http flags i dump total
  port=$(free_port)
  http=$(free_port)
  flags=(--http-listen off)
  [[ $mode == on ]] && flags=(--http-listen "127.0.0.1:$http")
  data_dir=$(mktemp -d)
  dump=$out/$mode.$wl.$round.callgrind
  valgrind --tool=callgrind --callgrind-out-file="$dump.run" \
    "$strata" serve --data-dir "$data_dir" --listen "127.0.0.1:$port" "${flags[@]}" 2>/dev/null &
  server_pid=$!
  for ((i = 0; i < 600; i++)); do
    (echo >"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
    sleep 0.2
  done
  if [[ $wl != load ]]; then
    "$bench" ycsb --addr "127.0.0.1:$port" --records "$records" --operations 0 \
      --threads 16 --workloads load >/dev/null 2>&1
  fi
  callgrind_control -z "$server_pid" >/dev/null 2>&1
  "$bench" ycsb --addr "127.0.0.1:$port" --records "$records" --operations "$records" \
    --threads 16 --workloads "$wl" >/dev/null 2>&1
  if [[ $mode == on ]]; then
    python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$http/metrics').read()"
  fi
  callgrind_control -d "$server_pid" >/dev/null 2>&1
  stop_server
  mv "$dump.run.1" "$dump"
  rm -f "$dump.run"
  total=$(awk '/^(summary|totals):/ { print $2; exit }' "$dump")
  echo "round $round $mode $wl ops $records instructions $total per_op $((total / records))"
}

for r in $(seq "$rounds"); do
  for wl in "${workloads[@]}"; do
    run on "$wl" "$r"
    run off "$wl" "$r"
  done
done
echo "# dumps in $out"
