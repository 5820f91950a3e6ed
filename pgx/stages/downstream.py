"""Downstream stages: does grouping help? MAML transfer to unseen targets (Table 3) and where the
source tasks come from (Appendix C, Figure 4).

Every method starts a policy from the family's source tasks and adapts it to the same unseen
targets with the same budget (:mod:`pgx.algos.transfer`); they differ only in what they train on:

* MAML on one representative task per group, for three groupings: PolicyGradEx's (SDP on the
  first-order affinity), random groups, and gradient-similarity groups;
* MAML on all source tasks;
* one multitask PPO policy on all source tasks, and one per PolicyGradEx group (a target adapts
  the policy of its nearest source task's group), fine-tuned on each target like the others.

Budgets: every MAML run uses the same config, so the same episodes per iteration whatever its
number of tasks; each PPO baseline spends, in total, the environment steps that MAML on all source
tasks spent with the same seed (split evenly between the per-group policies). All policies share
one architecture and see no task one-hot (targets have none): downstream runs use the family
with ``observe_task=false``. Common random numbers: one seed initialises every MAML policy and
seeds every method's adaptation batches.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace

import numpy as np
import torch

from pgx import progress
from pgx.algos.maml import MAMLConfig, MAMLResult
from pgx.algos.ppo import TrainResult
from pgx.clustering import GROUPINGS, groupings
from pgx.envs import as_param_array, make_family
from pgx.keys import checkpoint_path
from pgx.profiles import Profile
from pgx.stages.graph import stage
from pgx.stages.many import compute_many
from pgx.algos.transfer import Adaptation, adaptation_curves, nearest_source_tasks, representatives
from pgx.transfer_budgets import TransferBudgets


__all__ = ["METHODS", "GROUPINGS", "TransferResult", "maml_transfer", "source_distributions", "hidden_task_spec",
           "unseen_targets", "target_subset", "transfer_budgets"]

"""The groupings whose representatives MAML meta-trains on."""

METHODS = ("MAML, PolicyGradEx groups", "MAML, all source tasks", "MAML, random groups",
           "MAML, gradient-similarity groups", "multitask PPO, all tasks", "multitask PPO per PolicyGradEx group")
"""Table 3's rows for the control families, in the book's order."""

_ADAPT_SEED = 50_000
_PPO_SEED = 70_000


def transfer_budgets(family_name: str, profile: Profile) -> TransferBudgets:
    """The downstream budgets (``Profile.transfer``) ``profile`` gives ``family_name``."""
    if not isinstance(profile, Profile):
        raise ValueError(f"profile must be a pgx.profiles.Profile, got {type(profile).__name__}")
    return profile.for_family(family_name).transfer


def hidden_task_spec(family_name: str) -> str:
    """``family_name`` with the task one-hot hidden (unchanged where it is hidden already)."""
    if not make_family(family_name).observe_task:
        return family_name
    return family_name + ("," if ":" in family_name else ":") + "observe_task=false"


def unseen_targets(*specs: str) -> tuple[int, ...]:
    """Ids of the target tasks of ``specs[0]`` whose parameters equal no source task of any family in
    ``specs``. The families' target grids share points with their source grids (both ends of
    CartPole's, LunarLander's and highway's ranges; every fifth goal with navigation's uniform
    sources), and a target seen in meta-training is not unseen."""
    families = [make_family(spec) for spec in specs]
    targets = as_param_array(families[0].target_params)
    sources = np.concatenate([as_param_array(f.source_params) for f in families])
    scale = np.maximum(np.abs(sources).max(axis=0), 1e-12)
    seen = (np.abs(targets[:, None] - sources[None]) / scale).max(axis=-1).min(axis=1) < 1e-9
    return tuple(int(i) for i in np.flatnonzero(~seen))


def target_subset(candidates: tuple[int, ...], num_targets: int) -> tuple[int, ...]:
    """``num_targets`` of the ``candidates`` target ids, evenly spaced over them (all if fewer)."""
    if num_targets >= len(candidates):
        return tuple(candidates)
    picks = np.unique(np.linspace(0, len(candidates) - 1, num_targets).round().astype(int))
    return tuple(candidates[i] for i in picks)


# --- the runs, each cached (and checkpointed) on its own ----------------------------------------

@stage()
def _maml_run(family_spec: str, cfg: MAMLConfig, seed: int, task_ids: tuple[int, ...]) -> MAMLResult:
    from pgx.algos.maml import train

    return train(make_family(family_spec), task_ids, cfg, seed,
                 checkpoint_path=checkpoint_path("maml", family_spec, cfg, seed, task_ids),
                 progress=progress.bars_wanted())


@stage(reads=("meta_ppo",))
def _ppo_run(family_spec: str, profile: Profile, seed: int, task_ids: tuple[int, ...], total_steps: int) -> TrainResult:
    from pgx.algos.ppo import train

    cfg = replace(profile.meta_ppo, total_timesteps=int(total_steps))
    return train(make_family(family_spec), task_ids, cfg, seed,
                 checkpoint_path=checkpoint_path("ppo", family_spec, cfg, seed, task_ids))


def _groupings(family_name: str, profile: Profile, seed: int) -> dict[str, np.ndarray]:
    """The k groups of each grouping, from the grouping stages of ``family_name`` (task shown where
    the family shows it: that is where PolicyGradEx estimates affinities)."""
    from pgx.stages.pipeline import estimate_affinity, gradient_features

    n = make_family(family_name).n_tasks
    return groupings(estimate_affinity(family_name, profile, seed, "first_order").affinity,
                     gradient_features(family_name, profile, seed).features.task_policy_gradients(n),
                     profile.num_groups, seed)


# --- Table 3 ------------------------------------------------------------------------------------

@dataclass
class TransferResult:
    """One family and seed of Table 3: every method's adaptation to the same targets."""

    family: str
    seed: int
    groups: dict[str, np.ndarray]
    """Grouping → ``(n_tasks,)`` labels."""
    representatives: dict[str, list[int]]
    """Grouping → one source task per group (its parameter medoid)."""
    target_ids: tuple[int, ...]
    adaptations: dict[str, Adaptation]
    """Method (``METHODS``) → returns on every target before and after each adaptation step."""
    maml: dict[str, MAMLResult]
    """MAML method → its meta-training run (learning curve, env steps)."""
    ppo_steps: int
    """Environment steps each multitask-PPO method spent in total (MAML on all tasks' count)."""
    wall_time: float

    def final_returns(self) -> dict[str, float]:
        """Method → mean return over targets after the last adaptation step."""
        return {m: float(a.after.mean()) for m, a in self.adaptations.items()}


