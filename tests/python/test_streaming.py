"""ReadRows streams a scan as many small messages, and the real client resumes a
stream that fails part-way from the last row it received.

A small in-process gRPC proxy sits between the client and the server: it forwards
every call unchanged, records each ReadRows request and the rows of each response,
and can end the first ReadRows stream with UNAVAILABLE after N messages (as the
Python client's own tests do to exercise its retries)."""

from __future__ import annotations

import threading
from concurrent import futures

import grpc
import pytest
from google.cloud.bigtable.data import ReadRowsQuery, RowMutationEntry, SetCell
from google.cloud.bigtable_v2.types import ReadRowsRequest, ReadRowsResponse

from btutil import keys, ts

ROWS = 32
COLUMNS = 32
ROW_KEYS = [b"row%03d" % i for i in range(ROWS)]


def value(i: int, j: int) -> bytes:
    return b"%d/%d:" % (i, j) + b"v" * 10


class Call:
    """One ReadRows the proxy forwarded."""

    def __init__(self, request: ReadRowsRequest):
        self.request = request
        self.messages = 0
        self.rows: list[bytes] = []  # keys of the rows committed in the forwarded messages
        self.cut = False


class CuttingProxy:
    """Forwards the Bigtable data API to `upstream`; ends the first ReadRows with
    UNAVAILABLE after `cut_after` messages (None: never)."""

    STREAMING = {"ReadRows", "SampleRowKeys", "MutateRows"}

    def __init__(self, upstream: str, cut_after: int | None):
        self.cut_after = cut_after
        self.calls: list[Call] = []
        self._lock = threading.Lock()
        self._channel = grpc.insecure_channel(upstream)
        self._server = grpc.server(futures.ThreadPoolExecutor(4))
        self._server.add_generic_rpc_handlers((self._Handler(self),))
        port = self._server.add_insecure_port("127.0.0.1:0")
        self.host = f"127.0.0.1:{port}"
        self._server.start()

    def close(self):
        self._server.stop(0)
        self._channel.close()

    class _Handler(grpc.GenericRpcHandler):
        def __init__(self, proxy: "CuttingProxy"):
            self.proxy = proxy

        def service(self, details):
            method = details.method
            name = method.rsplit("/", 1)[-1]
            forward = lambda b: b  # noqa: E731 - raw bytes both ways

            def metadata(ctx):
                return [(k, v) for k, v in ctx.invocation_metadata() if not k.startswith(":")]

            if name == "ReadRows":
                return grpc.unary_stream_rpc_method_handler(self.proxy._read_rows, forward, forward)
            if name in CuttingProxy.STREAMING:

                def stream(req, ctx):
                    call = self.proxy._channel.unary_stream(method, forward, forward)
                    yield from call(req, metadata=metadata(ctx))

                return grpc.unary_stream_rpc_method_handler(stream, forward, forward)

            def unary(req, ctx):
                try:
                    call = self.proxy._channel.unary_unary(method, forward, forward)
                    return call(req, metadata=metadata(ctx))
                except grpc.RpcError as e:
                    ctx.abort(e.code(), e.details())

            return grpc.unary_unary_rpc_method_handler(unary, forward, forward)

    def _read_rows(self, req: bytes, ctx):
        call = Call(ReadRowsRequest.deserialize(req))
        with self._lock:
            first = not self.calls
            self.calls.append(call)
        md = [(k, v) for k, v in ctx.invocation_metadata() if not k.startswith(":")]
        upstream = self._channel.unary_stream("/google.bigtable.v2.Bigtable/ReadRows")
        responses = upstream(req, metadata=md)
        for raw in responses:
            if first and self.cut_after is not None and call.messages == self.cut_after:
                call.cut = True
                responses.cancel()
                ctx.abort(grpc.StatusCode.UNAVAILABLE, "cut by the test proxy")
            call.messages += 1
            key = None
            for chunk in ReadRowsResponse.deserialize(raw).chunks:
                key = chunk.row_key or key
                if chunk.commit_row:
                    call.rows.append(key)
            yield raw


@pytest.fixture
def grid(dtable):
    """32 rows x 32 columns in cf1 (about 1 KB a row, 32 KB in all)."""
    dtable.bulk_mutate_rows(
        [
            RowMutationEntry(
                k, [SetCell("cf1", b"c%02d" % j, value(i, j), ts(1)) for j in range(COLUMNS)]
            )
            for i, k in enumerate(ROW_KEYS)
        ]
    )
    return dtable


@pytest.fixture
def proxied(server, monkeypatch):
    """proxied(cut_after) -> (proxy, data client, legacy client) talking through it."""
    from google.cloud import bigtable
    from google.cloud.bigtable.data import BigtableDataClient

    opened = []

    def make(cut_after):
        proxy = CuttingProxy(server.host, cut_after)
        monkeypatch.setenv("BIGTABLE_EMULATOR_HOST", proxy.host)
        data = BigtableDataClient(project="strata-test")
        # The legacy client opens its channel when first used: the variable
        # stays pointed at the proxy until the test ends.
        legacy = bigtable.Client(project="strata-test", admin=True)
        opened.append((proxy, data, legacy))
        return proxy, data, legacy

    yield make
    for proxy, data, legacy in opened:
        data.close()
        legacy.close()
        proxy.close()


def check_grid(rows):
    assert keys(rows) == ROW_KEYS
    for i, row in enumerate(rows):
        got = [(c.family, c.qualifier, c.value) for c in row.cells]
        assert got == [("cf1", b"c%02d" % j, value(i, j)) for j in range(COLUMNS)]


def test_a_small_scan_arrives_as_several_messages(grid, table, proxied):
    proxy, data, _ = proxied(None)
    with data.get_table("test", table.table_id) as t:
        check_grid(t.read_rows(ReadRowsQuery()))
    [call] = proxy.calls
    assert call.rows == ROW_KEYS
    # Bigtable streams a scan; a server that batched all 32 rows into one
    # message would leave nothing for a client to resume from.
    assert call.messages >= 4, f"{call.messages} messages"


def test_data_client_resumes_a_stream_cut_midway(grid, table, proxied):
    proxy, data, _ = proxied(2)
    with data.get_table("test", table.table_id) as t:
        check_grid(t.read_rows(ReadRowsQuery()))
    first, retry = proxy.calls
    assert first.cut and first.messages == 2 and 0 < len(first.rows) < ROWS
    # The retry asks only for the rows after the last one received.
    [rng] = retry.request.rows.row_ranges
    assert rng.start_key_open == first.rows[-1]
    assert first.rows + retry.rows == ROW_KEYS


def test_legacy_client_resumes_a_stream_cut_midway(grid, table, proxied):
    proxy, _, legacy = proxied(2)
    rows = list(legacy.instance("test").table(table.table_id).read_rows())
    assert keys(rows) == ROW_KEYS
    for i, row in enumerate(rows):
        assert [c[0].value for _, c in sorted(row.cells["cf1"].items())] == [
            value(i, j) for j in range(COLUMNS)
        ]
    first, retry = proxy.calls
    assert first.cut and 0 < len(first.rows) < ROWS
    [rng] = retry.request.rows.row_ranges
    assert rng.start_key_open == first.rows[-1]
    assert first.rows + retry.rows == ROW_KEYS
