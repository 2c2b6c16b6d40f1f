"""export, import and migrate through the installed command, between real SQLite files."""

from __future__ import annotations

import contextlib
import json
import os
import re
import select
import signal
import stat
import subprocess
import tracemalloc
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cli_harness import (
    Cli,
    cli_environment,
    confstore_command,
    read_until_closed,
    running_emulator,
)

from confstore import ConfigStore
from confstore.cli import main

START = datetime(2024, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)


def history_document(tenant_id: str, keys: int, versions: int) -> dict[str, Any]:
    """An export document with ``versions`` versions of ``keys`` keys, each with its own times."""
    configs = []
    for key in range(keys):
        created = START + timedelta(days=key)
        for version in range(1, versions + 1):
            configs.append(
                {
                    "tenant_id": tenant_id,
                    "scope": "agent",
                    "service": f"agent-{key}",
                    "config_key": "settings",
                    "config_value": {"key": key, "version": version},
                    "version": version,
                    "created_at": created.isoformat(),
                    "updated_at": (created + timedelta(minutes=version)).isoformat(),
                    "updated_by": f"user-{version % 3}",
                    "comment": None,
                    "deleted": False,
                }
            )
    return {"tenant_id": tenant_id, "configs": configs}


def seed(cli: Cli, url: str | None = None, **tenants: tuple[int, int]) -> None:
    async def write(store: ConfigStore) -> None:
        for tenant_id, (keys, versions) in tenants.items():
            await store.import_configs(tenant_id, history_document(tenant_id, keys, versions))

    cli.call(write, url)


def everything(cli: Cli, url: str | None = None) -> dict[str, list[dict[str, Any]]]:
    """Every version of every tenant of a store, in export form."""

    async def read(store: ConfigStore) -> dict[str, list[dict[str, Any]]]:
        return {
            tenant_id: [
                entry.to_dict()
                async for entry in store.iter_configs(tenant_id, include_history=True)
            ]
            for tenant_id in await store.list_tenants(include_deleted=True)
        }

    return cli.call(read, url)


def test_export_to_stdout_is_a_valid_export_document(cli: Cli) -> None:
    seed(cli, acme=(2, 3))
    document = cli("export", "--tenant", "acme").json()
    assert document["format"] == "confstore-export"
    assert document["tenant_id"] == "acme"
    assert document["include_history"] is False
    assert [entry["version"] for entry in document["configs"]] == [3, 3]


def test_export_with_history_writes_every_version(cli: Cli) -> None:
    seed(cli, acme=(2, 3))
    document = cli("export", "--tenant", "acme", "--history").json()
    assert document["configs"] == everything(cli)["acme"]


def test_export_to_a_file_is_readable_by_its_owner_only(cli: Cli, tmp_path: Path) -> None:
    seed(cli, acme=(1, 2))
    result = cli("export", "--tenant", "acme", "-o", "backup.json")
    assert result.exit_code == 0
    assert result.stdout == ""
    backup = tmp_path / "backup.json"
    assert stat.S_IMODE(backup.stat().st_mode) == 0o600
    assert len(json.loads(backup.read_text())["configs"]) == 1
    assert not (tmp_path / "backup.json.partial").exists()


def test_export_streams_instead_of_building_the_document(cli: Cli, tmp_path: Path) -> None:
    # In-process on a named memory store, so that only the export's own allocations count.
    url = "memory://cli-export-memory-test"
    document = history_document("acme", 100, 60)
    for entry in document["configs"]:
        entry["config_value"]["padding"] = "x" * 1000
    cli.call(lambda store: store.import_configs("acme", document), url)
    output = tmp_path / "export.json"
    with output.open("w") as sink, contextlib.redirect_stdout(sink):
        tracemalloc.start()
        try:
            assert main(["--url", url, "export", "--tenant", "acme", "--history"]) == 0
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    size = output.stat().st_size
    assert size > 6_000_000
    assert peak < size / 10, f"peak {peak} bytes for a {size}-byte export"


def test_export_of_an_empty_tenant_is_an_empty_document(cli: Cli) -> None:
    assert cli("export", "--tenant", "nobody").json()["configs"] == []


