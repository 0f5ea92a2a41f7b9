"""ReadRows: row keys, ranges, limits, reversed scans, every RowFilter the client
exposes, GC at read time and SampleRowKeys."""

from __future__ import annotations

import base64

import pytest
from google.api_core import exceptions
from google.cloud.bigtable import column_family as cf
from google.cloud.bigtable import row_filters as legacy_filters
from google.cloud.bigtable.data import ReadRowsQuery, RowMutationEntry, RowRange, SetCell
from google.cloud.bigtable.data import row_filters as rf
from google.cloud.bigtable.row_set import RowSet
from google.cloud.bigtable_v2.types import FeatureFlags, ReadRowsRequest
from google.cloud.bigtable_v2.types import RowRange as RowRangePB
from google.cloud.bigtable_v2.types import RowSet as RowSetPB

from btutil import assert_native_order, by_family, cells, dt, keys, legacy_cells, ts

ROW_KEYS = [b"a", b"ab", b"abc", b"b", b"b\nc", b"c", b"d"]

# The row used by the filter tests. Qualifiers sort bytewise: q1 < q10 < q2.
FILTER_ROW = {
    "cf1": [
        (b"q1", ts(3), b"v1-3"),
        (b"q1", ts(2), b"v1-2"),
        (b"q1", ts(1), b"v1-1"),
        (b"q10", ts(1), b"x"),
        (b"q2", ts(2), b"v2"),
    ],
    "cf2": [
        (b"a", ts(1), b"z"),
        (b"q1", ts(5), b"w"),
    ],
}


@pytest.fixture
def rows_table(dtable):
    """Rows ROW_KEYS, each with cf1:q = key @ ts(1)."""
    dtable.bulk_mutate_rows(
        [RowMutationEntry(k, SetCell("cf1", b"q", k, ts(1))) for k in ROW_KEYS]
    )
    return dtable


@pytest.fixture
def frow(dtable):
    """A table holding FILTER_ROW under key b"r" (and rows b"other", b"s")."""
    muts = [
        SetCell(fam, q, v, t) for fam, cs in FILTER_ROW.items() for (q, t, v) in cs
    ]
    dtable.bulk_mutate_rows(
        [
            RowMutationEntry(b"r", muts),
            RowMutationEntry(b"other", SetCell("cf1", b"q1", b"o", ts(1))),
            RowMutationEntry(b"s", SetCell("cf2", b"zz", b"s", ts(9))),
        ]
    )
    return dtable


def full(family, *picks):
    """FILTER_ROW cells of `family` as (q, ts, value, labels), optionally picked by index."""
    cs = FILTER_ROW[family]
    chosen = [cs[i] for i in picks] if picks else cs
    return [(q, t, v, []) for q, t, v in chosen]


def read_r(dtable, flt):
    return dtable.read_row(b"r", row_filter=flt)


# ------------------------------------------------------------------------------
# row selection


def test_read_row_and_missing_row(rows_table, table):
    assert cells(rows_table.read_row(b"ab")) == [("cf1", b"q", ts(1), b"ab", [])]
    assert rows_table.read_row(b"zz") is None
    assert rows_table.read_row(b"a\x00") is None
    assert table.read_row(b"zz") is None
    assert legacy_cells(table.read_row(b"abc")) == {"cf1": {b"q": [(b"abc", ts(1), [])]}}


def test_read_all_rows_sorted(rows_table, table):
    assert keys(rows_table.read_rows(ReadRowsQuery())) == sorted(ROW_KEYS)
    assert keys(table.read_rows()) == sorted(ROW_KEYS)


def test_empty_table_reads_nothing(dtable, table):
    assert dtable.read_rows(ReadRowsQuery()) == []
    assert keys(table.read_rows()) == []


def test_row_key_set(rows_table):
    q = ReadRowsQuery(row_keys=[b"c", b"a", b"zz", b"b\nc"])
    assert keys(rows_table.read_rows(q)) == [b"a", b"b\nc", b"c"]


