#!/usr/bin/env bash
# A three-server cluster against one standalone server, both keeping their
# data in the same kind of store (file://DIR, a local directory used as an
# object store), so the difference is the cluster's own cost (etcd, tablets
# as separate engines, forwarding from the server the client talks to).
# Alternated per (round, threads): standalone, cluster, standalone, ...
# each run on fresh storage (and, for the cluster, a fresh etcd):
#   standalone: `strata serve --storage file://DIR`;
#   cluster: one etcd and `strata serve --etcd ... --storage file://DIR`
#     as s0, s1, s2; the client talks to s0 only.
# The table is created first (scripts/bench-cluster.py create-table) with
# SPLITS as initial splits, for both systems: `strata-bench ycsb` creates
# its table without splits, which a cluster would hold in one tablet on one
# server (tablets split by size only past 512 MiB); the cluster then waits
# until every tablet is served and the servers hold equal counts.
# Then YCSB load, A, C (uniform) at THREADS in flight. Prints per (system,
# threads, phase) the median ops/s and p99 over the rounds and the ratio
# cluster / standalone.
#
# Then failover (KILLS > 0): a fresh cluster, loaded with RECORDS rows, under
# a YCSB A load through s0 (runs of FAILOVER_OPS operations at
# FAILOVER_THREADS in flight, one after the other); KILLS times: SIGKILL of
# a server other than s0 that owns tablets (s1 and s2 in turn, whichever
# is master included), the time from the kill to the first successful read
# through s0 of a row of each of its tablets (scripts/bench-cluster.py
# failover: one ReadRows per attempt, no client retries), then the server
# restarted under its id and the cluster waited for until balanced again.
# Then MASTER_KILLS times the same with the master as the victim (s0
# included: the probes go through another server, and the load through s0
# starts again when s0 is back), also timing until another server is
# master. Prints every kill, and the median and max of the time until all
# of a killed server's tablets read again.
#
# Then splits (SPLIT_ROUNDS > 0): per round, a fresh etcd and one server
# s0 started with --tablet-split-size off; YCSB load of SPLIT_RECORDS rows
# into a table of one tablet; s0 stopped, then started again with
# --tablet-split-size SPLIT_SIZE under a YCSB A load of SPLIT_OPS
# operations at FAILOVER_THREADS in flight: the tablet, past the size,
# splits. From the server's log: the tablet's size, objects copied while
# it served and after it closed, the time from its close to both children
# serving (its unavailability), the whole split's time; from the load:
# errors and the slowest request.
#
# Then merges (MERGE_ROUNDS > 0): per round, a fresh etcd and one server
# s0 started with merges off; YCSB load of MERGE_RECORDS rows into a table
# of two tablets (split at user5); s0 stopped, then started again with
# --tablet-merge-size 1GiB --tablet-merge-delay-secs 1 under a YCSB A load
# of SPLIT_OPS operations at FAILOVER_THREADS in flight: the two merge
# after the first load report (10 s). From the server's log: the bytes,
# objects copied while serving, tables ingested, the time from the close
# to the merged tablet serving (the unavailability), the whole merge's
# time; from the load: errors and the slowest request.
#
# Usage: scripts/bench-cluster.sh [ROUNDS] [THREADS...]
#   ROUNDS default 2 (or $ROUNDS); THREADS default "16 64" (or $THREADS)
# Environment: RECORDS (100000), OPERATIONS (100000), KILLS (10; 0 and
#   MASTER_KILLS 0: no failover), MASTER_KILLS (5), FAILOVER_THREADS (16), FAILOVER_OPS (20000), SPLIT_ROUNDS (3;
#   0: no splits), SPLIT_RECORDS (200000), SPLIT_SIZE (64MiB), SPLIT_OPS
#   (100000), MERGE_ROUNDS (0), MERGE_RECORDS (100000), STORE (file: a
#   local directory used as an object store, the default; or s3s-fs: the
#   s3s-fs crate's S3 server on this machine, S3S_FS default
#   /tmp/s3s/bin/s3s-fs from `cargo install s3s-fs --features binary
#   --root /tmp/s3s`, where copies are CopyObject requests), SPLITS (row keys;
#   default user2 .. user9: YCSB's keys are "user" and a decimal hash, so
#   nine tablets of about equal size; empty: one tablet), BENCH_OUT
#   (bench-results), CARGO_TARGET_DIR, STRATA (the server binary; default
#   the release build of the work tree), STRATA_PYVENV (target/pyvenv: its
#   python with google-cloud-bigtable, and etcd; run scripts/test-python.sh
#   once), ETCD (default the venv's etcd).
set -euo pipefail
cd "$(dirname "$0")/.."

