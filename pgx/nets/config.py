"""One frozen config for every multitask network kind, validated when it is built."""

from __future__ import annotations

import warnings
from dataclasses import dataclass

from pgx.checks import KeyedByChanges, check_int, check_number
from pgx.runtime import is_int

__all__ = ["KINDS", "ArchConfig"]

KINDS = ("mlp", "multihead", "softmod", "paco", "care")
"""The architectures ``pgx.nets.make_network`` builds."""

_MIN_LAYERS = {"mlp": 1, "multihead": 1, "softmod": 2, "paco": 1, "care": 2}
"""Soft Modularization needs a layer of modules before the output layer; CARE needs an encoder
layer before its output layer."""


@dataclass(frozen=True)
class ArchConfig(KeyedByChanges):
    """Shape of a multitask network; ``kind`` picks the architecture, the rest size it."""

    kind: str = "mlp"
    """``"mlp"`` (MT-SAC's shared MLP), ``"multihead"``, ``"softmod"`` (Soft Modularization),
    ``"paco"`` (parameter-compositional) or ``"care"`` (contextual attention-based encoders)."""
    hidden: int = 400
    """Width of every hidden layer (of every module, for ``softmod``; of every encoder, for ``care``)."""
    layers: int = 3
    """Linear layers on the path from input to output: at least 2 for ``softmod`` and ``care``, 1 otherwise."""
    modules: int = 4
    """``softmod``: modules per layer; ``paco``: size K of the shared parameter set; ``care``: number
    of mixture encoders. Unused by ``mlp`` and ``multihead``."""
    output_std: float = 0.01
    """Initial scale (orthogonal gain) of the output layer: small, so an actor starts with a mean
    near zero and a critic with values near zero, whatever the architecture."""

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"ArchConfig.kind must be one of {', '.join(KINDS)}; got {self.kind!r}")
        for name in ("hidden", "modules"):
            check_int("ArchConfig", name, getattr(self, name))
        least = _MIN_LAYERS[self.kind]
        if not is_int(self.layers) or self.layers < least:
            raise ValueError(f"ArchConfig.layers must be an int >= {least} for kind {self.kind!r}, got {self.layers!r}")
        check_number("ArchConfig", "output_std", self.output_std, 0)
        if self.modules == 1 and self.kind in ("softmod", "care"):
            warnings.warn(f"modules=1 with kind {self.kind!r}: the softmax over one module is constant, "
                          "so the routing/attention layers never receive a gradient", stacklevel=3)