@pytest.mark.parametrize(
    "start,end,start_incl,end_incl,expected",
    [
        (b"ab", b"b", True, False, [b"ab", b"abc"]),
        (b"ab", b"b", False, False, [b"abc"]),
        (b"ab", b"b", True, True, [b"ab", b"abc", b"b"]),
        (b"ab", b"b", False, True, [b"abc", b"b"]),
        (None, b"ab", None, False, [b"a"]),
        (None, b"ab", None, True, [b"a", b"ab"]),
        (b"b\nc", None, True, None, [b"b\nc", b"c", b"d"]),
        (b"b\nc", None, False, None, [b"c", b"d"]),
        (b"a\x00", b"ab\x00", True, False, [b"ab"]),
        (b"x", None, True, None, []),
        (None, None, None, None, ROW_KEYS),
    ],
)
def test_row_ranges(rows_table, start, end, start_incl, end_incl, expected):
    rng = RowRange(start, end, start_is_inclusive=start_incl, end_is_inclusive=end_incl)
    assert keys(rows_table.read_rows(ReadRowsQuery(row_ranges=rng))) == expected


def test_overlapping_ranges_and_keys_return_each_row_once(rows_table):
    q = ReadRowsQuery(
        row_keys=[b"abc", b"d"],
        row_ranges=[RowRange(b"a", b"b"), RowRange(b"ab", b"c"), RowRange(b"d", None)],
    )
    assert keys(rows_table.read_rows(q)) == [b"a", b"ab", b"abc", b"b", b"b\nc", b"d"]


def test_legacy_ranges_and_row_set(rows_table, table):
    assert keys(table.read_rows(start_key=b"ab", end_key=b"b")) == [b"ab", b"abc"]
    assert keys(table.read_rows(start_key=b"ab", end_key=b"b", end_inclusive=True)) == [
        b"ab",
        b"abc",
        b"b",
    ]
    row_set = RowSet()
    row_set.add_row_key(b"d")
    row_set.add_row_range_with_prefix("ab")  # the legacy helper wants str
    assert keys(table.read_rows(row_set=row_set)) == [b"ab", b"abc", b"d"]


def test_limit(rows_table, table):
    assert keys(rows_table.read_rows(ReadRowsQuery(limit=3))) == [b"a", b"ab", b"abc"]
    assert keys(table.read_rows(limit=2)) == [b"a", b"ab"]
    q = ReadRowsQuery(row_ranges=RowRange(b"b", None), limit=2)
    assert keys(rows_table.read_rows(q)) == [b"b", b"b\nc"]
    # The limit counts rows returned, after filtering.
    q = ReadRowsQuery(limit=2, row_filter=rf.ValueRegexFilter(b"(ab.*|d)"))
    assert keys(rows_table.read_rows(q)) == [b"ab", b"abc"]
    assert keys(rows_table.read_rows(ReadRowsQuery(limit=100))) == ROW_KEYS


def test_row_exists(rows_table):
    assert rows_table.row_exists(b"abc") is True
    assert rows_table.row_exists(b"abd") is False


# Real Bigtable rejects an empty row key ("Row keys must be non-empty"), see the
# client's own system tests (python-bigtable tests/system/data, test_read_row_missing,
# skipped on the emulator because "emulator doesn't raise InvalidArgument").
@pytest.mark.emulator_deviation
def test_read_empty_row_key_is_invalid_argument(rows_table):
    with pytest.raises(exceptions.InvalidArgument):
        rows_table.read_row(b"")


# ------------------------------------------------------------------------------
# reversed scans. The Python client 2.50 exposes no `reversed` in ReadRowsQuery, so this
# uses its public GAPIC client (google.cloud.bigtable_v2.BigtableClient) with the
# `bigtable-features` header announcing reverse_scans, as the Go client does.

_FEATURES = base64.urlsafe_b64encode(FeatureFlags.serialize(FeatureFlags(reverse_scans=True))).decode()


