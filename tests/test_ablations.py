"""The ablations of the ground-truth chapter, run as stages on a tiny CartPole profile.

At the pipeline's own setting an ablation must reproduce the pipeline: the projection ablation's
row for the profile's d, and the subset-size ablation's row for the profile's subset size (its
two-replicate truth is the ground truth's, since the profile has r = 2 and common seeds), give
exactly the relative error and NMI of the first-order affinity against the ground truth. Another d
must give another estimate. Fine-tuning runs in this process (joblib's sequential backend), which
spares the worker start-up; tests/test_finetune.py checks that the parallel runs are the same.
The k ablation (``pgx.truth.validation.k_ablation``) is checked against hand values and the exact chance
level, enumerated over every partition.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from joblib import parallel_config

from pgx.clustering import sdp_cluster
from pgx.profiles import get_profile
from pgx.truth.reliability import split_half_reliability
from pgx.truth.validation import grouping_nmi, relative_error

SEED = 0


def _tiny_profile():
    """Smoke budgets cut down: two PPO iterations, one fine-tuning iteration per subset, 12 subsets of
    7 tasks (which cover every pair at seed 0)."""
    base = get_profile("smoke").for_family("cartpole")
    ppo = replace(base.meta_ppo, num_steps=32)
    return replace(base, meta_ppo=replace(ppo, total_timesteps=2 * ppo.batch_size(10)), steps_per_task=32,
                   eval_episodes=1, num_subsets=12, subset_size=7,
                   finetune_ppo=replace(base.finetune_ppo, total_timesteps=7 * 64, num_steps=64),
                   snapshot_steps=(7 * 64,), taylor_subsets=1, ablation_dims=(8, base.projection_dim),
                   ablation_subset_sizes=(7,))


@pytest.mark.slow
def test_ablations_reproduce_the_pipeline_at_its_own_settings(isolated_cache):
    import pgx.stages as stages  # rebound to the isolated cache by the fixture

    profile = _tiny_profile()
    assert profile.truth_replicates == 2
    k = profile.num_groups
    with parallel_config(backend="sequential"):
        truth = stages.ground_truth("cartpole", profile, SEED)
        estimate = stages.estimate_affinity("cartpole", profile, SEED).affinity
        by_dim = stages.projection_ablation("cartpole", profile, SEED)
        by_size = stages.subset_size_ablation("cartpole", profile, SEED, (7,))
    expected_error = relative_error(estimate, truth.objective_affinity)
    expected_nmi = grouping_nmi(sdp_cluster(estimate, k=k, seed=SEED),
                                sdp_cluster(truth.objective_affinity, k=k, seed=SEED))

    assert [row["d"] for row in by_dim] == [8, profile.projection_dim]
    assert by_dim[1]["relative error"] == expected_error and by_dim[1]["nmi"] == expected_nmi
    assert by_dim[0]["relative error"] != expected_error  # d = 8 projects differently

    [row] = by_size
    assert row["subset size"] == 7
    assert row["relative error"] == expected_error and row["nmi"] == expected_nmi
    reliability = split_half_reliability(truth.subsets, truth.replicate_objective, 10, k, seed=SEED, bootstrap=0)
    assert row["truth split-half nmi (1 vs 1 replicate)"] == reliability.nmi
    assert np.isfinite(expected_error) and expected_error > 0


def test_subset_size_ablation_refuses_sizes_that_cover_no_pair():
    from pgx import stages

    with pytest.raises(ValueError, match=r"subset sizes must be in \[2, 10\] so that pairs are covered, got \[1, 11\]"):
        stages.subset_size_ablation("cartpole", get_profile("smoke"), SEED, (1, 5, 11))


def test_k_ablation_against_hand_values_and_the_exact_chance_level():
    from pgx.clustering import average_density
    from pgx.truth.validation import k_ablation

    planted = np.array([0, 1, 0, 1, 1, 0])
    truth = np.where(planted[:, None] == planted[None, :], 1.0, -0.3)
    noise = np.random.default_rng(0).normal(scale=0.05, size=(6, 6))
    [row] = k_ablation(truth + (noise + noise.T) / 2, truth, ks=[2], seed=0, random_seeds=400)
    assert row["k"] == 2 and row["nmi"] == pytest.approx(1.0)
    # Two blocks of three with 1 inside: Σ_C (Σ_{i,j∈C} T_ij)/|C| = 2 · 9/3.
    assert row["true density, ours"] == pytest.approx(6.0) and row["true density, truth's groups"] == pytest.approx(6.0)
    # Chance: random 2-groupings are uniform over the S(6, 2) = 31 partitions; enumerate them.
    partitions = [np.array([0, *bits]) for bits in np.ndindex(*(2,) * 5) if any(bits)]
    assert len(partitions) == 31
    nmi = np.array([grouping_nmi(p, planted) for p in partitions])
    density = np.array([average_density(truth, p) for p in partitions])
    assert abs(row["random nmi"] - nmi.mean()) < 4 * nmi.std() / np.sqrt(400)
    assert abs(row["true density, random"] - density.mean()) < 4 * density.std() / np.sqrt(400)
