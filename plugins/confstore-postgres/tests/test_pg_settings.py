"""URLs and options: libpq's forms accepted, bad ones refused before any I/O."""

from __future__ import annotations

from pathlib import Path

import pytest
from confstore_postgres import PostgresConfigStore, PostgresSettings

from confstore import InvalidConfigError, NoSuchBackendError, StoreURL, open_store

ROOT = Path(__file__).parents[3]


def settings_of(url: str, **options: object) -> PostgresSettings:
    store = open_store(url, **options)
    assert isinstance(store, PostgresConfigStore)
    return store.settings


def test_both_schemes_open_a_postgres_store() -> None:
    for scheme in ("postgresql", "postgres"):
        settings = settings_of(f"{scheme}://alice:secret@db.example:6543/app")
        assert (settings.host, settings.port, settings.user, settings.database) == (
            "db.example",
            6543,
            "alice",
            "app",
        )
        assert settings.password == "secret"


def test_an_empty_password_is_no_password() -> None:
    settings = settings_of("postgresql://postgres:@127.0.0.1:5432/postgres")
    assert settings.user == "postgres"
    assert settings.password is None


def test_a_unix_socket_directory_as_host_option() -> None:
    settings = settings_of("postgresql://postgres@/postgres?host=/run/pg&port=6000")
    assert settings.unix_socket
    assert settings.dsn() == "postgresql://postgres@/postgres?host=%2Frun%2Fpg&port=6000"


def test_a_percent_encoded_socket_directory_in_place_of_the_host() -> None:
    settings = settings_of("postgresql://postgres@%2Frun%2Fpg/postgres")
    assert settings.host == "/run/pg"


def test_options_as_query_and_keywords() -> None:
    settings = settings_of(
        "postgresql://u@h/db?schema=team_a&timeout=3&pool_size=4&sslmode=require", pool_size=2
    )
    assert (settings.schema, settings.timeout, settings.pool_size, settings.sslmode) == (
        "team_a",
        3.0,
        2,
        "require",
    )
    assert "sslmode=require" in settings.dsn()


def test_the_password_never_shows() -> None:
    store = open_store("postgresql://alice:hunter2@h/db")
    assert "hunter2" not in repr(store)
    assert "hunter2" not in repr(store.settings)  # type: ignore[attr-defined]
    assert "hunter2" not in store.settings.dsn()  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "query",
    [
        "schema=Upper",
        "schema=pg_catalog",
        "schema=a;drop",
        'schema="quoted"',
        "schema=" + "a" * 54,
        "schema=1starts_with_digit",
        "sslmode=sometimes",
        "timeout=-1",
        "timeout=soon",
        "pool_size=0",
        "port=http",
        "connect_timeout=0",
        "statement_timeout=5",
    ],
)
def test_bad_options_are_refused_without_io(query: str) -> None:
    with pytest.raises(InvalidConfigError):
        open_store(f"postgresql://u@127.0.0.1:1/db?{query}")


def test_the_plugin_registers_its_package_for_install_hints() -> None:
    from confstore._registry import backend_registry

    assert backend_registry.backend("postgresql").package == "confstore-postgres"
    with pytest.raises(NoSuchBackendError, match="did you mean postgresql"):
        open_store("postgresql+nothing://h/db")


def test_the_packaged_ddl_is_the_one_in_schemas() -> None:
    packaged = ROOT / "plugins/confstore-postgres/src/confstore_postgres/sql/schema.sql"
    assert packaged.read_text() == (ROOT / "schemas/postgres/schema.sql").read_text()


def test_from_url_and_the_constructor_agree() -> None:
    url = "postgresql://u@h:5433/db?schema=s1&timeout=2"
    direct = PostgresConfigStore(url)
    assert direct.settings == PostgresConfigStore.from_url(StoreURL.parse(url)).settings
