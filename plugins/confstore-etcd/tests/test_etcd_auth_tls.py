"""A real single-member etcd serving clients over TLS with authentication on: user/password
stores, tokens renewed when etcd refuses them, permissions, certificates."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from confstore_etcd import EtcdConfigStore
from confstore_etcd._keys import b64, prefix_end
from confstore_etcd.cluster import EtcdCluster
from etcd_test_support import RequestLog

from confstore import BackendError, ConfigStore, open_store

PASSWORD = "s3cret/with:odd@chars"
KEY = ("acme", "system", "svc", "tls")


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (its own CA) and its key."""
    if shutil.which("openssl") is None:
        pytest.skip("the TLS tests make their certificate with the openssl command, not found")
    directory = tmp_path_factory.mktemp("etcd-tls")
    cert, key = directory / "etcd.crt", directory / "etcd.key"
    subprocess.run(
        [
            *(
                "openssl",
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
            ),
            *("-nodes", "-days", "1", "-subj", "/CN=127.0.0.1"),
            *("-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


@pytest.fixture(scope="module")
def secured(certificate: tuple[Path, Path]) -> Iterator[EtcdCluster]:
    """One member over TLS; users root and alice (read-write on ``team/`` only); auth on."""
    cert, key = certificate
    cluster = EtcdCluster(1, cert_file=str(cert), key_file=str(key), ca_file=str(cert))
    with cluster:
        asyncio.run(_enable_auth(cluster, cert))
        yield cluster


async def _enable_auth(cluster: EtcdCluster, cert: Path) -> None:
    async with _admin(cluster, cert, login=False) as root:
        for path, body in [
            ("auth/user/add", {"name": "root", "password": "rootpw"}),
            ("auth/role/add", {"name": "root"}),
            ("auth/user/grant", {"user": "root", "role": "root"}),
            ("auth/user/add", {"name": "alice", "password": PASSWORD}),
            ("auth/role/add", {"name": "team"}),
            (
                "auth/role/grant",
                {
                    "name": "team",
                    "perm": {
                        "permType": "READWRITE",
                        "key": b64(b"team/"),
                        "range_end": b64(prefix_end(b"team/")),
                    },
                },
            ),
            ("auth/user/grant", {"user": "alice", "role": "team"}),
            ("auth/enable", {}),
        ]:
            await root.client.call(path, body)


def _admin(cluster: EtcdCluster, cert: Path, *, login: bool = True) -> EtcdConfigStore:
    credentials = "root:rootpw@" if login else ""
    url = cluster.store_url(ca_file=str(cert)).replace("://", f"://{credentials}", 1)
    store = open_store(url)
    assert isinstance(store, EtcdConfigStore)
    return store


def _url(cluster: EtcdCluster, cert: Path, user: str = "alice", **options: Any) -> str:
    from urllib.parse import quote

    options.setdefault("prefix", "team/")
    options.setdefault("ca_file", str(cert))
    url = cluster.store_url(**options)
    return url.replace("://", f"://{user}:{quote(PASSWORD, safe='')}@", 1)


async def test_a_user_with_a_password_uses_the_store_over_tls(
    secured: EtcdCluster, certificate: tuple[Path, Path]
) -> None:
    cert, _ = certificate
    async with open_store(_url(secured, cert)) as store, open_store(_url(secured, cert)) as peer:
        cursor = await peer.current_cursor()
        waiting = asyncio.create_task(peer.wait_for_changes(cursor, 30))
        await store.set_config(*KEY, {"n": 1})
        async with asyncio.timeout(10):
            await waiting  # the watch stream carries the token too
        assert [c.version for c in (await peer.changes_since(cursor)).changes] == [1]
        assert (await store.get_config(*KEY)).config_value == {"n": 1}
        assert await store.health_check() is True
        await store.delete_config(*KEY, purge=True)


async def test_a_refused_token_is_renewed(
    secured: EtcdCluster, certificate: tuple[Path, Path]
) -> None:
    """Turning auth off and on again makes etcd forget every token it gave out."""
    cert, _ = certificate
    store = open_store(_url(secured, cert))
    assert isinstance(store, EtcdConfigStore)
    log = RequestLog().attach(store)
    async with store:
        await store.set_config(*KEY, {"n": 1})
        async with _admin(secured, cert) as root:
            await root.client.call("auth/disable", {})
        async with _admin(secured, cert, login=False) as anyone:
            await anyone.client.call("auth/enable", {})
        assert (await store.set_config(*KEY, {"n": 2})).version == 2
        await store.delete_config(*KEY, purge=True)
    assert log.paths.count("auth/authenticate") == 2


@pytest.mark.parametrize(
    ("user", "options", "message"),
    [
        ("alice", {"prefix": "other-team/"}, "denied"),
        ("mallory", {}, "authentication failed"),
    ],
)
async def test_bad_credentials_and_foreign_prefixes_are_clear_errors(
    secured: EtcdCluster,
    certificate: tuple[Path, Path],
    user: str,
    options: dict[str, str],
    message: str,
) -> None:
    cert, _ = certificate
    store: ConfigStore = open_store(_url(secured, cert, user, **options))
    try:
        with pytest.raises(BackendError, match=message):
            await store.initialize()
    finally:
        await store.close()


async def test_without_credentials_the_error_says_auth_is_on(
    secured: EtcdCluster, certificate: tuple[Path, Path]
) -> None:
    cert, _ = certificate
    store = open_store(secured.store_url(prefix="team/", ca_file=str(cert)))
    try:
        with pytest.raises(BackendError, match="authentication enabled"):
            await store.initialize()
    finally:
        await store.close()


async def test_a_certificate_nobody_vouched_for_is_refused(secured: EtcdCluster) -> None:
    store = open_store(secured.store_url(prefix="team/", timeout="2"))
    try:
        with pytest.raises(BackendError, match="certificate is not trusted"):
            await store.initialize()
    finally:
        await store.close()