def _raw_read_keys(client, table, **request):
    """Row keys (in stream order) and values of a raw ReadRows call."""
    out = []
    key = None
    value = b""
    stream = client.table_data_client.read_rows(
        request=ReadRowsRequest(table_name=table.name, **request),
        metadata=[("bigtable-features", _FEATURES)],
    )
    for resp in stream:
        for ch in resp.chunks:
            if ch.row_key:
                key = ch.row_key
            value += ch.value
            if ch.value_size == 0 and ch.commit_row:
                out.append((key, value))
            if ch.value_size == 0:
                value = b""
    return out


def test_reversed_scan(client, rows_table, table):
    got = _raw_read_keys(client, table, reversed=True)
    assert got == [(k, k) for k in sorted(ROW_KEYS, reverse=True)]
    got = _raw_read_keys(client, table, reversed=True, rows_limit=2)
    assert [k for k, _ in got] == [b"d", b"c"]
    rows = RowSetPB(row_ranges=[RowRangePB(start_key_open=b"a", end_key_closed=b"b")])
    got = _raw_read_keys(client, table, reversed=True, rows=rows)
    assert [k for k, _ in got] == [b"b", b"abc", b"ab"]


# ------------------------------------------------------------------------------
# filters


def test_no_filter_and_pass_all(frow):
    for flt in (None, rf.PassAllFilter(True)):
        row = read_r(frow, flt)
        assert by_family(row) == {"cf1": full("cf1"), "cf2": full("cf2")}
        assert_native_order(row)


def test_legacy_read_row_full(frow, table):
    got = legacy_cells(table.read_row(b"r"))
    assert got == {
        "cf1": {
            b"q1": [(b"v1-3", ts(3), []), (b"v1-2", ts(2), []), (b"v1-1", ts(1), [])],
            b"q10": [(b"x", ts(1), [])],
            b"q2": [(b"v2", ts(2), [])],
        },
        "cf2": {b"a": [(b"z", ts(1), [])], b"q1": [(b"w", ts(5), [])]},
    }


def test_block_all(frow):
    assert read_r(frow, rf.BlockAllFilter(True)) is None
    assert frow.read_rows(ReadRowsQuery(row_filter=rf.BlockAllFilter(True))) == []


def test_row_key_regex_full_match(rows_table):
    def run(regex):
        return keys(rows_table.read_rows(ReadRowsQuery(row_filter=rf.RowKeyRegexFilter(regex))))

    assert run(b"ab") == [b"ab"]  # full match: not "abc"
    assert run(b"a.*") == [b"a", b"ab", b"abc"]
    assert run(b"b.*") == [b"b"]  # "." does not match "\n"
    assert run(b"b(?s:.*)") == [b"b", b"b\nc"]
    assert run(b"[ac]") == [b"a", b"c"]
    assert run(b"x") == []


# RE2's \C (any byte) is the documented way to match arbitrary bytes in keys, qualifiers
# and values (RowFilter docs in google/bigtable/v2/data.proto).
def test_regex_backslash_c_matches_any_byte(rows_table):
    got = keys(rows_table.read_rows(ReadRowsQuery(row_filter=rf.RowKeyRegexFilter(rb"b\C*"))))
    assert got == [b"b", b"b\nc"]


def test_row_sample_filter(dtable):
    n = 400
    dtable.bulk_mutate_rows(
        [RowMutationEntry(b"k%04d" % i, SetCell("cf1", b"q", b"v", ts(1))) for i in range(n)]
    )
    got = dtable.read_rows(ReadRowsQuery(row_filter=rf.RowSampleFilter(0.5)))
    # Binomial(400, 0.5): mean 200, sd 10. A loose bound that a correct sampler
    # essentially never violates, while "all" or "none" fail it.
    assert 100 <= len(got) <= 300, len(got)
    # Sampled rows are whole rows.
    assert all(len(r.cells) == 1 for r in got)


def test_family_name_regex(frow):
    assert by_family(read_r(frow, rf.FamilyNameRegexFilter("cf1"))) == {"cf1": full("cf1")}
    assert read_r(frow, rf.FamilyNameRegexFilter("cf")) is None  # full match
    got = by_family(read_r(frow, rf.FamilyNameRegexFilter("cf.*")))
    assert got == {"cf1": full("cf1"), "cf2": full("cf2")}
    assert by_family(read_r(frow, rf.FamilyNameRegexFilter("c.2"))) == {"cf2": full("cf2")}


