"""Gradient features at a SAC meta-policy: what Algorithm 1 needs, for a tanh-Gaussian policy.

PPO's features (:mod:`pgx.algos.rollouts`, :mod:`pgx.gradients`) use GAE advantages from a state-value
critic. A SAC agent has no V critic, but its twin Q critics and policy give the soft advantage

    Â(s, a) = Q(s, a) − α log π(a|s) − V(s),   V(s) = E_{a'∼π(·|s)} [ Q(s, a') − α log π(a'|s) ],

Q = min(Q₁, Q₂), α the task's temperature, V estimated from ``value_samples`` actions per state.
The entropy term belongs on both sides: SAC's policy maximises E[Q − α log π], so this Â is the
advantage of that objective and averages to zero over the policy's own actions. Without it
(Â = Q − V, as issue 11 first wrote it) every advantage is shifted by −α·H(π(·|s)): on a freshly
built agent no sample had Â > 0, and the surrogate, which labels samples by the sign of Â, would
fit "raise the entropy" instead of what helps a task. The per-sample gradient is that of
``log π(u|s)`` of the *pre-tanh* sample u the policy drew (the squashing's Jacobian is part of
``log_prob``), so the rest of the pipeline — surrogate, first-order scores, affinity, SDP — runs
unchanged on these features.
"""

from __future__ import annotations

import numpy as np
import torch

from pgx.envs import TaskFamily
from pgx.envs.autoreset import EnvState, step_envs
from pgx.algos.rollouts import Samples
from pgx.runtime import is_int

__all__ = ["policy_rollout", "soft_advantages", "sac_samples"]


@torch.no_grad()
def policy_rollout(actor, family: TaskFamily, steps_per_task: int, seed: int, action_of,
                   envs_per_task: int = 2) -> Samples:
    """Sampled-action rollouts of ``actor`` on every source task: ``steps_per_task`` valid
    transitions each, from ``envs_per_task`` sub-envs per task (so more than one goal of a
    Meta-World task; Gymnasium's NEXT_STEP reset steps are skipped).

    :param action_of: ``u (N, A) tensor -> env actions (N, A)`` numpy: the trainer's squashing.
    :return: :class:`~pgx.algos.rollouts.Samples` whose ``actions`` are the pre-tanh samples u and whose
        ``advantages`` are zeros (filled by :func:`soft_advantages`).
    """
    if not is_int(steps_per_task) or steps_per_task < 1:
        raise ValueError(f"steps_per_task must be an integer >= 1, got {steps_per_task!r}")
    if not is_int(envs_per_task) or envs_per_task < 1:
        raise ValueError(f"envs_per_task must be an integer >= 1, got {envs_per_task!r}")
    n = family.n_tasks
    env = family.source_envs(range(n), envs_per_task)
    slot_task = np.repeat(np.arange(n), envs_per_task)
    quota = np.full(env.num_envs, steps_per_task // envs_per_task)
    quota[: n * envs_per_task: envs_per_task] += steps_per_task % envs_per_task  # the first sub-env takes the rest
    generator = torch.Generator().manual_seed(int(seed))
    try:
        state = EnvState.start(env, int(seed))
        kept_obs, kept_u, kept_task = [], [], []
        counts = np.zeros(env.num_envs, dtype=np.int64)
        while (counts < quota).any():
            obs_t = torch.as_tensor(state.obs, dtype=torch.float32)
            u = actor.sample(obs_t, generator)
            keep = ~state.reset_next & (counts < quota)
            if keep.any():
                kept_obs.append(obs_t[keep]), kept_u.append(u[keep]), kept_task.append(slot_task[keep])
                counts += keep
            step_envs(env.step, action_of(u), state, f"after {int(counts.sum())} kept samples")
    finally:
        env.close()
    task_ids = torch.as_tensor(np.concatenate(kept_task), dtype=torch.long)
    order = torch.argsort(task_ids, stable=True)  # task-major, as the PPO features are
    obs_all, u_all = torch.cat(kept_obs)[order], torch.cat(kept_u)[order]
    return Samples(obs=obs_all, actions=u_all, advantages=torch.zeros(len(order)), task_ids=task_ids[order])


@torch.no_grad()
def soft_advantages(agent, samples: Samples, value_samples: int, seed: int, chunk: int = 4096) -> torch.Tensor:
    """``Q(s, a) − α log π(a|s) − V(s)`` for every sample (the module docstring says why the
    entropy term), V from ``value_samples`` fresh actions per state.

    :param agent: a :class:`~pgx.algos.sac.SACAgent` (``q_values``, ``soft_value``, ``alpha``,
        ``task_index``, ``actor.log_prob``).
    """
    if not is_int(value_samples) or value_samples < 1:
        raise ValueError(f"value_samples must be an integer >= 1, got {value_samples!r}")
    generator = torch.Generator().manual_seed(int(seed))
    out = []
    for start in range(0, len(samples.obs), chunk):
        obs, u = samples.obs[start:start + chunk], samples.actions[start:start + chunk]
        entropy_term = agent.alpha(agent.task_index(obs)) * agent.actor.log_prob(obs, u)
        out.append(agent.q_values(obs, u) - entropy_term - agent.soft_value(obs, value_samples, generator))
    advantages = torch.cat(out).float()
    if not torch.isfinite(advantages).all():
        raise ValueError("non-finite soft advantage: the critics of this SAC agent diverged")
    return advantages


def sac_samples(agent, family: TaskFamily, steps_per_task: int, seed: int, value_samples: int, action_of,
                envs_per_task: int = 2) -> Samples:
    """Rollouts of the SAC actor with soft advantages from its critics: the features' samples."""
    samples = policy_rollout(agent.actor, family, steps_per_task, seed, action_of, envs_per_task)
    return Samples(obs=samples.obs, actions=samples.actions, task_ids=samples.task_ids,
                   advantages=soft_advantages(agent, samples, value_samples, seed + 1))