def test_import_restores_versions_and_timestamps(cli: Cli, tmp_path: Path) -> None:
    path = tmp_path / "doc.json"
    path.write_text(json.dumps(history_document("acme", 2, 3)))
    result = cli("import", str(path))
    assert result.exit_code == 0, result.stderr
    assert "6 versions written" in result.stdout
    assert everything(cli)["acme"] == history_document("acme", 2, 3)["configs"]


def test_import_again_writes_nothing(cli: Cli, tmp_path: Path) -> None:
    (tmp_path / "doc.json").write_text(json.dumps(history_document("acme", 1, 2)))
    cli("import", "doc.json")
    result = cli("import", "doc.json", "--json")
    assert result.json() == {"tenant_id": "acme", "mode": "restore", "versions_written": 0}


def test_import_reads_stdin_into_the_documents_tenant(cli: Cli) -> None:
    document = cli("export", "--tenant", "x").json()
    document["tenant_id"] = "from-doc"
    document["configs"] = history_document("ignored", 1, 1)["configs"]
    assert cli("import", "-", stdin=json.dumps(document)).exit_code == 0
    assert list(everything(cli)) == ["from-doc"]


def test_import_tenant_option_wins_over_the_document(cli: Cli, tmp_path: Path) -> None:
    cli("export", "--tenant", "acme", "-o", "empty.json")
    document = json.loads((tmp_path / "empty.json").read_text())
    document["configs"] = history_document("acme", 1, 1)["configs"]
    (tmp_path / "doc.json").write_text(json.dumps(document))
    assert cli("import", "doc.json", "--tenant", "copy").exit_code == 0
    assert list(everything(cli)) == ["copy"]


def test_import_append_adds_new_versions(cli: Cli, tmp_path: Path) -> None:
    seed(cli, acme=(1, 2))
    (tmp_path / "doc.json").write_text(json.dumps(history_document("acme", 1, 2)))
    assert cli("import", "doc.json", "--mode", "append").exit_code == 0
    versions = [entry["version"] for entry in everything(cli)["acme"]]
    assert versions == [1, 2, 3, 4]


def test_import_conflicting_restore_exits_3_and_writes_nothing(cli: Cli, tmp_path: Path) -> None:
    seed(cli, acme=(1, 1))
    document = history_document("acme", 1, 2)
    document["configs"][0]["config_value"] = {"different": True}
    (tmp_path / "doc.json").write_text(json.dumps(document))
    result = cli("import", "doc.json")
    assert result.exit_code == 3
    assert [entry["version"] for entry in everything(cli)["acme"]] == [1]


def test_import_of_a_malformed_document_exits_6(cli: Cli, tmp_path: Path) -> None:
    (tmp_path / "doc.json").write_text('{"configs": [{"scope": "nowhere"}]}')
    result = cli("import", "doc.json", "--tenant", "acme")
    assert result.exit_code == 6
    assert "configs[0]" in result.stderr


def test_import_dry_run_shows_what_it_would_write_and_writes_nothing(
    cli: Cli, tmp_path: Path
) -> None:
    seed(cli, acme=(1, 2))
    (tmp_path / "doc.json").write_text(json.dumps(history_document("acme", 1, 3)))
    result = cli("import", "doc.json", "--dry-run")
    assert result.exit_code == 0
    rows = [line.split() for line in result.stdout.splitlines()]
    assert rows[1][:5] == ["agent", "agent-0", "settings", "3", "set"]
    assert "would write 1 versions into tenant acme (2 already stored)" in result.stdout
    assert len(everything(cli)["acme"]) == 2


def test_import_dry_run_in_append_mode_numbers_the_new_versions(cli: Cli, tmp_path: Path) -> None:
    seed(cli, acme=(1, 2))
    (tmp_path / "doc.json").write_text(json.dumps(history_document("acme", 1, 2)))
    plan = cli("import", "doc.json", "--dry-run", "--mode", "append", "--json").json()
    assert [entry["version"] for entry in plan["would_write"]] == [3, 4]
    assert len(everything(cli)["acme"]) == 2


