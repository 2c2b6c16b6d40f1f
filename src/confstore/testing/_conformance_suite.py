"""The test module ``confstore conformance URL`` runs: the whole suite on areas of the URL's store.

Collected only in the command's child pytest, with ``confstore.testing._conformance`` active
(it reads the run's settings); never imported by a store package's own tests.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from .._registry import open_store
from .._store import ConfigStore, IsolatedArea
from ._base import ReopenConfigStore
from ._conformance import current_run
from ._plugin import store_handles
from ._suite import ConfigStoreTests

_RUN = current_run()


class TestConformance(ConfigStoreTests):
    """Every test of the suite, each on an area of its own of the store the URL opens."""

    change_feed_latency = _RUN.settings.feed_latency

    @pytest.fixture
    async def area(self, request: pytest.FixtureRequest) -> AsyncIterator[IsolatedArea]:
        area = _RUN.new_area()
        await _RUN.prepare_area(area)
        yield area
        await _RUN.finish_area(area, request.node.name)

    @pytest.fixture
    async def config_store(self, area: IsolatedArea) -> AsyncIterator[ConfigStore]:
        async with store_handles(_handle_url(area)) as open_handle:
            yield await open_handle()

    @pytest.fixture
    async def config_store_peer(self, area: IsolatedArea) -> AsyncIterator[ConfigStore]:
        async with store_handles(_handle_url(area)) as open_handle:
            yield await open_handle()

    @pytest.fixture
    async def reopen_config_store(self, area: IsolatedArea) -> AsyncIterator[ReopenConfigStore]:
        async with store_handles(_handle_url(area)) as open_handle:
            yield open_handle

    @pytest.fixture
    async def unreachable_config_store(self) -> AsyncIterator[ConfigStore]:
        url = _RUN.unreachable_url()
        if url is None:
            pytest.skip(f"{_RUN.url.backend}:// names no server that could be unreachable")
        store = open_store(url)
        yield store
        await store.close()


def _handle_url(area: IsolatedArea) -> str:
    return area.url.render(hide_password=False)
