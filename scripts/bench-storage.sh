#!/usr/bin/env bash
# strata serve on local disk against strata serve on an S3-compatible object
# store (moto's server on this machine, or s3s-fs's), same binary, same client,
# alternated (local, s3, local, s3, ...), each run on fresh storage:
#   1. YCSB load, A, C (uniform) at THREADS in flight;
#   2. the server stopped (its stop line counts the store's requests);
#   3. a fresh server on the same storage with an empty --data-dir (for s3:
#      nothing local at all): the time from its start to serving, then C
#      twice: cold (tables fetched from the store), then warm.
# Prints per (system, threads, phase) the median ops/s and p99 over the
# rounds, the ratio s3 / local, PUTs per 1,000 acknowledged writes and the
# restart time.
#
# Usage: scripts/bench-storage.sh [ROUNDS] [THREADS...]
#   ROUNDS default 2; THREADS default "16 64"
# Environment: RECORDS (100000), OPERATIONS (100000), BENCH_OUT
#   (bench-results), CARGO_TARGET_DIR, MOTO (moto_server; default the test
#   venv's, target/pyvenv/bin/moto_server: run scripts/test-python.sh once),
#   S3_ARGS (extra flags for the s3 servers), SYSTEMS (default "local s3";
#   also s3-1: s3 with one log upload in flight, --log-uploads 1), and
#   S3_LATENCY_MS: every request to the store delayed by that much
#   (scripts/dev/latency-proxy.py in front of moto), as from a distant store.
#   S3_SERVER: moto (the default) or s3s-fs, the s3s-fs crate's native S3
#   server on a directory in TMPDIR (removed at the end); its binary S3S_FS
#   (default /tmp/s3s/bin/s3s-fs: cargo install s3s-fs --features binary
#   --root /tmp/s3s).
set -euo pipefail
cd "$(dirname "$0")/.."

rounds=${1:-2}
shift || true
threads_list=("$@")
[[ ${#threads_list[@]} -gt 0 ]] || threads_list=(16 64)
read -r -a systems <<<"${SYSTEMS:-local s3}"
records=${RECORDS:-100000}
operations=${OPERATIONS:-100000}
target=${CARGO_TARGET_DIR:-target}
strata=$target/release/strata
bench=$target/release/strata-bench
venv=${STRATA_PYVENV:-target/pyvenv}
moto=${MOTO:-$venv/bin/moto_server}
s3_server=${S3_SERVER:-moto}
s3s_fs=${S3S_FS:-/tmp/s3s/bin/s3s-fs}

die() { echo "bench-storage.sh: $*" >&2; exit 1; }
cargo build --release -q -p strata -p strata-bench
case $s3_server in
  moto) [[ -x $moto ]] || die "no moto_server at $moto (run scripts/test-python.sh once, or set MOTO)" ;;
  s3s-fs) [[ -x $s3s_fs ]] || die "no s3s-fs at $s3s_fs (cargo install s3s-fs --features binary --root /tmp/s3s, or set S3S_FS)" ;;
  *) die "unknown S3_SERVER $s3_server (moto or s3s-fs)" ;;
esac

out=${BENCH_OUT:-bench-results}/storage-$(date +%Y%m%d-%H%M%S)
mkdir -p "$out"
echo "results in $out (commit $(git rev-parse --short HEAD), S3 server $s3_server)" >&2

# shellcheck source=scripts/bench-lib.sh
source scripts/bench-lib.sh

s3_port=$(free_port)
if [[ $s3_server == s3s-fs ]]; then
  s3_root=$(mktemp -d "${TMPDIR:-/tmp}/strata-bench-s3s.XXXXXX")
  mkdir "$s3_root/bench" # a bucket is a directory
  "$s3s_fs" --host 127.0.0.1 --port "$s3_port" --access-key bench --secret-key bench "$s3_root" >"$out/s3s-fs.log" 2>&1 &
else
  "$moto" -H 127.0.0.1 -p "$s3_port" >"$out/moto.log" 2>&1 &
fi
s3_pid=$!
cleanup() {
  stop_server
  kill "$s3_pid" ${proxy_pid:-} 2>/dev/null || true
  wait "$s3_pid" 2>/dev/null || true
  rm -rf "${store_dir:-}" "${cache_dir:-}" "${s3_root:-}"
}
trap cleanup EXIT
export AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench AWS_REGION=us-east-1
export AWS_ENDPOINT_URL=http://127.0.0.1:$s3_port AWS_ALLOW_HTTP=true
for _ in $(seq 100); do
  python3 -c "import socket; socket.create_connection(('127.0.0.1', $s3_port), 1)" 2>/dev/null && break
  sleep 0.1
done
[[ $s3_server == s3s-fs ]] || "$venv/bin/python" -c "
import boto3
boto3.client('s3', endpoint_url='$AWS_ENDPOINT_URL', aws_access_key_id='bench',
             aws_secret_access_key='bench', region_name='us-east-1').create_bucket(Bucket='bench')"
if [[ -n ${S3_LATENCY_MS:-} ]]; then
  proxy_port=$(free_port)
  python3 scripts/dev/latency-proxy.py "$proxy_port" "127.0.0.1:$s3_port" "$S3_LATENCY_MS" &
  proxy_pid=$!
  export AWS_ENDPOINT_URL=http://127.0.0.1:$proxy_port
  echo "store requests delayed by $S3_LATENCY_MS ms" >&2
fi