def test_import_dry_run_reports_a_conflict_with_exit_3(cli: Cli, tmp_path: Path) -> None:
    seed(cli, acme=(1, 1))
    document = history_document("acme", 1, 1)
    document["configs"][0]["config_value"] = {"different": True}
    (tmp_path / "doc.json").write_text(json.dumps(document))
    assert cli("import", "doc.json", "--dry-run").exit_code == 3


def test_migrate_copies_every_tenant_version_and_timestamp(cli: Cli, tmp_path: Path) -> None:
    seed(cli, acme=(3, 4), beta=(2, 2))
    target = f"sqlite:///{tmp_path / 'target.db'}"
    result = cli("migrate", "--from", cli.url, "--to", target, "--batch-size", "5")
    assert result.exit_code == 0, result.stderr
    assert "migrated 2 tenants" in result.stdout
    assert everything(cli, target) == everything(cli)
    assert sum(len(entries) for entries in everything(cli, target).values()) == 16


def test_migrate_again_writes_nothing(cli: Cli, tmp_path: Path) -> None:
    seed(cli, acme=(2, 2))
    target = f"sqlite:///{tmp_path / 'target.db'}"
    cli("migrate", "--from", cli.url, "--to", target)
    summary = cli("migrate", "--from", cli.url, "--to", target, "--json").json()
    assert summary == {
        "tenants": 1,
        "versions_read": 4,
        "versions_written": 0,
        "versions_skipped": 4,
    }


def test_migrate_keeps_tombstones(cli: Cli, tmp_path: Path) -> None:
    cli.seed("set", "agent", "bot", "settings", "{}")
    cli.seed("delete", "agent", "bot", "settings")
    cli.seed("set", "agent", "bot", "other", "{}")
    target = f"sqlite:///{tmp_path / 'target.db'}"
    cli("migrate", "--from", cli.url, "--to", target)
    assert everything(cli, target) == everything(cli)


def test_migrate_keeps_a_tenant_whose_configs_are_all_deleted(cli: Cli, tmp_path: Path) -> None:
    cli.seed("set", "--tenant", "retired", "agent", "bot", "settings", '{"model": "old"}')
    cli.seed("delete", "--tenant", "retired", "agent", "bot", "settings")
    target = f"sqlite:///{tmp_path / 'target.db'}"
    assert cli("migrate", "--from", cli.url, "--to", target).exit_code == 0
    copied = everything(cli, target)
    assert [entry["deleted"] for entry in copied["retired"]] == [False, True]
    assert copied == everything(cli)


def test_migrate_onto_a_different_history_exits_3(cli: Cli, tmp_path: Path) -> None:
    seed(cli, acme=(1, 2))
    target = f"sqlite:///{tmp_path / 'target.db'}"
    cli.seed("set", "--url", target, "--tenant", "acme", "agent", "agent-0", "settings", "{}")
    result = cli("migrate", "--from", cli.url, "--to", target)
    assert result.exit_code == 3
    assert "version 1 of acme/agent/agent-0/settings" in result.stderr


def test_migrate_to_an_unreachable_store_exits_5(cli: Cli, tmp_path: Path) -> None:
    seed(cli, acme=(1, 1))
    (tmp_path / "blocker").write_text("a file, not a directory")
    result = cli("migrate", "--from", cli.url, "--to", f"sqlite:///{tmp_path / 'blocker' / 'x.db'}")
    assert result.exit_code == 5


def test_export_to_an_unwritable_path_exits_1(cli: Cli, tmp_path: Path) -> None:
    result = cli("export", "-o", str(tmp_path / "missing-dir" / "backup.json"))
    assert result.exit_code == 1
    assert result.stderr.startswith("confstore: error: cannot write")


def test_import_of_a_file_that_is_not_json_exits_6(cli: Cli, tmp_path: Path) -> None:
    (tmp_path / "doc.json").write_text("configs: []")
    assert cli("import", "doc.json").exit_code == 6


def test_migrate_into_a_store_of_another_kind_in_process(cli: Cli, tmp_path: Path) -> None:
    seed(cli, acme=(2, 3), beta=(1, 2))
    target = "memory://cli-migrate-test"
    assert main(["migrate", "--from", cli.url, "--to", target]) == 0
    assert everything(cli, target) == everything(cli)


