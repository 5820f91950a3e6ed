"""CartPole tasks that differ in pole length.

Built on Gymnasium's own vectorised ``CartPoleVectorEnv``: its physics is written with numpy
broadcasting, so giving ``length`` (half the pole's length) one value per sub-env runs a different
task in each sub-env with no other change. Episodes end after 500 steps as in ``CartPole-v1``;
autoreset follows Gymnasium 1.x's NEXT_STEP mode (the step after a done resets that sub-env).

Why this range: the default half-length is 0.5 m. Short poles fall fast (angular acceleration
∝ 1/length), so they need quick, strong corrections; long poles fall slowly and punish
over-correction. Source tasks span 0.1–2.0 m log-uniformly so that these needs genuinely
differ; the family chapter measures the transfer between them.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces
from gymnasium.envs.classic_control.cartpole import CartPoleVectorEnv
from gymnasium.vector.utils import batch_space

from pgx.envs.family import TaskFamily, one_hot_tasks

__all__ = ["PoleLengthCartPole", "cartpole_family", "SOURCE_LENGTHS", "TARGET_LENGTHS"]

SOURCE_LENGTHS: tuple[float, ...] = tuple(float(x) for x in np.round(np.geomspace(0.1, 2.0, 10), 3))
"""Half pole lengths (m) of the 10 source tasks."""
TARGET_LENGTHS: tuple[float, ...] = tuple(float(x) for x in np.round(np.geomspace(0.075, 3.0, 50), 3))
"""Half pole lengths (m) of 50 unseen target tasks, from a wider range than the sources."""


class PoleLengthCartPole(CartPoleVectorEnv):
    """``CartPoleVectorEnv`` with one pole length per sub-env and a task one-hot in the observation."""

    def __init__(self, lengths: np.ndarray, task_ids: np.ndarray, n_tasks: int):
        lengths = np.asarray(lengths, dtype=np.float64)
        if lengths.ndim != 1 or lengths.size == 0:
            raise ValueError(f"lengths must be a non-empty 1-D array, got shape {lengths.shape}")
        if not np.all(np.isfinite(lengths)) or np.any(lengths <= 0):
            raise ValueError(f"pole lengths must be finite and > 0, got {lengths.tolist()}")
        super().__init__(num_envs=lengths.size, max_episode_steps=500)
        self.length = lengths
        self.polemass_length = self.masspole * lengths
        self.task_ids = np.asarray(task_ids, dtype=np.int64)
        self._one_hot = one_hot_tasks(self.task_ids, n_tasks)
        base = self.single_observation_space
        self.single_observation_space = spaces.Box(
            np.concatenate([base.low, np.zeros(n_tasks, np.float32)]),
            np.concatenate([base.high, np.ones(n_tasks, np.float32)]),
            dtype=np.float32,
        )
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)

    def step(self, action: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        obs, reward, terminated, truncated, info = super().step(np.asarray(action))
        return np.concatenate([obs, self._one_hot], axis=1), reward, terminated, truncated, info

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        obs, info = super().reset(seed=seed, options=options)
        return np.concatenate([obs, self._one_hot], axis=1), info


def cartpole_family() -> TaskFamily:
    return TaskFamily(
        name="cartpole",
        parameter="half pole length (m)",
        source_params=SOURCE_LENGTHS,
        target_params=TARGET_LENGTHS,
        base_obs_dim=4,
        num_actions=2,
        max_episode_steps=500,
        make_vec_env=PoleLengthCartPole,
    )
