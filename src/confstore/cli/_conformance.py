"""``confstore conformance URL``: the conformance suite against a live store, and its report.

The command checks the store once (it opens, answers, and takes a write in an area of its own),
then runs pytest on ``confstore.testing._conformance_suite`` in a child process (so pytest's
state never mixes with the CLI's), reads the outcome of each test from the results file the
plugin writes, and prints a report by contract area with a one-line verdict.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import json
import os
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from .._conformance import RESULTS_FORMAT, RunSettings, is_shared, open_area
from .._errors import (
    BackendError,
    ConfigStoreError,
    NoSuchBackendError,
    PermissionDeniedError,
)
from .._registry import open_store
from .._store import ConfigStore, IsolatedArea
from .._url import StoreURL
from ._common import CliError, ExitCode, store_url
from ._output import Console, printable

AddCommand = Callable[[str, Any, str], argparse.ArgumentParser]

# The report lists the areas the issue names first, in this order, then any other.
AREA_ORDER = (
    "versions",
    "compare-and-set",
    "history",
    "tombstones",
    "export/import",
    "change feed",
    "isolation",
    "errors",
)
# Outcomes that fail the run: a strict xfail that passed is a known gap that was fixed.
FAILING = frozenset({"failed", "error", "xpassed", "not run"})
SUITE_MODULE = "confstore.testing._conformance_suite"
_PYTEST_USAGE_ERROR = 4
_PROBE_KEY = ("conformance-probe", "system", "conformance", "probe")

EPILOG = """\
Each test runs in an area of its own that it creates and removes: a scratch SQLite file beside
the one the URL names, a new schema (PostgreSQL), key prefix (etcd), index prefix
(Elasticsearch, OpenSearch) or namespace (Vespa); nothing else on the server is read or
written. A backend that cannot isolate (the remote store) is refused unless --allow-shared is
given; the store must then be empty and used by nothing else, and is emptied after each test.
Needs pytest: pip install 'confstore[testing]'.

exit status:
  0  every test that ran passed (skips name their reason)
  1  a test failed, or no test ran
  2  usage error (bad command line)
  5  the store did not answer (unreachable, timed out)
  6  the URL is not a store URL
  7  the store is read-only, or the credentials may not write
  8  no backend for the URL's scheme (unknown, or its package is not installed)
  9  refused: the backend cannot isolate tests (see --allow-shared), or the shared store is
     not empty
