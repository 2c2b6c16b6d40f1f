"""Hostile input through the command: every case is invalid input (exit 6), nothing is written,
and what people read on a terminal cannot be rewritten by stored text."""

from __future__ import annotations

import io
import json
import resource
import subprocess
from pathlib import Path
from typing import Any

import pytest
from cli_harness import Cli, cli_environment, confstore_command

from confstore import ConfigChange, ConfigKey, ConfigScope
from confstore._models import ChangeKind
from confstore._validation import MAX_NESTING_DEPTH, MAX_VERSION
from confstore.cli import main
from confstore.cli._output import Console
from confstore.cli._watch import _show_change

KEY = ("system", "svc", "key")
SPOOF = "mallory\x1b[2K\rtrusted-admin"


def run(cli: Cli, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """``confstore --url <this test's store> ARGS`` in this process: exit code, stdout, stderr."""
    exit_code = main(["--url", cli.url, *args])
    captured = capsys.readouterr()
    return exit_code, captured.out, captured.err


def nested_json(depth: int) -> str:
    """A JSON object whose objects and lists nest ``depth`` levels."""
    return '{"v": ' + "[" * (depth - 1) + "]" * (depth - 1) + "}"


def test_an_undecodable_byte_in_a_comment_is_invalid_input(cli: Cli) -> None:
    """A \\xff byte on a real command line (Python decodes it to a lone surrogate) is exit 6,
    not "backend unavailable" (5), and nothing is written. ``--by`` is checked in-process below."""
    argv = [
        *(part.encode() for part in confstore_command()),
        b"--url",
        cli.url.encode(),
        b"set",
        *(part.encode() for part in KEY),
        b'{"a": 1}',
        b"--comment",
        b"mallory\xff",
    ]
    done = subprocess.run(
        argv, capture_output=True, env=cli_environment(), cwd=cli.cwd, timeout=60, check=False
    )
    assert done.returncode == 6, done.stderr
    assert b"comment is not valid Unicode" in done.stderr
    assert cli.call(lambda store: store.get_config_history("default", *KEY)) == []


@pytest.mark.parametrize(
    "args",
    [
        ("get", *KEY, "--version", str(2**63)),
        ("get", *KEY, "--version", str(MAX_VERSION + 1)),
        ("history", *KEY, "--limit", str(2**63)),
        ("set", *KEY, '{"a": 2}', "--expected-version", str(2**64)),
        ("diff", *KEY, "1", str(2**63)),
        ("rollback", *KEY, str(2**63)),
        ("set", *KEY, nested_json(MAX_NESTING_DEPTH + 1)),
        ("set", *KEY, nested_json(5000)),
        ("set", "system", "system", "system_config", '{"metadata": ' + nested_json(150) + "}"),
        ("set", *KEY, '{"n": ' + "7" * 5001 + "}"),
        ("set", *KEY, '{"v": "\\ud800"}'),
        ("set", *KEY, '{"db": {"password": "***"}}'),
        ("set", *KEY, '{"auth": {"user": "u", "token": "**********"}}'),
        ("set", *KEY, '{"a": 2}', "--by", "mallory\udcff"),
        ("delete", *KEY, "--comment", "\udcff"),
        ("set", *KEY, '{"a": 2, "a": 3}'),
        ("set", *KEY, '{"a": {"b": 1, "c": 2, "b": 3}}'),
    ],
    ids=lambda args: " ".join(args)[:40],
)
def test_out_of_range_deep_or_undecodable_input_is_exit_6(
    cli: Cli, capsys: pytest.CaptureFixture[str], args: tuple[str, ...]
) -> None:
    assert run(cli, capsys, "set", *KEY, '{"a": 1}')[0] == 0
    exit_code, out, err = run(cli, capsys, *args)
    assert (exit_code, out) == (6, ""), err
    assert err.startswith("confstore: error: ")
    assert err.count("\n") == 1
    entries = cli.call(lambda store: store.get_config_history("default", *KEY))
    assert [entry.config_value for entry in entries] == [{"a": 1}]


def write_document(path: Path, configs: list[dict[str, Any]]) -> str:
    path.write_text(
        json.dumps({"format": "confstore-export", "format_version": 1, "configs": configs})
    )
    return str(path)


def entry(config_key: str, value: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {
        "scope": "system",
        "service": "svc",
        "config_key": config_key,
        "config_value": value,
        "version": 1,
        "created_at": "2026-01-01T00:00:00+00:00",
        "updated_at": "2026-01-01T00:00:00+00:00",
        **fields,
    }


@pytest.mark.parametrize(
    ("bad", "named"),
    [
        (entry("deep", json.loads(nested_json(MAX_NESTING_DEPTH + 1))), "svc/deep version 1"),
        (entry("huge", {"a": 1}, version=2**63), "svc/huge"),
        (entry("by", {"a": 1}, updated_by="\udcff"), "svc/by version 1"),
        (entry("key", {"password": "***"}, version=2), "svc/key version 2"),
        (
            entry("system_config", {"vespa_port": "not a port"}, service="system"),
            "system/system_config version 1",
        ),
    ],
    ids=["deep", "huge-version", "surrogate", "masked-secret", "invalid-typed-config"],
)
def test_an_import_with_one_bad_entry_is_refused_whole(
    cli: Cli, capsys: pytest.CaptureFixture[str], tmp_path: Path, bad: dict[str, Any], named: str
) -> None:
    """Also in append mode, where a masked secret would have replaced the real password."""
    assert run(cli, capsys, "set", *KEY, '{"password": "real"}')[0] == 0
    document = write_document(tmp_path / "bad.json", [entry("fine", {"a": 1}), bad])
    for mode in ("restore", "append"):
        exit_code, _, err = run(cli, capsys, "import", document, "--mode", mode)
        assert exit_code == 6, err
        assert named in err
    state = cli.call(lambda store: store.export_configs("default", include_history=True))
    assert [raw["config_value"] for raw in state["configs"]] == [{"password": "real"}]


def test_a_file_starting_with_a_utf8_byte_order_mark_is_read(
    cli: Cli, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """As Windows editors and PowerShell write them (RFC 8259 lets a parser ignore the mark)."""
    value = tmp_path / "value.json"
    value.write_text('{"a": 1}', encoding="utf-8-sig")
    document = Path(write_document(tmp_path / "backup.json", [entry("imported", {"b": 2})]))
    document.write_text(document.read_text(), encoding="utf-8-sig")
    assert run(cli, capsys, "set", *KEY, "--file", str(value))[0] == 0
    assert run(cli, capsys, "import", str(document))[0] == 0
    state = cli.call(lambda store: store.list_configs("default"))
    assert [entry.config_value for entry in state] == [{"b": 2}, {"a": 1}]


def test_migrate_names_the_tenant_and_key_of_an_entry_it_cannot_copy(
    cli: Cli, capsys: pytest.CaptureFixture[str]
) -> None:
    """A value stored before the depth limit existed (written here below the store's checks)."""
    source_url = f"memory://legacy-{id(cli)}"

    async def legacy(store: Any) -> None:
        await store.set_config("acme", "system", "svc", "fine", {"a": 1})
        value = json.loads(nested_json(MAX_NESTING_DEPTH + 20))
        key = ConfigKey("acme", ConfigScope.SYSTEM, "svc", "deep")
        text = json.dumps(value)
        await store._set_config(
            key, value, text, expected_version=None, updated_by=None, comment=None
        )

    cli.call(legacy, source_url)
    exit_code, _, err = run(cli, capsys, "migrate", "--from", source_url, "--to", cli.url)
    assert exit_code == 6, err
    assert "tenant acme" in err
    assert "acme/system/svc/deep version 1" in err


def test_stored_text_cannot_rewrite_the_terminal(
    cli: Cli, capsys: pytest.CaptureFixture[str]
) -> None:
    run(cli, capsys, "set", *KEY, '{"a": 1}', "--by", SPOOF, "--comment", "ok\n2  forged row")
    value = {"a": 2, "k\x1b[31m": "v\x9b\u202e", "note": "line\u2028break"}
    run(cli, capsys, "set", *KEY, json.dumps(value, ensure_ascii=False), "--by", "bob")
    for command in (
        ("history", *KEY),
        ("list",),
        ("get", *KEY, "--version", "1"),
        ("get", *KEY),
        ("diff", *KEY),
    ):
        exit_code, out, _ = run(cli, capsys, *command)
        assert exit_code == 0
        for unsafe in ("\x1b", "\r", "\x9b", "\u202e", "\u2028"):
            assert unsafe not in out, command
        assert out.count("\n") == len(out.splitlines())
    history = run(cli, capsys, "history", *KEY)[1]
    assert "mallory\\x1b[2K\\rtrusted-admin" in history
    assert "ok\\n2  forged row" in history
    assert len(history.splitlines()) == 3  # the header and two versions, no forged row


def test_json_output_keeps_stored_text_exact(cli: Cli, capsys: pytest.CaptureFixture[str]) -> None:
    run(cli, capsys, "set", *KEY, '{"a": 1}', "--by", SPOOF)
    exit_code, out, _ = run(cli, capsys, "--json", "history", *KEY)
    assert exit_code == 0
    assert json.loads(out)[0]["updated_by"] == SPOOF


def test_watch_escapes_what_a_store_reports() -> None:
    """Keys come from the store; a third-party store may report anything."""
    key = ConfigKey("t\x1b]0;owned\x07", ConfigScope.AGENT, "svc", "k\r")
    shown = io.StringIO()
    console = Console(out=shown)
    _show_change(console, ConfigChange(key, ChangeKind.SET, 3))
    assert "\x1b" not in shown.getvalue()
    assert "\\x1b]0;owned\\x07" in shown.getvalue()
    assert "k\\r" in shown.getvalue()


@pytest.mark.parametrize(
    "args",
    [
        ("set", *KEY, "--file", "/dev/zero"),
        ("set", *KEY, "-"),
        ("prune", "--policy", "-", "--dry-run"),
    ],
    ids=["set --file /dev/zero", "set - (endless stdin)", "prune --policy - (endless stdin)"],
)
def test_an_endless_input_is_refused_without_filling_memory(
    cli: Cli, args: tuple[str, ...]
) -> None:
    """Read whole, /dev/zero (or `yes |`) grew the command until memory ran out."""
    cli.seed("set", *KEY, '{"a": 1}')
    with open("/dev/zero", "rb") as endless:
        done = subprocess.run(
            [*confstore_command(), "--url", cli.url, *args],
            stdin=endless,
            capture_output=True,
            text=True,
            env=cli_environment(),
            timeout=60,
            check=False,
            preexec_fn=_at_most_2_gib,  # should this regress, the machine is not the one to pay
        )
    assert (done.returncode, done.stdout) == (6, "")
    assert done.stderr.startswith("confstore: error: ")
    assert "is longer than 67108864 characters" in done.stderr
    entries = cli.call(lambda store: store.get_config_history("default", *KEY))
    assert [entry.config_value for entry in entries] == [{"a": 1}]


def _at_most_2_gib() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (2**31, 2**31))
