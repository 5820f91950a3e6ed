"""Meta-World's stages: SAC meta-policy → features → affinity → groups, and Table 3's MT10 column.

Each SAC run is cached (and checkpointed) on its own, keyed by its family spec, config, seed and
task subset: the meta-policy is also the MT-SAC baseline, and groupings that find the same group
share its run. The grouping reuses the pipeline's pure functions (Algorithm 1's fits at the same
relative distance, first-order scores on a held-out rollout, eq. 5, the SDP), so only the
features differ from the other families: SAC's tanh-Gaussian log-probabilities and soft
advantages (:mod:`pgx.sac_features`).
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, replace

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from pgx.affinity import affinity_matrix, sample_subsets
from pgx.algos.sac import EVAL_STRIDE, SACAgent, SACConfig, SACResult, evaluate, to_env_action, train
from pgx.clustering import groupings, groups_from_labels
from pgx.envs import make_family
from pgx.gradients import GaussianProjector, GradientFeatures, projected_grads, theta_fingerprint
from pgx.keys import checkpoint_path
from pgx.metaworld_budgets import METHODS, MetaWorldBudgets
from pgx.runtime import is_int, seed_everything
from pgx.sac_features import sac_samples
from pgx.stages.graph import stage
from pgx.stages.pipeline import FIT_ROLLOUT, SCORE_ROLLOUT, fit_scaled
from pgx.surrogate import first_order_scores


__all__ = ["SACRun", "sac_run", "MetaWorldGrouping", "grouping", "multitask_table", "metaworld_budgets",
           "GROUP_SEED"]

GROUP_SEED = 70_000
"""Seed offset of the grouped and baseline runs, so they do not share θ*'s random numbers."""
EVAL_SEED = 10_000_000
"""Base of the evaluation seeds (:func:`eval_seed`), far from every training seed."""


def metaworld_budgets(family_spec: str, profile_name: str | None = None) -> MetaWorldBudgets:
    """The Meta-World section (``Profile.metaworld``) of ``PGX_PROFILE``'s profile (or ``profile_name``'s)
    for ``family_spec``."""
    from pgx.profiles import get_profile

    _check_family(family_spec)
    return get_profile(profile_name).for_family(family_spec).metaworld


def _check_family(family_spec: str) -> None:
    make_family(family_spec)
    if family_spec.partition(":")[0] not in ("mt10", "mt50"):
        raise ValueError(f"the Meta-World stages run mt10 or mt50, got family {family_spec!r}")


def _check(family_spec: str, budgets: MetaWorldBudgets | None, seed: int) -> MetaWorldBudgets:
    _check_family(family_spec)
    budgets = metaworld_budgets(family_spec) if budgets is None else budgets
    if not isinstance(budgets, MetaWorldBudgets):
        raise ValueError(f"budgets must be a MetaWorldBudgets (Profile.metaworld), got {type(budgets).__name__}")
    if not is_int(seed) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    return budgets


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
    ids = tuple(int(t) for t in make_family(family_spec).check_tasks(task_ids))
    return _sac_run(family_spec, cfg, int(seed), ids, int(eval_episodes), int(evaluation_seed))


def meta_config(budgets: MetaWorldBudgets, family_spec: str) -> SACConfig:
    """θ*'s SAC: the profile's budget with MT-SAC's shared MLP as actor and critics."""
    arch = budgets.arch("mlp")
    return replace(budgets.sac, actor_arch=arch, critic_arch=arch)


# --- grouping ----------------------------------------------------------------------------------

@dataclass
class MetaWorldGrouping:
    """θ*, its features, the affinity and the groups of each grouping method, with stage times."""

    meta: SACRun
    features: GradientFeatures
    held_out: GradientFeatures
    subsets: list[tuple[int, ...]]
    scores: np.ndarray
    affinity: np.ndarray
    groups: dict[str, np.ndarray]
    """:data:`~pgx.clustering.GROUPINGS` → ``(n,)`` labels."""
    times: dict[str, float]
    """Seconds of each stage: meta-training, rollouts, gradients, surrogate fit, scores, SDP."""
    gradient_flops: int
    parameters: int
    """Number of actor parameters p."""


def _features(agent: SACAgent, family, budgets: MetaWorldBudgets, seed: int, rollout_seed: int,
              projector: GaussianProjector) -> tuple[GradientFeatures, float, float, int]:
    start = time.perf_counter()
    samples = sac_samples(agent, family, budgets.steps_per_task, rollout_seed, budgets.value_samples,
                          lambda u: to_env_action(u, family.action_space), budgets.envs_per_task)
    rollout_time = time.perf_counter() - start
    start = time.perf_counter()
    feats = projected_grads(agent.actor, samples.obs, samples.actions, projector)
    gradient_time = time.perf_counter() - start
    with FlopCounterMode(display=False) as counter:  # a second, untimed pass
        projected_grads(agent.actor, samples.obs[:256], samples.actions[:256], projector)
    flops = int(counter.get_total_flops() * len(samples.obs) / min(256, len(samples.obs)))
    return GradientFeatures(features=feats.numpy().astype(np.float32), advantages=samples.advantages.numpy(),
                            task_ids=samples.task_ids.numpy(), dim=budgets.projection_dim, seed=seed,
                            theta_fingerprint=theta_fingerprint(agent.actor),
                            projector_fingerprint=projector.fingerprint()), rollout_time, gradient_time, flops


