"""What an operator sees (docs/observability.md): Prometheus metrics that move by
what a load through the real client implies, the probes, the gRPC health service
and the status page."""

from __future__ import annotations

import urllib.error
import urllib.request

import grpc
import pytest
from google.api_core import exceptions
from google.cloud.bigtable.data import ReadRowsQuery, RowMutationEntry, SetCell
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client.parser import text_string_to_metric_families

from conftest import INSTANCE, PROJECT, unique_table_id

BIGTABLE = "google.bigtable.v2.Bigtable"


@pytest.fixture
def http(server):
    if not server.http:
        pytest.skip("the server under test was not started by this suite (no HTTP address)")
    return server.http


def get(addr: str, path: str) -> tuple[int, str, str]:
    """(status, content type, body) of GET http://addr/path."""
    try:
        with urllib.request.urlopen(f"http://{addr}{path}", timeout=30) as r:
            return r.status, r.headers.get("Content-Type", ""), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type", ""), e.read().decode()


def scrape(http: list[str]) -> dict[tuple[str, frozenset], float]:
    """Every sample of every server, summed over the servers, by (name, labels).
    Parsing with the Prometheus client's parser checks the exposition format."""
    out: dict[tuple[str, frozenset], float] = {}
    for addr in http:
        status, ctype, text = get(addr, "/metrics")
        assert status == 200, text
        assert ctype.startswith("text/plain; version=0.0.4"), ctype
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                key = (s.name, frozenset(s.labels.items()))
                out[key] = out.get(key, 0.0) + s.value
    return out


def value(samples, name: str, **labels) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def rpc(samples, name: str, method: str, **labels) -> float:
    return value(samples, name, grpc_service=BIGTABLE, grpc_method=method, **labels)


def test_metrics_move_by_what_a_load_implies(http, instance, make_table, data_table_of):
    legacy = make_table(families={"cf": None})
    table = data_table_of(legacy)
    name = f"projects/{PROJECT}/instances/{INSTANCE}/tables/{legacy.table_id}"
    # RPCs as the client's server saw them (on a cluster, a part it forwards
    # is an RPC on the owner too); table counters where the rows were
    # applied, summed over every server.
    before, rpcs_before = scrape(http), scrape(http[:1])

    for i in range(7):
        table.mutate_row(f"r{i}".encode(), [SetCell("cf", b"q", b"x" * 10)])
    table.bulk_mutate_rows(
        [RowMutationEntry(f"s{i}".encode(), [SetCell("cf", b"q", b"y")]) for i in range(5)]
    )
    rows = table.read_rows(ReadRowsQuery())
    assert len(rows) == 12
    missing = data_table_of(instance.table(unique_table_id("missing")))
    with pytest.raises(exceptions.NotFound):
        missing.read_rows(ReadRowsQuery())

    after, rpcs_after = scrape(http), scrape(http[:1])

    def delta(fn, *args, **labels):
        return fn(after, *args, **labels) - fn(before, *args, **labels)

    def rpc_delta(name, method, **labels):
        return rpc(rpcs_after, name, method, **labels) - rpc(rpcs_before, name, method, **labels)

    assert rpc_delta("grpc_server_started_total", "MutateRow") == 7
    assert rpc_delta("grpc_server_handled_total", "MutateRow", grpc_code="OK") == 7
    assert rpc_delta("grpc_server_handled_total", "MutateRows", grpc_code="OK") == 1
    assert rpc_delta("grpc_server_handled_total", "ReadRows", grpc_code="OK") == 1
    assert rpc_delta("grpc_server_handled_total", "ReadRows", grpc_code="NotFound") == 1
    # The latency histogram counted every MutateRow, in its +Inf bucket too.
    assert rpc_delta("grpc_server_handling_seconds_count", "MutateRow") == 7
    assert rpc_delta("grpc_server_handling_seconds_bucket", "MutateRow", le="+Inf") == 7

    assert delta(value, "strata_table_rows_written_total", table=name) == 12
    assert delta(value, "strata_table_rows_read_total", table=name) == 12
    assert delta(value, "strata_table_written_bytes_total", table=name) > 12 * 10
    assert delta(value, "strata_table_read_bytes_total", table=name) > 12 * 2
    # A table that does not exist gets no series.
    assert not any("missing-" in dict(labels).get("table", "") for (_, labels) in after)

    # Every data request ran somewhere: on its serving thread or on the
    # blocking pool (summed over the servers that applied them).
    def ran(rpc_name):
        return sum(
            delta(value, "strata_data_requests_total", rpc=rpc_name, path=path)
            for path in ("in_place", "blocking_pool")
        )

    assert ran("MutateRow") == 7
    assert ran("MutateRows") >= 1
    assert ran("ReadRows") >= 1
    # One row at a time, nothing waits for a lock: the writes ran in place.
    assert delta(value, "strata_data_requests_total", rpc="MutateRow", path="in_place") == 7


@pytest.mark.not_on_cluster("a cluster server has no one engine: its tablets are engines of their own")
def test_engine_and_table_metrics(http, make_table, data_table_of):
    legacy = make_table(families={"cf": None}, splits=[b"m"])
    table = data_table_of(legacy)
    name = f"projects/{PROJECT}/instances/{INSTANCE}/tables/{legacy.table_id}"
    before = scrape(http)
    table.mutate_row(b"a", [SetCell("cf", b"q", b"v")])
    after = scrape(http)
    assert value(after, "strata_ready") == 1
    assert value(after, "strata_table_tablets", table=name) == 2
    assert value(after, "strata_memtable_bytes", state="active") > 0
    assert value(after, "strata_memtable_budget_bytes") > 0
    assert value(after, "strata_commit_groups_total") > value(before, "strata_commit_groups_total")
    assert value(after, "strata_user_written_bytes_total") > value(
        before, "strata_user_written_bytes_total"
    )
    assert value(after, "strata_table_files", table=name, level="0") >= 0
    for result in ("useful", "positive"):
        assert ("strata_bloom_filter_total", frozenset({("result", result)})) in after
    assert ("strata_write_stall_seconds_total", frozenset()) in after


