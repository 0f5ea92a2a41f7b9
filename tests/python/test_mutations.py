"""MutateRow / MutateRows: SetCell, DeleteFromColumn, DeleteFromFamily, DeleteFromRow,
per-entry statuses and request validation."""

from __future__ import annotations

import pytest
from google.api_core import exceptions
from google.cloud.bigtable.data import (
    DeleteAllFromFamily,
    DeleteAllFromRow,
    DeleteRangeFromColumn,
    ReadRowsQuery,
    RowMutationEntry,
    SetCell,
)
from google.cloud.bigtable.data.exceptions import MutationsExceptionGroup
from google.cloud.bigtable.row_filters import TimestampRange
from google.rpc import code_pb2

from btutil import by_family, cells, dt, keys, legacy_cells, now_micros, ts
from conftest import INSTANCE, unique_table_id


def put_versions(dtable, key, family, qualifier, versions):
    dtable.mutate_row(key, [SetCell(family, qualifier, v, t) for t, v in versions])


def test_set_cell_explicit_timestamps_legacy(table):
    row = table.direct_row(b"r")
    row.set_cell("cf1", b"q", b"v1", timestamp=dt(ts(1)))
    row.set_cell("cf1", b"q", b"v3", timestamp=dt(ts(3)))
    row.set_cell("cf1", b"q", b"v2", timestamp=dt(ts(2)))
    row.set_cell("cf2", b"other", b"x", timestamp=dt(ts(7)))
    assert row.commit().code == code_pb2.OK
    assert legacy_cells(table.read_row(b"r")) == {
        "cf1": {b"q": [(b"v3", ts(3), []), (b"v2", ts(2), []), (b"v1", ts(1), [])]},
        "cf2": {b"other": [(b"x", ts(7), [])]},
    }


def test_set_cell_explicit_timestamps_data_client(dtable):
    put_versions(dtable, b"r", "cf1", b"q", [(ts(10), b"a"), (ts(30), b"c"), (ts(20), b"b")])
    assert cells(dtable.read_row(b"r")) == [
        ("cf1", b"q", ts(30), b"c", []),
        ("cf1", b"q", ts(20), b"b", []),
        ("cf1", b"q", ts(10), b"a", []),
    ]


def test_set_cell_same_timestamp_overwrites(dtable):
    put_versions(dtable, b"r", "cf1", b"q", [(ts(1), b"first")])
    put_versions(dtable, b"r", "cf1", b"q", [(ts(1), b"second")])
    assert cells(dtable.read_row(b"r")) == [("cf1", b"q", ts(1), b"second", [])]


def test_set_cell_zero_timestamp(dtable):
    put_versions(dtable, b"r", "cf1", b"q", [(0, b"epoch")])
    assert cells(dtable.read_row(b"r")) == [("cf1", b"q", 0, b"epoch", [])]


def test_set_cell_server_timestamp(table, dtable):
    before = now_micros()
    # The legacy DirectRow.set_cell without a timestamp sends timestamp_micros=-1,
    # which asks the server to assign its own time (at millisecond granularity).
    row = table.direct_row(b"legacy")
    row.set_cell("cf1", b"q", b"v")
    assert row.commit().code == code_pb2.OK
    dtable.mutate_row(b"data", SetCell("cf1", b"q", b"v", timestamp_micros=-1))
    after = now_micros()
    for key in (b"legacy", b"data"):
        (cell,) = cells(dtable.read_row(key))
        t = cell[2]
        assert t % 1000 == 0
        # Generous bounds: the server clock may differ slightly from ours.
        assert before - 5_000_000 <= t <= after + 5_000_000, (t, before, after)


def test_mutations_apply_in_order(dtable):
    dtable.mutate_row(
        b"r",
        [
            SetCell("cf1", b"a", b"1", ts(1)),
            SetCell("cf1", b"b", b"2", ts(1)),
            DeleteAllFromRow(),
            SetCell("cf1", b"c", b"3", ts(1)),
        ],
    )
    assert cells(dtable.read_row(b"r")) == [("cf1", b"c", ts(1), b"3", [])]


def test_delete_cell_all_versions(table, dtable):
    put_versions(dtable, b"r", "cf1", b"q", [(ts(1), b"1"), (ts(2), b"2")])
    put_versions(dtable, b"r", "cf1", b"keep", [(ts(1), b"k")])
    put_versions(dtable, b"r", "cf2", b"q", [(ts(1), b"other-family")])
    row = table.direct_row(b"r")
    row.delete_cell("cf1", b"q")
    assert row.commit().code == code_pb2.OK
    assert by_family(dtable.read_row(b"r")) == {
        "cf1": [(b"keep", ts(1), b"k", [])],
        "cf2": [(b"q", ts(1), b"other-family", [])],
    }


