"""Aggregate column families (ColumnFamily.value_type = Aggregate{Sum,Min,Max} over
big-endian Int64) and the AddToCell mutation.

The legacy admin API cannot set value types, so tables are created with its public
GAPIC admin client (Client.table_admin_client, google.cloud.bigtable_admin_v2)."""

from __future__ import annotations

import pytest
from google.api_core import exceptions
from google.cloud.bigtable.data import AddToCell, RowMutationEntry
from google.cloud.bigtable_admin_v2 import types as admin_types

from btutil import cells, ts
from conftest import unique_table_id

INT64_BE = admin_types.Type(
    int64_type=admin_types.Type.Int64(
        encoding=admin_types.Type.Int64.Encoding(
            big_endian_bytes=admin_types.Type.Int64.Encoding.BigEndianBytes()
        )
    )
)
Aggregate = admin_types.Type.Aggregate


def agg_family(**aggregator) -> admin_types.ColumnFamily:
    return admin_types.ColumnFamily(
        value_type=admin_types.Type(aggregate_type=Aggregate(input_type=INT64_BE, **aggregator))
    )


FAMILIES = {
    "sum": agg_family(sum=Aggregate.Sum()),
    "min": agg_family(min_=Aggregate.Min()),
    "max": agg_family(max_=Aggregate.Max()),
    "plain": admin_types.ColumnFamily(),
}


def _table_with(client, instance, data_client, prefix, families):
    """Creates a table with typed families (GAPIC admin), yields (created, data table)."""
    admin = client.table_admin_client
    table_id = unique_table_id(prefix)
    created = admin.create_table(
        parent=instance.name,
        table_id=table_id,
        table=admin_types.Table(column_families=families),
    )
    dt = data_client.get_table(instance.instance_id, table_id, default_operation_timeout=60)
    yield created, dt
    dt.close()
    admin.delete_table(name=instance.table(table_id).name)


@pytest.fixture
def agg_table(client, instance, data_client):
    yield from _table_with(client, instance, data_client, "agg", FAMILIES)


def value(row, family=None) -> list[int]:
    return [
        int.from_bytes(c[3], "big", signed=True)
        for c in cells(row)
        if family is None or c[0] == family
    ]


def test_aggregate_schema_round_trips(client, agg_table):
    created, dt = agg_table
    got = client.table_admin_client.get_table(name=created.name).column_families
    assert set(got) == set(FAMILIES)
    assert "sum" in got["sum"].value_type.aggregate_type
    assert "min_" in got["min"].value_type.aggregate_type
    assert "max_" in got["max"].value_type.aggregate_type
    for fam in ("sum", "min", "max"):
        input_type = got[fam].value_type.aggregate_type.input_type
        assert "big_endian_bytes" in input_type.int64_type.encoding
    assert "aggregate_type" not in got["plain"].value_type


def add_all(dt, family, values, key=b"r", t=0):
    for v in values:
        dt.mutate_row(key, AddToCell(family, b"q", v, t))


def test_add_to_cell_sum(agg_table):
    _, dt = agg_table
    add_all(dt, "sum", [5, -3, 10])
    assert value(dt.read_row(b"r")) == [12]
    # Several AddToCell in one request and via MutateRows accumulate too.
    dt.mutate_row(b"r", [AddToCell("sum", b"q", 100, 0), AddToCell("sum", b"q", 1000, 0)])
    dt.bulk_mutate_rows([RowMutationEntry(b"r", AddToCell("sum", b"q", -2, 0))])
    assert value(dt.read_row(b"r")) == [1110]


# Aggregate.Max "computes the max of the input values" (google/bigtable/admin/v2/types.proto).
# The emulator keeps the latest input instead: 5, -3, 10, 7 gives 7.
@pytest.mark.emulator_deviation
def test_add_to_cell_max(agg_table):
    _, dt = agg_table
    add_all(dt, "max", [5, -3, 10, 7])
    assert value(dt.read_row(b"r")) == [10]
    add_all(dt, "max", [-8, -20], key=b"neg")
    assert value(dt.read_row(b"neg")) == [-8]


