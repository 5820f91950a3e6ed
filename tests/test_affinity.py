from __future__ import annotations

import math

import numpy as np
import pytest

from pgx.affinity import affinity_matrix, check_affinity, pair_counts, sample_subsets

NAN = float("nan")

# Three tasks, four subsets; NaN marks a task absent from the subset (its score is ignored).
SUBSETS = [(0, 1), (1, 2), (0, 2), (0, 1, 2)]
SCORES = np.array(
    [
        [1.0, 2.0, NAN],
        [NAN, 4.0, 3.0],
        [5.0, NAN, 6.0],
        [3.0, 0.0, 0.0],
    ]
)


# --- sample_subsets -------------------------------------------------------------------------


@pytest.mark.parametrize("n_tasks, size, count", [(10, 4, 30), (6, 3, 20), (5, 2, 10), (12, 1, 7)])
def test_sample_subsets_distinct_sorted_and_in_range(n_tasks, size, count):
    subsets = sample_subsets(n_tasks, size, count, seed=3)
    assert len(subsets) == count
    assert len(set(subsets)) == count
    for subset in subsets:
        assert isinstance(subset, tuple)
        assert len(subset) == size
        assert list(subset) == sorted(set(subset))
        assert all(isinstance(i, int) and 0 <= i < n_tasks for i in subset)


def test_sample_subsets_all_subsets_when_asked_for_all():
    subsets = sample_subsets(6, 3, math.comb(6, 3), seed=0)
    assert sorted(subsets) == sorted(
        (a, b, c) for a in range(6) for b in range(a + 1, 6) for c in range(b + 1, 6)
    )


@pytest.mark.parametrize("n_tasks, size, count", [(20, 5, 40), (6, 3, 15)])
def test_sample_subsets_deterministic_per_seed(n_tasks, size, count):
    assert sample_subsets(n_tasks, size, count, seed=7) == sample_subsets(n_tasks, size, count, seed=7)
    assert sample_subsets(n_tasks, size, count, seed=7) != sample_subsets(n_tasks, size, count, seed=8)


def test_sample_subsets_cover_tasks_evenly():
    # Uniform subsets of size 5 out of 10 contain each task with probability 1/2.
    subsets = sample_subsets(10, 5, 200, seed=0)
    frequency = pair_counts(subsets, 10).diagonal() / 200
    np.testing.assert_allclose(frequency, 0.5, atol=0.12)


@pytest.mark.parametrize(
    "args, message",
    [
        ((0, 1, 1), r"n_tasks must be an integer >= 1, got 0"),
        ((5, 0, 1), r"subset_size must be an integer in \[1, 5\], got 0"),
        ((5, 6, 1), r"subset_size must be an integer in \[1, 5\], got 6"),
        ((5, 2, 0), r"num_subsets must be an integer in \[1, C\(5, 2\) = 10\], got 0"),
        ((5, 2, 11), r"num_subsets must be an integer in \[1, C\(5, 2\) = 10\], got 11"),
    ],
)
def test_sample_subsets_errors(args, message):
    with pytest.raises(ValueError, match=message):
        sample_subsets(*args, seed=0)


# --- pair_counts ----------------------------------------------------------------------------


def test_pair_counts_by_hand():
    expected = np.array(
        [
            [3, 2, 2],  # task 0 is in subsets 0, 2, 3; with 1 in 0, 3; with 2 in 2, 3
            [2, 3, 2],
            [2, 2, 3],
        ]
    )
    np.testing.assert_array_equal(pair_counts(SUBSETS, 3), expected)
    lone_pair = [[1, 0, 1, 0], [0, 0, 0, 0], [1, 0, 1, 0], [0, 0, 0, 0]]
    np.testing.assert_array_equal(pair_counts([(0, 2)], 4), lone_pair)


# --- affinity_matrix ------------------------------------------------------------------------


def test_affinity_without_normalisation_by_hand():
    # T[0,1]: task 0 on subsets {0,1} and {0,1,2} scores 1 and 3 -> 2; T[1,0]: task 1 scores 2, 0 -> 1.
    # T[0,2]: task 0 on {0,2}, {0,1,2}: 5, 3 -> 4; T[2,0]: task 2: 6, 0 -> 3.
    # T[1,2]: task 1 on {1,2}, {0,1,2}: 4, 0 -> 2; T[2,1]: task 2: 3, 0 -> 1.5.
    # Diagonal: task 0 over its three subsets (1 + 5 + 3)/3, task 1 (2 + 4 + 0)/3, task 2 (3 + 6 + 0)/3.
    expected = np.array(
        [
            [3.0, 1.5, 3.5],
            [1.5, 2.0, 1.75],
            [3.5, 1.75, 3.0],
        ]
    )
    np.testing.assert_allclose(affinity_matrix(SUBSETS, SCORES, 3, normalize=False), expected)


