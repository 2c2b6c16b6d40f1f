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
    for module in modules:
        assert f"running {module} ..." in result.stderr
    table = result.stdout.splitlines()
    assert table[0].startswith("machine:")
    assert table[1].startswith("benchmark")
    rows = [line for line in table[3:] if line.strip() and not line.startswith(("notes:", "  "))]
    assert len(rows) >= len(modules), result.stdout
