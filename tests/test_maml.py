"""MAML: the inner gradient, the second-order meta-gradient, first-order mode, adaptation, resume, errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch.func import grad, jvp

from pgx.algos.maml import MAMLConfig, adapt, meta_gradient, meta_gradient_loop, meta_loss, pg_loss, train
from pgx.envs import make_family
from pgx.algos.episodes import collect_episodes, episode_advantages, stack_params
from pgx.nets.policies import PolicyConfig, make_actor
from pgx.algos.transfer import AdaptConfig, adaptation_curves, nearest_source_tasks, representatives

TINY = PolicyConfig(hidden=5, layers=2)


def _batch(num_tasks: int, episodes: int, steps: int, obs_dim: int, num_actions: int, seed: int,
           dtype=torch.float64, discrete: bool = True):
    g = torch.Generator().manual_seed(seed)
    obs = torch.randn(num_tasks, episodes, steps, obs_dim, generator=g, dtype=dtype)
    if discrete:
        actions = torch.randint(num_actions, (num_tasks, episodes, steps), generator=g)
    else:
        actions = torch.randn(num_tasks, episodes, steps, num_actions, generator=g, dtype=dtype)
    advantages = torch.randn(num_tasks, episodes, steps, generator=g, dtype=dtype)
    mask = torch.ones(num_tasks, episodes, steps, dtype=torch.bool)
    mask[:, 0, steps // 2:] = False  # one shorter episode per task: padding must not count
    return obs, actions, advantages * mask, mask


def _params(actor) -> dict[str, torch.Tensor]:
    return {k: p.detach().clone() for k, p in actor.named_parameters()}


def test_inner_gradient_is_the_hand_computed_policy_gradient():
    torch.manual_seed(0)
    actor = make_actor(3, 4, PolicyConfig(hidden=4, layers=1)).double()  # logits = W s + b
    obs, actions, advantages, mask = (x[0] for x in _batch(1, 3, 6, 3, 4, seed=1))
    g = grad(pg_loss, argnums=1)(actor, _params(actor), (obs, actions, advantages, mask))
    s, a, adv = obs[mask], actions[mask], advantages[mask]
    with torch.no_grad():
        p = torch.softmax(actor(s), -1)
    coef = (torch.nn.functional.one_hot(a, 4).double() - p) * adv[:, None]  # d log π / d logits · Â
    n = mask.sum()
    torch.testing.assert_close(g["net.0.weight"], -(coef.T @ s) / n)
    torch.testing.assert_close(g["net.0.bias"], -coef.sum(0) / n)


@pytest.mark.parametrize("discrete", [True, False])
def test_second_order_meta_gradient_matches_finite_differences(discrete):
    torch.manual_seed(1)
    actor = make_actor(3, 2 if discrete else __import__("gymnasium").spaces.Box(-1, 1, (2,)), TINY).double()
    inner = [_batch(3, 2, 5, 3, 2, seed=2, discrete=discrete)]
    outer = _batch(3, 2, 5, 3, 2, seed=3, discrete=discrete)
    theta = _params(actor)
    g, _ = meta_gradient(actor, theta, inner, outer, inner_lr=0.5)
    direction = {k: torch.randn_like(v) for k, v in theta.items()}
    eps = 1e-5
    plus = meta_loss(actor, {k: v + eps * direction[k] for k, v in theta.items()}, inner, outer, 0.5)
    minus = meta_loss(actor, {k: v - eps * direction[k] for k, v in theta.items()}, inner, outer, 0.5)
    numeric = (plus - minus) / (2 * eps)
    analytic = sum((g[k] * direction[k]).sum() for k in theta)
    assert math.isclose(float(analytic), float(numeric), rel_tol=1e-6, abs_tol=1e-9)
    # Two inner steps chain the same way.
    inner2 = inner + [_batch(3, 2, 5, 3, 2, seed=4, discrete=discrete)]
    g2, _ = meta_gradient(actor, theta, inner2, outer, inner_lr=0.5)
    plus = meta_loss(actor, {k: v + eps * direction[k] for k, v in theta.items()}, inner2, outer, 0.5)
    minus = meta_loss(actor, {k: v - eps * direction[k] for k, v in theta.items()}, inner2, outer, 0.5)
    assert math.isclose(float(sum((g2[k] * direction[k]).sum() for k in theta)), float((plus - minus) / (2 * eps)),
                        rel_tol=1e-6, abs_tol=1e-9)


def test_first_order_drops_exactly_the_hessian_term():
    """Second order: (I − αH)∇L_out(θ'); first order: ∇L_out(θ'); so SO − FO = −α H ∇L_out(θ')."""
    torch.manual_seed(2)
    actor = make_actor(3, 2, TINY).double()
    inner, outer = [_batch(2, 2, 4, 3, 2, seed=5)], _batch(2, 2, 4, 3, 2, seed=6)
    theta, lr = _params(actor), 0.3
    second, _ = meta_gradient(actor, theta, inner, outer, lr, first_order=False)
    first, _ = meta_gradient(actor, theta, inner, outer, lr, first_order=True)
    expected_gap = {k: torch.zeros_like(v) for k, v in theta.items()}
    expected_first = {k: torch.zeros_like(v) for k, v in theta.items()}
    for b in range(2):
        task_inner = tuple(x[b] for x in inner[0])
        task_outer = tuple(x[b] for x in outer)
        adapted = adapt(actor, theta, [task_inner], lr)
        g_out = grad(pg_loss, argnums=1)(actor, adapted, task_outer)
        _, hvp = jvp(lambda p: grad(pg_loss, argnums=1)(actor, p, task_inner), (theta,), (g_out,))
        for k in theta:
            expected_gap[k] += -lr * hvp[k] / 2
            expected_first[k] += g_out[k] / 2
    for k in theta:
        torch.testing.assert_close(first[k], expected_first[k])
        torch.testing.assert_close(second[k] - first[k], expected_gap[k])
    assert any(expected_gap[k].abs().max() > 1e-6 for k in theta)  # the term is not trivially zero


def test_vmap_meta_gradient_equals_the_loop_over_tasks():
    torch.manual_seed(3)
    actor = make_actor(3, 2, TINY).double()
    inner, outer = [_batch(4, 2, 5, 3, 2, seed=7)], _batch(4, 2, 5, 3, 2, seed=8)
    fast, loss_fast = meta_gradient(actor, _params(actor), inner, outer, 0.2)
    slow, loss_slow = meta_gradient_loop(actor, _params(actor), inner, outer, 0.2)
    torch.testing.assert_close(loss_fast, loss_slow)
    for k in fast:
        torch.testing.assert_close(fast[k], slow[k])


def test_advantages_are_returns_minus_the_least_squares_baseline_when_lambda_is_one():
    """λ = 1: GAE telescopes to discounted return − baseline; the baseline is the least-squares fit of
    the returns on pytorch-maml-rl's features over the real steps; then per-task normalisation."""
    obs, _, _, mask = _batch(1, 3, 7, 2, 2, seed=12, dtype=torch.float64)
    rewards = torch.rand(1, 3, 7, dtype=torch.float64, generator=torch.Generator().manual_seed(13)) * mask
    gamma = 0.9
    returns = torch.zeros_like(rewards)
    for t in reversed(range(7)):
        returns[..., t] = rewards[..., t] + (gamma * returns[..., t + 1] if t < 6 else 0.0)
    t = torch.arange(7, dtype=torch.float64).expand(1, 3, 7).unsqueeze(-1) / 100
    feats = torch.cat([obs, obs**2, t, t**2, t**3, torch.ones_like(t)], -1)[mask]
    coef = torch.linalg.solve(feats.T @ feats + 1e-5 * torch.eye(feats.shape[1], dtype=torch.float64),
                              feats.T @ returns[mask])
    raw = returns[mask] - feats @ coef
    expected = (raw - raw.mean()) / (raw.std(unbiased=False) + 1e-8)
    torch.testing.assert_close(episode_advantages(obs, rewards, mask, gamma, 1.0)[mask], expected)
    # λ = 0: one-step TD errors of the same baseline, normalised.
    values = torch.zeros_like(rewards)
    values[mask] = feats @ coef
    after = torch.cat([values[..., 1:], torch.zeros_like(values[..., :1])], -1) * torch.cat(
        [mask[..., 1:], torch.zeros_like(mask[..., :1])], -1)
    td = (rewards + gamma * after - values)[mask]
    torch.testing.assert_close(episode_advantages(obs, rewards, mask, gamma, 0.0)[mask],
                               (td - td.mean()) / (td.std(unbiased=False) + 1e-8))


def test_padding_does_not_change_the_advantages_or_the_loss():
    obs, actions, _, mask = _batch(1, 2, 6, 3, 2, seed=9, dtype=torch.float32)
    rewards = torch.rand(1, 2, 6) * mask
    adv = episode_advantages(obs, rewards, mask, 0.99, 1.0)
    assert torch.all(adv[~mask] == 0)
    real = adv[mask]
    assert abs(float(real.mean())) < 1e-5 and abs(float(real.std(unbiased=False)) - 1) < 1e-3
    # Garbage in the padded steps changes nothing.
    noisy_obs = obs.clone()
    noisy_obs[~mask] = 1e3
    torch.testing.assert_close(episode_advantages(noisy_obs, rewards, mask, 0.99, 1.0), adv)


def test_collect_episodes_is_seeded_and_masks_after_the_end():
    family = make_family("cartpole:observe_task=false")
    torch.manual_seed(0)
    actor = make_actor(family.obs_dim, family.action_space, TINY)
    params = stack_params(_params(actor), 2)
    runs = []
    for _ in range(2):
        env = family.source_envs([0, 9], 3)
        runs.append(collect_episodes(actor, params, env, 3, 500, seed=11, gamma=0.99, gae_lambda=1.0))
        env.close()
    a, b = runs
    torch.testing.assert_close(a.obs, b.obs)
    env = family.source_envs([0, 9], 3)
    other = collect_episodes(actor, params, env, 3, 500, seed=12, gamma=0.99, gae_lambda=1.0)
    env.close()
    assert other.obs.shape != a.obs.shape or not torch.equal(other.obs, a.obs)  # another seed, other episodes
    assert a.obs.shape[:2] == (2, 3)
    lengths = a.mask.sum(-1)
    assert torch.equal(a.mask, torch.arange(a.mask.shape[-1]) < lengths[..., None])  # a prefix per episode
    torch.testing.assert_close(a.returns, lengths.float())  # CartPole pays 1 per real step


def test_maml_runs_on_discrete_and_box_and_resumes_exactly(tmp_path):
    cfg = MAMLConfig(meta_iterations=4, meta_batch_size=3, episodes=2, horizon=30, policy=TINY, checkpoint_every=2)
    for spec in ("cartpole:observe_task=false", "navigation"):
        family = make_family(spec)
        full = train(family, [0, 1], cfg, seed=5, progress=False)
        assert full.returns_after.shape == (4,) and np.all(np.diff(full.env_steps) > 0)
        path = tmp_path / f"{spec.split(':')[0]}.pt"

        def stop(iteration):
            if iteration == 2:
                raise KeyboardInterrupt

        with pytest.raises(KeyboardInterrupt):
            train(family, [0, 1], cfg, seed=5, checkpoint_path=path, progress=False, on_iteration=stop)
        seen: list[int] = []
        resumed = train(family, [0, 1], cfg, seed=5, checkpoint_path=path, progress=False, on_iteration=seen.append)
        assert seen == [2, 3]  # resumed from the checkpoint of iteration 2, not restarted
        for k in full.actor_state:
            torch.testing.assert_close(resumed.actor_state[k], full.actor_state[k])
        np.testing.assert_array_equal(resumed.returns_after, full.returns_after)
        with pytest.raises(ValueError, match="different run"):
            train(family, [0, 1], cfg, seed=6, checkpoint_path=path, progress=False)


def test_adaptation_improves_navigation_returns_from_a_meta_trained_policy():
    """A short MAML run on the navigation family, then three adaptation steps on six unseen targets:
    the return after adaptation beats the return before on average, by more than the batches' noise."""
    family = make_family("navigation")
    torch.set_num_threads(1)
    cfg = MAMLConfig(meta_iterations=30, meta_batch_size=10, episodes=10, outer_lr=3e-3)
    actor = train(family, range(family.n_tasks), cfg, seed=0, progress=False).actor(family, cfg.policy)
    result = adaptation_curves(actor, family, [0, 8, 17, 25, 33, 42], AdaptConfig(steps=3, episodes=10), seed=1)
    assert result.returns.shape == (6, 4) and result.trajectories[0].shape[0] == 6
    gain = result.after - result.before
    assert gain.mean() > 2 * gain.std(ddof=1) / np.sqrt(len(gain)), gain


def test_bad_configs_and_inputs_raise_clear_errors():
    with pytest.raises(ValueError, match="inner_steps must be an int >= 0, got -1"):
        MAMLConfig(inner_steps=-1)
    with pytest.raises(ValueError, match="inner_lr must be a finite number > 0, got nan"):
        MAMLConfig(inner_lr=float("nan"))
    with pytest.raises(ValueError, match="meta_batch_size must be an int >= 1, got 0"):
        MAMLConfig(meta_batch_size=0)
    with pytest.raises(ValueError, match="horizon must be None or an int >= 1, got True"):
        MAMLConfig(horizon=True)
    with pytest.raises(ValueError, match="AdaptConfig.gamma must be in"):
        AdaptConfig(gamma=1.5)
    with pytest.raises(ValueError, match="AdaptConfig.lr must be a finite number > 0, got inf"):
        AdaptConfig(lr=float("inf"))
    family = make_family("navigation")
    with pytest.raises(ValueError, match="task_ids is empty"):
        train(family, [], MAMLConfig(meta_iterations=1), seed=0, progress=False)
    with pytest.raises(ValueError, match="meta_batch_size 3 is smaller than the 10 training tasks"):
        train(family, range(10), MAMLConfig(meta_iterations=1, meta_batch_size=3), seed=0, progress=False)
    actor = make_actor(family.obs_dim, family.action_space, TINY)
    with pytest.raises(ValueError, match=r"target ids must be in \[0, 49\], got \[50\]"):
        adaptation_curves(actor, family, [50], AdaptConfig(steps=1, episodes=1), seed=0)


def test_representatives_are_parameter_medoids_and_targets_route_to_the_nearest_task():
    params = [0.1, 0.2, 0.3, 1.0, 1.1, 5.0]
    assert representatives([0, 0, 0, 1, 1, 2], params) == [1, 3, 5]
    assert representatives([2, 2, 1, 1, 0, 0], params) == [4, 2, 0]  # in label order
    np.testing.assert_array_equal(nearest_source_tasks(params, [0.05, 1.06, 4.0]), [0, 4, 5])
    with pytest.raises(ValueError, match="one group label per source task"):
        representatives([0, 1], params)
