"""``confstore watch`` (live changes from other processes, clean exit on signals) and ``demo``."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from cli_harness import Cli, cli_environment, confstore_command

from confstore import (
    BackendUnavailableError,
    ChangeBatch,
    ConfigStore,
    MemoryConfigStore,
    SQLiteConfigStore,
    StoreURL,
    register_backend,
)
from confstore._registry import backend_registry
from confstore.cli import main


@contextmanager
def watching(cli: Cli, *args: str) -> Iterator[subprocess.Popen[str]]:
    """A running ``confstore watch``, handed over once it has taken its cursor."""
    argv = [*confstore_command(), "--url", cli.url, "watch", "--interval", "0.05", *args]
    with subprocess.Popen(
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=cli.cwd,
        env=cli_environment(),
    ) as process:
        # A watch that never prints would block readline() for ever: end it after a minute.
        deadline = threading.Timer(60, process.kill)
        deadline.start()
        try:
            assert process.stderr is not None
            assert process.stderr.readline().startswith("watching ")
            yield process
        finally:
            deadline.cancel()
            if process.poll() is None:
                process.kill()


def stop(process: subprocess.Popen[str], signum: int) -> int:
    process.send_signal(signum)
    return process.wait(timeout=30)


def test_watch_prints_a_change_made_by_another_process(cli: Cli) -> None:
    cli.seed("set", "agent", "bot", "settings", "{}")  # before the watch: not reported
    with watching(cli) as process:
        assert cli("set", "--tenant", "acme", "agent", "bot", "settings", "{}").exit_code == 0
        assert process.stdout is not None
        line = process.stdout.readline()
        exit_code = stop(process, signal.SIGINT)
    assert line.split()[2:] == ["set", "acme/agent/bot/settings", "version", "1"]
    assert exit_code == 0


def test_watch_on_sqlite_is_woken_by_a_commit_long_before_its_interval(cli: Cli) -> None:
    with watching(cli, "--interval", "600") as process:
        assert cli("set", "--tenant", "acme", "agent", "bot", "settings", "{}").exit_code == 0
        assert process.stdout is not None
        line = process.stdout.readline()
        exit_code = stop(process, signal.SIGTERM)
    assert line.split()[2:] == ["set", "acme/agent/bot/settings", "version", "1"]
    assert exit_code == 0


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_watch_exits_cleanly_on_a_signal(cli: Cli, signum: int) -> None:
    with watching(cli) as process:
        assert stop(process, signum) == 0
        assert process.stderr is not None
        assert process.stderr.read() == ""


def test_watch_json_prints_one_object_per_change_filtered_by_tenant(cli: Cli) -> None:
    with watching(cli, "--json", "--tenant", "acme") as process:
        cli.seed("set", "--tenant", "other", "agent", "bot", "settings", "{}")
        cli.seed("set", "--tenant", "acme", "agent", "bot", "settings", "{}")
        cli.seed("delete", "--tenant", "acme", "agent", "bot", "settings")
        assert process.stdout is not None
        records = [json.loads(process.stdout.readline()) for _ in range(2)]
        stop(process, signal.SIGTERM)
    assert [(r["tenant_id"], r["kind"], r["version"]) for r in records] == [
        ("acme", "set", 1),
        ("acme", "delete", 2),
    ]


class _OutageStore(MemoryConfigStore):
    """A memory store whose change feed is down for two polls, during which a config is
    written; the poll that delivers it also asks the watch to stop, as Ctrl-C would."""

    def __init__(self) -> None:
        super().__init__()
        self.polls = 0

    async def _changes_since(self, cursor: str | None, limit: int) -> ChangeBatch:
        self.polls += 1
        if self.polls == 2:
            await self.set_config("acme", "agent", "bot", "settings", {})
        if self.polls in (2, 3):
            raise BackendUnavailableError("change feed down")
        batch = await super()._changes_since(cursor, limit)
        if batch.changes:
            os.kill(os.getpid(), signal.SIGINT)
        return batch


def test_watch_waits_out_an_outage_and_misses_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    # In-process: a store that fails on cue cannot be reached from another process.
    def open_outage_store(url: StoreURL, /, **options: Any) -> ConfigStore:
        return _OutageStore()

    register_backend("cli-outage", open_outage_store)
    try:
        assert main(["--url", "cli-outage://", "watch", "--interval", "0.01"]) == 0
    finally:
        backend_registry.unregister("cli-outage")
    out, err = capsys.readouterr()
    assert out.split()[2:] == ["set", "acme/agent/bot/settings", "version", "1"]
    assert err.count("confstore: warning: change feed down; retrying") == 1
    assert "the backend answers again" in err


def test_demo_walks_through_a_store(cli: Cli) -> None:
    result = cli("demo")
    assert result.exit_code == 0, result.stderr
    for step in ("1. write a config", "4. every version is kept", "6. export the tenant"):
        assert step in result.stdout
    assert '"llm_api_key": "***"' in result.stdout  # the get step masks the key
    assert '~ llm_model: "gpt-4" -> "gpt-4o"' in result.stdout
    assert cli(
        "history", "--tenant", "demo", "agent", "support-bot", "llm_settings", "--json"
    ).json()


def test_demo_can_run_again_on_the_same_store(cli: Cli) -> None:
    cli("demo")
    assert cli("demo").exit_code == 0
    latest = cli("get", "--tenant", "demo", "agent", "support-bot", "llm_settings", "--json").json()
    assert latest["version"] == 4


def test_demo_uses_the_default_store_in_the_working_directory(cli: Cli) -> None:
    result = cli.run_raw([*confstore_command(), "demo"])
    assert result.exit_code == 0, result.stderr
    assert (cli.cwd / "data" / "config" / "config.db").exists()


@pytest.mark.parametrize("url", ["memory://", "sqlite://:memory:"])
def test_demo_on_a_store_that_forgets_between_steps_is_a_usage_error(cli: Cli, url: str) -> None:
    """Each step opens the store anew: on a private in-memory store step 2 found nothing."""
    result = cli("demo", url=url)
    assert (result.exit_code, result.stdout) == (2, "")
    assert result.stderr.count("\n") == 1
    assert "memory://demo" in result.stderr


def test_demo_runs_on_a_named_memory_store(cli: Cli) -> None:
    result = cli("demo", url="memory://demo")
    assert result.exit_code == 0, result.stderr
    assert "6. export the tenant" in result.stdout


class _TrimmingStore(SQLiteConfigStore):
    """A real SQLite store whose feed is trimmed under the watch's cursor on its second poll."""

    polls = 0

    async def _changes_since(self, cursor: str | None, limit: int) -> ChangeBatch:
        self.polls += 1
        if self.polls == 2:
            for n in range(5):
                await self.set_config("acme", "agent", "bot", "settings", {"n": n})
            await self.prune(keep_last=1)
        if self.polls == 4:
            await self.set_config("acme", "agent", "bot", "settings", {"n": "after"})
        batch = await super()._changes_since(cursor, limit)
        if any(change.version == 6 for change in batch.changes):
            os.kill(os.getpid(), signal.SIGINT)
        return batch


def test_watch_goes_on_from_the_present_when_its_cursor_expired(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def open_trimming_store(url: StoreURL, /, **options: Any) -> ConfigStore:
        return _TrimmingStore(tmp_path / "trimmed.db", feed_max_changes=2)

    # An empty file is an empty SQLite database: watch only reads, so it needs one to exist.
    (tmp_path / "trimmed.db").touch()
    register_backend("cli-trimming", open_trimming_store)
    try:
        assert main(["--url", "cli-trimming://", "watch", "--interval", "0.01"]) == 0
    finally:
        backend_registry.unregister("cli-trimming")
    out, err = capsys.readouterr()
    assert out.split()[2:] == ["set", "acme/agent/bot/settings", "version", "6"]
    assert "changes were trimmed from the store's feed" in err
