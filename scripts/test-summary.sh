#!/usr/bin/env bash
# Sums up a run of scripts/test.sh from its logs: one line for cargo test
# (the `test result:` lines of every test binary and doc-test run added up)
# and pytest's own summary line for each pytest log (the suite on local
# disk, then on an S3-compatible object store, then through one server of
# a three-server cluster).
#
#   ./scripts/test-summary.sh CARGO_TEST_LOG PYTEST_LOG [PYTEST_S3_LOG [PYTEST_CLUSTER_LOG]]
set -euo pipefail
cargo_log="$1"

# Colour codes, in case a tool wrote them.
plain() { sed -e $'s/\x1b\\[[0-9;]*m//g' "$1" 2>/dev/null || true; }

plain "$cargo_log" | awk '
    /^test result: / {
        runs++
        for (i = 3; i < NF; i++) {
            n = $i + 0; w = $(i + 1); sub(/[;,]$/, "", w)
            if (w == "passed") passed += n
            else if (w == "failed") failed += n
            else if (w == "ignored") ignored += n
        }
    }
    END {
        if (runs == 0) print "cargo test: no test results (did it build?)"
        else printf "cargo test: %d passed, %d failed, %d ignored (%d test binaries and doc-test runs)\n", passed, failed, ignored, runs
    }'

pytest_line() { # LOG LABEL
    local line
    line="$(plain "$1" \
        | grep -E '^=* ?[0-9]+ (passed|failed|errors?|skipped|deselected|xfailed|xpassed)\b.* in [0-9.]+s' \
        | tail -n 1 | sed -E 's/^=+ //; s/ =+$//' || true)"
    if [[ -z "$line" ]]; then
        line="$(plain "$1" | grep -E '^=* ?no tests ran' | tail -n 1 | sed -E 's/^=+ //; s/ =+$//' || true)"
    fi
    echo "$2${line:-no summary (did it run?)}"
}
pytest_line "$2" "pytest:     "
if [[ $# -ge 3 ]]; then
    pytest_line "$3" "pytest, S3: "
fi
if [[ $# -ge 4 ]]; then
    pytest_line "$4" "pytest, a three-server cluster: "
fi
