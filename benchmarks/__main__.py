"""``python -m benchmarks [--quick] [NAME ...]``: run the benchmarks and print a table of ratios."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import os
import pkgutil
import platform
import sqlite3
import sys
from pathlib import Path

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


def _format(results: list[Result]) -> str:
    header = ("benchmark", "confstore", "baseline", "unit", "ratio", "target", "ok")
    rows = [header]
    for result in results:
        ok = {None: "", True: "yes", False: "NO"}[result.meets_target]
        rows.append(
            (
                result.name,
                f"{result.value:,.1f}",
                f"{result.baseline:,.1f}",
                result.unit,
                f"{result.ratio:.2f}x",
                "" if result.target is None else f">= {result.target:.2f}x",
                ok,
            )
        )
    widths = [max(len(row[column]) for row in rows) for column in range(len(header))]
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
    print(
        f"machine: {_cpu_model()} ({platform.machine()}), {platform.system()} "
        f"{platform.release()}, Python {platform.python_version()}, SQLite "
        f"{sqlite3.sqlite_version}, {os.cpu_count()} cores; pinned to: {pinned}; "
        f"load average {os.getloadavg()[0]:.2f}; quick={args.quick}"
    )
    results: list[Result] = []
    for name in _modules(args.names):
        module = importlib.import_module(f"benchmarks.{name}")
        print(f"running {name} ...", file=sys.stderr, flush=True)
        results.extend(asyncio.run(module.run(args.quick)))
    print(_format(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
