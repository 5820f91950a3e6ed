"""Grouping many tasks: the low-rank SDP solver against cvxpy, and Algorithm 1's fits for thousands of subsets.

1. :func:`run`: planted affinities (k groups of equal size, 1 within a group and -0.2 across, as
   tests/test_clustering.py, plus symmetric Gaussian noise of std ``noise``), grouped by the
   cvxpy + SCS SDP (``solve_sdp`` + ``round_solution``) and by the low-rank one (``solve_lowrank``
   + the factor rounding): what ``sdp_cluster(solver="cvxpy" | "lowrank")`` runs. Per n and
   solver: wall time of one call (after a tiny warm-up call), peak memory, NMI against the plant,
   the SDP objective ⟨T, X⟩; the low-rank rows add cvxpy's time over theirs and the objective's
   relative shortfall where cvxpy ran. :func:`time_exponent` fits seconds ∝ n^a.
2. :func:`surrogate_at_scale`: ``fit_subsets`` for m random subsets of ``subset_size`` of
   ``n_tasks`` tasks on synthetic features (bench_surrogate.py's model), as it is (two batched
   ``torch.linalg.solve_triangular`` calls per iteration) and as it was before issue 12 (one
   ``torch.cholesky_solve``, the same triangular solves, slower when batched); per m: seconds,
   peak memory, iterations, the share of the dense (m, N) × (N, d) products, the speed-up and
   whether V is bit-identical.

Every measurement runs in a fresh process (spawned), so its memory is its own: peak_mib is the
highest resident set size during the call above its size just before it, sampled every
millisecond by a thread (``_timing.peak_rss_above_start``). It includes C allocations (SCS, BLAS)
that tracemalloc cannot see.

From a chapter: ``sys.path.insert(0, "benchmarks"); from bench_grouping import run``. By hand:
``OMP_NUM_THREADS=1 python benchmarks/bench_grouping.py`` takes about 6 minutes on one core of a
shared machine: 1.5 for the grouping (cvxpy at n = 500: 20 s, low-rank at n = 2000: 17 s), 4.5 for
the surrogate (fit_subsets at m = 1000 as it is: 130 s, 3.9 GiB). ``--no-surrogate``: 1.5 minutes;
``--cvxpy-max-n 0 --no-surrogate``: 40 s.
"""

from __future__ import annotations

import argparse
import multiprocessing
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import pandas as pd
import torch
from sklearn.metrics import normalized_mutual_info_score

from _timing import peak_rss_above_start

from pgx.affinity import sample_subsets
from pgx.clustering import _round_factor, round_solution, solve_sdp
from pgx.sdp_lowrank import solve_lowrank
from pgx.surrogate import SurrogateConfig, fit_subsets


