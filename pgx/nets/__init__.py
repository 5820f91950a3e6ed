"""Multitask network architectures: plain ``nn.Module``s that any trainer (SAC, PPO, MAML) accepts.

Every network is called as ``net(x, task) -> (B, out_dim)``, where ``x (B, in_dim)`` is the
input (an actor's observation, a critic's observation ‖ action), already containing the task
one-hot as MT-SAC conditions on it, and ``task (B, n_tasks)`` is that one-hot again (all zeros for
an unknown task). ``make_network`` picks the architecture from ``ArchConfig.kind``:

- ``mlp``: MT-SAC's shared MLP (``pgx.nets.shared``);
- ``multihead``: a shared trunk with one output head per task (``pgx.nets.shared``);
- ``softmod``: Soft Modularization, Yang et al. 2020 (``pgx.nets.softmod``);
- ``paco``: parameter-compositional PaCo, Sun et al. 2022 (``pgx.nets.paco``);
- ``care``: CARE's attention over encoders by task context, Sodhani et al. 2021 (``pgx.nets.care``).
"""

from __future__ import annotations

from collections.abc import Sequence

from pgx.nets.care import CARENetwork, tfidf_embeddings
from pgx.nets.config import KINDS, ArchConfig
from pgx.nets.paco import PaCoNetwork
from pgx.nets.shared import MLPNetwork, MultiHeadNetwork, MultitaskNetwork, param_count
from pgx.nets.softmod import SoftModularNetwork

__all__ = [
    "KINDS",
    "ArchConfig",
    "make_network",
    "param_count",
    "tfidf_embeddings",
    "MultitaskNetwork",
    "MLPNetwork",
    "MultiHeadNetwork",
    "SoftModularNetwork",
    "PaCoNetwork",
    "CARENetwork",
]


def make_network(cfg: ArchConfig, in_dim: int, out_dim: int, n_tasks: int,
                 task_texts: Sequence[str] | None = None) -> MultitaskNetwork:
    """The network of kind ``cfg.kind``, mapping ``(x (B, in_dim), task (B, n_tasks))`` to ``(B, out_dim)``.

    :param task_texts: one description per task; CARE embeds them (TF-IDF) as task metadata, the
        other kinds ignore them. Checked for length whatever the kind, since a wrong length means
        the texts do not describe these tasks.
    """
    if task_texts is not None and (isinstance(task_texts, str) or len(task_texts) != n_tasks):
        raise ValueError(f"task_texts must hold one string per task ({n_tasks}), got {task_texts!r}")
    if cfg.kind == "mlp":
        return MLPNetwork(in_dim, out_dim, n_tasks, cfg)
    if cfg.kind == "multihead":
        return MultiHeadNetwork(in_dim, out_dim, n_tasks, cfg)
    if cfg.kind == "softmod":
        return SoftModularNetwork(in_dim, out_dim, n_tasks, cfg)
    if cfg.kind == "paco":
        return PaCoNetwork(in_dim, out_dim, n_tasks, cfg)
    if cfg.kind == "care":
        return CARENetwork(in_dim, out_dim, n_tasks, cfg, task_texts)
    raise ValueError(f"kind must be one of {', '.join(KINDS)}; got {cfg.kind!r}")
