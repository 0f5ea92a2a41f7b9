"""CheckAndMutateRow and ReadModifyWriteRow."""

from __future__ import annotations

import struct
import threading

import pytest
from google.api_core import exceptions
from google.cloud.bigtable import row_filters as legacy_filters
from google.cloud.bigtable.data import SetCell
from google.cloud.bigtable.data import row_filters as rf
from google.cloud.bigtable.data.read_modify_write_rules import AppendValueRule, IncrementRule

from btutil import by_family, cells, dt, now_micros, ts


def i64(n: int) -> bytes:
    return struct.pack(">q", n)


# ------------------------------------------------------------------------------
# CheckAndMutateRow


def test_conditional_row_true_branch(table, dtable):
    dtable.mutate_row(b"r", SetCell("cf1", b"status", b"active", ts(1)))
    row = table.conditional_row(b"r", filter_=legacy_filters.ValueRegexFilter(b"act.*"))
    row.set_cell("cf1", b"result", b"yes", timestamp=dt(ts(2)), state=True)
    row.set_cell("cf1", b"result", b"no", timestamp=dt(ts(2)), state=False)
    assert row.commit() is True
    assert by_family(dtable.read_row(b"r")) == {
        "cf1": [(b"result", ts(2), b"yes", []), (b"status", ts(1), b"active", [])]
    }


def test_conditional_row_false_branch(table, dtable):
    dtable.mutate_row(b"r", SetCell("cf1", b"status", b"inactive", ts(1)))
    row = table.conditional_row(b"r", filter_=legacy_filters.ValueRegexFilter(b"act.*"))
    row.set_cell("cf1", b"result", b"yes", timestamp=dt(ts(2)), state=True)
    row.set_cell("cf1", b"result", b"no", timestamp=dt(ts(2)), state=False)
    row.delete_cell("cf1", b"status", state=False)
    assert row.commit() is False
    assert cells(dtable.read_row(b"r")) == [("cf1", b"result", ts(2), b"no", [])]


def test_conditional_row_on_missing_row(table, dtable):
    row = table.conditional_row(b"new", filter_=legacy_filters.PassAllFilter(True))
    row.set_cell("cf1", b"q", b"was-there", timestamp=dt(ts(1)), state=True)
    row.set_cell("cf1", b"q", b"created", timestamp=dt(ts(1)), state=False)
    assert row.commit() is False
    assert cells(dtable.read_row(b"new")) == [("cf1", b"q", ts(1), b"created", [])]


def test_check_and_mutate_data_client(dtable):
    dtable.mutate_row(b"r", SetCell("cf2", b"flag", b"1", ts(1)))
    # No predicate: matches when the row has any cell.
    matched = dtable.check_and_mutate_row(
        b"r", None, true_case_mutations=SetCell("cf1", b"t", b"T", ts(1))
    )
    assert matched is True
    matched = dtable.check_and_mutate_row(
        b"absent", None, false_case_mutations=SetCell("cf1", b"f", b"F", ts(1))
    )
    assert matched is False
    assert cells(dtable.read_row(b"absent")) == [("cf1", b"f", ts(1), b"F", [])]
    # A predicate that filters everything out is "not matched", even on an existing row.
    matched = dtable.check_and_mutate_row(
        b"r",
        rf.FamilyNameRegexFilter("nope"),
        true_case_mutations=SetCell("cf1", b"t", b"wrong", ts(2)),
        false_case_mutations=SetCell("cf1", b"f", b"right", ts(2)),
    )
    assert matched is False
    got = by_family(dtable.read_row(b"r"))
    assert got["cf1"] == [(b"f", ts(2), b"right", []), (b"t", ts(1), b"T", [])]
    # Matched with no true mutations: nothing happens, but matched is reported.
    matched = dtable.check_and_mutate_row(
        b"r", rf.PassAllFilter(True), false_case_mutations=SetCell("cf1", b"x", b"x", ts(1))
    )
    assert matched is True
    assert b"x" not in [c[1] for c in cells(dtable.read_row(b"r"))]


# python-bigtable's system tests (test_check_and_mutate_empty_request) expect real
# Bigtable to answer a CheckAndMutateRow with no mutations with INVALID_ARGUMENT
# "No mutations provided"; they skip it on the emulator, which returns predicate_matched.
@pytest.mark.emulator_deviation
def test_check_and_mutate_without_mutations_is_invalid_argument(dtable):
    with pytest.raises(exceptions.InvalidArgument):
        dtable.check_and_mutate_row(b"r", None, true_case_mutations=None, false_case_mutations=None)


# ------------------------------------------------------------------------------
# ReadModifyWriteRow