# Aggregate.Min "computes the min of the input values" (google/bigtable/admin/v2/types.proto).
# The emulator keeps the latest input instead: 5, -3, 10, 7 gives 7.
@pytest.mark.emulator_deviation
def test_add_to_cell_min(agg_table):
    _, dt = agg_table
    add_all(dt, "min", [5, -3, 10, 7])
    assert value(dt.read_row(b"r")) == [-3]
    add_all(dt, "min", [7, 9], key=b"pos")
    assert value(dt.read_row(b"pos")) == [7]


def test_add_to_cell_timestamps_are_separate_cells(agg_table):
    _, dt = agg_table
    dt.mutate_row(
        b"r",
        [
            AddToCell("sum", b"q", 1, ts(1)),
            AddToCell("sum", b"q", 2, ts(2)),
            AddToCell("sum", b"q", 3, ts(1)),
        ],
    )
    got = cells(dt.read_row(b"r"))
    assert [(c[2], int.from_bytes(c[3], "big", signed=True)) for c in got] == [(ts(2), 2), (ts(1), 4)]


def test_add_to_cell_on_plain_family_is_rejected(agg_table):
    _, dt = agg_table
    with pytest.raises(exceptions.GoogleAPICallError):
        dt.mutate_row(b"r", AddToCell("plain", b"q", 1, 0))
    assert dt.read_row(b"r") is None


# ---- HyperLogLog++ unique counts ----
# A cell of an HLL++ family holds a serialized ZetaSketch HLL++ sketch
# (docs/formats/hll.md): AggregatorStateProto, type 112, with the registers in
# field 112. This reads the two counters a test can check exactly.


def _varint(b: bytes, i: int) -> tuple[int, int]:
    v = shift = 0
    while True:
        x = b[i]
        i += 1
        v |= (x & 0x7F) << shift
        shift += 7
        if x < 0x80:
            return v, i


def _fields(b: bytes) -> dict[int, int | bytes]:
    out: dict[int, int | bytes] = {}
    i = 0
    while i < len(b):
        tag, i = _varint(b, i)
        if tag & 7 == 0:
            out[tag >> 3], i = _varint(b, i)
        elif tag & 7 == 2:
            n, i = _varint(b, i)
            out[tag >> 3] = b[i : i + n]
            i += n
        else:
            raise AssertionError(f"unexpected wire type in {b!r}")
    return out


def sketch_counts(cell_value: bytes) -> tuple[int, int]:
    """(values added, distinct sparse entries) of a sparse sketch."""
    top = _fields(cell_value)
    assert top[1] == 112, "aggregator type HYPERLOGLOG_PLUS_UNIQUE"
    assert top[3] == 2, "encoding version 2"
    hll = _fields(top[112])
    assert (hll[3], hll[4]) == (15, 20), "precision 15, sparse precision 20"
    return top[2], hll.get(2, 0)


@pytest.fixture
def hll_table(client, instance, data_client):
    hll = Aggregate.HyperLogLogPlusPlusUniqueCount()
    families = {
        "ids": admin_types.ColumnFamily(
            value_type=admin_types.Type(
                aggregate_type=Aggregate(input_type=INT64_BE, hllpp_unique_count=hll)
            )
        ),
    }
    yield from _table_with(client, instance, data_client, "hll", families)


# Type.Aggregate.HyperLogLogPlusPlusUniqueCount "computes an approximate unique count over
# the input values" (google/bigtable/admin/v2/types.proto). The emulator accepts the type but
# keeps the latest input as an 8-byte int64, not a sketch.
@pytest.mark.emulator_deviation
def test_hll_unique_count(client, hll_table):
    created, dt = hll_table
    got = client.table_admin_client.get_table(name=created.name).column_families
    assert "hllpp_unique_count" in got["ids"].value_type.aggregate_type
    add_all(dt, "ids", [i % 25 for i in range(60)])
    dt.mutate_row(b"r", [AddToCell("ids", b"q", i % 25, 0) for i in range(40)])
    assert sketch_counts(cells(dt.read_row(b"r"))[0][3]) == (100, 25)