def test_delete_cell_time_range(table, dtable):
    put_versions(dtable, b"r", "cf1", b"q", [(ts(n), b"%d" % n) for n in (1, 2, 3, 4, 5)])
    # [ts(2), ts(4)): start inclusive, end exclusive.
    row = table.direct_row(b"r")
    row.delete_cell("cf1", b"q", time_range=TimestampRange(start=dt(ts(2)), end=dt(ts(4))))
    assert row.commit().code == code_pb2.OK
    assert [c[2] for c in cells(dtable.read_row(b"r"))] == [ts(5), ts(4), ts(1)]

    # Only a start: everything at or after it.
    dtable.mutate_row(b"r", DeleteRangeFromColumn("cf1", b"q", start_timestamp_micros=ts(5)))
    assert [c[2] for c in cells(dtable.read_row(b"r"))] == [ts(4), ts(1)]
    # Only an end: everything before it.
    dtable.mutate_row(b"r", DeleteRangeFromColumn("cf1", b"q", end_timestamp_micros=ts(4)))
    assert [c[2] for c in cells(dtable.read_row(b"r"))] == [ts(4)]


def test_delete_from_family(table, dtable):
    put_versions(dtable, b"r", "cf1", b"a", [(ts(1), b"1")])
    put_versions(dtable, b"r", "cf1", b"b", [(ts(1), b"2"), (ts(2), b"3")])
    put_versions(dtable, b"r", "cf2", b"a", [(ts(1), b"4")])
    put_versions(dtable, b"other", "cf1", b"a", [(ts(1), b"5")])
    row = table.direct_row(b"r")
    row.delete_cells("cf1", row.ALL_COLUMNS)
    assert row.commit().code == code_pb2.OK
    assert cells(dtable.read_row(b"r")) == [("cf2", b"a", ts(1), b"4", [])]
    assert cells(dtable.read_row(b"other")) == [("cf1", b"a", ts(1), b"5", [])]
    # The data client's DeleteAllFromFamily is the same mutation.
    dtable.mutate_row(b"r", DeleteAllFromFamily("cf2"))
    assert dtable.read_row(b"r") is None


def test_delete_row(table, dtable):
    for key in (b"a", b"b", b"c"):
        put_versions(dtable, key, "cf1", b"q", [(ts(1), key)])
        put_versions(dtable, key, "cf2", b"q", [(ts(2), key)])
    row = table.direct_row(b"b")
    row.delete()
    assert row.commit().code == code_pb2.OK
    assert table.read_row(b"b") is None
    assert keys(table.read_rows()) == [b"a", b"c"]
    # Deleting a row that does not exist is not an error.
    dtable.mutate_row(b"nope", DeleteAllFromRow())


def test_mutate_rows_per_entry_status_legacy(table):
    rows = []
    for key, family in ((b"a", "cf1"), (b"b", "no-such-family"), (b"c", "cf2")):
        row = table.direct_row(key)
        row.set_cell(family, b"q", b"v-" + key)
        rows.append(row)
    statuses = table.mutate_rows(rows)
    assert [s.code == code_pb2.OK for s in statuses] == [True, False, True]
    assert keys(table.read_rows()) == [b"a", b"c"]


def test_bulk_mutate_rows_per_entry_errors_data_client(dtable):
    entries = [
        RowMutationEntry(b"a", SetCell("cf1", b"q", b"1", ts(1))),
        RowMutationEntry(b"b", SetCell("no-such-family", b"q", b"2", ts(1))),
        RowMutationEntry(b"c", [SetCell("cf1", b"q", b"3", ts(1)), SetCell("cf2", b"q", b"4", ts(1))]),
    ]
    with pytest.raises(MutationsExceptionGroup) as info:
        dtable.bulk_mutate_rows(entries)
    failed = info.value.exceptions
    assert [e.index for e in failed] == [1]
    assert keys(dtable.read_rows(ReadRowsQuery())) == [b"a", b"c"]


# MutateRowRequest.mutations and MutateRowsRequest.Entry.mutations are documented as
# "Changes to be atomically applied to the specified row" (google/bigtable/v2/bigtable.proto).
# The emulator validates mutations one at a time while applying them, so a bad mutation
# after a good one leaves the good one applied.
@pytest.mark.emulator_deviation
def test_row_mutations_are_atomic(dtable):
    bad = [SetCell("cf1", b"q", b"x", ts(1)), SetCell("no-such-family", b"q", b"y", ts(1))]
    with pytest.raises(exceptions.GoogleAPICallError):
        dtable.mutate_row(b"r", bad)
    assert dtable.read_row(b"r") is None
    with pytest.raises(MutationsExceptionGroup):
        dtable.bulk_mutate_rows([RowMutationEntry(b"e", bad)])
    assert dtable.read_row(b"e") is None


