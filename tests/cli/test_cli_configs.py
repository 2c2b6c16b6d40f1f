"""The single-config commands (set, get, delete, list, tenants, history, diff, rollback), run as
the installed ``confstore`` command against a real SQLite file."""

from __future__ import annotations

import json
import re
from pathlib import Path

from cli_harness import Cli, confstore_command

from confstore import ConfigStore

KEY = ("agent", "bot", "settings")


def test_set_inline_value_is_stored(cli: Cli) -> None:
    result = cli("set", *KEY, '{"model": "gpt-4o"}')
    assert result.exit_code == 0, result.stderr
    assert "version 1" in result.stdout
    entry = cli.call(lambda store: store.get_config("default", *KEY))
    assert entry is not None
    assert entry.config_value == {"model": "gpt-4o"}


def test_set_reads_the_value_from_a_file(cli: Cli, tmp_path: Path) -> None:
    (tmp_path / "value.json").write_text('{"model": "from-file"}')
    assert cli("set", *KEY, "--file", "value.json").exit_code == 0
    assert cli("get", *KEY, "--json").json()["config_value"] == {"model": "from-file"}


def test_set_reads_the_value_from_stdin(cli: Cli) -> None:
    assert cli("set", *KEY, "-", stdin='{"model": "from-stdin"}').exit_code == 0
    assert cli("get", *KEY, "--json").json()["config_value"] == {"model": "from-stdin"}


def test_set_records_tenant_author_and_comment(cli: Cli) -> None:
    cli("set", "--tenant", "acme", *KEY, "{}", "--by", "alice", "--comment", "first")
    entry = cli("get", "--tenant", "acme", *KEY, "--json").json()
    assert (entry["tenant_id"], entry["updated_by"], entry["comment"]) == ("acme", "alice", "first")


def test_set_without_a_value_is_a_usage_error(cli: Cli) -> None:
    result = cli("set", *KEY)
    assert result.exit_code == 2
    assert result.stderr.startswith("confstore: error:")


def test_set_with_invalid_json_exits_6(cli: Cli) -> None:
    result = cli("set", *KEY, "{not json")
    assert result.exit_code == 6
    assert "not valid JSON" in result.stderr


def test_set_with_a_value_that_is_not_an_object_exits_6(cli: Cli) -> None:
    assert cli("set", *KEY, "[1, 2]").exit_code == 6


def test_set_with_an_invalid_identifier_exits_6(cli: Cli) -> None:
    result = cli("set", "agent", "bad service", "settings", "{}")
    assert result.exit_code == 6
    assert "invalid service" in result.stderr


def test_set_with_a_missing_value_file_exits_6(cli: Cli) -> None:
    assert cli("set", *KEY, "--file", "missing.json").exit_code == 6


def test_set_with_a_stale_expected_version_exits_3_and_writes_nothing(cli: Cli) -> None:
    cli.seed("set", *KEY, '{"n": 1}')
    cli.seed("set", *KEY, '{"n": 2}')
    result = cli("set", *KEY, '{"n": 3}', "--expected-version", "1")
    assert result.exit_code == 3
    assert "expected 1, found 2" in result.stderr
    assert cli("get", *KEY, "--json").json()["config_value"] == {"n": 2}


def test_set_with_expected_version_zero_creates_a_new_key(cli: Cli) -> None:
    assert cli("set", *KEY, "{}", "--expected-version", "0").exit_code == 0
    assert cli("set", *KEY, "{}", "--expected-version", "0").exit_code == 3


def test_get_shows_the_value_and_its_version(cli: Cli) -> None:
    cli.seed("set", *KEY, '{"model": "gpt-4o"}', "--by", "alice")
    result = cli("get", *KEY)
    assert result.exit_code == 0
    assert '"model": "gpt-4o"' in result.stdout
    assert "alice" in result.stdout
    assert "default/agent/bot/settings" in result.stdout


