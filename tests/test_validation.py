import itertools

import numpy as np
import pytest

from pgx.truth.validation import (error_vs_num_subsets, exact_objective_scores, grouping_nmi, k_ablation,
                            per_task_spearman, random_nmi, relative_error)


def test_relative_error_by_hand_and_errors():
    truth = np.array([[0.0, 3.0], [3.0, 0.0]])
    estimate = np.array([[0.0, 2.0], [2.0, 0.0]])
    assert relative_error(estimate, truth) == pytest.approx(1 / 3)
    with pytest.raises(ValueError, match="shapes differ"):
        relative_error(estimate, np.zeros((3, 3)))
    with pytest.raises(ValueError, match="undefined"):
        relative_error(estimate, np.zeros((2, 2)))


def test_per_task_spearman_ranks_within_each_task():
    est = np.array([[1.0, np.nan], [2.0, 5.0], [3.0, 4.0], [4.0, 3.0]])
    true = np.array([[10.0, np.nan], [20.0, 1.0], [30.0, 2.0], [40.0, 3.0]])
    rho = per_task_spearman(est, true)
    assert rho[0] == pytest.approx(1.0) and rho[1] == pytest.approx(-1.0)
    flat = per_task_spearman(est, np.where(np.isnan(true), np.nan, 7.0))
    assert np.isnan(flat).all()


def _partitions(n: int, k: int) -> list[np.ndarray]:
    """Every partition of n tasks into exactly k non-empty groups, as canonical labels."""
    out = []
    for labels in itertools.product(range(k), repeat=n):
        firsts = [labels.index(g) for g in range(k) if g in labels]
        if len(firsts) == k and firsts == sorted(firsts):
            out.append(np.array(labels))
    return out


def test_nmi_identical_relabelled_and_random():
    a = np.array([0, 0, 1, 1, 2, 2])
    assert grouping_nmi(np.array([2, 2, 0, 0, 1, 1]), a) == pytest.approx(1.0)
    assert grouping_nmi(np.array([0, 1, 0, 1]), np.array([0, 0, 1, 1])) == pytest.approx(0.0)  # independent halves
    # Chance level by enumeration: random groupings are uniform over the S(6, 3) = 90 partitions.
    every = np.array([grouping_nmi(labels, a) for labels in _partitions(6, 3)])
    assert len(every) == 90
    chance = random_nmi(a, 3, range(500))
    assert chance.shape == (500,)
    assert abs(chance.mean() - every.mean()) < 4 * every.std() / np.sqrt(500)  # 0.477 exact; 0.7 SE off
    with pytest.raises(ValueError, match="equal length"):
        grouping_nmi(a, a[:3])


def test_exact_objective_scores_by_hand():
    adv = np.array([1.0, -2.0, 3.0, 4.0])
    tasks = np.array([0, 0, 1, 2])
    out = exact_objective_scores(np.log(np.array([2.0, 0.5, 1.0, 1.0])), adv, tasks, members=[0, 1], n_tasks=3)
    np.testing.assert_allclose(out[:2], [(2.0 - 1.0) / 2, 3.0])
    assert np.isnan(out[2])
    with pytest.raises(ValueError, match="task 3 has no held-out samples"):
        exact_objective_scores(np.zeros(4), adv, tasks, members=[3], n_tasks=4)


def test_k_ablation_recovers_planted_truth():
    blocks = np.kron(np.eye(3), np.ones((3, 3))) - 0.3
    rows = k_ablation(blocks + 0.01 * np.eye(9), blocks, ks=[3], seed=0)
    assert rows[0]["nmi"] == pytest.approx(1.0)
    assert rows[0]["true density, ours"] == pytest.approx(rows[0]["true density, truth's groups"])
    assert rows[0]["true density, random"] < rows[0]["true density, ours"]


def test_error_vs_num_subsets_reports_uncovered_pairs():
    subsets = [(0, 1), (1, 2), (0, 2), (0, 1, 2)]
    scores = np.array([[1.0, 2.0, np.nan], [np.nan, 1.0, 3.0], [2.0, np.nan, 1.0], [3.0, 3.0, 2.0]])
    truth = np.ones((3, 3))
    rows = error_vs_num_subsets(subsets, scores, truth, [1, 4])
    assert not rows[0]["all pairs covered"] and np.isnan(rows[0]["relative error"])
    # All four: z-scores ±c with c = sqrt(3/2) give T = c/4 on pairs (0, 1) and (1, 2), 0 elsewhere
    # (the diagonal too), so ‖T − 1‖_F² = 5 + 4 (1 − c/4)² against ‖1‖_F = 3.
    c = np.sqrt(1.5)
    assert rows[1]["all pairs covered"]
    assert rows[1]["relative error"] == pytest.approx(np.sqrt(5 + 4 * (1 - c / 4) ** 2) / 3, rel=1e-12)
    with pytest.raises(ValueError, match=r"number of subsets must be in \[1, 4\], got 5"):
        error_vs_num_subsets(subsets, scores, truth, [5])