def test_column_qualifier_regex(frow):
    got = by_family(read_r(frow, rf.ColumnQualifierRegexFilter(b"q1")))
    assert got == {"cf1": full("cf1", 0, 1, 2), "cf2": full("cf2", 1)}
    got = by_family(read_r(frow, rf.ColumnQualifierRegexFilter(b"q1.*")))
    assert got == {"cf1": full("cf1", 0, 1, 2, 3), "cf2": full("cf2", 1)}
    assert read_r(frow, rf.ColumnQualifierRegexFilter(b"q")) is None


@pytest.mark.parametrize(
    "start,end,incl_start,incl_end,expected",
    [
        (b"q1", b"q2", True, False, (0, 1, 2, 3)),
        (b"q1", b"q2", True, True, (0, 1, 2, 3, 4)),
        (b"q1", b"q2", False, False, (3,)),
        (b"q1", b"q2", False, True, (3, 4)),
        (b"q10", None, True, None, (3, 4)),
        (None, b"q10", None, True, (0, 1, 2, 3)),
        (None, b"q10", None, False, (0, 1, 2)),
    ],
)
def test_column_range(frow, start, end, incl_start, incl_end, expected):
    flt = rf.ColumnRangeFilter(
        "cf1", start, end, inclusive_start=incl_start, inclusive_end=incl_end
    )
    # Only family cf1 is in range; cf2:q1 is not.
    assert by_family(read_r(frow, flt)) == {"cf1": full("cf1", *expected)}


def test_column_range_legacy(frow, table):
    flt = legacy_filters.ColumnRangeFilter(
        "cf2", start_column=b"a", end_column=b"q1", inclusive_end=False
    )
    assert legacy_cells(table.read_row(b"r", filter_=flt)) == {"cf2": {b"a": [(b"z", ts(1), [])]}}


def test_timestamp_range(frow):
    flt = rf.TimestampRangeFilter(start=dt(ts(2)), end=dt(ts(3)))  # [2, 3)
    got = by_family(read_r(frow, flt))
    assert got == {"cf1": full("cf1", 1, 4)}
    got = by_family(read_r(frow, rf.TimestampRangeFilter(start=dt(ts(3)))))
    assert got == {"cf1": full("cf1", 0), "cf2": full("cf2", 1)}
    got = by_family(read_r(frow, rf.TimestampRangeFilter(end=dt(ts(2)))))
    assert got == {"cf1": full("cf1", 2, 3), "cf2": full("cf2", 0)}


def test_value_regex(frow):
    got = by_family(read_r(frow, rf.ValueRegexFilter(b"v1-.")))
    assert got == {"cf1": full("cf1", 0, 1, 2)}
    assert read_r(frow, rf.ValueRegexFilter(b"v1")) is None  # full match
    got = by_family(read_r(frow, rf.LiteralValueFilter(b"w")))
    assert got == {"cf2": full("cf2", 1)}


@pytest.mark.parametrize(
    "start,end,incl_start,incl_end,expected",
    [
        (b"v1-2", b"v2", True, False, {"cf1": (0, 1)}),
        (b"v1-2", b"v2", True, True, {"cf1": (0, 1, 4)}),
        (b"v1-2", b"v2", False, True, {"cf1": (0, 4)}),
        (b"w", None, True, None, {"cf1": (3,), "cf2": (0, 1)}),
        (b"w", None, False, None, {"cf1": (3,), "cf2": (0,)}),
        (None, b"v1-2", None, False, {"cf1": (2,)}),
    ],
)
def test_value_range(frow, start, end, incl_start, incl_end, expected):
    flt = rf.ValueRangeFilter(start, end, inclusive_start=incl_start, inclusive_end=incl_end)
    want = {fam: full(fam, *idx) for fam, idx in expected.items()}
    assert by_family(read_r(frow, flt)) == want


