"""Hostile clients: other tenants' data, path tricks, oversized and malformed bodies, header
injection, slow clients and guessed tokens. Nothing a rejected request sends is written."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from server_harness import (
    TENANT_A,
    TENANT_B,
    Api,
    config_path,
    open_api,
    read_answer,
    store_snapshot,
)

from confstore import SQLiteConfigStore
from confstore.server import ServerSettings, TokenFile
from confstore.server._app import create_app
from confstore.server._run import authenticator_for
from confstore.server._run import start as start_server
from confstore.server._watch import HUB

B_SECRET = "b-secret-value-123"
KEY_NAMES = st.sampled_from(["key", "absent", "system_config", "other-key"])
ROLES_OF_A = st.sampled_from(["read-a", "write-a", "admin-a"])


def tenant_endpoints(tenant: str, key: str) -> list[tuple[str, str, Any]]:
    """(method, path, JSON body) of every endpoint that names a tenant."""
    path = config_path(tenant=tenant, key=key)
    document = {"configs": [], "format": "confstore-export", "format_version": 1}
    return [
        ("GET", f"/v1/tenants/{tenant}/configs", None),
        ("GET", path, None),
        ("GET", path + "?version=1", None),
        ("PUT", path, {"value": {"stolen": True}}),
        ("DELETE", path, None),
        ("DELETE", path + "?purge=true", None),
        ("GET", path + "/history", None),
        ("GET", path + "/diff?from=1&to=1", None),
        ("POST", path + "/rollback", {"version": 1}),
        ("GET", path + "/explain", None),
        ("GET", f"/v1/tenants/{tenant}/export?history=true", None),
        ("POST", f"/v1/tenants/{tenant}/import", document),
        ("GET", f"/v1/watch?tenant={tenant}", None),
        ("GET", f"/v1/changes?tenant={tenant}", None),
    ]


@pytest.fixture
async def seeded(tmp_path: Path) -> AsyncIterator[Api]:
    """Tenant B has a config with a secret (versions 1 and 2); tenant A has one too."""
    async with open_api(tmp_path) as api:
        root = api.token("root")
        await api.put(config_path(tenant=TENANT_B), {"api_key": B_SECRET, "n": 1}, token=root)
        await api.put(config_path(tenant=TENANT_B), {"api_key": B_SECRET, "n": 2}, token=root)
        await api.put(config_path(tenant=TENANT_A), {"n": 1}, token=root)
        yield api


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    token_name=ROLES_OF_A,
    key=KEY_NAMES,
    endpoint=st.integers(0, len(tenant_endpoints(TENANT_B, "key")) - 1),
)
async def test_a_token_of_tenant_a_can_neither_read_nor_write_tenant_b(
    seeded: Api, token_name: str, key: str, endpoint: int
) -> None:
    """Every endpoint naming tenant B answers the same 403, whatever the role and whether the
    key exists, and nothing is written."""
    api = seeded
    before = await store_snapshot(api.store)
    method, path, body = tenant_endpoints(TENANT_B, key)[endpoint]
    answer = await api.call(method, path, token=api.token(token_name), json_body=body)
    assert answer.status == 403, (method, path, answer.text)
    assert answer.body == {
        "type": "forbidden",
        "status": 403,
        "message": f"token {token_name!r} has no access to this tenant",
    }
    assert await store_snapshot(api.store) == before


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(token_name=ROLES_OF_A)
async def test_tenant_less_endpoints_never_show_tenant_b(seeded: Api, token_name: str) -> None:
    api = seeded
    token = api.token(token_name)
    answers = [
        await api.call("GET", "/v1/tenants", token=token),
        await api.call("GET", "/v1/tenants?include_deleted=true", token=token),
        await api.call("GET", "/v1/changes", token=token),
        await api.call("GET", "/v1/token", token=token),
    ]
    stats = await api.call("GET", "/v1/stats", token=token)
    assert [answer.status for answer in answers] == [200, 200, 200, 200]
    for answer in answers:
        assert TENANT_B not in answer.text
        assert B_SECRET not in answer.text
    assert answers[0].body == {"tenants": [TENANT_A]}
    assert [change["tenant_id"] for change in answers[2].body["changes"]] == [TENANT_A]
    assert stats.status == 403  # counts over every tenant would tell B's keys exist


async def test_watch_of_a_scoped_token_carries_only_its_tenant(seeded: Api) -> None:
    api = seeded
    headers = {"Authorization": f"Bearer {api.token('read-a')}"}
    async with api.session.get(api.url + "/v1/watch", headers=headers) as stream:
        await stream.content.readuntil(b"\n\n")
        for number in range(3):
            await api.put(
                config_path(tenant=TENANT_B, key=f"k{number}"), {"n": 1}, token=api.token("root")
            )
        await api.put(config_path(tenant=TENANT_A, key="last"), {"n": 1}, token=api.token("root"))
        async with asyncio.timeout(10):
            received = await stream.content.readuntil(b'"config_key":"last"')
    assert TENANT_B.encode() not in received


async def test_answers_for_tenant_b_do_not_depend_on_what_b_stores(tmp_path: Path) -> None:
    """The same requests with tenant B empty and with tenant B full get identical answers."""
    outcomes = []
    for seed_b in (False, True):
        async with open_api(tmp_path / str(seed_b)) as api:
            if seed_b:
                await api.put(
                    config_path(tenant=TENANT_B), {"api_key": B_SECRET}, token=api.token("root")
                )
            token = api.token("write-a")
            outcomes.append(
                [
                    (answer.status, answer.body)
                    for method, path, body in tenant_endpoints(TENANT_B, "key")
                    for answer in [await api.call(method, path, token=token, json_body=body)]
                ]
            )
    assert outcomes[0] == outcomes[1]


@pytest.mark.parametrize(
    "raw_path",
    [
        "/v1/tenants/tenant-a%2F..%2Ftenant-b/configs",
        "/v1/tenants/tenant-a/../tenant-b/configs",
        "/v1/tenants/tenant-a/configs/../../tenant-b/configs",
        "/v1/tenants/tenant-a/configs/system/svc/..%2F..%2F..%2Ftenant-b%2Fconfigs",
        "/v1/tenants/%2e%2e/configs",
        "/v1/tenants/tenant-b%00/configs",
        "/v1/tenants/tenant-b%2500/configs",
        "/v1/tenants/tenant-a%252F..%252Ftenant-b/configs",
        "/v1/tenants/TENANT-B/configs",
        "/v1/tenants/tenant-b;a/configs",
        "/v1/tenants/tenant-a/configs/system/svc/key%2F..%2F..%2F..%2F..%2Ftenant-b%2Fconfigs%2Fsystem%2Fsvc%2Fkey",
        "//v1/tenants/tenant-b/configs",
        "/v1//tenants/tenant-b/configs",
        "/v1/tenants/./tenant-b/configs",
    ],
)
async def test_path_tricks_never_reach_another_tenant(seeded: Api, raw_path: str) -> None:
    status, _, body = await raw_request(
        seeded,
        f"GET {raw_path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {seeded.token('admin-a')}\r\n",
    )
    assert status in (400, 403, 404), (raw_path, status, body)
    assert B_SECRET.encode() not in body
    assert b'"config_value"' not in body


async def raw_request(api: Api, head: str, body: bytes = b"") -> tuple[int, bytes, bytes]:
    """Send bytes exactly as given (no client normalises the path); return the status, the
    answer's head and its body."""
    host, port = api.url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(head.encode("latin-1") + b"Connection: close\r\n\r\n" + body)
        await writer.drain()
        return await read_answer(reader)
    finally:
        writer.close()


