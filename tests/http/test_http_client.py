"""confstore.http.HttpClient against a real aiohttp server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from confstore import BackendError, BackendTimeoutError, BackendUnavailableError
from confstore.http import HttpClient, RequestInfo, RetryPolicy, auth_headers

FAST_RETRY = RetryPolicy(attempts=3, base_delay=0.001, max_delay=0.01)


class Script:
    """A server whose answers follow a script: a list of statuses, then 200."""

    def __init__(self) -> None:
        self.statuses: list[int] = []
        self.calls: list[tuple[str, str]] = []
        self.headers: list[dict[str, str]] = []
        self.bodies: list[bytes] = []

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.calls.append((request.method, request.path_qs))
        self.headers.append(dict(request.headers))
        self.bodies.append(await request.read())
        if request.path == "/slow":
            await asyncio.sleep(1)
        if request.path == "/stream":
            return await _stream_lines(request)
        if request.path == "/drop":
            assert request.transport is not None
            request.transport.close()
            return web.Response(status=200)
        status = self.statuses.pop(0) if self.statuses else 200
        return web.json_response({"status": status, "path": request.path}, status=status)


@pytest.fixture
async def server() -> AsyncIterator[tuple[Script, str]]:
    script = Script()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", script.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield script, f"http://127.0.0.1:{port}"
    await runner.cleanup()


async def test_get_retries_503_until_success(server: tuple[Script, str]) -> None:
    script, url = server
    script.statuses = [503, 503]
    async with HttpClient(url, retry=FAST_RETRY) as client:
        response = await client.request("GET", "/thing")
    assert response.status == 200
    assert len(script.calls) == 3


async def test_get_returns_the_last_503_when_retries_run_out(server: tuple[Script, str]) -> None:
    script, url = server
    script.statuses = [503, 503, 503, 503]
    async with HttpClient(url, retry=FAST_RETRY) as client:
        response = await client.request("GET", "/thing")
    assert response.status == 503
    assert isinstance(response.error(), BackendUnavailableError)
    assert len(script.calls) == 3


async def test_post_is_not_retried_on_503(server: tuple[Script, str]) -> None:
    script, url = server
    script.statuses = [503]
    async with HttpClient(url, retry=FAST_RETRY) as client:
        response = await client.request("POST", "/write", json_body={"a": 1})
    assert response.status == 503
    assert len(script.calls) == 1


async def test_post_is_retried_on_429_because_it_was_not_applied(
    server: tuple[Script, str],
) -> None:
    script, url = server
    script.statuses = [429]
    async with HttpClient(url, retry=FAST_RETRY) as client:
        response = await client.request("POST", "/write", json_body={"a": 1})
    assert response.status == 200
    assert len(script.calls) == 2


async def test_404_and_409_are_final_answers(server: tuple[Script, str]) -> None:
    script, url = server
    script.statuses = [404, 409]
    async with HttpClient(url, retry=FAST_RETRY) as client:
        assert (await client.request("GET", "/a")).status == 404
        assert (await client.request("PUT", "/b", idempotent=True)).status == 409
    assert len(script.calls) == 2


async def test_json_body_is_sent_with_content_type(server: tuple[Script, str]) -> None:
    script, url = server
    async with HttpClient(url, retry=FAST_RETRY) as client:
        await client.request("POST", "/doc", json_body={"name": "é"}, params={"q": "a b&c"})
    assert script.bodies[0] == '{"name":"é"}'.encode()
    assert script.headers[0]["Content-Type"] == "application/json"
    assert script.calls[0] == ("POST", "/doc?q=a+b%26c")


async def test_path_is_sent_as_encoded_by_the_caller(server: tuple[Script, str]) -> None:
    script, url = server
    async with HttpClient(url, retry=FAST_RETRY) as client:
        await client.request("GET", "/docid/a%2Fb%3Fc")
    assert script.calls[0][1] == "/docid/a%2Fb%3Fc"


async def test_connection_refused_is_backend_unavailable() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    async with HttpClient(f"http://127.0.0.1:{port}", retry=FAST_RETRY) as client:
        with pytest.raises(BackendUnavailableError, match="cannot connect"):
            await client.request("GET", "/")


async def test_timeout_is_backend_timeout(server: tuple[Script, str]) -> None:
    _, url = server
    async with HttpClient(url, retry=FAST_RETRY, timeout=0.2) as client:
        with pytest.raises(BackendTimeoutError, match="outcome is unknown"):
            await client.request("POST", "/slow")


async def test_dropped_connection_on_a_non_idempotent_request_is_not_resent(
    server: tuple[Script, str],
) -> None:
    script, url = server
    async with HttpClient(url, retry=FAST_RETRY) as client:
        with pytest.raises(BackendTimeoutError):
            await client.request("POST", "/drop")
    assert len(script.calls) == 1


async def test_dropped_connection_on_an_idempotent_request_is_retried(
    server: tuple[Script, str],
) -> None:
    script, url = server
    async with HttpClient(url, retry=FAST_RETRY) as client:
        with pytest.raises(BackendTimeoutError):
            await client.request("GET", "/drop")
    # aiohttp may re-send a GET once by itself on a dropped pooled connection, so count at least ours.
    assert len(script.calls) >= FAST_RETRY.attempts


async def test_request_hooks_see_every_attempt(server: tuple[Script, str]) -> None:
    script, url = server
    script.statuses = [503]
    seen: list[RequestInfo] = []
    async with HttpClient(url, retry=FAST_RETRY, request_hooks=[seen.append]) as client:
        await client.request("GET", "/x")
    assert [(info.method, info.attempt) for info in seen] == [("GET", 1), ("GET", 2)]


async def test_one_session_is_reused_and_closed(server: tuple[Script, str]) -> None:
    _, url = server
    client = HttpClient(url, retry=FAST_RETRY)
    await client.request("GET", "/a")
    session = client._session
    await client.request("GET", "/b")
    assert client._session is session
    await client.close()
    assert session is not None
    assert session.closed


async def test_non_json_answer_raises_backend_error(server: tuple[Script, str]) -> None:
    _, url = server
    async with HttpClient(url, retry=FAST_RETRY) as client:
        response = await client.request("GET", "/a")
    broken = type(response)(200, {}, b"<html>", "GET", "/a")
    with pytest.raises(BackendError, match="not JSON"):
        broken.json()


def test_auth_headers() -> None:
    assert auth_headers(username="u", password="p") == {"Authorization": "Basic dTpw"}
    assert auth_headers(api_key="k") == {"Authorization": "ApiKey k"}
    assert auth_headers(bearer_token="t") == {"Authorization": "Bearer t"}
    assert auth_headers() == {}


def test_backoff_is_capped_and_honours_retry_after() -> None:
    policy = RetryPolicy(base_delay=0.1, max_delay=0.5)
    assert all(0 <= policy.delay(attempt) <= 0.5 for attempt in range(1, 20))
    assert policy.delay(1, retry_after="0.3") == 0.3
    assert policy.delay(1, retry_after="99") == 0.5


async def test_per_call_retry_policy_overrides_the_client_policy(
    server: tuple[Script, str],
) -> None:
    script, url = server
    script.statuses = [503, 503]
    async with HttpClient(url, retry=FAST_RETRY) as client:
        response = await client.request("GET", "/probe", retry=RetryPolicy(attempts=1))
    assert response.status == 503
    assert len(script.calls) == 1


async def test_a_body_over_one_mib_is_sent_whole_without_a_warning() -> None:
    received: list[bytes] = []

    async def handle(request: web.Request) -> web.Response:
        received.append(await request.read())
        return web.Response(status=200)

    app = web.Application(client_max_size=4 * 1024 * 1024)
    app.router.add_post("/big", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    big = b"x" * (1024 * 1024 + 10)
    try:
        async with HttpClient(f"http://127.0.0.1:{port}", retry=FAST_RETRY) as client:
            response = await client.request("POST", "/big", data=big)
    finally:
        await runner.cleanup()
    assert response.status == 200
    assert received == [big]


async def test_a_callers_timeout_is_not_swallowed_by_the_clients_own(
    server: tuple[Script, str],
) -> None:
    _, url = server
    async with HttpClient(url, retry=FAST_RETRY, timeout=0.1) as client:
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.1):
                await client.request("GET", "/slow")
        assert loop.time() - started < 0.5


async def _stream_lines(request: web.Request) -> web.StreamResponse:
    """Three lines, the last one without a newline, sent in pieces that split them."""
    response = web.StreamResponse()
    await response.prepare(request)
    for piece in (b'{"a": 1}\n{"b"', b": 2}\n", b'{"c": 3}'):
        await response.write(piece)
        await asyncio.sleep(0.01)
    await response.write_eof()
    return response


async def test_stream_yields_lines_as_they_arrive(server: tuple[Script, str]) -> None:
    script, url = server
    async with (
        HttpClient(url) as client,
        client.stream("POST", "stream", json_body={"x": 1}) as stream,
    ):
        assert stream.status == 200
        lines = [line async for line in stream.lines()]
    assert lines == [b'{"a": 1}', b'{"b": 2}', b'{"c": 3}']
    assert script.bodies == [b'{"x":1}']


async def test_stream_to_a_closed_port_is_unavailable() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    async with HttpClient(f"http://127.0.0.1:{port}") as client:
        with pytest.raises(BackendUnavailableError):
            async with client.stream("POST", "stream"):
                pass
