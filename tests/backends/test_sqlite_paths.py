"""Where an SQLite store may live: directories, the default location, read-only files and mounts."""

from __future__ import annotations

import asyncio
import os
import shutil
import sqlite3
import sys
import textwrap
from pathlib import Path

import pytest

from confstore import (
    BackendUnavailableError,
    InvalidConfigError,
    PermissionDeniedError,
    open_store,
)
from confstore.backends.sqlite import SQLiteConfigStore

SYSTEM = "system"

# Reads the store at argv[1], tries a write, and prints what happened.
READER_SCRIPT = textwrap.dedent(
    """
    import asyncio, sys
    from confstore import PermissionDeniedError, open_store

    async def main(url):
        async with open_store(url) as store:
            entry = await store.get_config("acme", "system", "svc", "key")
            print("read", entry.config_value["n"], len(await store.list_configs("acme")))
            try:
                await store.set_config("acme", "system", "svc", "key", {"n": 2})
            except PermissionDeniedError as exc:
                print("write refused:", exc)

    asyncio.run(main(sys.argv[1]))
    """
)


async def make_store(path: Path) -> None:
    async with SQLiteConfigStore(path) as store:
        await store.set_config("acme", SYSTEM, "svc", "key", {"n": 1})


async def run(*command: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    async with asyncio.timeout(60):
        stdout, stderr = await process.communicate()
    assert process.returncode is not None
    return process.returncode, stdout.decode(), stderr.decode()


async def test_an_explicit_path_in_a_missing_directory_raises_and_creates_nothing(
    tmp_path: Path,
) -> None:
    store = open_store(f"sqlite:///{tmp_path}/missing/config.db")
    with pytest.raises(BackendUnavailableError, match="missing does not exist"):
        await store.initialize()
    assert await asyncio.to_thread(os.listdir, tmp_path) == []


@pytest.mark.parametrize("url", [None, "sqlite:///data/config/config.db"])
async def test_the_default_location_creates_its_directories(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, url: str | None
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CONFSTORE_URL", raising=False)
    async with open_store(url) as store:
        await store.set_config("acme", SYSTEM, "svc", "key", {"n": 1})
    assert (tmp_path / "data" / "config" / "config.db").is_file()


def test_an_unknown_mode_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(InvalidConfigError, match="mode must be rw or ro"):
        open_store(f"sqlite:///{tmp_path}/config.db?mode=rwc")


async def test_mode_ro_reads_everything_refuses_writes_and_changes_nothing(
    tmp_path: Path,
) -> None:
    path = tmp_path / "config.db"
    await make_store(path)
    before = path.read_bytes()
    async with open_store(f"sqlite:///{path}?mode=ro") as store:
        entry = await store.get_config("acme", SYSTEM, "svc", "key")
        assert entry is not None
        assert entry.config_value == {"n": 1}
        assert [e.config_key for e in await store.list_configs("acme")] == ["key"]
        assert (await store.get_stats())["total_versions"] == 1
        assert len((await store.changes_since(None)).changes) == 1
        assert await store.health_check() is True
        with pytest.raises(PermissionDeniedError, match="read-only"):
            await store.set_config("acme", SYSTEM, "svc", "key", {"n": 2})
        with pytest.raises(PermissionDeniedError, match="read-only"):
            await store.delete_config("acme", SYSTEM, "svc", "key")
    assert path.read_bytes() == before


async def test_mode_ro_on_a_missing_file_raises_and_creates_nothing(tmp_path: Path) -> None:
    with pytest.raises(BackendUnavailableError):
        await open_store(f"sqlite:///{tmp_path}/absent.db?mode=ro").initialize()
    assert await asyncio.to_thread(os.listdir, tmp_path) == []


async def test_mode_ro_on_a_database_without_the_schema_raises(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE unrelated (x)")
    with pytest.raises(BackendUnavailableError, match="no confstore schema"):
        await open_store(f"sqlite:///{path}?mode=ro").initialize()


@pytest.mark.skipif(not shutil.which("setpriv"), reason="needs setpriv (util-linux)")
async def test_a_file_the_process_may_not_write_is_opened_read_only(tmp_path: Path) -> None:
    """chmod 444 stops writes only for a process without CAP_DAC_OVERRIDE: as root, the reader
    runs with that capability (and its relatives) dropped, so permissions apply to it."""
    path = tmp_path / "config.db"
    await make_store(path)
    path.chmod(0o444)
    before = path.read_bytes()
    command = [sys.executable, "-c", READER_SCRIPT, f"sqlite:///{path}"]
    if os.geteuid() == 0:
        drop = "-dac_override,-dac_read_search,-fowner"
        command = ["setpriv", "--bounding-set", drop, *command]
    status, stdout, stderr = await run(*command)
    assert status == 0, stderr
    assert stdout.splitlines()[0] == "read 1 1"
    assert "write refused" in stdout
    assert "may not write" in stdout
    assert path.read_bytes() == before


@pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("unshare"),
    reason="mounting a file system in a private mount namespace needs root and unshare",
)
async def test_a_store_on_a_read_only_file_system_can_be_read(tmp_path: Path) -> None:
    """A tmpfs mounted in a private mount namespace, filled, then remounted read-only."""
    mount = tmp_path / "mnt"
    mount.mkdir()
    url = f"sqlite:///{mount}/config.db"
    fill = (
        "import asyncio; from confstore import open_store\n"
        "async def main():\n"
        f"    async with open_store({url!r}) as store:\n"
        "        await store.set_config('acme', 'system', 'svc', 'key', {'n': 1})\n"
        "asyncio.run(main())\n"
    )
    script = (
        f'mount -t tmpfs tmpfs {mount} && {sys.executable} -c "$FILL" && '
        f'mount -o remount,ro {mount} && {sys.executable} -c "$READ" {url}'
    )
    process = await asyncio.create_subprocess_exec(
        "unshare",
        "--mount",
        "--propagation",
        "private",
        "sh",
        "-c",
        script,
        env={**os.environ, "FILL": fill, "READ": READER_SCRIPT},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(60):
        stdout_bytes, stderr_bytes = await process.communicate()
    stdout, stderr = stdout_bytes.decode(), stderr_bytes.decode()
    if process.returncode != 0 and "mount" in stderr and "permission" in stderr.lower():
        pytest.skip(f"this machine does not let root mount in a namespace: {stderr.strip()}")
    assert process.returncode == 0, stderr
    assert stdout.splitlines()[0] == "read 1 1"
    assert "read-only file system" in stdout