rounds=${1:-${ROUNDS:-2}}
shift || true
threads_list=("$@")
[[ ${#threads_list[@]} -gt 0 ]] || read -r -a threads_list <<<"${THREADS:-16 64}"
records=${RECORDS:-100000}
operations=${OPERATIONS:-100000}
kills=${KILLS:-10}
master_kills=${MASTER_KILLS:-5}
failover_threads=${FAILOVER_THREADS:-16}
failover_ops=${FAILOVER_OPS:-20000}
split_rounds=${SPLIT_ROUNDS:-3}
split_records=${SPLIT_RECORDS:-200000}
split_size=${SPLIT_SIZE:-64MiB}
split_ops=${SPLIT_OPS:-100000}
merge_rounds=${MERGE_ROUNDS:-0}
merge_records=${MERGE_RECORDS:-100000}
read -r -a splits <<<"${SPLITS-user2 user3 user4 user5 user6 user7 user8 user9}"
target=${CARGO_TARGET_DIR:-target}
strata=${STRATA:-$target/release/strata}
bench=$target/release/strata-bench
venv=${STRATA_PYVENV:-target/pyvenv}
py=$venv/bin/python
etcd=${ETCD:-$venv/bin/etcd}
nodes=3
store_kind=${STORE:-file}
s3s_fs=${S3S_FS:-/tmp/s3s/bin/s3s-fs}

die() { echo "bench-cluster.sh: $*" >&2; exit 1; }
case $store_kind in
  file) ;;
  s3s-fs) [[ -x $s3s_fs ]] || die "no s3s-fs at $s3s_fs (cargo install s3s-fs --features binary --root /tmp/s3s, or set S3S_FS)" ;;
  *) die "unknown STORE $store_kind (file or s3s-fs)" ;;
esac
[[ -x $etcd ]] || die "no etcd at $etcd (run scripts/test-python.sh once, or set ETCD)"
"$py" -c 'import google.cloud.bigtable' 2>/dev/null \
  || die "no google-cloud-bigtable in $venv (run scripts/test-python.sh once)"
cargo build --release -q -p strata -p strata-bench

out=${BENCH_OUT:-bench-results}/cluster-$(date +%Y%m%d-%H%M%S)
mkdir -p "$out"
commit=$(git rev-parse --short HEAD)
[[ -z $(git status --porcelain --untracked-files=no) ]] || commit="$commit (work tree modified)"
machine="$(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo), $(uname -sr), $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1)"
{
  echo "commit: $commit"
  echo "server binary: $strata"
  echo "machine: $machine"
  echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "settings: ROUNDS=$rounds THREADS=\"${threads_list[*]}\" RECORDS=$records OPERATIONS=$operations KILLS=$kills MASTER_KILLS=$master_kills FAILOVER_THREADS=$failover_threads FAILOVER_OPS=$failover_ops SPLIT_ROUNDS=$split_rounds SPLIT_RECORDS=$split_records SPLIT_SIZE=$split_size SPLIT_OPS=$split_ops MERGE_ROUNDS=$merge_rounds MERGE_RECORDS=$merge_records STORE=$store_kind SPLITS=\"${splits[*]}\""
} | tee "$out/setup.txt" >&2
echo "results in $out" >&2

# shellcheck source=scripts/bench-lib.sh
source scripts/bench-lib.sh

