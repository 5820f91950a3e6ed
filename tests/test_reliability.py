"""The truth's noise ceiling (pgx.truth.reliability) and the offline exact truth (pgx.truth.exact)."""

import numpy as np
import pytest
import torch

from pgx.affinity import sample_subsets
from pgx.truth.exact import exact_fit_subsets
from pgx.gradients import GaussianProjector, log_prob_at, projected_grads
from pgx.nets.policies import ActorCritic
from pgx.truth.reliability import half_splits, spearman_brown, split_half_reliability
from pgx.surrogate import SurrogateConfig, fit_subsets, rescale
from pgx.truth.validation import offdiagonal_correlation

PLANTED = np.array([0, 0, 0, 1, 1, 1, 2, 2, 2])
SUBSETS = sample_subsets(9, 4, 60, seed=0)


def planted_scores(noise: float, r: int, seed: int = 0) -> np.ndarray:
    """``(r, m, n)``: a task scores high on a subset in proportion to how many of its own group are there."""
    rng = np.random.default_rng(seed)
    scores = np.full((r, len(SUBSETS), 9), np.nan)
    for s, subset in enumerate(SUBSETS):
        for i in subset:
            friends = sum(PLANTED[j] == PLANTED[i] for j in subset if j != i)
            scores[:, s, i] = friends + noise * rng.standard_normal(r)
    return scores


def test_offdiagonal_correlation():
    a = np.arange(16.0).reshape(4, 4)
    assert offdiagonal_correlation(a, 2 * a + 1) == pytest.approx(1)
    assert offdiagonal_correlation(a, -a) == pytest.approx(-1)
    assert np.isnan(offdiagonal_correlation(a, np.ones((4, 4))))
    with pytest.raises(ValueError, match=r"same shape, got \(4, 4\) and \(3, 3\)"):
        offdiagonal_correlation(a, np.ones((3, 3)))


def test_spearman_brown():
    assert spearman_brown(0.5) == pytest.approx(2 / 3)
    assert spearman_brown(0.5, factor=3) == pytest.approx(0.75)
    assert spearman_brown(1.0) == 1.0
    # No reliability to project: NaN, not a negative "reliability" (ρ = −0.8 would give −8).
    assert all(np.isnan(spearman_brown(rho)) for rho in (0.0, -0.1, -0.8, float("nan")))
    with pytest.raises(ValueError, match="factor must be > 0, got 0"):
        spearman_brown(0.5, factor=0)


def test_half_splits_are_balanced_disjoint_and_counted_once():
    splits = half_splits(4)
    assert len(splits) == 3
    for first, second in splits:
        assert len(first) == len(second) == 2 and not set(first) & set(second) and 0 in first
    odd = half_splits(5, max_splits=100)
    assert len(odd) == 15 and all(len(a) == len(b) == 2 and not set(a) & set(b) for a, b in odd)
    left_out = [({0, 1, 2, 3, 4} - set(a) - set(b)).pop() for a, b in odd]
    assert sorted(set(left_out)) == [0, 1, 2, 3, 4] and len(set(left_out.count(j) for j in range(5))) == 1
    assert len(half_splits(12, max_splits=7)) == 7
    with pytest.raises(ValueError, match="needs r >= 2 replicates, got 1"):
        half_splits(1)


def test_a_noiseless_truth_is_perfectly_reliable_and_recovers_the_plant():
    rel = split_half_reliability(SUBSETS, planted_scores(0.0, 4), 9, k=3, bootstrap=5)
    assert rel.nmi == pytest.approx(1) and rel.offdiagonal == pytest.approx(1) and rel.full_nmi == pytest.approx(1)
    assert rel.replicates == 4 and rel.splits == 3


def test_reliability_falls_with_noise_and_rises_with_replicates():
    quiet = split_half_reliability(SUBSETS, planted_scores(0.5, 4), 9, k=3, bootstrap=0)
    loud = split_half_reliability(SUBSETS, planted_scores(5.0, 4), 9, k=3, bootstrap=0)
    pure_noise = split_half_reliability(SUBSETS, planted_scores(1e6, 4), 9, k=3, bootstrap=0)
    assert quiet.offdiagonal > loud.offdiagonal > pure_noise.offdiagonal
    assert abs(pure_noise.offdiagonal) < 0.5 and quiet.nmi > pure_noise.nmi
    many = split_half_reliability(SUBSETS, planted_scores(5.0, 16), 9, k=3, bootstrap=0)
    assert many.offdiagonal > loud.offdiagonal
    # Spearman–Brown: the full truth is more reliable than a half whenever a half is positively reliable.
    assert quiet.full_offdiagonal > quiet.offdiagonal > 0


def test_reliability_rejects_bad_shapes():
    with pytest.raises(ValueError, match=r"replicate_scores must have shape \(r, 60, 9\)"):
        split_half_reliability(SUBSETS, np.zeros((4, 60, 8)), 9, k=3)
    with pytest.raises(ValueError, match="needs r >= 2 replicates, got 1"):
        split_half_reliability(SUBSETS, planted_scores(0.0, 1), 9, k=3)