def test_cells_per_row_offset_and_limit(frow):
    only_cf1 = rf.FamilyNameRegexFilter("cf1")
    got = by_family(read_r(frow, rf.RowFilterChain([only_cf1, rf.CellsRowOffsetFilter(2)])))
    assert got == {"cf1": full("cf1", 2, 3, 4)}
    got = by_family(read_r(frow, rf.RowFilterChain([only_cf1, rf.CellsRowLimitFilter(2)])))
    assert got == {"cf1": full("cf1", 0, 1)}
    # Offset then limit: a window.
    chain = rf.RowFilterChain([only_cf1, rf.CellsRowOffsetFilter(1), rf.CellsRowLimitFilter(3)])
    assert by_family(read_r(frow, chain)) == {"cf1": full("cf1", 1, 2, 3)}
    # Whole row: 7 cells; the limit and offset count across families.
    assert len(cells(read_r(frow, rf.CellsRowLimitFilter(6)))) == 6
    assert len(cells(read_r(frow, rf.CellsRowOffsetFilter(6)))) == 1
    assert read_r(frow, rf.CellsRowOffsetFilter(7)) is None
    # Applies per row.
    q = ReadRowsQuery(row_filter=rf.CellsRowLimitFilter(1))
    assert [len(r.cells) for r in frow.read_rows(q)] == [1, 1, 1]


def test_cells_per_column_limit(frow):
    got = by_family(read_r(frow, rf.CellsColumnLimitFilter(1)))
    assert got == {"cf1": full("cf1", 0, 3, 4), "cf2": full("cf2")}
    got = by_family(read_r(frow, rf.CellsColumnLimitFilter(2)))
    assert got == {"cf1": full("cf1", 0, 1, 3, 4), "cf2": full("cf2")}


def test_strip_value(frow):
    got = by_family(read_r(frow, rf.StripValueTransformerFilter(True)))
    assert got == {
        fam: [(q, t, b"", labels) for q, t, _, labels in full(fam)] for fam in FILTER_ROW
    }


def test_apply_label(frow, table):
    got = by_family(read_r(frow, rf.ApplyLabelFilter("lbl-1")))
    assert got == {fam: [(q, t, v, ["lbl-1"]) for q, t, v, _ in full(fam)] for fam in FILTER_ROW}
    legacy = legacy_cells(
        table.read_row(
            b"r",
            filter_=legacy_filters.RowFilterChain(
                [legacy_filters.ColumnQualifierRegexFilter(b"q2"), legacy_filters.ApplyLabelFilter("x")]
            ),
        )
    )
    assert legacy == {"cf1": {b"q2": [(b"v2", ts(2), ["x"])]}}


# Labels "must be at most 15 characters in length, and match the RE2 pattern [a-z0-9\\-]+"
# (RowFilter.apply_label_transformer, google/bigtable/v2/data.proto). The emulator checks
# with an unanchored regexp, so any label containing one valid character passes.
@pytest.mark.emulator_deviation
def test_invalid_label_is_invalid_argument(frow):
    with pytest.raises(exceptions.InvalidArgument):
        read_r(frow, rf.ApplyLabelFilter("Not_Valid"))
    with pytest.raises(exceptions.InvalidArgument):
        read_r(frow, rf.ApplyLabelFilter("a" * 16))


def test_invalid_regex_is_invalid_argument(frow):
    with pytest.raises(exceptions.InvalidArgument):
        read_r(frow, rf.ValueRegexFilter(b"("))


def test_chain(frow):
    chain = rf.RowFilterChain(
        [
            rf.FamilyNameRegexFilter("cf1"),
            rf.CellsColumnLimitFilter(2),
            rf.ValueRegexFilter(b"v.*"),
            rf.StripValueTransformerFilter(True),
        ]
    )
    assert cells(read_r(frow, chain)) == [
        ("cf1", b"q1", ts(3), b"", []),
        ("cf1", b"q1", ts(2), b"", []),
        ("cf1", b"q2", ts(2), b"", []),
    ]
    # A chain that removes everything removes the row.
    chain = rf.RowFilterChain([rf.FamilyNameRegexFilter("cf1"), rf.FamilyNameRegexFilter("cf2")])
    assert read_r(frow, chain) is None


