"""The conformance suite every confstore backend runs: ours and third parties'.

Use it from a store package's tests::

    # conftest.py
    pytest_plugins = ["confstore.testing"]

    @pytest.fixture
    async def config_store(tmp_path):          # a fresh, empty, initialised store per test
        async with MyStore(...) as store:
            yield store

    # test_conformance.py
    from confstore.testing import ConfigStoreTests

    class TestMyStore(ConfigStoreTests):
        pass

Install ``confstore[testing]`` (pytest, pytest-asyncio, hypothesis). The tests are async and
expect pytest-asyncio in auto mode (``asyncio_mode = "auto"``). docs/writing-a-backend.md walks
through a complete backend package that passes the suite.

Fixtures (the extension points):

``config_store`` (required)
    A fresh, empty, initialised store per test; the suite closes nothing it did not open.
``config_store_peer`` (optional)
    A second initialised handle on the same storage as ``config_store`` (another process or
    host). Without it, or when ``config_store.capabilities.shared`` is False, the several-handles
    tests (peer reads, writers on two handles, the change feed seen from a peer) are skipped.
``reopen_config_store`` (optional)
    An async callable: ``await reopen_config_store()`` opens a new, initialised handle on the
    same storage after the test closed ``config_store``; the fixture closes what it opened.
    Without it, or when ``config_store.capabilities.persistent`` is False, the persistence tests
    are skipped.
``unreachable_config_store`` (optional)
    A store, not initialised, built for a backend that does not answer (for example a URL to a
    closed port on 127.0.0.1). The suite checks that initialize and every read and write raise
    BackendError (never "absent") and that health_check returns False, each within
    ``unreachable_timeout``. Without it those tests are skipped.

For a store opened from a URL, ``store_handles(url)`` gives both optional fixtures in two lines::

    @pytest.fixture
    async def config_store_peer(store_url):
        async with store_handles(store_url) as open_handle:
            yield await open_handle()

    @pytest.fixture
    async def reopen_config_store(store_url):
        async with store_handles(store_url) as open_handle:
            yield open_handle

Capabilities: the store's ``capabilities`` (StoreCapabilities: ``persistent``, ``shared``) and
these class attributes of the test class; a skip always names the reason:

``supports_large_values = True``
    The store accepts a value of exactly ``max_value_bytes`` (1 MiB by default).
``concurrent_writers = 50``
    Tasks the concurrency tests start on one key (half per handle in the two-handles test).
``change_feed_latency = 0.0``
    Seconds within which a write through one handle must appear in a peer's change feed; the
    peer's feed is polled until then. 0 means it must be visible at once.
``unreachable_timeout = 30.0``
    Seconds within which a call to an unreachable backend must return or raise.
``hypothesis_max_examples = 25``
    Examples per property test (tenant isolation).
``capabilities.retention``
    The store implements ``prune()``; without it the retention tests are skipped.
``known_gaps = {}``
    ``{"test_name": "reason"}``: those tests run as strict xfail, so the day a gap is fixed the
    run fails until the entry is removed. A name that is no test of the suite is a usage error.

Against a live store, with no conftest: ``confstore conformance URL`` runs this suite in areas
the store class declares with ``ConfigStore.isolated_area`` and reports by contract area (each
group of tests names its area in ``contract_area``).

The core contract is never optional: only the tests above depend on capabilities. The change
feed is held to its at-least-once promise: a change delivered twice is tolerated, a missing one
or one out of version order for its key is not.
Classes named ``*Tests`` are abstract groups and never collected; a subclass with another name
(``TestMyStore``) is collected unless it sets ``__test__`` itself.

PYTEST_DONT_REWRITE: this module holds no asserts, and the marker lets a test module import it
before naming it in ``pytest_plugins``; the suite's own modules are registered for rewriting below.
"""

import pytest

pytest.register_assert_rewrite(
    "confstore.testing._base",
    "confstore.testing._deletes",
    "confstore.testing._exports",
    "confstore.testing._identity",
    "confstore.testing._listing",
    "confstore.testing._operations",
    "confstore.testing._plugin",
    "confstore.testing._retention",
    "confstore.testing._suite",
    "confstore.testing._versions",
)

from ._base import ReopenConfigStore as ReopenConfigStore  # noqa: E402
from ._base import StoreTestsBase as StoreTestsBase  # noqa: E402
from ._plugin import config_store_peer as config_store_peer  # noqa: E402
from ._plugin import pytest_collection_modifyitems as pytest_collection_modifyitems  # noqa: E402
from ._plugin import reopen_config_store as reopen_config_store  # noqa: E402
from ._plugin import store_handles as store_handles  # noqa: E402
from ._plugin import unreachable_config_store as unreachable_config_store  # noqa: E402
from ._suite import ConfigStoreTests as ConfigStoreTests  # noqa: E402

__all__ = [
    "ConfigStoreTests",
    "ReopenConfigStore",
    "StoreTestsBase",
    "config_store_peer",
    "pytest_collection_modifyitems",
    "reopen_config_store",
    "store_handles",
    "unreachable_config_store",
]
