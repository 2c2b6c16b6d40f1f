"""The etcd store's own protocol on a real cluster: round trips, unknown outcomes, failover,
etcd's limits, key layout, URLs and options."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from confstore_etcd import EtcdConfigStore
from confstore_etcd._keys import KeySpace
from etcd_test_support import FaultProxy, RequestLog, free_port, is_write_txn

from confstore import (
    BackendError,
    ChangeKind,
    ConfigKey,
    ConfigScope,
    InvalidConfigError,
    StoreURL,
    VersionConflictError,
    open_store,
)

KEY = ("acme", "system", "svc", "db.url")
CONFIG_KEY = ConfigKey("acme", ConfigScope.SYSTEM, "svc", "db.url")


async def versions_of(store: EtcdConfigStore, key: tuple[str, str, str, str] = KEY) -> list[int]:
    return [entry.version for entry in await store.get_config_history(*key, limit=1000)]


async def test_a_latest_read_and_a_history_are_one_request_each(make_etcd_store: Any) -> None:
    store = await make_etcd_store()
    for number in range(12):
        await store.set_config(*KEY, {"n": number})
    log = RequestLog().attach(store)
    assert (await store.get_config(*KEY)).config_value == {"n": 11}
    assert [entry.version for entry in await store.get_config_history(*KEY, limit=10)] == list(
        range(12, 2, -1)
    )
    assert log.paths == ["kv/range", "kv/range"]


async def test_a_write_is_one_transaction_once_the_handle_knows_the_key(
    make_etcd_store: Any,
) -> None:
    store = await make_etcd_store()
    log = RequestLog().attach(store)
    await store.set_config(*KEY, {"n": 1})
    assert log.paths == ["kv/range", "kv/txn"]  # the head, then the transaction
    log.clear()
    await store.set_config(*KEY, {"n": 2})
    await store.set_config(*KEY, {"n": 3}, expected_version=2)
    assert log.paths == ["kv/txn", "kv/txn"]


async def test_a_writer_with_a_stale_head_catches_up_in_the_same_answer(
    make_etcd_store: Any,
) -> None:
    mine, other = await make_etcd_store(), await make_etcd_store()
    await mine.set_config(*KEY, {"n": 1})
    await other.set_config(*KEY, {"n": 2})
    log = RequestLog().attach(mine)
    entry = await mine.set_config(*KEY, {"n": 3})
    assert entry.version == 3
    assert log.paths == ["kv/txn", "kv/txn"]  # the failed compare returned the new head
    with pytest.raises(VersionConflictError) as conflict:
        await other.set_config(*KEY, {"n": 4}, expected_version=2)
    assert (conflict.value.expected, conflict.value.actual) == (2, 3)
    assert await versions_of(mine) == [3, 2, 1]


async def test_an_answer_lost_after_the_write_applied_is_resolved_without_a_duplicate(
    etcd_url: str, etcd_prefix: str, make_etcd_store: Any
) -> None:
    """The proxy lets etcd apply the transaction and then drops the connection: the store
    sends the same transaction to the next member, whose failed compare shows the write won."""
    members = await _leader_first(_members(etcd_url))  # the store will start there

    async def drop_first_write(path: str, body: dict[str, Any]) -> bool:
        return is_write_txn(path, body) and not proxy.dropped

    async with FaultProxy(members[0], drop_first_write) as proxy:
        store = await make_etcd_store(_url([proxy.url, *members[1:]]))
        entry = await store.set_config(*KEY, {"n": 1})
    assert proxy.dropped == ["/v3/kv/txn"]
    assert entry.version == 1
    assert await versions_of(store) == [1]
    assert (await store.get_config(*KEY)).config_value == {"n": 1}


async def test_a_lost_answer_is_resolved_even_when_another_writer_moved_on(
    etcd_url: str, make_etcd_store: Any
) -> None:
    """Between the lost answer and the retry another host writes version 2: the head no longer
    names our write, so the store checks version 1 itself."""
    members = await _leader_first(_members(etcd_url))  # the store will start there
    other = await make_etcd_store()

    async def drop_and_write_meanwhile(path: str, body: dict[str, Any]) -> bool:
        if not is_write_txn(path, body) or proxy.dropped:
            return False
        await other.set_config(*KEY, {"by": "other"})
        return True

    async with FaultProxy(members[0], drop_and_write_meanwhile) as proxy:
        store = await make_etcd_store(_url([proxy.url, *members[1:]]))
        entry = await store.set_config(*KEY, {"by": "me"})
    assert entry.version == 1
    history = await store.get_config_history(*KEY)
    assert [(e.version, e.config_value) for e in history] == [
        (2, {"by": "other"}),
        (1, {"by": "me"}),
    ]


async def test_a_conditional_write_whose_answer_was_lost_is_not_reported_as_a_conflict(
    etcd_url: str, make_etcd_store: Any
) -> None:
    members = await _leader_first(_members(etcd_url))  # the store will start there

    async def drop_first_write(path: str, body: dict[str, Any]) -> bool:
        return is_write_txn(path, body) and not proxy.dropped

    async with FaultProxy(members[0], drop_first_write) as proxy:
        store = await make_etcd_store(_url([proxy.url, *members[1:]]))
        entry = await store.set_config(*KEY, {"n": 1}, expected_version=0)
        assert entry.version == 1
        with pytest.raises(VersionConflictError):
            await store.set_config(*KEY, {"n": 2}, expected_version=0)
    assert await versions_of(store) == [1]


async def test_requests_move_to_the_next_member_when_one_is_down(
    etcd_url: str, make_etcd_store: Any
) -> None:
    members = _members(etcd_url)
    store = await make_etcd_store(_url([f"http://127.0.0.1:{free_port()}", *members]))
    await store.set_config(*KEY, {"n": 1})
    assert (await store.get_config(*KEY)).version == 1
    assert await store.health_check() is True


async def test_a_member_without_a_leader_is_left_at_once(etcd_url: str, etcd_prefix: str) -> None:
    """A member answering 503 "no leader" (as one cut off from its cluster does, thanks to the
    Hasleader header) is not waited on: the request goes to the next member."""
    members = _members(etcd_url)
    no_leader = {"error": "etcdserver: no leader", "code": 14, "message": "etcdserver: no leader"}
    async with FaultProxy(members[0], answer=(503, no_leader)) as proxy:
        # Not initialised, so it starts at the first member (no search for the leader).
        store = EtcdConfigStore([proxy.url, *members[1:]], prefix=etcd_prefix)
        try:
            await store.set_config(*KEY, {"n": 1})
            assert (await store.get_config(*KEY)).version == 1
        finally:
            await store.close()
    assert proxy.received == ["/v3/kv/range"]  # the first read, then never again


async def test_a_value_of_the_whole_limit_fits_but_a_larger_request_is_refused_cleanly(
    make_etcd_store: Any,
) -> None:
    store = await make_etcd_store(max_value_bytes=3 * 1024 * 1024)
    megabyte = {"blob": "x" * (1024 * 1024 - len('{"blob": ""}'))}
    assert (await store.set_config(*KEY, megabyte)).version == 1
    with pytest.raises(BackendError, match="max-request-bytes"):
        await store.set_config(*KEY, {"blob": "x" * (2 * 1024 * 1024)})
    assert await versions_of(store) == [1]


async def test_a_restore_is_split_within_etcd_limits_and_runs_again_as_a_no_op(
    make_etcd_store: Any,
) -> None:
    store = await make_etcd_store()
    large = [_entry("acme", "large", v, {"blob": "y" * 200_000}) for v in range(1, 21)]
    small = [_entry("acme", f"k{key}", v, {"v": v}) for key in range(2) for v in range(1, 151)]
    log = RequestLog().attach(store)
    assert await store.import_configs("acme", {"configs": large + small}) == 320
    # 20 versions of 200 kB need 3 transactions (1.5 MiB each), 300 small ones 3 (128 ops);
    # the reads before them are read-only transactions too.
    assert log.paths.count("kv/txn") >= 6 + 2
    assert await versions_of(store, ("acme", "agent", "large", "settings")) == list(
        range(20, 0, -1)
    )
    for key in range(2):
        assert await versions_of(store, ("acme", "agent", f"k{key}", "settings")) == list(
            range(150, 0, -1)
        )
    assert await store.import_configs("acme", {"configs": large + small}) == 0
    assert (await store.get_stats())["total_versions"] == 320


async def test_a_restore_whose_guard_fails_plans_again_and_writes_each_version_once(
    etcd_url: str, make_etcd_store: Any
) -> None:
    """A restore fills version 2 of a key at version 3; just before its transaction reaches
    etcd another host writes version 4, so the head's compare fails and it plans again."""
    members = _members(etcd_url)
    key = ("acme", "agent", "k", "settings")
    other = await make_etcd_store()
    entries = [_entry("acme", "k", version, {"v": version}) for version in (1, 2, 3)]
    await other.import_configs("acme", {"configs": [entries[0], entries[2]]})

    async def write_first(path: str, body: dict[str, Any]) -> None:
        if is_write_txn(path, body) and not raced:
            raced.append(await other.set_config(*key, {"v": 4}))

    raced: list[Any] = []
    async with FaultProxy(members[0], before_forward=write_first) as proxy:
        store = await make_etcd_store(_url([proxy.url]))
        log = RequestLog().attach(store)
        assert await store.import_configs("acme", {"configs": entries}) == 1
    assert [entry.version for entry in raced] == [4]
    assert log.paths.count("kv/txn") >= 5  # heads + versions, txn; again: heads + versions, txn
    history = await other.get_config_history(*key)
    assert [(entry.version, entry.config_value) for entry in history] == [
        (4, {"v": 4}),
        (3, {"v": 3}),
        (2, {"v": 2}),
        (1, {"v": 1}),
    ]


