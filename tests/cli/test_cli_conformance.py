"""``confstore conformance URL`` as operators run it: the installed command in a subprocess, against
every backend of this repository (SQLite and PostgreSQL end to end, the others on a subset that
touches every contract area), and the clear refusals: unknown scheme, unreachable, read-only."""

from __future__ import annotations

import asyncio
import json
import re
import sqlite3
import sys
import urllib.request
import uuid
import xml.etree.ElementTree as ElementTree
from pathlib import Path
from typing import Any

import pytest
from cli_harness import Cli, Result, confstore_command, running_emulator

from confstore.cli._conformance import AREA_ORDER

# One test of each contract area (and of several handles): what a backend whose own pytest run
# already covers the whole suite needs to show that the command drives it.
SUBSET = " or ".join(
    [
        "test_first_write_is_version_1",
        "test_expected_version_0_creates_a_new_key",
        "test_history_is_newest_first",
        "test_delete_writes_a_tombstone_version",
        "test_export_document_has_the_format_header",
        "test_feed_reports_every_write_in_order",
        "test_same_key_in_two_tenants_is_independent",
        "test_initialize_of_an_unreachable_backend_raises_a_backend_error",
        "test_peer_reads_a_write",
    ]
)
SUBSET_AREAS = {*AREA_ORDER, "several handles"}
FULL_RUN_SECONDS = 600


def conformance(cli: Cli, *args: str, timeout: float = FULL_RUN_SECONDS) -> Result:
    return cli.run_raw([*confstore_command(), "conformance", *args], timeout=timeout)


def assert_passed(result: Result) -> dict[str, Any]:
    assert result.exit_code == 0, result.stdout + result.stderr
    report: dict[str, Any] = result.json()
    assert report["verdict"].startswith("PASS: "), report["verdict"]
    assert report["totals"]["failed"] == 0
    return report


def assert_subset_passed(result: Result, *, skipped: int = 0) -> dict[str, Any]:
    report = assert_passed(result)
    assert {row["area"] for row in report["areas"]} == SUBSET_AREAS
    assert report["totals"]["passed"] == len(SUBSET_AREAS) - skipped
    return report


def seed(url: str, cwd: Path) -> None:
    """One config in the store at ``url``: the user's data the command must not touch."""
    Cli(url=url, cwd=cwd).seed("set", "--tenant", "acme", "system", "svc", "key", '{"n": 1}')


def test_full_suite_on_sqlite_passes_and_touches_nothing_else(cli: Cli, tmp_path: Path) -> None:
    """The whole suite end to end: a report for every area, the SQLite version, the one skip
    reason a file store has, and the user's own database as it was, with no scratch file left."""
    store = tmp_path / "data" / "config.db"
    store.parent.mkdir()
    seed(f"sqlite:///{store}", tmp_path)
    before = sorted(path.name for path in store.parent.iterdir())
    junit = tmp_path / "junit.xml"
    result = conformance(cli, f"sqlite:///{store}", "--json", "--junitxml", str(junit))
    report = assert_passed(result)
    assert [row["area"] for row in report["areas"]][: len(AREA_ORDER)] == list(AREA_ORDER)
    assert report["backend_version"] == f"SQLite {sqlite3.sqlite_version}"
    assert report["totals"]["passed"] > 150
    assert {skip["reason"] for skip in report["skips"]} == {
        "sqlite:// names no server that could be unreachable"
    }
    assert sorted(path.name for path in store.parent.iterdir()) == before
    assert cli.call(lambda s: s.list_tenants(), url=f"sqlite:///{store}") == ["acme"]
    suite = ElementTree.parse(junit).getroot()
    assert int(suite.find("testsuite").get("tests")) == report["totals"]["passed"] + 1 + 3  # type: ignore[union-attr]


def test_the_report_a_person_reads_and_keep_leaves_each_tests_data(
    cli: Cli, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'people.db'}"
    result = conformance(cli, url, "--keep", "-k", SUBSET)
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == f"confstore conformance: {url}"
    assert f"SQLite {sqlite3.sqlite_version}" in lines[1]
    assert "AREA" in result.stdout
    assert "change feed" in result.stdout
    assert "skipped:" in result.stdout
    assert "sqlite:// names no server that could be unreachable" in result.stdout
    assert lines[-1].startswith("PASS: SQLiteConfigStore (SQLite ")
    assert re.search(r"\(the 9 tests -k selected; \d+ not run\)$", lines[-1]), lines[-1]
    kept = dict(
        line.strip().split(": scratch database ") for line in lines if ": scratch database " in line
    )
    assert len(kept) == 8  # the unreachable test has no area
    assert all(Path(path).parent == tmp_path for path in kept.values())
    scratch = f"sqlite:///{kept['test_first_write_is_version_1']}"
    assert cli.call(lambda s: s.list_tenants(), url=scratch) != []


