"""``python -m benchmarks --quick`` runs every benchmark module, so none can rot.

Only that they run and report is checked here: speed is judged from the printed ratios,
never by timed unit tests.
"""

from __future__ import annotations

import importlib
import pkgutil
import subprocess
import sys
import types
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).parents[2]


def test_every_benchmark_runs_in_quick_mode_and_reports_rows() -> None:
    modules = sorted(
        info.name
        for info in pkgutil.iter_modules([str(ROOT / "benchmarks")])
        if info.name.startswith("bench_")
    )
    assert modules, "no benchmark modules found"
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    lines = result.stdout.splitlines()
    assert lines[0].startswith("machine:")
    streamed = 0
    for module in modules:
        start = _find(lines, f"running {module} ... started")
        end = _find(lines, f"finished {module}: ")
        # Each module states where it runs, then prints its rows as they come, before it ends.
        assert "SQLite 3." in lines[start + 1], lines[start + 1]
        assert "pinned to: " in lines[start + 1], lines[start + 1]
        rows = sum(line.startswith("row: ") for line in lines[start:end])
        assert rows, f"{module} printed no row before it finished"
        streamed += rows
    assert "SQLite 3." in lines[_find(lines, "all rows, on: ")]
    header = _find(lines, "benchmark ")
    table = lines[header + 2 : lines.index("", header)]
    assert len(table) == streamed, result.stdout


def _find(lines: list[str], prefix: str) -> int:
    """The index of the first line that starts with ``prefix``."""
    return next(number for number, line in enumerate(lines) if line.startswith(prefix))


async def test_a_module_row_is_printed_before_the_module_measures_its_next(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.syspath_prepend(str(ROOT))
    harness = importlib.import_module("benchmarks._harness")
    runner = importlib.import_module("benchmarks.__main__")
    printed_before_second: list[str] = []

    async def run(quick: bool) -> AsyncIterator[Any]:
        yield harness.Result("first row", 2.0, 1.0, "ops/s", target=1.0, note="why")
        printed_before_second.append(capsys.readouterr().out)
        yield harness.Result("second row", 1.0, 2.0, "ops/s")

    module = types.ModuleType("bench_streaming")
    module.run = run  # type: ignore[attr-defined]
    rows = await runner._collect(module, True, lambda row: print(runner._format_row(row)))

    assert [row.name for row in rows] == ["first row", "second row"]
    assert printed_before_second == [
        "row: first row: 2.0 vs baseline 1.0 ops/s: 2.00x; target >= 1.00x: yes\n     note: why\n"
    ]
    assert capsys.readouterr().out == "row: second row: 1.0 vs baseline 2.0 ops/s: 0.50x\n"
