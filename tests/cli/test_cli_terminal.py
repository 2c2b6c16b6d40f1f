"""What changes on a terminal: diff colours and the migrate progress bar, seen through a pty."""

from __future__ import annotations

from pathlib import Path

from cli_harness import Cli

RED, GREEN, YELLOW = "\033[31m", "\033[32m", "\033[33m"
KEY = ("agent", "bot", "settings")


def two_versions(cli: Cli) -> None:
    cli.seed("set", *KEY, '{"model": "gpt-4", "old": 1}')
    cli.seed("set", *KEY, '{"model": "gpt-4o", "new": 2}')


def test_diff_is_coloured_on_a_terminal(cli: Cli) -> None:
    two_versions(cli)
    exit_code, output = cli.in_pty("diff", *KEY)
    assert exit_code == 0
    assert f'{YELLOW}~ model: "gpt-4" -> "gpt-4o"' in output
    assert f"{GREEN}+ new: 2" in output
    assert f"{RED}- old: 1" in output


def test_diff_is_plain_on_a_terminal_when_no_color_is_set(cli: Cli) -> None:
    two_versions(cli)
    exit_code, output = cli.in_pty("diff", *KEY, NO_COLOR="1")
    assert exit_code == 0
    assert "\033[" not in output
    assert '~ model: "gpt-4" -> "gpt-4o"' in output


def test_diff_is_plain_when_piped(cli: Cli) -> None:
    two_versions(cli)
    assert "\033[" not in cli("diff", *KEY).stdout


def test_migrate_shows_a_progress_bar_on_a_terminal(cli: Cli, tmp_path: Path) -> None:
    for n in range(3):
        cli.seed("set", "agent", f"bot-{n}", "settings", "{}")
    target = f"sqlite:///{tmp_path / 'target.db'}"
    exit_code, output = cli.in_pty("migrate", "--from", cli.url, "--to", target)
    assert exit_code == 0
    assert "\r[" + "#" * 30 + "] 3/3 versions 100% done" in output


def test_migrate_shows_no_progress_bar_when_not_on_a_terminal(cli: Cli, tmp_path: Path) -> None:
    cli.seed("set", *KEY, "{}")
    result = cli("migrate", "--from", cli.url, "--to", f"sqlite:///{tmp_path / 'target.db'}")
    assert result.exit_code == 0
    assert result.stderr == ""
    assert "\r" not in result.stdout
