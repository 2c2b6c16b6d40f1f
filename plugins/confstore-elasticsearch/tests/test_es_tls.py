"""TLS with a custom CA: a real HTTPS emulator whose certificate a throwaway CA signed (openssl)."""

from __future__ import annotations

import shutil
import ssl
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from confstore_elasticsearch import ElasticsearchConfigStore
from confstore_elasticsearch.emulator import ElasticsearchEmulator

from confstore import BackendError
from confstore.http import RetryPolicy

KEY = ("acme", "system", "svc", "tls")


def _openssl(*arguments: str) -> None:
    subprocess.run(["openssl", *arguments], check=True, capture_output=True)


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """(CA certificate, server certificate for 127.0.0.1, server key), made once per module."""
    if shutil.which("openssl") is None:
        pytest.skip("the TLS tests make their certificates with the openssl command, not found")
    tmp_path = tmp_path_factory.mktemp("tls")
    ca_key, ca_cert = tmp_path / "ca.key", tmp_path / "ca.crt"
    key, request, cert = tmp_path / "server.key", tmp_path / "server.csr", tmp_path / "server.crt"
    extensions = tmp_path / "san.ext"
    extensions.write_text("subjectAltName = IP:127.0.0.1\n")
    _openssl(
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-days",
        "1",
        "-subj",
        "/CN=confstore test CA",
        "-keyout",
        str(ca_key),
        "-out",
        str(ca_cert),
    )
    _openssl(
        "req",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-subj",
        "/CN=127.0.0.1",
        "-keyout",
        str(key),
        "-out",
        str(request),
    )
    _openssl(
        "x509",
        "-req",
        "-in",
        str(request),
        "-CA",
        str(ca_cert),
        "-CAkey",
        str(ca_key),
        "-CAcreateserial",
        "-days",
        "1",
        "-extfile",
        str(extensions),
        "-out",
        str(cert),
    )
    return ca_cert, cert, key


@pytest.fixture
async def tls_emulator(
    certificates: tuple[Path, Path, Path],
) -> AsyncIterator[ElasticsearchEmulator]:
    _, cert, key = certificates
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    async with ElasticsearchEmulator(ssl_context=context) as emulator:
        yield emulator


async def test_a_custom_ca_file_lets_the_store_use_https(
    tls_emulator: ElasticsearchEmulator, certificates: tuple[Path, Path, Path]
) -> None:
    ca_cert, _, _ = certificates
    async with ElasticsearchConfigStore(tls_emulator.url, ca_file=str(ca_cert)) as store:
        await store.set_config(*KEY, {"secure": True})
        assert (await store.get_config(*KEY)).config_value == {"secure": True}  # type: ignore[union-attr]


async def test_a_server_signed_by_an_unknown_ca_is_refused(
    tls_emulator: ElasticsearchEmulator,
) -> None:
    store = ElasticsearchConfigStore(tls_emulator.url, timeout=2.0, retry=RetryPolicy(attempts=1))
    with pytest.raises(BackendError):
        await store.initialize()
    assert await store.health_check() is False
    await store.close()


async def test_verify_false_accepts_any_certificate(tls_emulator: ElasticsearchEmulator) -> None:
    async with ElasticsearchConfigStore(tls_emulator.url, verify=False) as store:
        assert await store.health_check() is True
