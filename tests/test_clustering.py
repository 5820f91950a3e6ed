from __future__ import annotations

import itertools
from collections import Counter

import numpy as np
import pytest

from pgx.clustering import (
    average_density,
    gradient_similarity,
    gradient_similarity_grouping,
    groups_from_labels,
    lambda_sweep,
    random_grouping,
    round_solution,
    sdp_cluster,
    solve_sdp,
)

# Nine tasks in three interleaved blocks, already in canonical order (first appearances 0, 1, 2).
PLANTED = np.array([0, 1, 0, 2, 1, 2, 0, 2, 1])


def planted_affinity(seed: int = 0, noise: float = 0.05) -> np.ndarray:
    """1 inside a block, -0.2 across blocks, plus small symmetric noise."""
    same = PLANTED[:, None] == PLANTED[None, :]
    noise_matrix = np.random.default_rng(seed).normal(scale=noise, size=same.shape)
    return np.where(same, 1.0, -0.2) + (noise_matrix + noise_matrix.T) / 2


def partition_matrix(labels: np.ndarray) -> np.ndarray:
    """X = Σ_C 1_C 1_Cᵀ / |C|, the SDP's encoding of a partition."""
    same = labels[:, None] == labels[None, :]
    return same / same.sum(axis=1, keepdims=True)


def assert_partition(labels: np.ndarray, n: int, k: int) -> None:
    """Every task labelled once, exactly k non-empty groups, labels in first-appearance order."""
    assert labels.shape == (n,)
    assert np.issubdtype(labels.dtype, np.integer)
    assert sorted(set(labels.tolist())) == list(range(k))
    first_appearance = [int(np.flatnonzero(labels == g)[0]) for g in range(k)]
    assert first_appearance == sorted(first_appearance)


# --- SDP ------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1])
def test_sdp_fixed_k_recovers_planted_partition(seed):
    affinity = planted_affinity(seed)
    X = solve_sdp(affinity, k=3)
    np.testing.assert_allclose(X, partition_matrix(PLANTED), atol=1e-3)
    np.testing.assert_array_equal(sdp_cluster(affinity, k=3, seed=seed), PLANTED)


def test_sdp_trace_penalty_recovers_planted_partition():
    # For this block model the partition objective density − λk favours the planted 3 groups for
    # 0 < λ < 3.6 (9 − 3λ against 1.8 − λ for one group and 9 − 9λ for singletons).
    affinity = planted_affinity()
    X = solve_sdp(affinity, lam=1.0)
    assert np.trace(X) == pytest.approx(3.0, abs=1e-3)
    np.testing.assert_allclose(X, partition_matrix(PLANTED), atol=1e-3)
    np.testing.assert_array_equal(sdp_cluster(affinity, lam=1.0), PLANTED)


def test_sdp_solution_is_feasible():
    rng = np.random.default_rng(5)
    noise = rng.normal(size=(7, 7))
    X = solve_sdp((noise + noise.T) / 2, k=2)
    np.testing.assert_allclose(X.sum(axis=1), 1.0, atol=1e-4)
    assert np.trace(X) == pytest.approx(2.0, abs=1e-4)
    assert X.min() > -1e-4
    assert np.linalg.eigvalsh(X).min() > -1e-4


def test_lambda_sweep_groups_shrink_as_lambda_grows():
    affinity = planted_affinity()
    sweep = lambda_sweep(affinity, [0.5, 2.0, 10.0])
    assert [row["lam"] for row in sweep] == [0.5, 2.0, 10.0]
    assert [row["num_groups"] for row in sweep] == [3, 3, 1]
    np.testing.assert_array_equal(sweep[0]["labels"], PLANTED)
    np.testing.assert_array_equal(sweep[2]["labels"], np.zeros(9, dtype=int))
    for row in sweep:
        assert row["trace"] == pytest.approx(row["num_groups"], abs=1e-3)
        assert row["density"] == pytest.approx(average_density(affinity, row["labels"]))


# --- rounding -------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 3])
def test_round_exact_block_diagonal_solution(seed):
    labels = np.array([0, 1, 2, 1, 0, 2, 2, 1, 2])  # groups of sizes 2, 3, 4
    np.testing.assert_array_equal(round_solution(partition_matrix(labels), 3, seed=seed), labels)