def test_probes(http):
    for addr in http:
        assert get(addr, "/healthz")[0] == 200
        status, _, body = get(addr, "/readyz")
        assert (status, body) == (200, "ready\n")
        status, _, body = get(addr, "/no-such-page")
        assert status == 404 and "/metrics" in body


def test_grpc_health_service(server):
    with grpc.insecure_channel(server.host) as ch:
        stub = health_pb2_grpc.HealthStub(ch)
        for service in ["", BIGTABLE]:
            r = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=30)
            assert r.status == health_pb2.HealthCheckResponse.SERVING, service
        with pytest.raises(grpc.RpcError) as e:
            stub.Check(health_pb2.HealthCheckRequest(service="no.such.Service"), timeout=30)
        assert e.value.code() == grpc.StatusCode.NOT_FOUND


@pytest.mark.not_on_cluster("a cluster server's status page lists no tables yet")
def test_status_page_lists_tables(http, make_table):
    legacy = make_table(families={"cf": None}, splits=[b"<m>"])
    status, ctype, page = get(http[0], "/")
    assert status == 200 and ctype.startswith("text/html"), ctype
    assert '<td class="l" id="phase">serving</td>' in page
    assert legacy.table_id in page
    # Row keys are escaped, never markup.
    assert "&lt;m&gt;" in page and "<m>" not in page


@pytest.mark.not_on_cluster("a cluster server lists no engine metrics")
def test_grafana_dashboard_names_only_metrics_the_server_exports(http, make_table, data_table_of):
    """deploy/grafana/strata.json stays true to the exposition."""
    import json
    import re

    from conftest import REPO_ROOT

    table = data_table_of(make_table(families={"cf": None}))
    table.mutate_row(b"r", [SetCell("cf", b"q", b"v")])
    table.read_rows(ReadRowsQuery())
    exported = {name for (name, _) in scrape(http)}
    dash = json.loads((REPO_ROOT / "deploy" / "grafana" / "strata.json").read_text())
    used = set()
    for panel in dash["panels"]:
        for target in panel["targets"]:
            used |= set(re.findall(r"\b((?:strata|grpc_server)_[a-z_]+)\b", target["expr"]))
    assert used, "the dashboard queries no metric"
    # Object-store and cluster metrics exist only on such servers: where
    # this one exports none, the dashboard may name only documented ones.
    documented = set(re.findall(r"`((?:strata|grpc_server)_[a-z_]+)",
                                (REPO_ROOT / "docs" / "observability.md").read_text()))

    def known(name: str) -> bool:
        if name in exported:
            return True
        base = re.sub(r"_(bucket|sum|count)$", "", name)
        optional = base.startswith(("strata_object_store_", "strata_cluster_"))
        return optional and base in documented

    missing = sorted(u for u in used if not known(u))
    assert not missing, f"the dashboard queries metrics the server does not export: {missing}"


def test_object_store_and_cluster_metrics(http, make_table, data_table_of):
    """On an object store (STRATA_TEST_STORAGE, every cluster server) a write
    is a PUT of its log object, counted with its bytes and timed; the engine
    figures count its group commit (on a cluster, summed over the server's
    tablets); a cluster server exports its view of the cluster; a local one
    exports neither."""
    import os

    cluster = int(os.environ.get("STRATA_TEST_CLUSTER", "0") or 0)
    on_store = cluster > 0 or bool(os.environ.get("STRATA_TEST_STORAGE"))
    legacy = make_table(families={"cf": None}, splits=[b"m"])
    table = data_table_of(legacy)
    before = scrape(http)
    table.mutate_row(b"a", [SetCell("cf", b"q", b"v" * 1000)])
    after = scrape(http)
    puts = (value(after, "strata_object_store_requests_total", kind="put")
            - value(before, "strata_object_store_requests_total", kind="put"))
    up = (value(after, "strata_object_store_bytes_total", direction="up")
          - value(before, "strata_object_store_bytes_total", direction="up"))
    timed = (value(after, "strata_object_store_put_latency_seconds_count")
             - value(before, "strata_object_store_put_latency_seconds_count"))
    # The engine's figures: the one database's, or on a cluster the sum of
    # each server's tablets.
    groups = (value(after, "strata_commit_groups_total")
              - value(before, "strata_commit_groups_total"))
    assert groups >= 1, groups
    assert value(after, "strata_commit_log_latency_seconds_count") >= 1
    if on_store:
        assert puts >= 1 and timed >= 1, (puts, timed)
        assert up >= 1000, up
    else:
        names = {name for (name, _) in after}
        assert not any(n.startswith("strata_object_store") for n in names), names
    if cluster:
        # Every server has the same view: the per-server values, not summed.
        for addr in http:
            one = scrape([addr])
            assert value(one, "strata_cluster_servers") == cluster
            assert value(one, "strata_cluster_tablets", state="all") >= 2
        masters = sum(value(scrape([a]), "strata_cluster_master") for a in http)
        assert masters == 1, masters
        # This table's two tablets were assigned by a master, and counted.
        assigned = value(scrape(http), "strata_cluster_master_changes_total", action="assigned")
        assert assigned >= 2, assigned
    else:
        assert value(after, "strata_cluster_servers") == 0
