"""The low-rank SDP solver (pgx.sdp_lowrank) against cvxpy, its rounding, and the solver choice."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import normalized_mutual_info_score

from pgx import clustering
from pgx.clustering import CVXPY_MAX_TASKS, _round_factor, lambda_sweep, sdp_cluster, solve_sdp
from pgx.sdp_lowrank import LowRankConfig, solve_lowrank

PLANTED_TOL = 1e-4
"""Relative objective gap to cvxpy where the SDP's optimum is a partition (measured: below 1e-6)."""
RANDOM_GAP = 0.1
"""Largest relative shortfall allowed on affinities with no groups, where the SDP's optimum is not
completely positive and V ≥ 0 reaches only part of it (measured 0.2–6 % for n = 20–40)."""


def planted(n: int, k: int, noise: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """1 within a group, -0.2 across (as tests/test_clustering.py), plus symmetric noise of std ``noise``."""
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.arange(n) % k)
    noise_matrix = rng.normal(scale=noise, size=(n, n))
    same = labels[:, None] == labels[None, :]
    return np.where(same, 1.0, -0.2) + (noise_matrix + noise_matrix.T) / np.sqrt(2), labels


def gaussian(n: int, seed: int) -> np.ndarray:
    noise = np.random.default_rng(seed).normal(size=(n, n))
    return (noise + noise.T) / 2


def sdp_value(affinity: np.ndarray, X: np.ndarray, lam: float | None) -> float:
    return float(np.sum(affinity * X)) - (0.0 if lam is None else lam * float(np.trace(X)))


def assert_feasible(solution, k: int | None) -> None:
    X = solution.matrix()
    assert solution.factor.min() >= 0  # hence X ≥ 0
    np.testing.assert_allclose(X.sum(axis=1), 1.0, atol=1e-4)
    assert solution.row_sum_error == pytest.approx(np.abs(X.sum(axis=1) - 1).max())
    assert solution.trace == pytest.approx(np.trace(X))
    if k is not None:
        assert solution.trace == pytest.approx(k, rel=1e-4)
    assert np.linalg.eigvalsh(X).min() > -1e-9


# --- the same SDP as cvxpy ------------------------------------------------------------------


@pytest.mark.parametrize("n, k, lam", [(20, 2, None), (30, 3, None), (40, 4, None), (30, None, 1.0), (40, None, 0.5)])
def test_lowrank_reaches_cvxpy_optimum_on_planted_affinities(n, k, lam):
    groups = 4 if k is None else k
    affinity, truth = planted(n, groups, noise=0.1, seed=n)
    solution = solve_lowrank(affinity, k=k, lam=lam)
    reference = sdp_value(affinity, solve_sdp(affinity, k=k, lam=lam), lam)
    assert_feasible(solution, k)
    assert solution.objective == pytest.approx(reference, rel=PLANTED_TOL)
    assert solution.objective == pytest.approx(sdp_value(affinity, solution.matrix(), lam))
    labels = sdp_cluster(affinity, k=k, lam=lam, solver="lowrank")
    np.testing.assert_array_equal(labels, sdp_cluster(affinity, k=k, lam=lam, solver="cvxpy"))
    assert normalized_mutual_info_score(truth, labels) == 1.0


@pytest.mark.parametrize("n, k, lam, seed", [(20, 2, None, 1), (30, 3, None, 2), (40, 5, None, 3), (30, None, 1.0, 4)])
def test_lowrank_is_feasible_and_below_cvxpy_on_random_affinities(n, k, lam, seed):
    affinity = gaussian(n, seed)
    solution = solve_lowrank(affinity, k=k, lam=lam)
    reference = sdp_value(affinity, solve_sdp(affinity, k=k, lam=lam), lam)
    assert_feasible(solution, k)
    # Feasible for the SDP, so never above its optimum (up to both solvers' tolerances) ...
    assert solution.objective <= reference + 1e-4 * abs(reference)
    # ... and short of it only by the completely-positive restriction.
    assert solution.objective >= reference - RANDOM_GAP * abs(reference)


def test_shift_and_scale_of_the_affinity_leave_the_solution():
    # With rows summing to one, a T + b changes ⟨T, X⟩ by a·(·) + b·n only: same optimum.
    affinity, _ = planted(30, 3, noise=0.3, seed=0)
    base = solve_lowrank(affinity, k=3)
    moved = solve_lowrank(3.0 * affinity + 7.0, k=3)
    assert moved.objective == pytest.approx(3.0 * base.objective + 7.0 * 30, rel=1e-5)
    np.testing.assert_allclose(moved.matrix(), base.matrix(), atol=1e-3)


# --- at scale -------------------------------------------------------------------------------


def test_planted_recovery_at_300_tasks_uses_the_lowrank_solver(monkeypatch):
    affinity, truth = planted(300, 10, noise=1.0, seed=0)

    def no_cvxpy(*args, **kwargs):
        raise AssertionError("auto must not call cvxpy above CVXPY_MAX_TASKS")

    monkeypatch.setattr(clustering, "solve_sdp", no_cvxpy)
    labels = sdp_cluster(affinity, k=10)
    assert normalized_mutual_info_score(truth, labels) >= 0.9
    assert sorted(set(labels.tolist())) == list(range(10))