async def test_purge_removes_every_version_and_a_later_write_starts_again(
    make_etcd_store: Any,
) -> None:
    store = await make_etcd_store()
    for number in range(3):
        await store.set_config(*KEY, {"n": number})
    cursor = await store.current_cursor()
    assert await store.delete_config(*KEY, purge=True) is True
    assert await store.get_config(*KEY, version=1) is None
    assert (await store.get_stats())["total_versions"] == 0
    assert (await store.set_config(*KEY, {"n": "again"})).version == 1
    changes = (await store.changes_since(cursor)).changes
    assert [(change.kind, change.version) for change in changes] == [
        (ChangeKind.PURGE, 3),
        (ChangeKind.SET, 1),
    ]


async def test_keys_are_laid_out_under_the_prefix_in_listing_order(
    make_etcd_store: Any, etcd_prefix: str
) -> None:
    store = await make_etcd_store()
    await store.set_config("acme", "agent", "svc-2", "k", {"n": 1})
    await store.set_config("acme", "agent", "svc", "k", {"n": 1})
    keys = KeySpace.for_prefix(etcd_prefix)
    start, end = keys.all_heads
    body = {"key": _b64(start), "range_end": _b64(end), "keys_only": True}
    stored = (await store.client.call("kv/range", body)).body["kvs"]
    assert [_unb64(kv["key"]) for kv in stored] == [
        f"{etcd_prefix}heads/acme,agent,svc,k".encode(),
        f"{etcd_prefix}heads/acme,agent,svc-2,k".encode(),
    ]
    assert [e.service for e in await store.list_configs("acme")] == ["svc", "svc-2"]