@pytest.mark.parametrize("n", [1, 4, 7])
@pytest.mark.parametrize("kind", ["identity", "all_equal", "zeros"])
def test_round_always_gives_exactly_k_groups(n, kind):
    X = {"identity": np.eye(n) / n, "all_equal": np.full((n, n), 1.0 / n), "zeros": np.zeros((n, n))}[kind]
    for k in range(1, n + 1):
        assert_partition(round_solution(X, k), n, k)


def test_round_repair_fills_empty_groups_with_least_attached_tasks(monkeypatch):
    # k-means is replaced by one that puts everything in group 0, so the repair must make the
    # groups. Tasks 0-3 are one tight group, task 4 hangs on by nothing: it leaves first; then the
    # four tied tasks give up their lowest index.
    class OneGroup:
        def __init__(self, n_clusters, n_init, random_state):
            self.n_clusters = n_clusters

        def fit_predict(self, embedding):
            assert embedding.shape[1] == self.n_clusters
            return np.zeros(len(embedding), dtype=np.int32)

    monkeypatch.setattr("pgx.clustering.KMeans", OneGroup)
    X = np.zeros((5, 5))
    X[:4, :4] = 0.25
    X[4, 4] = 1.0
    np.testing.assert_array_equal(round_solution(X, 2), [0, 0, 0, 0, 1])
    np.testing.assert_array_equal(round_solution(X, 3), [0, 1, 1, 1, 2])
    assert_partition(round_solution(X, 5), 5, 5)


# --- density, baselines, helpers ------------------------------------------------------------


def test_average_density_by_hand():
    affinity = np.array(
        [
            [1.0, 2.0, 0.0],
            [2.0, 3.0, 5.0],
            [0.0, 5.0, 4.0],
        ]
    )
    # Groups {0, 1} and {2}: (1 + 2 + 2 + 3)/2 + 4/1.
    assert average_density(affinity, np.array([0, 0, 1])) == pytest.approx(8.0)
    # One group: sum of all entries / 3.
    assert average_density(affinity, np.array([0, 0, 0])) == pytest.approx(22.0 / 3)


def test_planted_partition_has_highest_density_among_three_groupings():
    affinity = planted_affinity()
    planted = average_density(affinity, PLANTED)
    for seed in range(20):
        labels = random_grouping(9, 3, seed)
        if not np.array_equal(labels, PLANTED):
            assert average_density(affinity, labels) < planted


@pytest.mark.parametrize("n, k", [(1, 1), (6, 1), (6, 6), (10, 3), (30, 29)])
def test_random_grouping_is_a_partition_into_k_groups(n, k):
    for seed in range(5):
        assert_partition(random_grouping(n, k, seed), n, k)
    np.testing.assert_array_equal(random_grouping(n, k, 11), random_grouping(n, k, 11))


def test_random_grouping_is_uniform_over_partitions():
    # 4 tasks into 2 non-empty groups: S(4, 2) = 7 partitions, each with probability 1/7.
    draws = 7000
    counts = Counter(tuple(random_grouping(4, 2, seed).tolist()) for seed in range(draws))
    expected = {labels for labels in itertools.product([0, 1], repeat=4) if labels[0] == 0 and 1 in labels}
    assert set(counts) == expected
    # Standard deviation of each count is sqrt(7000 · 1/7 · 6/7) ≈ 29.
    assert all(abs(count - draws / 7) < 150 for count in counts.values())


def test_gradient_similarity_by_hand():
    gradients = np.array([[1.0, 0.0], [3.0, 4.0], [-2.0, 0.0]])
    expected = np.array(
        [
            [1.0, 0.6, -1.0],
            [0.6, 1.0, -0.6],
            [-1.0, -0.6, 1.0],
        ]
    )
    np.testing.assert_allclose(gradient_similarity(gradients), expected)


def test_gradient_similarity_grouping_groups_aligned_gradients():
    # Tasks 0, 2, 4 push along one random direction, tasks 1, 3, 5 along an orthogonal-ish other.
    rng = np.random.default_rng(0)
    directions = rng.normal(size=(2, 50))
    truth = np.array([0, 1, 0, 1, 0, 1])
    gradients = directions[truth] * rng.uniform(0.5, 5.0, size=(6, 1)) + 0.2 * rng.normal(size=(6, 50))
    np.testing.assert_array_equal(gradient_similarity_grouping(gradients, k=2), truth)


def test_groups_from_labels():
    assert groups_from_labels(np.array([0, 1, 0, 2, 1])) == [[0, 2], [1, 4], [3]]
    assert groups_from_labels(np.array([3, 3, 0])) == [[2], [0, 1]]