def planted_affinity(n: int, k: int, noise: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``(n, n)`` affinity and ``(n,)`` planted labels: 1 within a group, -0.2 across, plus noise."""
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.arange(n) % k)
    noise_matrix = rng.normal(scale=noise, size=(n, n))
    same = labels[:, None] == labels[None, :]
    return np.where(same, 1.0, -0.2) + (noise_matrix + noise_matrix.T) / np.sqrt(2), labels


def _in_fresh_process(function: Callable[..., dict], *args: object) -> dict:
    """``function(*args)`` in a new interpreter, so that its peak memory is its own (no earlier run's
    freed memory to reuse, no other run's peak to inherit)."""
    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(function, *args).result()


def _timed_with_peak(call: Callable[[], object]) -> tuple[object, float, float]:
    """``call()``'s result, wall seconds, and the peak resident MiB during the call above the
    process's size before it (``_timing.peak_rss_above_start``: sampled, not ``ru_maxrss``)."""
    return peak_rss_above_start(call)


def _group_with_cvxpy(affinity: np.ndarray, k: int, seed: int) -> tuple[np.ndarray, float]:
    X = solve_sdp(affinity, k=k)
    return round_solution(X, k, seed=seed), float(np.sum(affinity * X))


def _group_with_lowrank(affinity: np.ndarray, k: int, seed: int) -> tuple[np.ndarray, float]:
    solution = solve_lowrank(affinity, k=k, seed=seed)
    return _round_factor(solution.factor, k, seed=seed), solution.objective  # sdp_cluster's low-rank path


_GROUPERS = {"cvxpy": _group_with_cvxpy, "lowrank": _group_with_lowrank}


def _grouping_trial(solver: str, n: int, k: int, noise: float, seed: int) -> dict:
    group = _GROUPERS[solver]
    group(planted_affinity(20, 2, noise, seed)[0], 2, seed)  # first calls load and compile: not timed
    affinity, planted = planted_affinity(n, k, noise, seed + n)
    (labels, objective), seconds, peak_mib = _timed_with_peak(lambda: group(affinity, k, seed))
    return {"n": n, "k": k, "solver": solver, "seconds": seconds, "peak_mib": peak_mib,
            "nmi": normalized_mutual_info_score(planted, labels), "objective": objective}


def run(
    ns: Sequence[int] = (100, 200, 500, 1000, 2000),
    k: int = 10,
    noise: float = 0.5,
    cvxpy_max_n: int = 500,
    seed: int = 0,
) -> pd.DataFrame:
    """Time, memory and accuracy of both SDP solvers on planted affinities, one row per (n, solver),
    each measured in a fresh process.

    :param ns: numbers of tasks, each >= k.
    :param k: planted groups (fixed, so the groups grow with n).
    :param noise: std of the symmetric noise on each affinity entry.
    :param cvxpy_max_n: largest n given to cvxpy (0: none).
    :return: columns n, k, solver, seconds, peak_mib, nmi, objective, cvxpy_over_lowrank (cvxpy's
        seconds / low-rank's, low-rank rows only) and objective_gap ((cvxpy − low-rank)/|cvxpy|).
    """
    rows = []
    for n in ns:
        for solver in (["cvxpy"] if n <= cvxpy_max_n else []) + ["lowrank"]:
            rows.append(_in_fresh_process(_grouping_trial, solver, n, k, noise, seed))
            print(f"  n={n:5d} {solver:8s} {rows[-1]['seconds']:8.2f} s {rows[-1]['peak_mib']:8.1f} MiB  "
                  f"NMI {rows[-1]['nmi']:.3f}", flush=True)
    table = pd.DataFrame(rows)
    cvxpy = table[table.solver == "cvxpy"].set_index("n")
    lowrank = table.solver == "lowrank"
    cvxpy_seconds = table.loc[lowrank, "n"].map(cvxpy["seconds"])
    table.loc[lowrank, "cvxpy_over_lowrank"] = cvxpy_seconds / table.loc[lowrank, "seconds"]
    reference = table.loc[lowrank, "n"].map(cvxpy["objective"])
    table.loc[lowrank, "objective_gap"] = (reference - table.loc[lowrank, "objective"]) / reference.abs()
    return table


def time_exponent(table: pd.DataFrame, solver: str) -> float:
    """Least-squares a in seconds ∝ n^a over the solver's rows (NaN with fewer than two sizes)."""
    rows = table[table.solver == solver]
    if rows.n.nunique() < 2:
        return float("nan")
    return float(np.polyfit(np.log(rows.n), np.log(rows.seconds), 1)[0])


def surrogate_data(n_tasks: int, per_task: int, dim: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Features with a common mean direction and advantages that follow a per-task direction
    (bench_surrogate.py's model): ``(N, d)``, ``(N,)``, ``(N,)`` with N = n_tasks · per_task."""
    g = torch.Generator().manual_seed(seed)
    task_ids = torch.arange(n_tasks * per_task) % n_tasks
    features = torch.randn(len(task_ids), dim, generator=g) + torch.randn(dim, generator=g)
    directions = torch.randn(n_tasks, dim, generator=g)
    advantages = (features * directions[task_ids]).sum(1) / dim**0.5 + torch.randn(len(task_ids), generator=g)
    return features, advantages, task_ids


def _cholesky_solve(grad: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """What ``fit_subsets`` computed before issue 12: one ``torch.cholesky_solve``."""
    return torch.cholesky_solve(grad.unsqueeze(-1), factor).squeeze(-1)


def _surrogate_trial(m: int, n_tasks: int, per_task: int, dim: int, subset_size: int, seed: int, solve: str) -> dict:
    import pgx.surrogate as surrogate

    features, advantages, task_ids = surrogate_data(n_tasks, per_task, dim, seed)
    subsets = sample_subsets(n_tasks, subset_size, m, seed)
    original, iterations = surrogate._bound_solve, [0]

    def counting_solve(grad, factor):  # fit_subsets calls it once per iteration
        iterations[0] += 1
        return (original if solve == "solve_triangular" else _cholesky_solve)(grad, factor)

    surrogate._bound_solve = counting_solve
    try:
        V, seconds, peak_mib = _timed_with_peak(
            lambda: fit_subsets(features, advantages, task_ids, subsets, SurrogateConfig()))
    finally:
        surrogate._bound_solve = original
    x, weights = features.double(), torch.rand(m, len(task_ids), dtype=torch.float64)
    v = torch.randn(m, dim, dtype=torch.float64)
    start = time.perf_counter()
    (weights * torch.sigmoid(v @ x.T)) @ x  # one iteration's two dense products, as in fit_subsets
    product_s = time.perf_counter() - start
    return {"m": m, "n_tasks": n_tasks, "samples": len(task_ids), "dim": dim, "subset_size": subset_size,
            "solve": solve, "seconds": seconds, "peak_mib": peak_mib, "iterations": iterations[0],
            "product_share": iterations[0] * product_s / seconds, "V": V.numpy()}


def surrogate_at_scale(
    ms: Sequence[int] = (250, 500, 1000),
    n_tasks: int = 100,
    per_task: int = 50,
    dim: int = 400,
    subset_size: int = 5,
    seed: int = 0,
    solves: Sequence[str] = ("cholesky_solve", "solve_triangular"),
) -> pd.DataFrame:
    """``fit_subsets`` for m subsets at once, each m in a fresh process: as it is (two batched
    ``solve_triangular`` calls per iteration) and as it was before issue 12 (one ``cholesky_solve``).

    Memory grows as m·d²: about 3.9 GiB at m = 1000 and 7.5 GiB at m = 2000 for d = 400 (measured),
    so m = 5000 needs about 19 GiB as it is.

    :param solves: which of the two to run; speed_up and identical compare with the first.
    :return: one row per (m, solve): m, n_tasks, samples, dim, subset_size, solve, seconds,
        peak_mib, iterations, product_share (share of the time in the two dense (m, N) × (N, d)
        products of each iteration), speed_up (the first solve's seconds / this row's) and
        identical (V bit-identical to the first solve's V).
    """
    unknown = set(solves) - {"cholesky_solve", "solve_triangular"}
    if unknown or not solves:
        raise ValueError(f"solves must name 'cholesky_solve' and/or 'solve_triangular', got {tuple(solves)!r}")
    rows = []
    for m in ms:
        reference = None
        for solve in solves:
            row = _in_fresh_process(_surrogate_trial, m, n_tasks, per_task, dim, subset_size, seed, solve)
            V = row.pop("V")
            reference = (V, row["seconds"]) if reference is None else reference
            row["speed_up"] = reference[1] / row["seconds"]
            row["identical"] = bool(np.array_equal(V, reference[0]))
            rows.append(row)
            print(f"  m={m:5d} {solve:16s} {row['seconds']:8.2f} s {row['peak_mib']:8.1f} MiB  "
                  f"{row['iterations']} iterations", flush=True)
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ns", type=int, nargs="+", default=[100, 200, 500, 1000, 2000])
    parser.add_argument("--cvxpy-max-n", type=int, default=500, help="largest n for cvxpy (0: skip cvxpy)")
    parser.add_argument("--noise", type=float, default=0.5, help="std of the planted affinity's noise")
    parser.add_argument("--ms", type=int, nargs="+", default=[250, 500, 1000])
    parser.add_argument("--no-surrogate", action="store_true")
    args = parser.parse_args()
    print(f"numpy {np.__version__}, torch {torch.__version__} ({torch.get_num_threads()} threads)")
    table = run(ns=args.ns, noise=args.noise, cvxpy_max_n=args.cvxpy_max_n)
    with pd.option_context("display.width", 160, "display.float_format", "{:.4g}".format):
        print(table.to_string(index=False))
        for solver in ("cvxpy", "lowrank"):
            print(f"time ∝ n^{time_exponent(table, solver):.2f} for {solver}")
        if not args.no_surrogate:
            print(surrogate_at_scale(ms=args.ms).to_string(index=False))


if __name__ == "__main__":
    main()
