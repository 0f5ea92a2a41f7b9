"""Table admin: CreateTable, GetTable, ListTables, DeleteTable, ModifyColumnFamilies,
DropRowRange, through the legacy client (google.cloud.bigtable.Client, admin=True)."""

from __future__ import annotations

import datetime

import pytest
from google.api_core import exceptions
from google.cloud.bigtable import column_family as cf

from btutil import keys
from conftest import unique_table_id

GC_RULES = {
    "versions": cf.MaxVersionsGCRule(3),
    "age": cf.MaxAgeGCRule(datetime.timedelta(days=5)),
    "union": cf.GCRuleUnion([cf.MaxVersionsGCRule(2), cf.MaxAgeGCRule(datetime.timedelta(hours=1))]),
    "inter": cf.GCRuleIntersection(
        [cf.MaxVersionsGCRule(1), cf.MaxAgeGCRule(datetime.timedelta(seconds=30))]
    ),
    "nested": cf.GCRuleUnion(
        [
            cf.GCRuleIntersection(
                [cf.MaxAgeGCRule(datetime.timedelta(days=7)), cf.MaxVersionsGCRule(2)]
            ),
            cf.MaxVersionsGCRule(10),
        ]
    ),
    "plain": None,
}


def write(table, key: bytes, family: str = "cf1", qualifier: bytes = b"q", value: bytes = b"v"):
    row = table.direct_row(key)
    row.set_cell(family, qualifier, value)
    status = row.commit()
    assert status.code == 0, status


def test_create_table_with_gc_rules_and_list_column_families(make_table):
    table = make_table(families=GC_RULES)
    families = table.list_column_families()
    assert set(families) == set(GC_RULES)
    for name, rule in GC_RULES.items():
        assert families[name].gc_rule == rule, name


def test_table_exists(instance, make_table):
    table = make_table()
    assert table.exists() is True
    assert instance.table(unique_table_id("missing")).exists() is False


def test_list_tables(instance, make_table):
    a = make_table()
    b = make_table()
    ids = {t.table_id for t in instance.list_tables()}
    assert {a.table_id, b.table_id} <= ids
    b.delete()
    ids = {t.table_id for t in instance.list_tables()}
    assert a.table_id in ids and b.table_id not in ids
    assert b.exists() is False


def test_create_existing_table_raises_already_exists(make_table):
    table = make_table()
    with pytest.raises(exceptions.AlreadyExists):
        table.create()


def test_delete_missing_table_raises_not_found(instance):
    with pytest.raises(exceptions.NotFound):
        instance.table(unique_table_id("missing")).delete()


def test_list_column_families_of_missing_table_raises_not_found(instance):
    with pytest.raises(exceptions.NotFound):
        instance.table(unique_table_id("missing")).list_column_families()


def test_initial_splits(make_table):
    table = make_table(splits=[b"g", b"p"])
    for k in (b"z", b"a", b"p", b"g", b"h", b"o"):
        write(table, k)
    assert keys(table.read_rows()) == [b"a", b"g", b"h", b"o", b"p", b"z"]
    assert keys(table.read_rows(start_key=b"g", end_key=b"p")) == [b"g", b"h", b"o"]
    samples = list(table.sample_row_keys())
    assert samples and samples[-1].row_key == b""


@pytest.mark.strata_only
def test_initial_splits_are_tablet_boundaries_in_samples(make_table):
    # Bigtable's samples fall on tablet boundaries; Strata's tablets start
    # at the initial splits, so every split key is a sample.
    table = make_table(splits=[b"p", b"g"])
    for k in (b"a", b"h", b"q"):
        write(table, k)
    samples = [s.row_key for s in table.sample_row_keys()]
    assert samples[-1] == b""
    assert b"g" in samples and b"p" in samples
    assert samples[:-1] == sorted(samples[:-1])


def test_column_family_create_update_delete(make_table):
    table = make_table(families={"cf1": None})
    fam = table.column_family("extra", cf.MaxVersionsGCRule(1))
    fam.create()
    assert table.list_column_families()["extra"].gc_rule == cf.MaxVersionsGCRule(1)

    fam.gc_rule = cf.GCRuleUnion(
        [cf.MaxVersionsGCRule(5), cf.MaxAgeGCRule(datetime.timedelta(days=1))]
    )
    fam.update()
    assert table.list_column_families()["extra"].gc_rule == fam.gc_rule

    write(table, b"r", family="extra", value=b"old")
    write(table, b"r", family="cf1", value=b"keep")
    fam.delete()
    assert set(table.list_column_families()) == {"cf1"}
    # Writing to the dropped family now fails ...
    row = table.direct_row(b"r")
    row.set_cell("extra", b"q", b"x")
    assert row.commit().code != 0
    # ... and re-creating it does not resurrect the dropped data.
    table.column_family("extra").create()
    row = table.read_row(b"r")
    assert set(row.cells) == {"cf1"}
    assert row.cells["cf1"][b"q"][0].value == b"keep"


def test_drop_by_prefix(table):
    for k in (b"a", b"a1", b"ab", b"abc", b"b", b"ba", b"c"):
        write(table, k)
    table.drop_by_prefix(b"ab")
    assert keys(table.read_rows()) == [b"a", b"a1", b"b", b"ba", b"c"]
    table.drop_by_prefix(b"a")
    assert keys(table.read_rows()) == [b"b", b"ba", b"c"]
    # The table and its schema survive; writes still work.
    write(table, b"a2")
    assert keys(table.read_rows()) == [b"a2", b"b", b"ba", b"c"]


def test_truncate(table, make_table):
    other = make_table()
    for k in (b"a", b"b", b"c"):
        write(table, k)
    write(other, b"x")
    table.truncate()
    assert keys(table.read_rows()) == []
    assert table.exists()
    assert set(table.list_column_families()) == {"cf1", "cf2"}
    # Other tables are untouched, and the truncated table accepts new writes.
    assert keys(other.read_rows()) == [b"x"]
    write(table, b"d")
    assert keys(table.read_rows()) == [b"d"]


def test_tables_are_isolated(make_table):
    a = make_table()
    b = make_table()
    row = a.direct_row(b"k")
    row.set_cell("cf1", b"q", b"in-a")
    assert row.commit().code == 0
    assert a.read_row(b"k") is not None
    assert b.read_row(b"k") is None
    assert keys(b.read_rows()) == []
