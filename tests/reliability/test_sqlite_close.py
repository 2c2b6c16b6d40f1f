"""After ``close()`` returns, a SQLite store has ended its threads and closed its connections.

The last connection to close checkpoints the WAL and removes ``-wal`` and ``-shm``, so the
database file alone holds every commit (as with sqlite3 or SQLAlchemy). Each case runs as a real
Python process, the way a user's script does, and checks the file while that process still runs
(after close, before exit: the exit handlers must not be what cleans up).
"""

from __future__ import annotations

import asyncio
import json
import shutil
import sqlite3
import textwrap
from pathlib import Path
from typing import Any

import pytest
from script_process import run_script_file

from confstore import ConfigStoreError, open_store

# Prints, after close: the confstore threads still alive and whether -wal/-shm still exist.
PRELUDE = """
import asyncio, json, os, sys, threading
from confstore import ConfigManager, SystemConfig, open_store
PATH = sys.argv[1]
URL = f"sqlite:///{PATH}"

def report():
    print(json.dumps({
        "threads": [t.name for t in threading.enumerate() if t.name.startswith("confstore")],
        "wal": os.path.exists(PATH + "-wal"),
        "shm": os.path.exists(PATH + "-shm"),
    }), flush=True)
"""

STORE_WATCHED = """
async def main():
    async with open_store(URL) as store:
        cursor = await store.current_cursor()
        waiting = asyncio.create_task(store.wait_for_changes(cursor, 30))
        await asyncio.sleep(0.05)
        for n in range(1, 4):
            await store.set_config("acme", "system", "svc", "key", {"n": n})
        await waiting
    report()

asyncio.run(main())
"""

MANAGER_HOT_RELOAD = """
async def main():
    async with open_store(URL) as writer, ConfigManager(url=URL) as manager:
        watch = manager.watch()
        await manager.get_system_config(tenant_id="acme")
        for n in range(1, 4):
            await writer.set_config("acme", "system", "svc", "key", {"n": n})
        await manager.set_system_config(SystemConfig(tenant_id="acme", llm_model="last"))
        while (await anext(watch)).key.service != "system":
            pass
        config = await manager.get_system_config(tenant_id="acme")
        assert config.llm_model == "last", config
    report()

asyncio.run(main())
"""


async def run(tmp_path: Path, body: str) -> dict[str, Any]:
    """Run ``body`` after PRELUDE in a new interpreter; what its ``report()`` printed last."""
    script = tmp_path / "script.py"
    script.write_text(textwrap.dedent(PRELUDE) + textwrap.dedent(body))
    status, stdout, stderr = await run_script_file(script, str(tmp_path / "config.db"))
    assert status == 0, stderr
    report: dict[str, Any] = json.loads(stdout.splitlines()[-1])
    return report


def copied_alone(tmp_path: Path) -> Path:
    """The database file copied by itself, as a user backing it up would."""
    copy_dir = tmp_path / "copy"
    copy_dir.mkdir()
    return Path(shutil.copy(tmp_path / "config.db", copy_dir / "config.db"))


def latest_version(path: Path, service: str, config_key: str) -> int:
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        (version,) = connection.execute(
            "SELECT max(version) FROM config_versions WHERE service = ? AND config_key = ?",
            (service, config_key),
        ).fetchone()
    finally:
        connection.close()
    return int(version)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        pytest.param(STORE_WATCHED, {("svc", "key"): 3}, id="store-watched"),
        pytest.param(
            MANAGER_HOT_RELOAD,
            {("svc", "key"): 3, ("system", "system_config"): 1},
            id="manager-hot-reload",
        ),
    ],
)
async def test_after_close_no_thread_runs_and_the_database_file_alone_has_the_last_commit(
    tmp_path: Path, body: str, expected: dict[tuple[str, str], int]
) -> None:
    report = await run(tmp_path, body)
    assert report == {"threads": [], "wal": False, "shm": False}
    copy = copied_alone(tmp_path)
    assert {key: latest_version(copy, *key) for key in expected} == expected


async def test_close_from_a_cancelled_task_still_ends_every_thread(tmp_path: Path) -> None:
    report = await run(
        tmp_path,
        """
        async def main():
            store = open_store(URL)
            await store.initialize()
            await store.set_config("acme", "system", "svc", "key", {"n": 1})
            waiting = asyncio.create_task(store.wait_for_changes(await store.current_cursor(), 30))
            await asyncio.sleep(0.05)
            closing = asyncio.create_task(store.close())
            await asyncio.sleep(0)
            closing.cancel()
            try:
                await closing
            except asyncio.CancelledError:
                pass
            await store.close()
            await store.close()
            await waiting
            report()

        asyncio.run(main())
        """,
    )
    assert report == {"threads": [], "wal": False, "shm": False}
    assert latest_version(copied_alone(tmp_path), "svc", "key") == 1


async def test_a_write_in_flight_at_close_lands_whole_or_fails_typed(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'config.db'}"
    store = open_store(url)
    await store.initialize()
    writes = [
        asyncio.create_task(store.set_config("acme", "system", "svc", f"key-{n}", {"n": n}))
        for n in range(50)
    ]
    await asyncio.sleep(0)
    await store.close()
    outcomes = await asyncio.gather(*writes, return_exceptions=True)
    landed = {entry.config_key for entry in outcomes if not isinstance(entry, BaseException)}
    failed = [outcome for outcome in outcomes if isinstance(outcome, BaseException)]
    assert all(isinstance(error, ConfigStoreError) for error in failed), failed
    assert not (tmp_path / "config.db-wal").exists()
    async with open_store(url) as reopened:
        stored = {entry.config_key for entry in await reopened.list_configs("acme")}
    assert stored == landed
