"""The Elasticsearch store's own protocol: round trips, ids in paths, crashes between steps,
unknown outcomes, refreshes, unreachable clusters, URLs and options."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
import zipfile
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import unquote

import pytest
from confstore_elasticsearch import ElasticsearchConfigStore
from confstore_elasticsearch._documents import load_mapping
from confstore_elasticsearch.emulator import ElasticsearchEmulator

from confstore import (
    BackendUnavailableError,
    ConfigEntry,
    ConfigKey,
    ConfigScope,
    InvalidConfigError,
    InvalidIdentifierError,
    VersionConflictError,
    open_store,
)
from confstore._registry import backend_registry
from confstore.docstore import Head, Record, RecordKind, WriteOutcome
from confstore.http import RequestInfo

StoreFactory = Callable[..., Awaitable[ElasticsearchConfigStore]]
KEY = ("acme", "system", "svc", "db.url")
SCHEMAS = Path(__file__).resolve().parents[3] / "schemas" / "elasticsearch"


class Crash(Exception):
    """Stands for a writer process dying just before it sends a given request."""


def crash_before(store: ElasticsearchConfigStore, method: str, path_part: str) -> None:
    def hook(info: RequestInfo) -> None:
        if info.method == method and path_part in info.url:
            raise Crash(info.url)

    store.http.request_hooks.append(hook)


async def versions_of(store: ElasticsearchConfigStore) -> list[int]:
    return [entry.version for entry in await store.get_config_history(*KEY, limit=100)]


async def test_a_latest_read_is_one_request(
    make_es_store: StoreFactory, es_emulator: ElasticsearchEmulator
) -> None:
    store = await make_es_store()
    await store.set_config(*KEY, {"v": 1})
    es_emulator.clear_log()
    assert (await store.get_config(*KEY)) is not None
    assert len(es_emulator.requests) == 1


async def test_a_write_is_three_requests(
    make_es_store: StoreFactory, es_emulator: ElasticsearchEmulator
) -> None:
    store = await make_es_store()
    await store.set_config(*KEY, {"v": 1})
    es_emulator.clear_log()
    await store.set_config(*KEY, {"v": 2}, expected_version=1)
    assert [(r.method, r.path.split("/")[2]) for r in es_emulator.requests] == [
        ("GET", "_doc"),
        ("POST", "_create"),
        ("POST", "_doc"),
    ]


async def test_a_history_read_is_two_requests(
    make_es_store: StoreFactory, es_emulator: ElasticsearchEmulator
) -> None:
    store = await make_es_store()
    for number in range(5):
        await store.set_config(*KEY, {"v": number})
    es_emulator.clear_log()
    assert await versions_of(store) == [5, 4, 3, 2, 1]
    assert len(es_emulator.requests) == 2


async def test_identifiers_reach_paths_only_percent_encoded(
    make_es_store: StoreFactory, es_emulator: ElasticsearchEmulator
) -> None:
    store = await make_es_store()
    tricky = ("t:1", "agent", "a.b-c_d", "x:y.z")
    await store.set_config(*tricky, {"v": 1})
    await store.get_config_history(*tricky)
    await store.delete_config(*tricky, purge=True)
    document_paths = [
        r.path for r in es_emulator.requests if "/_doc/" in r.path or "/_create/" in r.path
    ]
    assert document_paths
    for path in document_paths:
        _index, _action, raw_id = path.strip("/").split("/")
        assert ":" not in raw_id
        assert unquote(raw_id).startswith("t:1/agent/a.b-c_d/x:y.z")


async def test_a_writer_that_died_after_creating_its_version_leaves_no_gap(
    make_es_store: StoreFactory,
) -> None:
    dying, survivor = await make_es_store(), await make_es_store()
    await survivor.set_config(*KEY, {"v": 1})
    crash_before(dying, "POST", "-heads/_doc/")
    with pytest.raises(Crash):
        await dying.set_config(*KEY, {"v": "dying"})
    assert (await survivor.get_config(*KEY)).version == 1  # type: ignore[union-attr]
    written = await survivor.set_config(*KEY, {"v": 3})
    assert written.version == 3
    assert await versions_of(survivor) == [3, 2, 1]
    assert (await survivor.get_config(*KEY, version=2)).config_value == {"v": "dying"}  # type: ignore[union-attr]


async def test_a_first_writer_that_died_before_creating_the_head_does_not_block_the_key(
    make_es_store: StoreFactory,
) -> None:
    dying, survivor = await make_es_store(), await make_es_store()
    crash_before(dying, "POST", "-heads/_create/")
    with pytest.raises(Crash):
        await dying.set_config(*KEY, {"v": "dying"})
    assert (await survivor.set_config(*KEY, {"v": 2})).version == 2
    assert await versions_of(survivor) == [2, 1]


async def test_compare_and_set_counts_the_version_a_dead_writer_left(
    make_es_store: StoreFactory,
) -> None:
    dying, survivor = await make_es_store(), await make_es_store()
    await survivor.set_config(*KEY, {"v": 1})
    crash_before(dying, "POST", "-heads/_doc/")
    with pytest.raises(Crash):
        await dying.set_config(*KEY, {"v": 2})
    with pytest.raises(VersionConflictError) as conflict:
        await survivor.set_config(*KEY, {"v": 3}, expected_version=1)
    assert (conflict.value.expected, conflict.value.actual) == (1, 2)


async def test_a_purge_that_died_after_marking_the_head_is_finished_by_the_next_writer(
    make_es_store: StoreFactory,
) -> None:
    dying, survivor = await make_es_store(), await make_es_store()
    for number in range(3):
        await survivor.set_config(*KEY, {"v": number})
    crash_before(dying, "POST", "_delete_by_query")
    with pytest.raises(Crash):
        await dying.delete_config(*KEY, purge=True)
    assert await survivor.get_config(*KEY) is None
    assert (await survivor.set_config(*KEY, {"v": "again"})).version == 1
    assert await versions_of(survivor) == [1]
    assert (await survivor.get_stats())["total_versions"] == 1


async def test_a_late_purge_finisher_leaves_the_keys_next_life_alone(
    make_es_store: StoreFactory,
) -> None:
    dying, survivor, late = await make_es_store(), await make_es_store(), await make_es_store()
    await survivor.set_config(*KEY, {"v": "first life"})
    crash_before(dying, "POST", "_delete_by_query")
    with pytest.raises(Crash):
        await dying.delete_config(*KEY, purge=True)
    marked_head = await late.documents.get_head(_key())
    assert marked_head is not None
    assert marked_head.purging
    await survivor.set_config(*KEY, {"v": "second life"})
    await late._finish_purge(marked_head)
    assert (await survivor.get_config(*KEY)).config_value == {"v": "second life"}  # type: ignore[union-attr]
    assert await versions_of(survivor) == [1]


@pytest.mark.parametrize("path_part", ["-versions/_create/", "-heads/_create/", "-heads/_doc/"])
async def test_a_write_whose_answer_was_lost_is_resolved_by_reading_back(
    make_es_store: StoreFactory, es_emulator: ElasticsearchEmulator, path_part: str
) -> None:
    store = await make_es_store()
    if path_part != "-heads/_create/":
        await store.set_config(*KEY, {"v": 1})
    es_emulator.inject("drop_after", method="POST", path_contains=path_part)
    written = await store.set_config(*KEY, {"v": "lost answer"})
    assert es_emulator.faults == []
    assert await versions_of(store) == list(range(written.version, 0, -1))
    assert await store.get_config(*KEY) == written


async def test_a_503_on_a_create_is_resolved_by_reading_back(
    make_es_store: StoreFactory, es_emulator: ElasticsearchEmulator
) -> None:
    store = await make_es_store()
    es_emulator.inject(status=503, method="POST", path_contains="-versions/_create/")
    written = await store.set_config(*KEY, {"v": 1})
    assert written.version == 1
    assert await versions_of(store) == [1]


async def test_a_409_on_a_create_only_write_is_final(make_es_store: StoreFactory) -> None:
    first, second = await make_es_store(), await make_es_store()
    results = await asyncio.gather(
        first.set_config(*KEY, {"v": "a"}, expected_version=0),
        second.set_config(*KEY, {"v": "b"}, expected_version=0),
        return_exceptions=True,
    )
    winners = [result for result in results if isinstance(result, ConfigEntry)]
    losers = [result for result in results if isinstance(result, VersionConflictError)]
    assert len(winners) == 1
    assert len(losers) == 1
    assert (losers[0].expected, losers[0].actual) == (0, 1)


async def test_listing_refreshes_the_heads_index_before_searching(
    make_es_store: StoreFactory, es_emulator: ElasticsearchEmulator
) -> None:
    store = await make_es_store()
    await store.set_config(*KEY, {"v": 1})
    es_emulator.clear_log()
    assert len(await store.list_configs("acme")) == 1
    assert [r.path for r in es_emulator.requests] == [
        "/confstore-heads/_refresh",
        "/confstore-heads/_search",
    ]


async def test_the_change_feed_delivers_a_late_write_within_the_window_once(
    make_es_store: StoreFactory, es_emulator: ElasticsearchEmulator
) -> None:
    writer, reader = await make_es_store(), await make_es_store()
    written = await writer.set_config(*KEY, {"v": 1})
    cursor = await reader.current_cursor()
    # A slow writer on another host: its version record is stamped before the reader's
    # high-water mark but becomes visible (with its head) only now.
    late = ConfigEntry(
        "acme", ConfigScope.AGENT, "slow", "k", {"v": 1}, 1, written.created_at, written.updated_at
    )
    record = Record(
        RecordKind.VERSION,
        late.key,
        0,
        1,
        False,
        _micros(written.updated_at) - 1000,
        "slow-writer",
        late,
    )
    assert await writer.documents.create_record(record) is WriteOutcome.APPLIED
    assert await writer.documents.put_head(Head.showing(record), None) is WriteOutcome.APPLIED
    batch = await reader.changes_since(cursor)
    assert [(change.key, change.version) for change in batch.changes] == [(late.key, 1)]
    assert (await reader.changes_since(batch.cursor)).changes == ()


async def test_a_cursor_this_store_did_not_issue_is_refused(make_es_store: StoreFactory) -> None:
    store = await make_es_store()
    with pytest.raises(InvalidConfigError):
        await store.changes_since("42")


async def test_reads_of_an_unreachable_cluster_raise_backend_unavailable(
    unreachable_es_store: ElasticsearchConfigStore,
) -> None:
    with pytest.raises(BackendUnavailableError):
        await unreachable_es_store.get_config(*KEY)
    with pytest.raises(BackendUnavailableError):
        await unreachable_es_store.list_configs("acme")


async def test_writes_to_an_unreachable_cluster_raise_backend_unavailable(
    unreachable_es_store: ElasticsearchConfigStore,
) -> None:
    with pytest.raises(BackendUnavailableError):
        await unreachable_es_store.set_config(*KEY, {"v": 1})
    with pytest.raises(BackendUnavailableError):
        await unreachable_es_store.delete_config(*KEY)


async def test_health_check_of_an_unreachable_cluster_is_false(
    unreachable_es_store: ElasticsearchConfigStore,
) -> None:
    assert await unreachable_es_store.health_check() is False


async def test_health_check_asks_cluster_health(
    make_es_store: StoreFactory, es_emulator: ElasticsearchEmulator
) -> None:
    store = await make_es_store()
    es_emulator.clear_log()
    assert await store.health_check() is True
    assert [r.path for r in es_emulator.requests] == ["/_cluster/health"]


async def test_health_check_of_a_hanging_cluster_is_false_within_the_timeout(
    make_es_store: StoreFactory, es_emulator: ElasticsearchEmulator
) -> None:
    store = await make_es_store(timeout=0.1)
    # Far longer than the timeout, and the bound halfway: ended by the timeout, not the answer
    # (a hang of 0.5 s and a bound of 0.45 s left a loaded machine 0.35 s of slack).
    es_emulator.latency = 2.0
    started = time.perf_counter()
    assert await store.health_check() is False
    assert time.perf_counter() - started < 1.0


async def test_initialize_is_idempotent_and_tolerates_a_racing_initializer(
    es_emulator: ElasticsearchEmulator,
) -> None:
    stores = [ElasticsearchConfigStore(es_emulator.url) for _ in range(3)]
    await asyncio.gather(*(store.initialize() for store in stores))
    await stores[0].initialize()
    for store in stores:
        await store.close()
    assert sorted(es_emulator.indices) == ["confstore-heads", "confstore-versions"]


async def test_initialize_creates_strict_mappings(
    make_es_store: StoreFactory, es_emulator: ElasticsearchEmulator
) -> None:
    await make_es_store(index="strictly")
    for kind in ("heads", "versions"):
        assert es_emulator.indices[f"strictly-{kind}"].mappings["dynamic"] == "strict"


@pytest.mark.parametrize("kind", ["heads", "versions"])
def test_the_packaged_mappings_equal_the_schemas_folder(kind: str) -> None:
    assert load_mapping(kind) == json.loads((SCHEMAS / f"{kind}.json").read_text())


async def test_basic_auth_from_the_url_reaches_the_server(
    es_emulator: ElasticsearchEmulator,
) -> None:
    url = es_emulator.url.replace("http://", "elasticsearch+http://user:p%40ss@")
    async with open_store(url, index="auth") as store:
        await store.get_config(*KEY)
    assert es_emulator.requests[-1].headers["Authorization"] == "Basic dXNlcjpwQHNz"


@pytest.mark.parametrize(
    ("option", "header"),
    [("api_key", "ApiKey secret"), ("bearer_token", "Bearer secret")],
)
async def test_api_key_and_bearer_token_reach_the_server(
    es_emulator: ElasticsearchEmulator, option: str, header: str
) -> None:
    url = es_emulator.url.replace("http://", "opensearch+http://")
    async with open_store(url, **{option: "secret"}) as store:
        await store.get_config(*KEY)
    assert es_emulator.requests[-1].headers["Authorization"] == header


def test_every_scheme_is_registered_through_the_entry_point() -> None:
    schemes = set(backend_registry.schemes())
    assert {
        "elasticsearch+http",
        "elasticsearch+https",
        "opensearch+http",
        "opensearch+https",
    } <= schemes


def test_url_options_configure_the_store() -> None:
    store = open_store("opensearch+https://es.example:9200?index=team-a&timeout=3&verify=false")
    assert isinstance(store, ElasticsearchConfigStore)
    assert store.index_name("heads") == "team-a-heads"
    assert store.http.base_url == "https://es.example:9200"
    assert store.http.timeout == 3.0
    assert store.flavor == "opensearch"


@pytest.mark.parametrize(
    "url", ["elasticsearch+http://h:9200?colour=red", "elasticsearch+http://h:9200?index=Upper"]
)
def test_unknown_options_and_bad_index_prefixes_are_refused(url: str) -> None:
    with pytest.raises(InvalidConfigError):
        open_store(url)


def _micros(moment: datetime) -> int:
    return (moment - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)


def _key_parts() -> tuple[str, ConfigScope, str, str]:
    return KEY[0], ConfigScope(KEY[1]), KEY[2], KEY[3]


def _now() -> datetime:
    return datetime.now(UTC)


def _key() -> ConfigKey:
    return ConfigKey(KEY[0], ConfigScope(KEY[1]), KEY[2], KEY[3])


async def test_a_429_on_a_write_is_retried(
    make_es_store: StoreFactory, es_emulator: ElasticsearchEmulator
) -> None:
    store = await make_es_store()
    es_emulator.inject(status=429, times=2, method="POST", path_contains="-versions/_create/")
    assert (await store.set_config(*KEY, {"v": 1})).version == 1
    creates = es_emulator.requests_matching("POST", "-versions/_create/")
    assert [r.status for r in creates] == [429, 429, 201]


async def test_a_503_on_a_read_is_retried(
    make_es_store: StoreFactory, es_emulator: ElasticsearchEmulator
) -> None:
    store = await make_es_store()
    await store.set_config(*KEY, {"v": 1})
    es_emulator.inject(status=503, times=2, method="GET")
    assert (await store.get_config(*KEY)).version == 1  # type: ignore[union-attr]


def test_the_wheel_ships_the_mappings(tmp_path: Path) -> None:
    pytest.importorskip("hatchling", reason="building the wheel offline needs hatchling installed")
    plugin = Path(__file__).resolve().parents[1]
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--wheel-dir",
            str(tmp_path),
            str(plugin),
        ],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("confstore_elasticsearch-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "confstore_elasticsearch/mappings/heads.json" in names
    assert "confstore_elasticsearch/mappings/versions.json" in names


@pytest.mark.parametrize("hostile", ["a/b", "../heads", "a%2Fb", "a?b=c", "a#b", "caf\u00e9", " a"])
async def test_hostile_identifiers_never_reach_the_cluster(
    make_es_store: StoreFactory, es_emulator: ElasticsearchEmulator, hostile: str
) -> None:
    store = await make_es_store()
    es_emulator.clear_log()
    with pytest.raises(InvalidIdentifierError):
        await store.set_config(hostile, "system", "svc", "key", {"v": 1})
    with pytest.raises(InvalidIdentifierError):
        await store.get_config("acme", "system", hostile, "key")
    with pytest.raises(InvalidIdentifierError):
        await store.delete_config("acme", "system", "svc", hostile, purge=True)
    assert es_emulator.requests == []


async def test_a_version_left_from_before_a_purge_is_not_adopted(
    make_es_store: StoreFactory,
) -> None:
    store = await make_es_store()
    await store.set_config(*KEY, {"v": "old life"})
    await store.delete_config(*KEY, purge=True)
    await store.set_config(*KEY, {"v": "new life"})
    # A writer of the key's previous life died after creating its version 2.
    stale = ConfigEntry(*_key_parts(), {"v": "old life"}, 2, _now(), _now())
    record = Record(RecordKind.VERSION, _key(), 0, 2, False, 1, "dead-writer", stale)
    assert await store.documents.create_record(record) is WriteOutcome.APPLIED
    written = await store.set_config(*KEY, {"v": "next"})
    assert written.version == 2
    assert (await store.get_config(*KEY, version=2)).config_value == {"v": "next"}  # type: ignore[union-attr]
