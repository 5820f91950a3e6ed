"""Where LunarLander's training time goes: Box2D's physics, Gymnasium's Python around it, the
vector env's glue, the policy's passes and PPO's update.

The LunarLander family cannot move to envpool as highway did: envpool's ``LunarLander-v3`` has no
gravity option (the family's task parameter is gravity), so the family stays on Gymnasium's env.
This measures what such a run spends outside Box2D, the part pgx could cut.

One process, one torch thread, the family's default PPO settings (``default`` profile) for
``--steps`` env steps on all ten tasks with the sub-envs in this process (``processes=1``, so
cProfile sees the env; the family's default runs them in two worker processes). cProfile adds
overhead per Python call, so shares are indicative; the plain run's steps/s is printed too.
Run by hand: ``python benchmarks/bench_lunarlander.py`` (about a minute).
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace

import pandas as pd
from _timing import profile_shares

from pgx.algos.ppo import train
from pgx.envs import make_family
from pgx.profiles import get_profile

PARTS = {
    "Box2D physics (b2World.Step, C++)": ("~", "<built-in method Box2D._Box2D.b2World_Step>"),
    "LunarLander.step (Python, Box2D included)": ("lunar_lander.py", "step"),
    "vector env step (SyncVectorEnv, wrappers and family glue included)": ("family.py", "step"),
    "rollout (collect)": ("rollouts.py", "collect"),
    "PPO update: backward": ("~", "<method 'run_backward' of 'torch._C._EngineBase' objects>"),
    "policy and value layers (nn.Linear)": ("linear.py", "forward"),
}


def shares(steps: int, seed: int = 0) -> tuple[pd.DataFrame, float]:
    """cProfile's cumulative seconds of each part in ``PARTS`` and its share of the whole run."""
    family = make_family("lunarlander:processes=1")
    cfg = replace(get_profile("default").for_family("lunarlander").meta_ppo, total_timesteps=steps)
    train(family, [0], replace(cfg, total_timesteps=cfg.num_steps * cfg.envs_per_task), seed, progress=False)  # warm-up

    start = time.perf_counter()
    train(family, range(family.n_tasks), cfg, seed, progress=False)
    plain = time.perf_counter() - start

    table = profile_shares(lambda: train(family, range(family.n_tasks), cfg, seed, progress=False), "train", PARTS)
    table = table.assign(seconds=table["seconds"].round(2), share=table["share"].round(3))
    return table, steps / plain


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=102_400)
    args = parser.parse_args()
    table, rate = shares(args.steps)
    print(f"LunarLander family, {args.steps:,} PPO steps on 10 tasks, one process: {rate:,.0f} env steps/s "
          "without the profiler")
    print(table.to_string(index=False))
    seconds = table.set_index("part")["seconds"].to_numpy()
    box2d, lander, vector, rollout = seconds[:4]
    total = rollout / table["share"].iloc[3]
    print(f"of {total:.2f} s: Box2D {box2d:.2f} s ({box2d / total:.0%}); Gymnasium's Python around it "
          f"{lander - box2d:.2f} s ({(lander - box2d) / total:.0%}); vector env and wrappers {vector - lander:.2f} s "
          f"({(vector - lander) / total:.0%}); the rollout's policy passes and buffers {rollout - vector:.2f} s "
          f"({(rollout - vector) / total:.0%}); the update and the rest {total - rollout:.2f} s "
          f"({(total - rollout) / total:.0%})")

if __name__ == "__main__":
    main()
