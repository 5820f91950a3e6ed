"""Timing helper shared by the benchmarks (run as scripts, so this sits beside them)."""

from __future__ import annotations

import cProfile
import pstats
import time
from typing import Callable

import pandas as pd


def best_time(run: Callable[[], object], repeats: int) -> float:
    """Best wall time of ``repeats`` runs after one warm-up (first calls trace or load kernels)."""
    run()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)


def peak_rss_above_start(call: Callable[[], object], interval: float = 0.001) -> tuple[object, float, float]:
    """``call()``'s result, wall seconds, and the highest resident memory (MiB) the process reached
    *during* the call above its size just before it, sampled every ``interval`` seconds by a
    thread. ``ru_maxrss`` cannot give this: it is the peak of the process's whole life, so a call
    that stays below an earlier peak (imports) would read as using nothing. Sampling can miss a
    spike shorter than ``interval``; numpy and torch release the GIL, so the sampler keeps running."""
    import threading

    import psutil

    process = psutil.Process()
    before = process.memory_info().rss
    peak, done = [before], threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], process.memory_info().rss)
            done.wait(interval)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    start = time.perf_counter()
    try:
        result = call()
    finally:
        seconds = time.perf_counter() - start
        done.set()
        sampler.join()
    peak[0] = max(peak[0], process.memory_info().rss)
    return result, seconds, (peak[0] - before) / 2**20


def profile_shares(run: Callable[[], object], root: str, wanted: dict[str, tuple[str, str]]) -> pd.DataFrame:
    """cProfile ``run()``: for each label, the cumulative seconds of the functions ``(file suffix,
    name)`` and their share of the function called ``root`` (the whole run). cProfile adds
    overhead per Python call, so shares are indicative."""
    profiler = cProfile.Profile()
    profiler.enable()
    run()
    profiler.disable()
    stats = pstats.Stats(profiler).stats
    total = max(v[3] for k, v in stats.items() if k[2] == root)
    rows = []
    for label, (file, name) in wanted.items():
        cum = sum(v[3] for k, v in stats.items() if k[0].endswith(file) and k[2] == name)
        rows.append({"part": label, "seconds": cum, "share": cum / total})
    return pd.DataFrame(rows)
