"""A command that only reads refuses a SQLite file that does not exist; one that writes creates it.

A mistyped path (``--url sqlite:///typo.db``) used to be created as an empty database, and the
command then reported nothing found, or (``migrate --from``) copied nothing and exited 0.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_harness import Cli

KEY = ("system", "svc", "key")
EXPORT_DOCUMENT = {
    "format": "confstore-export",
    "format_version": 1,
    "tenant_id": "acme",
    "include_history": False,
    "exported_at": "2026-01-01T00:00:00+00:00",
    "configs": [],
}

READ_COMMANDS = [
    ("get", *KEY),
    ("history", *KEY),
    ("diff", *KEY),
    ("list",),
    ("tenants",),
    ("stats",),
    ("export",),
    ("watch",),
    ("explain", "system", "system", "system_config"),
    ("check",),
    ("prune", "--keep-last", "1", "--dry-run"),
]


@pytest.fixture
def typo(tmp_path: Path) -> Path:
    return tmp_path / "typo.db"


@pytest.mark.parametrize("command", READ_COMMANDS, ids=lambda command: command[0])
def test_a_read_command_on_a_missing_file_exits_5_naming_it_and_creates_nothing(
    cli: Cli, typo: Path, command: tuple[str, ...]
) -> None:
    result = cli(*command, url=f"sqlite:///{typo}")
    assert (result.exit_code, result.stdout) == (5, "")
    (line,) = result.stderr.splitlines()
    assert line.startswith("confstore: error: no SQLite database at ")
    assert str(typo) in line
    assert list(typo.parent.glob("typo.db*")) == []


def test_migrate_from_a_missing_file_exits_5_and_creates_neither_store(
    cli: Cli, typo: Path, tmp_path: Path
) -> None:
    target = tmp_path / "target.db"
    result = cli("migrate", "--from", f"sqlite:///{typo}", "--to", f"sqlite:///{target}")
    assert result.exit_code == 5, result.stderr
    assert str(typo) in result.stderr
    assert list(tmp_path.glob("typo.db*")) == list(tmp_path.glob("target.db*")) == []


def test_a_dry_run_import_into_a_missing_file_exits_5(cli: Cli, typo: Path) -> None:
    result = cli(
        "import", "-", "--dry-run", stdin=json.dumps(EXPORT_DOCUMENT), url=f"sqlite:///{typo}"
    )
    assert result.exit_code == 5, result.stderr
    assert not typo.exists()


def test_set_and_import_still_create_the_database(cli: Cli, tmp_path: Path) -> None:
    written = tmp_path / "written.db"
    assert cli("set", *KEY, '{"n": 1}', url=f"sqlite:///{written}").exit_code == 0
    imported = tmp_path / "imported.db"
    result = cli("import", "-", stdin=json.dumps(EXPORT_DOCUMENT), url=f"sqlite:///{imported}")
    assert result.exit_code == 0, result.stderr
    assert cli("get", *KEY, "--tenant", "default", url=f"sqlite:///{written}").exit_code == 0
    assert cli("stats", url=f"sqlite:///{imported}").exit_code == 0


def test_migrate_still_creates_its_target(cli: Cli, tmp_path: Path) -> None:
    cli.seed("set", *KEY, '{"n": 1}', "--tenant", "acme")
    target = tmp_path / "target.db"
    result = cli("migrate", "--from", cli.url, "--to", f"sqlite:///{target}")
    assert result.exit_code == 0, result.stderr
    assert cli("get", *KEY, "--tenant", "acme", url=f"sqlite:///{target}").exit_code == 0
