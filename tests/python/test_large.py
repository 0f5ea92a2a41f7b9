"""Large cells and wide rows.

The Python client opens its channel to an emulator host with gRPC's default receive
limit of 4 MiB, so any ReadRowsResponse over 4 MiB fails on the client: a server must
split big values across chunks (CellChunk.value_size) and big rows across responses."""

from __future__ import annotations

import hashlib
import os

import pytest
from google.cloud.bigtable.data import ReadRowsQuery, RowMutationEntry, RowRange, SetCell
from google.cloud.bigtable.data import row_filters as rf

from btutil import assert_native_order, cells, keys, ts

MiB = 1 << 20


def blob(size: int, seed: bytes) -> bytes:
    """Incompressible, position-dependent bytes (so misplaced chunks are detected)."""
    out = bytearray()
    counter = 0
    while len(out) < size:
        out += hashlib.sha256(seed + counter.to_bytes(8, "big")).digest() * 64
        counter += 1
    return bytes(out[:size])


def roundtrip_big_value(table, dtable, size: int):
    value = blob(size, b"%d" % size)
    # Neighbouring rows make sure the big row is framed correctly inside a scan.
    dtable.mutate_row(b"a", SetCell("cf1", b"q", b"before", ts(1)))
    dtable.mutate_row(b"c", SetCell("cf1", b"q", b"after", ts(1)))
    row = table.direct_row(b"big")
    row.set_cell("cf1", b"blob", value)
    assert row.commit().code == 0
    # Data client, single row.
    got = dtable.read_row(b"big")
    assert len(got.cells) == 1 and got.cells[0].value == value
    # Legacy client.
    legacy = table.read_row(b"big")
    assert legacy.cells["cf1"][b"blob"][0].value == value
    # Inside a scan, with a small cell before and after it in the same row.
    dtable.mutate_row(
        b"big", [SetCell("cf1", b"a-small", b"s1", ts(1)), SetCell("cf2", b"z", b"s2", ts(1))]
    )
    rows = dtable.read_rows(ReadRowsQuery(row_ranges=RowRange(b"a", b"d")))
    assert keys(rows) == [b"a", b"big", b"c"]
    big = {(c.family, c.qualifier): c.value for c in rows[1].cells}
    assert big == {("cf1", b"a-small"): b"s1", ("cf1", b"blob"): value, ("cf2", b"z"): b"s2"}
    assert rows[0].cells[0].value == b"before" and rows[2].cells[0].value == b"after"


def test_3_mib_value(table, dtable):
    roundtrip_big_value(table, dtable, 3 * MiB)


# The emulator accepts these writes but sends each row as a single ReadRowsResponse, so the
# client fails with RESOURCE_EXHAUSTED "Received message larger than max (... vs. 4194304)".
# Bigtable allows cells up to 100 MiB (https://cloud.google.com/bigtable/quotas#limits-data-size)
# and streams them in chunks; python-bigtable's own 10 MB system test
# (test_table_read_row_large_cell) is skipped on the emulator for this reason.
@pytest.mark.emulator_deviation
def test_10_mib_value(table, dtable):
    roundtrip_big_value(table, dtable, 10 * MiB)


@pytest.mark.emulator_deviation
def test_30_mib_value(table, dtable):
    roundtrip_big_value(table, dtable, 30 * MiB)


# A row whose cells together exceed 4 MiB must be split across responses (same emulator
# limitation as above).
@pytest.mark.emulator_deviation
def test_row_larger_than_4_mib_of_small_cells(dtable):
    values = {b"c%02d" % i: blob(MiB // 2, b"%d" % i) for i in range(12)}  # 6 MiB in all
    for q, v in values.items():
        dtable.mutate_row(b"wide", SetCell("cf1", q, v, ts(1)))
    dtable.mutate_row(b"x", SetCell("cf1", b"q", b"next", ts(1)))
    rows = dtable.read_rows(ReadRowsQuery())
    assert keys(rows) == [b"wide", b"x"]
    assert {c.qualifier: c.value for c in rows[0].cells} == values


def test_row_with_many_cells(dtable):
    n = 2000
    dtable.mutate_row(
        b"wide",
        [SetCell("cf1" if i % 2 else "cf2", b"q%05d" % i, os.urandom(64), ts(i % 7)) for i in range(n)],
    )
    row = dtable.read_row(b"wide")
    assert len(row.cells) == n
    assert {c.qualifier for c in row.cells} == {b"q%05d" % i for i in range(n)}
    assert_native_order(row)
    # Filters over a wide row.
    limited = dtable.read_row(b"wide", row_filter=rf.CellsRowLimitFilter(10))
    assert len(limited.cells) == 10
    stripped = dtable.read_row(b"wide", row_filter=rf.StripValueTransformerFilter(True))
    assert len(stripped.cells) == n and all(c.value == b"" for c in stripped.cells)


def test_column_with_many_versions(dtable):
    n = 1000
    dtable.mutate_row(b"r", [SetCell("cf1", b"q", b"%d" % i, ts(i)) for i in range(n)])
    got = cells(dtable.read_row(b"r"))
    assert [c[2] for c in got] == [ts(i) for i in reversed(range(n))]
    assert [c[3] for c in got] == [b"%d" % i for i in reversed(range(n))]
    got = cells(dtable.read_row(b"r", row_filter=rf.CellsColumnLimitFilter(3)))
    assert [c[2] for c in got] == [ts(n - 1), ts(n - 2), ts(n - 3)]


def test_many_rows_scan(dtable):
    n = 20_000
    for start in range(0, n, 5000):
        dtable.bulk_mutate_rows(
            [
                RowMutationEntry(b"row%06d" % i, SetCell("cf1", b"q", b"%d" % i, ts(1)))
                for i in range(start, start + 5000)
            ]
        )
    rows = dtable.read_rows(ReadRowsQuery())
    assert keys(rows) == [b"row%06d" % i for i in range(n)]
    assert all(r.cells[0].value == b"%d" % i for i, r in enumerate(rows))
    # A bounded scan in the middle.
    q = ReadRowsQuery(row_ranges=RowRange(b"row010000", b"row010100"))
    assert len(dtable.read_rows(q)) == 100
