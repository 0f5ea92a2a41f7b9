"""Fixtures for the Python client suite: drives a Strata server (or any Bigtable
emulator-compatible endpoint) with the real google-cloud-bigtable client.

Target selection:
  * STRATA_TEST_HOST=host:port   use an already-running server (or cbtemulator);
  * otherwise start `$STRATA_BIN serve --data-dir <tmp> --listen 127.0.0.1:<port>`
    (STRATA_BIN defaults to target/debug/strata).
  * STRATA_TEST_STORAGE=s3       the started server keeps its data on an S3-compatible
    object store (moto's server, started too) instead of a local directory;
  * STRATA_TEST_EMULATOR=1       the target is Google's Go emulator: skip tests marked
    `emulator_deviation` (the emulator deviates from Bigtable's documented behaviour)
    and `strata_only` (guarantees Strata makes beyond Bigtable's docs).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import uuid
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
PROJECT = "strata-test"
INSTANCE = "test"
STARTUP_TIMEOUT_S = 30.0
SHUTDOWN_GRACE_S = 10.0


def _truthy(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() not in ("", "0", "false", "no")


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "emulator_deviation: written to Bigtable's docs; Google's Go emulator deviates "
        "(skipped when STRATA_TEST_EMULATOR=1)",
    )
    config.addinivalue_line(
        "markers",
        "strata_only: a guarantee Strata makes beyond Bigtable's docs "
        "(skipped when STRATA_TEST_EMULATOR=1)",
    )


def pytest_collection_modifyitems(config, items):
    if not _truthy("STRATA_TEST_EMULATOR"):
        return
    for item in items:
        if item.get_closest_marker("emulator_deviation"):
            item.add_marker(pytest.mark.skip(reason="emulator deviates from Bigtable docs"))
        elif item.get_closest_marker("strata_only"):
            item.add_marker(pytest.mark.skip(reason="Strata-only guarantee"))


# ---------------------------------------------------------------------------------
# server


class _Server:
    def __init__(self, host: str, proc: subprocess.Popen | None, log_path: Path | None):
        self.host = host
        self.proc = proc
        self.log_path = log_path

    def log_tail(self, lines: int = 80) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        text = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])


_SERVER: _Server | None = None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=SHUTDOWN_GRACE_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


_MOTO: subprocess.Popen | None = None


def start_moto(tmp: Path, buckets: list[str]) -> tuple[subprocess.Popen, dict]:
    """Starts moto's S3 server (installed in the test venv) and creates `buckets`;
    returns the process and the environment a strata server needs to use it."""
    import sys

    import boto3

    port = _free_port()
    log = open(tmp / "moto.log", "wb")
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    log.close()
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while not _port_open("127.0.0.1", port):
        if proc.poll() is not None or time.monotonic() > deadline:
            _stop(proc)
            raise RuntimeError(f"moto_server did not start; see {tmp / 'moto.log'}")
        time.sleep(0.05)
    env = {
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
        "AWS_ALLOW_HTTP": "true",
    }
    s3 = boto3.client(
        "s3",
        endpoint_url=env["AWS_ENDPOINT_URL"],
        aws_access_key_id="test",
        aws_secret_access_key="test",
        region_name="us-east-1",
    )
    for b in buckets:
        s3.create_bucket(Bucket=b)
    return proc, env


def _start_server(tmp: Path) -> _Server:
    bin_path = Path(os.environ.get("STRATA_BIN", REPO_ROOT / "target" / "debug" / "strata"))
    if not bin_path.is_absolute():
        bin_path = REPO_ROOT / bin_path
    if not (bin_path.is_file() and os.access(bin_path, os.X_OK)):
        pytest.exit(
            f"strata binary not found at {bin_path}: run `cargo build -p strata` first "
            "(or set STRATA_BIN, or STRATA_TEST_HOST=host:port for a running server)",
            returncode=2,
        )
    data_dir = tmp / "data"
    data_dir.mkdir()
    log_path = tmp / "server.log"
    port = _free_port()
    listen = f"127.0.0.1:{port}"
    cmd = [str(bin_path), "serve", "--data-dir", str(data_dir), "--listen", listen]
    env = dict(os.environ)
    storage = os.environ.get("STRATA_TEST_STORAGE", "").strip()
    if storage == "s3":
        global _MOTO
        _MOTO, s3_env = start_moto(tmp, ["strata-suite"])
        env.update(s3_env)
        cmd += ["--storage", "s3://strata-suite/suite"]
    elif storage:
        pytest.exit(f"STRATA_TEST_STORAGE={storage!r}: only 's3' is known", returncode=2)
    log = open(log_path, "wb")
    proc = subprocess.Popen(
        cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env
    )
    log.close()
    server = _Server(listen, proc, log_path)
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while True:
        if proc.poll() is not None:
            pytest.exit(
                f"strata server exited with code {proc.returncode} during startup "
                f"({' '.join(cmd)}); log:\n{server.log_tail()}",
                returncode=2,
            )
        if _port_open("127.0.0.1", port):
            return server
        if time.monotonic() > deadline:
            _stop(proc)
            pytest.exit(
                f"strata server did not accept connections on {listen} within "
                f"{STARTUP_TIMEOUT_S:.0f}s ({' '.join(cmd)}); log:\n{server.log_tail()}",
                returncode=2,
            )
        time.sleep(0.05)


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    """The endpoint under test; sets BIGTABLE_EMULATOR_HOST for the client."""
    global _SERVER
    host = os.environ.get("STRATA_TEST_HOST", "").strip()
    if host:
        _SERVER = _Server(host, None, None)
    else:
        _SERVER = _start_server(tmp_path_factory.mktemp("strata"))
    os.environ["BIGTABLE_EMULATOR_HOST"] = _SERVER.host
    yield _SERVER
    if _SERVER.proc is not None:
        _stop(_SERVER.proc)
    if _MOTO is not None:
        _stop(_MOTO)


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    srv = _SERVER
    if srv is None or srv.proc is None:
        return
    code = srv.proc.poll()
    crashed = code not in (None, 0, -signal.SIGTERM)
    if exitstatus != 0 or crashed:
        terminalreporter.section(f"strata server log ({srv.log_path}, exit code {code})")
        terminalreporter.write_line(srv.log_tail(120))


# ---------------------------------------------------------------------------------
# clients and tables


@pytest.fixture(scope="session")
def client(server):
    """Legacy client (google.cloud.bigtable.Client) with admin access."""
    from google.cloud import bigtable

    c = bigtable.Client(project=PROJECT, admin=True)
    yield c
    c.close()


@pytest.fixture(scope="session")
def instance(client):
    return client.instance(INSTANCE)


@pytest.fixture(scope="session")
def data_client(server):
    """The newer data client (google.cloud.bigtable.data.BigtableDataClient)."""
    from google.cloud.bigtable.data import BigtableDataClient

    dc = BigtableDataClient(project=PROJECT)
    yield dc
    dc.close()


def unique_table_id(prefix: str = "t") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def make_table(instance):
    """Factory: make_table(families={name: gc_rule_or_None}, splits=[...]) -> legacy Table.

    Every table it creates is deleted when the test ends."""
    created = []

    def make(families=None, splits=()):
        if families is None:
            families = {"cf1": None, "cf2": None}
        t = instance.table(unique_table_id())
        t.create(initial_split_keys=list(splits), column_families=families)
        created.append(t)
        return t

    yield make
    for t in created:
        try:
            t.delete()
        except Exception:  # noqa: BLE001 - the test may have deleted it already
            pass


@pytest.fixture
def table(make_table):
    """A fresh table with families cf1 and cf2 (no GC rules)."""
    return make_table()


_DATA_TIMEOUTS = dict(
    default_operation_timeout=60,
    default_attempt_timeout=30,
    default_read_rows_operation_timeout=120,
    default_read_rows_attempt_timeout=60,
    default_mutate_rows_operation_timeout=120,
    default_mutate_rows_attempt_timeout=60,
)


@pytest.fixture
def data_table_of(data_client):
    """data_table_of(legacy_table) -> the data-client Table for the same table."""
    opened = []

    def of(legacy_table):
        t = data_client.get_table(INSTANCE, legacy_table.table_id, **_DATA_TIMEOUTS)
        opened.append(t)
        return t

    yield of
    for t in opened:
        t.close()


@pytest.fixture
def dtable(data_table_of, table):
    """The data-client view of the `table` fixture."""
    return data_table_of(table)
