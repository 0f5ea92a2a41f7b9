#!/usr/bin/env bash
# Runs the Python client test suite (tests/python) with the real google-cloud-bigtable
# client against a Strata server.
#
#   ./scripts/test-python.sh [pytest args...]
#
# By default each run starts its own server from $STRATA_BIN (default target/debug/strata;
# build it with `cargo build -p strata`). To test an already-running server or the Go
# emulator instead, set STRATA_TEST_HOST=host:port (and STRATA_TEST_SKIP_EMULATOR_DEVIATIONS=1
# for the emulator, which skips tests marked `emulator_deviation`).
# Needs python3 (>= 3.10; PYTHON names another) with the venv module (Debian/Ubuntu:
# apt-get install python3-venv); the virtualenv lives in target/pyvenv (STRATA_PYVENV
# names another) and is rebuilt when tests/python/requirements.txt changes.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"

REQ="tests/python/requirements.txt"
VENV="${STRATA_PYVENV:-target/pyvenv}"
PYTHON="${PYTHON:-python3}"

if [[ -z "${STRATA_TEST_HOST:-}" ]]; then
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

export PYTHONDONTWRITEBYTECODE=1
exec "$VENV/bin/python" -m pytest -q -o cache_dir="$ROOT/target/pytest-cache" tests/python "$@"
