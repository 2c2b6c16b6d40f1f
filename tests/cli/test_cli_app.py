"""The command as a whole: help for newcomers, usage errors, backends that are down, health, stats."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest
from cli_harness import Cli, confstore_command

from confstore.cli import main

COMMANDS = [
    "get",
    "set",
    "delete",
    "list",
    "tenants",
    "history",
    "diff",
    "rollback",
    "export",
    "import",
    "migrate",
    "stats",
    "health",
    "watch",
    "schema",
    "demo",
]


def test_help_lists_every_command_and_the_exit_codes(cli: Cli) -> None:
    result = cli.run_raw([*confstore_command(), "--help"])
    assert result.exit_code == 0
    for command in COMMANDS:
        assert f"\n    {command} " in result.stdout
    for code in range(7):
        assert f"\n  {code}  " in result.stdout
    assert "examples:" in result.stdout


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_its_own_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([command, "--help"]) == 0  # in-process: 16 more interpreters would add nothing
    assert capsys.readouterr().out.startswith(f"usage: confstore {command}")


def test_no_command_prints_help_and_exits_2(cli: Cli) -> None:
    result = cli.run_raw(confstore_command())
    assert result.exit_code == 2
    assert "usage: confstore" in result.stderr


def test_usage_error_is_one_line_and_exits_2(cli: Cli) -> None:
    result = cli("get", "nosuchscope", "svc", "key")
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith("confstore get: error: argument SCOPE: invalid choice")


def test_global_options_work_after_the_command(cli: Cli) -> None:
    cli.seed("set", "agent", "bot", "settings", "{}")
    argv = [*confstore_command(), "get", "agent", "bot", "settings", "--url", cli.url, "--json"]
    assert cli.run_raw(argv).json()["version"] == 1


def test_unknown_backend_scheme_exits_5_naming_the_package(cli: Cli) -> None:
    result = cli("get", "agent", "bot", "settings", url="nosuch://somewhere")
    assert result.exit_code == 5
    assert result.stderr.startswith("confstore: error: no confstore backend for scheme 'nosuch'")


def _unusable_sqlite_url(tmp_path: Path) -> str:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file where the database directory should be")
    return f"sqlite:///{blocker / 'store.db'}"


def test_unreachable_backend_exits_5_with_one_line(cli: Cli, tmp_path: Path) -> None:
    result = cli("list", url=_unusable_sqlite_url(tmp_path))
    assert result.exit_code == 5
    assert result.stderr.startswith("confstore: error:")
    assert result.stderr.count("\n") == 1
    assert "Traceback" not in result.stderr


def test_health_of_a_working_store_exits_0(cli: Cli) -> None:
    result = cli("health")
    assert result.exit_code == 0
    assert result.stdout.startswith("healthy (sqlite")


def test_health_of_a_broken_store_exits_1(cli: Cli, tmp_path: Path) -> None:
    result = cli("health", "--json", url=_unusable_sqlite_url(tmp_path))
    assert result.exit_code == 1
    report = result.json()
    assert report["healthy"] is False
    assert report["error"]


def test_stats_counts_configs_and_versions(cli: Cli) -> None:
    cli.seed("set", "--tenant", "a", "agent", "bot", "settings", "{}")
    cli.seed("set", "--tenant", "a", "agent", "bot", "settings", "{}")
    cli.seed("set", "--tenant", "b", "system", "system", "flags", "{}")
    counts = cli("stats", "--json").json()
    assert counts["total_configs"] == 2
    assert counts["total_versions"] == 3
    assert counts["total_tenants"] == 2
    assert counts["configs_per_scope"]["agent"] == 1


def test_stats_table_is_readable(cli: Cli) -> None:
    cli.seed("set", "agent", "bot", "settings", "{}")
    lines = cli("stats").stdout.splitlines()
    assert lines[0].split() == ["STATISTIC", "VALUE"]
    assert ["total_versions", "1"] in [line.split() for line in lines]


@pytest.mark.parametrize(
    "argv",
    [
        ["get", "agent", "bot", "settings"],
        ["set", "agent", "bot", "settings", "{oops"],
        ["set", "agent", "bot!", "settings", "{}"],
        ["import", "missing-file.json"],
        ["diff", "agent", "bot", "settings", "1", "2"],
    ],
)
def test_errors_are_one_line_without_a_traceback(cli: Cli, argv: list[str]) -> None:
    result = cli(*argv)
    assert result.exit_code not in (0, 1)
    assert result.stderr.startswith("confstore: error: ")
    assert result.stderr.count("\n") == 1


def wait_until_loaded(pid: int, library: str, timeout: float = 60) -> None:
    """Until process ``pid`` has mapped a shared library whose path contains ``library``."""
    maps = Path(f"/proc/{pid}/maps")
    deadline = time.monotonic() + timeout
    while library not in maps.read_text():
        assert time.monotonic() < deadline, f"{library} was not loaded within {timeout} s"
        time.sleep(0.001)


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="needs Linux's /proc")
@pytest.mark.parametrize("delay", [0, 0.02, 0.05, 0.1, 0.2, 0.4, 0.8])
@pytest.mark.parametrize(
    ("options", "report"),
    [
        ([], b"confstore: interrupted\n"),
        (
            ["--json"],
            b'{"error": {"type": "KeyboardInterrupt", "message": "interrupted", "exit_code": 130}}\n',
        ),
    ],
    ids=["text", "json"],
)
def test_ctrl_c_at_any_moment_is_one_line_and_exit_130(
    cli: Cli, delay: float, options: list[str], report: bytes
) -> None:
    """From the middle of ``import confstore`` (pydantic-core is being loaded: a signal there
    once became a Rust panic) to the command's wait for stdin: the same report, never a
    traceback. Timed from that load, not from the start: Python's own start-up comes first."""
    with cli.importing_stdin(*options) as process:
        wait_until_loaded(process.pid, "_pydantic_core")
        time.sleep(delay)  # not a wait for something: the moment the signal is sent
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=60)
    assert (process.returncode, stderr) == (130, report)
