#!/usr/bin/env bash
# Per-thread CPU of a strata server over one YCSB phase: a fresh server on a
# fresh directory, a load of RECORDS rows (not measured unless WORKLOAD is
# load), then utime and stime (fields 14, 15 of /proc/PID/task/*/stat)
# and voluntary/involuntary context switches (/proc/PID/task/*/status),
# summed by thread name before and after WORKLOAD, and the commit groups
# it took and their time in the log (/metrics: from a group's log write to
# its durability). For "Direct log writes", the spinning committer and
# "io_uring in the committer" in docs/benchmarks.md.
#
# Usage: [DISTRIBUTION=zipfian] scripts/dev/thread-cpu.sh STRATA_BINARY STRATA_BENCH_BINARY THREADS WORKLOAD [RECORDS]
set -euo pipefail
bin=$1 bench=$2 threads=$3 workload=$4 records=${5:-50000}
dir=$(mktemp -d "${TMPDIR:-/tmp}/thread-cpu.XXXXXX")
"$bin" serve --data-dir "$dir/data" --listen 127.0.0.1:8087 --http-listen 127.0.0.1:8099 >"$dir/log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$dir"' EXIT
sleep 1
snap() {
  for t in /proc/$pid/task/*; do
    read -r -a s <<<"$(sed 's/.*) //' "$t/stat")"
    cs=$(awk '/^(non)?voluntary_ctxt_switches/ {printf "%s ", $2}' "$t/status")
    echo "$(cat "$t/comm" | tr ' ' _) ${s[11]} ${s[12]} $cs"
  done | awk '{u[$1]+=$2; s[$1]+=$3; v[$1]+=$4; n[$1]+=$5} END {for (k in u) print k, u[k], s[k], v[k], n[k]}' | sort
}
metric() { curl -s 127.0.0.1:8099/metrics | awk -v m="$1" '$1 == m {print $2}'; }
groups() { metric strata_commit_groups_total; }
log_seconds() { metric strata_commit_log_seconds_total; }
run() { "$bench" ycsb --addr 127.0.0.1:8087 --records "$records" --operations "$1" --threads "$threads" --workloads "$2" --distribution "${DISTRIBUTION:-uniform}" --server-pid "$pid" 2>&1 | grep -E " all " || true; }
if [[ $workload != load ]]; then run 1 load; fi
g0=$(groups); l0=$(log_seconds); snap >"$dir/before"
if [[ $workload == load ]]; then run 1 load; else run "$records" "$workload"; fi
snap >"$dir/after"; g1=$(groups); l1=$(log_seconds)
tick_ms=$((1000 / $(getconf CLK_TCK)))
awk -v t="$tick_ms" 'NR==FNR {u[$1]=$2; s[$1]=$3; v[$1]=$4; n[$1]=$5; next}
  {du=($2-u[$1])*t; ds=($3-s[$1])*t; if (du+ds>0) printf "%-18s user %6d ms  sys %6d ms  switches %7d voluntary %6d involuntary\n", $1, du, ds, $4-v[$1], $5-n[$1]}' "$dir/before" "$dir/after"
ng=$(echo "$g1 - $g0" | bc)
if [[ $(echo "$ng == 0" | bc) == 1 ]]; then echo "commit groups: 0"; else echo "commit groups: $ng, $(echo "($l1 - $l0) * 1000000 / $ng" | bc) µs each in the log"; fi
