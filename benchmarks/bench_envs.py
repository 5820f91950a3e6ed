"""Env steps per second: the vectorised CartPole family vs a loop over single Gymnasium envs.

Both sides step 40 pole-length tasks with the same random actions for the same number of steps;
the loop side is 40 ``gymnasium.make("CartPole-v1")`` envs with their pole length set by hand,
stepped one after another (what a ``SyncVectorEnv`` does). Run by hand:
``python benchmarks/bench_envs.py``.
"""

from __future__ import annotations

import time

import gymnasium as gym
import numpy as np

from pgx.envs import make_family

NUM_ENVS, STEPS = 40, 2_000


def vectorised(actions: np.ndarray) -> float:
    family = make_family("cartpole")
    env = family.source_envs(range(family.n_tasks), NUM_ENVS // family.n_tasks)
    env.reset(seed=0)
    start = time.perf_counter()
    for a in actions:
        env.step(a)
    return time.perf_counter() - start


def single_env_loop(actions: np.ndarray) -> float:
    family = make_family("cartpole")
    lengths = np.repeat(family.source_params, NUM_ENVS // family.n_tasks)
    envs = []
    for i, length in enumerate(lengths):
        env = gym.make("CartPole-v1")
        env.unwrapped.length = float(length)
        env.unwrapped.polemass_length = env.unwrapped.masspole * float(length)
        env.reset(seed=i)
        envs.append(env)
    start = time.perf_counter()
    for a in actions:
        for env, ai in zip(envs, a):
            _, _, terminated, truncated, _ = env.step(int(ai))
            if terminated or truncated:
                env.reset()
    return time.perf_counter() - start


def main() -> None:
    actions = np.random.default_rng(0).integers(0, 2, size=(STEPS, NUM_ENVS))
    t_vec, t_loop = vectorised(actions), single_env_loop(actions)
    steps = STEPS * NUM_ENVS
    print(f"{NUM_ENVS} CartPole tasks × {STEPS} steps")
    print(f"{'method':<34}{'seconds':>9}{'steps/s':>12}")
    print(f"{'vectorised family (pgx)':<34}{t_vec:>9.3f}{steps / t_vec:>12,.0f}")
    print(f"{'loop over single gymnasium envs':<34}{t_loop:>9.3f}{steps / t_loop:>12,.0f}")
    print(f"speed-up: {t_loop / t_vec:.1f}x")


if __name__ == "__main__":
    main()
