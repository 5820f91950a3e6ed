"""Whole episodes from one policy per task, padded to one shape, with baseline-corrected advantages.

MAML adapts one copy of the policy per task and differentiates through every copy at once with
``torch.func.vmap``, which needs every task's batch to have the same shape. So here each sub-env
plays exactly one episode from a seeded reset; episodes that end early are padded to the longest
one and a ``mask`` says which steps are real (Gymnasium's autoreset steps after an episode's end
are never part of it). Batches are laid out ``(tasks, episodes, time, ...)``.

Advantages follow the MAML-RL recipe (pytorch-maml-rl, ProMP, learn2learn's ``maml_trpo``): a
linear feature baseline fitted per task to the discounted returns of that task's own batch, GAE
on top of it, then normalised per task. Nothing here depends on the policy's parameters, so the
advantages are computed once per batch, outside every gradient transform.
"""

from __future__ import annotations

from dataclasses import dataclass

import gymnasium as gym
import numpy as np
import torch
from torch.func import functional_call, vmap

from pgx.nets.policies import Actor

__all__ = ["EpisodeBatch", "collect_episodes", "linear_baseline", "episode_advantages", "stack_params"]


@dataclass
class EpisodeBatch:
    """One episode per sub-env, tasks × episodes, padded in time. Tensors are on the policy's device."""

    obs: torch.Tensor
    """``(B, E, T, obs_dim)``"""
    actions: torch.Tensor
    """``(B, E, T)`` long (Discrete) or ``(B, E, T, action_dim)`` float (Box), as sampled."""
    rewards: torch.Tensor
    """``(B, E, T)``; zero at padding."""
    mask: torch.Tensor
    """``(B, E, T)`` bool: the step belongs to the episode."""
    advantages: torch.Tensor
    """``(B, E, T)`` normalised per task over its real steps; zero at padding."""

    @property
    def returns(self) -> torch.Tensor:
        """``(B, E)`` undiscounted return of each episode."""
        return self.rewards.sum(-1)

    @property
    def env_steps(self) -> int:
        """Real environment steps in the batch (padding not counted)."""
        return int(self.mask.sum())


def stack_params(params: dict[str, torch.Tensor], copies: int) -> dict[str, torch.Tensor]:
    """``copies`` copies of one parameter set along a new leading (task) dimension."""
    return {name: p.unsqueeze(0).expand(copies, *p.shape) for name, p in params.items()}


@torch.no_grad()
def _sample_actions(actor: Actor, params: dict[str, torch.Tensor], obs: torch.Tensor,
                    generator: torch.Generator) -> torch.Tensor:
    """Actions for ``obs (B, E, obs_dim)``, task b acting with ``params[·][b]``; drawn from ``generator``."""
    out = vmap(lambda p, o: functional_call(actor, p, (o,)))(params, obs)  # logits or means, (B, E, A)
    if actor.discrete:
        probs = torch.softmax(out, -1).reshape(-1, out.shape[-1])
        return torch.multinomial(probs, 1, generator=generator).reshape(out.shape[:-1])
    noise = torch.randn(out.shape, generator=generator, device=out.device, dtype=out.dtype)
    return out + noise * params["log_std"].exp()[:, None, :]


@torch.no_grad()
def collect_episodes(
    actor: Actor,
    params: dict[str, torch.Tensor],
    env: gym.vector.VectorEnv,
    episodes: int,
    max_steps: int,
    seed: int,
    gamma: float,
    gae_lambda: float,
) -> EpisodeBatch:
    """One episode of every sub-env of ``env`` (laid out task-major: ``episodes`` sub-envs per task),
    task b acting with ``params[·][b]``, from a reset seeded with ``seed``; at most ``max_steps`` steps.

    :param params: the actor's parameters with a leading task dimension ``B`` (``stack_params``).
    :param gamma, gae_lambda: discount and GAE λ of the advantages (λ = 1: returns minus baseline).
    """
    num_tasks = next(iter(params.values())).shape[0]
    if env.num_envs != num_tasks * episodes:
        raise ValueError(f"env has {env.num_envs} sub-envs, expected {num_tasks} tasks × {episodes} episodes")
    device = next(iter(params.values())).device
    generator = torch.Generator(device=device).manual_seed(int(seed))
    obs, _ = env.reset(seed=int(seed))
    running = np.ones(env.num_envs, dtype=bool)
    steps: list[tuple[np.ndarray, torch.Tensor, np.ndarray, np.ndarray]] = []
    for _ in range(max_steps):
        obs_t = torch.as_tensor(obs, dtype=torch.float32, device=device).reshape(num_tasks, episodes, -1)
        actions = _sample_actions(actor, params, obs_t, generator)
        flat = actions.reshape(env.num_envs, *actions.shape[2:])
        next_obs, reward, terminated, truncated, _ = env.step(flat.cpu().numpy())
        reward = np.asarray(reward, dtype=np.float64)
        if not np.all(np.isfinite(reward[running])):
            raise ValueError(f"non-finite reward from sub-env {int(np.flatnonzero(~np.isfinite(reward))[0])}")
        steps.append((obs, flat, np.where(running, reward, 0.0), running.copy()))
        running &= ~np.logical_or(terminated, truncated)
        obs = next_obs
        if not running.any():
            break

    def stacked(values, dtype=torch.float32) -> torch.Tensor:  # (T, B·E, ...) → (B, E, T, ...)
        x = torch.as_tensor(np.stack(values), dtype=dtype, device=device)
        return x.reshape(x.shape[0], num_tasks, episodes, *x.shape[2:]).movedim(0, 2)

    obs_b = stacked([s[0] for s in steps])
    actions_b = torch.stack([s[1] for s in steps]).reshape(len(steps), num_tasks, episodes, *steps[0][1].shape[1:])
    actions_b = actions_b.movedim(0, 2)
    rewards, mask = stacked([s[2] for s in steps]), stacked([s[3] for s in steps], torch.bool)
    advantages = episode_advantages(obs_b, rewards, mask, gamma, gae_lambda)
    return EpisodeBatch(obs=obs_b, actions=actions_b, rewards=rewards, mask=mask, advantages=advantages)


