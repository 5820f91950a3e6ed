"""One multitask SAC run, cached and checkpointed on its own: θ* of a SAC family (the meta-training
stage runs it when the profile's ``trainer`` is ``"sac"``) and every Meta-World baseline.

Keyed by its family spec, config, seed, tasks and evaluation: groupings that find the same group
share its run, and the meta-policy is also the MT-SAC baseline.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, replace

import numpy as np
import torch

from pgx.algos.sac import EVAL_STRIDE, SACAgent, SACConfig, SACResult, evaluate, train
from pgx.envs import make_family
from pgx.keys import checkpoint_path
from pgx.metaworld_budgets import MetaWorldBudgets
from pgx.stages.graph import Call, stage

__all__ = ["SACRun", "sac_run", "sac_call", "theta_star_run", "theta_star_call", "eval_seed", "meta_config", "EVAL_SEED"]

EVAL_SEED = 10_000_000
"""Base of the evaluation seeds (:func:`eval_seed`), far from every training seed."""


# --- one SAC run -------------------------------------------------------------------------------

@dataclass
class SACRun:
    """A trained SAC agent and its final evaluation on the tasks it trained on."""

    result: SACResult
    task_ids: tuple[int, ...]
    success: np.ndarray
    """``(len(task_ids),)`` success rate per task (reached at any step; deterministic policy)."""
    returns: np.ndarray
    """``(len(task_ids),)`` mean return per task."""
    eval_time: float
    hardware: str
    """Where it trained: device, its name, torch version (a GPU run's figures name their card)."""


def _hardware() -> str:
    import platform

    from pgx.runtime import pick_device

    device = pick_device()
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else (platform.processor() or platform.machine())
    return f"{device.type}: {name}, torch {torch.__version__}"


@stage()
def _sac_run(family_spec: str, cfg: SACConfig, seed: int, task_ids: tuple[int, ...], eval_episodes: int,
             evaluation_seed: int) -> SACRun:
    family = make_family(family_spec)
    ckpt = checkpoint_path("sac", family_spec, cfg, seed, task_ids)  # the trainer's code, not this stage's
    with warnings.catch_warnings():
        # MuJoCo envs do not pickle: a resumed run restarts its episodes from seeded resets (the
        # trainer's docstring), which every Meta-World checkpoint would otherwise repeat.
        warnings.filterwarnings("ignore", message=".*pickles by re-construction.*")
        result = train(family, cfg, seed, task_ids=list(task_ids), checkpoint=ckpt, progress=True)
    agent = SACAgent.from_result(family, result)
    start = time.perf_counter()
    success, returns = evaluate(family, agent.actor, list(task_ids), eval_episodes, evaluation_seed)
    return SACRun(result=result, task_ids=task_ids, success=np.asarray(success), returns=np.asarray(returns),
                  eval_time=time.perf_counter() - start, hardware=_hardware())


def eval_seed(seed: int) -> int:
    """The evaluation seed of every method compared at ``seed``: the same episodes per task for
    all of them (``pgx.algos.sac.evaluate`` keys them by task), none shared between seeds."""
    return EVAL_SEED + EVAL_STRIDE * 100 * int(seed)


def sac_run(family_spec: str, cfg: SACConfig, seed: int, task_ids, eval_episodes: int, evaluation_seed: int) -> SACRun:
    """Multitask SAC on ``task_ids`` of the family, then ``eval_episodes`` evaluation episodes per
    task from ``evaluation_seed``."""
    return sac_call(family_spec, cfg, seed, task_ids, eval_episodes, evaluation_seed)()


def sac_call(family_spec: str, cfg: SACConfig, seed: int, task_ids, eval_episodes: int, evaluation_seed: int) -> Call:
    """:func:`sac_run`'s call, not run yet: several are computed over the cores by
    :func:`pgx.stages.many.compute_many`."""
    ids = tuple(int(t) for t in make_family(family_spec).check_tasks(task_ids))
    return _sac_run.call(family_spec, cfg, int(seed), ids, int(eval_episodes), int(evaluation_seed))


def meta_config(budgets: MetaWorldBudgets, family_spec: str) -> SACConfig:
    """θ*'s SAC: the profile's budget with MT-SAC's shared MLP as actor and critics."""
    arch = budgets.arch("mlp")
    return replace(budgets.sac, actor_arch=arch, critic_arch=arch)


def theta_star_run(family_spec: str, profile, seed: int) -> SACRun:
    """θ* of a family the profile trains with SAC: multitask SAC on every task (``meta_config``),
    evaluated with the profile's ``eval_episodes`` — the run the meta-training stage makes, which is
    also the MT-SAC baseline; ``profile`` is specialised to the family."""
    return theta_star_call(family_spec, profile, seed)()


def theta_star_call(family_spec: str, profile, seed: int) -> Call:
    """:func:`theta_star_run`'s call, not run yet (θ* of several seeds over the cores)."""
    n = make_family(family_spec).n_tasks
    return sac_call(family_spec, meta_config(profile.metaworld, family_spec), seed, range(n), profile.eval_episodes,
                    eval_seed(seed))
