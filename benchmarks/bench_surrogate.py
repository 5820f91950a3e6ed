"""Speed of Algorithm 1's regressions: one batched ``fit_subsets`` vs a loop of scikit-learn fits.

Same data for both: N = 10,000 samples of d = 200 projected gradients from 10 tasks, 60 random
subsets of 4 tasks, λ = 1e-2. scikit-learn solves each subset with
``LogisticRegression(C = 1/(2 λ Σ_S w), fit_intercept=False)`` and ``sample_weight = |Â|``, which
has the same minimiser. Run by hand: ``python benchmarks/bench_surrogate.py``.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from threadpoolctl import threadpool_limits

from pgx.surrogate import SurrogateConfig, fit_subsets

NUM_SAMPLES, DIM, NUM_TASKS, NUM_SUBSETS, SUBSET_SIZE, L2 = 10_000, 200, 10, 60, 4, 1e-2
TIGHT_TOL = 1e-8
"""scikit-learn tolerance of the reference solutions."""


def make_data(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, list[list[int]]]:
    """Features with a common mean direction (as policy gradients have); advantages that depend on
    them through a per-task direction, so subsets have different solutions."""
    g = torch.Generator().manual_seed(seed)
    task_ids = torch.arange(NUM_SAMPLES) % NUM_TASKS
    features = torch.randn(NUM_SAMPLES, DIM, generator=g) + torch.randn(DIM, generator=g)
    directions = torch.randn(NUM_TASKS, DIM, generator=g)
    advantages = (features * directions[task_ids]).sum(1) / DIM**0.5 + torch.randn(NUM_SAMPLES, generator=g)
    rng = np.random.default_rng(seed)
    subsets = [sorted(rng.choice(NUM_TASKS, SUBSET_SIZE, replace=False).tolist()) for _ in range(NUM_SUBSETS)]
    return features, advantages, task_ids, subsets


def sklearn_loop(
    features: np.ndarray,
    advantages: np.ndarray,
    task_ids: np.ndarray,
    subsets: list[list[int]],
    tol: float,
) -> np.ndarray:
    solutions = []
    for subset in subsets:
        mask = np.isin(task_ids, subset)
        w, y = np.abs(advantages[mask]), np.where(advantages[mask] > 0, 1, -1)
        model = LogisticRegression(C=1 / (2 * L2 * w.sum()), fit_intercept=False, tol=tol, max_iter=10_000)
        solutions.append(model.fit(features[mask], y, sample_weight=w).coef_[0])
    return np.stack(solutions)


def timed(run: Callable[[], np.ndarray]) -> tuple[float, np.ndarray]:
    start = time.perf_counter()
    result = run()
    return time.perf_counter() - start, result


def main() -> None:
    features, advantages, task_ids, subsets = make_data()
    cfg = SurrogateConfig(l2=L2)
    threads = torch.get_num_threads()
    print(
        f"N = {NUM_SAMPLES}, d = {DIM}, {NUM_TASKS} tasks, {NUM_SUBSETS} subsets of {SUBSET_SIZE}, "
        f"λ = {L2}, fit_subsets tol = {cfg.tol:g}; torch {torch.__version__}"
    )
    arrays = (features.double().numpy(), advantages.double().numpy(), task_ids.numpy())

    def batched() -> np.ndarray:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # a non-converged fit would make the comparison unfair
            return fit_subsets(features, advantages, task_ids, subsets, cfg).double().numpy()

    # Small problems can run slower on several BLAS threads, so each method is also timed on one.
    rows: list[tuple[str, int, float, np.ndarray]] = []
    seconds, reference = timed(lambda: sklearn_loop(*arrays, subsets, tol=TIGHT_TOL))
    rows.append((f"scikit-learn loop, lbfgs tol {TIGHT_TOL:.0e}", threads, seconds, reference))
    with threadpool_limits(1):
        for tol in (TIGHT_TOL, 1e-4):
            seconds, solution = timed(lambda: sklearn_loop(*arrays, subsets, tol=tol))
            rows.append((f"scikit-learn loop, lbfgs tol {tol:.0e}", 1, seconds, solution))
    batched()  # warm-up: first-call allocations
    for count in (threads, 1):
        torch.set_num_threads(count)
        seconds, solution = min((timed(batched) for _ in range(3)), key=lambda pair: pair[0])
        rows.append(("fit_subsets, batched float64", count, seconds, solution))
    torch.set_num_threads(threads)

    print(f"{'method':<36} {'threads':>7} {'seconds':>8} {'max rel. diff':>13}")
    for name, count, seconds, solution in rows:
        relative = (np.abs(solution - reference).max(1) / np.abs(reference).max(1)).max()
        print(f"{name:<36} {count:>7} {seconds:>8.2f} {relative:>13.1e}")
    tight = f"tol {TIGHT_TOL:.0e}"
    best_sklearn = min(seconds for name, _, seconds, _ in rows if name.startswith("scikit") and tight in name)
    best_batched = min(seconds for name, _, seconds, _ in rows if name.startswith("fit_subsets"))
    speed_up = best_sklearn / best_batched
    print(f"speed-up of fit_subsets over the fastest {tight} scikit-learn loop: {speed_up:.1f}x")
    print("max rel. diff: max over subsets of ‖v − v_ref‖∞ / ‖v_ref‖∞, v_ref from the first row")


if __name__ == "__main__":
    main()