def test_a_failing_store_fails_the_run_with_the_area_and_the_reason(
    cli: Cli, tmp_path: Path
) -> None:
    """A store that breaks one clause (its first version of a key is numbered 2), registered in
    every process of the run (the command and its pytest) by a sitecustomize module."""
    (tmp_path / "sitecustomize.py").write_text(BROKEN_BACKEND)
    result = cli.run_raw(
        [*confstore_command(), "conformance", "broken://", "--json", "-k", SUBSET],
        timeout=FULL_RUN_SECONDS,
        PYTHONPATH=str(tmp_path),
    )
    assert result.exit_code == 1, result.stderr
    report = result.json()
    assert report["verdict"].startswith("FAIL: BrokenStore: ")
    assert "(failing: versions, compare-and-set, isolation)" in report["verdict"]
    failures = {failure["test"]: failure for failure in report["failures"]}
    assert sorted(failures) == [
        "test_expected_version_0_creates_a_new_key",
        "test_first_write_is_version_1",
        "test_same_key_in_two_tenants_is_independent",
    ]
    first = failures["test_first_write_is_version_1"]
    assert (first["area"], first["outcome"]) == ("versions", "failed")
    assert "(2, {'a': 1}, False) == (1, {'a': 1}, False)" in first["reason"]
    assert report["totals"] == {"passed": 4, "failed": 3, "skipped": 2, "known_gaps": 0}


BROKEN_BACKEND = """
from dataclasses import replace

from confstore import MemoryConfigStore, register_backend


class BrokenStore(MemoryConfigStore):
    async def set_config(self, *args, **kwargs):
        entry = await super().set_config(*args, **kwargs)
        return replace(entry, version=entry.version + 1) if entry.version == 1 else entry


register_backend("broken", lambda url, **options: BrokenStore(), package="broken")
"""


def test_memory_store_on_a_subset_whatever_the_users_pytest_options(cli: Cli) -> None:
    url = f"memory://run-{uuid.uuid4().hex[:8]}"
    result = cli.run_raw(
        [*confstore_command(), "conformance", url, "--json", "-k", SUBSET],
        timeout=FULL_RUN_SECONDS,
        PYTEST_ADDOPTS="--an-option-this-pytest-does-not-have",
    )
    report = assert_subset_passed(result, skipped=1)
    assert report["backend_version"] is None
    assert report["isolation"].startswith("an area of its own per test, like memory store ")


@pytest.mark.parametrize(
    ("backend", "version"),
    [("vespa", "Vespa "), ("elasticsearch", "Elasticsearch "), ("opensearch", "OpenSearch ")],
)
def test_emulators_on_a_subset(cli: Cli, backend: str, version: str) -> None:
    """The user's data, in the URL's own namespace or indices, is there after the run."""
    with running_emulator(backend) as url:
        seed(url, cli.cwd)
        report = assert_subset_passed(conformance(cli, url, "--json", "-k", SUBSET))
        assert cli.call(lambda s: s.list_tenants(), url=url) == ["acme"]
    assert report["backend_version"].startswith(version)
    assert report["backend"] == backend


def test_postgres_on_a_subset_in_schemas_of_its_own(cli: Cli, postgres_server: str) -> None:
    """The user's schema keeps its data, and no other schema is left behind."""
    url = f"{postgres_server}?schema=app"
    seed(url, cli.cwd)
    report = assert_subset_passed(conformance(cli, url, "--json", "-k", SUBSET))
    assert report["backend_version"].startswith("PostgreSQL ")
    assert "schema conformance_" in report["isolation"]
    assert cli.call(lambda s: s.list_tenants(), url=url) == ["acme"]
    assert postgres_schemas(postgres_server) == ["app"]


def postgres_schemas(server_url: str) -> list[str]:
    asyncpg = pytest.importorskip("asyncpg")

    async def read() -> list[str]:
        connection = await asyncpg.connect(server_url)
        try:
            rows = await connection.fetch(
                "SELECT nspname FROM pg_namespace WHERE nspname NOT LIKE 'pg\\_%' "
                "AND nspname NOT IN ('information_schema', 'public') ORDER BY 1"
            )
        finally:
            await connection.close()
        return [row[0] for row in rows]

    return asyncio.run(read())


def test_full_suite_on_etcd_under_prefixes_of_its_own(cli: Cli) -> None:
    """End to end on a real three-member cluster: no skip, the server's version, and the user's
    prefix and every other key of the cluster as they were."""
    cluster_module = pytest.importorskip("confstore_etcd.cluster")
    cluster = cluster_module.EtcdCluster.shared()
    url = cluster.store_url(prefix=f"app-{uuid.uuid4().hex[:8]}/")
    seed(url, cli.cwd)
    before = etcd_keys(url)
    report = assert_passed(conformance(cli, url, "--json"))
    assert report["totals"]["skipped"] == 0
    assert report["backend_version"].startswith("etcd 3.")
    assert "key prefix 'app-" in report["isolation"]
    assert etcd_keys(url) == before
    assert cli.call(lambda s: s.list_tenants(), url=url) == ["acme"]


