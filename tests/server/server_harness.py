"""What the server tests share: a running in-process server on a SQLite file, tokens of every
kind, and a small HTTP client that returns status, headers and the decoded JSON body."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from confstore import ConfigStore, SQLiteConfigStore
from confstore.server import ServerSettings, TokenFile, running_server

TENANT_A = "tenant-a"
TENANT_B = "tenant-b"
# Created before the server starts: name -> (role, tenants).
TOKENS = {
    "root": ("admin", ["*"]),
    "reader-all": ("read", ["*"]),
    "read-a": ("read", [TENANT_A]),
    "write-a": ("write", [TENANT_A]),
    "admin-a": ("admin", [TENANT_A]),
    "read-ab": ("read", [TENANT_A, TENANT_B]),
    "write-ab": ("write", [TENANT_A, TENANT_B]),
}
CONFIG_PATH = "/v1/tenants/{tenant}/configs/{scope}/{service}/{key}"


@dataclass
class Answer:
    status: int
    headers: Mapping[str, str]
    body: Any
    text: str


@dataclass
class Api:
    """A running server and a session to call it with."""

    url: str
    store: ConfigStore
    tokens: TokenFile
    session: aiohttp.ClientSession
    secrets: dict[str, str] = field(default_factory=dict)

    def token(self, name: str) -> str:
        """The secret of one of the TOKENS."""
        return self.secrets[name]

    async def call(
        self,
        method: str,
        path: str,
        *,
        token: str | None = None,
        json_body: Any = None,
        data: bytes | str | None = None,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
    ) -> Answer:
        sent = dict(headers or {})
        if token is not None:
            sent["Authorization"] = f"Bearer {token}"
        async with self.session.request(
            method, self.url + path, json=json_body, data=data, headers=sent, params=params
        ) as response:
            text = await response.text()
            try:
                body = json.loads(text) if text else None
            except ValueError:
                body = None
            return Answer(response.status, response.headers, body, text)

    async def put(self, path: str, value: dict[str, Any], *, token: str, **fields: Any) -> Answer:
        return await self.call("PUT", path, token=token, json_body={"value": value, **fields})


def config_path(
    tenant: str = TENANT_A, scope: str = "system", service: str = "svc", key: str = "key"
) -> str:
    return CONFIG_PATH.format(tenant=tenant, scope=scope, service=service, key=key)


async def store_snapshot(store: ConfigStore) -> dict[str, Any]:
    """Everything stored, to compare before and after a rejected request."""
    tenants = await store.list_tenants(include_deleted=True)
    return {
        "stats": await store.get_stats(),
        "exports": {
            tenant: (await store.export_configs(tenant, include_history=True))["configs"]
            for tenant in tenants
        },
    }


@contextlib.asynccontextmanager
async def open_api(
    tmp_path: Path, settings: ServerSettings | None = None, store: ConfigStore | None = None
) -> AsyncIterator[Api]:
    """A server on a fresh SQLite file (or ``store``), with the TOKENS, and a session."""
    tokens = TokenFile(tmp_path / "tokens.json")
    secrets = {
        name: tokens.create(name, role, tenants)[0] for name, (role, tenants) in TOKENS.items()
    }
    store = store or SQLiteConfigStore(str(tmp_path / "server.db"))
    async with (
        running_server(store, tokens.path, settings) as url,
        aiohttp.ClientSession() as session,
    ):
        yield Api(url, store, tokens, session, secrets)


async def read_events(
    response: aiohttp.ClientResponse, count: int, timeout: float = 10.0
) -> list[dict[str, str]]:
    """The next ``count`` events of an SSE answer, as {"id", "event", "data"} dicts."""
    events: list[dict[str, str]] = []
    current: dict[str, str] = {}
    async with asyncio.timeout(timeout):
        while len(events) < count:
            line = (await response.content.readline()).decode().rstrip("\r\n")
            if not line:
                if current:
                    events.append(current)
                current = {}
                continue
            if line.startswith(":"):
                continue
            name, _, value = line.partition(":")
            current[name] = value.removeprefix(" ")
    return events


async def read_answer(reader: asyncio.StreamReader) -> tuple[int, bytes, bytes]:
    """One answer: its status, head and body (by Content-Length, else to the end)."""
    async with asyncio.timeout(10):
        head = (await reader.readuntil(b"\r\n\r\n"))[:-4]
        length = next(
            (
                int(line.split(b":", 1)[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            ),
            None,
        )
        body = await (reader.read() if length is None else reader.readexactly(length))
    return int(head.split(b" ")[1]), head, body
