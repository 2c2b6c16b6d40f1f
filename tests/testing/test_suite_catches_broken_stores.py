"""The suite has teeth: it fails every store that breaks one clause, and passes the memory store.

One pytest session, in a subprocess, runs the whole suite once per store (a test class each),
exactly as a third-party package would run it; each test here checks one store's outcome.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ElementTree
from collections import defaultdict
from pathlib import Path

import pytest
from broken_stores import BROKEN_STORES, BrokenStore

HERE = Path(__file__).resolve().parent

CONFTEST = f"""
import sys
import uuid

import pytest

sys.path.insert(0, {str(HERE)!r})

pytest_plugins = ["confstore.testing"]


@pytest.fixture
def storage_name():
    return f"suite-teeth-{{uuid.uuid4().hex}}"


@pytest.fixture
async def config_store(request, storage_name):
    async with request.cls.store_class(storage_name) as store:
        yield store


@pytest.fixture
async def config_store_peer(request, storage_name):
    async with request.cls.store_class(storage_name) as store:
        yield store


@pytest.fixture
async def reopen_config_store(request, storage_name):
    opened = []

    async def reopen():
        store = request.cls.store_class(storage_name)
        await store.initialize()
        opened.append(store)
        return store

    yield reopen
    for store in opened:
        await store.close()
"""

INI = """
[pytest]
asyncio_mode = auto
asyncio_default_fixture_loop_scope = function
filterwarnings = error
"""

REFERENCE = "MemoryConfigStore"

Outcomes = dict[str, dict[str, str]]


def _test_module() -> str:
    names = [REFERENCE, *(broken.store_class.__name__ for broken in BROKEN_STORES)]
    classes = "".join(
        f"""

class Test{name}(ConfigStoreTests):
    store_class = {"confstore" if name == REFERENCE else "broken_stores"}.{name}
    hypothesis_max_examples = 10
"""
        for name in names
    )
    return (
        "import broken_stores\nimport confstore\nfrom confstore.testing import ConfigStoreTests\n"
        + classes
    )


def _outcomes(report: Path) -> Outcomes:
    """{test class: {test name: "passed" | "failed" | "error" | "skipped"}} from a JUnit report."""
    outcomes: Outcomes = defaultdict(dict)
    for case in ElementTree.parse(report).iter("testcase"):
        test_class = case.get("classname", "").rsplit(".", 1)[-1]
        kinds = [child.tag for child in case if child.tag in ("failure", "error", "skipped")]
        outcomes[test_class][case.get("name", "")] = kinds[0] if kinds else "passed"
    return outcomes


@pytest.fixture(scope="module")
def suite_outcomes(tmp_path_factory: pytest.TempPathFactory) -> Outcomes:
    folder = tmp_path_factory.mktemp("suite-teeth")
    (folder / "pytest.ini").write_text(INI)
    (folder / "conftest.py").write_text(textwrap.dedent(CONFTEST))
    (folder / "test_conformance.py").write_text(_test_module())
    completed = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "--junitxml=report.xml"],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert completed.returncode == 1, completed.stdout[-3000:] + completed.stderr[-3000:]
    return _outcomes(folder / "report.xml")


def test_the_suite_passes_the_reference_memory_store(suite_outcomes: Outcomes) -> None:
    outcomes = suite_outcomes[f"Test{REFERENCE}"]
    assert len(outcomes) >= 80
    # A memory store cannot be unreachable, so it defines no unreachable_config_store.
    assert {name: kind for name, kind in outcomes.items() if kind != "passed"} == {
        name: "skipped" for name in outcomes if "unreachable" in name
    }


@pytest.mark.parametrize(
    "broken", BROKEN_STORES, ids=[broken.store_class.__name__ for broken in BROKEN_STORES]
)
def test_the_suite_fails_a_store_that_breaks_one_clause(
    suite_outcomes: Outcomes, broken: BrokenStore
) -> None:
    outcomes = suite_outcomes[f"Test{broken.store_class.__name__}"]
    caught_by = sorted(name for name, kind in outcomes.items() if kind == "failure")
    print(f"{broken.store_class.__name__} caught by {len(caught_by)}: {', '.join(caught_by)}")
    assert len(outcomes) >= 80
    assert broken.caught_by in caught_by
    assert [name for name, kind in outcomes.items() if kind == "error"] == []
