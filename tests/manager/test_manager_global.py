"""The process-wide manager: built once from the URL, never silently switched."""

from __future__ import annotations

from pathlib import Path

import pytest

from confstore import (
    ConfigStoreError,
    InvalidConfigError,
    MemoryConfigStore,
    SystemConfig,
    get_config_manager,
    reset_config_manager,
)
from confstore.backends.sqlite import SQLiteConfigStore


def test_second_call_returns_the_same_manager(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONFSTORE_URL", "memory://global-same")
    assert get_config_manager() is get_config_manager()


def test_url_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONFSTORE_URL", "memory://global-env")
    store = get_config_manager().store
    assert isinstance(store, MemoryConfigStore)
    assert store.name == "global-env"


def test_default_url_is_the_sqlite_file_under_data(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("CONFSTORE_URL", raising=False)
    monkeypatch.chdir(tmp_path)
    store = get_config_manager().store
    assert isinstance(store, SQLiteConfigStore)
    assert store.path == "data/config/config.db"


def test_asking_again_with_the_same_url_returns_it() -> None:
    manager = get_config_manager("memory://global-a")
    assert get_config_manager("memory://global-a") is manager


def test_asking_with_a_different_url_raises() -> None:
    get_config_manager("memory://global-a")
    with pytest.raises(InvalidConfigError) as caught:
        get_config_manager("memory://global-b")
    assert isinstance(caught.value, ConfigStoreError)
    assert isinstance(caught.value, ValueError)
    assert caught.value.field == "url"


def test_asking_with_a_different_store_raises() -> None:
    get_config_manager(store=MemoryConfigStore())
    with pytest.raises(InvalidConfigError) as caught:
        get_config_manager(store=MemoryConfigStore())
    assert caught.value.field == "store"


def test_asking_for_a_url_after_a_store_raises() -> None:
    get_config_manager(store=MemoryConfigStore())
    with pytest.raises(InvalidConfigError):
        get_config_manager("memory://global-a")


def test_asking_without_arguments_after_a_store_returns_it() -> None:
    store = MemoryConfigStore()
    manager = get_config_manager(store=store)
    assert get_config_manager() is manager


def test_url_error_hides_the_password() -> None:
    get_config_manager("memory://global-a")
    with pytest.raises(InvalidConfigError) as caught:
        get_config_manager("elasticsearch+http://user:hunter2@localhost:9200")
    assert "hunter2" not in str(caught.value)


async def test_reset_allows_another_url() -> None:
    get_config_manager("memory://global-a")
    await reset_config_manager()
    store = get_config_manager("memory://global-b").store
    assert isinstance(store, MemoryConfigStore)
    assert store.name == "global-b"


async def test_process_wide_manager_reads_and_writes() -> None:
    manager = get_config_manager("memory://global-rw")
    await manager.set_system_config(SystemConfig(llm_model="claude-3"))
    assert (await get_config_manager().get_system_config()).llm_model == "claude-3"
