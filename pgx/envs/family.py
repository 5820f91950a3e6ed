"""What a task family is: tasks that share states and actions but differ in a task parameter.

A family is the one interface every stage needs, and the one a user implements to group their
own tasks (see :func:`gym_family` and :func:`pgx.envs.register_family`). It hands out
*vectorised* environments whose sub-environments may each run a different task:

* the task parameter is a scalar (CartPole's pole length, LunarLander's gravity) or a vector
  (a navigation goal); ``source_params`` and ``target_params`` hold one entry per task;
* observations of any shape are flattened for the MLP policies (highway's kinematics table);
* actions are ``Discrete`` (a Categorical policy) or ``Box`` (a Gaussian policy); Box actions are
  clipped to the bounds before they reach the env, as CleanRL's continuous PPO does;
* ``observe_task`` decides whether the task's one-hot is appended to the observation. With it,
  one network can learn each task separately and tasks stop competing; without it, one policy
  must serve tasks it can only tell apart through their dynamics, as MAML's unseen targets are.
  The family chapter measures which setting gives each family real conflict.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Sequence

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.vector.utils import batch_space

__all__ = ["TaskFamily", "TaskObservation", "one_hot_tasks", "as_param_array", "headless_pygame", "render_after"]

VecEnvFactory = Callable[[np.ndarray], gym.vector.VectorEnv]
"""``params (num_envs, param_dim) -> VectorEnv`` whose sub-env ``e`` runs the task ``params[e]``."""


@dataclass(frozen=True)
class TaskFamily:
    """A named set of source tasks (grouped by PolicyGradEx) and unseen target tasks.

    :param make_vec_env: ``params (num_envs, param_dim) -> VectorEnv``: the raw tasks, with their
        own observations; the family flattens them, appends the task one-hot and clips actions.
    :param observation_shape: shape of one raw observation (before flattening).
    :param action_space: the single-env action space, ``Discrete`` or ``Box``.
    """

    name: str
    parameter: str
    """Name (with unit) of what differs between tasks, for plots and tables."""
    source_params: tuple[Any, ...]
    """One task parameter per source task: a float, or a tuple of floats for vector parameters."""
    target_params: tuple[Any, ...]
    observation_shape: tuple[int, ...]
    action_space: spaces.Space
    max_episode_steps: int
    make_vec_env: VecEnvFactory = field(repr=False, compare=False)
    observe_task: bool = True
    """Append the source task's one-hot to the observation (zeros for unseen target tasks)."""
    description: str = ""
    """One sentence on what the tasks are, for the family chapter."""
    reward_range: tuple[float, float] | None = None
    """(worst, best) return of an episode where known, for plots (e.g. CartPole's (0, 500))."""
    planted_groups: tuple[int, ...] | None = None
    """The group of each source task where the family plants one (navigation's goal clusters):
    a grouping known in advance to compare estimated groups with. None where there is none."""
    render_frame: Callable[[np.ndarray], np.ndarray] | None = field(default=None, repr=False, compare=False)
    """``param (param_dim,) -> (H, W, 3)`` uint8 picture of one task, for the family chapter
    (None: the chapter draws the task parameters instead)."""
    merge_axis: int | None = None
    """Where the base vector env computes every sub-env elementwise and draws its randomness only
    as ``np_random.uniform(low, high, size)`` for the sub-envs it resets: the axis of ``size`` that
    runs over those sub-envs. Then many training runs' envs step as one, each run's draws from its
    own generator (:mod:`pgx.envs.runs`). None (the default): each run keeps an env of its own."""

    def __post_init__(self) -> None:
        if not isinstance(self.action_space, (spaces.Discrete, spaces.Box)):
            raise ValueError(f"{self.name}: action_space must be Discrete or Box, got {self.action_space}")
        if isinstance(self.action_space, spaces.Box) and len(self.action_space.shape) != 1:
            raise ValueError(f"{self.name}: a Box action space must be 1-D, got shape {self.action_space.shape}")
        if len(self.source_params) < 2:
            raise ValueError(f"{self.name}: need at least 2 source tasks to group, got {len(self.source_params)}")
        if self.planted_groups is not None and len(self.planted_groups) != len(self.source_params):
            raise ValueError(f"{self.name}: planted_groups has {len(self.planted_groups)} labels for "
                             f"{len(self.source_params)} source tasks")
        if self.max_episode_steps < 1:
            raise ValueError(f"{self.name}: max_episode_steps must be >= 1, got {self.max_episode_steps}")
        as_param_array(self.source_params, f"{self.name} source_params")
        if self.target_params:
            as_param_array(self.target_params, f"{self.name} target_params")

    # --- shapes ---

    @property
    def n_tasks(self) -> int:
        return len(self.source_params)

    @property
    def param_dim(self) -> int:
        return as_param_array(self.source_params).shape[1]

    @property
    def base_obs_dim(self) -> int:
        """Size of the flattened raw observation."""
        return math.prod(self.observation_shape)

    @property
    def obs_dim(self) -> int:
        """Observation size the policy sees: the flattened state, plus the task one-hot if shown."""
        return self.base_obs_dim + (self.n_tasks if self.observe_task else 0)

    @property
    def discrete(self) -> bool:
        return isinstance(self.action_space, spaces.Discrete)

    @property
    def num_actions(self) -> int:
        """Number of discrete actions, or the dimension of a Box action."""
        return int(self.action_space.n) if self.discrete else int(self.action_space.shape[0])

    def task_labels(self, params: Sequence[Any] | None = None) -> list[str]:
        """Short labels of tasks for plots: ``"0.5"`` or ``"(0.71, 0.71)"``."""
        values = as_param_array(self.source_params if params is None else params)
        if values.shape[1] == 1:
            return [f"{v:g}" for v in values[:, 0]]
        return ["(" + ", ".join(f"{x:.2g}" for x in row) + ")" for row in values]

    def with_options(self, **changes: Any) -> "TaskFamily":
        """A copy with some fields changed (e.g. ``observe_task=False``)."""
        return replace(self, **changes)

    # --- environments ---

    def check_tasks(self, task_ids: Sequence[int]) -> np.ndarray:
        ids = np.asarray(task_ids, dtype=np.int64).reshape(-1)
        if ids.size == 0:
            raise ValueError(f"{self.name}: task_ids is empty")
        bad = ids[(ids < 0) | (ids >= self.n_tasks)]
        if bad.size:
            raise ValueError(f"{self.name}: task id {int(bad[0])} is out of range [0, {self.n_tasks - 1}]")
        return ids

    def envs(self, params: Any, shown_task_ids: Sequence[int]) -> gym.vector.VectorEnv:
        """Vector env with one sub-env per row of ``params``, showing the one-hot of
        ``shown_task_ids[e]`` (-1: no task, zeros) when the family shows the task."""
        params = as_param_array(params, f"{self.name} params")
        shown = np.asarray(shown_task_ids, dtype=np.int64).reshape(-1)
        if shown.size != params.shape[0]:
            raise ValueError(f"{self.name}: {params.shape[0]} params but {shown.size} shown task ids")
        return TaskObservation(self.make_vec_env(params), shown, self.n_tasks if self.observe_task else 0,
                               self.action_space)

    def source_envs(self, task_ids: Sequence[int], envs_per_task: int = 1) -> gym.vector.VectorEnv:
        """Vectorised env with ``envs_per_task`` sub-envs for each source task in ``task_ids``, laid
        out as :meth:`source_env_tasks` says."""
        ids = self.source_env_tasks(task_ids, envs_per_task)
        return self.envs(as_param_array(self.source_params)[ids], ids)

    def source_env_tasks(self, task_ids: Sequence[int], envs_per_task: int = 1) -> np.ndarray:
        """The source task of each sub-env of ``source_envs(task_ids, envs_per_task)``: task-major,
        ``[t0, t0, ..., t1, t1, ...]``."""
        return np.repeat(self.check_tasks(task_ids), envs_per_task)

    def target_envs(self, target_ids: Sequence[int], envs_per_task: int = 1) -> gym.vector.VectorEnv:
        """Vectorised env over unseen target tasks; their one-hot is all zeros (no source id)."""
        ids = np.asarray(target_ids, dtype=np.int64).reshape(-1)
        if ids.size == 0 or ids.min() < 0 or ids.max() >= len(self.target_params):
            raise ValueError(
                f"{self.name}: target ids must be in [0, {len(self.target_params) - 1}], got {ids.tolist()}"
            )
        ids = np.repeat(ids, envs_per_task)
        return self.envs(as_param_array(self.target_params)[ids], np.full_like(ids, -1))


