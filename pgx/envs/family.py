"""What a task family is: tasks that share states and actions but differ in one physical parameter.

A family hands out *vectorised* environments whose sub-environments may each run a different
task. The task's identity is appended to the observation as a one-hot vector so that one
multitask policy can tell the tasks apart (the paper's multitask meta-policy).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

import gymnasium as gym
import numpy as np

__all__ = ["TaskFamily", "one_hot_tasks"]


@dataclass(frozen=True)
class TaskFamily:
    """A named set of source tasks (grouped by PolicyGradEx) and unseen target tasks.

    ``make_vec_env(params, task_ids, n_tasks)`` builds a Gymnasium ``VectorEnv`` with one sub-env
    per entry of ``params``; sub-env ``e`` runs the task with parameter ``params[e]`` and shows
    the one-hot of ``task_ids[e]`` (out of ``n_tasks``) in its observation.
    """

    name: str
    parameter: str
    """Name of the physical parameter that differs between tasks (for plots and tables)."""
    source_params: tuple[float, ...]
    target_params: tuple[float, ...]
    base_obs_dim: int
    num_actions: int
    max_episode_steps: int
    make_vec_env: Callable[[np.ndarray, np.ndarray, int], gym.vector.VectorEnv] = field(repr=False)

    @property
    def n_tasks(self) -> int:
        return len(self.source_params)

    @property
    def obs_dim(self) -> int:
        """Observation size the policy sees: the physical state plus the task one-hot."""
        return self.base_obs_dim + self.n_tasks

    def check_tasks(self, task_ids: Sequence[int]) -> np.ndarray:
        ids = np.asarray(task_ids, dtype=np.int64).reshape(-1)
        if ids.size == 0:
            raise ValueError(f"{self.name}: task_ids is empty")
        bad = ids[(ids < 0) | (ids >= self.n_tasks)]
        if bad.size:
            raise ValueError(
                f"{self.name}: task id {int(bad[0])} is out of range [0, {self.n_tasks - 1}]"
            )
        return ids

    def source_envs(self, task_ids: Sequence[int], envs_per_task: int = 1) -> gym.vector.VectorEnv:
        """Vectorised env with ``envs_per_task`` sub-envs for each source task in ``task_ids``.

        Sub-envs are laid out task-major: ``[t0, t0, ..., t1, t1, ...]``.
        """
        ids = np.repeat(self.check_tasks(task_ids), envs_per_task)
        params = np.asarray(self.source_params, dtype=np.float64)[ids]
        return self.make_vec_env(params, ids, self.n_tasks)

    def target_envs(self, target_ids: Sequence[int], envs_per_task: int = 1) -> gym.vector.VectorEnv:
        """Vectorised env over unseen target tasks; their one-hot is all zeros (no source id)."""
        ids = np.asarray(target_ids, dtype=np.int64).reshape(-1)
        if ids.size == 0 or ids.min() < 0 or ids.max() >= len(self.target_params):
            raise ValueError(
                f"{self.name}: target ids must be in [0, {len(self.target_params) - 1}], got {ids.tolist()}"
            )
        ids = np.repeat(ids, envs_per_task)
        params = np.asarray(self.target_params, dtype=np.float64)[ids]
        return self.make_vec_env(params, np.full_like(ids, -1), self.n_tasks)


def one_hot_tasks(task_ids: np.ndarray, n_tasks: int) -> np.ndarray:
    """``(num_envs, n_tasks)`` float32 one-hots; a task id of -1 (unseen target) gives zeros."""
    out = np.zeros((len(task_ids), n_tasks), dtype=np.float32)
    known = task_ids >= 0
    out[np.flatnonzero(known), task_ids[known]] = 1.0
    return out
