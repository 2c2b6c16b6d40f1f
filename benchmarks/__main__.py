"""``python -m benchmarks [--quick] [NAME ...]``: run the benchmarks and print a table of ratios.

Each row is printed as soon as its module hands it over (a module's ``run`` may be an async
generator that yields rows as it measures them, or a coroutine that returns its list), with each
module's start and elapsed time, so a long run shows numbers as it goes and a stopped run is not
wasted; the table of every row and the modules' durations come at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import os
import pkgutil
import platform
import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType

from . import _harness
from ._harness import Result


def _modules(selected: list[str]) -> list[str]:
    found = sorted(
        info.name
        for info in pkgutil.iter_modules([str(Path(__file__).parent)])
        if info.name.startswith("bench_")
    )
    if selected:
        found = [name for name in found if any(part in name for part in selected)]
    return found


HEADER = ("benchmark", "confstore", "baseline", "unit", "ratio", "target", "ok")


def _cells(result: Result) -> tuple[str, ...]:
    """One row's cells, in HEADER's order."""
    return (
        result.name,
        f"{result.value:,.1f}",
        f"{result.baseline:,.1f}",
        result.unit,
        f"{result.ratio:.2f}x",
        "" if result.target is None else f">= {result.target:.2f}x",
        {None: "", True: "yes", False: "NO"}[result.meets_target],
    )


def _format_row(result: Result) -> str:
    """A row as one line the moment it is measured (its note on the next), for a reader watching
    a long run; the table at the end lines every row up."""
    name, value, baseline, unit, ratio, target, ok = _cells(result)
    verdict = f"; target {target}: {ok}" if target else ""
    line = f"row: {name}: {value} vs baseline {baseline} {unit}: {ratio}{verdict}"
    return line + (f"\n     note: {result.note}" if result.note else "")


def _format(results: list[Result]) -> str:
    rows = [HEADER, *(_cells(result) for result in results)]
    widths = [max(len(row[column]) for row in rows) for column in range(len(HEADER))]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        for row in rows
    ]
    lines.insert(1, "  ".join("-" * width for width in widths))
    notes = [f"  {result.name}: {result.note}" for result in results if result.note]
    return "\n".join(lines + (["", "notes:", *notes] if notes else []))


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _machine(pinned: str, quick: bool) -> str:
    """The machine, Python and SQLite versions, CPU pinning and load, stated in every module's
    output and the table's (the load average is the one at the time of the call)."""
    return (
        f"{_cpu_model()} ({platform.machine()}), {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}, "
        f"{os.cpu_count()} cores; pinned to: {pinned}; load average "
        f"{os.getloadavg()[0]:.2f}; quick={quick}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes, for CI")
    parser.add_argument(
        "names", nargs="*", help="run only benchmarks whose module name contains one of these"
    )
    parser.add_argument(
        "--no-pin",
        action="store_true",
        help="do not pin the process to one CPU (thread hand-offs then vary with scheduling)",
    )
    args = parser.parse_args()
    modules = _modules(args.names)
    if not modules:
        parser.error(f"no benchmark module matches {' or '.join(args.names)}")
    pinned = "no"
    if hasattr(os, "sched_getaffinity"):
        _harness.ALL_CPUS = frozenset(os.sched_getaffinity(0))
    if not args.no_pin and hasattr(os, "sched_setaffinity"):
        # Every store call hands work to a thread (aiosqlite) or a socket peer (the emulators);
        # whether that thread wakes on the same CPU or another changes a hand-off several times
        # over on a VM. Pinning gives confstore and its baselines the same conditions.
        cpu = min(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {cpu})
        pinned = f"CPU {cpu}"
    machine = _machine(pinned, args.quick)
    _print(f"machine: {machine}")
    results: list[Result] = []
    durations: list[tuple[str, float, int]] = []
    for name in modules:
        module = importlib.import_module(f"benchmarks.{name}")
        _print(f"running {name} ... started {_now()}")
        _print(f"  on: {_machine(pinned, args.quick)}")
        started = time.perf_counter()
        rows = asyncio.run(_collect(module, args.quick, lambda row: _print(_format_row(row))))
        elapsed = time.perf_counter() - started
        _print(f"finished {name}: {len(rows)} rows in {elapsed:.1f} s ({_now()})")
        results.extend(rows)
        durations.append((name, elapsed, len(rows)))
    _print(f"\nall rows, on: {machine}")
    _print(_format(results))
    _print("\nmodule durations:")
    for name, elapsed, count in durations:
        _print(f"  {name}: {elapsed:.1f} s, {count} rows")
    _print(f"  all: {sum(elapsed for _, elapsed, _ in durations):.1f} s")
    return 0


async def _collect(
    module: ModuleType, quick: bool, report: Callable[[Result], None]
) -> list[Result]:
    """The rows of ``module.run(quick)``, each passed to ``report`` as soon as it is measured."""
    rows: list[Result] = []
    async for row in _rows(module, quick):
        report(row)
        rows.append(row)
    return rows


async def _rows(module: ModuleType, quick: bool) -> AsyncIterator[Result]:
    produced = module.run(quick)
    if isinstance(produced, AsyncIterator):
        async for row in produced:
            yield row
    else:
        for row in await produced:
            yield row


def _print(text: str) -> None:
    print(text, flush=True)


def _now() -> str:
    return datetime.now(UTC).strftime("%H:%M:%S UTC")


if __name__ == "__main__":
    raise SystemExit(main())
