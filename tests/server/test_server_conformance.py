"""``confstore conformance`` against the remote store, through a real ``confstore serve`` process:
the remote store cannot isolate tests, so it runs only with --allow-shared, on an empty store,
and a read-only token is refused before any test runs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from test_server_process import run_cli, serve_process

from confstore import open_store
from confstore.server import TokenFile

# One test of each contract area the remote store runs (its own pytest run has the whole suite).
SUBSET = (
    "test_first_write_is_version_1 or test_expected_version_0_creates_a_new_key or "
    "test_history_is_newest_first or test_delete_writes_a_tombstone_version or "
    "test_export_document_has_the_format_header or test_feed_reports_every_write_in_order or "
    "test_same_key_in_two_tenants_is_independent or "
    "test_initialize_of_an_unreachable_backend_raises_a_backend_error or test_peer_reads_a_write"
)


async def conformance(*arguments: str, cwd: Path) -> tuple[int, str, str]:
    return await run_cli("conformance", *arguments, cwd=cwd, timeout=600)


async def test_remote_store_passes_on_an_empty_server_with_allow_shared(tmp_path: Path) -> None:
    async with serve_process(tmp_path) as served:
        code, out, err = await conformance(
            served.store_url, "--allow-shared", "--json", "-k", SUBSET, cwd=tmp_path
        )
    assert code == 0, out + err
    report: dict[str, Any] = json.loads(out)
    assert report["verdict"].startswith("PASS: RemoteConfigStore")
    assert report["totals"]["failed"] == 0
    assert report["totals"]["passed"] == 9
    assert report["isolation"].startswith("the store itself (confstore+http://127.0.0.1:")


async def test_remote_store_is_refused_without_allow_shared(tmp_path: Path) -> None:
    async with serve_process(tmp_path) as served:
        code, out, err = await conformance(served.store_url, cwd=tmp_path)
    assert code == 9
    assert out == ""
    assert "cannot make an isolated area for each test" in err
    assert len(err.splitlines()) == 1


async def test_a_read_only_token_exits_7_and_writes_nothing(tmp_path: Path) -> None:
    async with serve_process(tmp_path) as served:
        secret, _ = TokenFile(served.tokens).create("dashboard", "read", ["*"])
        token_file = tmp_path / "read.token"
        token_file.write_text(secret + "\n")
        url = f"confstore+{served.url}?token_file={token_file}"
        code, out, err = await conformance(url, "--allow-shared", cwd=tmp_path)
    assert code == 7, err
    assert out == ""
    assert len(err.splitlines()) == 1
    assert "cannot be written" in err


async def test_a_shared_store_that_is_not_empty_is_refused(tmp_path: Path) -> None:
    async with serve_process(tmp_path) as served:
        async with open_store(served.store_url) as store:
            await store.set_config("acme", "system", "svc", "key", {"n": 1})
        code, _, err = await conformance(served.store_url, "--allow-shared", cwd=tmp_path)
        async with open_store(served.store_url) as store:
            assert await store.list_tenants() == ["acme"]
    assert code == 9
    assert "the store must be empty, and it has tenants acme" in err
