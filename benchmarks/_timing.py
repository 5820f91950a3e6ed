"""Timing helper shared by the benchmarks (run as scripts, so this sits beside them)."""

from __future__ import annotations

import time
from typing import Callable


def best_time(run: Callable[[], object], repeats: int) -> float:
    """Best wall time of ``repeats`` runs after one warm-up (first calls trace or load kernels)."""
    run()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)