@pytest.mark.filterwarnings("error::RuntimeWarning")
def test_large_groups_converge_to_a_feasible_partition():
    # Groups of 400: the factor's entries (0.05) are far smaller than the objective's gradient
    # (~20), the case where an unscaled projected-gradient test stops L-BFGS-B before it moves.
    affinity, truth = planted(800, 2, noise=0.5, seed=0)
    solution = solve_lowrank(affinity, k=2)
    assert solution.row_sum_error <= LowRankConfig().tol
    assert solution.trace == pytest.approx(2.0, rel=LowRankConfig().tol)
    assert normalized_mutual_info_score(truth, _round_factor(solution.factor, 2, seed=0)) == 1.0


@pytest.mark.parametrize("n, expected", [(CVXPY_MAX_TASKS, "cvxpy"), (CVXPY_MAX_TASKS + 1, "lowrank")])
def test_auto_switches_solver_above_the_threshold(monkeypatch, n, expected):
    called = []

    class Called(Exception):
        pass

    def record(name):
        def solver(*args, **kwargs):
            called.append(name)
            raise Called

        return solver

    monkeypatch.setattr(clustering, "solve_sdp", record("cvxpy"))
    monkeypatch.setattr(clustering, "solve_lowrank", record("lowrank"))
    with pytest.raises(Called):
        sdp_cluster(np.eye(n), k=2)
    with pytest.raises(Called):
        lambda_sweep(np.eye(n), [1.0])
    assert called == [expected, expected]


def test_lambda_sweep_lowrank_follows_the_planted_groups():
    affinity, truth = planted(40, 4, noise=0.1, seed=1)
    sweep = lambda_sweep(affinity, [1.0, 100.0], solver="lowrank")
    assert [row["num_groups"] for row in sweep] == [4, 1]
    assert normalized_mutual_info_score(truth, sweep[0]["labels"]) == 1.0
    assert sweep[0]["trace"] == pytest.approx(4.0, abs=1e-3)


# --- rounding from the factor ---------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1])
def test_round_factor_recovers_an_exact_partition_and_matches_round_solution(seed):
    labels = np.array([0, 1, 2, 1, 0, 2, 2, 1, 2, 3])
    sizes = np.bincount(labels)
    V = np.zeros((10, 6))  # two spare columns, as the solver has
    V[np.arange(10), labels] = 1 / np.sqrt(sizes[labels])
    np.testing.assert_array_equal(_round_factor(V, 4, seed), labels)
    rng = np.random.default_rng(seed)
    V = rng.uniform(size=(10, 6))
    np.testing.assert_array_equal(_round_factor(V, 3, seed), clustering.round_solution(V @ V.T, 3, seed))


def test_round_factor_repair_moves_the_least_attached_tasks(monkeypatch):
    # As test_clustering's repair test, from the factor of the same X: tasks 0-3 one tight group
    # (X = 1/4 among them), task 4 alone (X = 1); k-means puts everything in group 0.
    class OneGroup:
        def __init__(self, n_clusters, n_init, random_state):
            pass

        def fit_predict(self, embedding):
            return np.zeros(len(embedding), dtype=np.int32)

    monkeypatch.setattr("pgx.clustering.KMeans", OneGroup)
    V = np.array([[0.5, 0.0]] * 4 + [[0.0, 1.0]])
    np.testing.assert_array_equal(_round_factor(V, 2, seed=0), [0, 0, 0, 0, 1])
    np.testing.assert_array_equal(_round_factor(V, 3, seed=0), [0, 1, 1, 1, 2])


@pytest.mark.parametrize("kind", ["equal_rows", "zeros", "rank_one_narrow"])
def test_round_factor_always_labels_every_task_with_exactly_k_groups(kind):
    n = 7
    V = {"equal_rows": np.ones((n, 3)), "zeros": np.zeros((n, 3)), "rank_one_narrow": np.ones((n, 1))}[kind]
    for k in range(1, n + 1):
        labels = _round_factor(V, k, seed=0)
        assert labels.shape == (n,) and labels.dtype == np.int64
        assert sorted(set(labels.tolist())) == list(range(k))
        first = [int(np.flatnonzero(labels == g)[0]) for g in range(k)]
        assert first == sorted(first)


