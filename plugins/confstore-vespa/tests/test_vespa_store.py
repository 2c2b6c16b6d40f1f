"""VespaConfigStore's protocol on the emulator: round trips, retries, read-back resolution,
crashed writers, encoding of identifiers, unreachable servers, URLs and compatibility."""

from __future__ import annotations

import asyncio
import re
import socket
import time
from types import SimpleNamespace
from typing import Any
from urllib.parse import unquote

import pytest
from aiohttp import web
from confstore_vespa import VespaConfigStore
from confstore_vespa._client import selection_string
from confstore_vespa.emulator import DEFAULT_SCHEMA, VespaEmulator, sequential_rounds
from confstore_vespa.emulator._selection_parser import parse_selection
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from vespa_test_support import FAST_RETRY, StoreFactory

from confstore import (
    BackendError,
    BackendUnavailableError,
    ChangeKind,
    InvalidConfigError,
    VersionConflictError,
    open_store,
)
from confstore.emulation import LoopbackServer

TENANT, SCOPE, SERVICE, KEY = "acme", "system", "svc", "db.url"
DOC = "id:confstore:config_metadata::"


def head_id(key: str = KEY) -> str:
    return f"{DOC}h/{TENANT}/{SCOPE}/{SERVICE}/{key}"


def version_id(version: int, key: str = KEY, epoch: int = 0) -> str:
    return f"{DOC}v/{TENANT}/{SCOPE}/{SERVICE}/{key}/{epoch}/{version}"


def version_documents(vespa: VespaEmulator) -> list[str]:
    return sorted(doc for doc in vespa.documents() if doc.startswith(f"{DOC}v/"))


async def write(store: VespaConfigStore, value: int, **options: object) -> int:
    entry = await store.set_config(TENANT, SCOPE, SERVICE, KEY, {"n": value}, **options)  # type: ignore[arg-type]
    return entry.version


async def test_a_latest_read_is_one_request(vespa: VespaEmulator, make_store: StoreFactory) -> None:
    store = await make_store()
    await write(store, 1)
    vespa.request_log.clear()
    entry = await store.get_config(TENANT, SCOPE, SERVICE, KEY)
    assert entry is not None
    assert [(r.method, r.operation) for r in vespa.request_log] == [("GET", "get")]


async def test_a_write_is_three_sequential_requests(
    vespa: VespaEmulator, make_store: StoreFactory
) -> None:
    store = await make_store()
    await write(store, 1)
    vespa.request_log.clear()
    await write(store, 2)
    assert [(r.method, r.operation) for r in vespa.request_log] == [
        ("GET", "get"),
        ("POST", "put"),
        ("POST", "put"),
    ]


def hold_version_reads(
    vespa: VespaEmulator, monkeypatch: pytest.MonkeyPatch, count: int
) -> asyncio.Event:
    """The emulator answers no read of a version document until ``count`` of them have
    arrived (or the event returned is set): only a store that sends them together gets them
    answered."""
    arrived = 0
    all_arrived = asyncio.Event()
    serve = vespa._serve

    async def held(request: web.Request, target: Any, raw_path: str, *rest: Any) -> Any:
        nonlocal arrived
        if request.method == "GET" and "/docid/v/" in raw_path:
            arrived += 1
            if arrived == count:
                all_arrived.set()
            await all_arrived.wait()
        return await serve(request, target, raw_path, *rest)

    monkeypatch.setattr(vespa, "_serve", held)
    return all_arrived


