#!/usr/bin/env bash
# Threads of a cluster server against the number of tablets it serves.
# For each N in TABLETS: a fresh etcd and one server (`strata serve --etcd
# ... --storage file://DIR`), YCSB's table created with N-1 initial splits
# spread over YCSB's keys ("user" and a decimal hash: splits user100 ..
# user999), so N tablets, all on that server; then the server's threads
# counted by role from /proc/PID/task/*/comm (Linux keeps 15 bytes of each
# name), and its resident memory: idle, and 10 s into a YCSB load at 64 in
# flight (strata-bench ycsb, writing to every tablet). Prints two lines
# per N.
#
# Usage: scripts/count-threads.sh
# Environment: TABLETS ("1 16 64 100"; a table has at most 100 initial tablets), STRATA (default
#   $CARGO_TARGET_DIR/release/strata, built first; set it to compare
#   another build), STRATA_PYVENV (target/pyvenv: its python with
#   google-cloud-bigtable, and etcd; run scripts/test-python.sh once),
#   ETCD (default the venv's etcd).
set -euo pipefail
cd "$(dirname "$0")/.."

read -r -a tablets_list <<<"${TABLETS:-1 16 64 100}"
target=${CARGO_TARGET_DIR:-target}
venv=${STRATA_PYVENV:-target/pyvenv}
py=$venv/bin/python
etcd=${ETCD:-$venv/bin/etcd}
die() { echo "count-threads.sh: $*" >&2; exit 1; }
[[ -x $etcd ]] || die "no etcd at $etcd (run scripts/test-python.sh once, or set ETCD)"
"$py" -c 'import google.cloud.bigtable' 2>/dev/null \
  || die "no google-cloud-bigtable in $venv (run scripts/test-python.sh once)"
if [[ -z ${STRATA:-} ]]; then
  cargo build --release -q -p strata
  STRATA=$target/release/strata
fi
cargo build --release -q -p strata-bench
bench=$target/release/strata-bench

# shellcheck source=scripts/bench-lib.sh
source scripts/bench-lib.sh

work=$(mktemp -d "${TMPDIR:-/tmp}/strata-threads.XXXXXX")
etcd_pid=
node_pid=
cleanup() {
  [[ -z $node_pid ]] || { kill "$node_pid" 2>/dev/null || true; wait "$node_pid" 2>/dev/null || true; }
  [[ -z $etcd_pid ]] || { kill "$etcd_pid" 2>/dev/null || true; wait "$etcd_pid" 2>/dev/null || true; }
  rm -rf "$work"
}
trap cleanup EXIT

echo "binary: $STRATA ($(git rev-parse --short HEAD 2>/dev/null || echo '?') checked out)"
echo "machine: $(nproc) cores, $(uname -sr)"
row() { # N STATE
  local names rss
  names=$(cat /proc/"$node_pid"/task/*/comm 2>/dev/null)
  count() { grep -c "^$1" <<<"$names" || true; }
  rss=$(awk '/VmRSS/ {printf "%.0f", $2 / 1024}' /proc/"$node_pid"/status)
  printf '%8s %6s %8s %8s %8s %8s %8s %8s %8s %8s %8s\n' "$1" "$2" "$(wc -l <<<"$names")" \
    "$(count strata-commit)" "$(count strata-upload)" "$(count strata-flush)" \
    "$(count strata-compact)" "$(count strata-tablets)" "$(count strata-pool)" \
    "$(count tokio)" "$rss"
}
printf '%8s %6s %8s %8s %8s %8s %8s %8s %8s %8s %8s\n' \
  tablets state threads commit upload flush compact tablets pool tokio rss_mib
for n in "${tablets_list[@]}"; do
  rm -rf "${work:?}"/*
  mkdir -p "$work/store" "$work/cache"
  start_etcd "$work/etcd.log"
  port=$(free_port)
  "$STRATA" serve --etcd "$etcd_url" --storage "file://$work/store" \
    --listen "127.0.0.1:$port" --server-id s0 --data-dir "$work/cache/s0" \
    >"$work/s0.log" 2>&1 &
  node_pid=$!
  for ((i = 0; i < 600; i++)); do
    grep -qs 'joined the cluster as' "$work/s0.log" && break
    kill -0 "$node_pid" 2>/dev/null || die "the server exited; see $work/s0.log"
    sleep 0.1
  done
  read -r -a splits <<<"$(python3 -c "n = $n; print(' '.join(sorted({'user%03d' % (100 + i * 900 // n) for i in range(1, n)})))")"
  "$py" scripts/bench-cluster.py create-table "127.0.0.1:$port" "${splits[@]}"
  "$py" scripts/bench-cluster.py wait "$etcd_url" 1 120 >/dev/null
  sleep 2 # threads started as tablets open settle
  row "$n" idle
  "$bench" ycsb --addr "127.0.0.1:$port" --records 10000000 --threads 64 \
    --workloads load >/dev/null 2>&1 &
  load_pid=$!
  sleep 10
  row "$n" load
  kill "$load_pid" 2>/dev/null || true
  wait "$load_pid" 2>/dev/null || true
  kill "$node_pid"
  wait "$node_pid" 2>/dev/null || true
  node_pid=
  kill "$etcd_pid"
  wait "$etcd_pid" 2>/dev/null || true
  etcd_pid=
done
