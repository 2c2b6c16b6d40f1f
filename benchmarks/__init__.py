"""confstore benchmarks: each module ``bench_*.py`` measures confstore against baselines in the same run.

A benchmark module defines ``async def run(quick: bool) -> list[Result]``. ``python -m benchmarks``
runs them all and prints one table; ``--quick`` uses small sizes so CI can run it and it cannot rot.
"""

from ._harness import Result, measure_rate, median_seconds

__all__ = ["Result", "measure_rate", "median_seconds"]
