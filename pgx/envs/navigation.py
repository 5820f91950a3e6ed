"""2-D navigation tasks that differ in where the goal is (the paper's Appendix C family).

A point starts at the origin and moves toward a goal on a circle of radius ``radius`` around it.
It observes only its own position, never the goal — as in MAML's 2-D navigation benchmark — so
one policy must serve every goal and tasks compete for one behaviour: nearby goals help each
other, opposite goals pull the policy apart. That is what makes goal grouping worth measuring.

Dynamics and reward (per step, per sub-env):

* the action is a velocity, clipped to ``[-0.1, 0.1]`` per coordinate (``MAX_SPEED``);
* ``position += clipped action``;
* ``reward = -‖position - goal‖ + bonus · [‖position - goal‖ <= threshold]``, on the new position
  (with :data:`SUCCESS_TOLERANCE` of slack on the threshold).

Episodes never terminate on success: they are truncated after ``max_steps`` steps, so the agent
must *stay* at the goal and collects the bonus every step it is within the threshold (ending on
success would make a fast arrival worth less than lingering just outside the threshold).

The paper's text lost the numbers of this family; radius 1, threshold 0.1, bonus 1 and 100 steps
are our defaults, all parameters of :func:`navigation_family`.

Goals: 50 target goals evenly spaced around the whole circle; 10 source goals from one of
:data:`SOURCE_ANGLES`' distributions: ``uniform`` (evenly spaced), ``partial`` (a half arc, so
half the targets lie outside the sources' range), ``biased`` (whole circle, 7 in one quarter) and
``clusters`` (three tight clusters, a planted grouping: :func:`planted_groups`).
"""

from __future__ import annotations

import math
from functools import partial
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.vector.utils import batch_space

from pgx.envs.family import TaskFamily

__all__ = [
    "CLUSTER_LABELS", "MAX_SPEED", "SOURCE_ANGLES", "SUCCESS_TOLERANCE", "TARGET_ANGLES", "Navigation2DEnv",
    "NavigationVectorEnv", "goals_on_circle", "navigation_family", "navigation_step", "oracle_return",
    "planted_groups", "start_positions", "straight_line_actions",
]

MAX_SPEED = 0.1
"""Largest velocity per coordinate and step; actions are clipped to ``[-MAX_SPEED, MAX_SPEED]``."""

SUCCESS_TOLERANCE = 1e-6
"""Slack on the threshold test. With the defaults a straight path at ``MAX_SPEED`` ends its 9th
step exactly ``threshold`` from the goal; without slack, float rounding would decide whether the
bonus fires there, and goals on one circle would differ in return by a whole bonus."""

_CLUSTER_CENTRES = (0.0, 2 * math.pi / 3, 4 * math.pi / 3)
_CLUSTER_OFFSETS = ((-0.15, -0.05, 0.05, 0.15), (-0.1, 0.0, 0.1), (-0.1, 0.0, 0.1))
"""Radians around each centre: goals 0.1 apart (the threshold at radius 1) within a cluster,
about 2.1 apart between clusters."""

SOURCE_ANGLES: dict[str, tuple[float, ...]] = {
    "uniform": tuple(2 * math.pi * k / 10 for k in range(10)),
    "partial": tuple(math.pi * k / 10 for k in range(10)),
    "biased": tuple(math.pi / 2 * (k + 0.5) / 7 for k in range(7))
    + (7 * math.pi / 8, 5 * math.pi / 4, 13 * math.pi / 8),
    "clusters": tuple(c + o for c, offsets in zip(_CLUSTER_CENTRES, _CLUSTER_OFFSETS) for o in offsets),
}
"""Angles (radians) of the 10 source goals of each distribution.

``partial`` covers the half arc [0, 0.9π]; ``biased`` puts 7 goals in the quarter [0, π/2) and 3
in the other three quarters; ``clusters`` puts 4 + 3 + 3 goals within ±0.15 rad of 0, 2π/3, 4π/3.
"""

