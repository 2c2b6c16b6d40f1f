"""The confstore.testing pytest plugin: collection, skips with reasons, strict known gaps, asserts."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from confstore.testing import ConfigStoreTests

CONFTEST = """
import pytest

from {store_module} import {store_class} as StoreClass

pytest_plugins = ["confstore.testing"]


@pytest.fixture
async def config_store():
    async with StoreClass({store_name}) as store:
        yield store
"""

INI = """
[pytest]
asyncio_mode = auto
asyncio_default_fixture_loop_scope = function
filterwarnings = error
"""

MakeSuite = Callable[..., None]

SUITE_SIZE = len([name for name in dir(ConfigStoreTests) if name.startswith("test_")])


@pytest.fixture
def make_suite(pytester: pytest.Pytester) -> MakeSuite:
    """Write a third-party-style test folder: a conftest for a store and a test module."""

    def make(
        test_module: str,
        store_class: str = "MemoryConfigStore",
        store_module: str = "confstore",
        store_name: str = "None",
    ) -> None:
        pytester.makeini(INI)
        pytester.makeconftest(
            CONFTEST.format(
                store_module=store_module, store_class=store_class, store_name=store_name
            )
        )
        pytester.makepyfile(test_conformance=test_module)

    return make


def test_the_suite_has_at_least_80_tests() -> None:
    assert SUITE_SIZE >= 80


def test_only_classes_not_named_tests_are_collected(
    pytester: pytest.Pytester, make_suite: MakeSuite
) -> None:
    make_suite(
        "from confstore.testing import ConfigStoreTests\n"
        "class SharedStoreTests(ConfigStoreTests):\n"
        "    pass\n"
        "class TestMine(SharedStoreTests):\n"
        "    pass\n"
    )
    items, _ = pytester.inline_genitems("-p", "no:cacheprovider")
    assert {item.cls.__name__ for item in items} == {"TestMine"}
    assert len(items) == SUITE_SIZE


def test_missing_peer_fixture_skips_with_its_name(
    pytester: pytest.Pytester, make_suite: MakeSuite
) -> None:
    make_suite(
        "from confstore.testing import ConfigStoreTests\nclass TestMine(ConfigStoreTests):\n    pass\n"
    )
    result = pytester.runpytest("-p", "no:cacheprovider", "-rs", "-k", "peer_reads_a_write")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["*no config_store_peer fixture*"])


def test_store_without_shared_capability_skips_with_the_reason(
    pytester: pytest.Pytester, make_suite: MakeSuite
) -> None:
    make_suite(
        "import pytest\n"
        "from confstore import MemoryConfigStore\n"
        "from confstore.testing import ConfigStoreTests\n"
        "class TestMine(ConfigStoreTests):\n"
        "    @pytest.fixture\n"
        "    async def config_store_peer(self):\n"
        "        async with MemoryConfigStore() as store:\n"
        "            yield store\n"
    )
    result = pytester.runpytest("-p", "no:cacheprovider", "-rs", "-k", "peer_reads_a_write")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["*MemoryConfigStore declares capabilities.shared=False*"])


def test_store_without_persistence_skips_reopen_tests(
    pytester: pytest.Pytester, make_suite: MakeSuite
) -> None:
    make_suite(
        "from confstore.testing import ConfigStoreTests\nclass TestMine(ConfigStoreTests):\n    pass\n"
    )
    result = pytester.runpytest("-p", "no:cacheprovider", "-rs", "-k", "survive")
    result.assert_outcomes(skipped=3)
    result.stdout.fnmatch_lines(["*no reopen_config_store fixture*"])


def test_large_values_flag_skips_the_large_value_test(
    pytester: pytest.Pytester, make_suite: MakeSuite
) -> None:
    make_suite(
        "from confstore.testing import ConfigStoreTests\n"
        "class TestMine(ConfigStoreTests):\n"
        "    supports_large_values = False\n"
    )
    result = pytester.runpytest("-p", "no:cacheprovider", "-rs", "-k", "max_value_bytes")
    result.assert_outcomes(passed=1, skipped=1)
    result.stdout.fnmatch_lines(["*supports_large_values is False*"])


def test_known_gap_of_a_broken_store_is_an_expected_failure(
    pytester: pytest.Pytester, make_suite: MakeSuite
) -> None:
    make_suite(
        "from confstore.testing import ConfigStoreTests\n"
        "class TestMine(ConfigStoreTests):\n"
        "    known_gaps = {'test_history_is_newest_first': 'history comes oldest first'}\n",
        store_class="OldestFirstHistoryStore",
        store_module="broken_stores",
    )
    result = pytester.runpytest("-p", "no:cacheprovider", "-rx", "-k", "history_is_newest_first")
    result.assert_outcomes(xfailed=1)
    result.stdout.fnmatch_lines(["*known gap: history comes oldest first*"])


def test_known_gap_that_passes_fails_the_run(
    pytester: pytest.Pytester, make_suite: MakeSuite
) -> None:
    make_suite(
        "from confstore.testing import ConfigStoreTests\n"
        "class TestMine(ConfigStoreTests):\n"
        "    known_gaps = {'test_history_is_newest_first': 'was broken once'}\n"
    )
    result = pytester.runpytest("-p", "no:cacheprovider", "-k", "history_is_newest_first")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*XPASS(strict)*"])


def test_known_gap_naming_no_test_is_a_usage_error(
    pytester: pytest.Pytester, make_suite: MakeSuite
) -> None:
    make_suite(
        "from confstore.testing import ConfigStoreTests\n"
        "class TestMine(ConfigStoreTests):\n"
        "    known_gaps = {'test_histroy_is_newest_first': 'typo'}\n"
    )
    result = pytester.runpytest("-p", "no:cacheprovider", "-k", "history_is_newest_first")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*known_gaps names no test of the suite: test_histroy*"])


def test_failures_show_the_compared_values(
    pytester: pytest.Pytester, make_suite: MakeSuite
) -> None:
    make_suite(
        "from confstore.testing import ConfigStoreTests\nclass TestMine(ConfigStoreTests):\n    pass\n",
        store_class="OldestFirstHistoryStore",
        store_module="broken_stores",
    )
    result = pytester.runpytest("-p", "no:cacheprovider", "-k", "history_is_newest_first")
    result.assert_outcomes(failed=1)
    assert "assert [1, 2, 3, 4, 5] == [5, 4, 3, 2, 1]" in result.stdout.str()