# --- errors ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "affinity, kwargs, message",
    [
        (np.ones((3, 4)), {"k": 2}, r"affinity must be a square \(n, n\) matrix with n >= 1, got shape \(3, 4\)"),
        (np.array([[1.0, np.inf], [np.inf, 1.0]]), {"k": 1}, r"affinity must be finite, got inf at \(0, 1\)"),
        (np.array([[1.0, 0.5], [0.0, 1.0]]), {"k": 1}, r"affinity must be symmetric"),
        (np.eye(4), {"k": 0}, r"k must be an integer in \[1, 4\], got 0"),
        (np.eye(4), {"k": 5}, r"k must be an integer in \[1, 4\], got 5"),
        (np.eye(4), {"k": 2.0}, r"k must be an integer in \[1, 4\], got 2.0"),
        (np.eye(4), {}, r"give exactly one of k and lam, got k=None, lam=None"),
        (np.eye(4), {"k": 2, "lam": 1.0}, r"give exactly one of k and lam"),
        (np.eye(4), {"lam": -1.0}, r"lam must be a finite number >= 0, got -1.0"),
        (np.eye(4), {"lam": float("nan")}, r"lam must be a finite number >= 0, got nan"),
    ],
)
def test_bad_problems_are_refused(affinity, kwargs, message):
    with pytest.raises(ValueError, match=message):
        solve_lowrank(affinity, **kwargs)
    with pytest.raises(ValueError, match=message):
        sdp_cluster(affinity, solver="lowrank", **kwargs)


@pytest.mark.parametrize("solver", ["scs", "", None, 1])
def test_bad_solver_name_is_refused(solver):
    message = r"solver must be one of \('auto', 'cvxpy', 'lowrank'\), got "
    with pytest.raises(ValueError, match=message):
        sdp_cluster(np.eye(3), k=2, solver=solver)
    with pytest.raises(ValueError, match=message):
        lambda_sweep(np.eye(3), [1.0], solver=solver)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"rank": 0}, r"rank must be None or an integer >= 1, got 0"),
        ({"rank": 2.5}, r"rank must be None or an integer >= 1, got 2.5"),
        ({"tol": 0.0}, r"tol must be a number in \(0, 1\), got 0.0"),
        ({"stationarity": 1.5}, r"stationarity must be a number in \(0, 1\), got 1.5"),
        ({"max_iter": 0}, r"max_iter must be an integer >= 1, got 0"),
        ({"inner_iter": True}, r"inner_iter must be an integer >= 1, got True"),
    ],
)
def test_bad_config_is_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        LowRankConfig(**kwargs)


@pytest.mark.filterwarnings("error::RuntimeWarning")
def test_k_equal_to_n_returns_the_identity_at_once():
    # X ≥ 0, X·1 = 1 and tr X = n leave X = I as the only feasible point.
    affinity = gaussian(10, seed=0)
    solution = solve_lowrank(affinity, k=10)
    np.testing.assert_array_equal(solution.factor, np.eye(10))
    assert (solution.row_sum_error, solution.trace, solution.iterations) == (0.0, 10.0, 0)
    assert solution.objective == pytest.approx(np.trace(affinity))


@pytest.mark.filterwarnings("error::RuntimeWarning")
def test_auto_puts_every_task_alone_at_k_equal_to_n_above_the_cvxpy_threshold(monkeypatch):
    solutions = []

    def recorded(*args, **kwargs):
        solutions.append(solve_lowrank(*args, **kwargs))
        return solutions[-1]

    monkeypatch.setattr(clustering, "solve_lowrank", recorded)
    n = 150
    labels = sdp_cluster(gaussian(n, seed=1), k=n)
    np.testing.assert_array_equal(labels, np.arange(n))
    assert [s.iterations for s in solutions] == [0]  # the exact X = I, no augmented-Lagrangian iterations


@pytest.mark.parametrize("k, expected", [(None, "lowrank"), (75, "lowrank"), (76, "cvxpy"), (140, "cvxpy"),
                                         (149, "cvxpy"), (150, "lowrank")])
def test_auto_keeps_more_than_half_as_many_groups_as_tasks_on_cvxpy(monkeypatch, k, expected):
    called = []

    def record(name):
        def solver(*args, **kwargs):
            called.append(name)
            raise ZeroDivisionError  # stop before any work

        return solver

    monkeypatch.setattr(clustering, "solve_sdp", record("cvxpy"))
    monkeypatch.setattr(clustering, "solve_lowrank", record("lowrank"))
    with pytest.raises(ZeroDivisionError):
        sdp_cluster(np.eye(150), k=k, lam=1.0 if k is None else None)
    assert called == [expected]


def test_a_rank_below_k_is_refused():
    # tr X ≤ rank, so tr X = k could never be met: refused before any iteration.
    affinity, _ = planted(30, 6, noise=0.1, seed=0)
    with pytest.raises(ValueError, match=r"rank must be >= k=6, got 5"):
        solve_lowrank(affinity, k=6, cfg=LowRankConfig(rank=5))
    assert solve_lowrank(affinity, k=6, cfg=LowRankConfig(rank=6)).trace == pytest.approx(6, rel=1e-4)


def test_unconverged_solve_warns_with_its_residuals():
    affinity, _ = planted(30, 3, noise=0.3, seed=0)
    with pytest.warns(RuntimeWarning, match=r"stopped after max_iter=1 iterations with row-sum error"):
        solve_lowrank(affinity, k=3, cfg=LowRankConfig(max_iter=1, inner_iter=5))
