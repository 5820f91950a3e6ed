"""What one multitask SAC update costs, timed on a synthetic replay batch (no env steps): the
Meta-World chapter's budget arithmetic and ``benchmarks/bench_metaworld.py``."""

from __future__ import annotations

import time
from typing import Sequence

import numpy as np
import torch

from pgx.algos.sac import Batch, SACAgent, make_optimisers, update

__all__ = ["synthetic_sac_batch", "sac_update_seconds"]


def synthetic_sac_batch(family, per_task: int, tasks: Sequence[int], seed: int):
    """A replay batch of ``per_task`` random transitions from each of ``tasks`` (observations
    carrying their task's one-hot): what timing a SAC update needs, no env steps."""
    g = torch.Generator().manual_seed(seed)
    task = torch.as_tensor(np.repeat(np.asarray(tasks), per_task))
    obs = torch.randn(len(task), family.obs_dim, generator=g)
    obs[:, -family.n_tasks:] = torch.nn.functional.one_hot(task, family.n_tasks).float()
    return Batch(obs=obs, u=torch.randn(len(task), family.num_actions, generator=g),
                 reward=torch.rand(len(task), generator=g), next_obs=obs.clone(), terminated=torch.zeros(len(task)),
                 task=task)


def sac_update_seconds(family, cfg, repeats: int = 10) -> float:
    """Mean wall time of one multitask SAC update (``cfg.batch_size`` transitions from every task
    of ``family``), after one warm-up update."""
    agent = SACAgent.build(family, cfg, seed=0)
    optimisers = make_optimisers(agent, cfg)
    batch = synthetic_sac_batch(family, cfg.batch_size, range(family.n_tasks), seed=0)
    g = torch.Generator().manual_seed(0)
    update(agent, optimisers, batch, cfg, g)
    start = time.perf_counter()
    for _ in range(repeats):
        update(agent, optimisers, batch, cfg, g)
    return (time.perf_counter() - start) / repeats
