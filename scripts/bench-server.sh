#!/usr/bin/env bash
# YCSB over gRPC: Strata's Bigtable API server against Google's Go Bigtable
# emulator (cbtemulator), alternated (emulator, strata, emulator, strata, ...),
# each run on a fresh server process (and, for Strata, a fresh data directory):
# workloads load,a,b,c,f, once with uniform and once with zipfian keys per round.
# Prints the medians over the rounds and the ratios strata / emulator, of
# throughput and of the server's CPU time per operation (user + system).
#
# Usage: scripts/bench-server.sh [ROUNDS] [SYSTEMS]
#   ROUNDS   default 2
#   SYSTEMS  default emulator,strata (either one alone also works)
# Environment: RECORDS (100000), OPERATIONS (100000), THREADS (16),
#   YCSB_ARGS (extra `strata-bench ycsb` options, e.g. "--batch-size 100"),
#   CBTEMULATOR (the emulator binary), BENCH_OUT (bench-results), CARGO_TARGET_DIR.
set -euo pipefail
cd "$(dirname "$0")/.."

rounds=${1:-2}
systems=${2:-emulator,strata}
records=${RECORDS:-100000}
operations=${OPERATIONS:-100000}
threads=${THREADS:-16}
read -r -a extra <<<"${YCSB_ARGS:-}"
emulator=${CBTEMULATOR:-/usr/lib/google-cloud-sdk/platform/bigtable-emulator/cbtemulator}
target=${CARGO_TARGET_DIR:-target}
strata=$target/release/strata
bench=$target/release/strata-bench

die() { echo "bench-server.sh: $*" >&2; exit 1; }

IFS=, read -r -a system_list <<<"$systems"
for s in "${system_list[@]}"; do
  [[ $s == emulator || $s == strata ]] || die "unknown system '$s' (expected emulator and/or strata)"
done
want() { [[ ",$systems," == *",$1,"* ]]; }

if want strata; then
  cargo build --release -p strata -p strata-bench
else
  cargo build --release -p strata-bench
fi
[[ -x $bench ]] || die "missing $bench (cargo build --release -p strata-bench)"
if want strata; then
  [[ -x $strata ]] || die "missing $strata (cargo build --release -p strata)"
  "$strata" serve --help >/dev/null 2>&1 || die "$strata has no working 'serve' subcommand"
fi
if want emulator; then
  [[ -x $emulator ]] || die "missing the Bigtable emulator at $emulator (package google-cloud-cli-bigtable-emulator; or set CBTEMULATOR)"
fi

out=${BENCH_OUT:-bench-results}/server-$(date +%Y%m%d-%H%M%S)
mkdir -p "$out"
echo "results in $out" >&2
# The commit the strata binary was just built from (a figure is true of the
# code it was measured on): "-dirty" if the work tree had changes.
commit=$(git describe --always --dirty 2>/dev/null || echo unknown)
echo "$commit" >"$out/commit"
echo "strata built from $commit" >&2
[[ $commit != *-dirty ]] || echo "bench-server.sh: warning: the work tree has uncommitted changes, built into this strata" >&2

# shellcheck source=scripts/bench-lib.sh
source scripts/bench-lib.sh

# start_server SYSTEM PORT LOG: starts a fresh server in the background.
start_server() {
  local system=$1 port=$2 log=$3
  case $system in
    emulator)
      "$emulator" -host 127.0.0.1 -port "$port" >"$log" 2>&1 &
      ;;
    strata)
      data_dir=$(mktemp -d "${TMPDIR:-/tmp}/strata-bench-server.XXXXXX")
      "$strata" serve --data-dir "$data_dir" --listen "127.0.0.1:$port" >"$log" 2>&1 &
      ;;
  esac
  server_pid=$!
  sleep 0.3
  kill -0 "$server_pid" 2>/dev/null || die "$system exited at startup; see $log"
}

for ((r = 1; r <= rounds; r++)); do
  for dist in uniform zipfian; do
    for system in "${system_list[@]}"; do
      name=$system-$dist-r$r
      port=$(free_port)
      echo "== round $r/$rounds, $dist, $system (127.0.0.1:$port)" >&2
      start_server "$system" "$port" "$out/$name.server.log"
      "$bench" ycsb --addr "127.0.0.1:$port" --records "$records" --operations "$operations" \
        --threads "$threads" --workloads load,a,b,c,f --distribution "$dist" \
        --server-pid "$server_pid" --json "$out/$name.json" "${extra[@]}" | tee "$out/$name.txt"
      kill -0 "$server_pid" 2>/dev/null || die "$system died during the run; see $out/$name.server.log"
      stop_server
    done
  done
done

python3 scripts/bench-server-summary.py "$out" | tee "$out/summary.md"