@pytest.mark.parametrize("backend", ["vespa", "elasticsearch"])
def test_migrate_into_an_http_backend_keeps_every_version(cli: Cli, backend: str) -> None:
    seed(cli, acme=(2, 3), beta=(1, 2))
    with running_emulator(backend) as target:
        result = cli("migrate", "--from", cli.url, "--to", target, "--batch-size", "4")
        assert result.exit_code == 0, result.stderr
        assert everything(cli, target) == everything(cli)


@pytest.fixture
def etcd_target() -> str:
    """A store URL on a real etcd cluster (one key prefix per test): the etcd plugin's own
    throwaway three-member cluster, or $CONFSTORE_TEST_ETCD_URL."""
    cluster = pytest.importorskip("confstore_etcd.cluster")
    base = os.environ.get("CONFSTORE_TEST_ETCD_URL") or cluster.EtcdCluster.shared().store_url()
    base = base if base.startswith("etcd+") else f"etcd+{base}"
    return f"{base}{'&' if '?' in base else '?'}prefix=cli-{uuid.uuid4().hex[:12]}/"


def test_migrate_to_etcd_and_back_keeps_every_version(
    cli: Cli, tmp_path: Path, etcd_target: str
) -> None:
    seed(cli, acme=(3, 4), beta=(2, 2))
    cli.seed("delete", "--tenant", "beta", "agent", "agent-0", "settings")
    result = cli("migrate", "--from", cli.url, "--to", etcd_target, "--batch-size", "5")
    assert result.exit_code == 0, result.stderr
    assert everything(cli, etcd_target) == everything(cli)
    back = f"sqlite:///{tmp_path / 'back.db'}"
    assert cli("migrate", "--from", etcd_target, "--to", back).exit_code == 0
    assert everything(cli, back) == everything(cli)
    summary = cli("migrate", "--from", cli.url, "--to", etcd_target, "--json").json()
    assert summary["versions_written"] == 0


@pytest.mark.parametrize("kind", ["sqlite", "etcd"])
def test_migrate_resumes_after_being_killed(
    cli: Cli, tmp_path: Path, kind: str, request: pytest.FixtureRequest
) -> None:
    keys, versions = 40, 50
    seed(cli, acme=(keys, versions))
    if kind == "etcd":
        target = request.getfixturevalue("etcd_target")
    else:
        target = f"sqlite:///{tmp_path / 'target.db'}"
    argv = ["migrate", "--from", cli.url, "--to", target, "--batch-size", "10"]

    copied = _kill_midway(cli, argv)
    assert 0 < copied < keys * versions

    result = cli(*argv, "--json")
    assert result.exit_code == 0, result.stderr
    assert result.json()["versions_written"] == keys * versions - copied
    assert everything(cli, target) == everything(cli)


def _kill_midway(cli: Cli, argv: list[str]) -> int:
    """Start a migration on a terminal, SIGKILL it once its bar shows progress; versions copied."""
    import pty

    controller, terminal = pty.openpty()
    process = subprocess.Popen(
        [*confstore_command(), *argv],
        stdin=terminal,
        stdout=terminal,
        stderr=terminal,
        cwd=cli.cwd,
        env=cli_environment(),
    )
    os.close(terminal)
    try:
        _read_until(controller, re.compile(rb"\] [1-9][0-9]*/2000 versions"))
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
        read_until_closed(controller, 5)
        os.close(controller)
    assert process.returncode == -signal.SIGKILL

    async def count(store: ConfigStore) -> int:
        return int((await store.get_stats())["total_versions"])

    return cli.call(count, argv[argv.index("--to") + 1])


def _read_until(descriptor: int, pattern: re.Pattern[bytes]) -> None:
    seen = b""
    while pattern.search(seen) is None:
        ready, _, _ = select.select([descriptor], [], [], 60)
        if not ready:
            raise TimeoutError(f"no {pattern.pattern!r} in {seen[-200:]!r}")
        seen += os.read(descriptor, 4096)
