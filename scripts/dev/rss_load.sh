#!/usr/bin/env bash
# Peak RSS of `strata serve` over one YCSB load: starts a fresh server with
# --tablet-split-size SPLIT (and any VAR=VALUE environment given after it,
# e.g. MALLOC_MMAP_THRESHOLD_=524288), loads RECORDS rows (1000000) with 64
# requests in flight, then prints the load line, the peak RSS (VmHWM) and
# `strata tablets`' total line. Behind the memory figures of
# docs/benchmarks.md ("Tablets") and of `release_large_frees_to_the_os`.
#
# Usage: scripts/dev/rss_load.sh SPLIT [VAR=VALUE ...]   (after
#   cargo build --release -p strata -p strata-bench)
set -euo pipefail
cd "$(dirname "$0")/../.."
split=${1:?usage: rss_load.sh SPLIT [VAR=VALUE ...]}
shift
records=${RECORDS:-1000000}
target=${CARGO_TARGET_DIR:-target}
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
dir=$(mktemp -d "${TMPDIR:-/tmp}/strata-rss.XXXXXX")
env "$@" "$target/release/strata" serve --data-dir "$dir" --listen "127.0.0.1:$port" \
  --tablet-split-size "$split" >"$dir.log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null || true; wait $pid 2>/dev/null || true; rm -rf "$dir"' EXIT
"$target/release/strata-bench" ycsb --addr "127.0.0.1:$port" --records "$records" --threads 64 \
  --workloads load --project strata-bench --instance bench | grep "^load  -        all"
echo "split=$split env=$* peak_rss_kib=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status")"
"$target/release/strata" tablets usertable --server "127.0.0.1:$port" \
  --project strata-bench --instance bench | tail -n 1