def test_bulk_mutate_many_rows(dtable):
    entries = [
        RowMutationEntry(b"row%05d" % i, SetCell("cf1", b"q", b"v%d" % i, ts(1))) for i in range(3000)
    ]
    dtable.bulk_mutate_rows(entries)
    rows = dtable.read_rows(ReadRowsQuery())
    assert keys(rows) == [b"row%05d" % i for i in range(3000)]
    assert [r.cells[0].value for r in rows] == [b"v%d" % i for i in range(3000)]


def test_unknown_table_is_not_found(instance, data_client):
    missing = data_client.get_table(INSTANCE, unique_table_id("missing"))
    try:
        with pytest.raises(exceptions.NotFound):
            missing.mutate_row(b"r", SetCell("cf1", b"q", b"v", ts(1)))
        with pytest.raises(exceptions.NotFound):
            missing.read_row(b"r")
    finally:
        missing.close()
    row = instance.table(unique_table_id("missing")).direct_row(b"r")
    row.set_cell("cf1", b"q", b"v")
    assert row.commit().code == code_pb2.NOT_FOUND


# Bigtable answers NOT_FOUND "Requested column family not found"; the emulator
# answers otherwise.
@pytest.mark.emulator_deviation
def test_unknown_family_is_not_found(dtable):
    with pytest.raises(exceptions.NotFound, match="Requested column family not found"):
        dtable.mutate_row(b"r", SetCell("no-such-family", b"q", b"v", ts(1)))
    assert dtable.read_row(b"r") is None
    # MutateRows: the entry naming the family fails with NOT_FOUND, the other lands.
    with pytest.raises(MutationsExceptionGroup) as err:
        dtable.bulk_mutate_rows(
            [
                RowMutationEntry(b"a", SetCell("cf1", b"q", b"v", ts(1))),
                RowMutationEntry(b"b", SetCell("no-such-family", b"q", b"v", ts(1))),
            ]
        )
    failed = err.value.exceptions
    assert len(failed) == 1 and failed[0].index == 1
    assert isinstance(failed[0].__cause__, exceptions.NotFound), failed[0].__cause__
    assert [r.row_key for r in dtable.read_rows(ReadRowsQuery())] == [b"a"]
    # CheckAndMutateRow, either branch.
    with pytest.raises(exceptions.NotFound):
        dtable.check_and_mutate_row(
            b"a", None, true_case_mutations=SetCell("no-such-family", b"q", b"v", ts(1))
        )


# The emulator answers a non-millisecond timestamp with a bare error (UNKNOWN, "invalid
# timestamp"). Bigtable tables have MILLIS granularity: timestamps must be multiples of
# 1000, and the data client's own docs (SetCell / AddToCell) say so; Bigtable rejects
# others with INVALID_ARGUMENT.
@pytest.mark.emulator_deviation
def test_timestamp_not_multiple_of_1000_is_invalid_argument(dtable):
    with pytest.raises(exceptions.InvalidArgument):
        dtable.mutate_row(b"r", SetCell("cf1", b"q", b"v", ts(1) + 1))
    with pytest.raises(exceptions.InvalidArgument):
        dtable.mutate_row(b"r", DeleteRangeFromColumn("cf1", b"q", ts(1) + 500, ts(2)))
    assert dtable.read_row(b"r") is None


def test_timestamp_not_multiple_of_1000_is_rejected(dtable):
    # The weaker form that also holds on the emulator: the write fails, nothing is stored.
    with pytest.raises(exceptions.GoogleAPICallError):
        dtable.mutate_row(b"r", SetCell("cf1", b"q", b"v", ts(1) + 1))
    assert dtable.read_row(b"r") is None


def test_row_key_of_4_kib_is_accepted(dtable):
    key = b"k" * 4096
    dtable.mutate_row(key, SetCell("cf1", b"q", b"v", ts(1)))
    assert dtable.read_row(key).row_key == key


# Bigtable's documented limit on a row key is 4 KiB
# (https://cloud.google.com/bigtable/quotas#limits-data-size); larger keys are rejected
# with INVALID_ARGUMENT. The emulator accepts any length.
@pytest.mark.emulator_deviation
def test_row_key_over_4_kib_is_invalid_argument(table, dtable):
    key = b"k" * 4097
    with pytest.raises(exceptions.InvalidArgument):
        dtable.mutate_row(key, SetCell("cf1", b"q", b"v", ts(1)))
    row = table.direct_row(b"x" * 5000)
    row.set_cell("cf1", b"q", b"v")
    assert row.commit().code == code_pb2.INVALID_ARGUMENT
    assert keys(table.read_rows()) == []


def test_empty_row_key_is_invalid_argument(dtable):
    with pytest.raises(exceptions.InvalidArgument):
        dtable.mutate_row(b"", SetCell("cf1", b"q", b"v", ts(1)))