def etcd_keys(store_url: str) -> dict[str, str]:
    """Every key of the cluster, with its modification revision: a linearizable read from the
    first member that answers (as the store itself fails over; the cluster is shared by the
    worker's tests and one member may be down for a moment under a loaded machine)."""
    members = store_url.split("://", 1)[1].split("?", 1)[0].split(",")
    body = json.dumps({"key": "AA==", "range_end": "AA==", "keys_only": True}).encode()
    for member in members:
        request = urllib.request.Request(f"http://{member}/v3/kv/range", data=body, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=30) as answer:
                kvs = json.load(answer).get("kvs", [])
        except OSError:
            if member == members[-1]:
                raise
            continue
        return {kv["key"]: kv["mod_revision"] for kv in kvs}
    raise AssertionError(f"no member in {store_url}")


def refusal(cli: Cli, url: str, *args: str) -> tuple[int, str]:
    result = conformance(cli, url, *args, timeout=120)
    assert result.stdout == ""
    assert len(result.stderr.splitlines()) == 1, result.stderr
    return result.exit_code, result.stderr


def test_an_unknown_scheme_exits_8(cli: Cli) -> None:
    code, error = refusal(cli, "nosuch://host/x")
    assert code == 8
    assert "no confstore backend for scheme 'nosuch'" in error


def test_an_unreachable_server_exits_5(cli: Cli) -> None:
    cluster_module = pytest.importorskip("confstore_postgres.cluster")
    url = f"postgresql://postgres@127.0.0.1:{cluster_module.free_port()}/postgres?timeout=2"
    code, error = refusal(cli, url)
    assert code == 5
    assert error.startswith(f"confstore: error: {url} did not answer: ")


def test_a_read_only_store_exits_7(cli: Cli, tmp_path: Path) -> None:
    seed(f"sqlite:///{tmp_path / 'ro.db'}", tmp_path)
    before = sorted(tmp_path.iterdir())
    code, error = refusal(cli, f"sqlite:///{tmp_path / 'ro.db'}?mode=ro")
    assert code == 7
    assert "is read-only (opened with mode=ro)" in error
    assert sorted(tmp_path.iterdir()) == before


def test_a_directory_as_the_sqlite_file_exits_5_and_writes_nothing(
    cli: Cli, tmp_path: Path
) -> None:
    code, error = refusal(cli, f"sqlite:///{tmp_path}")
    assert code == 5
    assert f"SQLite database {tmp_path} is a directory" in error
    assert (
        sorted(path.name for path in tmp_path.parent.iterdir() if "conformance-" in path.name) == []
    )


def test_a_url_that_is_no_store_url_exits_6(cli: Cli) -> None:
    code, error = refusal(cli, "just-a-path.db")
    assert code == 6
    assert "not a store URL" in error


def test_a_backend_that_cannot_isolate_is_refused_without_allow_shared(
    cli: Cli, tmp_path: Path
) -> None:
    token = tmp_path / "token"
    token.write_text("secret\n")
    code, error = refusal(cli, f"confstore+http://127.0.0.1:9/?token_file={token}")
    assert code == 9
    assert "RemoteConfigStore cannot make an isolated area for each test" in error
    assert "--allow-shared" in error


def test_json_mode_reports_a_refusal_as_one_json_object(cli: Cli) -> None:
    result = conformance(cli, "nosuch://host/x", "--json", timeout=120)
    assert result.exit_code == 8
    assert result.stdout == ""
    assert '"exit_code": 8' in result.stderr


def test_a_k_expression_pytest_refuses_is_a_usage_error(cli: Cli) -> None:
    result = conformance(cli, "memory://", "--json", "-k", "((")
    assert result.exit_code == 2
    assert result.stdout == ""
    assert "pytest refused the run: Wrong expression passed to '-k': ((" in result.stderr


def test_without_pytest_the_command_says_what_to_install(cli: Cli, tmp_path: Path) -> None:
    """As in an environment without the testing extra: pytest cannot be imported."""
    script = (
        "import sys; sys.modules['pytest'] = None; from confstore.cli import main; "
        f"sys.exit(main(['conformance', 'sqlite:///{tmp_path / 'x.db'}']))"
    )
    before = sorted(tmp_path.iterdir())
    result = cli.run_raw([sys.executable, "-c", script])
    assert result.exit_code == 1
    assert result.stderr == (
        "confstore: error: confstore conformance needs pytest: pip install 'confstore[testing]'\n"
    )
    assert sorted(tmp_path.iterdir()) == before
