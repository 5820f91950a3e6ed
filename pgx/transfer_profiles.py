"""Budgets of the downstream stage (MAML transfer, Table 3, Appendix C) for each profile.

They live beside :mod:`pgx.profiles`, not inside :class:`~pgx.profiles.Profile`, for one reason:
a ``Profile`` is part of the cache key of every stage, so a new field there would re-run every
cached meta-training, feature and ground-truth stage. ``PGX_PROFILE`` picks both: the
downstream stage runs with ``TRANSFER_PROFILES[profile.name]`` and carries it in its own key.

The paper gives two numbers: 50 unseen target tasks and "200 adaptation steps". pgx counts an
adaptation step as one policy-gradient update from a fresh batch of episodes on the target
(:mod:`pgx.transfer`); the ``paper`` profile takes 200 of them, the others fewer, and each chapter
prints what it ran with. Everything else here is our choice, after the MAML-RL references
(pytorch-maml-rl, ProMP: inner step 0.1, 20 episodes per task, 20–40 tasks per meta-batch).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Mapping

from pgx.algos.maml import MAMLConfig
from pgx.checks import FamilyBudgets, check_instance, check_int, check_ints, check_name
from pgx.transfer import AdaptConfig

__all__ = ["TransferProfile", "TRANSFER_PROFILES", "get_transfer_profile"]


@dataclass(frozen=True)
class TransferProfile(FamilyBudgets):
    label = "transfer profile"
    name: str
    maml: MAMLConfig
    """MAML meta-training; every MAML method (groups' representatives or all tasks) uses it."""
    adapt: AdaptConfig
    """Adaptation to each target, the same for every starting policy."""
    num_targets: int = 50
    """Unseen target tasks evaluated, evenly spaced over the family's targets (the paper: 50)."""
    seeds: tuple[int, ...] = (0, 1, 2)
    """Seeds of the whole comparison: groups (their θ*), MAML and PPO runs, adaptation."""
    family: str | None = None
    """The family these budgets were specialised for (None: the base budgets)."""
    family_budgets: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    """Family name → fields that differ from the base budgets."""

    def __post_init__(self) -> None:
        check_name("TransferProfile", "name", self.name)
        owner = f"TransferProfile({self.name!r})"
        check_instance(owner, "maml", self.maml, MAMLConfig)
        check_instance(owner, "adapt", self.adapt, AdaptConfig)
        check_int(owner, "num_targets", self.num_targets)
        check_ints(owner, "seeds", self.seeds, 0)
        check_name(owner, "family", self.family, optional=True)
        if self.adapt.lr != self.maml.inner_lr:
            raise ValueError(f"transfer profile {self.name!r}: adapt.lr ({self.adapt.lr}) must equal maml.inner_lr "
                             f"({self.maml.inner_lr}): targets adapt with MAML's own inner step")
        self.check_family_budgets(owner)

    def budgets(self) -> dict[str, object]:
        """What a chapter prints so a reader knows what produced its figures."""
        return {
            "profile": self.name,
            "family": self.family or "(base)",
            "MAML iterations": self.maml.meta_iterations,
            "meta-batch (task slots)": self.maml.meta_batch_size,
            "episodes/slot": self.maml.episodes,
            "inner steps (training)": self.maml.inner_steps,
            "inner step size α": self.maml.inner_lr,
            "outer lr (Adam)": self.maml.outer_lr,
            "first order": self.maml.first_order,
            "horizon": self.maml.horizon or "family's",
            "adaptation steps": self.adapt.steps,
            "episodes/adaptation step": self.adapt.episodes,
            "target tasks": self.num_targets,
            "seeds": self.seeds,
        }


# The meta-batch holds every source task (10) at least once: MAML on all tasks must see them all.
_SMOKE_MAML = MAMLConfig(meta_iterations=3, meta_batch_size=10, episodes=1, horizon=50)
_SMOKE_ADAPT = AdaptConfig(steps=2, episodes=2, horizon=50)

TRANSFER_PROFILES: dict[str, TransferProfile] = {
    "smoke": TransferProfile(
        name="smoke", maml=_SMOKE_MAML, adapt=_SMOKE_ADAPT, num_targets=4, seeds=(0, 1),
        family_budgets={"highway": dict(maml=replace(_SMOKE_MAML, meta_iterations=2, horizon=10),
                                        adapt=replace(_SMOKE_ADAPT, steps=1, horizon=10), num_targets=2)},
    ),
    "default": TransferProfile(
        name="default",
        # CartPole-v0's 200-step horizon: the paper's CartPole returns (144–159) sit below it.
        maml=MAMLConfig(meta_iterations=100, meta_batch_size=10, episodes=5, horizon=200),
        adapt=AdaptConfig(steps=10, episodes=10, horizon=200),
        family_budgets={
            "navigation": dict(maml=MAMLConfig(meta_iterations=200, meta_batch_size=10, episodes=5),
                               adapt=AdaptConfig(steps=10, episodes=10)),
            # Episodes cut at 300 of LunarLander's 1,000 steps: a landing takes 200–400 steps.
            # 100 MAML iterations as the base budget (40 before issue 21).
            "lunarlander": dict(maml=MAMLConfig(meta_iterations=100, meta_batch_size=10, episodes=4, horizon=300),
                                adapt=AdaptConfig(steps=5, episodes=5, horizon=300), num_targets=20),
            # highway on envpool (issue 21) runs the base budgets (it ran 10 MAML iterations of one
            # episode, 3 adaptation steps and 10 targets on highway-env's Python).
        },
    ),
    "paper": TransferProfile(
        name="paper",
        maml=MAMLConfig(meta_iterations=500, meta_batch_size=20, episodes=20),
        adapt=AdaptConfig(steps=200, episodes=20),
        family_budgets={"highway": dict(maml=MAMLConfig(meta_iterations=200, meta_batch_size=20, episodes=10))},
    ),
}


def get_transfer_profile(name: str) -> TransferProfile:
    """The downstream budgets of the profile called ``name``."""
    try:
        return TRANSFER_PROFILES[name]
    except KeyError:
        raise ValueError(f"no downstream budgets for profile {name!r}; known: {sorted(TRANSFER_PROFILES)}") from None
