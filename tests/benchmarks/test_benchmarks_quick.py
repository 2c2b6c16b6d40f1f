"""``python -m benchmarks --quick`` runs every benchmark module, so none can rot.

Only that they run and report is checked here: speed is judged from the printed ratios,
never by timed unit tests.
"""

from __future__ import annotations

import pkgutil
import subprocess
import sys
from pathlib import Path

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