# --- the offline exact truth ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def problem():
    torch.manual_seed(0)
    agent = ActorCritic(6, 3)
    n = 1200
    obs, actions = torch.randn(n, 6), torch.randint(0, 3, (n,))
    advantages, task_ids = torch.randn(n), torch.arange(n) % 4
    projector = GaussianProjector.for_module(agent.actor, 24, seed=0)
    features = projected_grads(agent.actor, obs, actions, projector)
    return agent.actor, obs, actions, features, advantages, task_ids, projector


def _exact_loss(actor, obs, actions, advantages, mask, projector, v, l2):
    theta = torch.cat([p.detach().reshape(-1) for p in actor.parameters()])
    delta = projector.lift(v[None].float())[0]
    params, offset = {}, 0
    for name, p in actor.named_parameters():
        params[name] = (theta[offset: offset + p.numel()] + delta[offset: offset + p.numel()]).view_as(p)
        offset += p.numel()
    with torch.no_grad():
        ratio = (log_prob_at(actor, params, obs[mask], actions[mask]) - actor.log_prob(obs[mask], actions[mask])).double()
    y = torch.where(advantages[mask] > 0, 1.0, -1.0).double()
    w = advantages[mask].double().abs()
    return float((w * torch.nn.functional.softplus(-y * ratio)).sum() / w.sum() + l2 * v.double().square().sum())


def test_exact_fit_matches_the_surrogate_where_the_network_is_linear(problem):
    """With a strong penalty the step is tiny, log π is linear along it, and both problems coincide."""
    actor, obs, actions, features, advantages, task_ids, projector = problem
    cfg = SurrogateConfig(l2=100.0)
    subsets = [(0, 1), (1, 2, 3)]
    linear = fit_subsets(features, advantages, task_ids, subsets, cfg)
    exact = exact_fit_subsets(actor, obs, actions, features, advantages, task_ids, subsets, projector, cfg)
    assert all(exact.converged)
    relative = (exact.V - linear).norm(dim=1) / linear.norm(dim=1)
    assert float(relative.max()) < 1e-2


def test_exact_fit_on_the_trust_region_sphere(problem):
    """With a relative distance, every solution lies on the sphere and beats the surrogate's step there."""
    actor, obs, actions, features, advantages, task_ids, projector = problem
    cfg = SurrogateConfig(l2=1e-2, relative_distance=0.05)
    subsets = [(0, 1), (2, 3)]
    theta_norm = float(torch.cat([p.detach().reshape(-1) for p in actor.parameters()]).norm())
    start = rescale(fit_subsets(features, advantages, task_ids, subsets, cfg), projector, theta_norm, 0.05)
    exact = exact_fit_subsets(actor, obs, actions, features, advantages, task_ids, subsets, projector, cfg, start=start)
    np.testing.assert_allclose(projector.lift_norms(exact.V.double()) / theta_norm, 0.05, rtol=1e-4)
    for k, subset in enumerate(subsets):
        mask = torch.isin(task_ids, torch.tensor(subset))
        ours = _exact_loss(actor, obs, actions, advantages, mask, projector, exact.V[k], cfg.l2)
        surrogate = _exact_loss(actor, obs, actions, advantages, mask, projector, start[k], cfg.l2)
        assert ours <= surrogate + 1e-9
    again = exact_fit_subsets(actor, obs, actions, features, advantages, task_ids, subsets, projector, cfg, start=start)
    assert torch.equal(again.V, exact.V), "the exact truth is deterministic"


def test_exact_fit_rejects_bad_input(problem):
    actor, obs, actions, features, advantages, task_ids, projector = problem
    with pytest.raises(ValueError, match="start .* is required"):
        exact_fit_subsets(actor, obs, actions, features, advantages, task_ids, [(0, 1)], projector,
                          SurrogateConfig(relative_distance=0.01))
    with pytest.raises(ValueError, match="same number of samples, got 1199, 1200 and 1200"):
        exact_fit_subsets(actor, obs[1:], actions, features, advantages, task_ids, [(0, 1)], projector)
    with pytest.raises(ValueError, match="names task 7, which has no samples"):
        exact_fit_subsets(actor, obs, actions, features, advantages, task_ids, [(0, 7)], projector)
    with pytest.raises(ValueError, match="max_iter must be an integer >= 1, got 0"):
        exact_fit_subsets(actor, obs, actions, features, advantages, task_ids, [(0, 1)], projector, max_iter=0)


@pytest.mark.parametrize("field, value, message", [
    ("truth_replicates", 1, "truth_replicates must be an integer >= 2 .* got 1"),
    ("truth_episodes", 0, "truth_episodes must be an integer >= 1, got 0"),
    ("table1_distances", (0.01, 2.0), r"table1_distances must be non-empty, each in \(0, 1\), got \(0.01, 2.0\)"),
])
def test_profile_rejects_bad_truth_budgets(field, value, message):
    from dataclasses import replace

    from pgx.profiles import get_profile

    with pytest.raises(ValueError, match=message):
        replace(get_profile("smoke"), **{field: value})