def test_affinity_with_normalisation_by_hand():
    # Task 0 scores 1, 5, 3 on subsets 0, 2, 3: mean 3, population std sqrt(8/3) -> z = -a, +a, 0.
    # Task 1 scores 2, 4, 0 on subsets 0, 1, 3: mean 2, std sqrt(8/3) -> z = 0, +a, -a.
    # Task 2 scores 3, 6, 0 on subsets 1, 2, 3: mean 3, std sqrt(6) -> z = 0, +b, -b.
    a = 2 / math.sqrt(8 / 3)
    b = 3 / math.sqrt(6)
    # T[0,1] = mean(-a, 0) and T[1,0] = mean(0, -a); T[0,2] = mean(a, 0), T[2,0] = mean(b, -b);
    # T[1,2] = mean(a, -a), T[2,1] = mean(0, -b). Each z-score has mean 0, hence the zero diagonal.
    expected = np.array(
        [
            [0.0, -a / 2, a / 4],
            [-a / 2, 0.0, -b / 4],
            [a / 4, -b / 4, 0.0],
        ]
    )
    np.testing.assert_allclose(affinity_matrix(SUBSETS, SCORES, 3), expected, atol=1e-12)


def test_affinity_normalisation_removes_task_scale():
    # Rescaling and shifting one task's scores changes nothing after z-normalisation
    # (the std floor, 1e-3 of the median task's std, does not bind here).
    rng = np.random.default_rng(0)
    subsets = sample_subsets(6, 3, 20, seed=1)
    scores = rng.normal(size=(20, 6))
    rescaled = scores.copy()
    rescaled[:, 2] = 1000.0 * rescaled[:, 2] - 50.0
    np.testing.assert_allclose(
        affinity_matrix(subsets, rescaled, 6), affinity_matrix(subsets, scores, 6), atol=1e-12
    )
    raw_rescaled = affinity_matrix(subsets, rescaled, 6, normalize=False)
    assert not np.allclose(raw_rescaled, affinity_matrix(subsets, scores, 6, normalize=False))


def _eq5_by_definition(subsets, scores: np.ndarray, n: int, normalize: bool) -> np.ndarray:
    """Eq. (5) written out with loops: each task's scores over its subsets (z-scored with the
    population std when ``normalize``), averaged over the subsets shared with each partner, then
    symmetrised."""
    own = {i: [s for s, subset in enumerate(subsets) if i in subset] for i in range(n)}
    value = {}
    for i, mine in own.items():
        x = np.array([scores[s, i] for s in mine])
        z = (x - x.mean()) / x.std() if normalize else x
        value.update({(s, i): float(v) for s, v in zip(mine, z)})
    raw = np.array([[np.mean([value[s, i] for s in own[i] if j in subsets[s]]) for j in range(n)] for i in range(n)])
    return (raw + raw.T) / 2


def test_affinity_follows_its_definition_and_ignores_absent_scores():
    rng = np.random.default_rng(2)
    subsets = sample_subsets(8, 4, 40, seed=2)
    scores = rng.normal(size=(40, 8))
    absent = np.ones((40, 8), dtype=bool)
    for s, subset in enumerate(subsets):
        absent[s, list(subset)] = False
    for normalize in (True, False):
        affinity = affinity_matrix(subsets, scores, 8, normalize=normalize)
        np.testing.assert_allclose(affinity, _eq5_by_definition(subsets, scores, 8, normalize), rtol=1e-12, atol=1e-12)
        garbage = np.where(absent, rng.normal(size=(40, 8)) * 1e6, scores)
        np.testing.assert_array_equal(affinity_matrix(subsets, garbage, 8, normalize=normalize), affinity)


def test_affinity_rewards_helpful_partners():
    # Task 0 scores 1 whenever task 1 is with it and 0 otherwise: T[0,1] must be the largest
    # off-diagonal affinity of task 0.
    subsets = sample_subsets(6, 3, 20, seed=4)
    scores = np.zeros((20, 6))
    for s, subset in enumerate(subsets):
        scores[s, 0] = 1.0 if 1 in subset else 0.0
    affinity = affinity_matrix(subsets, scores, 6, normalize=False)
    assert affinity[0, 1] == pytest.approx(0.5)  # (1 + T[1,0] = 0)/2
    assert np.argmax(affinity[0, 1:]) == 0


