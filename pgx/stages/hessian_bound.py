"""Generalization errors and the Hessian bound (section 4.4, Figure 3) as a cached stage."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from pgx.envs import make_family
from pgx.generalization import (
    EstimatorComparison, compare_trace_estimators, largest_group, policy_gradient_hvp, source_samples,
    standardise_advantages, train_and_measure,
)
from pgx.nets.policies import ActorCritic
from pgx.profiles import Profile
from pgx.runtime import seed_everything
from pgx.stages.graph import stage
from pgx.stages.pipeline import estimate_affinity


__all__ = ["GeneralizationResult", "generalization"]


@dataclass
class GeneralizationResult:
    """Figure 3 from one initialisation: the dynamics of the all-task run, the three training sets,
    and Hutch++ against Hutchinson on the final all-task policy's Hessian."""

    single_task: tuple[int, ...]
    """The first task of ``group``, so the three training sets are nested."""
    group: tuple[int, ...]
    """The largest PolicyGradEx group (first-order affinity, SDP with k = ``num_groups``)."""
    group_labels: np.ndarray
    """``(n,)`` the whole PolicyGradEx grouping the group was taken from."""
    dynamics: list[dict]
    """All-task run: ``iteration``, ``steps`` and ``Measurement.as_row()`` per snapshot."""
    by_tasks: list[dict]
    """``setting``, ``tasks``, ``num_tasks``, ``mean return`` (training episodes of the last tenth
    of the iterations) and ``Measurement.as_row()`` for the single task, the group and all tasks."""
    estimators: EstimatorComparison
    wall_time: float


@stage(reads=("generalization", "num_groups"))
def generalization(family_name: str, profile: Profile, seed: int) -> GeneralizationResult:
    """Generalization error (target − source policy-gradient loss) and the Hessian bound of
    Theorem 1 for policies trained from one initialisation on one task, the largest PolicyGradEx
    group and all tasks, with snapshots of the all-task run (Figure 3); see ``pgx.generalization``."""
    from pgx.clustering import sdp_cluster  # cvxpy loads only when grouping is needed
    from pgx.truth.finetune import single_thread

    start = time.perf_counter()
    family = make_family(family_name)
    labels = sdp_cluster(estimate_affinity(family_name, profile, seed, "first_order").affinity,
                         k=profile.num_groups, seed=seed)
    # One thread: these networks are too small to gain from more, and on a shared 2-core machine
    # torch's spinning worker threads made a smoke run of this stage 20x slower.
    with single_thread():
        return _measure_generalization(family, profile, seed, labels, start)


def _measure_generalization(family, profile: Profile, seed: int, labels: np.ndarray, start: float) -> GeneralizationResult:
    cfg = profile.generalization
    group = largest_group(labels)
    all_tasks = tuple(range(family.n_tasks))
    settings = {"single task": group[:1], "PolicyGradEx group": group, "all tasks": all_tasks}

    # One initialisation θ⁰ for every run, so the three policies differ only in their tasks.
    seed_everything(seed)
    init_agent = ActorCritic(family.obs_dim, family.action_space, cfg.ppo.policy)
    init = ({k: v.detach().clone() for k, v in init_agent.actor.state_dict().items()},
            {k: v.detach().clone() for k, v in init_agent.critic.state_dict().items()})
    runs, dynamics, by_tasks = {}, [], []
    for setting, tasks in settings.items():
        snapshots = cfg.snapshot_iterations() if tasks == all_tasks else (cfg.iterations - 1,)
        runs[setting], measured = train_and_measure(family, tasks, init, cfg, seed, snapshots)
        if tasks == all_tasks:
            batch = cfg.ppo.batch_size(len(tasks))
            dynamics = [{"iteration": i, "steps": (i + 1) * batch, **m.as_row()} for i, m in measured]
        tail = runs[setting].task_returns[-max(1, cfg.iterations // 10):]
        mean_return = float(np.nanmean(tail)) if np.isfinite(tail).any() else float("nan")
        by_tasks.append({"setting": setting, "tasks": tasks, "num_tasks": len(tasks), "mean return": mean_return,
                         **measured[-1][1].as_row()})

    # Hutch++ vs Hutchinson on the train-loss Hessian of the final all-task policy (same samples
    # as its last measurement: same rollout seed).
    agent = runs["all tasks"].agent(family, cfg.ppo.policy)
    samples = source_samples(agent, family, all_tasks, cfg.steps_per_task, seed + 70_000,
                             cfg.ppo.gamma, cfg.ppo.gae_lambda)
    advantages, _ = standardise_advantages(samples.advantages, samples.advantages)
    hvp = policy_gradient_hvp(agent.actor, samples.obs, samples.actions, advantages)
    estimators = compare_trace_estimators(hvp, cfg.estimator_budgets, cfg.estimator_seeds, cfg.reference_matvecs, seed)
    return GeneralizationResult(single_task=group[:1], group=group, group_labels=labels, dynamics=dynamics,
                                by_tasks=by_tasks, estimators=estimators, wall_time=time.perf_counter() - start)


