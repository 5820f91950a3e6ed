"""PaCo (Sun et al. 2022, "PaCo: Parameter-Compositional Multi-Task Reinforcement Learning").

All tasks share a parameter set ``Φ = [Φ_1, …, Φ_K]`` of K full copies of an MLP's parameters;
task τ owns only a composition vector ``w_τ ∈ R^K``, and its network is the MLP with parameters

    θ_τ = Σ_k w_τ,k Φ_k.

Rows of a batch use their own task's θ_τ. Because θ_τ enters each layer linearly, a layer's
output for row b of task τ is ``Σ_k w_τ,k (W_k x_b + b_k)``: computing the K copies' outputs for
every row and mixing them with the row's w is the same number as building the row's composed
weights, without ever materialising a ``(B, out, in)`` weight per row.

Simplifications, relative to the paper: the network has no ``nn.Linear`` layers (Φ is stored as
one ``(K, out, in)`` tensor per layer); the paper's training-time safeguards — masking out the
loss of a diverging task and resetting its ``w_τ`` — belong to the trainer and are not here; and
``x`` also carries the task one-hot (the family appends it), which the paper's input does not.
"""

from __future__ import annotations

import math
from itertools import pairwise

import torch
from torch import nn

from pgx.nets.config import ArchConfig
from pgx.nets.shared import MultitaskNetwork

__all__ = ["PaCoNetwork"]


class PaCoNetwork(MultitaskNetwork):
    """A ReLU MLP of ``cfg.layers`` layers whose parameters are composed per task from K = ``cfg.modules`` copies.

    Parameters: ``weight_i (K, out_i, in_i)`` and ``bias_i (K, out_i)`` for each layer ``i`` (the
    set Φ), and ``composition (n_tasks, K)`` (row τ is ``w_τ``).
    """

    def __init__(self, in_dim: int, out_dim: int, n_tasks: int, cfg: ArchConfig = ArchConfig(kind="paco")):
        super().__init__(in_dim, out_dim, n_tasks)
        k = cfg.modules
        dims = [in_dim] + [cfg.hidden] * (cfg.layers - 1) + [out_dim]
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        for i, (a, b) in enumerate(pairwise(dims)):
            gain = cfg.output_std if i == len(dims) - 2 else math.sqrt(2)
            weight = torch.empty(k, b, a)
            for copy in weight:  # each copy initialised like one orthogonal layer
                nn.init.orthogonal_(copy, gain)
            self.weights.append(nn.Parameter(weight))
            self.biases.append(nn.Parameter(torch.zeros(k, b)))
        # Random unit-norm w_τ: Σ_k w_k Φ_k of independent copies then has the variance of one
        # copy, so a composed network starts at the usual scale, and tasks start different.
        composition = torch.randn(n_tasks, k)
        self.composition = nn.Parameter(composition / composition.norm(dim=1, keepdim=True))

    def composed_parameters(self, task_index: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """θ_τ of one task, layer by layer: ``[(weight (out, in), bias (out,)), …]`` (for reading and testing)."""
        w = self.composition[task_index]
        return [(torch.einsum("k,koi->oi", w, weight), w @ bias) for weight, bias in zip(self.weights, self.biases)]

    def forward(self, x: torch.Tensor, task: torch.Tensor) -> torch.Tensor:
        """``x (B, in_dim)``, ``task (B, n_tasks)`` → ``(B, out_dim)``, each row through its task's θ_τ.

        An all-zero task row has ``w = 0``, hence all-zero parameters and a zero output.
        """
        self.check_inputs(x, task)
        w = task @ self.composition  # (B, K): each row's w_τ
        h = x
        for i, (weight, bias) in enumerate(zip(self.weights, self.biases)):
            per_copy = torch.einsum("koi,bi->bko", weight, h) + bias  # (B, K, out): every copy Φ_k
            h = torch.einsum("bk,bko->bo", w, per_copy)
            if i < len(self.weights) - 1:
                h = torch.relu(h)
        return h