# --- errors ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"k": 0}, r"k must be an integer in \[1, 9\], got 0"),
        ({"k": 10}, r"k must be an integer in \[1, 9\], got 10"),
        ({"k": 2.0}, r"k must be an integer in \[1, 9\], got 2.0"),
        ({}, r"give exactly one of k and lam, got k=None, lam=None"),
        ({"k": 3, "lam": 1.0}, r"give exactly one of k and lam, got k=3, lam=1.0"),
        ({"lam": -0.5}, r"lam must be a finite number >= 0, got -0.5"),
        ({"lam": float("inf")}, r"lam must be a finite number >= 0, got inf"),
    ],
)
def test_solve_sdp_argument_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        solve_sdp(planted_affinity(), **kwargs)
    with pytest.raises(ValueError, match=message):
        sdp_cluster(planted_affinity(), **kwargs)


def test_solve_sdp_rejects_bad_affinity():
    affinity = planted_affinity()
    affinity[2, 5] = np.nan
    with pytest.raises(ValueError, match=r"affinity must be finite, got nan at \(2, 5\)"):
        solve_sdp(affinity, k=3)
    asymmetric = planted_affinity()
    asymmetric[1, 4] += 0.5
    with pytest.raises(ValueError, match=r"affinity must be symmetric .*T\[1, 4\] - T\[4, 1\]\| = 0.5"):
        sdp_cluster(asymmetric, k=3)
    with pytest.raises(ValueError, match=r"got shape \(9, 8\)"):
        solve_sdp(planted_affinity()[:, :8], lam=1.0)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: round_solution(np.eye(4) / 4, 0), r"k must be an integer in \[1, 4\], got 0"),
        (lambda: round_solution(np.eye(4) / 4, 5), r"k must be an integer in \[1, 4\], got 5"),
        (lambda: round_solution(np.triu(np.ones((3, 3))), 2), r"X must be symmetric"),
        (lambda: lambda_sweep(np.eye(3), []), r"lams must contain at least one value"),
        (lambda: lambda_sweep(np.eye(3), [1.0, -1.0]), r"lam must be a finite number >= 0, got -1.0"),
        (lambda: average_density(np.eye(3), np.array([0, 1])), r"one entry per task \(3\), got 2"),
        (lambda: average_density(np.eye(3), np.array([0, -1, 1])), r"labels must be >= 0, got -1"),
        (
            lambda: groups_from_labels(np.array([0.0, 1.0])),
            r"1-D integer array, got shape \(2,\) dtype float64",
        ),
        (lambda: random_grouping(0, 1, 0), r"n_tasks must be an integer >= 1, got 0"),
        (lambda: random_grouping(5, 6, 0), r"k must be an integer in \[1, 5\], got 6"),
        (lambda: gradient_similarity(np.array([[1.0, 0.0], [0.0, 0.0]])), r"gradient of task 1 is zero"),
        (
            lambda: gradient_similarity(np.array([[1.0, np.inf], [0.0, 1.0]])),
            r"gradient of task 0 has a non-finite entry",
        ),
        (lambda: gradient_similarity(np.ones(3)), r"shape \(n, d\) with n, d >= 1, got \(3,\)"),
        (lambda: gradient_similarity_grouping(np.eye(3), k=4), r"k must be an integer in \[1, 3\], got 4"),
    ],
)
def test_other_errors(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_groupings_are_the_three_every_caller_compares():
    """One definition of PolicyGradEx, random and gradient-similarity groups (issue 22: the CLI drew
    its random groups with another seed than Table 3)."""
    from pgx.clustering import GROUPINGS, RANDOM_SEED_OFFSET, groupings

    rng = np.random.default_rng(0)
    affinity = rng.normal(size=(6, 6))
    affinity = affinity + affinity.T
    gradients = rng.normal(size=(6, 4))
    seconds = {}
    found = groupings(affinity, gradients, 2, seed=3, seconds=seconds)
    assert tuple(found) == GROUPINGS and tuple(seconds) == GROUPINGS and min(seconds.values()) >= 0
    np.testing.assert_array_equal(found["PolicyGradEx"], sdp_cluster(affinity, k=2, seed=3))
    np.testing.assert_array_equal(found["random"], random_grouping(6, 2, 3 + RANDOM_SEED_OFFSET))
    np.testing.assert_array_equal(found["gradient similarity"], gradient_similarity_grouping(gradients, k=2, seed=3))
