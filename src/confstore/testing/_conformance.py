"""The pytest side of ``confstore conformance URL``: areas for tests, and the results file.

The command runs pytest on ``confstore.testing._conformance_suite`` in a child process with this
module as a plugin and the run's settings in ``$CONFSTORE_CONFORMANCE`` (see
``confstore._conformance``). Every test gets an area of its own: ``ConfigStore.isolated_area`` of
the store's class (removed after the test unless ``keep``), or, with ``allow_shared``, the store
itself, which must be empty when a test starts and is emptied (every version of every tenant
purged) after it. When the session ends, each test's outcome is written to ``results`` as JSON.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hypothesis
import pytest

from .._conformance import (
    RESULTS_FORMAT,
    RunSettings,
    is_shared,
    open_area,
    stored_tenants,
    unreachable_url,
)
from .._errors import BackendError
from .._registry import open_store
from .._store import ConfigStore, IsolatedArea
from .._url import StoreURL


@dataclass
class TestRecord:
    """How one test went: its outcome, and for a failure, error or skip, why."""

    name: str
    area: str
    outcome: str = "not run"
    message: str | None = None
    duration: float = 0.0


@dataclass
class ConformanceRun:
    """The state of one run: where tests write, and how each of them went."""

    settings: RunSettings
    url: StoreURL = field(init=False)
    store_class: type[ConfigStore] = field(init=False)
    records: dict[str, TestRecord] = field(default_factory=dict)
    kept: list[dict[str, str]] = field(default_factory=list)
    deselected: int = 0
    _numbers: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def __post_init__(self) -> None:
        self.url = StoreURL.parse(self.settings.url)
        self.store_class = type(open_store(self.url))

    @property
    def last_test(self) -> str | None:
        """The name of the last test collected (with a shared store, only its data is kept)."""
        return next(reversed(self.records.values())).name if self.records else None

    def new_area(self) -> IsolatedArea:
        """A fresh area for the next test."""
        settings = self.settings
        area = open_area(
            self.store_class,
            self.url,
            settings.run_id,
            next(self._numbers),
            allow_shared=settings.allow_shared,
        )
        if area is None:
            raise pytest.UsageError(
                f"{self.store_class.__name__} cannot isolate tests; run with --allow-shared"
            )
        return area

    async def prepare_area(self, area: IsolatedArea) -> None:
        """The shared store must be empty when a test starts: with ``keep``, the previous test's
        data is removed now; otherwise anything there was written by someone else."""
        if not is_shared(area):
            return
        if self.settings.keep:
            await area.remove()
            return
        tenants = await stored_tenants(area.url)
        if tenants:
            raise BackendError(
                f"the shared store is not empty (tenants {', '.join(tenants[:5])}): another "
                "writer uses it, or an earlier test's data could not be removed"
            )

    async def finish_area(self, area: IsolatedArea, test_name: str) -> None:
        if not self.settings.keep:
            await area.remove()
        elif not is_shared(area) or test_name == self.last_test:
            self.kept.append({"test": test_name, "area": area.description})

    def unreachable_url(self) -> StoreURL | None:
        return unreachable_url(self.url)

    def record(self, item: pytest.Item) -> None:
        test_class = getattr(item, "cls", None)
        name = getattr(item, "originalname", item.name)
        # The group that first defined the test (a subclass may wrap it again: hypothesis).
        definers = [group for group in getattr(test_class, "__mro__", ()) if name in vars(group)]
        area = getattr(definers[-1], "contract_area", "other") if definers else "other"
        self.records[item.nodeid] = TestRecord(item.name, area)

    def report(self, exit_status: int) -> dict[str, Any]:
        return {
            "format": RESULTS_FORMAT,
            "exit_status": exit_status,
            "deselected": self.deselected,
            "tests": [vars(record) for record in self.records.values()],
            "kept": self.kept,
        }


_run: ConformanceRun | None = None


def current_run() -> ConformanceRun:
    if _run is None:
        raise RuntimeError("the confstore conformance plugin is not active")
    return _run


def pytest_configure(config: pytest.Config) -> None:
    global _run
    run_settings = RunSettings.from_environment()
    if run_settings is None:
        raise pytest.UsageError(
            "$CONFSTORE_CONFORMANCE is not set: run the suite with `confstore conformance URL`"
        )
    _run = ConformanceRun(run_settings)
    # The command's run writes nothing into the user's directory: no example database.
    hypothesis.settings.register_profile("confstore-conformance", database=None)
    hypothesis.settings.load_profile("confstore-conformance")


@pytest.hookimpl(trylast=True)  # after -k and -m have deselected what they deselect
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        current_run().record(item)


def pytest_deselected(items: list[pytest.Item]) -> None:
    current_run().deselected += len(items)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    record = current_run().records.get(report.nodeid)
    if record is None:
        return
    record.duration += report.duration
    if report.passed and report.when != "call":
        return
    if report.skipped:
        record.outcome = "xfailed" if hasattr(report, "wasxfail") else "skipped"
    elif report.passed:
        record.outcome = "xpassed" if hasattr(report, "wasxfail") else "passed"
    elif report.when == "call":
        record.outcome = "failed"
    elif record.outcome != "failed":
        record.outcome = "error"
    if not report.passed:
        text = _message(report)
        record.message = (
            text if report.when == "call" or report.skipped else f"{report.when}: {text}"
        )


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if _run is None:
        return
    path = Path(_run.settings.results)
    path.write_text(json.dumps(_run.report(int(exitstatus))), encoding="utf-8")


def _message(report: pytest.TestReport) -> str:
    """Why a test failed or was skipped, in a line or a few (assertion values included)."""
    longrepr = report.longrepr
    if isinstance(longrepr, tuple):  # a skip: (path, line, "Skipped: reason")
        return str(longrepr[2]).removeprefix("Skipped: ")
    crash = getattr(longrepr, "reprcrash", None)
    text = str(getattr(crash, "message", None) or longrepr or "").strip()
    return text[:2000]