async def test_an_oversized_body_is_refused_with_413_before_it_is_read(seeded: Api) -> None:
    api = seeded
    before = await store_snapshot(api.store)
    limit = ServerSettings().body_limit(api.store)
    declared = (
        f"PUT {config_path()} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {api.token('root')}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {limit + 1}\r\n"
    )
    status, _, body = await raw_request(api, declared)  # the body is never sent
    huge = {"value": {"blob": "x" * (limit + 10)}}
    streamed = await api.call(
        "PUT",
        config_path(),
        token=api.token("root"),
        data=_chunks(json.dumps(huge).encode()),
        headers={"Content-Type": "application/json"},
    )
    assert (status, json.loads(body)["type"]) == (413, "payload_too_large")
    assert (streamed.status, streamed.body["type"]) == (413, "payload_too_large")
    assert await store_snapshot(api.store) == before


async def _chunks(data: bytes) -> AsyncIterator[bytes]:
    """A body sent chunked, so the server cannot know its size upfront."""
    for start in range(0, len(data), 256 * 1024):
        yield data[start : start + 256 * 1024]


async def test_crlf_in_a_path_never_reaches_a_response_header(seeded: Api) -> None:
    api = seeded
    injected = "%0d%0aSet-Cookie:%20pwned=1%0d%0aX-Injected:%201"
    for path in (
        f"/v1/tenants/tenant-a{injected}/configs",
        config_path(key=f"key{injected}"),
        f"/v1/tenants/tenant-a/export{injected}",
    ):
        status, head, _ = await raw_request(
            api, f"GET {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {api.token('root')}\r\n"
        )
        assert status in (400, 404)
        assert b"pwned" not in head
        assert b"x-injected" not in head.lower()