async def test_history_of_ten_is_two_sequential_rounds(
    vespa: VespaEmulator, make_store: StoreFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The head, then the nine older versions at once. The nine are held until all have
    arrived, so they overlap however slowly the machine runs: with an emulated latency instead,
    a loaded machine opened the extra connections slower than that latency and the log showed
    a third round."""
    store = await make_store()
    for value in range(12):
        await write(store, value)
    vespa.request_log.clear()
    released = hold_version_reads(vespa, monkeypatch, count=9)
    try:
        async with asyncio.timeout(30):  # a store reading them one by one never gets past this
            history = await store.get_config_history(TENANT, SCOPE, SERVICE, KEY, limit=10)
    finally:
        released.set()  # nothing stays held once the test is over
    assert [entry.version for entry in history] == list(range(12, 2, -1))
    assert len(vespa.request_log) == 10
    assert sequential_rounds(vespa.request_log) == 2


async def test_identifiers_are_percent_encoded_in_document_paths(
    vespa: VespaEmulator, make_store: StoreFactory
) -> None:
    store = await make_store()
    await store.set_config("a:b.c-d_e", SCOPE, "x:y", "k:..:z", {"n": 1})
    writes = [r for r in vespa.request_log if r.operation == "put"]
    for request in writes:
        assert ":" not in request.path.split("/docid/", 1)[1]
    segments = writes[0].path.split("/docid/", 1)[1].split("/")
    assert [unquote(segment) for segment in segments] == [
        "v",
        "a:b.c-d_e",
        SCOPE,
        "x:y",
        "k:..:z",
        "0",
        "1",
    ]


async def test_listing_selections_carry_identifiers_only_as_escaped_literals(
    vespa: VespaEmulator, make_store: StoreFactory
) -> None:
    store = await make_store()
    await store.set_config("Ten:ant", SCOPE, "s.v-c", KEY, {"n": 1})
    vespa.request_log.clear()
    await store.list_configs("Ten:ant", service="s.v-c")
    selections = {r.query["selection"] for r in vespa.request_log if r.operation == "visit"}
    (selection,) = selections
    assert selection_string("Ten:ant") in selection
    assert selection_string("s.v-c") in selection
    parse_selection(selection, DEFAULT_SCHEMA)


async def test_tenant_ids_are_case_sensitive(make_store: StoreFactory) -> None:
    store = await make_store()
    await store.set_config("Acme", SCOPE, SERVICE, KEY, {"n": 1})
    await store.set_config("acme", SCOPE, SERVICE, KEY, {"n": 2})
    assert [e.config_value for e in await store.list_configs("Acme")] == [{"n": 1}]
    assert [e.config_value for e in await store.list_configs("acme")] == [{"n": 2}]
    assert await store.list_tenants() == ["Acme", "acme"]


async def test_a_write_whose_connection_dropped_after_it_applied_is_not_duplicated(
    vespa: VespaEmulator, make_store: StoreFactory
) -> None:
    store = await make_store()
    vespa.add_fault("drop_after", operations=["put"], path_contains="/docid/v/", times=1)
    assert await write(store, 1) == 1
    assert await write(store, 2) == 2
    assert version_documents(vespa) == [version_id(1), version_id(2)]


async def test_a_504_after_the_version_was_stored_is_resolved_by_reading_back(
    vespa: VespaEmulator, make_store: StoreFactory
) -> None:
    store = await make_store()
    vespa.add_fault("status_after", status=504, path_contains="/docid/v/", times=1)
    assert await write(store, 1) == 1
    history = await store.get_config_history(TENANT, SCOPE, SERVICE, KEY)
    assert [entry.version for entry in history] == [1]
    posts = [r for r in vespa.request_log if r.method == "POST" and "/docid/v/" in r.path]
    assert [r.status for r in posts] == [504]


async def test_a_dropped_head_update_is_resolved_by_reading_back(
    vespa: VespaEmulator, make_store: StoreFactory
) -> None:
    store = await make_store()
    await write(store, 1)
    vespa.add_fault("drop_after", path_contains="/docid/h/", operations=["put"], times=1)
    assert await write(store, 2) == 2
    entry = await store.get_config(TENANT, SCOPE, SERVICE, KEY)
    assert entry is not None
    assert entry.version == 2


async def test_a_write_dropped_before_it_applied_is_sent_again(
    vespa: VespaEmulator, make_store: StoreFactory
) -> None:
    store = await make_store()
    vespa.add_fault("drop_before", operations=["put"], times=2)
    assert await write(store, 1) == 1
    assert version_documents(vespa) == [version_id(1)]


async def test_429_on_a_write_is_retried(vespa: VespaEmulator, make_store: StoreFactory) -> None:
    store = await make_store()
    vespa.add_fault("status", status=429, operations=["put"], times=2)
    assert await write(store, 1) == 1
    statuses = [r.status for r in vespa.request_log if r.operation == "put"]
    assert statuses[:2] == [429, 429]


async def test_503_on_reads_is_retried(vespa: VespaEmulator, make_store: StoreFactory) -> None:
    store = await make_store()
    await write(store, 1)
    vespa.add_fault("status", status=503, operations=["get", "visit"], times=3)
    assert (await store.get_config(TENANT, SCOPE, SERVICE, KEY)) is not None


async def test_persistent_503_is_backend_unavailable_not_absent(
    vespa: VespaEmulator, make_store: StoreFactory
) -> None:
    store = await make_store()
    await write(store, 1)
    vespa.add_fault("status", status=503, operations=["get", "visit"])
    with pytest.raises(BackendUnavailableError):
        await store.get_config(TENANT, SCOPE, SERVICE, KEY)
    with pytest.raises(BackendUnavailableError):
        await store.list_configs(TENANT)


async def test_a_version_left_by_a_writer_that_died_is_published_by_the_next_writer(
    vespa: VespaEmulator, make_store: StoreFactory
) -> None:
    first, second = await make_store(), await make_store()
    await write(first, 1)
    # The dead writer stored version 2 but never moved the head.
    vespa.put_document(version_id(2), await _fields_like(first, vespa, version=2, value=99))
    assert (await second.get_config(TENANT, SCOPE, SERVICE, KEY)).version == 1  # type: ignore[union-attr]
    assert await write(second, 3) == 3
    history = await first.get_config_history(TENANT, SCOPE, SERVICE, KEY)
    assert [(e.version, e.config_value) for e in history] == [
        (3, {"n": 3}),
        (2, {"n": 99}),
        (1, {"n": 1}),
    ]


async def test_a_first_version_left_without_a_head_is_repaired(
    vespa: VespaEmulator, make_store: StoreFactory
) -> None:
    store = await make_store()
    await write(store, 1)
    fields = vespa.documents()[version_id(1)]
    vespa.remove_document(head_id())
    assert await store.get_config(TENANT, SCOPE, SERVICE, KEY) is None
    assert vespa.documents()[version_id(1)] == fields
    assert await write(store, 2) == 2
    assert [e.version for e in await store.get_config_history(TENANT, SCOPE, SERVICE, KEY)] == [
        2,
        1,
    ]


async def test_compare_and_set_sees_a_version_a_dead_writer_left(
    vespa: VespaEmulator, make_store: StoreFactory
) -> None:
    store = await make_store()
    await write(store, 1)
    vespa.put_document(version_id(2), await _fields_like(store, vespa, version=2, value=7))
    with pytest.raises(VersionConflictError) as conflict:
        await write(store, 3, expected_version=1)
    assert (conflict.value.expected, conflict.value.actual) == (1, 2)


async def test_writers_on_two_hosts_with_dropped_connections_never_share_a_version(
    vespa: VespaEmulator, make_store: StoreFactory
) -> None:
    hosts = [await make_store(), await make_store()]
    vespa.add_fault("drop_after", operations=["put"], probability=0.1)
    vespa.add_fault("status", status=503, probability=0.1)
    versions = await asyncio.gather(*(write(hosts[n % 2], n) for n in range(16)))
    assert sorted(versions) == list(range(1, 17))
    history = await hosts[0].get_config_history(TENANT, SCOPE, SERVICE, KEY, limit=100)
    assert sorted(entry.config_value["n"] for entry in history) == list(range(16))


async def test_a_purge_racing_a_writer_leaves_no_version_of_the_old_epoch(
    vespa: VespaEmulator, make_store: StoreFactory
) -> None:
    writer, purger = await make_store(), await make_store()
    await write(writer, 1)
    await asyncio.gather(
        write(writer, 2), purger.delete_config(TENANT, SCOPE, SERVICE, KEY, purge=True)
    )
    stored = version_documents(vespa)
    assert all(doc.split("/")[-2] == "1" for doc in stored)
    history = await writer.get_config_history(TENANT, SCOPE, SERVICE, KEY)
    assert len(stored) == len(history) <= 1


async def test_the_feed_holds_back_a_version_until_its_head_shows_it(
    vespa: VespaEmulator, make_store: StoreFactory
) -> None:
    store = await make_store()
    await write(store, 1)
    cursor = await store.current_cursor()
    vespa.put_document(version_id(2), await _fields_like(store, vespa, version=2, value=2))
    batch = await store.changes_since(cursor)
    assert batch.changes == ()
    await write(store, 3)
    batch = await store.changes_since(batch.cursor)
    assert [(c.kind, c.version) for c in batch.changes] == [
        (ChangeKind.SET, 2),
        (ChangeKind.SET, 3),
    ]


async def test_unreachable_vespa_raises_backend_unavailable_for_reads_and_writes() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    store = VespaConfigStore(f"http://127.0.0.1:{port}", retry=FAST_RETRY, timeout=1.0)
    try:
        with pytest.raises(BackendUnavailableError):
            await store.get_config(TENANT, SCOPE, SERVICE, KEY)
        with pytest.raises(BackendUnavailableError):
            await store.set_config(TENANT, SCOPE, SERVICE, KEY, {"n": 1})
        with pytest.raises(BackendUnavailableError):
            await store.list_configs(TENANT)
        with pytest.raises(BackendUnavailableError):
            await store.initialize()
        started = time.perf_counter()
        assert await store.health_check() is False
        assert time.perf_counter() - started < 2.0
    finally:
        await store.close()


async def test_health_check_is_true_only_when_vespa_says_up(
    vespa: VespaEmulator, make_store: StoreFactory
) -> None:
    store = await make_store()
    assert await store.health_check() is True
    vespa.health_status = "initializing"
    assert await store.health_check() is False


async def test_health_check_does_not_raise_on_a_503(
    vespa: VespaEmulator, make_store: StoreFactory
) -> None:
    store = await make_store()
    vespa.add_fault("status", status=503, operations=["health"])
    assert await store.health_check() is False


async def test_health_check_is_bounded_by_the_timeout(
    vespa: VespaEmulator, make_store: StoreFactory
) -> None:
    store = await make_store(timeout=0.2)
    vespa.add_fault("latency", delay=2.0, operations=["health"])
    started = time.perf_counter()
    assert await store.health_check() is False
    assert time.perf_counter() - started < 1.0


async def test_initialize_reports_a_missing_document_type() -> None:
    async with VespaEmulator(schema={"music": {"title": "string"}}) as other:
        store = VespaConfigStore(other.url, retry=FAST_RETRY)
        try:
            with pytest.raises(BackendError, match="schemas/vespa"):
                await store.initialize()
        finally:
            await store.close()


async def test_open_store_reads_the_url_options(vespa: VespaEmulator) -> None:
    url = vespa.url.replace("http://", "vespa+http://")
    store = open_store(
        f"{url}?namespace=team1&timeout=2.5&cluster=confstore&document_type=config_metadata"
    )
    assert isinstance(store, VespaConfigStore)
    assert (store.url, store.namespace, store.timeout, store.cluster) == (
        vespa.url,
        "team1",
        2.5,
        "confstore",
    )
    async with store:
        await store.set_config(TENANT, SCOPE, SERVICE, KEY, {"n": 1})
    assert any(doc.startswith("id:team1:") for doc in vespa.documents())


def test_https_urls_are_served_too() -> None:
    store = open_store("vespa+https://vespa.example:443")
    assert isinstance(store, VespaConfigStore)
    assert store.url == "https://vespa.example:443"


def test_an_unknown_url_option_is_rejected() -> None:
    with pytest.raises(InvalidConfigError, match="colour"):
        open_store("vespa+http://localhost:8080?colour=blue")


@pytest.mark.parametrize("namespace", ["", "a/b", "a:b", "a b"])
def test_a_namespace_that_cannot_be_part_of_a_document_id_is_rejected(namespace: str) -> None:
    with pytest.raises(InvalidConfigError):
        VespaConfigStore("http://localhost:8080", namespace=namespace)


def test_the_old_vespa_app_object_is_accepted() -> None:
    app = SimpleNamespace(url="http://vespa.internal", port=8080, cert=None, key=None)
    store = VespaConfigStore(vespa_app=app)
    assert store.url == "http://vespa.internal:8080"


async def _fields_like(
    store: VespaConfigStore, vespa: VespaEmulator, *, version: int, value: int
) -> dict[str, object]:
    """The fields of a version document as a writer would store them (copied from version 1)."""
    fields = dict(vespa.documents()[version_id(1)])
    fields.update(version=version, payload=f'{{"n":{value}}}', write_id=f"dead-{version}")
    fields["updated_at"] = int(fields["updated_at"]) + version  # type: ignore[call-overload]
    return fields


def test_credentials_in_the_url_are_rejected() -> None:
    with pytest.raises(InvalidConfigError, match="token"):
        open_store("vespa+http://user:secret@localhost:8080")


STRING_LITERAL = re.compile(r'"((?:[^"\\]|\\.)*)"')
IDENTIFIERS = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.:\-]{0,20}", fullmatch=True)


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(tenant_id=IDENTIFIERS, service=IDENTIFIERS, config_key=IDENTIFIERS)
async def test_no_identifier_reaches_a_path_or_selection_unencoded(
    vespa: VespaEmulator,
    make_store: StoreFactory,
    tenant_id: str,
    service: str,
    config_key: str,
) -> None:
    store = await make_store()
    vespa.request_log.clear()
    await store.set_config(tenant_id, SCOPE, service, config_key, {"n": 1})
    await store.list_configs(tenant_id, service=service)
    await store.delete_config(tenant_id, SCOPE, service, config_key, purge=True)
    for request in vespa.request_log:
        _, _, specific = request.path.partition("/docid/")
        assert all(char.isalnum() or char in "/%_.-" for char in specific), request.path
        selection = request.query.get("selection")
        if selection is not None:
            parse_selection(selection, DEFAULT_SCHEMA)
            literals = set(STRING_LITERAL.findall(selection))
            assert literals <= {tenant_id, service, config_key, SCOPE, "head", "version", "purge"}
            assert re.fullmatch(r"[a-z_.=()<>! 0-9]*", STRING_LITERAL.sub("", selection))


async def test_a_malformed_document_is_a_backend_error(
    vespa: VespaEmulator, make_store: StoreFactory
) -> None:
    store = await make_store()
    await write(store, 1)
    fields = vespa.documents()[head_id()]
    vespa.put_document(head_id(), {**fields, "payload": "not json"})
    with pytest.raises(BackendError, match="malformed"):
        await store.get_config(TENANT, SCOPE, SERVICE, KEY)


async def test_a_writer_that_gives_up_between_its_steps_leaves_nothing_broken(
    vespa: VespaEmulator, make_store: StoreFactory
) -> None:
    dying, next_writer = await make_store(), await make_store()
    vespa.add_fault("drop_before", operations=["put"], path_contains="/docid/h/")
    with pytest.raises(BackendUnavailableError):
        await dying.set_config(TENANT, SCOPE, SERVICE, KEY, {"n": "dying"})
    assert version_documents(vespa) == [version_id(1)]
    assert await next_writer.get_config(TENANT, SCOPE, SERVICE, KEY) is None
    vespa.clear_faults()
    assert await write(next_writer, 2) == 2
    history = await next_writer.get_config_history(TENANT, SCOPE, SERVICE, KEY)
    assert [(e.version, e.config_value) for e in history] == [(2, {"n": 2}), (1, {"n": "dying"})]


class NotVespa(LoopbackServer):
    """Another web server on the port the store was given: every path is a plain-text 404."""

    async def handle(self, request: web.Request) -> web.StreamResponse:
        return web.Response(status=404, text="404: Not Found")


async def test_a_404_from_a_server_that_is_not_vespa_is_a_backend_error() -> None:
    async with NotVespa() as other:
        store = VespaConfigStore(other.url, retry=FAST_RETRY)
        try:
            with pytest.raises(BackendError, match="document-api"):
                await store.get_config(TENANT, SCOPE, SERVICE, KEY)
            with pytest.raises(BackendError, match="document-api"):
                await store.initialize()
        finally:
            await store.close()


async def test_a_404_for_a_path_without_the_document_api_is_a_backend_error(
    vespa: VespaEmulator,
) -> None:
    store = VespaConfigStore(f"{vespa.url}/no-such-prefix", retry=FAST_RETRY)
    try:
        with pytest.raises(BackendError, match="document-api"):
            await store.get_config(TENANT, SCOPE, SERVICE, KEY)
        with pytest.raises(BackendError, match="document-api"):
            await store.get_config_history(TENANT, SCOPE, SERVICE, KEY)
    finally:
        await store.close()
    assert {request.status for request in vespa.request_log} == {404}


@pytest.mark.parametrize("cluster", ["", None])
def test_a_store_needs_a_content_cluster(cluster: str | None) -> None:
    with pytest.raises(InvalidConfigError, match="cluster"):
        VespaConfigStore("http://localhost:8080", cluster=cluster)  # type: ignore[arg-type]


def test_an_empty_cluster_in_the_url_is_refused() -> None:
    with pytest.raises(InvalidConfigError, match="cluster"):
        open_store("vespa+http://localhost:8080?cluster=")


async def test_a_vespa_older_than_8_178_is_refused_at_once_naming_the_minimum_version() -> None:
    async with VespaEmulator(version="8.170.4") as old_vespa:
        store = VespaConfigStore(old_vespa.url, retry=FAST_RETRY)
        try:
            with pytest.raises(BackendError, match=r"8\.170\.4 is too old.*8\.178"):
                await store.initialize()
            # Without initialize(), the first write finds out by itself, at once.
            old_vespa.request_log.clear()
            async with asyncio.timeout(10):
                with pytest.raises(BackendError, match=r"8\.178"):
                    await store.set_config(TENANT, SCOPE, SERVICE, KEY, {"n": 1})
            assert len(old_vespa.request_log) <= 4
        finally:
            await store.close()


async def test_a_vespa_that_does_not_tell_its_version_is_accepted(vespa: VespaEmulator) -> None:
    vespa.add_fault("status", status=404, path_contains="/state/v1/version")
    store = VespaConfigStore(vespa.url, retry=FAST_RETRY)
    try:
        await store.initialize()
        assert await write(store, 1) == 1
    finally:
        await store.close()