work=$(mktemp -d "${TMPDIR:-/tmp}/strata-bench-cluster.XXXXXX")
etcd_pid=
load_pid=
node_pid=()
node_port=()
cleanup() {
  stop_server
  [[ -z ${noise_pid:-} ]] || kill "$noise_pid" 2>/dev/null || true
  if [[ -n $load_pid ]]; then
    kill "$load_pid" 2>/dev/null || true
    [[ ! -s $work/load.pid ]] || kill "$(cat "$work/load.pid")" 2>/dev/null || true
    wait "$load_pid" 2>/dev/null || true
  fi
  stop_cluster
  [[ -z ${s3_pid:-} ]] || { kill "$s3_pid" 2>/dev/null || true; wait "$s3_pid" 2>/dev/null || true; }
  rm -rf "$work" "${s3_root:-}"
}
trap cleanup EXIT
# The store: a directory (file://), or an S3 server keeping its objects
# in one ($store_dir: where the current run's objects are, for du).
store_gen=0
if [[ $store_kind == s3s-fs ]]; then
  s3_root=$(mktemp -d "${TMPDIR:-/tmp}/strata-bench-s3s.XXXXXX")
  mkdir "$s3_root/bench" # a bucket is a directory
  s3_port=$(free_port)
  "$s3s_fs" --host 127.0.0.1 --port "$s3_port" --access-key bench --secret-key bench "$s3_root" >"$out/s3s-fs.log" 2>&1 &
  s3_pid=$!
  export AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench AWS_REGION=us-east-1
  export AWS_ENDPOINT_URL=http://127.0.0.1:$s3_port AWS_ALLOW_HTTP=true
  for _ in $(seq 100); do
    python3 -c "import socket; socket.create_connection(('127.0.0.1', $s3_port), 1)" 2>/dev/null && break
    sleep 0.1
  done
fi
# Noise: every 2 s the load average and how many rustc processes run (a
# compiler on the machine competes with the benchmark for its cores).
while :; do
  echo "$(date +%s) $(cut -d' ' -f1 /proc/loadavg) $(pgrep -c -x rustc || true)"
  sleep 2
done >"$out/noise.log" &
noise_pid=$!

# Waits until PID has exited, or SIGKILLs it after SECONDS.
stop_pid() { # PID SECONDS
  local i
  for ((i = 0; i < $2 * 10; i++)); do
    kill -0 "$1" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$1" 2>/dev/null; then
    echo "bench-cluster.sh: process $1 still running $2 s after SIGTERM; SIGKILL" >&2
    kill -9 "$1" 2>/dev/null || true
  fi
  wait "$1" 2>/dev/null || true
}

# serve_standalone LOG: a standalone server on $work/store, waited for;
# sets $port.
serve_standalone() {
  local i
  port=$(free_port)
  "$strata" serve --storage "$store_url" --data-dir "$work/cache" \
    --listen "127.0.0.1:$port" >"$1" 2>&1 &
  server_pid=$!
  for ((i = 0; i < 6000; i++)); do
    grep -qs "serving the Bigtable API" "$1" && return
    kill -0 "$server_pid" 2>/dev/null || die "standalone server exited at startup; see $1"
    sleep 0.01
  done
  die "standalone server not serving after 60 s; see $1"
}

node_args=() # more `strata serve` arguments
start_node() { # I LOG (appended to: a restarted server logs on)
  local i=$1
  "$strata" serve --etcd "$etcd_url" --storage "$store_url" \
    --listen "127.0.0.1:${node_port[i]}" --server-id "s$i" --data-dir "$work/cache/s$i" \
    "${node_args[@]}" >>"$2" 2>&1 &
  node_pid[i]=$!
}

# Waits until LOG says "joined the cluster as" N times.
wait_joined() { # I LOG N
  local k
  for ((k = 0; k < 1200; k++)); do
    (($(grep -cs 'joined the cluster as' "$2" || true) >= $3)) && return
    kill -0 "${node_pid[$1]}" 2>/dev/null || die "s$1 exited; see $2"
    sleep 0.05
  done
  die "s$1 did not join in 60 s; see $2"
}

# start_cluster PREFIX: etcd and $nodes servers on $work/store, logs
# PREFIX.etcd.log and PREFIX.sI.log, every server joined.
start_cluster() {
  local i
  start_etcd "$1.etcd.log"
  mkdir -p "$work/cache"
  for ((i = 0; i < nodes; i++)); do
    node_port[i]=$(free_port)
    start_node "$i" "$1.s$i.log"
  done
  for ((i = 0; i < nodes; i++)); do wait_joined "$i" "$1.s$i.log" 1; done
}

