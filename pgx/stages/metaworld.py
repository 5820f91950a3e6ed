"""Meta-World's stages: the grouping of a SAC meta-policy, and Table 3's MT10 column.

MT10 and MT50 run the pipeline every family runs (:mod:`pgx.stages.pipeline`): the profile trains
their θ* with SAC (``Profile.trainer``), and features → surrogate → affinity → groups are the same
stages as PPO families', only the features' samples differ (SAC's tanh-Gaussian log-probabilities
and soft advantages, :mod:`pgx.sac_features`). Here that grouping is gathered with its times, and
every multitask baseline (one SAC network on all tasks, or one per group of each grouping) is one
cached SAC run (:mod:`pgx.stages.sac_run`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from pgx.algos.sac import SACAgent, SACConfig
from pgx.clustering import groupings, groups_from_labels
from pgx.envs import make_family
from pgx.gradients import GradientFeatures
from pgx.metaworld_budgets import METHODS, MetaWorldBudgets
from pgx.profiles import Profile
from pgx.stages.pipeline import estimate_affinity, gradient_features, held_out_features, surrogate_fit
from pgx.stages.graph import Call
from pgx.stages.many import compute_many
from pgx.stages.sac_run import EVAL_SEED, SACRun, eval_seed, meta_config, sac_call, sac_run, theta_star_run

__all__ = ["SACRun", "sac_run", "theta_star_run", "eval_seed", "meta_config", "EVAL_SEED", "MetaWorldGrouping",
           "grouping", "multitask_table", "metaworld_profile", "GROUP_SEED"]

GROUP_SEED = 70_000
"""Seed offset of the grouped and baseline runs, so they do not share θ*'s random numbers."""


def metaworld_profile(family_spec: str, profile: Profile | str | None = None) -> Profile:
    """``profile`` (a :class:`~pgx.profiles.Profile`, a profile's name, or ``PGX_PROFILE``'s) specialised
    to ``family_spec``, a Meta-World family whose θ* it trains with SAC."""
    from pgx.profiles import get_profile

    make_family(family_spec)
    if family_spec.partition(":")[0] not in ("mt10", "mt50"):
        raise ValueError(f"the Meta-World stages run mt10 or mt50, got family {family_spec!r}")
    if not isinstance(profile, Profile):
        profile = get_profile(profile)
    budgets = profile.for_family(family_spec)
    if budgets.trainer != "sac":
        raise ValueError(f"profile {budgets.name!r} trains {family_spec}'s θ* with {budgets.trainer!r}; the Meta-World "
                         f"stages compare SAC networks (set trainer='sac' for it in the profile's family_budgets)")
    return budgets


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


def grouping(family_spec: str, profile: Profile | None, seed: int) -> MetaWorldGrouping:
    """PolicyGradEx's groups of ``family_spec``'s tasks from a SAC meta-policy, with the random and
    gradient-similarity groupings beside them: the pipeline's stages, gathered (``profile``:
    ``PGX_PROFILE``'s where None)."""
    profile = metaworld_profile(family_spec, profile)
    family = make_family(family_spec)
    n = family.n_tasks
    run = theta_star_run(family_spec, profile, seed)  # θ*, as meta-training made it: with its hardware and timing
    features, held_out = gradient_features(family_spec, profile, seed), held_out_features(family_spec, profile, seed)
    fit = surrogate_fit(family_spec, profile, seed)
    estimate = estimate_affinity(family_spec, profile, seed, "first_order")
    seconds: dict[str, float] = {}
    groups = groupings(estimate.affinity, features.features.task_policy_gradients(n), profile.num_groups, seed,
                       seconds=seconds)
    actor = SACAgent.from_result(family, run.result).actor
    return MetaWorldGrouping(
        meta=run, features=features.features, held_out=held_out.features, subsets=fit.subsets, scores=estimate.scores,
        affinity=estimate.affinity, groups=groups, gradient_flops=features.gradient_flops,
        parameters=sum(p.numel() for p in actor.parameters()),
        times={"meta-training": run.result.wall_time, "rollouts": features.rollout_time,
               "gradients": features.gradient_time, "surrogate fit": fit.fit_time,
               "scores and affinity": estimate.score_time, "SDP": seconds["PolicyGradEx"]},
    )


# --- Table 3's Meta-World column ---------------------------------------------------------------

def _group_config(budgets: MetaWorldBudgets, kind: str, size: int, n: int) -> SACConfig:
    arch = budgets.arch(kind)
    cfg = budgets.sac
    return replace(cfg, actor_arch=arch, critic_arch=arch, total_steps=max(1, cfg.total_steps * size // n),
                   learning_starts=cfg.learning_starts * size // n,
                   eval_every=max(1, cfg.eval_every * size // n))  # as many curve points as on all tasks


def multitask_table(family_spec: str, profile: Profile | None, seed: int) -> dict[str, dict]:
    """Every method's success rate per task at one seed: single networks on all tasks
    (:data:`~pgx.metaworld_budgets.METHODS` the profile runs) and one ``group_arch`` network per
    group of each grouping.

    :return: method → ``{"success": (n,), "returns": (n,), "groups": labels or None, "env_steps": int,
        "runs": [SACRun, ...]}``.
    """
    profile = metaworld_profile(family_spec, profile)
    budgets = profile.metaworld
    family = make_family(family_spec)
    n = family.n_tasks
    out: dict[str, dict] = {}
    run_seed = seed + GROUP_SEED
    grouped = grouping(family_spec, profile, seed)

    def call(kind: str, members) -> Call:
        cfg = _group_config(budgets, kind, len(members), n)
        return sac_call(family_spec, cfg, run_seed, members, profile.eval_episodes, eval_seed(seed))

    # Every baseline and every group's network is its own SAC run: computed over the cores.
    singles = [m for m in budgets.methods if METHODS[m] != "mlp"]
    members = {name: groups_from_labels(labels) for name, labels in grouped.groups.items()}
    done = iter(compute_many([call(METHODS[m], range(n)) for m in singles]
                             + [call(budgets.group_arch, group) for groups in members.values() for group in groups]))
    for method in budgets.methods:
        run = grouped.meta if METHODS[method] == "mlp" else next(done)
        out[method] = {"success": run.success, "returns": run.returns, "groups": None,
                       "env_steps": run.result.env_steps, "runs": [run]}
    for name, labels in grouped.groups.items():
        success, returns = np.full(n, np.nan), np.full(n, np.nan)
        runs = [next(done) for _ in members[name]]
        for group, run in zip(members[name], runs):
            success[list(group)], returns[list(group)] = run.success, run.returns
        out[f"{name} groups"] = {"success": success, "returns": returns, "groups": labels,
                                 "env_steps": sum(r.result.env_steps for r in runs), "runs": runs}
    return out
