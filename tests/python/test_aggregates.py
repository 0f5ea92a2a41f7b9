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


@pytest.fixture
def agg_table(client, instance, data_client):
    admin = client.table_admin_client
    table_id = unique_table_id("agg")
    created = admin.create_table(
        parent=instance.name,
        table_id=table_id,
        table=admin_types.Table(column_families=FAMILIES),
    )
    dt = data_client.get_table(instance.instance_id, table_id, default_operation_timeout=60)
    yield created, dt
    dt.close()
    admin.delete_table(name=instance.table(table_id).name)


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