def test_append_cell_value(table, dtable):
    row = table.append_row(b"r")
    row.append_cell_value("cf1", b"log", b"first")
    result = row.commit()
    [(value, when)] = result["cf1"][b"log"]
    assert value == b"first"
    row = table.append_row(b"r")
    row.append_cell_value("cf1", b"log", b"+second")
    result = row.commit()
    assert result["cf1"][b"log"][0][0] == b"first+second"
    latest = dtable.read_row(b"r", row_filter=rf.CellsColumnLimitFilter(1))
    assert [c[3] for c in cells(latest)] == [b"first+second"]


def test_increment_cell_value(table, dtable):
    # A missing cell counts as zero.
    row = table.append_row(b"ctr")
    row.increment_cell_value("cf1", b"n", 5)
    assert row.commit()["cf1"][b"n"][0][0] == i64(5)
    row = table.append_row(b"ctr")
    row.increment_cell_value("cf1", b"n", -7)
    assert row.commit()["cf1"][b"n"][0][0] == i64(-2)
    # An existing 8-byte big-endian value is incremented.
    dtable.mutate_row(b"ctr", SetCell("cf1", b"m", i64(2**40), ts(1)))
    result = dtable.read_modify_write_row(b"ctr", IncrementRule("cf1", b"m", 3))
    assert cells(result)[0][3] == i64(2**40 + 3)
    latest = dtable.read_row(b"ctr", row_filter=rf.CellsColumnLimitFilter(1))
    assert {c[1]: c[3] for c in cells(latest)} == {b"n": i64(-2), b"m": i64(2**40 + 3)}


def test_read_modify_write_returns_only_modified_cells(dtable):
    dtable.mutate_row(b"r", [SetCell("cf1", b"other", b"o", ts(1)), SetCell("cf2", b"s", b"ab", ts(1))])
    result = dtable.read_modify_write_row(
        b"r", [AppendValueRule("cf2", b"s", b"cd"), IncrementRule("cf1", b"n", 1)]
    )
    got = {(c[0], c[1]): c[3] for c in cells(result)}
    assert got == {("cf2", b"s"): b"abcd", ("cf1", b"n"): i64(1)}
    assert result.row_key == b"r"


def test_read_modify_write_timestamp(dtable):
    # The new cell gets max(server time, newest existing timestamp in the column).
    before = now_micros()
    result = dtable.read_modify_write_row(b"r", AppendValueRule("cf1", b"now", b"x"))
    t = cells(result)[0][2]
    assert t % 1000 == 0 and abs(t - before) < 60_000_000
    future = (now_micros() // 1000 + 86_400_000) * 1000  # one day ahead
    dtable.mutate_row(b"r", SetCell("cf1", b"fut", b"a", future))
    result = dtable.read_modify_write_row(b"r", AppendValueRule("cf1", b"fut", b"b"))
    assert cells(result) == [("cf1", b"fut", future, b"ab", [])]
    latest = dtable.read_row(b"r", row_filter=rf.ColumnQualifierRegexFilter(b"fut"))
    assert cells(latest)[0] == ("cf1", b"fut", future, b"ab", [])


@pytest.mark.emulator_deviation
def test_read_modify_write_unknown_family_is_not_found(dtable):
    with pytest.raises(exceptions.NotFound, match="Requested column family not found"):
        dtable.read_modify_write_row(b"r", IncrementRule("no-such-family", b"n", 1))


def test_increment_non_64_bit_value_fails(dtable):
    dtable.mutate_row(b"r", SetCell("cf1", b"n", b"abc", ts(1)))
    with pytest.raises(exceptions.GoogleAPICallError):
        dtable.read_modify_write_row(b"r", IncrementRule("cf1", b"n", 1))
    assert cells(dtable.read_row(b"r")) == [("cf1", b"n", ts(1), b"abc", [])]


# Real Bigtable answers an increment of a value that is not 8 bytes with
# FAILED_PRECONDITION "Cannot increment value ... The increment operation can only be
# performed on 64-bit values" (googleapis/google-cloud-go#1455); the ReadModifyWriteRule
# docs say "the targeted cell must contain an 8-byte value ... or the entire request will
# fail". The emulator returns UNKNOWN ("increment on non-64-bit value").
@pytest.mark.emulator_deviation
def test_increment_non_64_bit_value_status_code(dtable):
    dtable.mutate_row(b"r", SetCell("cf1", b"n", b"abc", ts(1)))
    with pytest.raises((exceptions.FailedPrecondition, exceptions.InvalidArgument)):
        dtable.read_modify_write_row(b"r", IncrementRule("cf1", b"n", 1))


def test_concurrent_increments(dtable):
    threads, per_thread = 8, 50
    errors = []

    def work():
        try:
            for _ in range(per_thread):
                dtable.read_modify_write_row(b"counter", IncrementRule("cf1", b"n", 1))
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    pool = [threading.Thread(target=work) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    assert not errors, errors[:3]
    latest = dtable.read_row(b"counter", row_filter=rf.CellsColumnLimitFilter(1))
    assert cells(latest)[0][3] == i64(threads * per_thread)
