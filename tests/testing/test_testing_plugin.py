"""The confstore.testing pytest plugin: collection, skips with reasons, strict known gaps, asserts."""

from __future__ import annotations

import textwrap
from collections.abc import Callable

import pytest

from confstore.testing import ConfigStoreTests

CONFTEST = """
import pytest

from {store_module} import {store_class} as StoreClass

pytest_plugins = ["confstore.testing"]


@pytest.fixture
async def config_store():
    async with StoreClass() as store:
        yield store
"""

INI = """
[pytest]
asyncio_mode = auto
asyncio_default_fixture_loop_scope = function
filterwarnings = error
"""

IMPORTS = "import pytest\nfrom confstore import MemoryConfigStore\nfrom confstore.testing import ConfigStoreTests\n"

SUITE_SIZE = len([name for name in dir(ConfigStoreTests) if name.startswith("test_")])

RunSuite = Callable[..., pytest.RunResult]


@pytest.fixture
def write_suite(pytester: pytest.Pytester) -> Callable[..., None]:
    """Write a third-party-style test folder: a conftest for a store, and ``test_module``."""

    def write(test_module: str, store_class: str = "MemoryConfigStore") -> None:
        store_module = "confstore" if store_class == "MemoryConfigStore" else "broken_stores"
        pytester.makeini(INI)
        pytester.makeconftest(CONFTEST.format(store_module=store_module, store_class=store_class))
        pytester.makepyfile(test_conformance=IMPORTS + test_module)

    return write


@pytest.fixture
def run_suite(pytester: pytest.Pytester, write_suite: Callable[..., None]) -> RunSuite:
    """Run the tests matching ``selection`` of ``class TestMine(ConfigStoreTests)`` with ``body``."""

    def run(
        selection: str,
        body: str = "pass",
        store_class: str = "MemoryConfigStore",
        *options: str,
    ) -> pytest.RunResult:
        test_class = "class TestMine(ConfigStoreTests):\n" + textwrap.indent(body, "    ")
        write_suite(test_class + "\n", store_class)
        return pytester.runpytest("-p", "no:cacheprovider", "-rsx", "-k", selection, *options)

    return run


def test_the_suite_has_at_least_80_tests() -> None:
    assert SUITE_SIZE >= 80


def test_only_classes_not_named_tests_are_collected(
    pytester: pytest.Pytester, write_suite: Callable[..., None]
) -> None:
    write_suite(
        "class SharedStoreTests(ConfigStoreTests):\n"
        "    pass\n"
        "class TestMine(SharedStoreTests):\n"
        "    pass\n"
    )
    items, _ = pytester.inline_genitems("-p", "no:cacheprovider")
    assert {item.cls.__name__ for item in items} == {"TestMine"}
    assert len(items) == SUITE_SIZE


def test_missing_peer_fixture_skips_with_its_name(run_suite: RunSuite) -> None:
    result = run_suite("peer_reads_a_write")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["*no config_store_peer fixture*"])


def test_store_without_shared_capability_skips_with_the_reason(run_suite: RunSuite) -> None:
    result = run_suite(
        "peer_reads_a_write",
        "@pytest.fixture\n"
        "async def config_store_peer(self):\n"
        "    async with MemoryConfigStore() as store:\n"
        "        yield store\n",
    )
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["*MemoryConfigStore declares capabilities.shared=False*"])


def test_missing_reopen_fixture_skips_the_persistence_tests(run_suite: RunSuite) -> None:
    result = run_suite("survive")
    result.assert_outcomes(skipped=3)
    result.stdout.fnmatch_lines(["*no reopen_config_store fixture*"])


def test_missing_unreachable_fixture_skips_those_tests(run_suite: RunSuite) -> None:
    result = run_suite("unreachable")
    result.assert_outcomes(skipped=4)
    result.stdout.fnmatch_lines(["*no unreachable_config_store fixture*"])


def test_large_values_flag_skips_the_large_value_test(run_suite: RunSuite) -> None:
    result = run_suite("max_value_bytes", "supports_large_values = False\n")
    result.assert_outcomes(passed=1, skipped=1)
    result.stdout.fnmatch_lines(["*supports_large_values is False*"])


def test_known_gap_of_a_broken_store_is_an_expected_failure(run_suite: RunSuite) -> None:
    result = run_suite(
        "history_is_newest_first",
        "known_gaps = {'test_history_is_newest_first': 'history comes oldest first'}\n",
        store_class="OldestFirstHistoryStore",
    )
    result.assert_outcomes(xfailed=1)
    result.stdout.fnmatch_lines(["*known gap: history comes oldest first*"])


def test_known_gap_that_passes_fails_the_run(run_suite: RunSuite) -> None:
    result = run_suite(
        "history_is_newest_first",
        "known_gaps = {'test_history_is_newest_first': 'was broken once'}\n",
    )
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*XPASS(strict)*"])


def test_known_gap_naming_no_test_is_a_usage_error(run_suite: RunSuite) -> None:
    result = run_suite(
        "history_is_newest_first", "known_gaps = {'test_histroy_is_newest_first': 'typo'}\n"
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*known_gaps names no test of the suite: test_histroy*"])


def test_hypothesis_examples_follow_the_class_attribute(run_suite: RunSuite) -> None:
    result = run_suite(
        "tenants_are_isolated",
        "hypothesis_max_examples = 3\n",
        "MemoryConfigStore",
        "--hypothesis-show-statistics",
    )
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*Stopped because settings.max_examples=3*"])


def test_failures_show_the_compared_values(run_suite: RunSuite) -> None:
    result = run_suite("history_is_newest_first", store_class="OldestFirstHistoryStore")
    result.assert_outcomes(failed=1)
    assert "assert [1, 2, 3, 4, 5] == [5, 4, 3, 2, 1]" in result.stdout.str()