async def test_stores_on_different_prefixes_are_independent(make_etcd_store: Any) -> None:
    one = await make_etcd_store(prefix="team-a/")
    two = await make_etcd_store(prefix="team-a-2/")
    await one.set_config(*KEY, {"n": 1})
    assert await two.get_config(*KEY) is None
    assert await two.list_tenants() == []
    await one.delete_config(*KEY, purge=True)


async def test_changes_of_one_transaction_are_paged_exactly(make_etcd_store: Any) -> None:
    """A restore writes five versions in one revision; pages of two split that revision, and
    three later writes take two more pages."""
    store, peer = await make_etcd_store(), await make_etcd_store()
    cursor = await store.current_cursor()
    entries = [_entry("acme", "k", version, {"v": version}) for version in range(1, 6)]
    await store.import_configs("acme", {"configs": entries})
    for number in range(3):
        await store.set_config("acme", "agent", "k", "settings", {"v": number})
    for handle in (store, peer):  # the handle's own stream, and a replay of etcd's history
        seen, position = [], cursor
        while True:
            batch = await handle.changes_since(position, limit=2)
            seen.extend(change.version for change in batch.changes)
            assert len(batch.changes) <= 2
            position = batch.cursor
            if not batch.has_more:
                break
        assert seen == [1, 2, 3, 4, 5, 6, 7, 8]


