"""Measure a policy's return on each task with real rollouts."""

from __future__ import annotations

from typing import Sequence

import gymnasium as gym
import numpy as np
import torch

from pgx.envs import TaskFamily
from pgx.nets.policies import Actor, PolicyConfig, make_actor
from pgx.runtime import seed_everything

__all__ = ["episode_returns", "evaluate", "evaluate_episodes", "evaluate_targets", "untrained_returns"]


@torch.no_grad()
def episode_returns(actor: Actor, env: gym.vector.VectorEnv, seed: int, max_steps: int, greedy: bool = True) -> np.ndarray:
    """Return of the *first* episode of every sub-env, ``(num_envs,)``.

    Each sub-env runs one episode from a seeded reset; sub-envs that finish early wait (their
    later episodes are ignored), so every return counts once. ``greedy`` plays the most likely
    action (Discrete) or the mean action (Box); otherwise actions are sampled from ``seed``.
    """
    device = next(actor.parameters()).device
    generator = torch.Generator(device=device).manual_seed(seed)
    obs, _ = env.reset(seed=seed)
    totals = np.zeros(env.num_envs)
    running = np.ones(env.num_envs, dtype=bool)
    for _ in range(max_steps):
        obs_t = torch.as_tensor(obs, dtype=torch.float32, device=device)
        action = actor.mode(obs_t) if greedy else actor.sample(obs_t, generator)
        obs, reward, terminated, truncated, _ = env.step(action.cpu().numpy())
        totals += np.where(running, reward, 0.0)
        running &= ~np.logical_or(terminated, truncated)
        if not running.any():
            break
    return totals


def evaluate(
    actor: Actor,
    family: TaskFamily,
    task_ids: Sequence[int],
    episodes: int,
    seed: int,
    greedy: bool = True,
) -> np.ndarray:
    """Mean return over ``episodes`` episodes on each source task in ``task_ids``, ``(len(task_ids),)``."""
    return evaluate_episodes(actor, family, task_ids, episodes, seed, greedy).mean(axis=1)


def evaluate_episodes(
    actor: Actor,
    family: TaskFamily,
    task_ids: Sequence[int],
    episodes: int,
    seed: int,
    greedy: bool = True,
) -> np.ndarray:
    """Each episode's return, ``(len(task_ids), episodes)``: what :func:`evaluate` averages (the same
    envs, seeds and actions), kept whole so that a truth can be rebuilt from its first e episodes."""
    _check_episodes(episodes)
    ids = family.check_tasks(task_ids)
    totals = episode_returns(actor, family.source_envs(ids, episodes), seed, family.max_episode_steps + 1, greedy)
    return totals.reshape(len(ids), episodes)


def evaluate_targets(
    actor: Actor,
    family: TaskFamily,
    target_ids: Sequence[int],
    episodes: int,
    seed: int,
    greedy: bool = True,
) -> np.ndarray:
    """Like :func:`evaluate` on unseen target tasks (their one-hot is zero)."""
    _check_episodes(episodes)
    env = family.target_envs(target_ids, episodes)
    return _mean_returns(actor, family, env, len(target_ids), episodes, seed, greedy)


def untrained_returns(family: TaskFamily, episodes: int, seed: int, policy: PolicyConfig = PolicyConfig()) -> np.ndarray:
    """Mean return on each source task of a freshly initialised actor playing sampled actions:
    near-uniform for Discrete actions (PPO's 0.01-scaled output layer), unit-variance Gaussian
    for Box. The floor a meta-policy must clear to be called useful, ``(n_tasks,)``."""
    seed_everything(seed)
    actor = make_actor(family.obs_dim, family.action_space, policy)
    return evaluate(actor, family, range(family.n_tasks), episodes, seed, greedy=False)


def _check_episodes(episodes: int) -> None:
    if episodes < 1:
        raise ValueError(f"episodes must be >= 1, got {episodes}")


def _mean_returns(actor: Actor, family: TaskFamily, env: gym.vector.VectorEnv, num_tasks: int, episodes: int,
                  seed: int, greedy: bool) -> np.ndarray:
    totals = episode_returns(actor, env, seed, family.max_episode_steps + 1, greedy)
    return totals.reshape(num_tasks, episodes).mean(axis=1)
