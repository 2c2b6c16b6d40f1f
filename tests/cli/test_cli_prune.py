"""``confstore prune``: reports what it removes, --dry-run removes nothing, bad input is refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_harness import Cli

from confstore import ConfigStore
from confstore.cli import main

KEY = ("system", "system", "system_config")


def seed_versions(cli: Cli, count: int, *, tenant: str = "default") -> None:
    for n in range(count):
        cli.seed("set", "--tenant", tenant, *KEY, json.dumps({"n": n}))


def stored_versions(cli: Cli, tenant: str = "default") -> list[int]:
    async def read(store: ConfigStore) -> list[int]:
        entries = await store.get_config_history(tenant, *KEY, limit=100)
        return [entry.version for entry in entries]

    return cli.call(read)


def test_prune_removes_old_versions_and_history_says_so(cli: Cli) -> None:
    seed_versions(cli, 5)
    result = cli("prune", "--keep-last", "2")
    assert result.exit_code == 0, result.stderr
    assert "removed 3 version(s) of 1 config(s)" in result.stdout
    assert stored_versions(cli) == [5, 4]
    assert "(versions 1-3 were pruned)" in cli("history", *KEY).stdout


def test_dry_run_reports_what_would_go_and_removes_nothing(cli: Cli) -> None:
    seed_versions(cli, 4)
    planned = cli("prune", "--keep-last", "1", "--older-than", "0s", "--dry-run", "--json")
    assert planned.exit_code == 0, planned.stderr
    report = planned.json()
    assert (report["dry_run"], report["versions_removed"]) == (True, 3)
    assert report["keys"][0]["through_version"] == 3
    assert stored_versions(cli) == [4, 3, 2, 1]


def test_prune_of_one_tenant_leaves_the_others(
    cli: Cli, capsys: pytest.CaptureFixture[str]
) -> None:
    seed_versions(cli, 3, tenant="acme")
    seed_versions(cli, 3, tenant="other")
    capsys.readouterr()
    assert main(["--url", cli.url, "prune", "--keep-last", "1", "--tenant", "acme", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert {key["tenant_id"] for key in report["keys"]} == {"acme"}
    assert stored_versions(cli, "other") == [3, 2, 1]


def test_a_policy_file_applies_its_overrides(cli: Cli, tmp_path: Path) -> None:
    seed_versions(cli, 4, tenant="acme")
    seed_versions(cli, 4, tenant="other")
    policy = {"keep_last": 1, "tenants": {"acme": {"keep_last": 3}}}
    (tmp_path / "policy.json").write_text(json.dumps(policy))
    assert main(["--url", cli.url, "prune", "--policy", str(tmp_path / "policy.json")]) == 0
    assert stored_versions(cli, "acme") == [4, 3, 2]
    assert stored_versions(cli, "other") == [4]


@pytest.mark.parametrize(
    "args",
    [
        ["--keep-last", "0"],
        ["--older-than", "ninety days"],
        ["--deleted-older-than=-3d"],
        ["--older-than", "9" * 5000 + "d"],
        ["--policy", "bad-policy.json"],
        ["--policy", "missing.json"],
        [],
    ],
)
def test_bad_limits_exit_6_and_remove_nothing(
    cli: Cli,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
) -> None:
    seed_versions(cli, 2)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "bad-policy.json").write_text('{"keep_last": 1, "tenants": {"a": {"keep": 2}}}')
    capsys.readouterr()
    assert main(["--url", cli.url, "prune", *args]) == 6
    assert capsys.readouterr().err.startswith("confstore: error:")
    assert stored_versions(cli) == [2, 1]


def test_keep_last_that_is_not_a_number_is_a_usage_error(
    cli: Cli, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--url", cli.url, "prune", "--keep-last", "ten"]) == 2
