"""Downstream transfer: from task groups to a starting policy, and from it to returns on unseen
target tasks after adaptation (the paper's Table 3 and Appendix C).

What pgx counts as one **adaptation step**: one vanilla policy-gradient update of the policy on a
target task, computed from ``episodes`` fresh episodes the current policy plays on that target
(the MAML inner step, ``pgx.algos.maml.adapt``, with the same step size). A curve of ``steps``
adaptation steps therefore plays ``(steps + 1) × episodes`` episodes per target: one batch before
each update and one after the last, and its point j is the mean return of the batch played after
j updates. Every starting policy — MAML's or a multitask PPO policy's — adapts the same way, with
the same budget, so the methods differ only in where they start.

How a group becomes a **representative task** (the same rule for every grouping): the group's
medoid in task-parameter space, standardised per coordinate over the source tasks — the member
with the smallest summed distance to the other members (ties: the lowest task id). A rule that
uses only the task parameters cannot favour one grouping's affinity over another's.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch.func import vmap

from pgx.algos.maml import adapt, as_tuple
from pgx.checks import KeyedByChanges, check_int, check_number, check_optional_int
from pgx.envs import TaskFamily, as_param_array
from pgx.algos.episodes import collect_episodes, stack_params
from pgx.nets.policies import Actor

__all__ = ["AdaptConfig", "Adaptation", "adaptation_curves", "representatives", "nearest_source_tasks"]


@dataclass(frozen=True)
class AdaptConfig(KeyedByChanges):
    """How a starting policy is adapted to each unseen target task."""

    steps: int = 10
    """Adaptation steps (policy-gradient updates) per target; the paper says 200."""
    episodes: int = 10
    """Episodes each update is computed from (and each curve point is measured on)."""
    lr: float = 0.1
    """Step size of every update (MAML's inner step size)."""
    gamma: float = 0.99
    gae_lambda: float = 1.0
    horizon: int | None = None
    """Cut episodes after this many steps (None: the family's ``max_episode_steps``)."""

    def __post_init__(self) -> None:
        owner = "AdaptConfig"  # the checks MAMLConfig makes of the same quantities
        check_int(owner, "steps", self.steps, 0)
        check_int(owner, "episodes", self.episodes)
        check_number(owner, "lr", self.lr, 0)
        check_number(owner, "gamma", self.gamma, 0, 1)
        check_number(owner, "gae_lambda", self.gae_lambda, 0, 1, low_open=False)
        check_optional_int(owner, "horizon", self.horizon)


@dataclass
class Adaptation:
    """Returns on each target before and after each adaptation step, and where the policy went."""

    target_ids: tuple[int, ...]
    returns: np.ndarray
    """``(targets, steps + 1)``: column j is the mean return of the batch played after j updates."""
    trajectories: dict[int, np.ndarray]
    """Adaptation step (0 and the last) → ``(targets, T, obs_dim)`` observations of each target's
    first episode of that batch, NaN after the episode ended (navigation: the path in the plane)."""
    env_steps: int
    """Real environment steps spent adapting, over all targets."""

    @property
    def before(self) -> np.ndarray:
        return self.returns[:, 0]

    @property
    def after(self) -> np.ndarray:
        return self.returns[:, -1]


def adaptation_curves(actor: Actor, family: TaskFamily, target_ids, cfg: AdaptConfig, seed: int,
                      start: dict[str, torch.Tensor] | None = None) -> Adaptation:
    """Adapt ``actor`` separately to every target of ``target_ids`` (all at once, one ``vmap``),
    ``cfg.steps`` policy-gradient updates each; batch j's env reset and actions are seeded by
    ``(seed, j)``, the same for every starting policy (common random numbers across methods).

    :param start: per-target starting parameters (a leading target dimension; e.g. each target's
        group policy); default: ``actor``'s own parameters for every target.
    """
    ids = np.asarray(target_ids, dtype=np.int64).reshape(-1)
    env = family.target_envs(ids, cfg.episodes)  # validates the ids
    max_steps = family.max_episode_steps if cfg.horizon is None else min(cfg.horizon, family.max_episode_steps)
    if start is None:
        params = stack_params({k: p.detach() for k, p in actor.named_parameters()}, len(ids))
    else:
        names = {k for k, _ in actor.named_parameters()}
        if set(start) != names or any(v.shape[0] != len(ids) for v in start.values()):
            raise ValueError(f"start must hold the actor's parameters {sorted(names)} with a leading dimension "
                             f"of {len(ids)} targets")
        params = {k: v.detach() for k, v in start.items()}
    step = vmap(lambda p, b: adapt(actor, p, [b], cfg.lr, first_order=True))
    returns, trajectories, env_steps = [], {}, 0
    try:
        for j in range(cfg.steps + 1):
            seed_j = int(np.random.SeedSequence([int(seed), j, 7]).generate_state(1)[0])
            batch = collect_episodes(actor, params, env, cfg.episodes, max_steps, seed_j, cfg.gamma, cfg.gae_lambda)
            returns.append(batch.returns.mean(1).cpu().numpy())
            env_steps += batch.env_steps
            if j in (0, cfg.steps):
                first = batch.obs[:, 0].clone()
                first[~batch.mask[:, 0]] = float("nan")
                trajectories[j] = first.cpu().numpy()
            if j < cfg.steps:
                with torch.no_grad():
                    params = step(params, as_tuple(batch))
    finally:
        env.close()
    return Adaptation(target_ids=tuple(int(i) for i in ids), returns=np.stack(returns, axis=1),
                      trajectories=trajectories, env_steps=env_steps)


def _standardised(params, like=None) -> np.ndarray:
    """``params`` standardised with the mean and spread of ``like`` (default: their own), per
    parameter; a parameter that does not vary is only centred."""
    values = as_param_array(params)
    reference = values if like is None else as_param_array(like)
    scale = reference.std(axis=0)
    return (values - reference.mean(axis=0)) / np.where(scale > 0, scale, 1.0)


def representatives(labels, source_params) -> list[int]:
    """One task per group, in the order of the group labels: the group's medoid in standardised
    task-parameter space (see the module docstring)."""
    labels = np.asarray(labels)
    points = _standardised(source_params)
    if labels.shape != (points.shape[0],):
        raise ValueError(f"need one group label per source task ({points.shape[0]}), got shape {labels.shape}")
    chosen = []
    for group in np.unique(labels):
        members = np.flatnonzero(labels == group)
        distances = np.linalg.norm(points[members, None] - points[None, members], axis=-1).sum(axis=1)
        chosen.append(int(members[np.argmin(distances)]))
    return chosen


def nearest_source_tasks(source_params, target_params) -> np.ndarray:
    """For each target, the nearest source task in the source tasks' standardised parameter space:
    how a target is routed to one group's policy."""
    sources = as_param_array(source_params)
    targets = as_param_array(target_params)
    if sources.shape[1] != targets.shape[1]:
        raise ValueError(f"source and target parameters differ in dimension: {sources.shape[1]} vs {targets.shape[1]}")
    s, t = _standardised(sources), _standardised(targets, like=sources)
    return np.argmin(np.linalg.norm(t[:, None] - s[None], axis=-1), axis=1)