@stage()
def _grouping(family_spec: str, budgets: MetaWorldBudgets, seed: int) -> MetaWorldGrouping:
    family = make_family(family_spec)
    n, k = family.n_tasks, budgets.num_groups
    meta = sac_run(family_spec, meta_config(budgets, family_spec), seed, range(n), budgets.eval_episodes, eval_seed(seed))
    agent = SACAgent.from_result(family, meta.result)
    seed_everything(seed)
    projector = GaussianProjector([tuple(p.shape) for p in agent.actor.parameters()], budgets.projection_dim, seed=seed)
    feats, rollout_time, gradient_time, flops = _features(agent, family, budgets, seed, seed + FIT_ROLLOUT, projector)
    held_out, *_ = _features(agent, family, budgets, seed, seed + SCORE_ROLLOUT, projector)

    subsets = sample_subsets(n, budgets.subset_size, budgets.num_subsets, seed)
    start = time.perf_counter()
    V = fit_scaled(feats, subsets, budgets, agent, projector)
    fit_time = time.perf_counter() - start
    start = time.perf_counter()
    scores = first_order_scores(torch.as_tensor(held_out.features), torch.as_tensor(held_out.advantages),
                                torch.as_tensor(held_out.task_ids), subsets, V, n)
    scores = np.asarray(scores.numpy() if torch.is_tensor(scores) else scores, dtype=np.float64)
    affinity = affinity_matrix(subsets, scores, n)
    score_time = time.perf_counter() - start
    seconds: dict[str, float] = {}
    groups = groupings(affinity, feats.task_policy_gradients(n), k, seed, seconds=seconds)
    sdp_time = seconds["PolicyGradEx"]
    return MetaWorldGrouping(
        meta=meta, features=feats, held_out=held_out, subsets=subsets, scores=scores, affinity=affinity,
        groups=groups, gradient_flops=flops, parameters=sum(p.numel() for p in agent.actor.parameters()),
        times={"meta-training": meta.result.wall_time, "rollouts": rollout_time, "gradients": gradient_time,
               "surrogate fit": fit_time, "scores and affinity": score_time, "SDP": sdp_time},
    )


def grouping(family_spec: str, seed: int, budgets: MetaWorldBudgets | None = None) -> MetaWorldGrouping:
    """PolicyGradEx's groups of ``family_spec``'s tasks from a SAC meta-policy, with the random and
    gradient-similarity groupings beside them (``budgets``: ``PGX_PROFILE``'s by default)."""
    budgets = _check(family_spec, budgets, seed)
    return _grouping(family_spec, budgets, int(seed))


# --- Table 3's Meta-World column ---------------------------------------------------------------

def _group_config(budgets: MetaWorldBudgets, kind: str, size: int, n: int) -> SACConfig:
    arch = budgets.arch(kind)
    cfg = budgets.sac
    return replace(cfg, actor_arch=arch, critic_arch=arch, total_steps=max(1, cfg.total_steps * size // n),
                   learning_starts=cfg.learning_starts * size // n,
                   eval_every=max(1, cfg.eval_every * size // n))  # as many curve points as on all tasks


def multitask_table(family_spec: str, seed: int, budgets: MetaWorldBudgets | None = None) -> dict[str, dict]:
    """Every method's success rate per task at one seed: single networks on all tasks
    (:data:`~pgx.metaworld_budgets.METHODS` the profile runs) and one ``group_arch`` network per
    group of each grouping.

    :return: method → ``{"success": (n,), "returns": (n,), "groups": labels or None, "env_steps": int,
        "runs": [SACRun, ...]}``.
    """
    budgets = _check(family_spec, budgets, seed)
    family = make_family(family_spec)
    n = family.n_tasks
    out: dict[str, dict] = {}
    run_seed = seed + GROUP_SEED
    for method in budgets.methods:
        kind = METHODS[method]
        run = (grouping(family_spec, seed, budgets).meta if kind == "mlp"
               else sac_run(family_spec, _group_config(budgets, kind, n, n), run_seed, range(n),
                            budgets.eval_episodes, eval_seed(seed)))
        out[method] = {"success": run.success, "returns": run.returns, "groups": None,
                       "env_steps": run.result.env_steps, "runs": [run]}
    grouped = grouping(family_spec, seed, budgets)
    for name, labels in grouped.groups.items():
        success, returns = np.full(n, np.nan), np.full(n, np.nan)
        runs = []
        for members in groups_from_labels(labels):
            cfg = _group_config(budgets, budgets.group_arch, len(members), n)
            run = sac_run(family_spec, cfg, run_seed, members, budgets.eval_episodes, eval_seed(seed))
            success[list(members)], returns[list(members)] = run.success, run.returns
            runs.append(run)
        out[f"{name} groups"] = {"success": success, "returns": returns, "groups": labels,
                                 "env_steps": sum(r.result.env_steps for r in runs), "runs": runs}
    return out
