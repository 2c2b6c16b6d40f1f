"""The remote store beyond the suite: URLs and the entry point, where the token comes from,
refusals, masked secrets, waking on the event stream, and HTTPS."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from pathlib import Path

import pytest
from confstore_remote import AccessDeniedError, RemoteConfigStore
from remote_test_support import FAST_RETRY, RemoteFactory, Server

from confstore import InvalidConfigError, SQLiteConfigStore, open_store
from confstore.server import TokenFile, running_server
from confstore.server._run import server_tls


def test_open_store_finds_the_remote_store_for_both_schemes(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    plain = open_store(f"confstore+http://127.0.0.1:8080?token_file={token_file}&timeout=3")
    tls = open_store(f"confstore+https://config.example:8443/prefix/?token_file={token_file}")
    assert isinstance(plain, RemoteConfigStore)
    assert isinstance(tls, RemoteConfigStore)
    assert (plain.base_url, plain.timeout) == ("http://127.0.0.1:8080", 3.0)
    assert tls.base_url == "https://config.example:8443/prefix"


def test_a_url_without_a_token_or_with_unknown_options_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("CONFSTORE_TOKEN", raising=False)
    with pytest.raises(InvalidConfigError, match="token_file"):
        open_store("confstore+http://127.0.0.1:8080")
    with pytest.raises(InvalidConfigError, match="tokenfile"):
        open_store("confstore+http://127.0.0.1:8080?tokenfile=x")
    monkeypatch.setenv("CONFSTORE_TOKEN", "cst_from_the_environment")
    assert isinstance(open_store("confstore+http://127.0.0.1:8080"), RemoteConfigStore)


async def test_the_token_is_read_from_token_file_or_the_environment(
    server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(server.admin_token + "\n")
    async with open_store(f"confstore+{server.url}?token_file={token_file}") as from_file:
        await from_file.set_config("acme", "system", "svc", "key", {"n": 1})
    monkeypatch.setenv("CONFSTORE_TOKEN", server.admin_token)
    async with open_store(f"confstore+{server.url}") as from_environment:
        entry = await from_environment.get_config("acme", "system", "svc", "key")
    assert entry is not None
    assert entry.config_value == {"n": 1}


async def test_an_unknown_token_and_a_foreign_tenant_raise_access_denied(
    server: Server, tmp_path: Path
) -> None:
    with pytest.raises(AccessDeniedError) as unknown:
        async with RemoteConfigStore(server.url, token="cst_wrong", retry=FAST_RETRY):
            pass
    async with RemoteConfigStore(
        server.url, token=server.secrets["acme-writer"], retry=FAST_RETRY
    ) as store:
        await store.set_config("acme", "system", "svc", "key", {"n": 1})
        with pytest.raises(AccessDeniedError) as foreign:
            await store.get_config("beta", "system", "svc", "key")
        with pytest.raises(AccessDeniedError):
            await store.get_stats()
        written = await store.get_config("acme", "system", "svc", "key")
    assert (unknown.value.status, foreign.value.status) == (401, 403)
    assert written is not None
    assert written.updated_by == "acme-writer"


async def test_a_read_token_reads_secrets_masked(
    server: Server, make_remote: RemoteFactory
) -> None:
    reader = server.secrets["dashboard"]
    writer = await make_remote()
    await writer.set_config("acme", "agent", "bot", "llm", {"model": "m", "api_key": "sk-1"})
    masked = await (await make_remote(token=reader)).get_config("acme", "agent", "bot", "llm")
    assert masked is not None
    assert masked.config_value == {"model": "m", "api_key": "***"}


async def test_wait_for_changes_wakes_on_a_commit_made_elsewhere(
    make_remote: RemoteFactory,
) -> None:
    follower, writer = await make_remote(), await make_remote()
    batch = await follower.changes_since(await follower.current_cursor())
    waiting = asyncio.create_task(follower.wait_for_changes(batch.cursor, 60))
    await writer.set_config("acme", "system", "svc", "key", {"n": 1})
    async with asyncio.timeout(10):  # far below the 60 s the wait would otherwise take
        await waiting
    changes = await follower.changes_since(batch.cursor)
    assert [change.key.config_key for change in changes.changes] == ["key"]


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and its key (made with openssl)."""
    if shutil.which("openssl") is None:
        pytest.skip("the HTTPS test makes its certificate with the openssl command, not found")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt"),
            *("ec_paramgen_curve:prime256v1", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1"),
            *("-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


async def test_the_remote_store_speaks_https_with_a_given_ca(
    tmp_path: Path, certificate: tuple[Path, Path]
) -> None:
    cert, key = certificate
    tokens = TokenFile(tmp_path / "tokens.json")
    token, _ = tokens.create("tls", "admin", ["*"])
    store = SQLiteConfigStore(str(tmp_path / "tls.db"))
    async with running_server(
        store, tokens.path, ssl_context=server_tls(str(cert), str(key))
    ) as url:
        port = url.rsplit(":", 1)[1]
        remote = open_store(f"confstore+https://127.0.0.1:{port}?ca={cert}", token=token)
        async with remote:
            entry = await remote.set_config("acme", "system", "svc", "key", {"tls": True})
        untrusted = RemoteConfigStore(f"https://127.0.0.1:{port}", token=token, retry=FAST_RETRY)
        assert await untrusted.health_check() is False
        await untrusted.close()
    assert entry.version == 1
