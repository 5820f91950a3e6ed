"""Env steps per second of the families' vector envs, each compared with its baseline in the same run.

* CartPole: the vectorised family (one numpy step for 40 pole lengths) vs a loop over 40 single
  ``gymnasium.make("CartPole-v1")`` envs with their pole length set by hand.
* LunarLander: the family's 40 sub-envs in this process (``SyncVectorEnv``) and in 2 worker
  processes (``ProcessVectorEnv``) vs a loop over 40 single ``LunarLander-v3`` envs.
* highway: one env of the family's trimmed config vs stock ``highway-fast-v0`` (both at density 1),
  and 10 sub-envs (one per source task) on highway-env in 2 worker processes and in this process,
  and on envpool (the family's default backend since issue 21).

Both sides of a comparison step the same random actions; each time is the best of ``REPEATS`` runs
after a warm-up, with the sides alternating, since other jobs on a shared machine only ever slow a
run down. Env construction and worker start-up are excluded (start-up is printed separately).
Run by hand, about 2 minutes: ``python benchmarks/bench_envs.py``.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import gymnasium as gym
import numpy as np

from pgx.envs import make_family
from pgx.envs.highway import ENV_ID as HIGHWAY_ID

REPEATS = 3
CARTPOLE_ENVS, CARTPOLE_STEPS = 40, 2_000
LUNAR_ENVS, LUNAR_STEPS = 40, 500
HIGHWAY_SINGLE_STEPS = 150
HIGHWAY_ENVS_PER_TASK, HIGHWAY_STEPS = 1, 30


def interleaved_best(runs: dict[str, Callable[[], None]], repeats: int = REPEATS) -> dict[str, float]:
    """Best wall time of each run over ``repeats`` rounds after a warm-up round. Alternating the
    runs spreads other jobs' load over all of them instead of penalising whichever ran in a spike."""
    for run in runs.values():
        run()
    best = dict.fromkeys(runs, float("inf"))
    for _ in range(repeats):
        for name, run in runs.items():
            start = time.perf_counter()
            run()
            best[name] = min(best[name], time.perf_counter() - start)
    return best


def vector_run(env: gym.vector.VectorEnv, actions: np.ndarray) -> Callable[[], None]:
    """Steps ``env`` through ``actions (steps, num_envs)``; episodes autoreset, so runs can repeat."""
    env.reset(seed=0)

    def run() -> None:
        for a in actions:
            env.step(a)
    return run


def loop_run(envs: list[gym.Env], actions: np.ndarray) -> Callable[[], None]:
    """Steps single envs one after another, resetting each when its episode ends."""
    for i, env in enumerate(envs):
        env.reset(seed=i)

    def run() -> None:
        for a in actions:
            for env, ai in zip(envs, a):
                _, _, terminated, truncated, _ = env.step(int(ai))
                if terminated or truncated:
                    env.reset()
    return run


def family_env(spec: str, envs_per_task: int) -> tuple[gym.vector.VectorEnv, float]:
    """``spec``'s source envs and the seconds it took to build them (worker start-up included)."""
    start = time.perf_counter()
    family = make_family(spec)
    env = family.source_envs(range(family.n_tasks), envs_per_task)
    return env, time.perf_counter() - start


def report(title: str, steps: int, seconds: dict[str, float], ratios: list[tuple[str, str, str]]) -> None:
    """Seconds and steps/s per method, then the ``slow / fast`` time ratios named in ``ratios``."""
    print(f"\n{title}")
    print(f"  {'method':<46}{'seconds':>9}{'steps/s':>12}")
    for name, t in seconds.items():
        print(f"  {name:<46}{t:>9.3f}{steps / t:>12,.1f}")
    for name, slow, fast in ratios:
        print(f"  {name}: {seconds[slow] / seconds[fast]:.2f}x")