TARGET_ANGLES: tuple[float, ...] = tuple(2 * math.pi * k / 50 for k in range(50))
"""Angles (radians) of the 50 unseen target goals, evenly spaced around the circle."""

CLUSTER_LABELS: tuple[int, ...] = tuple(i for i, offsets in enumerate(_CLUSTER_OFFSETS) for _ in offsets)
"""Planted cluster of each ``clusters`` source goal: ``(0, 0, 0, 0, 1, 1, 1, 2, 2, 2)``."""


# --- dynamics, shared by the vector and the single-task env ---

def navigation_step(
    positions: np.ndarray, goals: np.ndarray, actions: np.ndarray, threshold: float, bonus: float
) -> tuple[np.ndarray, np.ndarray]:
    """One step of every sub-env: clip, move, reward at the new position.

    :param positions: ``(..., 2)`` float64; :param goals: ``(..., 2)``; :param actions: ``(..., 2)``.
    :returns: new positions ``(..., 2)`` and rewards ``(...)``, float64.
    """
    moved = positions + np.clip(actions, -MAX_SPEED, MAX_SPEED)
    distance = np.linalg.norm(moved - goals, axis=-1)
    return moved, -distance + bonus * (distance <= threshold + SUCCESS_TOLERANCE)


def start_positions(rng: np.random.Generator, num: int, start_noise: float) -> np.ndarray:
    """``(num, 2)`` start positions: the origin, plus uniform noise in ±``start_noise`` per coordinate.

    Draws nothing from ``rng`` when ``start_noise`` is 0, so the start is exactly the origin.
    """
    if start_noise == 0:
        return np.zeros((num, 2))
    return rng.uniform(-start_noise, start_noise, size=(num, 2))


def _check_goals(params: Any) -> np.ndarray:
    try:
        goals = np.asarray(params, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"navigation goals must be numbers, got {params!r}") from None
    if goals.ndim != 2 or goals.shape[0] == 0 or goals.shape[1] != 2:
        raise ValueError(f"navigation goals must have shape (num_envs, 2), got shape {goals.shape}")
    if not np.all(np.isfinite(goals)):
        raise ValueError(f"navigation goals must be finite, got {goals.tolist()}")
    return goals


def _check_episode(threshold: float, bonus: float, max_steps: int, start_noise: float) -> None:
    if not threshold > 0 or not math.isfinite(threshold):
        raise ValueError(f"threshold must be > 0, got {threshold!r}")
    if not math.isfinite(bonus) or bonus < 0:
        raise ValueError(f"bonus must be finite and >= 0, got {bonus!r}")
    if isinstance(max_steps, bool) or not isinstance(max_steps, (int, np.integer)) or max_steps < 1:
        raise ValueError(f"max_steps must be an int >= 1, got {max_steps!r}")
    if not math.isfinite(start_noise) or start_noise < 0:
        raise ValueError(f"start_noise must be finite and >= 0, got {start_noise!r}")


def _check_actions(actions: Any, shape: tuple[int, ...]) -> np.ndarray:
    actions = np.asarray(actions, dtype=np.float64)
    if actions.shape != shape:
        raise ValueError(f"navigation actions must have shape {shape}, got {actions.shape}")
    if not np.all(np.isfinite(actions)):
        raise ValueError(f"navigation actions must be finite, got {actions.tolist()}")
    return actions


def _observation_space(max_steps: int, start_noise: float) -> spaces.Box:
    """Positions the agent can reach: ``start_noise`` plus ``max_steps`` steps of ``MAX_SPEED``."""
    reach = np.float32(start_noise + MAX_SPEED * max_steps)
    return spaces.Box(-reach, reach, (2,), np.float32)


_ACTION_SPACE = spaces.Box(-MAX_SPEED, MAX_SPEED, (2,), np.float32)