def test_interleave(frow):
    union = rf.RowFilterUnion(
        [
            rf.RowFilterChain([rf.ColumnQualifierRegexFilter(b"q2"), rf.ApplyLabelFilter("two")]),
            rf.RowFilterChain([rf.ColumnQualifierRegexFilter(b"q10"), rf.ApplyLabelFilter("ten")]),
        ]
    )
    row = read_r(frow, union)
    assert cells(row) == [
        ("cf1", b"q10", ts(1), b"x", ["ten"]),
        ("cf1", b"q2", ts(2), b"v2", ["two"]),
    ]
    # Each sub-filter sees a copy of the row: duplicates are kept, in native order.
    union = rf.RowFilterUnion([rf.FamilyNameRegexFilter("cf2"), rf.ValueRegexFilter(b"w|z")])
    got = by_family(read_r(frow, union))
    assert got == {
        "cf2": [
            (b"a", ts(1), b"z", []),
            (b"a", ts(1), b"z", []),
            (b"q1", ts(5), b"w", []),
            (b"q1", ts(5), b"w", []),
        ]
    }
    # Duplicates count separately for a per-row limit in a chain after the interleave.
    chain = rf.RowFilterChain([union, rf.CellsRowLimitFilter(3)])
    assert len(cells(read_r(frow, chain))) == 3


def test_condition(frow, table):
    cond = rf.ConditionalRowFilter(
        rf.ValueRegexFilter(b"w"),
        true_filter=rf.FamilyNameRegexFilter("cf2"),
        false_filter=rf.FamilyNameRegexFilter("cf1"),
    )
    assert by_family(read_r(frow, cond)) == {"cf2": full("cf2")}
    cond = rf.ConditionalRowFilter(
        rf.ValueRegexFilter(b"nothing"),
        true_filter=rf.FamilyNameRegexFilter("cf2"),
        false_filter=rf.FamilyNameRegexFilter("cf1"),
    )
    assert by_family(read_r(frow, cond)) == {"cf1": full("cf1")}
    # The true/false filters see the whole row, not the predicate's output.
    cond = rf.ConditionalRowFilter(rf.ColumnQualifierRegexFilter(b"a"), true_filter=rf.PassAllFilter(True))
    assert by_family(read_r(frow, cond)) == {"cf1": full("cf1"), "cf2": full("cf2")}
    # A missing branch returns nothing.
    cond = rf.ConditionalRowFilter(rf.ValueRegexFilter(b"nothing"), true_filter=rf.PassAllFilter(True))
    assert read_r(frow, cond) is None
    # Evaluated per row.
    cond = rf.ConditionalRowFilter(
        rf.FamilyNameRegexFilter("cf2"),
        true_filter=rf.ApplyLabelFilter("has-cf2"),
        false_filter=rf.ApplyLabelFilter("no-cf2"),
    )
    labels = {r.row_key: {tuple(c.labels) for c in r.cells} for r in frow.read_rows(ReadRowsQuery(row_filter=cond))}
    assert labels == {b"other": {("no-cf2",)}, b"r": {("has-cf2",)}, b"s": {("has-cf2",)}}
    # Legacy spelling.
    legacy = legacy_filters.ConditionalRowFilter(
        base_filter=legacy_filters.ValueRegexFilter(b"w"),
        true_filter=legacy_filters.ColumnQualifierRegexFilter(b"a"),
    )
    assert legacy_cells(table.read_row(b"r", filter_=legacy)) == {"cf2": {b"a": [(b"z", ts(1), [])]}}


