"""ruff (lint and format) and mypy --strict stay clean: CI runs them through the test command."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]


def run_tool(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *command], cwd=ROOT, capture_output=True, text=True, check=False
    )


@pytest.mark.parametrize("command", [("ruff", "check", "."), ("ruff", "format", "--check", ".")])
def test_ruff_is_clean(command: tuple[str, ...]) -> None:
    if shutil.which("ruff") is None and run_tool("ruff", "--version").returncode != 0:
        pytest.skip("ruff is not installed (pip install -r requirements-dev.txt)")
    result = run_tool(*command)
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_strict_is_clean() -> None:
    if run_tool("mypy", "--version").returncode != 0:
        pytest.skip("mypy is not installed (pip install -r requirements-dev.txt)")
    result = run_tool("mypy")
    assert result.returncode == 0, result.stdout + result.stderr
