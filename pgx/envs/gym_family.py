"""A task family from any Gymnasium env with one varied parameter: the way to group your own tasks.

Most envs are scalar (one episode per ``Env``), as Box2D's LunarLander and highway-env are. Give
a function ``make_env(param) -> gym.Env`` and the task parameters; :func:`gym_family` probes one
env for its spaces and episode length and vectorises with Gymnasium's ``SyncVectorEnv``, or runs
the sub-envs in worker processes (``processes > 1``, :class:`pgx.envs.parallel.ProcessVectorEnv`)
when one env step costs more than the pipe between processes.

Example — Pendulum under ten gravities, then ``python -m pgx affinity --family pendulum-gravity``
(with ``PGX_PLUGINS=my_tasks``, the module holding this code)::

    import gymnasium as gym
    from pgx.envs import gym_family, register_family

    def make_pendulum(g):  # g: the task parameter as a (1,) array
        return gym.make("Pendulum-v1", g=float(g[0]))

    def pendulum_family():
        return gym_family(
            "pendulum-gravity", make_pendulum,
            source_params=[2.0, 3.0, 4.0, 5.0, 6.5, 8.0, 9.81, 12.0, 15.0, 20.0],
            target_params=[2.5, 7.0, 11.0, 17.5], parameter="gravity (m/s²)")

    register_family("pendulum-gravity", pendulum_family)

``make_env`` must be a module-level function (not a lambda) where sub-envs run in worker
processes or fine-tuning runs in parallel: both pickle it.
"""

from __future__ import annotations

import multiprocessing
from functools import partial
from typing import Any, Callable, Sequence

import gymnasium as gym
import numpy as np

from pgx.envs.family import TaskFamily, as_param_array

__all__ = ["gym_family"]


def gym_family(
    name: str,
    make_env: Callable[[np.ndarray], gym.Env],
    source_params: Sequence[Any],
    target_params: Sequence[Any],
    parameter: str,
    *,
    max_episode_steps: int | None = None,
    observe_task: bool = True,
    processes: int = 1,
    description: str = "",
    reward_range: tuple[float, float] | None = None,
    render_frame: Callable[[np.ndarray], np.ndarray] | None = None,
) -> TaskFamily:
    """A :class:`TaskFamily` whose sub-env ``e`` is ``make_env(params[e])``.

    :param make_env: ``param (param_dim,) float64 array -> gym.Env``; the env must end episodes
        itself (a ``TimeLimit``, as ``gym.make`` adds) so that every episode is finite.
    :param max_episode_steps: episode cap used by evaluation; default: the env's ``spec``.
    :param processes: > 1 runs the sub-envs in that many worker processes.
    :param render_frame: ``param -> (H, W, 3)`` picture of a task for the family chapter (optional).
    """
    if not callable(make_env):
        raise ValueError(f"make_env must be callable, got {make_env!r}")
    if not isinstance(processes, int) or processes < 1:
        raise ValueError(f"processes must be an int >= 1, got {processes!r}")
    sources = as_param_array(source_params, f"{name} source_params")
    probe = make_env(sources[0])
    try:
        if not isinstance(probe, gym.Env):
            raise ValueError(f"make_env must return a gymnasium.Env, got {type(probe).__name__}")
        steps = max_episode_steps or (probe.spec.max_episode_steps if probe.spec is not None else None)
        if not steps:
            raise ValueError(f"{name}: the env has no time limit; pass max_episode_steps (and wrap it in TimeLimit)")
        observation_shape, action_space = tuple(probe.observation_space.shape), probe.action_space
    finally:
        probe.close()
    return TaskFamily(
        name=name, parameter=parameter, source_params=_as_tuples(source_params),
        target_params=_as_tuples(target_params), observation_shape=observation_shape, action_space=action_space,
        max_episode_steps=int(steps), make_vec_env=partial(_vector_env, make_env, processes),
        observe_task=observe_task, description=description, reward_range=reward_range, render_frame=render_frame,
    )


def _as_tuples(params: Sequence[Any]) -> tuple[Any, ...]:
    """Scalars stay floats, vectors become tuples: hashable, readable in a repr."""
    if len(params) == 0:
        return ()
    values = as_param_array(params)
    return tuple(float(v[0]) for v in values) if values.shape[1] == 1 and np.ndim(params[0]) == 0 else \
        tuple(tuple(float(x) for x in v) for v in values)


def _vector_env(make_env: Callable[[np.ndarray], gym.Env], processes: int, params: np.ndarray) -> gym.vector.VectorEnv:
    """Sub-envs in worker processes only from a main process. Inside a worker (joblib's parallel
    fine-tuning, a Dask worker) the work is already spread over the cores, and a loky worker
    cannot start forkserver or spawn children at all (its start method, 'loky', does not exist in
    them), so the sub-envs run in that worker."""
    fns = [partial(make_env, row.copy()) for row in params]
    if processes > 1 and len(fns) > 1 and multiprocessing.parent_process() is None:
        from pgx.envs.parallel import ProcessVectorEnv

        return ProcessVectorEnv(fns, processes=min(processes, len(fns)))
    return gym.vector.SyncVectorEnv(fns)
