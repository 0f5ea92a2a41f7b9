"""gRPC server reflection: a client that has no .proto files (as grpcurl)
lists the server's services, resolves their descriptors, and calls RPCs
with messages built from them alone: a write through the Bigtable API, read
back by the real client, and StrataAdmin/ListTablets, whose reply decoded
by the reflected descriptors must match the table's tablets."""

import grpc
import pytest
from google.protobuf import descriptor_pool, message_factory
from google.cloud.bigtable.data import ReadRowsQuery
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)


@pytest.fixture
def reflected(server):
    with grpc.insecure_channel(server.host) as channel:
        db = ProtoReflectionDescriptorDatabase(channel)
        yield channel, db, descriptor_pool.DescriptorPool(db)


def _call(channel, pool, service: str, method: str, fields: dict):
    """Calls service/method with a request built from reflected descriptors."""
    m = pool.FindServiceByName(service).FindMethodByName(method)
    request = message_factory.GetMessageClass(m.input_type)(**fields)
    reply_type = message_factory.GetMessageClass(m.output_type)
    call = channel.unary_unary(
        f"/{service}/{method}",
        request_serializer=lambda r: r.SerializeToString(),
        response_deserializer=reply_type.FromString,
    )
    return call(request, timeout=30)


def test_reflection_lists_every_service(reflected):
    _, db, pool = reflected
    services = set(db.get_services())
    for s in ("google.bigtable.v2.Bigtable",
              "google.bigtable.admin.v2.BigtableTableAdmin",
              "google.bigtable.admin.v2.BigtableInstanceAdmin",
              "google.longrunning.Operations",
              "strata.admin.v1.StrataAdmin",
              "grpc.health.v1.Health"):
        assert s in services, (s, services)
    read_rows = pool.FindServiceByName("google.bigtable.v2.Bigtable").FindMethodByName("ReadRows")
    assert read_rows.output_type.full_name == "google.bigtable.v2.ReadRowsResponse"
    assert read_rows.server_streaming
    # An unknown symbol: the server says NOT_FOUND (the pool passes it on).
    with pytest.raises(grpc.RpcError) as e:
        pool.FindServiceByName("no.such.Service")
    assert e.value.code() == grpc.StatusCode.NOT_FOUND


def test_a_write_made_from_reflected_descriptors(reflected, make_table, data_table_of):
    channel, _, pool = reflected
    legacy = make_table(families={"cf": None})
    _call(channel, pool, "google.bigtable.v2.Bigtable", "MutateRow", {
        "table_name": legacy.name,
        "row_key": b"reflected",
        "mutations": [{"set_cell": {"family_name": "cf", "column_qualifier": b"q",
                                    "timestamp_micros": 1000, "value": b"v"}}],
    })
    rows = data_table_of(legacy).read_rows(ReadRowsQuery(row_keys=[b"reflected"]))
    assert [(r.row_key, r.cells[0].value) for r in rows] == [(b"reflected", b"v")]


def test_strata_admin_replies_decode_with_reflected_descriptors(reflected, make_table):
    channel, _, pool = reflected
    legacy = make_table(families={"cf": None}, splits=[b"m"])
    reply = _call(channel, pool, "strata.admin.v1.StrataAdmin", "ListTablets",
                  {"table_name": legacy.name})
    ranges = [(t.start_row, t.end_row if t.has_end else None) for t in reply.tablets]
    assert ranges == [(b"", b"m"), (b"m", None)], reply
    with pytest.raises(grpc.RpcError) as e:
        _call(channel, pool, "strata.admin.v1.StrataAdmin", "ListTablets",
              {"table_name": legacy.name + "-missing"})
    assert e.value.code() == grpc.StatusCode.NOT_FOUND
