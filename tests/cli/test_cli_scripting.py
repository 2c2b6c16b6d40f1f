"""The command in scripts: global options anywhere, JSON from every command and for every error,
and a demo whose printed commands are the ones it runs."""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

import pytest
from cli_harness import Cli

from confstore.cli import main

KEY = ("agent", "bot", "settings")


def run(*argv: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    exit_code = main(list(argv))
    captured = capsys.readouterr()
    return exit_code, captured.out, captured.err


def test_global_options_work_before_or_after_the_command(
    cli: Cli, capsys: pytest.CaptureFixture[str]
) -> None:
    url = cli.url
    written = run(
        "--tenant", "acme", "--json", "--url", url, "set", *KEY, '{"n": 1}', capsys=capsys
    )
    assert written[0] == 0, written[2]
    assert json.loads(written[1])["tenant_id"] == "acme"
    for argv in (
        ("--tenant", "acme", "--url", url, "--json", "list"),
        ("list", "--tenant", "acme", "--url", url, "--json"),
        ("--json", "list", "--url", url, "--tenant", "acme"),
        ("-t", "acme", "--url", url, "list", "--json"),
    ):
        exit_code, out, err = run(*argv, capsys=capsys)
        assert exit_code == 0, (argv, err)
        assert [entry["tenant_id"] for entry in json.loads(out)] == ["acme"], argv
    exit_code, out, _ = run(
        "--url", url, "--tenant", "acme", "--json", "history", *KEY, capsys=capsys
    )
    assert (exit_code, len(json.loads(out))) == (0, 1)
    assert run("--url", url, "--json", "list", capsys=capsys)[1].strip() == "[]"  # default tenant


def test_a_tenant_given_to_a_command_without_one_is_a_usage_error(
    cli: Cli, capsys: pytest.CaptureFixture[str]
) -> None:
    exit_code, _, err = run("--tenant", "acme", "--url", cli.url, "stats", capsys=capsys)
    assert exit_code == 2
    assert "stats takes no --tenant" in err


def test_json_errors_are_one_object_on_stderr(cli: Cli) -> None:
    """Through the installed command: nothing on stdout, one JSON object on stderr."""
    result = cli("--json", "get", *KEY)
    assert (result.exit_code, result.stdout) == (4, "")
    assert result.stderr.count("\n") == 1
    assert json.loads(result.stderr) == {
        "error": {
            "type": "NotFoundError",
            "message": "not found: default/agent/bot/settings",
            "exit_code": 4,
        }
    }


@pytest.mark.parametrize(
    ("argv", "kind", "exit_code"),
    [
        (("get", "nowhere", "bot", "settings"), "UsageError", 2),
        (("set", *KEY, '{"n": 1}', "--expected-version", "5"), "VersionConflictError", 3),
        (("set", *KEY, "[1]"), "InvalidConfigError", 6),
        (("set", *KEY, "{"), "InvalidInputError", 6),
        (("get", *KEY, "--url", "nosuch://host"), "NoSuchBackendError", 5),
        (("--tenant", "bad tenant", "get", *KEY), "InvalidIdentifierError", 6),
    ],
)
def test_every_kind_of_error_is_reported_as_json(
    cli: Cli,
    capsys: pytest.CaptureFixture[str],
    argv: tuple[str, ...],
    kind: str,
    exit_code: int,
) -> None:
    got, out, err = run("--url", cli.url, *argv, "--json", capsys=capsys)
    assert (got, out) == (exit_code, "")
    report = json.loads(err)["error"]
    assert (report["type"], report["exit_code"]) == (kind, exit_code)
    assert report["message"]


def test_every_command_prints_json(
    cli: Cli, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """``watch --json`` (one object per line) is tested with watch."""
    target = f"sqlite:///{tmp_path / 'target.db'}"
    backup = str(tmp_path / "backup.json")
    commands: list[tuple[str, ...]] = [
        ("set", *KEY, '{"n": 1}'),
        ("set", *KEY, '{"n": 2}'),
        ("get", *KEY),
        ("list",),
        ("tenants",),
        ("history", *KEY),
        ("diff", *KEY),
        ("rollback", *KEY, "1"),
        ("export",),
        ("export", "--history", "-o", backup),
        ("import", backup, "--dry-run"),
        ("import", backup),
        ("migrate", "--from", cli.url, "--to", target),
        ("stats",),
        ("health",),
        ("schema",),
        ("schema", "system"),
        ("explain", "system", "system", "system_config"),
        ("check",),
        ("delete", *KEY),
        ("demo",),
    ]
    outputs: dict[str, Any] = {}
    for command in commands:
        exit_code, out, err = run("--url", cli.url, *command, "--json", capsys=capsys)
        assert exit_code == 0, (command, err)
        outputs[" ".join(command[:2])] = json.loads(out)
    assert outputs["export --history"] == {
        "tenant_id": "default",
        "include_history": True,
        "versions_exported": 3,
        "output": backup,
    }
    assert outputs["import " + backup]["versions_written"] == 0
    assert outputs["migrate --from"]["versions_skipped"] == 0
    first_step = outputs["demo"]["steps"][0]
    assert first_step["command"].split()[3:5] == ["--json", "set"]
    assert first_step["output"]["version"] == 1


def test_migrate_help_describes_both_stores(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["migrate", "--help"]) == 0
    help_text = " ".join(capsys.readouterr().out.split())
    assert "--from URL the store to copy from" in help_text
    assert "--to URL the store to copy into" in help_text


def test_the_demo_prints_exactly_the_commands_it_runs(cli: Cli, tmp_path: Path) -> None:
    """Run the demo, then run the commands it printed on a fresh store: same history."""
    result = cli("demo")
    assert result.exit_code == 0, result.stderr
    printed = [line[2:] for line in result.stdout.splitlines() if line.startswith("$ confstore ")]
    assert [shlex.split(line)[3] for line in printed] == [
        "set",
        "get",
        "set",
        "history",
        "diff",
        "export",
    ]
    replay = f"sqlite:///{tmp_path / 'replay.db'}"
    for line in printed:
        argv = shlex.split(line)[1:]
        assert argv[:2] == ["--url", cli.url]
        assert main(["--url", replay, *argv[2:]]) == 0, line

    def audit_trail(url: str) -> list[tuple[Any, ...]]:
        async def read(store: Any) -> list[tuple[Any, ...]]:
            document = await store.export_configs("demo", include_history=True)
            return [
                (raw["version"], raw["config_value"], raw["updated_by"], raw["comment"])
                for raw in document["configs"]
            ]

        return cli.call(read, url)

    assert audit_trail(replay) == audit_trail(cli.url)
    assert len(audit_trail(cli.url)) == 2
