"""The pytest side of the suite: default optional fixtures and strict xfail for known gaps."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest

from .._registry import open_store
from .._store import ConfigStore
from ._base import ReopenConfigStore, StoreTestsBase


@contextlib.asynccontextmanager
async def store_handles(url: str, **options: Any) -> AsyncIterator[ReopenConfigStore]:
    """An async callable opening initialised handles on ``url``; every one is closed on exit.

    For the optional fixtures: ``config_store_peer`` yields ``await open_handle()``, and
    ``reopen_config_store`` yields ``open_handle`` itself.
    """
    opened: list[ConfigStore] = []

    async def open_handle() -> ConfigStore:
        store = open_store(url, **options)
        await store.initialize()
        opened.append(store)
        return store

    try:
        yield open_handle
    finally:
        for store in opened:
            await store.close()


@pytest.fixture
def config_store_peer() -> ConfigStore:
    """A second handle on ``config_store``'s storage. Override it to run the several-handles tests."""
    pytest.skip(
        "no config_store_peer fixture: define one yielding a second, initialised handle "
        "on the same storage as config_store"
    )


@pytest.fixture
def reopen_config_store() -> ReopenConfigStore:
    """An async callable opening a new handle on ``config_store``'s storage after it was closed."""
    pytest.skip(
        "no reopen_config_store fixture: define one returning an async callable that opens "
        "a new, initialised handle on the same storage as config_store"
    )


@pytest.fixture
def unreachable_config_store() -> ConfigStore:
    """A store built for a backend that does not answer. Override it to run those tests."""
    pytest.skip(
        "no unreachable_config_store fixture: define one yielding a store, not initialised, "
        "whose backend cannot be reached (for example a URL to a closed port)"
    )


def known_gap_marks(test_class: type[StoreTestsBase]) -> dict[str, pytest.MarkDecorator]:
    """Strict xfail marks for the class's ``known_gaps``; a gap naming no test is an error."""
    unknown = sorted(
        name
        for name in test_class.known_gaps
        if not name.startswith("test_") or not callable(getattr(test_class, name, None))
    )
    if unknown:
        raise pytest.UsageError(
            f"{test_class.__qualname__}.known_gaps names no test of the suite: {', '.join(unknown)}"
        )
    return {
        name: pytest.mark.xfail(reason=f"known gap: {reason}", strict=True)
        for name, reason in test_class.known_gaps.items()
    }


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    marks_by_class: dict[type[StoreTestsBase], dict[str, pytest.MarkDecorator]] = {}
    for item in items:
        test_class = getattr(item, "cls", None)
        if not (isinstance(test_class, type) and issubclass(test_class, StoreTestsBase)):
            continue
        if test_class not in marks_by_class:
            marks_by_class[test_class] = known_gap_marks(test_class)
        name = getattr(item, "originalname", item.name)
        mark = marks_by_class[test_class].get(name)
        if mark is not None:
            item.add_marker(mark)