class NavigationVectorEnv(gym.vector.VectorEnv):
    """One goal per sub-env, stepped together with numpy (no loop over sub-envs).

    Autoreset is Gymnasium 1.x's NEXT_STEP: the step after a sub-env's truncation resets it,
    ignores its action and returns its start position with reward 0, not terminated, not truncated.

    :param params: ``(num_envs, 2)`` goals ``(x, y)``, one per sub-env.
    :param start_noise: half-width of a uniform start perturbation per coordinate; 0 starts every
        episode exactly at the origin.
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": [], "autoreset_mode": gym.vector.AutoresetMode.NEXT_STEP}

    def __init__(self, params: np.ndarray, *, threshold: float = 0.1, bonus: float = 1.0,
                 max_steps: int = 100, start_noise: float = 0.0):
        _check_episode(threshold, bonus, max_steps, start_noise)
        self.goals = _check_goals(params)
        self.num_envs = self.goals.shape[0]
        self.threshold, self.bonus, self.max_steps, self.start_noise = threshold, bonus, int(max_steps), start_noise
        self.single_observation_space = _observation_space(self.max_steps, start_noise)
        self.single_action_space = _ACTION_SPACE
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self.positions = np.zeros((self.num_envs, 2))
        self.steps = np.zeros(self.num_envs, dtype=np.int64)
        self.prev_done = np.zeros(self.num_envs, dtype=bool)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        self.positions = start_positions(self.np_random, self.num_envs, self.start_noise)
        self.steps[:] = 0
        self.prev_done[:] = False
        return self.positions.astype(np.float32), {}

    def step(self, actions: np.ndarray):
        actions = _check_actions(actions, (self.num_envs, 2))
        self.positions, reward = navigation_step(self.positions, self.goals, actions, self.threshold, self.bonus)
        self.steps += 1
        truncated = self.steps >= self.max_steps
        done = self.prev_done
        if done.any():
            self.positions[done] = start_positions(self.np_random, int(done.sum()), self.start_noise)
            self.steps[done] = 0
            reward[done] = 0.0
            truncated[done] = False
        self.prev_done = truncated
        terminated = np.zeros(self.num_envs, dtype=bool)
        return self.positions.astype(np.float32), reward, terminated, truncated.copy(), {}


class Navigation2DEnv(gym.Env):
    """One navigation task as a plain ``gym.Env`` (for ``check_env`` and by-hand use).

    Same dynamics as :class:`NavigationVectorEnv` through :func:`navigation_step`; like any
    single env it truncates after ``max_steps`` and waits for ``reset()``.

    :param goal: ``(2,)`` goal ``(x, y)``.
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": []}

    def __init__(self, goal: Any, *, threshold: float = 0.1, bonus: float = 1.0, max_steps: int = 100,
                 start_noise: float = 0.0):
        _check_episode(threshold, bonus, max_steps, start_noise)
        if np.shape(goal) != (2,):
            raise ValueError(f"a navigation goal is (x, y), got shape {np.shape(goal)}")
        self.goal = _check_goals([goal])[0]
        self.threshold, self.bonus, self.max_steps, self.start_noise = threshold, bonus, int(max_steps), start_noise
        self.observation_space = _observation_space(self.max_steps, start_noise)
        self.action_space = _ACTION_SPACE
        self.position = np.zeros(2)
        self.steps = 0

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        self.position = start_positions(self.np_random, 1, self.start_noise)[0]
        self.steps = 0
        return self.position.astype(np.float32), {}

    def step(self, action: np.ndarray):
        action = _check_actions(action, (2,))
        self.position, reward = navigation_step(self.position, self.goal, action, self.threshold, self.bonus)
        self.steps += 1
        return self.position.astype(np.float32), float(reward), False, self.steps >= self.max_steps, {}


# --- goals and the family ---

def _check_distribution(goals: str) -> None:
    if goals not in SOURCE_ANGLES:
        raise ValueError(f"unknown navigation goal distribution {goals!r}; choose one of {sorted(SOURCE_ANGLES)}")


def goals_on_circle(angles: Any, radius: float) -> tuple[tuple[float, float], ...]:
    """``(x, y)`` goals at ``angles`` (radians) on the circle of ``radius``, rounded to 1e-9 so
    labels read ``(0, 1)`` rather than ``(6.1e-17, 1)``."""
    angles = np.asarray(angles, dtype=np.float64)
    xy = np.round(radius * np.stack([np.cos(angles), np.sin(angles)], axis=1), 9) + 0.0  # + 0.0: no -0.0
    return tuple((float(x), float(y)) for x, y in xy)


