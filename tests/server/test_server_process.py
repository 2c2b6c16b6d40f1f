"""``confstore serve`` and ``confstore token`` as operators run them: real processes, the CLI and
ConfigManager on a confstore+http:// URL, and a graceful shutdown on SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import signal
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from confstore import ConfigManager, SystemConfig
from confstore.server import TokenFile

CLI = (sys.executable, "-m", "confstore.cli")


@dataclass
class ServeProcess:
    process: asyncio.subprocess.Process
    url: str
    tokens: Path
    token_file: Path  # holds the secret of an admin token for every tenant

    @property
    def store_url(self) -> str:
        return f"confstore+{self.url}?token_file={self.token_file}"


async def run_cli(*arguments: str, cwd: Path, timeout: float = 60) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        *CLI,
        *arguments,
        cwd=cwd,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


@contextlib.asynccontextmanager
async def serve_process(tmp_path: Path, *, cli_token: bool = False) -> AsyncIterator[ServeProcess]:
    """``confstore serve`` on a free port of 127.0.0.1 over a SQLite file; stopped by its pid.

    Its admin token is made by ``confstore token create`` with ``cli_token``, else in-process.
    """
    tokens = tmp_path / "tokens.json"
    if cli_token:
        code, out, err = await run_cli(
            "token",
            "create",
            "ops",
            "--role",
            "admin",
            "--tenant",
            "*",
            "--tokens",
            str(tokens),
            "--json",
            cwd=tmp_path,
        )
        assert code == 0, err
        secret = json.loads(out)["token"]
    else:
        secret, _ = TokenFile(tokens).create("ops", "admin", ["*"])
    token_file = tmp_path / "ops.token"
    token_file.write_text(secret + "\n")
    process = await asyncio.create_subprocess_exec(
        *CLI,
        "--url",
        f"sqlite:///{tmp_path / 'served.db'}",
        "serve",
        "--bind",
        "127.0.0.1:0",
        "--tokens",
        str(tokens),
        cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        line = (await asyncio.wait_for(process.stdout.readline(), 60)).decode()
        assert line.startswith("confstore: serving on http://127.0.0.1:"), line
        yield ServeProcess(process, line.split()[-1], tokens, token_file)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def test_token_create_serve_and_the_cli_through_a_remote_url(tmp_path: Path) -> None:
    async with serve_process(tmp_path, cli_token=True) as served:
        url = served.store_url
        value = '{"a": 1, "api_key": "sk-1"}'
        code, out, err = await run_cli(
            "--url",
            url,
            "set",
            "system",
            "svc",
            "key",
            value,
            "--tenant",
            "acme",
            "--by",
            "alice",
            cwd=tmp_path,
        )
        assert code == 0, err
        code, out, err = await run_cli(
            "--url", url, "get", "system", "svc", "key", "--tenant", "acme", "--json", cwd=tmp_path
        )
        assert code == 0, err
    entry = json.loads(out)
    assert (entry["version"], entry["updated_by"], entry["config_value"]["api_key"]) == (
        1,
        "alice",
        "***",
    )
    assert served.token_file.read_text().strip() not in served.tokens.read_text()  # a hash only


async def test_sigterm_finishes_in_flight_requests_and_ends_streams(tmp_path: Path) -> None:
    """An export still being streamed when SIGTERM comes is completed; watchers' streams end;
    the process exits 0 once the export is done."""
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
    async with serve_process(tmp_path) as served, aiohttp.ClientSession() as session:
        auth = {"Authorization": f"Bearer {served.token_file.read_text().strip()}"}
        imported = await session.post(
            served.url + "/v1/tenants/acme/import",
            data=io.BytesIO(json.dumps({"configs": entries}).encode()),
            headers={**auth, "Content-Type": "application/json"},
        )
        assert imported.status == 200
        async with (
            session.get(served.url + "/v1/watch", headers=auth) as stream,
            session.get(served.url + "/v1/tenants/acme/export", headers=auth) as export,
        ):
            await stream.content.readuntil(b"\n\n")  # the ready event: the watcher is connected
            start = await export.content.read(1000)  # the export has begun, 8 MB still to come
            served.process.send_signal(signal.SIGTERM)
            async with asyncio.timeout(15):
                rest_of_stream = await stream.content.read()  # ends at shutdown
                document = json.loads(start + await export.content.read())
        code = await asyncio.wait_for(served.process.wait(), 20)
        assert served.process.stdout is not None
        said = (await served.process.stdout.read()).decode()
    assert len(document["configs"]) == 2000
    assert b"event: change" not in rest_of_stream
    assert code == 0
    assert "shutting down" in said


async def test_config_manager_hot_reload_follows_the_event_stream(tmp_path: Path) -> None:
    """With a poll interval of a minute, a change made through another handle still reaches the
    manager's watch within seconds: the remote store wakes it from the server's event stream."""
    async with (
        serve_process(tmp_path) as served,
        ConfigManager(url=served.store_url, poll_interval=60) as manager,
        ConfigManager(url=served.store_url) as other,
    ):
        assert (await manager.get_system_config("acme")).llm_model == SystemConfig().llm_model
        watch = manager.watch(tenant_id="acme")
        await other.set_system_config(SystemConfig(llm_model="remote-model"), "acme")
        async with asyncio.timeout(15):
            event = await anext(aiter(watch))
        reloaded = await manager.get_system_config("acme")
    assert event.tenant_id == "acme"
    assert reloaded.llm_model == "remote-model"
