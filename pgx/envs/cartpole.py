"""CartPole tasks that differ in pole length.

Built on Gymnasium's own vectorised ``CartPoleVectorEnv``: its physics is written with numpy
broadcasting, so giving ``length`` (half the pole's length) one value per sub-env runs a different
task in each sub-env with no other change. Episodes end after 500 steps as in ``CartPole-v1``;
autoreset follows Gymnasium 1.x's NEXT_STEP mode (the step after a done resets that sub-env).

Why this range: the default half-length is 0.5 m. Short poles fall fast (angular acceleration
∝ 1/length), so they need quick, strong corrections; long poles fall slowly and punish
over-correction. Source tasks span 0.05–5.0 m log-uniformly, the range MBTL (Cho et al., 2024)
uses for its CartPole pole-length family: at the short end a 10 N push every 20 ms is barely fast
enough, so a meta-policy is good but not perfect there and fine-tuning has something to improve.

``cartpole:actuators=mixed`` is a family with two natural regimes: five pole lengths over the same
range, each once with the cart's motor as built and once wired in reverse (a push "left" moves the
cart right: the force's sign is a second task parameter). No policy that cannot tell the regimes
apart can serve both, so the task is hidden by default (``observe_task=false``) and the regimes are
what subsets compete over; they are given as ``planted_groups`` only so that the book can score
groupings against them — the tasks themselves are plain CartPole physics.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.envs.classic_control.cartpole import CartPoleVectorEnv

from pgx.envs.family import TaskFamily, as_param_array, headless_pygame

__all__ = ["PoleLengthCartPole", "RegimeCartPole", "cartpole_family", "cartpole_frame", "SOURCE_LENGTHS",
           "TARGET_LENGTHS", "ACTUATORS"]

ACTUATORS = ("normal", "mixed")
"""``cartpole:actuators=``: every motor as built, or half the tasks with theirs reversed."""

SOURCE_LENGTHS: tuple[float, ...] = tuple(float(x) for x in np.round(np.geomspace(0.05, 5.0, 10), 3))
"""Half pole lengths (m) of the 10 source tasks."""
TARGET_LENGTHS: tuple[float, ...] = tuple(float(x) for x in np.round(np.geomspace(0.05, 5.0, 50), 3))
"""Half pole lengths (m) of 50 unseen target tasks over the same range."""


class PoleLengthCartPole(CartPoleVectorEnv):
    """``CartPoleVectorEnv`` with one pole half-length per sub-env: ``params (num_envs, 1)``."""

    def __init__(self, params: np.ndarray):
        lengths = _check_lengths(params)
        super().__init__(num_envs=lengths.size, max_episode_steps=500)
        self.length = lengths
        self.polemass_length = self.masspole * lengths


class RegimeCartPole(CartPoleVectorEnv):
    """``CartPoleVectorEnv`` with one (half pole length, motor direction ±1) per sub-env:
    ``params (num_envs, 2)``; Gymnasium's step multiplies the push by ``force_mag`` elementwise."""

    def __init__(self, params: np.ndarray):
        values = as_param_array(params, "pole lengths and motor directions")
        if values.shape[1] != 2:
            raise ValueError(f"a two-regime CartPole task has two parameters (half pole length, motor direction), "
                             f"got {values.shape[1]} per task")
        lengths, directions = _check_lengths(values[:, :1]), values[:, 1]
        if not np.all(np.isin(directions, (-1.0, 1.0))):
            raise ValueError(f"motor directions must be +1 or -1, got {directions[~np.isin(directions, (-1.0, 1.0))][0]}")
        super().__init__(num_envs=lengths.size, max_episode_steps=500)
        self.length = lengths
        self.polemass_length = self.masspole * lengths
        self.force_mag = self.force_mag * directions


def _check_lengths(params: np.ndarray) -> np.ndarray:
    values = as_param_array(params, "pole lengths")
    if values.shape[1] != 1:
        raise ValueError(f"a CartPole task has one parameter (half pole length), got {values.shape[1]} per task")
    if np.any(values <= 0):
        raise ValueError(f"pole lengths must be > 0 m, got {values[values <= 0][0]}")
    return values[:, 0]


def cartpole_family(actuators: str = "normal") -> TaskFamily:
    """The pole-length family; ``actuators="mixed"``: the two-regime family of the module docstring."""
    if actuators not in ACTUATORS:
        raise ValueError(f"actuators must be one of {ACTUATORS}, got {actuators!r}")
    if actuators == "mixed":
        return _regime_family()
    _check_lengths(np.asarray(SOURCE_LENGTHS))
    return TaskFamily(
        name="cartpole",
        parameter="half pole length (m)",
        source_params=SOURCE_LENGTHS,
        target_params=TARGET_LENGTHS,
        observation_shape=(4,),
        action_space=spaces.Discrete(2),
        max_episode_steps=500,
        make_vec_env=PoleLengthCartPole,
        description="balance a pole on a cart; tasks differ in the pole's half length (0.05–5 m)",
        reward_range=(0.0, 500.0),
        render_frame=cartpole_frame,
        merge_axis=1,  # CartPoleVectorEnv draws reset states as uniform(size=(4, k))
    )


def _regime_family() -> TaskFamily:
    lengths = tuple(float(x) for x in np.round(np.geomspace(0.05, 5.0, 5), 3))
    targets = tuple(float(x) for x in np.round(np.geomspace(0.05, 5.0, 25), 3))
    source = tuple((length, direction) for direction in (1.0, -1.0) for length in lengths)
    return TaskFamily(
        name="cartpole",
        parameter="(half pole length (m), motor direction)",
        source_params=source,
        target_params=tuple((length, direction) for direction in (1.0, -1.0) for length in targets),
        observation_shape=(4,),
        action_space=spaces.Discrete(2),
        max_episode_steps=500,
        make_vec_env=RegimeCartPole,
        observe_task=False,
        description="balance a pole on a cart; tasks differ in the pole's half length (0.05–5 m) and in whether "
                    "the cart's motor is reversed (two regimes)",
        reward_range=(0.0, 500.0),
        planted_groups=tuple(0 if direction > 0 else 1 for _, direction in source),
        render_frame=cartpole_frame,
        merge_axis=1,
    )


def cartpole_frame(param: np.ndarray) -> np.ndarray:
    """Gymnasium's own drawing of one task after a few pushes (the pole drawn at its length; a
    reversed motor is not drawn)."""
    headless_pygame()
    env = gym.make("CartPole-v1", render_mode="rgb_array")
    env.unwrapped.length = float(_check_lengths(np.asarray(param).reshape(1, -1)[:, :1])[0])
    env.unwrapped.polemass_length = env.unwrapped.masspole * env.unwrapped.length
    env.reset(seed=0)
    for _ in range(3):
        env.step(1)
    frame = env.render()
    env.close()
    return frame
