"""Fixtures of the confstore-postgres tests: one real PostgreSQL server per test session.

The server is a throwaway cluster (``confstore_postgres.cluster``: temporary directory, free
port, stopped by pid), or the one ``CONFSTORE_TEST_POSTGRES_URL`` names. Every test gets its
own schema (``?schema=``), dropped afterwards, so tests never see each other's data.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator

import asyncpg
import pytest
from confstore_postgres import PostgresConfigStore
from confstore_postgres.cluster import TemporaryCluster, free_port
from pg_support import TEST_SETTINGS, with_options

from confstore import ConfigStore, open_store

SERVER_URL_VARIABLE = "CONFSTORE_TEST_POSTGRES_URL"


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """The server every test uses: ``$CONFSTORE_TEST_POSTGRES_URL``, else a throwaway cluster."""
    existing = os.environ.get(SERVER_URL_VARIABLE)
    if existing:
        yield existing
        return
    with TemporaryCluster(settings=TEST_SETTINGS) as cluster:
        yield cluster.url()


@pytest.fixture
async def schema(postgres_url: str) -> AsyncIterator[str]:
    """A schema name of this test's own; the schema is dropped after the test."""
    name = f"test_{uuid.uuid4().hex[:16]}"
    yield name
    await drop_schema(postgres_url, name)


async def drop_schema(server_url: str, name: str) -> None:
    connection = await asyncpg.connect(server_url.split("?", 1)[0])
    try:
        await connection.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
    finally:
        await connection.close()


@pytest.fixture
def store_url(postgres_url: str, schema: str) -> str:
    return with_options(postgres_url, schema=schema)


@pytest.fixture
async def pg_store(store_url: str) -> AsyncIterator[PostgresConfigStore]:
    store = open_store(store_url)
    assert isinstance(store, PostgresConfigStore)
    async with store:
        yield store


@pytest.fixture
def unreachable_url() -> str:
    """A PostgreSQL URL whose port nothing listens on."""
    return f"postgresql://postgres@127.0.0.1:{free_port()}/postgres?timeout=2"


@pytest.fixture
async def unreachable_pg_store(unreachable_url: str) -> AsyncIterator[ConfigStore]:
    store = open_store(unreachable_url)
    yield store
    await store.close()
