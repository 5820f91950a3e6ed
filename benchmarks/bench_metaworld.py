"""What a Meta-World budget buys: MuJoCo steps/s and SAC updates/s, as ratios in one run.

1. Env steps: pgx's ``mt10`` family (Meta-World's env classes, our goal sampling and one-hot)
   against Meta-World's own vector env ``gym.make_vec("Meta-World/MT10")``, 10 sub-envs each,
   the same random actions; both build their 50 goals per task, which is timed separately.
2. SAC updates (``pgx.algos.sac.update``): one multitask update drawing 64 transitions from each
   of MT10's tasks, against ten single-task updates of 64 (what ten separate SACs cost per
   step), and each multitask network against MT-SAC's shared MLP at the default profile's width.
Run by hand: ``OMP_NUM_THREADS=1 python benchmarks/bench_metaworld.py``.
"""

from __future__ import annotations

import time

import gymnasium as gym
import numpy as np
import torch
from _timing import best_time

from pgx.algos.sac import SACAgent, SACConfig, make_optimisers, update
from pgx.envs import make_family
from pgx.nets import KINDS, ArchConfig
from pgx.algos.sac_timing import synthetic_sac_batch

STEPS, WIDTH, BATCH = 300, 128, 64


def env_rate(env: gym.vector.VectorEnv, actions: np.ndarray) -> float:
    env.reset(seed=0)
    start = time.perf_counter()
    for a in actions:
        env.step(a)
    return actions.shape[0] * env.num_envs / (time.perf_counter() - start)


def main() -> None:
    torch.set_num_threads(1)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s)")
    family = make_family("mt10")
    actions = np.random.default_rng(0).uniform(-1, 1, (STEPS, family.n_tasks, family.num_actions)).astype(np.float32)
    start = time.perf_counter()
    ours = family.source_envs(range(family.n_tasks), 1)
    ours_build = time.perf_counter() - start
    start = time.perf_counter()
    theirs = gym.make_vec("Meta-World/MT10", vector_strategy="sync", seed=0)
    theirs_build = time.perf_counter() - start
    a, b = env_rate(ours, actions), env_rate(theirs, actions)
    print(f"MT10, 10 sub-envs, {STEPS} steps: pgx family {a:,.0f} steps/s, Meta-World's make_vec {b:,.0f} steps/s, "
          f"ratio {a / b:.2f}× (built in {ours_build:.1f} s vs {theirs_build:.1f} s)")

    rng = torch.Generator().manual_seed(0)
    rates = {}
    for kind in KINDS:
        arch = ArchConfig(kind=kind, hidden=WIDTH)
        cfg = SACConfig(actor_arch=arch, critic_arch=arch, batch_size=BATCH)
        agent = SACAgent.build(family, cfg, seed=0)
        opt = make_optimisers(agent, cfg)
        batch = synthetic_sac_batch(family, BATCH, range(family.n_tasks), 1)
        rates[kind] = 1 / best_time(lambda: update(agent, opt, batch, cfg, rng), repeats=10)
        if kind == "mlp":
            singles = [synthetic_sac_batch(family, BATCH, [t], 2 + t) for t in range(family.n_tasks)]
            loop = best_time(lambda: [update(agent, opt, s, cfg, rng) for s in singles], repeats=5)
            print(f"SAC update, mlp {WIDTH} wide: one multitask update of 10 × {BATCH} {1e3 / rates[kind]:.1f} ms, "
                  f"ten single-task updates of {BATCH} {loop * 1e3:.1f} ms, ratio {loop * rates[kind]:.2f}×")
    print("multitask SAC updates/s by network, and relative to MT-SAC's MLP: "
          + ", ".join(f"{k} {r:.0f}/s ({r / rates['mlp']:.2f}×)" for k, r in rates.items()))


if __name__ == "__main__":
    main()