# Every server SIGTERMed at once (one at a time, the master would move
# each one's tablets to the others), then etcd.
stop_cluster() {
  local pid
  for pid in "${node_pid[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${node_pid[@]}"; do stop_pid "$pid" 30; done
  node_pid=()
  if [[ -n $etcd_pid ]]; then
    kill "$etcd_pid" 2>/dev/null || true
    stop_pid "$etcd_pid" 10
    etcd_pid=
  fi
}

fresh_work() {
  rm -rf "${work:?}"/*
  mkdir -p "$work/store" "$work/cache"
  store_gen=$((store_gen + 1))
  if [[ $store_kind == s3s-fs ]]; then
    rm -rf "$s3_root/bench/store$((store_gen - 1))"
    store_url=s3://bench/store$store_gen
    store_dir=$s3_root/bench/store$store_gen
  else
    store_url=file://$work/store
    store_dir=$work/store
  fi
}

create_table() { # ADDR
  "$py" scripts/bench-cluster.py create-table "$1" "${splits[@]}"
}

ycsb() { # NAME ADDR WORKLOADS THREADS [OPERATIONS]
  "$bench" ycsb --addr "$2" --records "$records" --operations "${5:-$operations}" \
    --threads "$4" --workloads "$3" --distribution uniform --json "$out/$1.json" >"$out/$1.txt"
}

store_size() { # NAME: objects and bytes in the store after the run
  echo "$(find "$store_dir" -type f | wc -l) $(du -sb "$store_dir" | cut -f1)" >"$out/$1.store"
}

for ((r = 1; r <= rounds; r++)); do
  for t in "${threads_list[@]}"; do
    for system in standalone cluster; do
      name=$system-t$t-r$r
      echo "== round $r/$rounds, $t in flight, $system (load average $(cut -d' ' -f1 /proc/loadavg))" >&2
      fresh_work
      if [[ $system == standalone ]]; then
        serve_standalone "$out/$name.server.log"
        addr=127.0.0.1:$port
        create_table "$addr"
      else
        start_cluster "$out/$name"
        addr=127.0.0.1:${node_port[0]}
        create_table "$addr"
        "$py" scripts/bench-cluster.py wait "$etcd_url" "$nodes" 120 >"$out/$name.settled"
      fi
      before="$(date +%s) $(cut -d' ' -f1 /proc/loadavg)"
      ycsb "$name" "$addr" load,a,c "$t"
      echo "$before $(date +%s) $(cut -d' ' -f1 /proc/loadavg)" >"$out/$name.loadavg"
      stop_server
      stop_cluster
      store_size "$name"
    done
  done
done

if ((kills + master_kills > 0)); then
  echo "== failover: $kills kills of a server and $master_kills of the master under a YCSB A load of $failover_threads in flight through s0" >&2
  fresh_work
  start_cluster "$out/failover"
  front=127.0.0.1:${node_port[0]}
  create_table "$front"
  "$py" scripts/bench-cluster.py wait "$etcd_url" "$nodes" 120 >"$out/failover.settled"
  ycsb failover-load "$front" load 16
  (
    n=1
    while [[ ! -e $work/stop-load ]]; do
      "$bench" ycsb --addr "$front" --records "$records" --operations "$failover_ops" \
        --threads "$failover_threads" --workloads a --distribution uniform \
        --json "$out/failover-a-$n.json" >"$out/failover-a-$n.txt" 2>>"$out/failover-a.err" &
      echo $! >"$work/load.pid"
      wait $! || sleep 0.2
      n=$((n + 1))
    done
  ) &
  load_pid=$!
  sleep 3
  date +%s >"$out/failover.window"
  # kill K KIND: one kill (KIND "server": s1 or s2, whichever owns
  # tablets, alternating; "master": the master, probed through another
  # server), then the victim restarted and the cluster balanced again.
  kill_one() {
    local k=$1 kind=$2 attempt victim i log joined restarted joined_ms balanced_ms
    candidates=()
    if [[ $kind == server ]]; then
      if ((k % 2)); then order=(1 2); else order=(2 1); fi
      for i in "${order[@]}"; do candidates+=("s$i=${node_pid[i]}"); done
    else
      for ((i = 0; i < nodes; i++)); do candidates+=("s$i=${node_pid[i]}@127.0.0.1:${node_port[i]}"); done
    fi
    # Tried again (after waiting for balance) when no candidate owns a
    # serving tablet or a probe row cannot be read before the kill.
    for attempt in 1 2 3; do
      if [[ $kind == server ]]; then
        "$py" scripts/bench-cluster.py failover "$etcd_url" "$front" "$records" "${candidates[@]}" \
          >"$work/kill.json" 2>>"$out/failover-errors.log" && break
      else
        "$py" scripts/bench-cluster.py master-failover "$etcd_url" "$records" "${candidates[@]}" \
          >"$work/kill.json" 2>>"$out/failover-errors.log" && break
      fi
      ((attempt < 3)) || die "kill $k: nothing killed after 3 attempts; see $out/failover-errors.log"
      echo "bench-cluster.sh: kill $k, attempt $attempt: nothing killed; see $out/failover-errors.log" >&2
      "$py" scripts/bench-cluster.py wait "$etcd_url" "$nodes" 120 >/dev/null
      sleep 1
    done
    victim=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["victim"])' "$work/kill.json")
    i=${victim#s}
    wait "${node_pid[i]}" 2>/dev/null || true
    log=$out/failover.s$i.log
    joined=$(grep -cs 'joined the cluster as' "$log" || true)
    restarted=$(date +%s%N)
    start_node "$i" "$log"
    wait_joined "$i" "$log" $((joined + 1))
    joined_ms=$((($(date +%s%N) - restarted) / 1000000))
    "$py" scripts/bench-cluster.py wait "$etcd_url" "$nodes" 120 >"$work/balanced.json"
    balanced_ms=$((($(date +%s%N) - restarted) / 1000000))
    python3 - "$work/kill.json" "$work/balanced.json" "$k" "$joined_ms" "$balanced_ms" >>"$out/failover.jsonl" <<'PY'
import json, sys
k, bal = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
k.update(kill=int(sys.argv[3]), rejoined_s=int(sys.argv[4]) / 1000,
         balanced_s=int(sys.argv[5]) / 1000, owners_after=bal["owners"])
print(json.dumps(k))
master = " (master)" if k["was_master"] else ""
elected = f", a new master after {k['elected_s']} s" if k.get("elected_s") is not None else ""
print(f"kill {k['kill']}: {k['victim']}{master}, {k['tablets']} tablets, all read again after "
      f"{k['all_s']} s (first {k['first_s']} s){elected}; restarted: joined after {k['rejoined_s']} s, "
      f"balanced after {k['balanced_s']} s", file=sys.stderr)
PY
    sleep 2 # the load on the balanced cluster before the next kill
  }
  for ((k = 1; k <= kills; k++)); do kill_one "$k" server; done
  for ((k = kills + 1; k <= kills + master_kills; k++)); do kill_one "$k" master; done
  date +%s >>"$out/failover.window"
  touch "$work/stop-load"
  wait "$load_pid" || true
  load_pid=
  stop_cluster
fi

for ((r = 1; r <= split_rounds; r++)); do
  echo "== split $r/$split_rounds: $split_records rows in one tablet, split at $split_size under a YCSB A load" >&2
  fresh_work
  log=$out/split-r$r.s0.log
  start_etcd "$out/split-r$r.etcd.log"
  node_port[0]=$(free_port)
  front=127.0.0.1:${node_port[0]}
  node_args=(--tablet-split-size off)
  start_node 0 "$log"
  wait_joined 0 "$log" 1
  "$py" scripts/bench-cluster.py create-table "$front"
  saved_records=$records
  records=$split_records
  ycsb "split-r$r-load" "$front" load 32
  kill "${node_pid[0]}"
  stop_pid "${node_pid[0]}" 60
  du -sb "$store_dir/tablets" | cut -f1 >"$out/split-r$r.bytes"
  node_args=(--tablet-split-size "$split_size")
  start_node 0 "$log"
  wait_joined 0 "$log" 2
  ycsb "split-r$r-a" "$front" a "$failover_threads" "$split_ops" &
  load_pid=$!
  for ((k = 0; k < 3000; k++)); do
    grep -qs "split done in" "$log" && break
    sleep 0.1
  done
  grep -qs "split done in" "$log" || echo "bench-cluster.sh: split round $r: no split within 300 s; see $log" >&2
  wait "$load_pid" || true
  load_pid=
  records=$saved_records
  node_args=()
  stop_cluster
done

for ((r = 1; r <= merge_rounds; r++)); do
  echo "== merge $r/$merge_rounds: $merge_records rows in two tablets, merged under a YCSB A load" >&2
  fresh_work
  log=$out/merge-r$r.s0.log
  start_etcd "$out/merge-r$r.etcd.log"
  node_port[0]=$(free_port)
  front=127.0.0.1:${node_port[0]}
  node_args=(--tablet-split-size off --tablet-merge-size off)
  start_node 0 "$log"
  wait_joined 0 "$log" 1
  "$py" scripts/bench-cluster.py create-table "$front" user5
  saved_records=$records
  records=$merge_records
  ycsb "merge-r$r-load" "$front" load 32
  kill "${node_pid[0]}"
  stop_pid "${node_pid[0]}" 60
  du -sb "$store_dir/tablets" | cut -f1 >"$out/merge-r$r.bytes"
  node_args=(--tablet-split-size off --tablet-merge-size 1GiB --tablet-merge-delay-secs 1)
  start_node 0 "$log"
  wait_joined 0 "$log" 2
  ycsb "merge-r$r-a" "$front" a "$failover_threads" "$split_ops" &
  load_pid=$!
  for ((k = 0; k < 3000; k++)); do
    grep -qs "merge done in" "$log" && break
    sleep 0.1
  done
  grep -qs "merge done in" "$log" || echo "bench-cluster.sh: merge round $r: no merge within 300 s; see $log" >&2
  wait "$load_pid" || true
  load_pid=
  records=$saved_records
  node_args=()
  stop_cluster
done

python3 - "$out" "$records" "$operations" <<'PY' | tee "$out/summary.md"
import json, os, re, statistics, sys
d, records, operations = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
from datetime import datetime
ts = lambda line: datetime.fromisoformat(line.split()[0].replace("Z", "+00:00")).timestamp()
def secs(text):  # "123.4ms" / "1.2s" / "56µs"
    m = re.match(r"([0-9.]+)(ms|s|µs)", text)
    return float(m[1]) * {"ms": 1e-3, "s": 1, "µs": 1e-6}[m[2]]
systems = ["standalone", "cluster"]
print(open(os.path.join(d, "setup.txt")).read())
runs = {}
for f in sorted(os.listdir(d)):
    m = re.match(r"^(standalone|cluster)-t(\d+)-r(\d+)\.json$", f)
    if not m:
        continue
    for p in json.load(open(os.path.join(d, f)))["phases"]:
        runs.setdefault((int(m[2]), p["workload"]), {}).setdefault(m[1], []).append(p)
med = lambda xs: statistics.median(xs) if xs else float("nan")
print("| in flight | phase | standalone ops/s | cluster ops/s | cluster / standalone "
      "| standalone p99 ms | cluster p99 ms | cluster / standalone p99 | runs | errors+missing |")
print("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|")
order = ["load", "a", "c"]
for (t, phase) in sorted(runs, key=lambda k: (k[0], order.index(k[1]))):
    v = runs[(t, phase)]
    ops = {s: med([p["ops_per_sec"] for p in v.get(s, [])]) for s in systems}
    p99 = {s: med([p["latency"]["all"]["p99_us"] / 1000 for p in v.get(s, []) if "all" in p["latency"]]) for s in systems}
    n = "/".join(str(len(v.get(s, []))) for s in systems)
    bad = "/".join(str(sum(p["errors"] + p["missing"] for p in v.get(s, []))) for s in systems)
    print(f"| {t} | {phase} | {ops['standalone']:,.0f} | {ops['cluster']:,.0f} | "
          f"{ops['cluster'] / ops['standalone']:.2f} | {p99['standalone']:.1f} | {p99['cluster']:.1f} | "
          f"{p99['cluster'] / p99['standalone']:.2f} | {n} | {bad} |")
print()
noise = [tuple(map(float, l.split())) for l in open(os.path.join(d, "noise.log")) if len(l.split()) == 3]
print("| system | in flight | round | load avg (1 min) before / after | rustc running (share of 2 s samples) | store objects after | store MB after |")
print("|---|---:|---:|---|---:|---:|---:|")
for f in sorted(os.listdir(d)):
    m = re.match(r"^(standalone|cluster)-t(\d+)-r(\d+)\.store$", f)
    if m:
        objs, size = open(os.path.join(d, f)).read().split()
        t0, la0, t1, la1 = open(os.path.join(d, f[:-len("store")] + "loadavg")).read().split()
        during = [n for n in noise if float(t0) <= n[0] <= float(t1)]
        busy = f"{sum(1 for n in during if n[2] > 0) / len(during):.0%}" if during else "–"
        print(f"| {m[1]} | {m[2]} | {m[3]} | {la0} / {la1} | {busy} | {int(objs):,} | {int(size) / 1e6:,.1f} |")
path = os.path.join(d, "failover.jsonl")
if os.path.exists(path):
    kills = [json.loads(l) for l in open(path) if l.strip()]
    print()
    print("| kill | victim | was master | tablets | all read again s | first s | rows missing | restart to joined s | restart to balanced s |")
    print("|---:|---|---|---:|---:|---:|---:|---:|---:|")
    for k in kills:
        print(f"| {k['kill']} | {k['victim']} | {'yes' if k['was_master'] else 'no'} | {k['tablets']} | "
              f"{k['all_s'] if k['all_s'] is not None else 'never'} | {k['first_s']} | {k['missing']} | "
              f"{k['rejoined_s']:.2f} | {k['balanced_s']:.2f} |")
    alls = [k["all_s"] for k in kills if k["all_s"] is not None]
    if alls:
        print()
        print(f"failover, kill -9 to every tablet of the killed server read through s0: "
              f"median {statistics.median(alls):.2f} s, max {max(alls):.2f} s over {len(alls)} kills"
              + (f" ({len(kills) - len(alls)} never served again)" if len(alls) < len(kills) else ""))
        m = [k["all_s"] for k in kills if k["all_s"] is not None and k["was_master"]]
        o = [k["all_s"] for k in kills if k["all_s"] is not None and not k["was_master"]]
        if m and o:
            print(f"  the master killed: median {statistics.median(m):.2f} s ({len(m)} kills); "
                  f"another server: median {statistics.median(o):.2f} s ({len(o)} kills)")
        elected = [k["elected_s"] for k in kills if k.get("elected_s") is not None]
        if elected:
            print(f"master failover, kill -9 of the master to another server elected: "
                  f"median {statistics.median(elected):.2f} s, max {max(elected):.2f} s over {len(elected)} kills; "
                  f"to its tablets read again: median {statistics.median(m):.2f} s, max {max(m):.2f} s")
    load = []
    for f in sorted(os.listdir(d)):
        if re.match(r"^failover-a-\d+\.json$", f):
            load += json.load(open(os.path.join(d, f)))["phases"]
    if load:
        ops = sum(p["ops"] for p in load)
        secs = sum(p["seconds"] for p in load)
        bad = sum(p["errors"] + p["missing"] for p in load)
        worst = max(p["latency"]["all"]["max_us"] for p in load if "all" in p["latency"]) / 1e6
        w = [float(x) for x in open(os.path.join(d, "failover.window")).read().split()]
        t0, t1 = w[0], (w[1] if len(w) > 1 else float("inf"))
        during = [n for n in noise if t0 <= n[0] <= t1]
        if during:
            print(f"rustc running during the kills: {sum(1 for n in during if n[2] > 0) / len(during):.0%} of 2 s samples")
        print(f"load during failover: {len(load)} YCSB A runs, {ops:,} operations, {ops / secs:,.0f} ops/s, "
              f"{bad} errors+missing, slowest request {worst:.2f} s")
path = os.path.join(d, "split-r1.s0.log")
if os.path.exists(path):
    print()
    print("| round | tablet MB in store | copied while serving | copied after closing | closed and copied s | close to both children serving s | recorded to replaced s | load errors | load p99 ms | slowest request s |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    unavail = []
    r = 1
    while os.path.exists(os.path.join(d, f"split-r{r}.s0.log")):
        lines = open(os.path.join(d, f"split-r{r}.s0.log")).read().splitlines()
        ready = next((l for l in lines if "split ready:" in l), None)
        done = next((l for l in lines if "split done in" in l), None)
        row = [str(r), f"{int(open(os.path.join(d, f'split-r{r}.bytes')).read()) / 1e6:,.0f}"]
        if ready and done:
            m = re.search(r"(\d+) objects copied while serving, (\d+) after closing; closed and copied in (\S+)", ready)
            closed_at = ts(ready) - secs(m[3])
            kids = re.search(r"left=(\d+) right=(\d+)", done)
            opened = [ts(l) for l in lines if "serving tablet" in l and ts(l) >= closed_at
                      and any(f"tablet={k}" in l for k in kids.groups())]
            served = max(opened) - closed_at if len(opened) >= 2 else float("nan")
            unavail.append(served)
            whole = secs(re.search(r"split done in (\S+);", done)[1])
            row += [m[1], m[2], f"{secs(m[3]):.3f}", f"{served:.3f}", f"{whole:.2f}"]
        else:
            row += ["–"] * 5
        phases = json.load(open(os.path.join(d, f"split-r{r}-a.json")))["phases"] if os.path.exists(os.path.join(d, f"split-r{r}-a.json")) else []
        row += [str(sum(p["errors"] + p["missing"] for p in phases)),
                f"{max((p['latency']['all']['p99_us'] for p in phases if 'all' in p['latency']), default=0) / 1000:.1f}",
                f"{max((p['latency']['all']['max_us'] for p in phases if 'all' in p['latency']), default=0) / 1e6:.3f}"]
        print("| " + " | ".join(row) + " |")
        r += 1
    ok = [u for u in unavail if u == u]
    if ok:
        print()
        print(f"split under load, close to both children serving: median {statistics.median(ok):.3f} s, max {max(ok):.3f} s over {len(ok)} splits")
path = os.path.join(d, "merge-r1.s0.log")
if os.path.exists(path):
    print()
    print("| round | tablets MB in store | copied while serving | tables ingested | closed and built s | close to merged serving s | recorded to replaced s | load errors | load p99 ms | slowest request s |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    unavail = []
    r = 1
    while os.path.exists(os.path.join(d, f"merge-r{r}.s0.log")):
        lines = open(os.path.join(d, f"merge-r{r}.s0.log")).read().splitlines()
        ready = next((l for l in lines if "merge ready:" in l), None)
        done = next((l for l in lines if "merge done in" in l), None)
        row = [str(r), f"{int(open(os.path.join(d, f'merge-r{r}.bytes')).read()) / 1e6:,.0f}"]
        if ready and done:
            m = re.search(r"(\d+) objects copied while serving; (\d+) tables .* closed and built in (\S+)", ready)
            closed_at = ts(ready) - secs(m[3])
            merged = re.search(r"merged=(\d+)", done)[1]
            opened = [ts(l) for l in lines if "serving tablet" in l and ts(l) >= closed_at and f"tablet={merged} " in l + " "]
            served = min(opened) - closed_at if opened else float("nan")
            unavail.append(served)
            whole = secs(re.search(r"merge done in (\S+);", done)[1])
            row += [m[1], m[2], f"{secs(m[3]):.3f}", f"{served:.3f}", f"{whole:.2f}"]
        else:
            row += ["–"] * 5
        phases = json.load(open(os.path.join(d, f"merge-r{r}-a.json")))["phases"] if os.path.exists(os.path.join(d, f"merge-r{r}-a.json")) else []
        row += [str(sum(p["errors"] + p["missing"] for p in phases)),
                f"{max((p['latency']['all']['p99_us'] for p in phases if 'all' in p['latency']), default=0) / 1000:.1f}",
                f"{max((p['latency']['all']['max_us'] for p in phases if 'all' in p['latency']), default=0) / 1e6:.3f}"]
        print("| " + " | ".join(row) + " |")
        r += 1
    ok = [u for u in unavail if u == u]
    if ok:
        print()
        print(f"merge under load, close to the merged tablet serving: median {statistics.median(ok):.3f} s, max {max(ok):.3f} s over {len(ok)} merges")
PY