def _discounted_returns(rewards: torch.Tensor, gamma: float) -> torch.Tensor:
    """``(..., T)`` rewards → returns-to-go (padding has zero reward, so it adds nothing)."""
    out = torch.zeros_like(rewards)
    running = torch.zeros_like(rewards[..., 0])
    for t in reversed(range(rewards.shape[-1])):
        running = rewards[..., t] + gamma * running
        out[..., t] = running
    return out


def _baseline_features(obs: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """pytorch-maml-rl's ``LinearFeatureBaseline`` features: obs, obs², time, time², time³, 1
    (time in hundreds of steps), zero at padding. ``obs (B, E, T, D)`` → ``(B, E, T, 2D + 4)``."""
    t = torch.arange(obs.shape[2], device=obs.device, dtype=obs.dtype) / 100.0
    t = t.expand(*obs.shape[:2], -1).unsqueeze(-1)
    ones = torch.ones_like(t)
    feats = torch.cat([obs, obs**2, t, t**2, t**3, ones], dim=-1)
    return feats * mask.unsqueeze(-1)


def linear_baseline(obs: torch.Tensor, returns: torch.Tensor, mask: torch.Tensor, reg: float = 1e-5) -> torch.Tensor:
    """Value estimates ``(B, E, T)``: per task b, ridge regression of ``returns`` on the features of
    :func:`_baseline_features` over that task's real steps. The ridge grows tenfold (up to five
    times) when the normal equations are singular, as pytorch-maml-rl does."""
    feats = _baseline_features(obs, mask).double()
    x = feats.reshape(feats.shape[0], -1, feats.shape[-1])  # (B, N, F)
    y = (returns * mask).double().reshape(returns.shape[0], -1, 1)
    gram, rhs = x.transpose(1, 2) @ x, x.transpose(1, 2) @ y
    eye = torch.eye(gram.shape[-1], dtype=gram.dtype, device=gram.device)
    for attempt in range(5):
        coef, info = torch.linalg.solve_ex(gram + reg * 10**attempt * eye, rhs)
        if not info.any() and torch.isfinite(coef).all():
            break
    else:
        raise ValueError(f"the linear baseline could not be fitted (ridge up to {reg * 1e4:g}); are the observations "
                         f"or returns non-finite? largest |return| {float(returns.abs().max())}")
    values = (x @ coef).reshape(returns.shape)
    return values.to(returns.dtype) * mask


def episode_advantages(obs: torch.Tensor, rewards: torch.Tensor, mask: torch.Tensor, gamma: float,
                       gae_lambda: float) -> torch.Tensor:
    """GAE(γ, λ) on the linear baseline, normalised to mean 0 and std 1 per task over real steps.

    The value after an episode's last real step is 0: episodes here end or are cut at the horizon,
    and the time features let the baseline learn that little return is left near the cut."""
    values = linear_baseline(obs, _discounted_returns(rewards, gamma), mask)
    next_values = torch.cat([values[..., 1:], torch.zeros_like(values[..., :1])], dim=-1) * mask.roll(-1, -1)
    next_values[..., -1] = 0.0
    deltas = (rewards + gamma * next_values - values) * mask
    advantages = _discounted_returns(deltas, gamma * gae_lambda) * mask
    m = mask.float()
    count = m.sum(dim=(1, 2), keepdim=True).clamp_min(1.0)
    mean = (advantages * m).sum(dim=(1, 2), keepdim=True) / count
    var = (((advantages - mean) * m) ** 2).sum(dim=(1, 2), keepdim=True) / count
    return (advantages - mean) / (var.sqrt() + 1e-8) * m