# serve SYSTEM STORE CACHE LOG: starts a server and waits until it serves;
# sets $port and $serve_ms (start to serving, by the client's clock).
serve() {
  local system=$1 store=$2 cache=$3 log=$4 i started
  port=$(free_port)
  started=$(date +%s%N)
  case $system in
    local) "$strata" serve --data-dir "$store" --listen "127.0.0.1:$port" >"$log" 2>&1 & ;;
    # shellcheck disable=SC2086 # S3_ARGS: extra flags, split on spaces
    s3) "$strata" serve --storage "s3://bench/$store" --data-dir "$cache" --listen "127.0.0.1:$port" ${S3_ARGS:-} >"$log" 2>&1 & ;;
    # shellcheck disable=SC2086
    s3-1) "$strata" serve --storage "s3://bench/$store" --data-dir "$cache" --listen "127.0.0.1:$port" --log-uploads 1 ${S3_ARGS:-} >"$log" 2>&1 & ;;
    *) die "unknown system $system" ;;
  esac
  server_pid=$!
  for ((i = 0; i < 6000; i++)); do
    grep -q 'serving the Bigtable API' "$log" && break
    kill -0 "$server_pid" 2>/dev/null || die "$system exited at startup; see $log"
    sleep 0.01
  done
  serve_ms=$((($(date +%s%N) - started) / 1000000))
}

ycsb() { # NAME WORKLOADS THREADS
  "$bench" ycsb --addr "127.0.0.1:$port" --records "$records" --operations "$operations" \
    --threads "$3" --workloads "$2" --distribution uniform --json "$out/$1.json" >"$out/$1.txt"
}

for ((r = 1; r <= rounds; r++)); do
  for t in "${threads_list[@]}"; do
    for system in "${systems[@]}"; do
      name=$system-t$t-r$r
      echo "== round $r/$rounds, $t in flight, $system" >&2
      store_dir=$(mktemp -d "${TMPDIR:-/tmp}/strata-bench-store.XXXXXX")
      cache_dir=$(mktemp -d "${TMPDIR:-/tmp}/strata-bench-cache.XXXXXX")
      if [[ $system == local ]]; then store=$store_dir; else store=$name; fi
      serve "$system" "$store" "$cache_dir" "$out/$name.server.log"
      ycsb "$name" load,a,c "$t"
      stop_server
      # A fresh server: for s3 on an empty cache directory.
      rm -rf "$cache_dir"
      cache_dir=$(mktemp -d "${TMPDIR:-/tmp}/strata-bench-cache.XXXXXX")
      serve "$system" "$store" "$cache_dir" "$out/$name.restart.log"
      echo "$serve_ms" >"$out/$name.restart_ms"
      ycsb "$name-cold" c "$t"
      ycsb "$name-warm" c "$t"
      stop_server
      rm -rf "$store_dir" "$cache_dir"
    done
  done
done

python3 - "$out" "$records" "$operations" "${systems[*]}" <<'PY' | tee "$out/summary.md"
import json, os, re, statistics, sys
d, records, operations = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
systems = sys.argv[4].split()
base = systems[0]
name_re = r"^(" + "|".join(re.escape(s) for s in systems) + r")-t(\d+)-r(\d+)"
runs = {}
for f in sorted(os.listdir(d)):
    m = re.match(name_re + r"(-cold|-warm)?\.json$", f)
    if not m:
        continue
    for p in json.load(open(os.path.join(d, f)))["phases"]:
        phase = p["workload"] + (m[4] or "")
        runs.setdefault((int(m[2]), phase), {}).setdefault(m[1], []).append(p)
med = lambda xs: statistics.median(xs) if xs else float("nan")
others = systems[1:]
print("| in flight | phase | " + " | ".join(f"{s} ops/s" for s in systems) + " | "
      + " | ".join(f"{s} / {base}" for s in others) + " | "
      + " | ".join(f"{s} p99 ms" for s in systems) + " |")
print("|---:|---|" + "---:|" * (2 * len(systems) + len(others)))
order = ["load", "a", "c", "c-cold", "c-warm"]
for (t, phase) in sorted(runs, key=lambda k: (k[0], order.index(k[1]))):
    v = runs[(t, phase)]
    ops = {s: med([p["ops_per_sec"] for p in v.get(s, [])]) for s in systems}
    p99 = {s: med([p["latency"]["all"]["p99_us"] / 1000 for p in v.get(s, []) if "all" in p["latency"]]) for s in systems}
    print(f"| {t} | {phase} | " + " | ".join(f"{ops[s]:,.0f}" for s in systems) + " | "
          + " | ".join(f"{ops[s] / ops[base]:.2f}" for s in others) + " | "
          + " | ".join(f"{p99[s]:.1f}" for s in systems) + " |")
print()
print("| system | in flight | round | restart to serving ms | PUTs | PUTs per 1,000 writes | PUT MB | GETs |")
print("|---|---:|---:|---:|---:|---:|---:|---:|")
writes = records + operations // 2  # load, and A's updates (half its operations)
for f in sorted(os.listdir(d)):
    m = re.match(name_re + r"\.restart_ms$", f)
    if not m:
        continue
    ms = open(os.path.join(d, f)).read().strip()
    log = open(os.path.join(d, f"{m[1]}-t{m[2]}-r{m[3]}.server.log")).read()
    c = re.search(r"object store: (\d+) PUTs \((\d+) bytes.*?(\d+) GETs", log)
    puts, put_bytes, gets = (int(c[1]), int(c[2]), int(c[3])) if c else (0, 0, 0)
    per = f"{puts * 1000 / writes:.1f}" if c else "–"
    print(f"| {m[1]} | {m[2]} | {m[3]} | {ms} | {puts:,} | {per} | {put_bytes / 1e6:,.1f} | {gets:,} |")
PY
