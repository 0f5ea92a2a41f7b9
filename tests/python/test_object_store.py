"""Strata on an object store, end to end with the real client: a server killed
with SIGKILL and replaced by a fresh one on an empty local directory keeps every
acknowledged write; a second server on the same storage fences the first, which
answers UNAVAILABLE from then on.

Each test runs on three stores, each an emulator on a free loopback port: s3://
on moto's server, az:// on Azurite (skipped when azurite-blob is not installed),
gs:// on fake-gcs-server behind gcs_xml_shim (skipped when it is not installed;
see gcs_xml_shim for what that covers). scripts/test-python.sh installs all three.

These tests start their own servers (the emulators and strata), so they run only
when the suite starts the server itself (not with STRATA_TEST_HOST)."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from conftest import (
    REPO_ROOT,
    EmulatorUnavailable,
    _free_port,
    _stop,
    start_azurite,
    start_fake_gcs,
    start_moto,
)

pytestmark = [
    pytest.mark.strata_only,
    pytest.mark.skipif(
        bool(os.environ.get("STRATA_TEST_HOST", "").strip()),
        reason="starts its own servers",
    ),
]

PROJECT = "strata-test"
INSTANCE = "objects"
BUCKET = "strata-e2e"
FAMILY = "cf"


@pytest.fixture(scope="module", params=["s3", "az", "gs"])
def store(request, tmp_path_factory):
    """An emulated object store with bucket (or container) BUCKET; yields its URL
    scheme and the environment a strata server needs."""
    scheme = request.param
    tmp = tmp_path_factory.mktemp(scheme)
    stop = []
    try:
        if scheme == "s3":
            proc, env = start_moto(tmp, [BUCKET])
        elif scheme == "az":
            proc, env = start_azurite(tmp, [BUCKET])
        else:
            proc, shim, env = start_fake_gcs(tmp, [BUCKET])
            stop.append(shim.shutdown)
    except EmulatorUnavailable as e:
        pytest.skip(str(e))
    stop.append(lambda: _stop(proc))
    yield scheme, env
    for s in stop:
        s()


class Strata:
    """One `strata serve --storage` process."""

    def __init__(self, storage: str, data_dir: Path, env: dict, args=()):
        bin_path = Path(os.environ.get("STRATA_BIN", REPO_ROOT / "target" / "debug" / "strata"))
        self.port = _free_port()
        self.host = f"127.0.0.1:{self.port}"
        self.data_dir = data_dir
        self.log_path = data_dir.parent / f"strata-{self.port}.log"
        log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [str(bin_path), "serve", "--storage", storage, "--data-dir", str(data_dir),
             "--listen", self.host, *args],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **env},
        )
        log.close()
        deadline = time.monotonic() + 60
        while "serving the Bigtable API" not in self.log():
            assert self.proc.poll() is None, f"strata exited:\n{self.log()}"
            assert time.monotonic() < deadline, f"strata did not start:\n{self.log()}"
            time.sleep(0.05)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def kill9(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self):
        _stop(self.proc)


@pytest.fixture
def servers(tmp_path):
    started = []

    def start(storage: str, env: dict, name: str, args=()) -> Strata:
        s = Strata(storage, tmp_path / name, env, args)
        started.append(s)
        return s

    yield start
    for s in started:
        if s.proc.poll() is None:
            s.kill9()


def clients(host: str, monkeypatch):
    from google.cloud import bigtable
    from google.cloud.bigtable.data import BigtableDataClient

    monkeypatch.setenv("BIGTABLE_EMULATOR_HOST", host)
    return BigtableDataClient(project=PROJECT), bigtable.Client(project=PROJECT, admin=True)


def row_key(i: int) -> bytes:
    return b"row%06d" % i


def test_a_fresh_server_after_sigkill_has_every_acknowledged_write(store, servers, monkeypatch):
    from google.cloud.bigtable import column_family
    from google.cloud.bigtable.data import RowMutationEntry, SetCell

    scheme, env = store
    storage = f"{scheme}://{BUCKET}/restart"
    first = servers(storage, env, "first")
    data, admin = clients(first.host, monkeypatch)
    table = admin.instance(INSTANCE).table("t")
    table.create(column_families={FAMILY: column_family.MaxVersionsGCRule(1)}, initial_split_keys=[b"row000500"])
    dtable = data.get_table(INSTANCE, "t")
    for start in range(0, 1000, 100):
        dtable.bulk_mutate_rows(
            [RowMutationEntry(row_key(i), [SetCell(FAMILY, b"q", b"v%d" % i)]) for i in range(start, start + 100)]
        )
    dtable.mutate_row(row_key(1000), SetCell(FAMILY, b"q", b"last"))
    data.close()
    admin.close()
    first.kill9()
    shutil.rmtree(first.data_dir)  # the local directory is only a cache

    second = servers(storage, env, "second")
    data, admin = clients(second.host, monkeypatch)
    assert [t.table_id for t in admin.instance(INSTANCE).list_tables()] == ["t"]
    families = admin.instance(INSTANCE).table("t").list_column_families()
    assert list(families) == [FAMILY]
    rows = list(data.get_table(INSTANCE, "t").read_rows(_query()))
    assert len(rows) == 1001
    assert {r.row_key: r.cells[0].value for r in rows} == {
        **{row_key(i): b"v%d" % i for i in range(1000)},
        row_key(1000): b"last",
    }
    data.close()
    admin.close()
    log = second.log()
    assert "as owner epoch 2" in log, log


def _query():
    from google.cloud.bigtable.data import ReadRowsQuery

    return ReadRowsQuery()


def test_a_second_server_fences_the_first(store, servers, monkeypatch):
    from google.api_core import exceptions
    from google.cloud.bigtable import column_family
    from google.cloud.bigtable.data import SetCell

    scheme, env = store
    storage = f"{scheme}://{BUCKET}/fencing"
    first = servers(storage, env, "first")
    data1, admin1 = clients(first.host, monkeypatch)
    admin1.instance(INSTANCE).table("t").create(column_families={FAMILY: column_family.MaxVersionsGCRule(1)})
    t1 = data1.get_table(INSTANCE, "t")
    for i in range(50):
        t1.mutate_row(row_key(i), SetCell(FAMILY, b"q", b"first"))

    second = servers(storage, env, "second")
    data2, admin2 = clients(second.host, monkeypatch)
    t2 = data2.get_table(INSTANCE, "t")

    # The first server can no longer acknowledge a write: UNAVAILABLE.
    with pytest.raises(exceptions.ServiceUnavailable) as e:
        t1.mutate_row(row_key(999), SetCell(FAMILY, b"q", b"zombie"), retryable_errors=())
    assert "taken over" in str(e.value), e.value
    assert "no longer owns its storage" in first.log()

    rows = list(t2.read_rows(_query()))
    assert {r.row_key for r in rows} == {row_key(i) for i in range(50)}
    t2.mutate_row(row_key(50), SetCell(FAMILY, b"q", b"second"))
    assert t2.read_row(row_key(50)).cells[0].value == b"second"
    for c in (data1, admin1, data2, admin2):
        c.close()


def test_tables_flushed_to_the_store_are_read_by_a_fresh_server(store, servers, monkeypatch):
    """Past a small memtable budget the first server writes SSTables (and compacts
    and deletes them); the second reads them from the store into its empty cache."""
    from google.cloud.bigtable import column_family
    from google.cloud.bigtable.data import RowMutationEntry, SetCell

    scheme, env = store
    storage = f"{scheme}://{BUCKET}/tables"
    first = servers(storage, env, "first", ["--memtable-budget", "1MiB"])
    data, admin = clients(first.host, monkeypatch)
    admin.instance(INSTANCE).table("t").create(column_families={FAMILY: column_family.MaxVersionsGCRule(1)})
    t = data.get_table(INSTANCE, "t")
    n = 4000

    def value(i: int, rnd: int) -> bytes:
        return (b"%d.%d|" % (i, rnd)) * 100  # about 1 KiB

    for rnd in range(2):  # every row twice: the second round shadows the first
        for start in range(0, n, 500):
            t.bulk_mutate_rows(
                [RowMutationEntry(row_key(i), [SetCell(FAMILY, b"q", value(i, rnd))])
                 for i in range(start, start + 500)]
            )
    data.close()
    admin.close()
    assert list(first.data_dir.glob("*.sst")), "no table was flushed"
    first.kill9()
    shutil.rmtree(first.data_dir)

    second = servers(storage, env, "second")
    data, _ = clients(second.host, monkeypatch)
    rows = list(data.get_table(INSTANCE, "t").read_rows(_query()))
    assert len(rows) == n
    assert all(r.cells[0].value == value(int(r.row_key[3:]), 1) for r in rows)
    data.close()
    replayed = re.search(r"(\d+) ops replayed", second.log())
    assert replayed and int(replayed.group(1)) < n, second.log()  # the rest came from tables