def _with_entry(scores: np.ndarray, s: int, i: int, value: float) -> np.ndarray:
    changed = scores.copy()
    changed[s, i] = value
    return changed


@pytest.mark.parametrize(
    "subsets, scores, n_tasks, message",
    [
        (
            SUBSETS,
            SCORES[:3],
            3,
            r"scores must have shape \(len\(subsets\), n_tasks\) = \(4, 3\), got \(3, 3\)",
        ),
        (SUBSETS, SCORES[:, :2], 3, r"= \(4, 3\), got \(4, 2\)"),
        ([(0, 1), (1, 3)], np.zeros((2, 3)), 3, r"subset 1 = \(1, 3\) has task index 3 outside \[0, 2\]"),
        ([(0, 1), (-1, 2)], np.zeros((2, 3)), 3, r"subset 1 = \(-1, 2\) has task index -1 outside"),
        ([(0, 1, 1), (0, 2)], np.zeros((2, 3)), 3, r"subset 0 = \(0, 1, 1\) repeats task 1"),
        (SUBSETS, _with_entry(SCORES, 3, 1, np.inf), 3, r"score of task 1 on subset 3 is inf"),
        (SUBSETS, _with_entry(SCORES, 1, 2, np.nan), 3, r"score of task 2 on subset 1 is nan"),
        (
            [(0, 1), (0, 2)],
            np.zeros((2, 4)),
            4,
            r"covered by no subset: \(0, 3\), \(1, 2\), \(1, 3\), \(2, 3\), \(3, 3\); "
            r".*sample more or larger subsets",
        ),
        (SUBSETS, SCORES, 0, r"n_tasks must be an integer >= 1, got 0"),
    ],
)
def test_affinity_errors(subsets, scores, n_tasks, message):
    with pytest.raises(ValueError, match=message):
        affinity_matrix(subsets, scores, n_tasks)


def test_affinity_uncovered_pairs_are_truncated():
    with pytest.raises(ValueError, match=r"\(0, 1\), .* and \d+ more; "):
        affinity_matrix([(0,)], np.zeros((1, 6)), 6)


# --- check_affinity -------------------------------------------------------------------------


def test_check_affinity_returns_float64():
    checked = check_affinity([[1, 2], [2, 1]])
    assert checked.dtype == np.float64
    np.testing.assert_array_equal(checked, [[1.0, 2.0], [2.0, 1.0]])
    check_affinity(np.array([[0.0, 1.0], [1.0 + 1e-10, 0.0]]))  # within atol


@pytest.mark.parametrize(
    "matrix, message",
    [
        (np.zeros((2, 3)), r"square \(n, n\) matrix with n >= 1, got shape \(2, 3\)"),
        (np.zeros(4), r"got shape \(4,\)"),
        (np.zeros((0, 0)), r"got shape \(0, 0\)"),
        (np.array([[0.0, 1.0], [1.0, np.nan]]), r"affinity must be finite, got nan at \(1, 1\)"),
        (
            np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.5], [0.0, 0.25, 0.0]]),
            r"symmetric \(atol=1e-08\), got \|T\[1, 2\] - T\[2, 1\]\| = 0.25",
        ),
        ([[0, 1], [1]], r"affinity must be a numeric \(n, n\) array, got list"),
    ],
)
def test_check_affinity_errors(matrix, message):
    with pytest.raises(ValueError, match=message):
        check_affinity(matrix)


def test_normalisation_is_scale_free_but_floors_near_constant_tasks():
    # First-order scores vary by ~1e-5 across subsets: an absolute +1e-3 on the std would erase them.
    rng = np.random.default_rng(3)
    subsets = sample_subsets(6, 3, 20, seed=2)
    scores = rng.normal(size=(20, 6))
    np.testing.assert_allclose(affinity_matrix(subsets, 1e-5 * scores, 6), affinity_matrix(subsets, scores, 6), atol=1e-9)
    # A task whose scores never vary contributes zeros; one that varies 1e-6 as much as the others
    # is floored at 1e-3 of the median std, so its z-scores stay below 1e-3 in size.
    flat = scores.copy()
    flat[:, 0] = 7.0
    flat[:, 1] = 1e-6 * scores[:, 1]
    T = affinity_matrix(subsets, flat, 6, normalize=True)
    T_zero = affinity_matrix(subsets, np.where(np.arange(6) < 2, 0.0, flat), 6, normalize=True)
    np.testing.assert_allclose(T, T_zero, atol=5e-3)
    assert np.isfinite(T).all()
