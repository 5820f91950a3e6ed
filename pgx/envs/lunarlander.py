"""LunarLander tasks that differ in gravity.

Gymnasium's ``LunarLander-v3`` (discrete: no-op, left, main, right engine), wind off, episodes
capped at the spec's 1000 steps. Gymnasium accepts gravities in (−12, 0) m/s²; the default is −10.

Why this range: the 10 source tasks are −11, −10, …, −2 m/s², one apart, and the 50 unseen target
tasks are spread evenly over the same range. The main engine's thrust is fixed, so strong gravity
leaves little margin to brake (a late burn crashes), while weak gravity makes the lander float and
drift and punishes the same burn with overshoot and fuel cost. Gymnasium's hand-written controller,
tuned for −10, shows the conflict (mean return of 10 seeded episodes): 185 at −11, 265 at −10,
286 at −6, 195 at −2 (with failed episodes only at the ends), so no one policy is best for every task.

Why one process by default: a lander step costs ~25–40 µs, about what a pipe round trip to a
worker costs (~130 µs per worker and step, measured with CartPole), so two workers gain little and
lose much when the cores are busy. ``benchmarks/bench_envs.py`` (40 sub-envs × 500 steps, same
random actions, best of 3 alternating runs) on this 2-core machine: with one core free (load ≈ 1.3),
``SyncVectorEnv`` 26,500 steps/s and ``processes=2`` (:class:`~pgx.envs.parallel.ProcessVectorEnv`)
31,800 (1.2×; 1.1–1.2× in two more runs of 12 rounds); while other jobs kept both cores busy
(load ≈ 3), 17,700–26,300 vs 12,800–16,500 steps/s (0.49–0.93× over three runs). Workers also
take 0.8–2.5 s to start for every new vector env. ``lunarlander:processes=2`` is one option away.
A loop over 40 single envs, which is what ``SyncVectorEnv`` does, ran at 18,100–29,700 steps/s.
"""

from __future__ import annotations

from collections.abc import Sequence

import gymnasium as gym
import numpy as np

from pgx.envs.family import TaskFamily, as_param_array, render_after
from pgx.envs.gym_family import gym_family

__all__ = ["lunarlander_family", "make_lunarlander", "lunarlander_frame", "SOURCE_GRAVITIES", "TARGET_GRAVITIES", "DEFAULT_PROCESSES"]

SOURCE_GRAVITIES: tuple[float, ...] = tuple(float(g) for g in np.arange(-11.0, -1.0, 1.0))
"""Gravities (m/s²) of the 10 source tasks: −11 … −2."""
TARGET_GRAVITIES: tuple[float, ...] = tuple(float(g) for g in np.round(np.linspace(-11.0, -2.0, 50), 3))
"""Gravities (m/s²) of 50 unseen target tasks over the same range."""

DEFAULT_PROCESSES = 1
"""Worker processes for the sub-envs: one, the safer choice on a shared 2-core machine (see the module docstring)."""


def make_lunarlander(param: np.ndarray) -> gym.Env:
    """``LunarLander-v3`` with gravity ``param[0]`` (m/s²), wind off; module-level so workers can unpickle it."""
    gravity = _check_gravities(param)[0]
    return gym.make("LunarLander-v3", gravity=gravity, enable_wind=False)


def lunarlander_frame(param: np.ndarray) -> np.ndarray:
    """Gymnasium's drawing of the lander after 60 steps of free fall under gravity ``param[0]``."""
    gravity = _check_gravities(param)[0]
    return render_after(lambda: gym.make("LunarLander-v3", gravity=gravity, enable_wind=False, render_mode="rgb_array"),
                        action=0, steps=60)


def _check_gravities(params: Sequence[float] | np.ndarray) -> np.ndarray:
    """Gravities as a float array; Gymnasium asserts (−12, 0), we raise a ValueError naming the value."""
    values = as_param_array(params, "gravities")
    if values.shape[1] != 1:
        raise ValueError(f"a LunarLander task has one parameter (gravity), got {values.shape[1]} per task")
    bad = values[(values <= -12.0) | (values >= 0.0)]
    if bad.size:
        raise ValueError(f"gravity must be in (-12, 0) m/s², got {float(bad[0])}")
    return values[:, 0]


def lunarlander_family(
    processes: int = DEFAULT_PROCESSES,
    source_gravities: Sequence[float] = SOURCE_GRAVITIES,
    target_gravities: Sequence[float] = TARGET_GRAVITIES,
) -> TaskFamily:
    """LunarLander tasks with one gravity each.

    :param processes: worker processes for the sub-envs (1: ``SyncVectorEnv`` in this process).
    :param source_gravities: gravities (m/s², in (−12, 0)) of the source tasks.
    :param target_gravities: gravities of the unseen target tasks.
    """
    _check_gravities(source_gravities)
    _check_gravities(target_gravities)
    return gym_family(
        "lunarlander", make_lunarlander, source_gravities, target_gravities, "gravity (m/s²)",
        processes=processes, render_frame=lunarlander_frame,
        description=f"land between the flags; tasks differ in gravity "
                    f"({min(source_gravities):g} to {max(source_gravities):g} m/s²)",
    )