def test_get_a_specific_version(cli: Cli) -> None:
    cli.seed("set", *KEY, '{"n": 1}')
    cli.seed("set", *KEY, '{"n": 2}')
    entry = cli("get", *KEY, "--version", "1", "--json").json()
    assert (entry["version"], entry["config_value"]) == (1, {"n": 1})


def test_get_of_a_missing_config_exits_4(cli: Cli) -> None:
    result = cli("get", *KEY)
    assert result.exit_code == 4
    assert result.stderr == "confstore: error: not found: default/agent/bot/settings\n"


def test_get_of_a_missing_version_exits_4(cli: Cli) -> None:
    cli.seed("set", *KEY, "{}")
    assert cli("get", *KEY, "--version", "7").exit_code == 4


def test_delete_tombstones_the_config(cli: Cli) -> None:
    cli.seed("set", *KEY, '{"n": 1}')
    assert cli("delete", *KEY, "--by", "bob").exit_code == 0
    assert cli("get", *KEY).exit_code == 4
    latest = cli("history", *KEY, "--json").json()[0]
    assert (latest["version"], latest["deleted"], latest["updated_by"]) == (2, True, "bob")


def test_get_of_a_deleted_version_says_it_is_deleted(cli: Cli) -> None:
    cli.seed("set", *KEY, "{}")
    cli.seed("delete", *KEY)
    lines = cli("get", *KEY, "--version", "2").stdout.splitlines()
    assert ["deleted", "yes"] in [line.split() for line in lines]


def test_delete_purge_removes_every_version(cli: Cli) -> None:
    cli.seed("set", *KEY, '{"n": 1}')
    assert cli("delete", *KEY, "--purge").exit_code == 0
    assert cli("history", *KEY).exit_code == 4


def test_delete_of_a_missing_config_exits_4(cli: Cli) -> None:
    assert cli("delete", *KEY).exit_code == 4


def test_list_prints_an_aligned_table_of_live_configs(cli: Cli) -> None:
    cli.seed("set", "system", "system", "flags", "{}")
    cli.seed("set", "agent", "a-long-agent-name", "settings", "{}")
    lines = cli("list").stdout.splitlines()
    assert lines[0].split() == [
        "SCOPE", "SERVICE", "CONFIG_KEY", "VERSION", "UPDATED_AT", "UPDATED_BY",
    ]  # fmt: skip
    assert [line.split()[:3] for line in lines[1:]] == [
        ["agent", "a-long-agent-name", "settings"],
        ["system", "system", "flags"],
    ]
    columns = {[m.start() for m in re.finditer(r"\S+", line)][1] for line in lines}
    assert len(columns) == 1  # the second column starts at the same place on every line


def test_list_json_filters_by_tenant_and_scope(cli: Cli) -> None:
    cli.seed("set", "--tenant", "acme", "system", "system", "flags", "{}")
    cli.seed("set", "--tenant", "acme", "agent", "bot", "settings", "{}")
    cli.seed("set", "--tenant", "other", "agent", "bot", "settings", "{}")
    listed = cli("list", "--tenant", "acme", "--scope", "agent", "--json").json()
    assert [(e["tenant_id"], e["scope"], e["service"]) for e in listed] == [
        ("acme", "agent", "bot")
    ]


def test_list_of_an_empty_tenant_prints_nothing_to_stdout(cli: Cli) -> None:
    result = cli("list", "--tenant", "nobody")
    assert (result.exit_code, result.stdout) == (0, "")
    assert cli("list", "--tenant", "nobody", "--json").json() == []


def test_tenants_lists_tenants_with_live_configs(cli: Cli) -> None:
    cli.seed("set", "--tenant", "zeta", *KEY, "{}")
    cli.seed("set", "--tenant", "acme", *KEY, "{}")
    assert cli("tenants", "--json").json() == ["acme", "zeta"]
    assert cli("tenants").stdout.split() == ["TENANT_ID", "acme", "zeta"]


