#!/usr/bin/env bash
# Runs every check CI runs: formatting, lints, and the whole test suite.
# Works on a fresh machine with a Rust toolchain: cargo fetches what it needs.
set -euo pipefail
cd "$(dirname "$0")/.."
echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings
echo "== cargo test"
cargo test --workspace
echo "== Python client tests (google-cloud-bigtable against strata serve)"
cargo build -p strata
STRATA_BIN="${CARGO_TARGET_DIR:-target}/debug/strata" ./scripts/test-python.sh -q