@pytest.mark.parametrize(
    "header",
    [
        "X-Test: a\rSet-Cookie: pwned=1",
        "X-Test: a\nSet-Cookie: pwned=1",
        "X-Test: a\x00b",
        "Bad Header: 1",
        'If-Match: "1"\r\n\tSet-Cookie: pwned',
    ],
)
async def test_malformed_headers_are_refused_and_nothing_is_written(
    seeded: Api, header: str
) -> None:
    api = seeded
    before = await store_snapshot(api.store)
    body = b'{"value": {"n": 99}}'
    status, head, body_of_answer = await raw_request(
        api,
        f"PUT {config_path()} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {api.token('root')}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n{header}\r\n",
        body,
    )
    assert status == 400
    assert b"pwned" not in head
    assert_json_problem(head, body_of_answer, 400, "bad_request")
    assert await store_snapshot(api.store) == before


def assert_json_problem(head: bytes, body: bytes, status: int, kind: str) -> None:
    """The answer is the API's JSON problem, with the headers every answer carries."""
    assert b"content-type: application/json" in head.lower()
    assert b"x-content-type-options: nosniff" in head.lower()
    problem = json.loads(body)
    assert (problem["status"], problem["type"]) == (status, kind)
    assert problem["message"]


@pytest.mark.parametrize(
    "head",
    [
        f"GET /v1/health HTTP/1.1\r\nHost: x\r\nX-Big: {'a' * 10_000}\r\n",
        f"GET /v1/tenants/{'a' * 10_000} HTTP/1.1\r\nHost: x\r\n",
        "GET /v1/health HTTP/1.1\r\nHost: x\r\n" + "".join(f"X-{n}: 1\r\n" for n in range(200)),
        "BREW /v1/health HTCPCP/1.0\r\nHost: x\r\n",
    ],
    ids=["header-line-over-8k", "request-line-over-8k", "too-many-headers", "not-http"],
)
async def test_a_request_aiohttp_cannot_parse_gets_a_json_problem(
    seeded: Api, head: str, caplog: pytest.LogCaptureFixture
) -> None:
    """...and leaves no warning or traceback in the server's log: any client could fill it."""
    caplog.set_level(logging.DEBUG)
    status, answer_head, body = await raw_request(seeded, head)
    assert status == 400
    assert_json_problem(answer_head, body, 400, "bad_request")
    assert [
        record.getMessage() for record in caplog.records if record.levelno >= logging.INFO
    ] == []
    assert any("unparsable request" in record.getMessage() for record in caplog.records)


