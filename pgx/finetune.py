"""Ground truth: fine-tune θ* for real on task subsets, in parallel.

Each subset's fine-tuning is an independent PPO run from θ*, so they run through
``joblib.Parallel``: loky processes by default, and any backend a user registers — Dask or Ray on
a cluster — through ``joblib.parallel_config(backend=...)``, with no change here. Every run pins
torch to one thread and draws from its own seed, so the result is the same whichever backend or
process runs it.
"""

from __future__ import annotations

import time
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from typing import Iterator, Sequence

import torch
from joblib import Parallel, delayed
from torch.utils.flop_counter import FlopCounterMode

from pgx.algos.ppo import PPOConfig, train
from pgx.envs import make_family

__all__ = ["FinetuneResult", "finetune_subset", "finetune_subsets", "single_thread"]


@dataclass
class FinetuneResult:
    subset: tuple[int, ...]
    actor_state: dict[str, torch.Tensor]
    critic_state: dict[str, torch.Tensor]
    snapshots: dict[int, dict[str, torch.Tensor]]
    """Environment steps → actor weights at that point of the run (for the distance sweep)."""
    wall_time: float
    flops: int
    """Floating-point operations of the torch work (rollout forwards and updates; not the env)."""


@contextmanager
def single_thread() -> Iterator[None]:
    """Run torch on one thread, then restore: parallel jobs do not oversubscribe the cores, and a
    run's float reductions do not depend on how many threads the host process had."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def finetune_subset(
    family_name: str,
    init_state: tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]] | None,
    subset: Sequence[int],
    cfg: PPOConfig,
    seed: int,
    snapshot_steps: Sequence[int] = (),
    count_flops: bool = False,
) -> FinetuneResult:
    """PPO on the tasks of ``subset``, starting from ``init_state`` (θ* and its critic), or from a
    fresh seeded initialisation when it is None (single-task policies of the transfer matrix).

    :param snapshot_steps: environment-step counts at which to keep a copy of the actor weights;
        each is taken at the end of the first iteration reaching it.
    :param count_flops: count the torch FLOPs of the run (``flops`` is 0 otherwise). Counting slows
        every op down, so timed runs leave it off and a separate run counts.
    """
    family = make_family(family_name)
    subset = tuple(int(t) for t in family.check_tasks(subset))
    if len(set(subset)) != len(subset):
        raise ValueError(f"subset {subset} repeats a task")
    batch = cfg.batch_size(len(subset))
    wanted = sorted({max(1, -(-int(s) // batch)) for s in snapshot_steps})  # iterations, rounded up
    snapshots: dict[int, dict[str, torch.Tensor]] = {}

    def snapshot(iteration: int, agent: torch.nn.Module) -> None:
        if iteration + 1 in wanted:
            snapshots[(iteration + 1) * batch] = {k: v.detach().cpu().clone() for k, v in agent.actor.state_dict().items()}

    counter = FlopCounterMode(display=False)
    with single_thread(), (counter if count_flops else nullcontext()):
        start = time.perf_counter()
        result = train(family, subset, cfg, seed, init_state=init_state, progress=False, on_iteration=snapshot)
        seconds = time.perf_counter() - start
    return FinetuneResult(subset=subset, actor_state=result.actor_state, critic_state=result.critic_state,
                          snapshots=snapshots, wall_time=seconds,
                          flops=int(counter.get_total_flops()) if count_flops else 0)


def finetune_subsets(
    family_name: str,
    init_state: tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]] | None,
    subsets: Sequence[Sequence[int]],
    cfg: PPOConfig,
    seed: int,
    snapshot_steps: Sequence[int] = (),
    n_jobs: int = -1,
    replicates: int = 1,
) -> list[list[FinetuneResult]]:
    """:func:`finetune_subset` for every subset, ``replicates`` times, in parallel:
    ``result[j][s]`` is replicate j of subset s.

    Common random numbers: replicate j of *every* subset runs with seed ``seed + j``, so that two
    subsets' results differ by their tasks, not by the luck of their seeds, and the replicates
    measure how much a result moves when only the seed changes.

    The backend is whatever ``joblib.parallel_config`` says (loky processes by default); on a
    cluster, ``with parallel_config(backend="dask"): finetune_subsets(...)`` runs the same jobs on
    the Dask workers. ``n_jobs=-1`` uses every core (or worker) the backend has.
    """
    if len(subsets) == 0:
        raise ValueError("subsets is empty")
    if not isinstance(replicates, int) or replicates < 1:
        raise ValueError(f"replicates must be an integer >= 1, got {replicates!r}")
    jobs = (delayed(finetune_subset)(family_name, init_state, subset, cfg, seed + j, snapshot_steps)
            for j in range(replicates) for subset in subsets)
    flat = list(Parallel(n_jobs=n_jobs)(jobs))
    return [flat[j * len(subsets):(j + 1) * len(subsets)] for j in range(replicates)]
