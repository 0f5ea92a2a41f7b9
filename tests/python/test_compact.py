"""`strata compact TABLE` against the server under test: one process, or
(STRATA_TEST_CLUSTER) a cluster, where every owner compacts its tablets of
the table. A table split in two, written in both halves and flushed in
pieces, ends with one file per tablet, and reads back the newest versions."""

import os
import re
import subprocess
from pathlib import Path

import pytest
from google.cloud.bigtable.data import ReadRowsQuery, SetCell

from conftest import REPO_ROOT


def _strata() -> Path:
    return Path(os.environ.get("STRATA_BIN", REPO_ROOT / "target" / "debug" / "strata"))


def _compact(server, table: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(_strata()), "compact", table, "--server", server.host],
                          capture_output=True, text=True, timeout=300)


def test_compact_leaves_one_file_per_tablet(server, make_table, data_table_of):
    if server.proc is None:
        pytest.skip("the server under test was not started by this suite")
    legacy = make_table(families={"cf": None}, splits=[b"m"])
    table = data_table_of(legacy)
    for version in range(3):
        for row in (b"a", b"b", b"x", b"y"):
            table.mutate_row(row, [SetCell("cf", b"q", f"v{version}".encode(),
                                           timestamp_micros=1000)])
        # A compaction of each version's rows flushes them: files pile up.
        done = _compact(server, legacy.name)
        assert done.returncode == 0, done.stderr
    out = done.stdout.strip()
    m = re.search(r"in (\d+) files? after", out)
    assert m, out
    assert int(m.group(1)) == 2, out  # one file per tablet
    rows = {r.row_key: r.cells[0].value for r in table.read_rows(ReadRowsQuery())}
    assert rows == {b"a": b"v2", b"b": b"v2", b"x": b"v2", b"y": b"v2"}, rows


def test_compact_of_an_unknown_table_is_not_found(server):
    if server.proc is None:
        pytest.skip("the server under test was not started by this suite")
    done = _compact(server, "projects/strata-test/instances/test/tables/no-such-table")
    assert done.returncode != 0
    assert "NotFound" in done.stderr, done.stderr
