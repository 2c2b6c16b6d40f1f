"""Scripts that never close a store or manager still exit, and keep every acknowledged write.

Each pattern runs as a real Python subprocess with a timeout (a hang fails the test), the way a
user's script runs; afterwards the test reads the store to check the script's writes are there.
Unclosed stores warn with ResourceWarning (shown here with ``-W always::ResourceWarning``).
"""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest
from confstore_elasticsearch.emulator import ElasticsearchEmulator
from script_process import run_script_file

from confstore import open_store

WRITE_WITH_STORE = """
    store = open_store(URL)
    await store.initialize()
    await store.set_config("acme", "system", "svc", "key", {"n": 1})
"""

# The original system's canonical usage: the process-wide manager, never closed.
GLOBAL_MANAGER = """
    from confstore import SystemConfig, get_config_manager
    manager = get_config_manager()
    config = await manager.get_system_config(tenant_id="acme")
    config.llm_model = "model-from-script"
    await manager.set_system_config(config)
    assert (await manager.get_system_config(tenant_id="acme")).llm_model == "model-from-script"
"""

CONFIG_UTILS = """
    from confstore import SystemConfig, config_utils, get_config_manager
    await get_config_manager().set_system_config(
        SystemConfig(tenant_id="acme", llm_model="model-from-script")
    )
    config = await config_utils.get_config(tenant_id="acme")
    assert config["llm_model"] == "model-from-script"
"""

# The caller forgets the store it handed to the manager (the manager leaves closing it to them).
MANAGER_WITH_FORGOTTEN_STORE = """
    from confstore import ConfigManager, SystemConfig
    manager = ConfigManager(store=open_store(URL))
    await manager.set_system_config(SystemConfig(tenant_id="acme", llm_model="model-from-script"))
"""

MANAGER_OWNING_ITS_STORE = """
    from confstore import ConfigManager, SystemConfig
    manager = ConfigManager(url=URL)
    await manager.set_system_config(SystemConfig(tenant_id="acme", llm_model="model-from-script"))
"""

# Writes still in flight when the loop ends: those acknowledged (printed) must be stored.
WRITES_IN_FLIGHT = """
    store = open_store(URL)
    await store.initialize()

    async def write(n):
        entry = await store.set_config("acme", "system", "svc", f"key-{n}", {"n": n})
        print(entry.config_key, flush=True)

    tasks = [asyncio.create_task(write(n)) for n in range(200)]
    await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
"""

# An exception escapes asyncio.run.
FAILING_SCRIPT = """
    store = open_store(URL)
    await store.initialize()
    await store.set_config("acme", "system", "svc", "key", {"n": 1})
    raise RuntimeError("the script fails after its write")
"""


def script_text(body: str, url: str) -> str:
    """A script whose ``main()`` runs ``body`` under ``asyncio.run``, with ``URL`` defined."""
    return "\n".join(
        [
            "import asyncio",
            "from confstore import open_store",
            f"URL = {url!r}",
            "async def main():",
            textwrap.indent(textwrap.dedent(body).strip(), "    "),
            "asyncio.run(main())",
            "",
        ]
    )


async def run_script(
    tmp_path: Path, body: str, url: str, *, store_url_variable: str | None = None
) -> tuple[int, str, str]:
    """Run the script to completion within EXIT_TIMEOUT; return (exit status, stdout, stderr).

    ``store_url_variable`` is the script's $CONFSTORE_URL (None: unset).
    """
    env = {name: value for name, value in os.environ.items() if name != "CONFSTORE_URL"}
    if store_url_variable is not None:
        env["CONFSTORE_URL"] = store_url_variable
    path = tmp_path / "script.py"
    path.write_text(script_text(body, url))
    return await run_script_file(path, cwd=tmp_path, env=env)


async def stored_llm_model(url: str) -> object:
    async with open_store(url) as store:
        entry = await store.get_config("acme", "system", "system", "system_config")
    return None if entry is None else entry.config_value["llm_model"]


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'config.db'}"


async def test_a_never_closed_sqlite_store_exits_keeps_its_write_and_warns(
    tmp_path: Path, sqlite_url: str
) -> None:
    status, _, stderr = await run_script(tmp_path, WRITE_WITH_STORE, sqlite_url)
    assert status == 0, stderr
    assert "ResourceWarning: unclosed SQLiteConfigStore" in stderr
    async with open_store(sqlite_url) as store:
        entry = await store.get_config("acme", "system", "svc", "key")
    assert entry is not None
    assert entry.config_value == {"n": 1}


