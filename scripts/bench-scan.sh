#!/usr/bin/env bash
# ReadRows scan throughput of two (or more) strata server binaries over one
# data directory: loads RECORDS rows (YCSB's, 10 columns x 100 bytes: ~1 GB
# of values at the default 1,000,000) once with the first binary and lets it
# settle, then per round starts each binary in turn on that directory (A B,
# A B, ...) and runs SCANS full-table scans with `strata-bench scan`.
# Reports every scan (rows/s, MB/s, and the CPU seconds of the server, the
# client and every other process meanwhile) and, per binary, the medians over
# all its scans and the ratios to the first binary. On a shared machine each
# run waits until the machine is idle, and a run whose scans met more than
# QUIET_CPU_SECS of other processes' CPU is repeated (ATTEMPTS times at most;
# the noisy ones go to noisy.txt).
#
# Usage: scripts/bench-scan.sh ROUNDS BINARY...
# Environment: RECORDS (1000000), SCANS (2, per run), DATA (a directory
#   already loaded by this script with KEEP=1: skip the load), KEEP (keep the
#   loaded directory), QUIET_CPU_SECS (1), ATTEMPTS (4), BENCH (a strata-bench binary; default: build it),
#   BENCH_OUT (bench-results), CARGO_TARGET_DIR.
set -euo pipefail
cd "$(dirname "$0")/.."

rounds=${1:?usage: scripts/bench-scan.sh ROUNDS BINARY...}
shift
[[ $# -ge 1 ]] || { echo "bench-scan.sh: name at least one strata binary" >&2; exit 1; }
records=${RECORDS:-1000000}
scans=${SCANS:-2}
quiet=${QUIET_CPU_SECS:-1}
attempts=${ATTEMPTS:-4}
if [[ -n ${BENCH:-} ]]; then
  bench=$BENCH
else
  bench=${CARGO_TARGET_DIR:-target}/release/strata-bench
  cargo build --release -q -p strata-bench
fi
out=${BENCH_OUT:-bench-results}/scan-$(date +%Y%m%d-%H%M%S)
mkdir -p "$out"
echo "results in $out" >&2

# shellcheck source=scripts/bench-lib.sh
source scripts/bench-lib.sh
# The loaded directory outlives each server: it is not bench-lib's data_dir.
loaded=${DATA:-}
cleanup() {
  stop_server
  if [[ -z ${DATA:-} && -z ${KEEP:-} && -n $loaded ]]; then rm -rf "$loaded"; fi
}
trap cleanup EXIT

# Waits (up to 20 minutes) until the machine has been under 10% busy for 5 s.
wait_quiet() {
  local a b busy idle i
  for ((i = 0; i < 240; i++)); do
    read -ra a </proc/stat
    sleep 5
    read -ra b </proc/stat
    busy=$(((b[1] + b[2] + b[3] + b[6] + b[7]) - (a[1] + a[2] + a[3] + a[6] + a[7])))
    idle=$(((b[4] + b[5]) - (a[4] + a[5])))
    ((busy * 10 < busy + idle)) && return 0
  done
}

# Starts BINARY on the loaded directory and waits until it serves (the port
# is bound before the database opens, so a scan sent at once would time the
# opening too).
start() { # BINARY LOG
  local i
  port=$(free_port)
  "$1" serve --data-dir "$loaded" --listen "127.0.0.1:$port" >"$2" 2>&1 &
  server_pid=$!
  for ((i = 0; i < 600; i++)); do
    grep -q 'serving the Bigtable API' "$2" && return 0
    kill -0 "$server_pid" 2>/dev/null || break
    sleep 0.1
  done
  echo "bench-scan.sh: $1 did not start serving; its log:" >&2
  cat "$2" >&2
  exit 1
}

if [[ -z $loaded ]]; then
  loaded=$(mktemp -d "${TMPDIR:-/tmp}/strata-bench-scan.XXXXXX")
  echo "== loading $records rows into $loaded with $1" >&2
  start "$1" "$out/load.server.log"
  "$bench" ycsb --addr "127.0.0.1:$port" --records "$records" --threads 16 \
    --batch-size 100 --workloads load >"$out/load.txt"
  # Settle: wait until flushes and compactions stop changing the directory.
  last=
  while size=$(du -sb "$loaded" | awk '{print $1}'); [[ $size != "$last" ]]; do
    last=$size
    sleep 15
  done
  stop_server
  [[ -n ${KEEP:-} ]] && echo "loaded directory kept: $loaded" >&2
fi
du -sb "$loaded" | awk '{print $1}' >"$out/disk_bytes"

for ((r = 1; r <= rounds; r++)); do
  i=0
  for bin in "$@"; do
    i=$((i + 1))
    echo "== round $r/$rounds, $bin" >&2
    for ((a = 1; ; a++)); do
      wait_quiet
      start "$bin" "$out/b$i-r$r.server.log"
      "$bench" scan --addr "127.0.0.1:$port" --scans "$scans" --expect-rows "$records" \
        --server-pid "$server_pid" | sed "s|^|binary=$i round=$r |" >"$out/run.txt"
      stop_server
      noisy=$(tr ' ' '\n' <"$out/run.txt" | awk -F= -v q="$quiet" '$1 == "other_cpu_secs" && $2 > q' | wc -l)
      [[ $noisy == 0 || $a -ge $attempts ]] && break
      echo "   $noisy scan(s) ran beside more than ${quiet}s of other CPU; again in 30s" >&2
      cat "$out/run.txt" >>"$out/noisy.txt"
      sleep 30
    done
    tee -a "$out/scans.txt" <"$out/run.txt"
  done
done

python3 - "$out/scans.txt" "$@" <<'PY' | tee "$out/summary.md"
import statistics, sys
path, bins = sys.argv[1], sys.argv[2:]
runs = {}
for line in open(path):
    kv = dict(f.split("=", 1) for f in line.split())
    runs.setdefault(int(kv["binary"]), []).append(kv)
def med(i, k):
    return statistics.median(float(r[k]) for r in runs[i])
print("| binary | scans | rows/s (median) | MB/s (median) | ratio to the first (rows/s) | "
      "server CPU s per scan | client CPU s per scan | CPU ratio to the first | responses per scan | "
      "first response ms | other CPU s per scan |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
for i, b in enumerate(bins, 1):
    cpu = med(i, 'server_cpu_secs') + med(i, 'client_cpu_secs')
    cpu1 = med(1, 'server_cpu_secs') + med(1, 'client_cpu_secs')
    print(f"| {b} | {len(runs[i])} | {med(i, 'rows_per_sec'):,.0f} | {med(i, 'mb_per_sec'):,.1f} | "
          f"{med(i, 'rows_per_sec') / med(1, 'rows_per_sec'):.3f} | {med(i, 'server_cpu_secs'):.2f} | "
          f"{med(i, 'client_cpu_secs'):.2f} | {cpu / cpu1:.3f} | {med(i, 'responses'):,.0f} | "
          f"{med(i, 'first_response_ms'):.1f} | {med(i, 'other_cpu_secs'):.2f} |")
PY