def as_param_array(params: Any, what: str = "params") -> np.ndarray:
    """Task parameters as a finite ``(num_tasks, param_dim)`` float64 array (scalars become one column)."""
    try:
        values = np.asarray(params, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be numbers or equal-length tuples of numbers, got {params!r}") from None
    if values.ndim == 1:
        values = values[:, None]
    if values.ndim != 2 or values.shape[0] == 0 or values.shape[1] == 0:
        raise ValueError(f"{what} must be a non-empty list of scalars or vectors, got shape {values.shape}")
    if not np.all(np.isfinite(values)):
        raise ValueError(f"{what} must be finite, got {values.tolist()}")
    return values


def one_hot_tasks(task_ids: np.ndarray, n_tasks: int) -> np.ndarray:
    """``(num_envs, n_tasks)`` float32 one-hots; a task id of -1 (unseen target) gives zeros."""
    out = np.zeros((len(task_ids), n_tasks), dtype=np.float32)
    known = task_ids >= 0
    out[np.flatnonzero(known), task_ids[known]] = 1.0
    return out


class TaskObservation(gym.vector.VectorWrapper):
    """Flattens observations to float32, appends a fixed task one-hot per sub-env, clips Box actions.

    The wrapped env keeps Gymnasium 1.x NEXT_STEP autoreset; nothing here changes episodes.
    """

    def __init__(self, env: gym.vector.VectorEnv, shown_task_ids: np.ndarray, n_tasks: int,
                 action_space: spaces.Space):
        super().__init__(env)
        self._one_hot = one_hot_tasks(np.asarray(shown_task_ids), n_tasks) if n_tasks else None
        base = env.single_observation_space
        low = np.broadcast_to(np.asarray(base.low, np.float32), base.shape).reshape(-1)
        high = np.broadcast_to(np.asarray(base.high, np.float32), base.shape).reshape(-1)
        if n_tasks:
            low, high = np.concatenate([low, np.zeros(n_tasks, np.float32)]), np.concatenate([high, np.ones(n_tasks, np.float32)])
        self.single_observation_space = spaces.Box(low, high, dtype=np.float32)
        self.observation_space = batch_space(self.single_observation_space, env.num_envs)
        self._box = action_space if isinstance(action_space, spaces.Box) else None

    def _observe(self, obs: np.ndarray) -> np.ndarray:
        flat = np.asarray(obs, dtype=np.float32).reshape(self.num_envs, -1)
        return flat if self._one_hot is None else np.concatenate([flat, self._one_hot], axis=1)

    def reset(self, *, seed: int | list[int] | None = None, options: dict[str, Any] | None = None):
        obs, info = self.env.reset(seed=seed, options=options)
        return self._observe(obs), info

    def step(self, actions: np.ndarray):
        actions = np.asarray(actions)
        if self._box is not None:
            actions = np.clip(actions, self._box.low, self._box.high).astype(self._box.dtype)
        obs, reward, terminated, truncated, info = self.env.step(actions)
        return self._observe(obs), reward, terminated, truncated, info


def headless_pygame() -> None:
    """Let pygame (Gymnasium's and highway-env's renderer) draw off-screen with no sound device,
    unless the user chose drivers: a book build has no display."""
    os.environ.setdefault("SDL_VIDEODRIVER", "offscreen")  # not "dummy": highway-env draws nothing under it
    os.environ.setdefault("SDL_AUDIODRIVER", "dummy")


def render_after(make_env: Callable[[], gym.Env], action: Any, steps: int) -> np.ndarray:
    """A task's picture: its env (built with ``render_mode="rgb_array"``) reset with seed 0, then
    ``action`` played ``steps`` times, so tasks that differ in their dynamics look different."""
    headless_pygame()
    env = make_env()
    try:
        env.reset(seed=0)
        for _ in range(steps):
            _, _, terminated, truncated, _ = env.step(action)
            if terminated or truncated:
                break
        return np.asarray(env.render())
    finally:
        env.close()