def cartpole(rng: np.random.Generator) -> None:
    actions = rng.integers(0, 2, size=(CARTPOLE_STEPS, CARTPOLE_ENVS))
    per_task = CARTPOLE_ENVS // make_family("cartpole").n_tasks
    vec, _ = family_env("cartpole", per_task)
    envs = []
    for length in np.repeat(make_family("cartpole").source_params, per_task):
        env = gym.make("CartPole-v1")
        env.unwrapped.length = float(length)
        env.unwrapped.polemass_length = env.unwrapped.masspole * float(length)
        envs.append(env)
    seconds = interleaved_best({"vectorised family (pgx)": vector_run(vec, actions),
                                "loop over single gymnasium envs": loop_run(envs, actions)})
    report(f"CartPole: {CARTPOLE_ENVS} sub-envs × {CARTPOLE_STEPS} steps", actions.size, seconds,
           [("vectorised speed-up over the loop", "loop over single gymnasium envs", "vectorised family (pgx)")])


def lunarlander(rng: np.random.Generator) -> None:
    from pgx.envs.lunarlander import make_lunarlander

    actions = rng.integers(0, 4, size=(LUNAR_STEPS, LUNAR_ENVS))
    family = make_family("lunarlander")
    per_task = LUNAR_ENVS // family.n_tasks
    sync, _ = family_env("lunarlander:processes=1", per_task)
    parallel, startup = family_env("lunarlander:processes=2", per_task)
    envs = [make_lunarlander(np.array([g])) for g in np.repeat(family.source_params, per_task)]
    names = ("SyncVectorEnv (processes=1)", "ProcessVectorEnv (processes=2)", "loop over single gymnasium envs")
    try:
        seconds = interleaved_best(dict(zip(names, (vector_run(sync, actions), vector_run(parallel, actions),
                                                    loop_run(envs, actions)))))
    finally:
        sync.close()
        parallel.close()
    report(f"LunarLander: {LUNAR_ENVS} sub-envs × {LUNAR_STEPS} steps", actions.size, seconds,
           [("SyncVectorEnv over the loop", names[2], names[0]), ("ProcessVectorEnv over the loop", names[2], names[1]),
            ("ProcessVectorEnv over SyncVectorEnv", names[0], names[1])])
    print(f"  ProcessVectorEnv start-up (2 workers, {LUNAR_ENVS} envs): {startup:.2f} s")


def highway(rng: np.random.Generator) -> None:
    from pgx.envs.highway import make_highway

    actions = rng.integers(0, 5, size=(HIGHWAY_SINGLE_STEPS, 1))
    names = (f"stock {HIGHWAY_ID}", "trimmed config (pgx)")
    seconds = interleaved_best({names[0]: loop_run([gym.make(HIGHWAY_ID, render_mode=None)], actions),
                                names[1]: loop_run([make_highway(np.array([1.0]))], actions)})
    report(f"highway: one env × {HIGHWAY_SINGLE_STEPS} steps (density 1)", actions.size, seconds,
           [("trimmed speed-up over stock", *names)])

    sync, _ = family_env("highway:backend=highway-env,processes=1", HIGHWAY_ENVS_PER_TASK)
    parallel, startup = family_env("highway:backend=highway-env,processes=2", HIGHWAY_ENVS_PER_TASK)
    fast, fast_startup = family_env("highway", HIGHWAY_ENVS_PER_TASK)
    actions = rng.integers(0, 5, size=(HIGHWAY_STEPS, sync.num_envs))
    names = ("highway-env, SyncVectorEnv (processes=1)", "highway-env, ProcessVectorEnv (processes=2)",
             "envpool (the family's default)")
    try:
        seconds = interleaved_best({names[0]: vector_run(sync, actions), names[1]: vector_run(parallel, actions),
                                    names[2]: vector_run(fast, actions)})
    finally:
        sync.close()
        parallel.close()
        fast.close()
    report(f"highway: {sync.num_envs} sub-envs (one per source task) × {HIGHWAY_STEPS} steps, trimmed config",
           actions.size, seconds, [("ProcessVectorEnv over SyncVectorEnv", *names[:2]),
                                   ("envpool over highway-env's ProcessVectorEnv (the family's old default)",
                                    names[1], names[2])])
    print(f"  ProcessVectorEnv start-up (2 workers, {sync.num_envs} envs): {startup:.2f} s; "
          f"envpool's: {fast_startup:.3f} s")


def main() -> None:
    rng = np.random.default_rng(0)
    start = time.perf_counter()
    cartpole(rng)
    lunarlander(rng)
    highway(rng)
    print(f"\ntotal {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
