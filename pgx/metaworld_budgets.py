"""The Meta-World section of a profile (MT10's Table 3 column, MT50's grouping): ``Profile.metaworld``.

What the published MT10 numbers cost (CARE's protocol): 2M env steps per task, i.e. 20M env
steps and 2M gradient updates (each drawing from all ten tasks) per method and seed — GPU-days. The
``default`` profile runs MT10 at a budget a 2-core laptop finishes in about an hour for the whole
chapter, measured here (chapter 11 prints it): a few episodes per task. Success rates at that
budget are far below the published ones, and the chapter says so. ``paper`` is the published
budget, meant for a GPU. A section of :class:`~pgx.profiles.Profile` that counts for the families
it trains with SAC (``Profile.trainer``); the features, subsets, surrogate, groups and evaluation
budgets of MT10 and MT50 are the profile's own fields, set for them in its ``family_budgets``.
"""

from __future__ import annotations

from dataclasses import dataclass

from pgx.algos.sac import SACConfig
from pgx.checks import KeyedByChanges, check_instance, check_int, check_ints
from pgx.nets import ArchConfig

__all__ = ["MetaWorldBudgets", "METHODS"]

METHODS: dict[str, str] = {
    "MT-SAC": "mlp",
    "MT-MH-SAC": "multihead",
    "Soft Modularization": "softmod",
    "PaCo": "paco",
    "CARE": "care",
}
"""Single policies on all tasks (Table 3's multitask baselines) → their network kind."""


@dataclass(frozen=True)
class MetaWorldBudgets(KeyedByChanges):
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
    envs_per_task: int = 2
    """Sub-envs per task in those rollouts: each plays its own goal."""
    value_samples: int = 8
    """Actions drawn per state to estimate V(s) for the soft advantage."""
    seeds: tuple[int, ...] = (0, 1, 2)

    def __post_init__(self) -> None:
        owner = "MetaWorldBudgets"
        check_instance(owner, "sac", self.sac, SACConfig)
        for name in ("hidden", "modules", "envs_per_task", "value_samples"):
            check_int(owner, name, getattr(self, name))
        check_ints(owner, "seeds", self.seeds, 0)
        if not isinstance(self.methods, tuple) or not all(isinstance(m, str) for m in self.methods):
            raise ValueError(f"{owner}.methods must be a tuple of method names, got {self.methods!r}")
        unknown = [m for m in self.methods if m not in METHODS]
        if unknown:
            raise ValueError(f"{owner}: unknown method {unknown[0]!r}; known: {list(METHODS)}")
        ArchConfig(kind=self.group_arch)  # a bad kind is refused here, naming it

    def arch(self, kind: str) -> ArchConfig:
        """The network of ``kind`` at this section's width (the SAC trainer gives CARE the tasks' texts)."""
        return ArchConfig(kind=kind, hidden=self.hidden, modules=self.modules)

    def budgets(self) -> dict[str, object]:
        """What the chapter prints so a reader knows what produced its figures."""
        s = self.sac
        return {
            "env steps per method (all tasks)": s.total_steps, "learning starts": s.learning_starts,
            "replay per task": s.buffer_size, "batch per task": s.batch_size,
            "updates per vector step": s.updates_per_step, "hidden width": self.hidden,
            "feature rollout sub-envs per task": self.envs_per_task, "actions per state for V(s)": self.value_samples,
            "methods on all tasks": ", ".join(self.methods), "network per group": self.group_arch, "seeds": self.seeds,
        }
