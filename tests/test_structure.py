"""oracle_gain: a truth's own best grouping, scored on held-out replicates against random groups."""

import numpy as np
import pytest

from pgx.affinity import sample_subsets
from pgx.truth.structure import oracle_gain

N, K = 8, 2
GROUP = np.array([0, 0, 0, 0, 1, 1, 1, 1])


def _replicates(effect: float, noise: float, r: int = 6, seed: int = 0):
    """Scores where a task gains ``effect`` × the share of its subset in its own group, plus noise."""
    subsets = sample_subsets(N, 4, 40, seed)
    rng = np.random.default_rng(seed)
    scores = np.full((r, len(subsets), N), np.nan)
    for s, subset in enumerate(subsets):
        for i in subset:
            share = np.mean([GROUP[j] == GROUP[i] for j in subset if j != i])
            scores[:, s, i] = effect * share + noise * rng.standard_normal(r)
    return subsets, scores


def test_planted_structure_is_found_on_held_out_replicates():
    subsets, scores = _replicates(effect=1.0, noise=0.5)
    gain = oracle_gain(subsets, scores, N, K, seed=0, random_groupings=100)
    assert gain.above_noise and gain.z > 3 and gain.z_median > 3 and gain.z_min > 2 and gain.percentile > 0.95
    assert gain.oracle > gain.random_mean


def test_noise_has_nothing_to_find():
    # The oracle is chosen on one half: on pure noise it does not beat random groups on the other.
    zs = [oracle_gain(*_replicates(effect=0.0, noise=1.0, seed=s), N, K, seed=s, random_groupings=100).z
          for s in range(4)]
    assert abs(np.mean(zs)) < 1.0
    gain = oracle_gain(*_replicates(effect=0.0, noise=1.0, seed=0), N, K, random_groupings=100)
    assert not gain.above_noise


def test_weak_structure_grows_with_replicates():
    few = oracle_gain(*_replicates(effect=0.3, noise=1.0, r=2, seed=1), N, K, random_groupings=100)
    many = oracle_gain(*_replicates(effect=0.3, noise=1.0, r=16, seed=1), N, K, random_groupings=100)
    assert many.z > few.z


def test_bad_input_is_named():
    subsets, scores = _replicates(effect=1.0, noise=0.5)
    with pytest.raises(ValueError, match=r"replicate_scores must have shape \(r, 40, 8\)"):
        oracle_gain(subsets, scores[:, :5], N, K)
    with pytest.raises(ValueError, match="split-half reliability needs r >= 2"):
        oracle_gain(subsets, scores[:1], N, K)
    with pytest.raises(ValueError, match="random_groupings must be an integer >= 2, got 1"):
        oracle_gain(subsets, scores, N, K, random_groupings=1)


def test_strong_but_uneven_structure_counts():
    """A large spread of z over splits is not noise when every split clears the bar."""
    from pgx.truth.structure import OracleGain

    uneven = OracleGain(replicates=4, splits=3, oracle=1.0, random_mean=0.0, random_std=0.1, z=10.0, z_std=6.0,
                        z_median=9.0, z_min=4.0, percentile=1.0)
    assert uneven.above_noise
    assert not OracleGain(4, 3, 1.0, 0.0, 0.1, 3.0, 2.0, 3.0, -0.5, 0.8).above_noise  # one split below random
    assert not OracleGain(4, 3, 1.0, 0.0, 0.1, 2.5, 2.0, 1.5, 0.5, 0.8).above_noise  # median split below 2


def test_constant_truth_has_no_z():
    subsets, scores = _replicates(effect=0.0, noise=0.0)
    gain = oracle_gain(subsets, scores, N, K, random_groupings=20)
    assert np.isnan(gain.z) and not gain.above_noise


def test_budget_curves_along_replicates():
    from pgx.truth.curves import by_replicates

    subsets, scores = _replicates(effect=0.4, noise=1.0, r=12, seed=3)
    planted = np.where(GROUP[:, None] == GROUP[None, :], 1.0, -1.0)  # an estimate that knows the groups
    rows = by_replicates(subsets, scores, K, seed=0, estimate=planted, random_groupings=50)
    assert [row["replicates"] for row in rows] == list(range(2, 13))
    first, last = rows[0], rows[-1]
    # More replicates: a truth that agrees more with itself, and with the estimate that knows its groups.
    assert last["split-half off-diagonal r"] > first["split-half off-diagonal r"]
    assert last["NMI(estimate, truth)"] > first["NMI(estimate, truth)"] and last["NMI(estimate, truth)"] > 0.5
    assert "NMI(estimate, truth)" not in by_replicates(subsets, scores[:3], K)[0]
    with pytest.raises(ValueError, match="budget curves need r >= 2 replicates, got 1"):
        by_replicates(subsets, scores[:1], K)


def test_budget_curves_along_steps_and_episodes():
    """A truth whose signal grows with fine-tuning (snapshots) and whose noise shrinks with more
    evaluation episodes: both curves climb; each row is the truth at that budget."""
    from pgx.truth.curves import by_episodes, by_steps

    subsets, signal = _replicates(effect=1.0, noise=0.0, r=6, seed=4)
    rng = np.random.default_rng(5)
    noise = rng.standard_normal(signal.shape)
    by_snapshot = {steps: signal * weight + noise for steps, weight in ((4000, 1.0), (1000, 0.05), (2000, 0.3))}
    rows = by_steps(subsets, by_snapshot, K, seed=0, random_groupings=20)
    assert [row["steps"] for row in rows] == [1000, 2000, 4000]
    assert rows[-1]["split-half off-diagonal r"] > rows[0]["split-half off-diagonal r"]
    assert rows[-1]["oracle gain z (median split)"] > rows[0]["oracle gain z (median split)"]

    episodes = signal[..., None] + 1.5 * rng.standard_normal(signal.shape + (8,))
    rows = by_episodes(subsets, episodes[..., [0, 1, 2, 3]], K, seed=0, random_groupings=20)
    assert [row["episodes"] for row in rows] == [1, 2, 3, 4]
    assert rows[-1]["split-half off-diagonal r"] > rows[0]["split-half off-diagonal r"] + 0.2
    with pytest.raises(ValueError, match=r"episode_scores must have shape \(r, m, n_tasks, episodes\)"):
        by_episodes(subsets, signal, K)
