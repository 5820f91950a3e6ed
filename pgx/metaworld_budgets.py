"""The Meta-World section of a profile (MT10's Table 3 column, MT50's grouping): ``Profile.metaworld``.

What the published MT10 numbers cost (CARE's protocol): 2M env steps per task, i.e. 20M env
steps and 2M gradient updates (each drawing from all ten tasks) per method and seed — GPU-days. The
``default`` profile runs MT10 at a budget a 2-core laptop finishes in about an hour for the whole
chapter, measured here (chapter 11 prints it): a few episodes per task. Success rates at that
budget are far below the published ones, and the chapter says so. ``paper`` is the published
budget, meant for a GPU. A section of :class:`~pgx.profiles.Profile`, read by the Meta-World stages
alone (a stage's key holds only the fields it reads).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pgx.algos.sac import EVAL_STRIDE, SACConfig
from pgx.checks import KeyedByChanges, check_instance, check_int, check_ints
from pgx.nets import ArchConfig
from pgx.surrogate import SurrogateConfig

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

    def __post_init__(self) -> None:
        owner = "MetaWorldBudgets"
        check_instance(owner, "sac", self.sac, SACConfig)
        check_instance(owner, "surrogate", self.surrogate, SurrogateConfig)
        for name in ("hidden", "modules", "steps_per_task", "envs_per_task", "value_samples", "projection_dim",
                     "num_subsets", "subset_size", "num_groups", "eval_episodes"):
            check_int(owner, name, getattr(self, name))
        if self.eval_episodes > EVAL_STRIDE:  # else refused by the evaluation, after the training
            raise ValueError(f"{owner}.eval_episodes must be <= {EVAL_STRIDE}, got {self.eval_episodes}")
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
            "θ* samples per task": self.steps_per_task, "d": self.projection_dim,
            "subsets m × size": f"{self.num_subsets} × {self.subset_size}", "k": self.num_groups,
            "eval episodes per task": self.eval_episodes, "seeds": self.seeds,
        }
