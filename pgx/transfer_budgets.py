"""The downstream section of a profile (MAML transfer, Table 3, Appendix C): ``Profile.transfer``.

The paper gives two numbers: 50 unseen target tasks and "200 adaptation steps". pgx counts an
adaptation step as one policy-gradient update from a fresh batch of episodes on the target
(:mod:`pgx.algos.transfer`); the ``paper`` profile takes 200 of them, the others fewer, and each chapter
prints what it ran with. Everything else here is our choice, after the MAML-RL references
(pytorch-maml-rl, ProMP: inner step 0.1, 20 episodes per task, 20–40 tasks per meta-batch).

A section, not a profile of its own: a stage's key holds only the profile fields it reads
(:mod:`pgx.stages.graph`), so the downstream stages read ``transfer`` and no other stage's key
moves when it changes.
"""

from __future__ import annotations

from dataclasses import dataclass

from pgx.algos.maml import MAMLConfig
from pgx.checks import KeyedByChanges, check_instance, check_int, check_ints
from pgx.algos.transfer import AdaptConfig

__all__ = ["TransferBudgets"]


@dataclass(frozen=True)
class TransferBudgets(KeyedByChanges):
    maml: MAMLConfig
    """MAML meta-training; every MAML method (groups' representatives or all tasks) uses it."""
    adapt: AdaptConfig
    """Adaptation to each target, the same for every starting policy."""
    num_targets: int = 50
    """Unseen target tasks evaluated, evenly spaced over the family's targets (the paper: 50)."""
    seeds: tuple[int, ...] = (0, 1, 2)
    """Seeds of the whole comparison: groups (their θ*), MAML and PPO runs, adaptation."""

    def __post_init__(self) -> None:
        owner = "TransferBudgets"
        check_instance(owner, "maml", self.maml, MAMLConfig)
        check_instance(owner, "adapt", self.adapt, AdaptConfig)
        check_int(owner, "num_targets", self.num_targets)
        check_ints(owner, "seeds", self.seeds, 0)
        if self.adapt.lr != self.maml.inner_lr:
            raise ValueError(f"{owner}: adapt.lr ({self.adapt.lr}) must equal maml.inner_lr ({self.maml.inner_lr}): "
                             f"targets adapt with MAML's own inner step")

    def budgets(self) -> dict[str, object]:
        """What a chapter prints so a reader knows what produced its figures."""
        return {
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