async def test_wait_for_changes_returns_when_another_handle_writes(make_etcd_store: Any) -> None:
    store, writer = await make_etcd_store(), await make_etcd_store()
    cursor = await store.current_cursor()
    waiting = asyncio.create_task(store.wait_for_changes(cursor, 30.0))
    await asyncio.sleep(0)
    assert not waiting.done()
    await writer.set_config(*KEY, {"n": 1})
    async with asyncio.timeout(10):
        await waiting
    changes = (await store.changes_since(cursor)).changes
    assert [change.version for change in changes] == [1]


async def test_wait_for_changes_on_an_unreachable_cluster_waits_out_its_timeout(
    unreachable_etcd_store: EtcdConfigStore,
) -> None:
    loop = asyncio.get_running_loop()
    started = loop.time()
    await unreachable_etcd_store.wait_for_changes(None, 0.3)
    assert loop.time() - started >= 0.29


def test_urls_with_several_members_and_options() -> None:
    store = open_store(
        "etcd+https://alice:s%40cret@10.0.0.1:2379,10.0.0.2,[::1]:2381"
        "?prefix=team/&timeout=2.5&verify=false&max_txn_ops=64"
    )
    assert isinstance(store, EtcdConfigStore)
    assert store.client.endpoints == [
        "https://10.0.0.1:2379",
        "https://10.0.0.2:2379",
        "https://[::1]:2381",
    ]
    assert (store.prefix, store.timeout, store.max_txn_ops) == ("team/", 2.5, 64)


@pytest.mark.parametrize(
    "url",
    [
        "etcd+http://h1:2379?nope=1",
        "etcd+http://h1:2379/some/path",
        "etcd+http://h1:2379?timeout=soon",
        "etcd+http://h1:2379?prefix=",
        "etcd+http://h1:2379?max_txn_ops=2",
        "etcd+http://h1:2379,,h2",
        "etcd+http://h1:notaport",
    ],
)
def test_bad_urls_raise_invalid_config(url: str) -> None:
    with pytest.raises(InvalidConfigError):
        open_store(url)


async def test_requests_start_at_the_leader(etcd_url: str, make_etcd_store: Any) -> None:
    store = await make_etcd_store()
    leader = (await _leader_first(_members(etcd_url)))[0]
    assert store.client.current_endpoint == leader


async def _leader_first(members: list[str]) -> list[str]:
    """The members, the leader first (each one's status says whom it follows)."""
    async with EtcdConfigStore(members) as probe:
        for index, member in enumerate(probe.client.members):
            status = (await member.request("POST", "v3/maintenance/status", json_body={})).json()
            if status.get("leader") == status["header"]["member_id"]:
                return [members[index], *members[:index], *members[index + 1 :]]
    raise AssertionError("no leader")


def _members(store_url: str) -> list[str]:
    url = StoreURL.parse(store_url)
    hosts = url.hosts or ((url.host or "127.0.0.1", url.port),)
    return [f"http://{host}:{port or 2379}" for host, port in hosts]


def _url(members: list[str]) -> str:
    return "etcd+http://" + ",".join(member.split("://", 1)[1] for member in members)


def _entry(tenant_id: str, service: str, version: int, value: dict[str, Any]) -> dict[str, Any]:
    return {
        "tenant_id": tenant_id,
        "scope": "agent",
        "service": service,
        "config_key": "settings",
        "config_value": value,
        "version": version,
        "created_at": "2024-01-02T00:00:00+00:00",
        "updated_at": f"2024-01-02T{version // 3600:02d}:{version // 60 % 60:02d}:{version % 60:02d}+00:00",
        "updated_by": "restore",
        "comment": None,
        "deleted": False,
    }


def _b64(data: bytes) -> str:
    import base64

    return base64.b64encode(data).decode()


def _unb64(text: str) -> bytes:
    import base64

    return base64.b64decode(text)