"""


def add_command(command: AddCommand) -> None:
    sub = command(
        "conformance",
        conformance,
        "Run the conformance suite against the store a URL opens, safely on a live server, "
        "and report by contract area.",
    )
    sub.formatter_class = argparse.RawDescriptionHelpFormatter
    sub.epilog = EPILOG
    sub.add_argument(
        "store_url",
        nargs="?",
        metavar="URL",
        help="the store to test (default: --url, else $CONFSTORE_URL, else the default store)",
    )
    sub.add_argument(
        "-k", dest="keyword", metavar="EXPR", help="only the tests matching this pytest -k EXPR"
    )
    sub.add_argument(
        "--junitxml", type=os.path.abspath, metavar="FILE", help="also write a JUnit XML report"
    )
    sub.add_argument(
        "--keep", action="store_true", help="leave each test's data (the report lists where)"
    )
    sub.add_argument(
        "--allow-shared",
        action="store_true",
        help="run on the store itself when its backend cannot isolate tests (it must be empty)",
    )
    sub.add_argument(
        "--feed-latency",
        type=_seconds,
        default=0.0,
        metavar="SECONDS",
        help="how long a write may take to reach another handle's change feed (default: 0; "
        "a real Vespa needs about 2)",
    )


def _seconds(text: str) -> float:
    try:
        seconds = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0 <= seconds <= 3600:
        raise argparse.ArgumentTypeError(f"must be 0 to 3600 seconds, got {text}")
    return seconds


async def conformance(args: argparse.Namespace, console: Console) -> int:
    _require_pytest()
    started = time.monotonic()
    text = args.store_url or store_url(args)
    url = StoreURL.parse(text)
    run_id = uuid.uuid4().hex[:8]
    store_class = _store_class(url)
    area, version = await _check_store(store_class, url, run_id, allow_shared=args.allow_shared)
    with tempfile.TemporaryDirectory(prefix="confstore-conformance-") as scratch:
        settings = RunSettings(
            url=text,
            run_id=run_id,
            results=str(Path(scratch) / "results.json"),
            allow_shared=args.allow_shared,
            keep=args.keep,
            feed_latency=args.feed_latency,
        )
        pytest_status = await _run_pytest(settings, Path(scratch), args, console)
        results = _read_results(Path(settings.results), pytest_status)
    report = build_report(
        results,
        url=url,
        store=store_class.__name__,
        version=version,
        isolation=_isolation(area),
        keyword=args.keyword,
        seconds=time.monotonic() - started,
    )
    if console.json_mode:
        console.json(report)
    else:
        print_report(report, console)
    return int(report["exit_code"])


def _require_pytest() -> None:
    missing = [
        name
        for name in ("pytest", "pytest_asyncio", "hypothesis")
        if importlib.util.find_spec(name) is None
    ]
    if missing:
        raise CliError(
            f"confstore conformance needs {', '.join(missing)}: pip install 'confstore[testing]'"
        )


def _store_class(url: StoreURL) -> type[ConfigStore]:
    try:
        return type(open_store(url))
    except NoSuchBackendError as exc:
        raise CliError(str(exc), ExitCode.NO_BACKEND) from exc


async def _check_store(
    store_class: type[ConfigStore], url: StoreURL, run_id: str, *, allow_shared: bool
) -> tuple[IsolatedArea, str | None]:
    """Area 0 of the run, checked: the store answers, takes a write (then purged) and, when
    shared, is empty. Returns the area (it is removed again) and what the backend says it is."""
    try:
        area = open_area(store_class, url, run_id, 0, allow_shared=allow_shared)
        if area is None:
            raise CliError(
                f"{store_class.__name__} cannot make an isolated area for each test, so the "
                f"suite would write to {url} itself: give --allow-shared to allow that (the "
                "store must be empty and used by nothing else)",
                ExitCode.REFUSED,
            )
        try:
            version = await _probe(area)
        except BaseException:
            if not is_shared(area):
                with contextlib.suppress(ConfigStoreError):
                    await area.remove()
            raise
        if not is_shared(area):
            await area.remove()
    except PermissionDeniedError as exc:
        raise CliError(f"{url} cannot be written: {exc}", ExitCode.PERMISSION_DENIED) from exc
    except BackendError as exc:
        raise CliError(f"{url} did not answer: {exc}", ExitCode.UNAVAILABLE) from exc
    return area, version


async def _probe(area: IsolatedArea) -> str | None:
    store = open_store(area.url)
    try:
        await store.initialize()
        try:
            version = await store.backend_version()
        except BackendError:
            version = None
        if is_shared(area):
            tenants = await store.list_tenants(include_deleted=True)
            if tenants:
                raise CliError(
                    f"refusing to run on {area.url}: with --allow-shared the store must be "
                    f"empty, and it has tenants {', '.join(tenants[:5])}",
                    ExitCode.REFUSED,
                )
        await store.set_config(*_PROBE_KEY, {"probe": True})
        await store.delete_config(*_PROBE_KEY, purge=True)
    finally:
        # Not ``async with``: a store whose initialize() failed is closed too.
        await store.close()
    return version


async def _run_pytest(
    settings: RunSettings, scratch: Path, args: argparse.Namespace, console: Console
) -> int:
    """Run the suite in a child pytest; its progress goes to stderr (not with --json)."""
    ini = scratch / "pytest.ini"
    ini.write_text(
        "[pytest]\nasyncio_mode = auto\nasyncio_default_fixture_loop_scope = function\n",
        encoding="utf-8",
    )
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-c",
        str(ini),
        "--rootdir",
        str(scratch),
        "--noconftest",
        "-p",
        "no:cacheprovider",
        # The user's other pytest plugins stay out (PYTEST_DISABLE_PLUGIN_AUTOLOAD below).
        *("-p", "pytest_asyncio.plugin", "-p", "_hypothesis_pytestplugin"),
        "-p",
        "confstore.testing",
        "-p",
        "confstore.testing._conformance",
        "-q",
        "--no-header",
        "--tb=no",
        "-rN",
        "--pyargs",
        SUITE_MODULE,
    ]
    if args.keyword:
        command += ["-k", args.keyword]
    if args.junitxml:
        command += ["--junitxml", args.junitxml]
    process = await asyncio.create_subprocess_exec(
        *command,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env=_child_environment(settings),
    )
    try:
        output = await _relay(process, None if console.json_mode else console.err)
        status = await process.wait()
    finally:
        if process.returncode is None:
            process.terminate()
            await process.wait()
    if status == _PYTEST_USAGE_ERROR:
        errors = [line for line in output.splitlines() if line.startswith("ERROR: ")]
        reason = errors[-1].removeprefix("ERROR: ") if errors else f"exit status {status}"
        raise CliError(f"pytest refused the run: {reason}", ExitCode.USAGE)
    return status


def _child_environment(settings: RunSettings) -> dict[str, str]:
    """The run's settings; none of the user's pytest plugins (autoloaded) or options."""
    inherited = {name: value for name, value in os.environ.items() if name != "PYTEST_ADDOPTS"}
    return {**inherited, **settings.to_environment(), "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}


async def _relay(process: asyncio.subprocess.Process, echo: TextIO | None) -> str:
    """The child's output (its last 64 KiB), copied to ``echo`` as it comes (progress dots)."""
    assert process.stdout is not None
    kept = bytearray()
    while chunk := await process.stdout.read(4096):
        if echo is not None:
            echo.write(chunk.decode("utf-8", "replace"))
            echo.flush()
        kept += chunk
        del kept[: max(0, len(kept) - 65536)]
    return kept.decode("utf-8", "replace")


def _read_results(path: Path, pytest_status: int) -> dict[str, Any]:
    try:
        results = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise CliError(
            f"the test run stopped before it could report (pytest exit status {pytest_status})"
        ) from exc
    if not isinstance(results, dict) or results.get("format") != RESULTS_FORMAT:
        raise CliError(f"the test run wrote an unexpected results file: {path}")
    return results