@pytest.fixture
async def impatient(tmp_path: Path) -> AsyncIterator[Api]:
    """A server that gives clients 1 s for headers and for a body, and 3 failed logins."""
    quick = ServerSettings(client_timeout=1.0, auth_burst=3, auth_refill_seconds=60.0)
    async with open_api(tmp_path, quick) as api:
        yield api


async def test_a_client_trickling_its_headers_is_disconnected(impatient: Api) -> None:
    api = impatient
    host, port = api.url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    started = asyncio.get_running_loop().time()
    closed = False
    try:
        writer.write(b"GET /v1/health HTTP/1.1\r\nHost: x\r\n")
        for _ in range(50):  # one header byte every 0.1 s: never a whole request head
            if reader.at_eof():
                closed = True
                break
            writer.write(b"X")
            await writer.drain()
            with_data = await _read_some(reader, 0.1)
            if with_data == b"":
                closed = True
                break
    except ConnectionError:
        closed = True
    finally:
        writer.close()
    elapsed = asyncio.get_running_loop().time() - started
    assert closed
    assert elapsed < 4.5
    assert (await api.call("GET", "/v1/health")).status == 200  # others are served meanwhile


async def _read_some(reader: asyncio.StreamReader, seconds: float) -> bytes | None:
    try:
        async with asyncio.timeout(seconds):
            return await reader.read(100)
    except TimeoutError:
        return None


async def test_a_client_stalling_its_body_gets_408_and_nothing_is_written(impatient: Api) -> None:
    api = impatient
    before = await store_snapshot(api.store)
    host, port = api.url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(
            f"PUT {config_path()} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {api.token('root')}"
            '\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"value":'.encode()
        )
        await writer.drain()
        status, _, body = await read_answer(reader)
    finally:
        writer.close()
    assert (status, json.loads(body)["type"]) == (408, "request_timeout")
    assert await store_snapshot(api.store) == before


async def test_a_client_that_stops_reading_an_export_is_dropped(impatient: Api) -> None:
    """8 MB of export, more than socket buffers hold: the server's writes stall, and after the
    client timeout the server gives up on this client instead of waiting for it forever."""
    api = impatient
    entries = [
        {
            "scope": "system",
            "service": "svc",
            "config_key": f"key-{number}",
            "config_value": {"blob": "x" * 4000},
            "version": 1,
            "created_at": "2024-01-01T00:00:00+00:00",
            "updated_at": "2024-01-01T00:00:00+00:00",
        }
        for number in range(2000)
    ]
    await api.store.import_configs(TENANT_A, {"configs": entries})
    host, port = api.url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port), limit=1024)
    try:
        writer.write(
            f"GET /v1/tenants/{TENANT_A}/export HTTP/1.1\r\nHost: x\r\n"
            f"Authorization: Bearer {api.token('root')}\r\n\r\n".encode()
        )
        await writer.drain()
        assert (await reader.readline()).startswith(b"HTTP/1.1 200")
        transport = writer.transport
        transport.pause_reading()  # stop reading: the server's writes back up
        await asyncio.sleep(
            3
        )  # past the 1 s client timeout (the behaviour under test is a timeout)
        transport.resume_reading()
        received = 0
        async with asyncio.timeout(20):
            while chunk := await reader.read(1 << 16):
                received += len(chunk)
    finally:
        writer.close()
    assert received < 8_000_000  # cut short: the server stopped writing to it


async def test_repeated_failed_authentication_is_throttled(impatient: Api) -> None:
    api = impatient
    failures = [
        (await api.call("GET", "/v1/token", token=f"cst_guess{n}")).status for n in range(3)
    ]
    throttled = await api.call("GET", "/v1/token", token="cst_guess-again")
    valid_meanwhile = await api.call("GET", "/v1/token", token=api.token("root"))
    health = await api.call("GET", "/v1/health")
    assert failures == [401, 401, 401]
    assert (throttled.status, throttled.body["type"]) == (429, "too_many_requests")
    assert int(throttled.headers["Retry-After"]) >= 1
    assert valid_meanwhile.status == 429  # while throttled, no answer tells a good guess apart
    assert health.status == 200


