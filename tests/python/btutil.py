"""Small helpers shared by the test modules."""

from __future__ import annotations

import datetime

UTC = datetime.timezone.utc
EPOCH = datetime.datetime(1970, 1, 1, tzinfo=UTC)

# A fixed, millisecond-aligned base timestamp (2020-09-13) for explicit cell timestamps.
T0 = 1_600_000_000_000_000


def ts(n: int) -> int:
    """Timestamp in microseconds, n milliseconds after T0 (always a multiple of 1000)."""
    return T0 + n * 1000


def dt(micros: int) -> datetime.datetime:
    """Exact datetime for a microsecond timestamp (no float rounding)."""
    return EPOCH + datetime.timedelta(microseconds=micros)


def micros(d: datetime.datetime) -> int:
    delta = d - EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def now_micros() -> int:
    return micros(datetime.datetime.now(UTC))


def cells(row) -> list[tuple]:
    """Cells of a data-client Row in received order: (family, qualifier, ts, value, labels)."""
    if row is None:
        return []
    return [(c.family, c.qualifier, c.timestamp_micros, c.value, list(c.labels)) for c in row.cells]


def by_family(row) -> dict[str, list[tuple]]:
    """{family: [(qualifier, ts, value, labels), ...]} in received order.

    Bigtable leaves the order of families unspecified, but each family's cells are
    contiguous; this asserts that."""
    out: dict[str, list[tuple]] = {}
    prev = None
    for fam, q, t, v, labels in cells(row):
        if fam != prev:
            assert fam not in out, f"family {fam!r} is not contiguous in {cells(row)}"
            out[fam] = []
            prev = fam
        out[fam].append((q, t, v, labels))
    return out


def assert_native_order(row) -> None:
    """Within a family, qualifiers ascend; within a column, timestamps descend."""
    for fam, cs in by_family(row).items():
        for (q1, t1, _, _), (q2, t2, _, _) in zip(cs, cs[1:]):
            assert q1 <= q2, f"{fam}: qualifier {q1!r} before {q2!r}"
            if q1 == q2:
                assert t1 >= t2, f"{fam}:{q1!r}: ts {t1} before {t2}"


def keys(rows) -> list[bytes]:
    return [r.row_key for r in rows]


def legacy_cells(partial_row) -> dict:
    """{family: {qualifier: [(value, ts_micros, labels), ...]}} of a legacy PartialRowData."""
    if partial_row is None:
        return {}
    return {
        fam: {
            q: [(c.value, c.timestamp_micros, list(c.labels)) for c in cs] for q, cs in cols.items()
        }
        for fam, cols in partial_row.cells.items()
    }
