"""Soft Modularization (Yang et al. 2020, "Multi-Task Reinforcement Learning with Soft Modularization").

A base network is built of layers of small modules; a routing network, conditioned on both the
state and the task, decides per sample how strongly each module of one layer feeds each module of
the next. Tasks share every module and differ only in how they route through them.

Routing network (the paper's section 4.2, with ``g = f(x) ⊙ h(task)``)::

    p̂¹     = softmax(W_d¹ ReLU(g))
    p̂^{l+1} = softmax(W_d^{l+1} ReLU((W_u^l p̂^l) ⊙ g))

where each ``p̂^l`` holds, for every target module ``j``, a softmax over source modules ``i``.
Base network: module ``j`` of layer ``l+1`` takes ``Σ_i p̂^l[j, i] · (output of module i in layer l)``.

Simplifications, relative to the paper:

- The state embedding ``f`` is one linear layer + ReLU and the task embedding ``h`` a lookup
  (a bias-free linear map of the one-hot); the paper's are MLP encoders, and its base network
  reads a separate state encoding. Here the first module layer reads ``x`` directly.
- Each module is one linear layer + ReLU.
- The output layer is one linear layer on a routed mix of the last layer's modules (one more
  softmax over source modules), rather than a sum of module outputs.
- ``x`` also carries the task one-hot (the family appends it), so the base network sees the task
  directly as well as through the routes.
- The paper's task-loss re-weighting by SAC temperature belongs to the trainer, not the network.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from pgx.nets.config import ArchConfig
from pgx.nets.shared import MultitaskNetwork
from pgx.nets.policies import layer_init

__all__ = ["SoftModularNetwork"]


class SoftModularNetwork(MultitaskNetwork):
    """Base network of ``layers - 1`` layers of ``modules`` modules each, routed per sample.

    ``cfg.layers`` linear layers lie on any path from input to output: ``layers - 1`` module
    layers and the output layer. There are ``layers - 1`` routing transitions: ``layers - 2``
    between module layers (``(modules, modules)`` weights each) and one into the output layer
    (``(modules,)`` weights).
    """

    def __init__(self, in_dim: int, out_dim: int, n_tasks: int, cfg: ArchConfig = ArchConfig(kind="softmod")):
        super().__init__(in_dim, out_dim, n_tasks)
        if cfg.layers < 2:
            raise ValueError(f"softmod needs layers >= 2 (a module layer and the output layer), got {cfg.layers}")
        n, hidden, depth = cfg.modules, cfg.hidden, cfg.layers - 1
        self.modules_per_layer = n

        # --- base network: depth layers of n modules, then the output layer
        self.base = nn.ModuleList(
            nn.ModuleList(layer_init(nn.Linear(in_dim if layer == 0 else hidden, hidden)) for _ in range(n))
            for layer in range(depth)
        )
        self.output = layer_init(nn.Linear(hidden, out_dim), std=cfg.output_std)

        # --- routing network
        self.state_embedding = layer_init(nn.Linear(in_dim, hidden))
        self.task_embedding = nn.Linear(n_tasks, hidden, bias=False)
        # N(0, 1) rows, as nn.Embedding: an embedding of the order of 1/sqrt(hidden) would make every
        # route nearly uniform, and so every task nearly alike, at initialisation.
        nn.init.normal_(self.task_embedding.weight)
        self.route_down = nn.ModuleList(
            [layer_init(nn.Linear(hidden, n * n), std=1.0) for _ in range(depth - 1)]
            + [layer_init(nn.Linear(hidden, n), std=1.0)]
        )
        self.route_up = nn.ModuleList(layer_init(nn.Linear(n * n, hidden), std=math.sqrt(2)) for _ in range(depth - 1))

    def routing(self, x: torch.Tensor, task: torch.Tensor) -> list[torch.Tensor]:
        """Routing weights of every transition: ``(B, n, n)`` [target, source] between module
        layers, then ``(B, n)`` into the output layer; each sums to 1 over source modules."""
        n = self.modules_per_layer
        g = torch.relu(self.state_embedding(x)) * self.task_embedding(task)
        weights: list[torch.Tensor] = []
        for transition, down in enumerate(self.route_down):
            if transition == 0:
                logits = down(torch.relu(g))
            else:
                logits = down(torch.relu(self.route_up[transition - 1](weights[-1].flatten(1)) * g))
            last = transition == len(self.route_down) - 1
            weights.append(torch.softmax(logits if last else logits.view(-1, n, n), dim=-1))
        return weights

    def forward(self, x: torch.Tensor, task: torch.Tensor) -> torch.Tensor:
        """``x (B, in_dim)``, ``task (B, n_tasks)`` → ``(B, out_dim)``."""
        self.check_inputs(x, task)
        *between_modules, into_output = self.routing(x, task)
        h = torch.stack([torch.relu(module(x)) for module in self.base[0]], dim=1)  # (B, n, hidden)
        for layer, route in zip(self.base[1:], between_modules):
            mixed = torch.einsum("bji,bih->bjh", route, h)
            h = torch.stack([torch.relu(module(mixed[:, j])) for j, module in enumerate(layer)], dim=1)
        return self.output(torch.einsum("bi,bih->bh", into_output, h))
