"""A tiny Gymnasium env whose every step is known in advance, shared by the rollout-mask and
evaluation tests: the observation counts the episode's steps, the reward is ``1 + action``, and the
episode terminates after ``length`` steps (or is truncated by a ``TimeLimit`` first)."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
from gymnasium import spaces


class CountingEnv(gym.Env):
    """Observation: steps taken in this episode. Reward ``1 + action``. Terminates after ``length`` steps."""

    observation_space = spaces.Box(0.0, 100.0, (1,), np.float32)
    action_space = spaces.Discrete(2)

    def __init__(self, length: int):
        self.length, self.t = length, 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return np.array([0.0], np.float32), {}

    def step(self, action):
        self.t += 1
        return np.array([self.t], np.float32), 1.0 + float(action), self.t >= self.length, False, {}


def counting_env(param: np.ndarray, time_limit: int) -> gym.Env:
    """``CountingEnv(param[0])`` under a ``TimeLimit`` of ``time_limit`` steps."""
    return gym.wrappers.TimeLimit(CountingEnv(int(param[0])), time_limit)
