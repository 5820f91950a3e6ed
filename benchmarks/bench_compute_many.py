"""Wall time of independent stage calls: ``compute_many`` over the cores vs one after another.

The calls are real stages from an empty cache each time: θ* (``meta_train``) of CartPole and
navigation at seeds 0 and 1, in the ``default`` profile, with one torch thread per process (as
``.ci/book`` runs). The baseline is the same calls with ``n_jobs=1`` (this process, one at a time),
in the same run; each side gets its own fresh cache, so nothing is loaded. The ratio is what a
chapter's loop over families and seeds gains on this machine; the results are checked equal.
Run by hand: ``OMP_NUM_THREADS=1 python benchmarks/bench_compute_many.py`` (~3 min on 2 cores).
"""

from __future__ import annotations

import os
import tempfile
import time

import joblib
import torch

from pgx.profiles import get_profile
from pgx.stages import compute_many, meta_train

CASES = (("cartpole", 0), ("cartpole", 1), ("navigation", 0), ("navigation", 1))


def timed(n_jobs: int) -> tuple[float, list]:
    profile = get_profile("default")
    with tempfile.TemporaryDirectory() as cache:
        os.environ["PGX_CACHE"] = cache
        start = time.perf_counter()
        results = compute_many([meta_train.call(spec, profile, seed) for spec, seed in CASES], n_jobs=n_jobs)
        return time.perf_counter() - start, results


def main() -> None:
    print(f"{joblib.cpu_count()} cores, {torch.get_num_threads()} torch threads here, torch {torch.__version__}; "
          f"calls: {', '.join(f'meta_train {s} seed {k}' for s, k in CASES)} (default profile)")
    serial, a = timed(1)
    parallel, b = timed(-1)
    same = all(torch.equal(x.train.actor_state[k], y.train.actor_state[k]) for x, y in zip(a, b)
               for k in x.train.actor_state)
    print(f"one after another {serial:.1f} s, compute_many {parallel:.1f} s: {serial / parallel:.2f}× "
          f"(results bit-identical: {same})")


if __name__ == "__main__":
    main()