def test_tenants_all_includes_tenants_whose_configs_are_deleted(cli: Cli) -> None:
    cli.seed("set", "--tenant", "acme", *KEY, "{}")
    cli.seed("set", "--tenant", "retired", *KEY, "{}")
    cli.seed("delete", "--tenant", "retired", *KEY)
    assert cli("tenants", "--json").json() == ["acme"]
    assert cli("tenants", "--all", "--json").json() == ["acme", "retired"]


def test_history_lists_versions_newest_first_up_to_the_limit(cli: Cli) -> None:
    for n in range(1, 5):
        cli.seed("set", *KEY, json.dumps({"n": n}), "--comment", f"change {n}")
    result = cli("history", *KEY, "--limit", "3")
    rows = result.stdout.splitlines()[1:]
    assert [row.split()[0] for row in rows] == ["4", "3", "2"]
    assert rows[0].endswith("change 4")


def test_history_of_a_missing_config_exits_4(cli: Cli) -> None:
    assert cli("history", *KEY).exit_code == 4


def test_diff_compares_the_last_two_versions_by_default(cli: Cli) -> None:
    cli.seed("set", *KEY, '{"model": "gpt-4", "temperature": 0.7, "old": true}')
    cli.seed("set", *KEY, '{"model": "gpt-4o", "temperature": 0.7, "new": 1}')
    result = cli("diff", *KEY)
    assert result.exit_code == 0
    assert result.stdout.splitlines()[2:] == [
        '~ model: "gpt-4" -> "gpt-4o"',
        "+ new: 1",
        "- old: true",
    ]


def test_diff_json_between_chosen_versions(cli: Cli) -> None:
    for n in range(1, 4):
        cli.seed("set", *KEY, json.dumps({"n": n}))
    report = cli("diff", *KEY, "1", "3", "--json").json()
    assert report == {
        "from_version": 1,
        "to_version": 3,
        "changes": [{"path": "n", "old": 1, "new": 3, "kind": "changed"}],
    }


def test_diff_with_a_missing_version_exits_4(cli: Cli) -> None:
    cli.seed("set", *KEY, "{}")
    assert cli("diff", *KEY, "1", "9").exit_code == 4


def test_diff_of_a_single_version_exits_4(cli: Cli) -> None:
    cli.seed("set", *KEY, "{}")
    assert cli("diff", *KEY).exit_code == 4


def test_rollback_writes_the_old_value_as_a_new_version(cli: Cli) -> None:
    cli.seed("set", *KEY, '{"n": 1}')
    cli.seed("set", *KEY, '{"n": 2}')
    result = cli("rollback", *KEY, "1", "--by", "carol")
    assert result.exit_code == 0, result.stderr
    entry = cli("get", *KEY, "--json").json()
    assert (entry["version"], entry["config_value"], entry["updated_by"]) == (3, {"n": 1}, "carol")
    assert entry["comment"] == "rollback to version 1"


def test_rollback_to_a_missing_version_exits_4(cli: Cli) -> None:
    cli.seed("set", *KEY, "{}")
    assert cli("rollback", *KEY, "5").exit_code == 4


def test_rollback_to_a_deletion_exits_6(cli: Cli) -> None:
    cli.seed("set", *KEY, "{}")
    cli.seed("delete", *KEY)
    cli.seed("set", *KEY, '{"n": 3}')
    result = cli("rollback", *KEY, "2")
    assert result.exit_code == 6
    assert "is a deletion" in result.stderr


def test_default_url_comes_from_the_environment(cli: Cli) -> None:
    done = cli.run_raw([*confstore_command(), "set", *KEY, '{"via": "env"}'], CONFSTORE_URL=cli.url)
    assert done.exit_code == 0, done.stderr

    async def read(store: ConfigStore) -> object:
        entry = await store.get_config("default", *KEY)
        return entry and entry.config_value

    assert cli.call(read) == {"via": "env"}