async def test_every_answer_carries_the_security_headers(seeded: Api) -> None:
    for path, token in (
        ("/v1/health", None),
        (config_path(), seeded.token("root")),
        ("/v1/x", None),
    ):
        answer = await seeded.call("GET", path, token=token)
        assert answer.headers["X-Content-Type-Options"] == "nosniff"
        assert answer.headers["Cache-Control"] == "no-store"
        assert "default-src 'none'" in answer.headers["Content-Security-Policy"]


async def test_a_missing_or_malformed_authorization_is_401(seeded: Api) -> None:
    for headers in ({}, {"Authorization": "Basic cm9vdDpyb290"}, {"Authorization": "Bearer"}):
        answer = await seeded.call("GET", f"/v1/tenants/{TENANT_A}/configs", headers=headers)
        assert (answer.status, answer.body["type"]) == (401, "unauthorized")
        assert answer.headers["WWW-Authenticate"].startswith("Bearer")


async def test_a_number_of_thousands_of_digits_or_a_unicode_digit_in_a_query_or_etag_is_a_400(
    seeded: Api,
) -> None:
    digits = "9" * 5_000
    path = config_path(tenant=TENANT_A)
    for query in (f"?version={digits}", f"/history?limit={digits}", f"/diff?from={digits}"):
        answer = await seeded.call("GET", path + query, token=seeded.token("root"))
        assert (answer.status, answer.body["type"]) == (400, "invalid_config"), answer.text
    answer = await seeded.call("GET", f"/v1/changes?limit={digits}", token=seeded.token("root"))
    assert (answer.status, answer.body["type"]) == (400, "invalid_config"), answer.text
    before = await store_snapshot(seeded.store)
    for tag in (f'"{digits}"', '"\u00b2"'):  # a digit to str.isdigit(), not to int()
        for method, header in (("GET", "If-None-Match"), ("PUT", "If-Match")):
            status, _, body = await raw_request(
                seeded,
                f"{method} {path} HTTP/1.1\r\nHost: x\r\n"
                f"Authorization: Bearer {seeded.token('root')}\r\n{header}: {tag}\r\n"
                "Content-Type: application/json\r\nContent-Length: 15\r\n",
                b'{"value": {}}  ',
            )
            assert (status, json.loads(body)["type"]) == (400, "invalid_config"), body
    assert await store_snapshot(seeded.store) == before


async def test_watchers_that_drop_their_connection_are_let_go_within_seconds(
    tmp_path: Path,
) -> None:
    """Not only at the next keepalive (15 s): an attacker opening and dropping event streams
    would otherwise hold that many dead watchers in memory."""
    tokens = TokenFile(tmp_path / "tokens.json")
    secret = tokens.create("root", "admin", ["*"])[0]
    settings = ServerSettings()
    app = create_app(
        SQLiteConfigStore(str(tmp_path / "server.db")),
        authenticator_for(tokens, settings),
        settings,
    )
    runner, url = await start_server(app, "127.0.0.1", 0, settings)
    try:
        host, port = url.removeprefix("http://").split(":")
        streams = []
        for _ in range(20):
            reader, writer = await asyncio.open_connection(host, int(port))
            writer.write(
                f"GET /v1/watch HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {secret}\r\n\r\n".encode()
            )
            await asyncio.wait_for(reader.readuntil(b"event: ready"), 10)
            streams.append(writer)
        assert app[HUB].watchers == 20
        for writer in streams:
            writer.transport.abort()
        async with asyncio.timeout(5):
            while app[HUB].watchers:  # noqa: ASYNC110 (the hub offers no event for its count)
                await asyncio.sleep(0.05)
    finally:
        await runner.cleanup()