@pytest.mark.parametrize(
    ("body", "through_the_environment"),
    [
        (GLOBAL_MANAGER, True),
        (CONFIG_UTILS, True),
        (MANAGER_WITH_FORGOTTEN_STORE, False),
        (MANAGER_OWNING_ITS_STORE, False),
    ],
    ids=[
        "get_config_manager()",
        "config_utils.get_config()",
        "ConfigManager(store=open_store(url))",
        "ConfigManager(url=url)",
    ],
)
async def test_a_never_closed_manager_exits_and_keeps_its_write(
    tmp_path: Path, sqlite_url: str, body: str, through_the_environment: bool
) -> None:
    """The process-wide manager finds its URL in $CONFSTORE_URL; the others are given it."""
    variable = sqlite_url if through_the_environment else None
    status, _, stderr = await run_script(tmp_path, body, sqlite_url, store_url_variable=variable)
    assert status == 0, stderr
    assert "ResourceWarning: unclosed SQLiteConfigStore" in stderr
    assert await stored_llm_model(sqlite_url) == "model-from-script"


async def test_the_default_location_is_used_and_created_by_a_never_closed_manager(
    tmp_path: Path,
) -> None:
    """The README's snippet as is: no URL at all, data/config/config.db under the working dir."""
    status, _, stderr = await run_script(tmp_path, GLOBAL_MANAGER, "unused")
    assert status == 0, stderr
    assert await stored_llm_model(f"sqlite:///{tmp_path}/data/config/config.db") == (
        "model-from-script"
    )


async def test_writes_acknowledged_before_the_loop_ended_are_stored(
    tmp_path: Path, sqlite_url: str
) -> None:
    status, stdout, stderr = await run_script(tmp_path, WRITES_IN_FLIGHT, sqlite_url)
    assert status == 0, stderr
    acknowledged = stdout.split()
    assert acknowledged
    async with open_store(sqlite_url) as store:
        stored = {entry.config_key for entry in await store.list_configs("acme")}
    assert set(acknowledged) <= stored


async def test_a_script_that_raises_exits_with_its_traceback_and_keeps_its_write(
    tmp_path: Path, sqlite_url: str
) -> None:
    status, _, stderr = await run_script(tmp_path, FAILING_SCRIPT, sqlite_url)
    assert status == 1
    assert "RuntimeError: the script fails after its write" in stderr
    async with open_store(sqlite_url) as store:
        assert await store.get_config("acme", "system", "svc", "key") is not None


async def test_a_never_closed_http_store_exits_and_keeps_its_write(tmp_path: Path) -> None:
    async with ElasticsearchEmulator() as emulator:
        url = f"elasticsearch+{emulator.url}?index=exit-test"
        status, _, stderr = await run_script(tmp_path, WRITE_WITH_STORE, url)
        assert status == 0, stderr
        async with open_store(url) as store:
            entry = await store.get_config("acme", "system", "svc", "key")
    assert entry is not None
    assert entry.config_value == {"n": 1}


# A manager that is following the feed (its watcher thread waiting on the file) when the
# script ends. The watch exists before the write: a watch reports changes committed after it
# was made, and the follower may deliver the write before set_system_config returns.
MANAGER_FOLLOWING_THE_FEED = """
    from confstore import ConfigManager, SystemConfig
    manager = ConfigManager(url=URL)
    watch = manager.watch()
    await manager.set_system_config(SystemConfig(tenant_id="acme", llm_model="model-from-script"))
    assert (await anext(watch)).version == 1
"""


async def test_a_never_closed_manager_following_the_feed_exits_and_leaves_the_file_clean(
    tmp_path: Path, sqlite_url: str
) -> None:
    status, _, stderr = await run_script(tmp_path, MANAGER_FOLLOWING_THE_FEED, sqlite_url)
    assert status == 0, stderr
    # Every connection closed at exit, the watcher's too: the last one checkpointed the WAL.
    assert not (tmp_path / "config.db-wal").exists()
    assert await stored_llm_model(sqlite_url) == "model-from-script"
