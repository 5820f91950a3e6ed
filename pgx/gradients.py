"""Per-sample policy gradients at θ* and their Johnson–Lindenstrauss projection (section 3.1).

The surrogate of Algorithm 1 needs, for every stored state-action pair, the gradient feature
``g_n = ∇_θ log π_θ(a_n|s_n)`` at the meta-policy θ*, projected to d dimensions:
``g̃_n = Pᵀ g_n`` with ``P ∈ R^{p×d}`` and i.i.d. entries ``N(0, 1/d)``, so that
``E[g̃ · h̃] = g · h``. With p in the millions neither the ``(N, p)`` gradient matrix nor P fits
comfortably in memory, so:

- ``GaussianProjector`` never stores P. It regenerates any block of rows on demand from a
  ``torch.Generator`` seeded by (seed, parameter tensor, row block), so blocks are independent of
  the order in which they are used.
- ``projected_grads`` (the fast path) never forms per-sample gradients of a whole layer: for an
  ``nn.Linear`` the per-sample weight gradient is the outer product ``δ_n a_nᵀ`` of the layer's
  back-propagated error and its input, both available from one batched backward pass, and it is
  projected one block of P at a time. Per-sample gradients of other parameters come from
  ``torch.func`` one chunk of samples at a time and are projected before more are computed.
- ``per_sample_grads`` (``torch.func``) and ``per_sample_grads_loop`` (one backward per sample)
  are the reference and the test oracle.

Parameters are always all of ``actor.named_parameters()``, in that order: θ* is the actor.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.func import functional_call, grad, vmap

from pgx.runtime import is_int

__all__ = [
    "GaussianProjector",
    "LogProb",
    "log_prob_at",
    "per_sample_grads",
    "per_sample_grads_loop",
    "projected_grads",
    "theta_fingerprint",
    "GradientFeatures",
    "check_samples",
]

# --- the projection matrix P ------------------------------------------------------------------


class GaussianProjector:
    """The JL matrix ``P ∈ R^{p×d}`` with i.i.d. ``N(0, 1/d)`` entries, generated block by block.

    Rows of P follow the flattened parameters in ``named_parameters`` order. The rows belonging to
    parameter tensor ``t`` are cut into generation blocks of ``block_rows`` rows; block ``b`` of
    tensor ``t`` is drawn by its own CPU ``torch.Generator`` seeded from ``(seed, t, b)``. Hence any
    block can be regenerated alone, results never depend on the order of use, and P is the same on
    every device (blocks are drawn on the CPU in float32 and then moved/cast, so a float64
    computation sees exactly the same matrix). ``block_rows`` is part of P's definition and of
    ``fingerprint()``.

    :param param_shapes: shape of each parameter tensor, in ``named_parameters`` order.
    :param dim: projected dimension d >= 1.
    :param seed: non-negative seed of P.
    :param block_rows: rows per generation block; bounds the memory of one block to
        ``block_rows · d`` floats.
    """

    def __init__(
        self, param_shapes: Sequence[tuple[int, ...]], dim: int, seed: int, block_rows: int = 8192
    ):
        if not is_int(dim) or dim < 1:
            raise ValueError(f"dim must be an integer >= 1, got {dim!r}")
        if not is_int(seed) or seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
        if not is_int(block_rows) or block_rows < 1:
            raise ValueError(f"block_rows must be an integer >= 1, got {block_rows!r}")
        shapes = tuple(tuple(shape) for shape in param_shapes)
        if not shapes:
            raise ValueError("param_shapes is empty: there are no parameters to project")
        for t, shape in enumerate(shapes):
            if not all(is_int(s) and s >= 0 for s in shape):
                raise ValueError(f"param_shapes[{t}] must be a tuple of non-negative ints, got {shape!r}")
        self.param_shapes: tuple[tuple[int, ...], ...] = tuple(tuple(int(s) for s in sh) for sh in shapes)
        self.dim = int(dim)
        self.seed = int(seed)
        self.block_rows = int(block_rows)
        self.sizes: tuple[int, ...] = tuple(math.prod(shape) for shape in self.param_shapes)
        self.offsets: tuple[int, ...] = tuple(sum(self.sizes[:t]) for t in range(len(self.sizes)))
        self.num_params = sum(self.sizes)
        if self.num_params == 0:
            raise ValueError(f"param_shapes {self.param_shapes} hold no entries")

    @classmethod
    def for_module(cls, module: nn.Module, dim: int, seed: int, block_rows: int = 8192) -> GaussianProjector:
        """The projector for all of ``module``'s parameters (θ* when ``module`` is the actor)."""
        return cls([tuple(p.shape) for p in module.parameters()], dim, seed, block_rows)

    def __repr__(self) -> str:
        return (
            f"GaussianProjector(p={self.num_params}, dim={self.dim}, seed={self.seed}, "
            f"block_rows={self.block_rows}, tensors={len(self.sizes)})"
        )

    @property
    def largest_block_shape(self) -> tuple[int, int]:
        """``(rows, d)`` of the largest block ``block_ranges()`` yields: all of P that the projection
        paths (``project``, ``lift``, ``projected_grads``) hold at once."""
        return min(self.block_rows, max(self.sizes)), self.dim

    def fingerprint(self) -> str:
        """sha256 of everything that defines P; saved features compare it before reuse."""
        spec = {
            "kind": "gaussian-N(0,1/d)-v1",
            "dim": self.dim,
            "seed": self.seed,
            "block_rows": self.block_rows,
            "param_shapes": [list(shape) for shape in self.param_shapes],
        }
        return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()

    def block_ranges(self) -> Iterator[tuple[int, int, int]]:
        """Every generation block as ``(t, start, stop)``: rows ``start:stop`` of tensor ``t``."""
        for t, size in enumerate(self.sizes):
            for start in range(0, size, self.block_rows):
                yield t, start, min(start + self.block_rows, size)

    def _generated_block(self, t: int, b: int) -> torch.Tensor:
        """Generation block ``b`` of tensor ``t``: ``(rows, d)`` float32 on the CPU."""
        digest = hashlib.sha256(f"pgx-jl:{self.seed}:{t}:{b}".encode()).digest()
        generator = torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") >> 1)
        rows = min(self.block_rows, self.sizes[t] - b * self.block_rows)
        # dtype and device are explicit so that global torch defaults cannot change P.
        gaussian = torch.randn(rows, self.dim, generator=generator, dtype=torch.float32, device="cpu")
        return gaussian.div_(math.sqrt(self.dim))  # in place: P is drawn p·d numbers at a time

    def block(self, t: int, start: int, stop: int) -> torch.Tensor:
        """Rows ``start:stop`` of P restricted to parameter tensor ``t``: ``(stop - start, d)``.

        Any range is allowed; it is assembled from the generation blocks it overlaps, so a range
        aligned with ``block_ranges()`` costs exactly one generation. Float32 on the CPU.
        """
        if not is_int(t) or not 0 <= t < len(self.sizes):
            raise ValueError(f"tensor index t must be in [0, {len(self.sizes)}), got {t!r}")
        size = self.sizes[t]
        if not (is_int(start) and is_int(stop) and 0 <= start <= stop <= size):
            raise ValueError(
                f"need 0 <= start <= stop <= {size} for tensor {t}, got start={start!r}, stop={stop!r}"
            )
        if start == stop:
            return torch.zeros(0, self.dim, dtype=torch.float32, device="cpu")
        first, last = start // self.block_rows, (stop - 1) // self.block_rows
        blocks = [self._generated_block(t, b) for b in range(first, last + 1)]
        rows = blocks[0] if len(blocks) == 1 else torch.cat(blocks)  # aligned ranges need no copy
        offset = first * self.block_rows
        return rows[start - offset : stop - offset]

    def project(self, flat_grads: torch.Tensor) -> torch.Tensor:
        """``flat_grads @ P``: ``(N, p) → (N, d)``, one block of P at a time (reference path)."""
        if flat_grads.ndim != 2 or flat_grads.shape[1] != self.num_params:
            raise ValueError(
                f"flat_grads must have shape (N, {self.num_params}), got {tuple(flat_grads.shape)}"
            )
        out = flat_grads.new_zeros(flat_grads.shape[0], self.dim)
        for t, start, stop in self.block_ranges():
            rows = slice(self.offsets[t] + start, self.offsets[t] + stop)
            out.addmm_(flat_grads[:, rows], self.block(t, start, stop).to(flat_grads))
        return out

    def lift(self, v: torch.Tensor) -> torch.Tensor:
        """``P v`` for each row of ``v``: ``(m, d) → (m, p)``; maps a surrogate solution to Δθ."""
        self._check_v(v)
        out = v.new_empty(v.shape[0], self.num_params)
        for t, start, stop in self.block_ranges():
            rows = slice(self.offsets[t] + start, self.offsets[t] + stop)
            out[:, rows] = v @ self.block(t, start, stop).to(v).T
        return out

    def lift_norms(self, v: torch.Tensor) -> torch.Tensor:
        """``‖P v_j‖`` for each row: ``(m, d) → (m,)``, without holding the ``(m, p)`` lift."""
        self._check_v(v)
        squared = v.new_zeros(v.shape[0])
        for t, start, stop in self.block_ranges():
            squared += (v @ self.block(t, start, stop).to(v).T).square().sum(1)
        return squared.sqrt()

    def materialize(self) -> torch.Tensor:
        """All of P, ``(p, d)`` float32 on the CPU: for tests and small p only."""
        return torch.cat([self.block(t, start, stop) for t, start, stop in self.block_ranges()])

    def _check_v(self, v: torch.Tensor) -> None:
        if v.ndim != 2 or v.shape[1] != self.dim:
            raise ValueError(f"v must have shape (m, {self.dim}), got {tuple(v.shape)}")


