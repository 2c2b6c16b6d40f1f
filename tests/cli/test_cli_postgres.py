"""``confstore migrate`` to and from a real PostgreSQL server (a throwaway cluster), and resuming."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from cli_harness import Cli
from test_cli_transfer import _kill_midway, everything, seed

cluster_module = pytest.importorskip("confstore_postgres.cluster")


@pytest.fixture
def postgres_target(postgres_server: str) -> str:
    return f"{postgres_server}?schema=cli_{uuid.uuid4().hex[:12]}"


def test_migrate_sqlite_to_postgres_and_back_keeps_every_version(
    cli: Cli, postgres_target: str, tmp_path: Path
) -> None:
    seed(cli, acme=(3, 4), beta=(1, 2))
    cli.seed("set", "--tenant", "retired", "agent", "bot", "settings", "{}")
    cli.seed("delete", "--tenant", "retired", "agent", "bot", "settings")
    result = cli("migrate", "--from", cli.url, "--to", postgres_target, "--batch-size", "5")
    assert result.exit_code == 0, result.stderr
    assert everything(cli, postgres_target) == everything(cli)
    back = f"sqlite:///{tmp_path / 'back.db'}"
    result = cli("migrate", "--from", postgres_target, "--to", back, "--json")
    assert result.exit_code == 0, result.stderr
    assert result.json()["versions_written"] == 3 * 4 + 2 + 2
    assert everything(cli, back) == everything(cli)


def test_migrate_to_postgres_resumes_after_being_killed(cli: Cli, postgres_target: str) -> None:
    keys, versions = 40, 50
    seed(cli, acme=(keys, versions))
    argv = ["migrate", "--from", cli.url, "--to", postgres_target, "--batch-size", "10"]
    copied = _kill_midway(cli, argv)
    assert 0 < copied < keys * versions
    result = cli(*argv, "--json")
    assert result.exit_code == 0, result.stderr
    assert result.json()["versions_written"] == keys * versions - copied
    assert everything(cli, postgres_target) == everything(cli)


def test_a_postgres_store_that_is_down_exits_5(cli: Cli) -> None:
    url = f"postgresql://postgres@127.0.0.1:{cluster_module.free_port()}/postgres?timeout=2"
    result = cli("get", "system", "system", "system_config", url=url)
    assert result.exit_code == 5
    assert "Traceback" not in result.stderr
