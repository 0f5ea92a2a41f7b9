#!/usr/bin/env bash
# Reproduces the engine benchmarks of docs/benchmarks.md: strata against
# fjall (and RocksDB when built with --features rocksdb, which needs
# libclang-dev and ~20 minutes of compiling), engines alternated per round.
# Usage: scripts/bench-engine.sh [ENGINES] [ROUNDS]
#   e.g. scripts/bench-engine.sh strata,fjall,rocksdb 2
set -euo pipefail
cd "$(dirname "$0")/.."
engines=${1:-strata,fjall}
rounds=${2:-2}
features=()
if [[ $engines == *rocksdb* ]]; then features=(--features rocksdb); fi
cargo build --release -p strata-bench "${features[@]}"
bench=${CARGO_TARGET_DIR:-target}/release/strata-bench
out=${BENCH_OUT:-bench-results}
mkdir -p "$out"
# A: N = 1,000,000, db_bench defaults (8 MiB cache: the data set is ~8x the cache).
"$bench" engine --engines "$engines" --num 1000000 --rounds "$rounds" | tee "$out/engine-1m.txt"
# B: a data set far larger than the block cache: 2M keys (~140 MiB on disk)
#    against the 8 MiB cache (~17x), read-heavy workloads.
"$bench" engine --engines "$engines" --num 2000000 --rounds "$rounds" \
  --workloads fillrandom,readrandom,readseq,seekrandom,readwhilewriting | tee "$out/engine-2m.txt"