@stage(reads=("meta_ppo", "num_groups", "transfer"))
def maml_transfer(family_name: str, profile: Profile, seed: int) -> TransferResult:
    """Table 3 for one family and seed: every method of ``METHODS`` adapted to the same unseen targets."""
    started = time.perf_counter()
    budgets = profile.transfer
    if profile.meta_ppo.policy != budgets.maml.policy:
        raise ValueError(f"MAML's policy {budgets.maml.policy} and PPO's {profile.meta_ppo.policy} differ: the "
                         f"methods must share one architecture")
    spec = hidden_task_spec(family_name)
    family = make_family(spec)
    groups = _groupings(family_name, profile, seed)
    reps = {name: representatives(labels, family.source_params) for name, labels in groups.items()}
    all_tasks = tuple(range(family.n_tasks))

    # The training runs are independent within each step: computed over the cores.
    sources = {METHODS[0]: reps["PolicyGradEx"], METHODS[1]: all_tasks, METHODS[2]: reps["random"],
               METHODS[3]: reps["gradient similarity"]}
    runs = dict(zip(sources, compute_many(_maml_run.call(spec, budgets.maml, seed, tuple(task_ids))
                                          for task_ids in sources.values())))
    ppo_steps = int(runs[METHODS[1]].env_steps[-1])
    ppo_seed = seed + _PPO_SEED
    labels = groups["PolicyGradEx"]
    members = {int(g): tuple(int(t) for t in np.flatnonzero(labels == g)) for g in np.unique(labels)}
    everything, *group_runs = compute_many(
        [_ppo_run.call(spec, profile, ppo_seed, all_tasks, ppo_steps)]
        + [_ppo_run.call(spec, profile, ppo_seed, tasks, ppo_steps // len(members)) for tasks in members.values()])
    per_group = dict(zip(members, group_runs))

    targets = target_subset(unseen_targets(spec), budgets.num_targets)
    adapt_seed = seed + _ADAPT_SEED
    policy = budgets.maml.policy
    adaptations = {m: adaptation_curves(run.actor(family, policy), family, targets, budgets.adapt, adapt_seed)
                   for m, run in runs.items()}
    adaptations[METHODS[4]] = adaptation_curves(everything.agent(family, policy).actor, family, targets,
                                                budgets.adapt, adapt_seed)
    # Each target starts from the policy of its nearest source task's group.
    nearest = nearest_source_tasks(family.source_params, np.asarray(family.target_params)[list(targets)])
    actors = {g: run.agent(family, policy).actor for g, run in per_group.items()}
    weights = {g: {name: p.detach() for name, p in actor.named_parameters()} for g, actor in actors.items()}
    start = {name: torch.stack([weights[int(labels[t])][name] for t in nearest])
             for name in next(iter(weights.values()))}
    adaptations[METHODS[5]] = adaptation_curves(actors[next(iter(actors))], family, targets, budgets.adapt,
                                                adapt_seed, start=start)
    return TransferResult(family=family_name, seed=seed, groups=groups, representatives=reps, target_ids=targets,
                          adaptations=adaptations, maml=runs, ppo_steps=ppo_steps,
                          wall_time=time.perf_counter() - started)


# --- Appendix C ---------------------------------------------------------------------------------

SOURCE_DISTRIBUTIONS = ("uniform", "partial", "biased")
"""Navigation's source-goal distributions of Appendix C; targets are always the uniform circle."""


@stage(reads=("transfer",))
def _source_distribution(family_spec: str, profile: Profile, seed: int) -> tuple[MAMLResult, Adaptation]:
    spec, budgets = family_spec, profile.transfer
    family = make_family(spec)
    run = _maml_run(spec, budgets.maml, seed, tuple(range(family.n_tasks)))
    # The same targets for every distribution: those none of them trains on.
    targets = target_subset(unseen_targets(*(f"navigation:goals={d}" for d in SOURCE_DISTRIBUTIONS)), budgets.num_targets)
    adaptation = adaptation_curves(run.actor(family, budgets.maml.policy), family, targets, budgets.adapt,
                                   seed + _ADAPT_SEED)
    return run, adaptation


def source_distributions(profile: Profile, seed: int) -> dict[str, tuple[MAMLResult, Adaptation]]:
    """Figure 4: MAML on each of navigation's uniform, partial and biased source goals, adapted to the
    same uniform targets. Distribution → (meta-training run, adaptation)."""
    return dict(zip(SOURCE_DISTRIBUTIONS, compute_many(_source_distribution.call(f"navigation:goals={d}", profile, seed)
                                                       for d in SOURCE_DISTRIBUTIONS)))
