"""Fine-tunings per core-hour: R PPO runs batched in one process (``pgx.algos.ppo_batch.train_many``)
against today's ways before batching — ``train`` called run after run in one process, and ``train``
over joblib's loky with 2 processes (what the truth stage did on this 2-core machine) — same run.

Batched runs are timed both ways: ``exact=True`` (bit for bit ``train``) and ``exact=False``
(padded minibatches, within float tolerance). Each family uses the ``default`` profile's
``finetune_ppo`` config as it is, on random subsets of 5 source tasks (one subset per run, seeds
0, 1, ...), all from one fixed initial actor-critic (a stand-in for θ*: the cost of a run hardly
depends on the weights). Batched runs take the first R of the run list; sequential and loky take
the first ``--sequential-runs`` / ``--loky-runs`` of it.

Per-core rates: sequential and batched use one thread, so a run costs wall × 1 core; loky costs
wall × 2 cores. CPU time (``time.process_time``: every thread of the process, envpool's included;
for loky, the workers' CPU time summed over the jobs) is printed beside wall time: on a shared
machine, where 2 loky processes rarely get 2 whole cores, it is the steadier measure of core use.
Run by hand:
``OMP_NUM_THREADS=1 python benchmarks/bench_finetune_batch.py [--families cartpole navigation highway]``.

Measured here (2026-12-07, the cores otherwise idle; torch 2.13 CPU; one run of the script, 16
sequential and 16 loky runs): fine-tunings per core-hour, batched over sequential ``train``
(R = 16 / 32 / 64), and over loky's per core:

==========  ==================  ==================  ====================  ==========================
family      exact=True          exact=False         exact=False / loky    loky x2 over sequential
==========  ==================  ==================  ====================  ==========================
CartPole    1.51 / 1.49 / 1.45  2.47 / 2.43 / 2.36  2.53 / 2.49 / 2.42    0.98 (wall), 1.00 (CPU)
navigation  1.42 / 1.38 / 1.36  2.74 / 2.56 / 2.55  2.83 / 2.65 / 2.64    0.97 (wall), 0.99 (CPU)
highway     1.48 / 1.37 / 1.11  2.10 / 2.02 / 2.01  2.49 / 2.40 / 2.38    0.84 (wall), 1.01 (CPU)
==========  ==================  ==================  ====================  ==========================

Highway against its reference backend (what the truth ran on before issue 21): highway-env over
loky, 2 runs, 52.7 runs per core-hour; batched padded on envpool 141-147x that.

Short of the issue's 3x on CartPole and navigation: the padded batch is bound by its matmuls
(60-70 GFLOP/s on one core, about half of the batch's time); the sequential baseline is a run
of ``train`` on the same core. Wall-time ratios swing with other jobs' load: run it on idle cores.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from joblib import Parallel, delayed

from pgx.algos.ppo import train
from pgx.algos.ppo_batch import train_many
from pgx.envs import make_family
from pgx.truth.finetune import single_thread
from pgx.nets.policies import ActorCritic
from pgx.profiles import get_profile

SUBSET_SIZE = 5
REFERENCE = {"highway": "highway:backend=highway-env"}
"""Today's way before issue 21, where a family changed backend: its runs over loky are timed too."""


def run_list(family, count: int) -> list[tuple[tuple[int, ...], int]]:
    rng = np.random.default_rng(0)
    return [(tuple(sorted(rng.choice(family.n_tasks, SUBSET_SIZE, replace=False).tolist())), i) for i in range(count)]


def init_state(family, cfg):
    torch.manual_seed(0)
    agent = ActorCritic(family.obs_dim, family.action_space, cfg.policy)
    return agent.actor.state_dict(), agent.critic.state_dict()


def timed(call) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    call()
    return time.perf_counter() - wall, time.process_time() - cpu


def _train_one(name: str, init, subset, cfg, seed: int) -> None:
    """Today's fine-tuning run before batching: ``train`` on one core (what ``finetune_subset`` ran)."""
    with single_thread():
        train(make_family(name), subset, cfg, seed, init_state=init, progress=False)


def _warm(name: str, init, cfg) -> int:
    """One one-iteration fine-tuning in a worker: imports, env construction and first kernels done."""
    from dataclasses import replace

    _train_one(name, init, tuple(range(SUBSET_SIZE)), replace(cfg, total_timesteps=1), 0)
    return 0


def _cpu_timed_finetune(*args) -> float:
    """``_train_one(*args)`` in a worker; returns the CPU seconds the worker process spent on it."""
    start = time.process_time()
    _train_one(*args)
    return time.process_time() - start


def finetune_config(name: str, iterations: int = 0):
    """The ``default`` profile's fine-tuning config of family ``name``, capped at ``iterations`` PPO
    iterations per run where given (0: its full budget)."""
    from dataclasses import replace

    cfg = get_profile("default").for_family(name).finetune_ppo
    if iterations:
        cfg = replace(cfg, total_timesteps=min(cfg.total_timesteps, iterations * cfg.batch_size(SUBSET_SIZE)))
    return cfg


