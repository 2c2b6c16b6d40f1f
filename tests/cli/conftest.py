"""Fixtures of the CLI tests: one SQLite file per test, driven through the installed command."""

from __future__ import annotations

from pathlib import Path

import pytest
from cli_harness import Cli


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    return Cli(url=f"sqlite:///{tmp_path / 'store.db'}", cwd=tmp_path)
