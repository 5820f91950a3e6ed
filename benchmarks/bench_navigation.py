"""Env steps per second: the vectorised navigation env vs a loop over single-task navigation envs.

All sides step 40 goals (the 10 ``clusters`` source goals, 4 sub-envs each) with the same random
actions for the same number of steps: ``NavigationVectorEnv`` alone, the same env inside the
family's ``TaskObservation`` wrapper (what the stages step), and 40 ``Navigation2DEnv`` stepped
one after another (what a ``SyncVectorEnv`` does). Best of 3 runs each. Run by hand:
``python benchmarks/bench_navigation.py``.
"""

from __future__ import annotations

import numpy as np
from _timing import best_time

from pgx.envs import make_family
from pgx.envs.navigation import Navigation2DEnv, NavigationVectorEnv

NUM_ENVS, STEPS, REPEATS = 40, 2_000, 3


def goals() -> np.ndarray:
    """``(NUM_ENVS, 2)`` goals, task-major like ``TaskFamily.source_envs``."""
    family = make_family("navigation")
    return np.repeat(np.asarray(family.source_params), NUM_ENVS // family.n_tasks, axis=0)


def step_vector_env(env, actions: np.ndarray) -> None:
    env.reset(seed=0)
    for a in actions:
        env.step(a)


def step_single_envs(envs: list[Navigation2DEnv], actions: np.ndarray) -> None:
    for i, env in enumerate(envs):
        env.reset(seed=i)
    for a in actions:
        for env, ai in zip(envs, a):
            _, _, terminated, truncated, _ = env.step(ai)
            if terminated or truncated:
                env.reset()


def main() -> None:
    actions = np.random.default_rng(0).uniform(-0.1, 0.1, size=(STEPS, NUM_ENVS, 2)).astype(np.float32)
    family = make_family("navigation")
    vector = NavigationVectorEnv(goals())
    wrapped = family.source_envs(range(family.n_tasks), NUM_ENVS // family.n_tasks)
    singles = [Navigation2DEnv(g) for g in goals()]
    times = {
        "NavigationVectorEnv": best_time(lambda: step_vector_env(vector, actions), REPEATS),
        "family env (TaskObservation)": best_time(lambda: step_vector_env(wrapped, actions), REPEATS),
        "loop over single Navigation2DEnv": best_time(lambda: step_single_envs(singles, actions), REPEATS),
    }
    steps = STEPS * NUM_ENVS
    print(f"{NUM_ENVS} navigation goals × {STEPS} steps, best of {REPEATS}")
    print(f"{'method':<36}{'seconds':>9}{'steps/s':>12}")
    for method, seconds in times.items():
        print(f"{method:<36}{seconds:>9.3f}{steps / seconds:>12,.0f}")
    loop = times["loop over single Navigation2DEnv"]
    print(f"speed-up over the loop: vector env {loop / times['NavigationVectorEnv']:.1f}x, "
          f"family env {loop / times['family env (TaskObservation)']:.1f}x")


if __name__ == "__main__":
    main()