# --- per-sample gradients: reference and oracle -----------------------------------------------


class LogProb(nn.Module):
    """``actor.log_prob`` as a module's forward, so ``functional_call`` can swap θ."""

    def __init__(self, actor: nn.Module):
        super().__init__()
        self.actor = actor

    def forward(self, obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        return self.actor.log_prob(obs, actions)


def log_prob_at(
    actor: nn.Module, params: dict[str, torch.Tensor], obs: torch.Tensor, actions: torch.Tensor
) -> torch.Tensor:
    """``log π(a|s)`` of ``actor`` with its parameters replaced by ``params`` (``named_parameters``
    names): a pure function of ``params``, so ``torch.func`` transforms (jvp, grad) apply."""
    state = {**{f"actor.{k}": v for k, v in params.items()}, **_buffers(actor)}
    return functional_call(LogProb(actor), state, (obs, actions), strict=True)


def _check_batch(actor: nn.Module, obs: torch.Tensor, actions: torch.Tensor) -> int:
    if not hasattr(actor, "log_prob"):
        raise ValueError(f"actor must define log_prob(obs, actions), got {type(actor).__name__}")
    if obs.ndim < 1 or actions.ndim < 1 or obs.shape[0] != actions.shape[0]:
        raise ValueError(
            f"obs and actions must share their first (sample) dimension, got {tuple(obs.shape)} and "
            f"{tuple(actions.shape)}"
        )
    if obs.shape[0] == 0:
        raise ValueError("obs is empty: need at least one sample")
    if next(actor.parameters(), None) is None:
        raise ValueError(f"{type(actor).__name__} has no parameters")
    return obs.shape[0]


def _check_finite(grads: torch.Tensor) -> None:
    """Raise if any sample's gradient (a row of ``grads``) holds NaN or ±inf."""
    bad = ~torch.isfinite(grads.reshape(grads.shape[0], -1)).all(1)
    if bad.any():
        first = int(bad.nonzero()[0, 0])
        raise ValueError(
            f"gradients of log π are non-finite for {int(bad.sum())} of {grads.shape[0]} samples "
            f"(first: index {first}); check for actions with zero probability or NaN observations"
        )


def _named_params(actor: nn.Module) -> dict[str, torch.Tensor]:
    """θ as detached leaves requiring grad: works under ``no_grad`` and for frozen actors alike."""
    return {f"actor.{name}": p.detach().requires_grad_() for name, p in actor.named_parameters()}


def _buffers(actor: nn.Module) -> dict[str, torch.Tensor]:
    return {f"actor.{name}": b.detach() for name, b in actor.named_buffers()}


def _vmap_grads(
    actor: nn.Module, obs: torch.Tensor, actions: torch.Tensor, names: Sequence[str]
) -> dict[str, torch.Tensor]:
    """Per-sample ``∇ log π`` w.r.t. the parameters ``names`` only: ``name → (N, *shape)``."""
    module = LogProb(actor)
    params = {f"actor.{name}": p.detach() for name, p in actor.named_parameters()}
    wanted = {name: params.pop(f"actor.{name}") for name in names}
    buffers = _buffers(actor)

    def log_prob(chosen: dict[str, torch.Tensor], o: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        state = {**params, **{f"actor.{k}": v for k, v in chosen.items()}, **buffers}
        return functional_call(module, state, (o.unsqueeze(0), a.unsqueeze(0))).squeeze(0)

    with torch.enable_grad():
        return vmap(grad(log_prob), in_dims=(None, 0, 0))(wanted, obs, actions)


def per_sample_grads(actor: nn.Module, obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
    """``∇_θ log π(a_n|s_n)`` for every sample, flattened: ``(N, p)`` (reference path).

    ``torch.func``'s ``vmap(grad(...))`` of the scalar log-probability of one sample, TRAK-style.

    :param obs: ``(N, obs_dim)``; :param actions: ``(N,)`` or ``(N, action_dim)``.
    """
    n = _check_batch(actor, obs, actions)
    names = [name for name, _ in actor.named_parameters()]
    grads = _vmap_grads(actor, obs, actions, names)
    flat = torch.cat([grads[name].reshape(n, -1) for name in names], dim=1)
    _check_finite(flat)
    return flat


def per_sample_grads_loop(actor: nn.Module, obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
    """Same as ``per_sample_grads`` with one backward pass per sample: the slow test oracle."""
    n = _check_batch(actor, obs, actions)
    module, params, buffers = LogProb(actor), _named_params(actor), _buffers(actor)
    leaves = list(params.values())
    rows = []
    with torch.enable_grad():
        for i in range(n):
            log_prob = functional_call(module, {**params, **buffers}, (obs[i : i + 1], actions[i : i + 1]))
            grads = torch.autograd.grad(log_prob.sum(), leaves, allow_unused=True)
            grads = [torch.zeros_like(p) if g is None else g for p, g in zip(leaves, grads)]
            rows.append(torch.cat([g.reshape(-1) for g in grads]))
    flat = torch.stack(rows)
    _check_finite(flat)
    return flat


# --- the fast path: projected per-sample gradients without forming them ------------------------


@dataclass(frozen=True)
class _LinearCall:
    """One call of an ``nn.Linear`` on a chunk of samples, flattened to ``(n, K, features)``."""

    weight: int
    """Index of the layer's weight in ``named_parameters``."""
    bias: int | None
    """Index of its bias, or None without one."""
    inputs: torch.Tensor
    """``a``: ``(n, K, in_features)``."""
    errors: torch.Tensor
    """``δ = ∂ Σ_n log π / ∂ output``: ``(n, K, out_features)``."""


def _linear_calls(
    actor: nn.Module, obs: torch.Tensor, actions: torch.Tensor, index: dict[int, int]
) -> list[_LinearCall]:
    """Inputs and back-propagated errors of every ``nn.Linear`` call in one forward+backward.

    Samples are independent (no batch norm), so the gradient of the *sum* of log-probabilities
    w.r.t. sample n's activations is sample n's own error δ_n.
    """
    n = obs.shape[0]
    captured: list[tuple[nn.Linear, torch.Tensor, torch.Tensor]] = []

    def hook(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        captured.append((module, inputs[0], output))

    linears = [m for m in actor.modules() if isinstance(m, nn.Linear) and id(m.weight) in index]
    if not linears:
        return []
    owners = {id(m): (index[id(m.weight)], index.get(id(m.bias))) for m in linears}
    handles = [m.register_forward_hook(hook) for m in linears]
    try:
        with torch.enable_grad():
            # functional_call swaps θ inside the same module objects, so the hooks still fire.
            state = {**_named_params(actor), **_buffers(actor)}
            log_prob = functional_call(LogProb(actor), state, (obs, actions))
            if log_prob.shape != (n,):
                raise ValueError(f"log_prob must return shape ({n},), got {tuple(log_prob.shape)}")
            deltas = torch.autograd.grad(log_prob.sum(), [out for _, _, out in captured], allow_unused=True)
    finally:
        for handle in handles:
            handle.remove()
    calls = []
    for (module, a, out), delta in zip(captured, deltas):
        if a.ndim < 2 or a.shape[0] != n:
            raise ValueError(
                f"an nn.Linear received input of shape {tuple(a.shape)} without the leading sample "
                f"dimension {n}; use projector.project(per_sample_grads(...)) for this actor"
            )
        delta = torch.zeros_like(out) if delta is None else delta
        weight, bias = owners[id(module)]
        inputs, errors = a.detach().reshape(n, -1, a.shape[-1]), delta.reshape(n, -1, out.shape[-1])
        calls.append(_LinearCall(weight, bias, inputs, errors))
    return calls


def projected_grads(
    actor: nn.Module,
    obs: torch.Tensor,
    actions: torch.Tensor,
    projector: GaussianProjector,
    chunk_size: int = 1024,
    held_bytes: int = 1 << 30,
) -> torch.Tensor:
    """``Pᵀ ∇_θ log π(a_n|s_n)`` for every sample: ``(N, d)``, never holding ``(N, p)`` (fast path).

    For an ``nn.Linear`` ``z = W a + b`` the per-sample gradients are ``δ_n a_nᵀ`` (weight) and
    ``δ_n`` (bias). Batched forward+backward passes over chunks of ``chunk_size`` samples give
    ``a`` and ``δ``; then each generation block of P is drawn once and applied to every chunk, by
    forming the per-sample gradient of only the weight rows the block covers
    (``chunk_size × ~block_rows`` floats). Parameters not owned by an ``nn.Linear`` (a Gaussian
    policy's ``log_std``, all of PaCo's Φ) get their per-sample gradients from ``torch.func``, one
    chunk at a time.

    Chunks are gathered into passes: a pass closes once what its chunks hold (activations, errors,
    non-Linear per-sample gradients) reaches ``held_bytes``, and is projected before the next pass
    starts; each pass draws every block of P once (p·d Gaussian draws, ~10 ns each on a CPU core).
    Each sample's features are summed in the same order whatever the passes, so ``held_bytes``
    changes memory and time, never the result.

    Memory: the ``(N, d)`` result, one pass (at most ``held_bytes`` plus one chunk; a chunk holds
    ``chunk_size × (Σ layer widths + non-Linear parameter count)`` floats, so lower ``chunk_size``
    for a network such as PaCo) plus ``torch.func``'s temporaries for one chunk, one
    ``block_rows × d`` block of P. Equals
    ``projector.project(per_sample_grads(...))`` up to float rounding. Parameters of an
    ``nn.Linear`` must be used only through that layer's forward.

    :param obs: ``(N, obs_dim)``; :param actions: ``(N,)`` or ``(N, action_dim)``.
    :param projector: built for this actor's parameter shapes.
    :param chunk_size: samples per forward/backward pass and per projection product.
    :param held_bytes: bytes of per-chunk intermediates a pass may gather before it is projected.
    """
    n = _check_batch(actor, obs, actions)
    if not is_int(chunk_size) or chunk_size < 1:
        raise ValueError(f"chunk_size must be an integer >= 1, got {chunk_size!r}")
    if not is_int(held_bytes) or held_bytes < 0:
        raise ValueError(f"held_bytes must be a non-negative integer, got {held_bytes!r}")
    named = list(actor.named_parameters())
    shapes = tuple(tuple(p.shape) for _, p in named)
    if shapes != projector.param_shapes:
        raise ValueError(
            f"projector was built for parameter shapes {projector.param_shapes}, actor has {shapes}"
        )
    index = {id(p): t for t, (_, p) in enumerate(named)}
    linear_owned = {
        index[id(p)]
        for m in actor.modules()
        if isinstance(m, nn.Linear) and id(m.weight) in index
        for p in (m.weight, m.bias)
        if id(p) in index
    }
    other_names = [named[t][0] for t in range(len(named)) if t not in linear_owned]

    theta = named[0][1]
    out = torch.zeros(n, projector.dim, dtype=theta.dtype, device=theta.device)
    chunks = [slice(i, min(i + chunk_size, n)) for i in range(0, n, chunk_size)]
    held: list[_Chunk] = []
    for i, c in enumerate(chunks):
        # Activations and errors (chunk × layer widths, not chunk × p) and non-Linear gradients;
        # built inline so that no local name keeps a projected chunk alive into the next pass.
        held.append(_Chunk(
            c,
            _linear_calls(actor, obs[c], actions[c], index),
            _flat_grads(_vmap_grads(actor, obs[c], actions[c], other_names)) if other_names else {},
        ))
        if sum(chunk.nbytes for chunk in held) >= held_bytes or i == len(chunks) - 1:
            _project_pass(out, held, projector, [name for name, _ in named], linear_owned)
            held = []
    _check_finite(out)
    return out


@dataclass(frozen=True)
class _Chunk:
    """What one chunk of samples needs for its projection, held until its pass is projected."""

    rows: slice
    """The chunk's samples: rows of the result."""
    calls: list[_LinearCall]
    """Every ``nn.Linear`` call's inputs and errors."""
    others: dict[str, torch.Tensor]
    """Per-sample gradients of the parameters no ``nn.Linear`` owns, flattened: ``name → (n, size)``."""

    @property
    def nbytes(self) -> int:
        tensors = [x for call in self.calls for x in (call.inputs, call.errors)] + list(self.others.values())
        return sum(x.numel() * x.element_size() for x in tensors)


def _flat_grads(grads: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``name → (n, *shape)`` as ``name → (n, size)``, once per chunk: ``vmap`` often returns
    non-contiguous gradients, whose reshape copies the whole tensor, which a reshape per block of P
    would repeat (hundreds of times for PaCo's Φ)."""
    return {name: g.reshape(g.shape[0], -1) for name, g in grads.items()}


def _project_pass(
    out: torch.Tensor, held: list[_Chunk], projector: GaussianProjector, names: list[str], linear_owned: set[int]
) -> None:
    """Add every block of P's contribution to the rows of ``held``'s chunks, in block order.

    Block-major, so each block is drawn once per pass; a sample's row sees the same sequence of
    ``addmm_`` whichever pass its chunk falls in, which keeps the result independent of the passes.
    """
    for t, start, stop in projector.block_ranges():
        block = projector.block(t, start, stop).to(out)
        for chunk in held:
            c = chunk.rows
            if t not in linear_owned:
                out[c].addmm_(chunk.others[names[t]][:, start:stop], block)
                continue
            for call in chunk.calls:
                if call.weight == t:
                    out[c].addmm_(_weight_grad_entries(call, start, stop), block)
                if call.bias == t:
                    out[c].addmm_(call.errors.sum(1)[:, start:stop], block)


def _weight_grad_entries(call: _LinearCall, start: int, stop: int) -> torch.Tensor:
    """Entries ``start:stop`` of the flattened per-sample weight gradients ``Σ_K δ aᵀ``.

    Returns ``(n, stop - start)``; only the weight rows (output units) those entries touch are formed.
    """
    in_features = call.inputs.shape[-1]
    first, last = start // in_features, -(-stop // in_features)
    rows = torch.einsum("nko,nki->noi", call.errors[:, :, first:last], call.inputs).flatten(1)
    return rows[:, start - first * in_features : stop - first * in_features]


# --- what the features stage saves ------------------------------------------------------------


def theta_fingerprint(actor: nn.Module) -> str:
    """sha256 of θ*'s names, shapes, dtypes and bytes: identifies the meta-policy features belong to."""
    digest = hashlib.sha256()
    for name, p in actor.named_parameters():
        digest.update(f"{name}:{tuple(p.shape)}:{p.dtype};".encode())
        digest.update(p.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


@dataclass(frozen=True, eq=False)
class GradientFeatures:
    """Projected per-sample policy gradients at θ* with what is needed to trust them later.

    Features are only meaningful together with the P and θ* they were computed with; the metadata
    lets ``check_compatible`` refuse reuse under a different d, seed or θ* (as TRAK does). Arrays
    are stored as CPU numpy arrays (what a stage cache pickles and ``np.savez`` writes); tensors
    passed in are converted.
    """

    features: np.ndarray
    """``g̃``: ``(num_samples, d)`` float32, row n the projected ``∇ log π(a_n|s_n)`` at θ*."""
    advantages: np.ndarray
    """``Â``: ``(num_samples,)`` estimated advantages, finite."""
    task_ids: np.ndarray
    """``(num_samples,)`` integer task index of each sample."""
    dim: int
    """Projected dimension d."""
    seed: int
    """Seed of P."""
    theta_fingerprint: str
    """``theta_fingerprint(actor)`` of θ*."""
    projector_fingerprint: str | None = None
    """``projector.fingerprint()``, which also pins ``block_rows`` and the parameter shapes; None
    when not recorded."""

    def __post_init__(self) -> None:
        for name in ("features", "advantages", "task_ids"):
            value = getattr(self, name)
            array = value.detach().cpu().numpy() if torch.is_tensor(value) else np.asarray(value)
            object.__setattr__(self, name, array)
        if self.features.ndim != 2 or self.features.shape[1] != self.dim:
            raise ValueError(f"features must have shape (num_samples, {self.dim}), got {self.features.shape}")
        if self.features.dtype != np.float32:
            raise ValueError(f"features must be float32, got {self.features.dtype}")
        check_samples(*(torch.as_tensor(x) for x in (self.features, self.advantages, self.task_ids)))

    @classmethod
    def compute(
        cls,
        actor: nn.Module,
        obs: torch.Tensor,
        actions: torch.Tensor,
        advantages: torch.Tensor,
        task_ids: torch.Tensor,
        projector: GaussianProjector,
        chunk_size: int = 1024,
    ) -> GradientFeatures:
        """The features stage in one call: ``projected_grads`` at θ* = ``actor`` plus its metadata.

        :param advantages: ``(N,)`` Â of each sample; :param task_ids: ``(N,)`` its task.
        """
        return cls(
            features=projected_grads(actor, obs, actions, projector, chunk_size).float(),
            advantages=advantages,
            task_ids=task_ids,
            dim=projector.dim,
            seed=projector.seed,
            theta_fingerprint=theta_fingerprint(actor),
            projector_fingerprint=projector.fingerprint(),
        )

    def check_compatible(
        self, dim: int, seed: int, theta_fingerprint: str, projector_fingerprint: str | None = None
    ) -> None:
        """Raise ``ValueError`` unless these features were made with this d, seed and θ*, and, when
        both sides recorded one, with the P of ``projector_fingerprint``."""
        if dim != self.dim:
            raise ValueError(f"features were projected to d={self.dim}, not d={dim}")
        if seed != self.seed:
            raise ValueError(f"features were projected with seed={self.seed}, not seed={seed}")
        if theta_fingerprint != self.theta_fingerprint:
            raise ValueError(
                "features were computed at a different θ*: "
                f"{self.theta_fingerprint[:12]} != {theta_fingerprint[:12]}"
            )
        recorded = self.projector_fingerprint
        if projector_fingerprint is not None and recorded is not None and projector_fingerprint != recorded:
            raise ValueError(
                "features were projected with a different P (block_rows or parameter shapes differ): "
                f"{recorded[:12]} != {projector_fingerprint[:12]}"
            )

    def task_policy_gradients(self, n_tasks: int) -> np.ndarray:
        """Projected policy gradient of each task, ``mean_{n ∈ task i} Â_n g̃_n``: ``(n_tasks, d)``.

        Float64. The gradient-similarity baseline groups tasks by the cosine of these.
        """
        if not is_int(n_tasks) or n_tasks < 1:
            raise ValueError(f"n_tasks must be an integer >= 1, got {n_tasks!r}")
        if int(self.task_ids.max()) >= n_tasks:
            raise ValueError(f"task_ids must be < n_tasks={n_tasks}, got maximum {int(self.task_ids.max())}")
        counts = np.bincount(self.task_ids, minlength=n_tasks)
        if (counts == 0).any():
            raise ValueError(f"tasks {np.flatnonzero(counts == 0).tolist()} have no samples")
        sums = np.zeros((n_tasks, self.dim))
        np.add.at(sums, self.task_ids, self.advantages.astype(np.float64)[:, None] * self.features)
        return sums / counts[:, None]


def check_samples(features: torch.Tensor, advantages: torch.Tensor, task_ids: torch.Tensor) -> None:
    """Validate what the surrogate consumes; ``ValueError`` naming the bad value or count.

    :param features: ``(num_samples, d)`` floating point, finite, num_samples and d >= 1.
    :param advantages: ``(num_samples,)`` floating point, finite.
    :param task_ids: ``(num_samples,)`` integers >= 0, on the same device.
    """
    if features.ndim != 2 or 0 in features.shape or not features.is_floating_point():
        raise ValueError(
            f"features must be a floating-point (num_samples, d) tensor with both >= 1, got "
            f"{features.dtype} {tuple(features.shape)}"
        )
    n = features.shape[0]
    if advantages.shape != (n,) or not advantages.is_floating_point():
        raise ValueError(
            f"advantages must be a floating-point tensor of shape ({n},), got "
            f"{advantages.dtype} {tuple(advantages.shape)}"
        )
    if task_ids.shape != (n,) or task_ids.is_floating_point() or task_ids.dtype == torch.bool:
        raise ValueError(
            f"task_ids must be an integer tensor of shape ({n},), got "
            f"{task_ids.dtype} {tuple(task_ids.shape)}"
        )
    if not features.device == advantages.device == task_ids.device:
        raise ValueError(
            f"features, advantages and task_ids must share a device, got {features.device}, "
            f"{advantages.device} and {task_ids.device}"
        )
    if int(task_ids.min()) < 0:
        raise ValueError(f"task_ids must be >= 0, got minimum {int(task_ids.min())}")
    bad = int((~torch.isfinite(advantages)).sum())
    if bad:
        raise ValueError(f"advantages has {bad} non-finite entries of {n}")
    bad = int((~torch.isfinite(features).all(1)).sum())
    if bad:
        raise ValueError(f"features has {bad} non-finite rows of {n}")
