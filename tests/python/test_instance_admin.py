"""The instance admin API through the legacy client (google.cloud.bigtable.Client,
admin=True): instances, clusters, app profiles, IAM policies and the long-running
operations their changes return; and the async data client."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from google.api_core import exceptions
from google.cloud.bigtable import enums
from google.cloud.bigtable.policy import BIGTABLE_READER_ROLE, Policy

from conftest import PROJECT


def new_instance_id() -> str:
    return f"py-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def created(client):
    """A created instance with one cluster, deleted at the end."""
    instance = client.instance(
        new_instance_id(),
        display_name="Python instance",
        instance_type=enums.Instance.Type.PRODUCTION,
        labels={"env": "test"},
    )
    cluster = instance.cluster(
        "py-cluster-1",
        location_id="us-central1-f",
        serve_nodes=1,
        default_storage_type=enums.StorageType.SSD,
    )
    op = instance.create(clusters=[cluster])
    op.result(timeout=30)
    yield instance
    try:
        instance.delete()
    except exceptions.NotFound:
        pass


def test_create_exists_reload_list_update_delete(client, created):
    assert created.exists() is True
    fresh = client.instance(created.instance_id)
    fresh.reload()
    assert fresh.display_name == "Python instance"
    assert fresh.labels == {"env": "test"}
    assert fresh.state == enums.Instance.State.READY
    instances, failed = client.list_instances()
    assert failed == []
    assert created.instance_id in {i.instance_id for i in instances}
    created.display_name = "Renamed instance"
    created.update().result(timeout=30)
    fresh.reload()
    assert fresh.display_name == "Renamed instance"
    created.delete()
    assert created.exists() is False
    assert client.instance(new_instance_id()).exists() is False


def test_an_instance_holding_tables_exists(client, instance, table):
    # The emulator habit stays: tables may live in an instance never created.
    assert instance.exists() is True
    instances, _ = client.list_instances()
    assert instance.instance_id in {i.instance_id for i in instances}


def test_creating_twice_and_bad_ids(client, created):
    again = client.instance(created.instance_id, display_name="Python instance")
    with pytest.raises(exceptions.AlreadyExists):
        again.create(location_id="us-central1-f").result(timeout=30)
    bad = client.instance("x", display_name="Python instance")
    with pytest.raises(exceptions.InvalidArgument):
        bad.create(location_id="us-central1-f").result(timeout=30)


def test_clusters(created):
    clusters, failed = created.list_clusters()
    assert failed == []
    assert [c.cluster_id for c in clusters] == ["py-cluster-1"]
    c = created.cluster("py-cluster-1")
    assert c.exists() is True
    c.reload()
    assert c.location_id == "us-central1-f"
    assert c.serve_nodes == 1
    assert created.cluster("py-cluster-9").exists() is False
    with pytest.raises(exceptions.FailedPrecondition):
        c.delete()


def test_app_profiles(created):
    profile = created.app_profile(
        "batch",
        routing_policy_type=enums.RoutingPolicyType.SINGLE,
        description="batch jobs",
        cluster_id="py-cluster-1",
        allow_transactional_writes=False,
    )
    profile.create(ignore_warnings=True)
    assert profile.exists() is True
    ids = sorted(p.app_profile_id for p in created.list_app_profiles())
    assert ids == ["batch", "default"]
    profile.description = "nightly batch"
    profile.update(ignore_warnings=True).result(timeout=30)
    again = created.app_profile("batch")
    again.reload()
    assert again.description == "nightly batch"
    assert again.routing_policy_type == enums.RoutingPolicyType.SINGLE
    assert again.cluster_id == "py-cluster-1"
    profile.delete(ignore_warnings=True)
    assert profile.exists() is False


def test_iam_policies(created, table):
    policy = created.get_iam_policy()
    assert policy.bigtable_readers == frozenset()
    policy[BIGTABLE_READER_ROLE] = [Policy.user("ada@example.com")]
    stored = created.set_iam_policy(policy)
    assert stored.bigtable_readers == frozenset({"user:ada@example.com"})
    assert created.get_iam_policy().bigtable_readers == frozenset({"user:ada@example.com"})
    perms = ["bigtable.tables.readRows", "bigtable.tables.mutateRows"]
    assert created.test_iam_permissions(perms) == perms
    # Tables have policies too.
    assert table.get_iam_policy().bigtable_readers == frozenset()


def test_async_data_client(server, table):
    from google.cloud.bigtable.data import BigtableDataClientAsync, ReadRowsQuery, SetCell

    async def run():
        async with BigtableDataClientAsync(project=PROJECT) as dc:
            t = dc.get_table(table._instance.instance_id, table.table_id)
            await t.mutate_row(b"a", SetCell("cf1", b"q", b"async"))
            rows = await t.read_rows(ReadRowsQuery())
            return [(r.row_key, r.cells[0].value) for r in rows]

    assert asyncio.run(run()) == [(b"a", b"async")]