def _isolation(area: IsolatedArea) -> str:
    if is_shared(area):
        return area.description
    return f"an area of its own per test, like {area.description}"


@dataclass
class _AreaTally:
    name: str
    outcomes: Counter[str]

    def row(self) -> dict[str, Any]:
        return {
            "area": self.name,
            "passed": self.outcomes["passed"],
            "failed": sum(self.outcomes[outcome] for outcome in FAILING),
            "skipped": self.outcomes["skipped"],
            "known_gaps": self.outcomes["xfailed"],
        }


def build_report(
    results: dict[str, Any],
    *,
    url: StoreURL,
    store: str,
    version: str | None,
    isolation: str,
    keyword: str | None,
    seconds: float,
) -> dict[str, Any]:
    """The report ``--json`` prints: what was tested, a row per contract area, every failure
    and skip with its reason, the verdict and the exit status."""
    tests: list[dict[str, Any]] = results["tests"]
    tests = sorted(tests, key=lambda test: _area_rank(test["area"]))
    areas = sorted({test["area"] for test in tests}, key=_area_rank)
    rows = [
        _AreaTally(name, Counter(test["outcome"] for test in tests if test["area"] == name)).row()
        for name in areas
    ]
    totals = {
        key: sum(row[key] for row in rows) for key in ("passed", "failed", "skipped", "known_gaps")
    }
    failures = [_entry(test) for test in tests if test["outcome"] in FAILING]
    skips = [_entry(test) for test in tests if test["outcome"] == "skipped"]
    passed = not failures and totals["passed"] > 0
    subject = f"{store} ({version})" if version else store
    if passed:
        verdict = f"PASS: {subject} meets the confstore contract: {_counts(totals)}"
    elif not tests:
        verdict = f"FAIL: no test ran ({results['deselected']} deselected by -k)"
    else:
        failed_areas = ", ".join(row["area"] for row in rows if row["failed"])
        verdict = f"FAIL: {subject}: {_counts(totals)} (failing: {failed_areas})"
    if keyword and tests:
        selected = f"{len(tests)} test{'s' if len(tests) != 1 else ''}"
        verdict += f" (the {selected} -k selected; {results['deselected']} not run)"
    return {
        "format": "confstore-conformance-report",
        "url": url.render(),
        "backend": url.backend,
        "store": store,
        "backend_version": version,
        "isolation": isolation,
        "keyword": keyword,
        "deselected": results["deselected"],
        "seconds": round(seconds, 1),
        "areas": rows,
        "totals": totals,
        "failures": failures,
        "skips": skips,
        "kept": results["kept"],
        "verdict": verdict,
        "exit_code": int(ExitCode.OK if passed else ExitCode.FAILURE),
    }


def _area_rank(area: str) -> tuple[int, str]:
    return (AREA_ORDER.index(area) if area in AREA_ORDER else len(AREA_ORDER), area)


def _entry(test: dict[str, Any]) -> dict[str, Any]:
    return {
        "area": test["area"],
        "test": test["name"],
        "outcome": test["outcome"],
        "reason": test["message"],
    }


def _counts(totals: dict[str, int]) -> str:
    text = f"{totals['passed']} passed, {totals['failed']} failed, {totals['skipped']} skipped"
    return text + (f", {totals['known_gaps']} known gaps" if totals["known_gaps"] else "")


def print_report(report: dict[str, Any], console: Console) -> None:
    version = report["backend_version"] or "the backend does not say its version"
    console.line(f"confstore conformance: {report['url']}")
    console.line(f"  store      {report['store']}: {version}")
    console.line(f"  isolation  {report['isolation']}")
    console.line(f"  time       {report['seconds']:.1f} s")
    console.line()
    if report["areas"]:
        console.table(
            ["AREA", "PASSED", "FAILED", "SKIPPED"],
            [
                (row["area"], row["passed"], row["failed"], row["skipped"])
                for row in report["areas"]
            ],
        )
    if report["failures"]:
        console.line()
        console.line("failed:")
        for failure in report["failures"]:
            reason = _first_line(failure["reason"]) or failure["outcome"]
            console.line(f"  {failure['area']}: {failure['test']} ({failure['outcome']}): {reason}")
    skipped_by_reason: dict[str, list[str]] = {}
    for skip in report["skips"]:
        skipped_by_reason.setdefault(skip["reason"] or "no reason given", []).append(skip["test"])
    if skipped_by_reason:
        console.line()
        console.line("skipped:")
        for reason, names in skipped_by_reason.items():
            console.line(f"  {len(names)} ({', '.join(names)}): {_first_line(reason)}")
    if report["kept"]:
        console.line()
        console.line("kept (--keep):")
        for kept in report["kept"]:
            console.line(f"  {kept['test']}: {kept['area']}")
    console.line()
    console.line(report["verdict"])


def _first_line(text: str | None) -> str:
    return printable((text or "").strip().splitlines()[0]) if text and text.strip() else ""
