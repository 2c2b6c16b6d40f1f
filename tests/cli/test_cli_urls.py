"""An empty store URL on the command line or in $CONFSTORE_URL is invalid input, never the default."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from confstore.cli import main


@pytest.fixture(autouse=True)
def in_empty_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CONFSTORE_URL", raising=False)


def test_an_empty_url_option_exits_6_and_creates_no_store(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--url", "", "list"]) == 6
    assert "the store URL is empty" in capsys.readouterr().err
    assert os.listdir(tmp_path) == []


def test_an_empty_confstore_url_exits_6_and_creates_no_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CONFSTORE_URL", "")
    assert main(["list"]) == 6
    assert "$CONFSTORE_URL is set but empty" in capsys.readouterr().err
    assert os.listdir(tmp_path) == []


def test_an_empty_migrate_url_exits_6(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["migrate", "--from", "", "--to", "memory://"]) == 6
    assert "the store URL is empty" in capsys.readouterr().err
