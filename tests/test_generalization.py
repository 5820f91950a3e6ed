"""Generalization measurements of ``pgx.generalization`` and the input checks of its stage.

Oracles: the closed form of the policy-gradient loss at θ' = θ (−mean Â), the dense Hessian of a
tiny actor's loss from ``torch.autograd.functional.hessian`` in float64, and hand-computed
standardised losses.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from pgx import stages
from pgx.envs import make_family
from pgx.generalization import (
    GeneralizationConfig,
    Measurement,
    compare_trace_estimators,
    largest_group,
    measure,
    policy_gradient_hvp,
    policy_gradient_loss,
    source_samples,
    standardise_advantages,
    target_samples,
)
from pgx.gradients import log_prob_at
from pgx.hessian import flatten, generalization_bound
from pgx.nets.policies import Actor, ActorCritic, CategoricalActor, PolicyConfig
from pgx.profiles import get_profile
from pgx.algos.rollouts import Samples

F64 = torch.float64
OBS_DIM, NUM_ACTIONS, BATCH = 3, 3, 12
TINY = PolicyConfig(hidden=4, layers=2)

# torch loads its forward-mode decompositions with torch.jit.script on the first jvp and warns.
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")


def _actor() -> Actor:
    with torch.random.fork_rng():
        torch.manual_seed(0)
        actor = CategoricalActor(OBS_DIM, NUM_ACTIONS, TINY).double()
        # Larger output weights than PPO's 0.01 init, so π is far from uniform and H is not tiny.
        torch.nn.init.normal_(actor.net[-1].weight, std=1.0)
    return actor


def _batch(seed: int = 1, n: int = BATCH) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    obs = torch.randn(n, OBS_DIM, generator=g, dtype=F64)
    actions = torch.randint(0, NUM_ACTIONS, (n,), generator=g)
    advantages = torch.randn(n, generator=g, dtype=F64)
    return obs, actions, advantages


def _samples(obs: torch.Tensor, actions: torch.Tensor, advantages: torch.Tensor) -> Samples:
    return Samples(obs=obs, actions=actions, advantages=advantages, task_ids=torch.zeros_like(actions))


def _dense_hessian(actor: Actor, loss_of_log_probs, obs: torch.Tensor | None = None,
                   actions: torch.Tensor | None = None) -> torch.Tensor:
    """``(dim, dim)`` Hessian of ``loss_of_log_probs(actor.log_prob(obs, actions))`` over the flattened
    parameters (default: ``OBS``, ``ACTIONS``)."""
    names = [name for name, _ in actor.named_parameters()]
    values = tuple(p.detach() for p in actor.parameters())
    obs, actions = (OBS, ACTIONS) if obs is None else (obs, actions)

    def loss_of_tuple(*tensors: torch.Tensor) -> torch.Tensor:
        return loss_of_log_probs(log_prob_at(actor, dict(zip(names, tensors)), obs, actions))

    blocks = torch.autograd.functional.hessian(loss_of_tuple, values)
    sizes = [v.numel() for v in values]
    return torch.cat([torch.cat([blocks[i][j].reshape(sizes[i], sizes[j]) for j in range(len(sizes))], dim=1)
                      for i in range(len(sizes))])


OBS, ACTIONS, ADVANTAGES = _batch()
SMALL = GeneralizationConfig(iterations=2, snapshots=1, steps_per_task=8, num_target_tasks=2, trace_matvecs=20,
                             lanczos_steps=10, estimator_budgets=(3, 6), estimator_seeds=2, reference_matvecs=20)


# --- the loss and its Hessian ---------------------------------------------------------------------


def test_loss_at_the_sampling_policy_is_minus_the_mean_advantage():
    actor = _actor()
    with torch.no_grad():
        log_probs = actor.log_prob(OBS, ACTIONS)
        loss = policy_gradient_loss(log_probs, ADVANTAGES, log_probs)
    assert loss.item() == pytest.approx(-ADVANTAGES.mean().item(), abs=1e-12)


def test_loss_gradient_at_the_sampling_policy_is_the_policy_gradient():
    # ∇ of the ratio at θ' = θ is ∇ log π: the gradient is −mean Â ∇ log π (REINFORCE with Â).
    actor = _actor()
    sampling = actor.log_prob(OBS, ACTIONS).detach()
    ratio_grad = torch.autograd.grad(policy_gradient_loss(actor.log_prob(OBS, ACTIONS), ADVANTAGES, sampling),
                                     list(actor.parameters()))
    log_grad = torch.autograd.grad(-(ADVANTAGES * actor.log_prob(OBS, ACTIONS)).mean(), list(actor.parameters()))
    for a, b in zip(ratio_grad, log_grad):
        torch.testing.assert_close(a, b)


def test_hessian_vector_product_matches_the_dense_hessian():
    actor = _actor()
    sampling = actor.log_prob(OBS, ACTIONS).detach()
    dense = _dense_hessian(actor, lambda log_probs: policy_gradient_loss(log_probs, ADVANTAGES, sampling))
    hvp = policy_gradient_hvp(actor, OBS, ACTIONS, ADVANTAGES)
    assert hvp.dim == dense.shape[0] and hvp.dtype == F64
    matrix = torch.stack([hvp(e) for e in torch.eye(hvp.dim, dtype=F64)], dim=1)
    torch.testing.assert_close(matrix, dense, rtol=1e-9, atol=1e-11)
    assert dense.abs().max() > 1e-2  # a non-trivial H, so agreement means something
    # The ratio's Hessian is not that of −mean Â log π: it adds mean Â ∇log π ∇log πᵀ.
    log_form = _dense_hessian(actor, lambda log_probs: -(ADVANTAGES * log_probs).mean())
    assert (dense - log_form).abs().max() > 1e-3


def test_hessian_vector_product_leaves_the_actor_unchanged():
    actor = _actor()
    before = flatten(dict(actor.named_parameters())).clone()
    hvp = policy_gradient_hvp(actor, OBS, ACTIONS, ADVANTAGES)
    hvp(torch.ones(hvp.dim, dtype=F64))
    torch.testing.assert_close(flatten(dict(actor.named_parameters())), before, rtol=0, atol=0)


# --- standardisation, generalization error and the bound ------------------------------------------


def test_standardisation_uses_the_train_statistics_for_both_sets():
    train, test = standardise_advantages(torch.tensor([1.0, 2.0, 3.0], dtype=F64), torch.tensor([0.0, 4.0], dtype=F64))
    torch.testing.assert_close(train, torch.tensor([-1.0, 0.0, 1.0], dtype=F64))  # mean 2, unbiased std 1
    torch.testing.assert_close(test, torch.tensor([-2.0, 2.0], dtype=F64))


def test_generalization_error_on_a_hand_case():
    # Train Â = [1, 2, 3] → Ã = [−1, 0, 1]: L_train = 0 and C = 1 − (−1) = 2.
    # Test Â = [0, 0, 0, 0] → Ã = −2: L_test = 2, so the policy does worse on the targets: error +2.
    actor = _actor()
    obs, actions, _ = _batch(seed=2, n=7)
    train = _samples(obs[:3], actions[:3], torch.tensor([1.0, 2.0, 3.0], dtype=F64))
    test = _samples(obs[3:], actions[3:], torch.zeros(4, dtype=F64))
    at_init = {k: p.detach().clone() for k, p in actor.named_parameters()}
    result = measure(actor, at_init, train, test, SMALL, seed=0)
    assert result.train_loss == pytest.approx(0.0, abs=1e-12)
    assert result.test_loss == pytest.approx(2.0)
    assert result.generalization_error == pytest.approx(2.0)
    assert result.loss_range == pytest.approx(2.0)
    assert (result.num_train_samples, result.num_test_samples) == (3, 4)
    # Not moved from θ⁰: the bound is 0 and fails to cover the error.
    assert result.distance_sq == 0.0 and result.bound == 0.0
    assert not result.bound_holds and result.bound_below_range and not result.non_vacuous

    # A test set better than the train set gives a negative error.
    better = _samples(obs[3:], actions[3:], torch.full((4,), 3.0, dtype=F64))
    assert measure(actor, at_init, train, better, SMALL, seed=0).generalization_error == pytest.approx(-1.0)


def test_bound_uses_the_distance_from_the_initialisation():
    actor = _actor()
    obs, actions, _ = _batch(seed=3, n=7)
    train = _samples(obs[:3], actions[:3], torch.tensor([1.0, 2.0, 3.0], dtype=F64))
    test = _samples(obs[3:], actions[3:], torch.zeros(4, dtype=F64))
    moved = {k: p.detach() + 0.5 for k, p in actor.named_parameters()}
    result = measure(actor, moved, train, test, SMALL, seed=0)
    dim = sum(p.numel() for p in actor.parameters())
    assert result.distance_sq == pytest.approx(0.25 * dim)
    assert result.bound == pytest.approx(generalization_bound(result.trace, 0.25 * dim, 2.0, 3))
    # The trace is tr H⁺ of the train loss at θ (train Ã = [−1, 0, 1]): against the dense Hessian's
    # positive eigenvalues (0.886 here; tr H is −0.12), with as many Lanczos steps as parameters, so
    # only probe noise remains (20 probes, standard error 0.15; 0.8 of it off, measured).
    sampling = actor.log_prob(obs[:3], actions[:3]).detach()
    train_adv = torch.tensor([-1.0, 0.0, 1.0], dtype=F64)
    dense = _dense_hessian(actor, lambda log_probs: policy_gradient_loss(log_probs, train_adv, sampling), obs[:3],
                           actions[:3])
    exact = float(torch.linalg.eigvalsh(dense).clamp_min(0).sum())
    precise = measure(actor, moved, train, test, replace(SMALL, trace_matvecs=20 * dim, lanczos_steps=dim), seed=0)
    assert abs(precise.trace - exact) < 4 * precise.trace_std_error
    row = result.as_row()
    assert row["bound holds"] == (result.bound >= 2.0) and row["non-vacuous"] == result.non_vacuous


def test_verdicts_of_a_measurement():
    base = Measurement(train_loss=0.0, test_loss=0.5, generalization_error=0.5, trace=1.0, trace_std_error=0.1,
                       distance_sq=1.0, loss_range=4.0, num_train_samples=10, num_test_samples=10, bound=1.0)
    assert base.bound_holds and base.bound_below_range and base.non_vacuous
    assert not replace(base, bound=0.4).bound_holds
    assert not replace(base, bound=4.0).bound_below_range and not replace(base, bound=4.0).non_vacuous


# --- samples from the family -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def cartpole_agent() -> tuple:
    family = make_family("cartpole")
    with torch.random.fork_rng():
        torch.manual_seed(0)
        agent = ActorCritic(family.obs_dim, family.num_actions, TINY)
    return family, agent


def test_target_samples_come_from_the_asked_targets(cartpole_agent):
    family, agent = cartpole_agent
    samples = target_samples(agent, family, [0, 49], steps_per_task=16, seed=0, gamma=0.99, gae_lambda=0.95)
    assert set(samples.task_ids.tolist()) <= {0, 49}
    assert samples.obs.shape[1] == family.obs_dim and samples.obs.shape[0] == samples.advantages.shape[0] > 0
    assert torch.isfinite(samples.advantages).all()
    assert samples.obs[:, family.base_obs_dim:].abs().sum() == 0  # targets show no source one-hot


def test_source_samples_keep_only_the_training_tasks(cartpole_agent):
    family, agent = cartpole_agent
    samples = source_samples(agent, family, [2, 5], steps_per_task=16, seed=0, gamma=0.99, gae_lambda=0.95)
    assert set(samples.task_ids.tolist()) == {2, 5}


def test_estimator_comparison_reports_every_estimator_and_budget():
    actor = _actor()
    hvp = policy_gradient_hvp(actor, OBS, ACTIONS, ADVANTAGES)
    result = compare_trace_estimators(hvp, (3, 6), num_seeds=3, reference_matvecs=50, seed=0)
    assert [(r["estimator"], r["matvecs"]) for r in result.rows] == [
        ("Hutchinson", 3), ("Hutchinson", 6), ("Hutch++", 3), ("Hutch++", 6)]
    sampling = actor.log_prob(OBS, ACTIONS).detach()
    dense = _dense_hessian(actor, lambda log_probs: policy_gradient_loss(log_probs, ADVANTAGES, sampling))
    eigenvalues = torch.linalg.eigvalsh(dense)
    # 60 Lanczos steps on 31 parameters: the extreme eigenvalues are exact.
    assert result.top_eigenvalue == pytest.approx(float(eigenvalues.max()), rel=1e-9)
    assert result.bottom_eigenvalue == pytest.approx(float(eigenvalues.min()), rel=1e-9)
    # The reference is Hutchinson's unbiased tr H (3.30 dense; 0.33 standard errors off, measured).
    assert abs(result.reference - float(dense.trace())) < 4 * result.reference_std_error
    for r in result.rows:  # rmse² = bias² + population variance of the 3 runs
        assert r["rmse"] ** 2 == pytest.approx((r["mean"] - result.reference) ** 2 + r["std"] ** 2 * 2 / 3, rel=1e-12)
        assert r["relative rmse"] == pytest.approx(r["rmse"] / abs(result.reference), rel=1e-12)


def test_largest_group_breaks_ties_by_the_smallest_task():
    assert largest_group(np.array([0, 1, 1, 0, 2])) == (0, 3)
    assert largest_group(np.array([0, 1, 1, 1, 0])) == (1, 2, 3)


def test_config_derives_equal_iterations_and_snapshots():
    cfg = GeneralizationConfig(iterations=10, snapshots=3)
    assert cfg.snapshot_iterations()[-1] == 9 and len(cfg.snapshot_iterations()) == 3
    for n in (1, 4, 10):
        assert cfg.ppo_for(n).num_iterations(n) == 10


# --- bad input ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"iterations": 0}, "iterations must be an integer >= 1"),
        ({"iterations": 2, "snapshots": 3}, r"snapshots must be <= iterations \(2\)"),
        ({"trace_matvecs": 5, "lanczos_steps": 10}, r"trace_matvecs must be >= lanczos_steps \(10\)"),
        ({"estimator_budgets": (3, 4)}, "multiples of 3"),
        ({"estimator_budgets": ()}, "multiples of 3"),
        ({"estimator_seeds": 1}, "estimator_seeds must be >= 2"),
        ({"steps_per_task": 2.5}, "steps_per_task must be an integer"),
    ],
)
def test_config_rejects_bad_budgets(changes, message):
    with pytest.raises(ValueError, match=message):
        GeneralizationConfig(**changes)


def test_standardisation_rejects_bad_advantages():
    with pytest.raises(ValueError, match="all equal"):
        standardise_advantages(torch.ones(5), torch.zeros(3))
    with pytest.raises(ValueError, match="train_advantages has non-finite"):
        standardise_advantages(torch.tensor([1.0, float("nan")]), torch.zeros(3))
    with pytest.raises(ValueError, match=r"test_advantages must be a 1-D tensor with >= 1 entries, got shape \(0,\)"):
        standardise_advantages(torch.tensor([1.0, 2.0]), torch.zeros(0))


def test_loss_and_measure_reject_mismatched_input():
    actor = _actor()
    with pytest.raises(ValueError, match="need log_probs"):
        policy_gradient_loss(actor.log_prob(OBS, ACTIONS), ADVANTAGES[:-1], ADVANTAGES)
    good = _samples(OBS, ACTIONS, ADVANTAGES)
    init = {k: p.detach() for k, p in actor.named_parameters()}
    with pytest.raises(ValueError, match="train_samples must hold obs"):
        measure(actor, init, _samples(OBS, ACTIONS, ADVANTAGES[:3]), good, SMALL, seed=0)
    with pytest.raises(ValueError, match="initial_params must match"):
        measure(actor, {"weight": torch.zeros(2)}, good, good, SMALL, seed=0)


def test_samples_and_comparison_reject_bad_arguments(cartpole_agent):
    family, agent = cartpole_agent
    with pytest.raises(ValueError, match="target ids must be in"):
        target_samples(agent, family, [50], steps_per_task=8, seed=0, gamma=0.99, gae_lambda=0.95)
    with pytest.raises(ValueError, match="steps_per_task must be an integer >= 1"):
        target_samples(agent, family, [0], steps_per_task=0, seed=0, gamma=0.99, gae_lambda=0.95)
    with pytest.raises(ValueError, match="out of range"):
        source_samples(agent, family, [10], steps_per_task=8, seed=0, gamma=0.99, gae_lambda=0.95)
    hvp = policy_gradient_hvp(_actor(), OBS, ACTIONS, ADVANTAGES)
    with pytest.raises(ValueError, match="budgets must be"):
        compare_trace_estimators(hvp, (4,), num_seeds=2, reference_matvecs=5, seed=0)
    with pytest.raises(ValueError, match="labels must be"):
        largest_group(np.array([], dtype=int))


def test_stage_rejects_bad_input_before_any_work():
    profile = get_profile("smoke")
    with pytest.raises(ValueError, match="unknown family 'nope'"):
        stages.generalization("nope", profile, 0)
    with pytest.raises(ValueError, match="seed must be a non-negative int, got -1"):
        stages.generalization("cartpole", profile, -1)
    with pytest.raises(ValueError, match="profile must be a pgx.profiles.Profile, got str"):
        stages.generalization("cartpole", "smoke", 0)
