"""Regex filters on arbitrary bytes through the real client: LiteralValueFilter packs an
int into 8 bytes and escapes them the RE2 way, copying bytes >= 0x80 raw, so the pattern
is not UTF-8. Bigtable matches it byte for byte (RE2 over Latin-1), and so must Strata."""

from __future__ import annotations

import struct

import pytest
from google.cloud.bigtable import row_filters as legacy_filters
from google.cloud.bigtable.data import ReadRowsQuery, RowMutationEntry, SetCell
from google.cloud.bigtable.data import row_filters as rf

from btutil import keys, ts

INTS = [-1, 0, 1, 2852126720, -1431655766, 2**63 - 1, -(2**63), 0x7F80FF000A0D5C5D]


@pytest.fixture
def byte_table(dtable):
    """Row b"b%02x" holds cf1:q = the one byte; row b"i<n>" holds cf1:q = n packed."""
    entries = [
        RowMutationEntry(b"b%02x" % b, SetCell("cf1", b"q", bytes([b]), ts(1)))
        for b in range(256)
    ]
    entries += [
        RowMutationEntry(b"i%d" % i, SetCell("cf1", b"q", struct.pack(">q", n), ts(1)))
        for i, n in enumerate(INTS)
    ]
    entries.append(RowMutationEntry(b"u", SetCell("cf1", b"q", "☃".encode(), ts(1))))
    dtable.bulk_mutate_rows(entries)
    return dtable


def scan(dtable, flt):
    return keys(dtable.read_rows(ReadRowsQuery(row_filter=flt)))


def test_literal_value_filter_on_packed_ints(byte_table):
    for i, n in enumerate(INTS):
        assert scan(byte_table, rf.LiteralValueFilter(n)) == [b"i%d" % i], n


def test_literal_value_filter_on_every_byte(byte_table):
    for b in range(256):
        assert scan(byte_table, rf.LiteralValueFilter(bytes([b]))) == [b"b%02x" % b], b


def test_utf8_value_regex_matches_its_bytes(byte_table):
    assert scan(byte_table, rf.LiteralValueFilter("☃")) == [b"u"]
    assert scan(byte_table, rf.ValueRegexFilter("☃".encode())) == [b"u"]
    # `.` is one byte, so three of them match the three-byte snowman.
    assert b"u" in scan(byte_table, rf.ValueRegexFilter(b"..."))
    # \C is any byte: every one-byte value, newline included.
    assert len(scan(byte_table, rf.ValueRegexFilter(rb"\C"))) == 256


def test_legacy_client_value_regex_on_raw_bytes(byte_table, table):
    # Eight raw 0xff bytes are no regex metacharacters: they match -1 packed, only.
    rows = table.read_rows(filter_=legacy_filters.ValueRegexFilter(struct.pack(">q", -1)))
    assert [r.row_key for r in rows] == [b"i0"]
    high = table.read_rows(filter_=legacy_filters.ValueRegexFilter(b"[\x80-\xff]"))
    assert len([r.row_key for r in high]) == 128
