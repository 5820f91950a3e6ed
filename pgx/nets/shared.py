"""What every multitask network shares, and the two plain ones: MT-SAC's MLP and a multi-head MLP.

Every network answers ``net(x, task) -> (B, out_dim)``: ``x (B, in_dim)`` already contains the
task one-hot (the family appends it to observations, as MT-SAC conditions on it), and ``task
(B, n_tasks)`` repeats it so that architectures which route, compose or attend by task need not
know where in ``x`` it sits. A row of ``task`` may be all zeros (an unknown task); every network
then still gives an output.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from itertools import pairwise

import torch
from torch import nn

from pgx.nets.config import ArchConfig
from pgx.nets.policies import layer_init
from pgx.runtime import is_int

__all__ = ["MultitaskNetwork", "relu_mlp", "param_count", "MLPNetwork", "MultiHeadNetwork"]


class MultitaskNetwork(nn.Module):
    """Base of every architecture: its dimensions and the checks of ``forward(x, task)``'s inputs.

    The checks look at shapes and dtypes only, never at values, so they also hold inside
    ``torch.func.vmap`` (per-sample gradients).
    """

    def __init__(self, in_dim: int, out_dim: int, n_tasks: int):
        super().__init__()
        for name, value in (("in_dim", in_dim), ("out_dim", out_dim), ("n_tasks", n_tasks)):
            if not is_int(value) or value < 1:
                raise ValueError(f"{name} must be an int >= 1, got {value!r}")
        self.in_dim, self.out_dim, self.n_tasks = int(in_dim), int(out_dim), int(n_tasks)

    def check_inputs(self, x: torch.Tensor, task: torch.Tensor) -> None:
        """Raise ``ValueError`` unless ``x`` is ``(B, in_dim)`` and ``task`` is ``(B, n_tasks)``, both float."""
        if x.ndim != 2 or x.shape[1] != self.in_dim:
            raise ValueError(f"x must have shape (batch, {self.in_dim}), got {tuple(x.shape)}")
        if task.ndim != 2 or task.shape[1] != self.n_tasks:
            raise ValueError(f"task must have shape (batch, {self.n_tasks}) (a one-hot per row), "
                             f"got {tuple(task.shape)}")
        if x.shape[0] != task.shape[0]:
            raise ValueError(f"x and task must have the same batch size, got {x.shape[0]} and {task.shape[0]}")
        if not (x.is_floating_point() and task.is_floating_point()):
            raise ValueError(f"x and task must be floating point, got {x.dtype} and {task.dtype}")


def relu_mlp(dims: Sequence[int], output_std: float | None) -> nn.Sequential:
    """Linear layers ``dims[0] → dims[1] → … → dims[-1]`` with ReLU between them.

    With ``output_std`` the last layer is an output layer (no ReLU, init gain ``output_std``);
    with ``None`` a ReLU follows every layer, which makes a feature encoder. ``dims`` of length 1
    gives the identity.
    """
    modules: list[nn.Module] = []
    for i, (a, b) in enumerate(pairwise(dims)):
        if i == len(dims) - 2 and output_std is not None:
            modules.append(layer_init(nn.Linear(a, b), std=output_std))
        else:
            modules += [layer_init(nn.Linear(a, b), std=math.sqrt(2)), nn.ReLU()]
    return nn.Sequential(*modules)


def param_count(net: nn.Module) -> int:
    """Number of trainable scalars in ``net`` (buffers such as CARE's text embeddings excluded)."""
    return sum(p.numel() for p in net.parameters() if p.requires_grad)


class MLPNetwork(MultitaskNetwork):
    """MT-SAC's network: one MLP shared by all tasks, told the task only by the one-hot inside ``x``."""

    def __init__(self, in_dim: int, out_dim: int, n_tasks: int, cfg: ArchConfig = ArchConfig()):
        super().__init__(in_dim, out_dim, n_tasks)
        self.net = relu_mlp([in_dim] + [cfg.hidden] * (cfg.layers - 1) + [out_dim], cfg.output_std)

    def forward(self, x: torch.Tensor, task: torch.Tensor) -> torch.Tensor:
        """``x (B, in_dim)``, ``task (B, n_tasks)`` (checked, otherwise unused) → ``(B, out_dim)``."""
        self.check_inputs(x, task)
        return self.net(x)


class MultiHeadNetwork(MultitaskNetwork):
    """A shared trunk of ``layers - 1`` linear layers and one linear output head per task.

    Each row's output is ``Σ_t task[t] · head_t(trunk(x))``: for a one-hot row that is its own
    task's head; an all-zero row (unknown task) gets zeros. Every head is computed for every row
    (a loop over tasks, not rows), which keeps the heads plain ``nn.Linear`` layers.
    """

    def __init__(self, in_dim: int, out_dim: int, n_tasks: int, cfg: ArchConfig = ArchConfig()):
        super().__init__(in_dim, out_dim, n_tasks)
        self.trunk = relu_mlp([in_dim] + [cfg.hidden] * (cfg.layers - 1), output_std=None)
        trunk_out = cfg.hidden if cfg.layers > 1 else in_dim
        self.heads = nn.ModuleList(layer_init(nn.Linear(trunk_out, out_dim), std=cfg.output_std)
                                   for _ in range(n_tasks))

    def forward(self, x: torch.Tensor, task: torch.Tensor) -> torch.Tensor:
        """``x (B, in_dim)``, ``task (B, n_tasks)`` → ``(B, out_dim)``, each row from its task's head."""
        self.check_inputs(x, task)
        features = self.trunk(x)
        every_head = torch.stack([head(features) for head in self.heads], dim=1)  # (B, n_tasks, out_dim)
        return torch.einsum("bt,bto->bo", task, every_head)
