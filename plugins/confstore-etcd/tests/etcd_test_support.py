"""Helpers of the etcd tests: a fault-injecting proxy in front of a real member, request counts."""

from __future__ import annotations

import json
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self

import aiohttp
from aiohttp import web
from confstore_etcd import EtcdConfigStore

from confstore.http import RequestInfo

# Decides, for a request the proxy forwarded and etcd answered, whether to drop the answer.
DropRule = Callable[[str, dict[str, Any]], Awaitable[bool]]
# Runs, for a request about to be forwarded, before it is.
ForwardHook = Callable[[str, dict[str, Any]], Awaitable[None]]


@dataclass
class FaultProxy:
    """An HTTP proxy on 127.0.0.1 in front of one real etcd member.

    It forwards every request and returns etcd's answer, except when ``drop_answer`` (awaited
    after etcd answered, so the request was applied) says to close the connection instead:
    the client then cannot know whether its request took effect. ``before_forward`` is awaited
    before a request is forwarded (to let something happen in between); ``answer`` replaces
    etcd's answer for every request with a fixed (status, body).
    """

    target: str
    drop_answer: DropRule | None = None
    before_forward: ForwardHook | None = None
    answer: tuple[int, dict[str, Any]] | None = None
    dropped: list[str] = field(default_factory=list)
    received: list[str] = field(default_factory=list)
    _runner: web.AppRunner | None = None
    _session: aiohttp.ClientSession | None = None
    url: str = ""

    async def __aenter__(self) -> Self:
        app = web.Application()
        app.router.add_route("*", "/{path:.*}", self._forward)
        self._session = aiohttp.ClientSession()
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        assert self._runner is not None
        assert self._session is not None
        await self._runner.cleanup()
        await self._session.close()

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        assert self._session is not None
        body = await request.read()
        self.received.append(request.path)
        if self.answer is not None:
            return web.json_response(self.answer[1], status=self.answer[0])
        if self.before_forward is not None and body:
            await self.before_forward(request.path, json.loads(body))
        headers = {
            name: value
            for name, value in request.headers.items()
            if name.lower() in ("authorization", "grpc-metadata-hasleader", "content-type")
        }
        async with self._session.request(
            request.method, self.target + request.path, data=body, headers=headers
        ) as answer:
            payload = await answer.read()
            status = answer.status
        if (
            self.drop_answer is not None
            and body
            and await self.drop_answer(request.path, json.loads(body))
        ):
            self.dropped.append(request.path)
            if request.transport is not None:
                request.transport.close()
            return web.Response(status=500)
        return web.Response(status=status, body=payload, content_type="application/json")


def free_port() -> int:
    """A port nothing listens on (127.0.0.1), for a member that cannot be reached."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def is_write_txn(path: str, body: dict[str, Any]) -> bool:
    """A transaction that puts something (a store write), not a read-only one."""
    return path == "/v3/kv/txn" and any("request_put" in op for op in body.get("success", []))


@dataclass
class RequestLog:
    """The gateway calls a store makes (path after ``/v3/``), through its request hooks."""

    paths: list[str] = field(default_factory=list)

    def attach(self, store: EtcdConfigStore) -> Self:
        for member in store.client.members:
            member.request_hooks.append(self._record)
        return self

    def _record(self, info: RequestInfo) -> None:
        self.paths.append(info.url.split("/v3/", 1)[-1])

    def clear(self) -> None:
        self.paths.clear()