def planted_groups(goals: str = "clusters") -> np.ndarray | None:
    """The planted group of each source goal of distribution ``goals``: an int array ``(10,)``
    for ``clusters`` (:data:`CLUSTER_LABELS`), None for distributions without a plant."""
    _check_distribution(goals)
    return np.array(CLUSTER_LABELS) if goals == "clusters" else None


def navigation_family(goals: str = "clusters", radius: float = 1.0, threshold: float = 0.1, bonus: float = 1.0,
                      max_steps: int = 100, start_noise: float = 0.0) -> TaskFamily:
    """The navigation family with source goals from distribution ``goals`` (see :data:`SOURCE_ANGLES`).

    The task is not shown to the policy (``observe_task=False``): the goal is what tasks must
    compete over. ``make_family("navigation:observe_task=true")`` shows it.

    :param radius: distance of every goal from the origin (the start).
    :param start_noise: see :class:`NavigationVectorEnv`.
    """
    _check_distribution(goals)
    if not radius > 0 or not math.isfinite(radius):
        raise ValueError(f"radius must be > 0, got {radius!r}")
    _check_episode(threshold, bonus, max_steps, start_noise)
    return TaskFamily(
        name="navigation",
        parameter="goal (x, y)",
        source_params=goals_on_circle(SOURCE_ANGLES[goals], radius),
        target_params=goals_on_circle(TARGET_ANGLES, radius),
        observation_shape=(2,),
        action_space=spaces.Box(-MAX_SPEED, MAX_SPEED, (2,), np.float32),
        max_episode_steps=int(max_steps),
        make_vec_env=partial(NavigationVectorEnv, threshold=threshold, bonus=bonus, max_steps=max_steps,
                             start_noise=start_noise),
        observe_task=False,
        description=f"move a point from the origin to an unseen goal on a circle of radius {radius:g}; "
                    f"tasks differ in the goal's angle ({goals} source goals)",
        planted_groups=None if goals != "clusters" else CLUSTER_LABELS,
        merge_axis=0,  # NavigationVectorEnv draws start positions as uniform(size=(k, 2))
    )


# --- the straight-line oracle, a reference for trained policies ---

def straight_line_actions(positions: np.ndarray, goals: np.ndarray) -> np.ndarray:
    """Velocity straight toward the goal at speed ``MAX_SPEED`` (Euclidean), or onto the goal when
    it is nearer than that; then zero.

    :param positions: ``(..., 2)``; :param goals: ``(..., 2)``. :returns: ``(..., 2)`` actions.

    The action box allows √2 · MAX_SPEED along a diagonal, so a policy can beat this oracle
    slightly; it is the MAML benchmark's reference behaviour, not an upper bound.
    """
    delta = np.asarray(goals, dtype=np.float64) - np.asarray(positions, dtype=np.float64)
    distance = np.linalg.norm(delta, axis=-1, keepdims=True)
    return delta * np.minimum(1.0, MAX_SPEED / np.maximum(distance, 1e-12))


def oracle_return(goals: Any, *, threshold: float = 0.1, bonus: float = 1.0, max_steps: int = 100) -> np.ndarray:
    """Undiscounted return of one episode of :func:`straight_line_actions` from the origin, per goal.

    Simulated with :class:`NavigationVectorEnv` itself so it cannot drift from the env.

    :param goals: ``(num_goals, 2)``, e.g. a family's ``target_params``. :returns: ``(num_goals,)``.
    """
    env = NavigationVectorEnv(goals, threshold=threshold, bonus=bonus, max_steps=max_steps)
    positions, _ = env.reset(seed=0)
    total = np.zeros(env.num_envs)
    for _ in range(env.max_steps):
        positions, reward, _, _, _ = env.step(straight_line_actions(positions, env.goals))
        total += reward
    return total