# The proto's own Sink example (RowFilter.sink in google/bigtable/v2/data.proto): cells
# reaching the sink go straight to the output even though a later filter in the chain
# drops them. The emulator logs "don't know how to handle filter of type
# *bigtablepb.RowFilter_Sink (ignoring it)".
@pytest.mark.emulator_deviation
def test_sink(frow):
    flt = rf.RowFilterChain(
        [
            rf.FamilyNameRegexFilter("cf1"),
            rf.RowFilterUnion(
                [rf.PassAllFilter(True), rf.RowFilterChain([rf.ApplyLabelFilter("foo"), rf.SinkFilter(True)])]
            ),
            rf.ColumnQualifierRegexFilter(b"q2"),
        ]
    )
    got = sorted(cells(read_r(frow, flt)))
    want = sorted(
        [("cf1", q, t, v, ["foo"]) for q, t, v, _ in full("cf1")] + [("cf1", b"q2", ts(2), b"v2", [])]
    )
    assert got == want


# ValueBitmask (RowFilter.value_bitmask_filter, field 20 of google/bigtable/v2/data.proto)
# is newer than the protos Strata is built from (googleapis-tonic-google-bigtable-v2 0.39),
# so Strata sees a RowFilter with no filter set. It must refuse it with INVALID_ARGUMENT,
# never ignore it and return every cell (which is what the emulator does).
@pytest.mark.emulator_deviation
def test_value_bitmask_is_refused_not_ignored(dtable):
    dtable.mutate_row(b"r", SetCell("cf1", b"a", b"\x0f\xf0", ts(1)))
    with pytest.raises(exceptions.InvalidArgument):
        dtable.read_row(b"r", row_filter=rf.ValueBitmaskFilter(b"\x01\x10"))


# ------------------------------------------------------------------------------
# GC at read time


# Bigtable itself collects garbage in the background ("up to a week"; reads may still
# return expired cells - https://cloud.google.com/bigtable/docs/garbage-collection), so
# this is a Strata guarantee: GC rules are applied when reading. The emulator also GCs
# lazily (a background loop every 0.5-1.5 s).
@pytest.mark.strata_only
def test_gc_max_versions_applied_at_read(make_table, data_table_of):
    table = make_table(families={"v2": cf.MaxVersionsGCRule(2), "all": None})
    dtable = data_table_of(table)
    dtable.mutate_row(
        b"r",
        [SetCell(fam, b"q", b"%d" % n, ts(n)) for n in (1, 2, 3) for fam in ("v2", "all")],
    )
    got = by_family(dtable.read_row(b"r"))
    assert [t for _, t, _, _ in got["v2"]] == [ts(3), ts(2)]
    assert [t for _, t, _, _ in got["all"]] == [ts(3), ts(2), ts(1)]


@pytest.mark.strata_only
def test_gc_max_age_applied_at_read(make_table, data_table_of):
    import datetime

    from btutil import now_micros

    table = make_table(families={"young": cf.MaxAgeGCRule(datetime.timedelta(hours=1))})
    dtable = data_table_of(table)
    now = now_micros() // 1000 * 1000
    dtable.mutate_row(
        b"r",
        [
            SetCell("young", b"new", b"n", now),
            SetCell("young", b"old", b"o", now - 2 * 3600 * 1_000_000),
        ],
    )
    assert [c[1] for c in cells(dtable.read_row(b"r"))] == [b"new"]


# ------------------------------------------------------------------------------
# SampleRowKeys


def test_sample_row_keys(dtable, table):
    dtable.bulk_mutate_rows(
        [RowMutationEntry(b"k%05d" % i, SetCell("cf1", b"q", b"x" * 100, ts(1))) for i in range(2000)]
    )
    samples = dtable.sample_row_keys()
    assert samples, "SampleRowKeys returned nothing"
    # The last entry is the end of the table: the empty key.
    assert samples[-1][0] == b""
    offsets = [off for _, off in samples]
    assert offsets == sorted(offsets)
    assert all(off >= 0 for off in offsets)
    inner = [k for k, _ in samples[:-1]]
    assert inner == sorted(inner) and b"" not in inner
    legacy = [(s.row_key, s.offset_bytes) for s in table.sample_row_keys()]
    assert legacy[-1][0] == b""
