"""One step of sub-envs that autoreset in Gymnasium 1.x's NEXT_STEP mode, its bookkeeping done once.

The step *after* a sub-env reports ``terminated`` or ``truncated`` resets it: it ignores the action
and returns the new episode's first observation with reward 0, neither terminated nor truncated.
That step is not a transition of the MDP. Every trainer and sampler that steps a vector env needs
the same bookkeeping around it — which sub-envs' step is real, a check that rewards are finite, the
running undiscounted return of each episode, the episodes that just ended — and PPO's rollouts,
the batched rollouts of many PPO runs, SAC's training loop and SAC's feature sampler all use this
one :func:`step_envs` for it (they had written it four times).

Arrays may carry leading axes beyond the sub-env's: ``(R, E)`` for R runs of E sub-envs each.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import gymnasium as gym
import numpy as np

__all__ = ["EnvState", "EnvStep", "step_envs"]


@dataclass
class EnvState:
    """Where the sub-envs are between two steps; carried across rollouts and checkpoints."""

    obs: np.ndarray
    """``(..., num_envs, obs_dim)`` observation the next action is chosen on."""
    reset_next: np.ndarray
    """``(..., num_envs)`` bool: the next step of this sub-env is an autoreset step."""
    episode_return: np.ndarray
    """``(..., num_envs)`` running undiscounted return of the current episode."""

    @classmethod
    def start(cls, env: gym.vector.VectorEnv, seed: int) -> "EnvState":
        obs, _ = env.reset(seed=seed)
        return cls.at(obs)

    @classmethod
    def at(cls, obs: np.ndarray) -> "EnvState":
        """Fresh episodes everywhere, from first observations ``obs`` (``(..., num_envs, obs_dim)``)."""
        shape = np.shape(obs)[:-1]
        return cls(obs=obs, reset_next=np.zeros(shape, bool), episode_return=np.zeros(shape))


@dataclass
class EnvStep:
    """What one step gave, after :func:`step_envs` updated the state."""

    reward: np.ndarray
    """float64, 0 at autoreset steps."""
    terminated: np.ndarray
    truncated: np.ndarray
    info: dict[str, Any]
    real: np.ndarray
    """The sub-envs whose step was a transition of the MDP (not an autoreset step)."""
    done: np.ndarray
    """``terminated | truncated``: the episodes that ended at this step."""
    finished: np.ndarray
    """``(k, ndim)`` indices of those sub-envs (``np.argwhere(done)``), in C order."""
    finished_returns: np.ndarray
    """``(k,)`` their episodes' undiscounted returns."""


def step_envs(step: Callable[[Any], tuple], actions: Any, state: EnvState, when: str) -> EnvStep:
    """``step(actions)`` (a vector env's ``step``, returning Gymnasium's five values), with the
    NEXT_STEP bookkeeping: ``state`` moves to the next observation, its returns accumulate the real
    steps' rewards and restart where an episode ended.

    :param when: where in the run this step is, for the error a non-finite reward raises
        (``"at step 3"``); the sub-env (and run, for ``(R, E)`` arrays) is named before it.
    """
    real = ~state.reset_next
    next_obs, reward, terminated, truncated, info = step(actions)
    reward = np.asarray(reward, dtype=np.float64)
    if not np.all(np.isfinite(reward)):
        where = tuple(int(i) for i in np.argwhere(~np.isfinite(reward))[0])
        sub_env = f"sub-env {where[-1]}" + (f" of run {where[0]}" if len(where) == 2 else "")
        raise ValueError(f"non-finite reward {reward[where]} from {sub_env} {when}")
    terminated, truncated = np.asarray(terminated, bool), np.asarray(truncated, bool)
    state.episode_return += np.where(real, reward, 0.0)
    done = terminated | truncated
    finished, finished_returns = np.argwhere(done), state.episode_return[done]
    state.episode_return[done] = 0.0
    state.obs, state.reset_next = next_obs, done
    return EnvStep(reward=reward, terminated=terminated, truncated=truncated, info=info, real=real, done=done,
                   finished=finished, finished_returns=finished_returns)
