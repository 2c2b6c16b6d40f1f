"""Fixtures of the CLI tests: one SQLite file per test, driven through the installed command."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from cli_harness import Cli


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    """The CLI on an empty SQLite store that exists (commands that only read refuse a file
    that does not: see test_cli_missing_sqlite_file.py)."""
    cli = Cli(url=f"sqlite:///{tmp_path / 'store.db'}", cwd=tmp_path)
    cli.call(lambda store: store.health_check())
    return cli


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """A throwaway PostgreSQL cluster for the CLI tests that need a server (its URL)."""
    cluster_module = pytest.importorskip("confstore_postgres.cluster")
    # fsync off: durability is not what these tests check, and the disk is shared.
    with cluster_module.TemporaryCluster(settings={"fsync": "off"}) as cluster:
        yield cluster.url()
