"""Budgets of the Meta-World chapter (MT10's Table 3 column, MT50's grouping) for each profile.

Kept beside :mod:`pgx.profiles` for the reason :mod:`pgx.transfer_profiles` is: a field added to
:class:`~pgx.profiles.Profile` would re-run every cached stage of the other families.
``PGX_PROFILE`` picks both; the Meta-World stages carry these budgets in their own cache keys.

What the published MT10 numbers cost (CARE's protocol): 2M env steps per task, i.e. 20M env
steps and 2M gradient updates (each drawing from all ten tasks) per method and seed — GPU-days. The ``default`` profile runs
MT10 at a budget a 2-core laptop finishes in about an hour for the whole chapter, measured here
(chapter 11 prints it): a few episodes per task. Success rates at that budget are far below the
published ones, and the chapter says so. ``paper`` is the published budget, meant for a GPU.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Mapping

from pgx.algos.sac import EVAL_STRIDE, SACConfig
from pgx.checks import FamilyBudgets, check_instance, check_int, check_ints, check_name
from pgx.nets import ArchConfig
from pgx.surrogate import SurrogateConfig

__all__ = ["MetaWorldProfile", "METAWORLD_PROFILES", "get_metaworld_profile", "METHODS"]

METHODS: dict[str, str] = {
    "MT-SAC": "mlp",
    "MT-MH-SAC": "multihead",
    "Soft Modularization": "softmod",
    "PaCo": "paco",
    "CARE": "care",
}
"""Single policies on all tasks (Table 3's multitask baselines) → their network kind."""


@dataclass(frozen=True)
class MetaWorldProfile(FamilyBudgets):
    label = "Meta-World profile"
    name: str
    sac: SACConfig
    """Multitask SAC on all tasks: the meta-policy θ* (its actor's kind is ``mlp``: MT-SAC) and the
    budget of every method. A method that trains one network per group splits ``total_steps``
    (and ``learning_starts``) over its groups in proportion to their sizes, so every method spends
    the same env steps per task and sees as many transitions per task per update."""
    hidden: int = 400
    """Width of every network's hidden layers (the published MT10 networks: 400)."""
    modules: int = 4
    """Soft Modularization's modules per layer, PaCo's parameter sets, CARE's encoders."""
    group_arch: str = "softmod"
    """The network each group trains (the paper: one Soft-Modularization policy per group)."""
    methods: tuple[str, ...] = tuple(METHODS)
    """Which of :data:`METHODS` run on all tasks."""
    steps_per_task: int = 1_000
    """Transitions per task sampled at θ* for the gradient features (each of two rollouts)."""
    envs_per_task: int = 2
    """Sub-envs per task in those rollouts: each plays its own goal."""
    value_samples: int = 8
    """Actions drawn per state to estimate V(s) for the soft advantage."""
    projection_dim: int = 200
    num_subsets: int = 60
    subset_size: int = 5
    surrogate: SurrogateConfig = field(default_factory=lambda: SurrogateConfig(relative_distance=0.01))
    """The same steps as the other families: Δθ at 1% of ‖θ*‖ on the trust-region sphere."""
    num_groups: int = 3
    eval_episodes: int = 10
    """Evaluation episodes per task after training (Meta-World's standard: 50 goals; ``paper`` 50)."""
    seeds: tuple[int, ...] = (0, 1, 2)
    family: str | None = None
    family_budgets: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    """``"mt50"`` → fields that differ for MT50 (only its grouping runs, no Table 3)."""

    def __post_init__(self) -> None:
        check_name("MetaWorldProfile", "name", self.name)
        owner = f"MetaWorldProfile({self.name!r})"
        check_instance(owner, "sac", self.sac, SACConfig)
        check_instance(owner, "surrogate", self.surrogate, SurrogateConfig)
        for name in ("hidden", "modules", "steps_per_task", "envs_per_task", "value_samples", "projection_dim", "num_subsets",
                     "subset_size", "num_groups", "eval_episodes"):
            check_int(owner, name, getattr(self, name))
        if self.eval_episodes > EVAL_STRIDE:  # else refused by the evaluation, after the training
            raise ValueError(f"{owner}.eval_episodes must be <= {EVAL_STRIDE}, got {self.eval_episodes}")
        check_ints(owner, "seeds", self.seeds, 0)
        check_name(owner, "family", self.family, optional=True)
        if not isinstance(self.methods, tuple) or not all(isinstance(m, str) for m in self.methods):
            raise ValueError(f"{owner}.methods must be a tuple of method names, got {self.methods!r}")
        unknown = [m for m in self.methods if m not in METHODS]
        if unknown:
            raise ValueError(f"Meta-World profile {self.name!r}: unknown method {unknown[0]!r}; known: {list(METHODS)}")
        ArchConfig(kind=self.group_arch)  # a bad kind is refused here, naming it
        self.check_family_budgets(owner)

    def for_family(self, family: str) -> "MetaWorldProfile":
        """The budgets ``family`` (``"mt10"``, ``"mt50"``, or a spec of either) runs with; idempotent."""
        if family.partition(":")[0] not in ("mt10", "mt50"):
            raise ValueError(f"Meta-World budgets are for mt10 or mt50, got family {family!r}")
        return super().for_family(family)

    def arch(self, kind: str) -> ArchConfig:
        """The network of ``kind`` at this profile's width (the SAC trainer gives CARE the tasks' texts)."""
        return ArchConfig(kind=kind, hidden=self.hidden, modules=self.modules)

    def budgets(self) -> dict[str, object]:
        """What the chapter prints so a reader knows what produced its figures."""
        s = self.sac
        return {
            "profile": self.name, "family": self.family or "(base)",
            "env steps per method (all tasks)": s.total_steps, "learning starts": s.learning_starts,
            "replay per task": s.buffer_size, "batch per task": s.batch_size,
            "updates per vector step": s.updates_per_step, "hidden width": self.hidden,
            "θ* samples per task": self.steps_per_task, "d": self.projection_dim,
            "subsets m × size": f"{self.num_subsets} × {self.subset_size}", "k": self.num_groups,
            "eval episodes per task": self.eval_episodes, "seeds": self.seeds,
        }


_SMOKE_SAC = SACConfig(total_steps=600, buffer_size=200, batch_size=16, learning_starts=200, updates_per_step=0.5,
                       eval_every=10**9, eval_episodes=1, checkpoint_every=10**9)
_DEFAULT_SAC = SACConfig(total_steps=60_000, buffer_size=6_000, batch_size=64, learning_starts=10_000,
                         updates_per_step=0.5, eval_every=20_000, eval_episodes=1, checkpoint_every=20_000)
# Replay counted per task: 100,000 × MT10's ten tasks is the 1M transitions of mtrl's MT10 runs.
_PAPER_SAC = SACConfig(total_steps=20_000_000, buffer_size=100_000, batch_size=128, learning_starts=15_000,
                       updates_per_step=1.0, eval_every=500_000, eval_episodes=5, checkpoint_every=200_000)

METAWORLD_PROFILES: dict[str, MetaWorldProfile] = {
    "smoke": MetaWorldProfile(
        name="smoke", sac=_SMOKE_SAC, hidden=16, modules=2, steps_per_task=40, envs_per_task=1, value_samples=2,
        projection_dim=16,
        num_subsets=40, subset_size=5, num_groups=2, eval_episodes=1, seeds=(0,),
        methods=("MT-SAC", "Soft Modularization"),
        family_budgets={"mt50": dict(sac=replace(_SMOKE_SAC, total_steps=100, learning_starts=50), subset_size=20,
                                     num_subsets=60, num_groups=5, steps_per_task=10)},
    ),
    "default": MetaWorldProfile(
        name="default", sac=_DEFAULT_SAC, hidden=128, steps_per_task=1_000,
        family_budgets={"mt50": dict(sac=replace(_DEFAULT_SAC, total_steps=100_000, buffer_size=2_000,
                                                 learning_starts=25_000, eval_every=10**9),
                                     steps_per_task=200, subset_size=20, num_subsets=200, num_groups=10,
                                     eval_episodes=1, seeds=(0,))},
    ),
    "paper": MetaWorldProfile(
        name="paper", sac=_PAPER_SAC, hidden=400, eval_episodes=50,
        family_budgets={"mt50": dict(sac=replace(_PAPER_SAC, total_steps=100_000_000), subset_size=20,
                                     num_subsets=400, num_groups=10)},
    ),
}


def get_metaworld_profile(name: str) -> MetaWorldProfile:
    """The Meta-World budgets of the profile called ``name``."""
    try:
        return METAWORLD_PROFILES[name]
    except KeyError:
        raise ValueError(f"no Meta-World budgets for profile {name!r}; known: {sorted(METAWORLD_PROFILES)}") from None