def rates(name: str, batch_sizes=(16,), sequential_runs: int = 16, iterations: int = 0, exact: bool = False):
    """Fine-tunings per core-hour on one core (torch on one thread): ``train`` one run after
    another, then ``train_many`` over the first R runs for each R of ``batch_sizes`` (padded, and
    ``exact`` too where asked), same process, same run list. A DataFrame, one row per way."""
    import pandas as pd

    family, cfg = make_family(name), finetune_config(name, iterations)
    runs = run_list(family, max(list(batch_sizes) + [sequential_runs]))
    init = init_state(family, cfg)
    rows = []
    with single_thread():
        train(family, runs[0][0], cfg, 0, init_state=init, progress=False)  # warm-up: imports, first kernels

        def sequential():
            for subset, seed in runs[:sequential_runs]:
                train(family, subset, cfg, seed, init_state=init, progress=False)

        wall, cpu = timed(sequential)
        rows.append(dict(family=name, way="train, one run at a time", R=1, runs=sequential_runs, wall_s=wall, cpu_s=cpu))
        for R in batch_sizes:
            for mode in ((True, False) if exact else (False,)):
                wall, cpu = timed(lambda: train_many(family, runs[:R], cfg, init_state=init, exact=mode))
                rows.append(dict(family=name, way=f"train_many, {'exact' if mode else 'padded'}", R=R, runs=R,
                                 wall_s=wall, cpu_s=cpu))
    table = pd.DataFrame(rows)
    table["per_core_hour"] = 3600 * table.runs / table.wall_s
    table["x_sequential"] = table.per_core_hour / table.per_core_hour.iloc[0]
    table["x_sequential_cpu"] = (table.runs / table.cpu_s) / (table.runs / table.cpu_s).iloc[0]
    return table


def _loky(spec: str, init, cfg, runs) -> tuple[float, float]:
    """``(wall, cpu)`` seconds of ``runs`` fine-tuned one by one (``train``) over joblib's loky with 2
    workers, started and warmed first; ``cpu`` is the workers' CPU time summed over the jobs."""
    with Parallel(n_jobs=2, backend="loky") as parallel:
        parallel(delayed(_warm)(spec, init, cfg) for _ in range(2))  # workers started and imports done
        start = time.perf_counter()
        cpu = sum(parallel(delayed(_cpu_timed_finetune)(spec, init, subset, cfg, seed) for subset, seed in runs))
        return time.perf_counter() - start, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--families", nargs="+", default=["cartpole", "navigation", "highway"])
    parser.add_argument("--batch-sizes", nargs="+", type=int, default=[16, 32, 64])
    parser.add_argument("--sequential-runs", type=int, default=16)
    parser.add_argument("--loky-runs", type=int, default=16)
    parser.add_argument("--reference-runs", type=int, default=2,
                        help="runs of the reference backend over loky, where a family has one (highway-env: ~90 s a run)")
    parser.add_argument("--iterations", type=int, default=0,
                        help="cap each run at this many PPO iterations (0: the profile's full budget)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    for name in args.families:
        cfg = finetune_config(name, args.iterations)
        print(f"\n{name}: {cfg.num_iterations(SUBSET_SIZE)} iterations of {cfg.batch_size(SUBSET_SIZE)} steps per run "
              f"(total_timesteps={cfg.total_timesteps}, envs_per_task={cfg.envs_per_task}, num_steps={cfg.num_steps}, "
              f"minibatches={cfg.num_minibatches}, epochs={cfg.update_epochs})", flush=True)
        table = rates(name, args.batch_sizes, args.sequential_runs, args.iterations, exact=True)
        base, base_cpu = table.runs[0] / table.wall_s[0], table.runs[0] / table.cpu_s[0]
        print(f"  sequential     runs={args.sequential_runs:3d} wall={table.wall_s[0]:7.1f}s cpu={table.cpu_s[0]:7.1f}s "
              f"per core-hour={3600 * base:7.0f}", flush=True)

        family = make_family(name)
        runs = run_list(family, max(args.loky_runs, args.reference_runs))
        init = init_state(family, cfg)
        wall, cpu = _loky(name, init, cfg, runs[:args.loky_runs])
        loky, loky_cpu = args.loky_runs / (2 * wall), args.loky_runs / cpu
        print(f"  loky x2        runs={args.loky_runs:3d} wall={wall:7.1f}s cpu={cpu:7.1f}s "
              f"per core-hour={3600 * loky:7.0f} "
              f"(x{loky / base:.2f} of sequential; by cpu time x{loky_cpu / base_cpu:.2f})", flush=True)

        reference = None
        if name in REFERENCE and args.reference_runs:
            wall, cpu = _loky(REFERENCE[name], init, cfg, runs[:args.reference_runs])
            reference = args.reference_runs / (2 * wall)
            print(f"  loky x2 {REFERENCE[name]} runs={args.reference_runs:3d} wall={wall:7.1f}s cpu={cpu:7.1f}s "
                  f"per core-hour={3600 * reference:7.1f}", flush=True)

        for row in table.iloc[1:].itertuples():
            rate, cpu_rate = row.runs / row.wall_s, row.runs / row.cpu_s
            print(f"  batched {row.way.split(', ')[1]:6s} R={row.R:3d} wall={row.wall_s:7.1f}s cpu={row.cpu_s:7.1f}s "
                  f"per core-hour={3600 * rate:7.0f} (x{rate / base:.2f} of sequential, x{rate / loky:.2f} of loky per "
                  f"core; by cpu time x{cpu_rate / base_cpu:.2f} and x{cpu_rate / loky_cpu:.2f})"
                  + (f"; x{rate / reference:.0f} of {REFERENCE[name]} over loky per core" if reference else ""),
                  flush=True)


if __name__ == "__main__":
    main()
