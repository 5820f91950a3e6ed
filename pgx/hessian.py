"""Matrix-free Hessian measurements and the generalization bound of Theorem 1 (sections 4.4, 5).

Section 4.4 measures the sharpness of a trained policy by the trace of the Hessian of its
policy-gradient loss; Theorem 1 turns the trace of the *truncated* Hessian H⁺ (negative
eigen-directions set to zero) and the distance travelled from the initialisation into a bound on
the generalization error. A policy network has far too many parameters to form H, so everything
here touches H only through a ``matvec``: a callable ``v: (dim,) -> H v: (dim,)`` for a symmetric
H.

- ``hessian_vector_product`` / ``module_hessian_vector_product`` build that matvec for any scalar
  torch loss with ``torch.func`` (forward-over-reverse: ``jvp`` of ``grad``), so one H v costs
  about two backward passes and never stores H.
- ``hutchinson_trace`` and ``hutchpp_trace`` estimate tr(H); ``truncated_trace`` estimates
  tr(H⁺) by stochastic Lanczos quadrature; ``top_eigenvalue`` runs Lanczos for λ_max.
- ``generalization_bound`` evaluates the bound from the measured quantities.

Randomness: every estimator takes a ``seed`` and draws its probes from its own CPU
``torch.Generator``, then moves them to the matvec's device and dtype, so a seed gives the same
probes on every device. Probes are Rademacher (±1), as in PyHessian and the group's code.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.func import functional_call, grad, jvp

from pgx.runtime import is_int

__all__ = [
    "Matvec",
    "TraceEstimate",
    "HessianVectorProduct",
    "flatten",
    "unflatten",
    "hessian_vector_product",
    "module_hessian_vector_product",
    "hutchinson_trace",
    "hutchpp_trace",
    "top_eigenvalue",
    "truncated_trace",
    "generalization_bound",
]

Matvec = Callable[[torch.Tensor], torch.Tensor]
"""``v: (dim,) -> H v: (dim,)`` for a symmetric matrix H that is never formed."""


@dataclass(frozen=True)
class TraceEstimate:
    """A stochastic trace estimate.

    :param estimate: the trace estimate; the mean of ``samples``.
    :param std_error: standard error of ``estimate`` (sample std of ``samples`` / √len), ``nan``
        when a single sample leaves no spread to measure. It covers probe noise only, not the
        Lanczos quadrature error of ``truncated_trace``.
    :param num_matvecs: matrix-vector products actually used.
    :param samples: one unbiased single-probe estimate of the trace per probe.
    """

    estimate: float
    std_error: float
    num_matvecs: int
    samples: tuple[float, ...]


# --- building the matvec --------------------------------------------------------------------------


def flatten(tensors: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """Concatenate tensors in mapping order into one vector: ``(sum of numels,)``."""
    return torch.cat([t.reshape(-1) for t in tensors.values()])


def unflatten(vector: torch.Tensor, like: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Inverse of ``flatten``: cut ``vector: (dim,)`` into tensors shaped as those of ``like``."""
    sizes = [t.numel() for t in like.values()]
    if vector.shape != (sum(sizes),):
        raise ValueError(f"vector must have shape ({sum(sizes)},) to unflatten, got {tuple(vector.shape)}")
    pieces = torch.split(vector, sizes)
    return {name: piece.reshape(t.shape) for (name, t), piece in zip(like.items(), pieces)}


class HessianVectorProduct:
    """The matvec ``v ↦ H v`` with ``H = ∇² loss_fn(params)`` over the flattened ``params``.

    The vector layout is ``flatten(params)``: the parameters concatenated in dict order.
    ``dim``, ``device`` and ``dtype`` are those of that vector; the estimators of this module
    draw their probes to match them.

    H v is the directional derivative of the gradient, ``jvp(grad(loss_fn), params, v)``
    (forward-over-reverse). It needs no ``create_graph`` and keeps no graph between calls; on a
    CPU it ran 1.1-2x slower than PyHessian's double backward (``benchmarks/bench_hessian.py``),
    the same order of cost. ``loss_fn`` must be composable with ``torch.func``:
    no ``.item()`` or in-place writes to ``params``, and every op needs a forward-mode derivative.

    :param loss_fn: ``params -> scalar loss``; deterministic, so that H is well defined (put
        modules with dropout or batch norm in ``eval()`` mode first).
    :param params: the point θ at which H is taken, ``{name: tensor}``, all of one floating dtype
        and one device. They are detached: the matvec never back-propagates into them.
    """

    def __init__(
        self, loss_fn: Callable[[dict[str, torch.Tensor]], torch.Tensor], params: Mapping[str, torch.Tensor]
    ):
        if not params:
            raise ValueError("params is empty: there is no parameter to take the Hessian over")
        first = next(iter(params.values()))
        for name, p in params.items():
            if not torch.is_floating_point(p):
                raise ValueError(f"params[{name!r}] must be a floating tensor, got dtype {p.dtype}")
            if p.dtype != first.dtype or p.device != first.device:
                raise ValueError(
                    f"params must share one dtype and device, got {p.dtype} on {p.device} for {name!r} "
                    f"and {first.dtype} on {first.device} for the first"
                )
        self.loss_fn = loss_fn
        self.params = {name: p.detach() for name, p in params.items()}
        self.dim = sum(p.numel() for p in self.params.values())
        self.device = first.device
        self.dtype = first.dtype
        with torch.no_grad():
            loss = loss_fn(self.params)
        if not isinstance(loss, torch.Tensor) or loss.dim() != 0:
            shape = tuple(loss.shape) if isinstance(loss, torch.Tensor) else type(loss).__name__
            raise ValueError(f"loss_fn must return a 0-dim tensor (a scalar loss), got {shape}")
        if not torch.isfinite(loss):
            raise ValueError(f"loss_fn returned a non-finite loss at params: {loss.item()}")
        self._grad = grad(loss_fn)

    def __call__(self, v: torch.Tensor) -> torch.Tensor:
        """``H v: (dim,)`` for ``v: (dim,)`` of the params' dtype and device."""
        if v.shape != (self.dim,):
            raise ValueError(f"v must have shape ({self.dim},), got {tuple(v.shape)}")
        if v.dtype != self.dtype or v.device != self.device:
            raise ValueError(f"v must be {self.dtype} on {self.device}, got {v.dtype} on {v.device}")
        # torch.func.grad differentiates regardless of no_grad; the outer no_grad only stops
        # tensors captured by loss_fn from recording an autograd graph on every call.
        with torch.no_grad():
            _, hv = jvp(self._grad, (self.params,), (unflatten(v, self.params),))
        return flatten(hv)


def hessian_vector_product(
    loss_fn: Callable[[dict[str, torch.Tensor]], torch.Tensor], params: Mapping[str, torch.Tensor]
) -> HessianVectorProduct:
    """The matvec of ``H = ∇² loss_fn(params)``; see ``HessianVectorProduct``.

    :param loss_fn: ``params -> scalar loss``.
    :param params: ``{name: tensor}``; the vector layout is ``flatten(params)``.
    """
    return HessianVectorProduct(loss_fn, params)


def module_hessian_vector_product(
    module: nn.Module,
    loss_fn: Callable[[torch.Tensor], torch.Tensor],
    *inputs: torch.Tensor,
    parameter_names: Sequence[str] | None = None,
) -> HessianVectorProduct:
    """The matvec of the Hessian of ``loss_fn(module(*inputs))`` w.r.t. the module's parameters.

    The module is called through ``functional_call``, so it is neither modified nor switched
    between train and eval mode (choose the mode before calling). For the policy-gradient loss of
    section 4.4 pass the actor, the observations as ``inputs`` and a ``loss_fn`` from logits to
    ``-(log π(a|s) · Â).mean()`` that closes over the actions and advantages.

    :param module: e.g. ``pgx.nets.policies.Actor``.
    :param loss_fn: ``module output -> scalar loss``.
    :param inputs: positional inputs of ``module.forward``, e.g. ``obs: (N, obs_dim)``.
    :param parameter_names: the parameters H is taken over, in this order (default: all of
        ``named_parameters()`` in order). Naming one layer's weight gives the diagonal block H_l
        that the layer-wise sums of Theorem 1 use; the other parameters stay fixed.
    """
    named = dict(module.named_parameters())
    names = list(named) if parameter_names is None else list(parameter_names)
    unknown = [name for name in names if name not in named]
    if unknown:
        raise ValueError(f"parameter_names {unknown} are not parameters of the module; it has {list(named)}")
    if len(set(names)) != len(names):
        raise ValueError(f"parameter_names must not repeat a name, got {names}")
    chosen = set(names)
    fixed = {name: p.detach() for name, p in named.items() if name not in chosen}

    def loss_of_params(params: dict[str, torch.Tensor]) -> torch.Tensor:
        return loss_fn(functional_call(module, {**fixed, **params}, inputs))

    return HessianVectorProduct(loss_of_params, {name: named[name] for name in names})


# --- trace estimators -----------------------------------------------------------------------------


def hutchinson_trace(
    matvec: Matvec,
    dim: int,
    num_matvecs: int,
    seed: int,
    *,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
) -> TraceEstimate:
    """Hutchinson's estimator: tr(H) ≈ (1/m) Σ_i z_iᵀ H z_i with Rademacher z_i.

    Unbiased, with variance 2(‖H‖_F² − Σ_i H_ii²)/m, so its error decays only as 1/√m.

    :param matvec: ``v: (dim,) -> H v: (dim,)``.
    :param dim: size of H.
    :param num_matvecs: m >= 1, the number of probes (one matvec each).
    :param seed: seed of the probes; ``truncated_trace`` with the same seed uses the same probes.
    :param device: device of the probes; default the matvec's ``device`` attribute if it has one
        (``HessianVectorProduct`` does), else torch's default device.
    :param dtype: dtype of the probes; default the matvec's ``dtype`` attribute, else torch's
        default dtype.
    """
    _check_int("dim", dim, 1)
    _check_int("num_matvecs", num_matvecs, 1)
    generator = _generator(seed)
    device, dtype = _resolve(matvec, device, dtype)
    samples = []
    for _ in range(num_matvecs):
        z = _rademacher(generator, (dim,), device, dtype)
        samples.append(torch.dot(z, _apply(matvec, z, dim)).item())
    return _summarise(samples, num_matvecs)


def hutchpp_trace(
    matvec: Matvec,
    dim: int,
    num_matvecs: int,
    seed: int,
    *,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
) -> TraceEstimate:
    """Hutch++ (Meyer, Musco, Musco, Woodruff 2021), the "simple" variant of the authors' code.

    With budget m: draw Rademacher S: (dim, ⌈m/3⌉) and G: (dim, ⌊m/3⌋), take Q = qr(H S), and
    return

        tr(Qᵀ H Q) + (1/⌊m/3⌋) Σ_j r_jᵀ H r_j,    r_j = (I − Q Qᵀ) g_j.

    The top eigen-directions are captured exactly by Q and only the deflated remainder is sampled,
    so on a decaying spectrum the error falls roughly as 1/m instead of Hutchinson's 1/√m. On a
    flat spectrum (e.g. a policy at initialisation) Q captures little and the variance is several
    times Hutchinson's at the same m: only ⌊m/3⌋ probes sample the remainder, and projected probes
    r_j lose the Rademacher probes' immunity to the diagonal of H. This
    ⌈m/3⌉ / ⌊m/3⌋ split follows ``simple_hutchplusplus.m`` (the group's nnhessian uses another);
    it costs 2⌈m/3⌉ + ⌊m/3⌋ matvecs, one more than m when m ≡ 1 (mod 3); ``num_matvecs`` of the
    result reports the actual count.

    ``samples[j] = tr(QᵀHQ) + r_jᵀ H r_j``, each an unbiased estimate of tr(H) given Q, so
    ``std_error`` measures the remainder's probe noise.

    :param matvec: ``v: (dim,) -> H v: (dim,)``.
    :param dim: size of H.
    :param num_matvecs: budget m >= 3.
    :param seed: seed of S and G.
    :param device: as in ``hutchinson_trace``.
    :param dtype: as in ``hutchinson_trace``.
    """
    _check_int("dim", dim, 1)
    if not is_int(num_matvecs) or num_matvecs < 3:
        raise ValueError(f"num_matvecs must be an integer >= 3 for Hutch++, got {num_matvecs!r}")
    generator = _generator(seed)
    device, dtype = _resolve(matvec, device, dtype)
    num_sketch, num_probes = -(-num_matvecs // 3), num_matvecs // 3
    sketch = _rademacher(generator, (num_sketch, dim), device, dtype)  # rows are the columns of S
    probes = _rademacher(generator, (num_probes, dim), device, dtype)
    h_sketch = torch.stack([_apply(matvec, s, dim) for s in sketch], dim=1)  # H S: (dim, ⌈m/3⌉)
    # Householder QR gives orthonormal columns even when H S is rank-deficient (or dim < ⌈m/3⌉).
    basis = torch.linalg.qr(h_sketch).Q  # (dim, min(dim, ⌈m/3⌉))
    top = sum(torch.dot(q, _apply(matvec, q, dim)).item() for q in basis.mT)
    residuals = probes - (probes @ basis) @ basis.mT  # rows r_j = (I − Q Qᵀ) g_j
    samples = [top + torch.dot(r, _apply(matvec, r, dim)).item() for r in residuals]
    return _summarise(samples, num_sketch + basis.shape[1] + num_probes)


def truncated_trace(
    matvec: Matvec,
    dim: int,
    num_matvecs: int,
    seed: int,
    lanczos_steps: int = 30,
    *,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
) -> TraceEstimate:
    """tr(H⁺) = Σ_i max(λ_i, 0), the trace Theorem 1 needs, by stochastic Lanczos quadrature.

    For each Rademacher probe z, k Lanczos steps from z/√dim give a tridiagonal T_k with
    eigenpairs (θ_i, s_i); Gauss quadrature then gives (Ubaru, Chen, Saad 2017)

        zᵀ max(H, 0) z ≈ dim · Σ_i (s_i)_1² · max(θ_i, 0),

    and the estimate is the mean over probes. The quadrature is exact once k reaches dim (or
    Lanczos finds an invariant subspace), so for dim <= ``lanczos_steps`` only probe noise remains:
    the samples then equal those of ``hutchinson_trace`` on H⁺ with the same seed. Otherwise the
    kink of max(λ, 0) at 0 adds a quadrature error that more steps reduce.

    Lanczos keeps its basis for full re-orthogonalisation: memory ``(k, dim)``.

    :param matvec: ``v: (dim,) -> H v: (dim,)``.
    :param dim: size of H.
    :param num_matvecs: budget; the number of probes is ``num_matvecs // min(lanczos_steps, dim)``.
    :param seed: seed of the probes.
    :param lanczos_steps: Lanczos steps (matvecs) per probe, k = min(lanczos_steps, dim).
    :param device: as in ``hutchinson_trace``.
    :param dtype: as in ``hutchinson_trace``.
    """
    _check_int("dim", dim, 1)
    _check_int("lanczos_steps", lanczos_steps, 1)
    steps = min(lanczos_steps, dim)
    if not is_int(num_matvecs) or num_matvecs < steps:
        raise ValueError(
            f"num_matvecs must be an integer >= min(lanczos_steps, dim) = {steps} for one probe, "
            f"got {num_matvecs!r}"
        )
    generator = _generator(seed)
    device, dtype = _resolve(matvec, device, dtype)
    samples, used = [], 0
    for _ in range(num_matvecs // steps):
        z = _rademacher(generator, (dim,), device, dtype)
        *_, (alphas, betas, _) = _lanczos(matvec, z, steps, dim)
        nodes, vectors = np.linalg.eigh(_tridiagonal(alphas, betas))
        weights = vectors[0] ** 2  # Gauss weights; they sum to 1
        samples.append(float(dim * np.sum(weights * np.maximum(nodes, 0.0))))
        used += len(alphas)
    return _summarise(samples, used)


def top_eigenvalue(
    matvec: Matvec,
    dim: int,
    iters: int,
    seed: int,
    tol: float = 1e-6,
    *,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
) -> float:
    """The largest *algebraic* eigenvalue λ_max of H, by Lanczos.

    Not the largest in magnitude (what PyHessian's power iteration returns): at a saddle the most
    negative eigenvalue can be larger in magnitude, but sharpness is about λ_max. Lanczos from a
    Gaussian start converges much faster than power iteration and returns the top Ritz value θ
    once its residual ‖H y − θ y‖ (= β_k · |last entry of its T_k eigenvector|) is at most
    ``tol · |θ|``, or after ``min(iters, dim)`` steps.

    :param matvec: ``v: (dim,) -> H v: (dim,)``.
    :param dim: size of H.
    :param iters: at most this many Lanczos steps (one matvec each), >= 1.
    :param seed: seed of the start vector.
    :param tol: relative residual at which to stop, > 0.
    :param device: as in ``hutchinson_trace``.
    :param dtype: as in ``hutchinson_trace``.
    """
    _check_int("dim", dim, 1)
    _check_int("iters", iters, 1)
    if not tol > 0:
        raise ValueError(f"tol must be > 0, got {tol!r}")
    generator = _generator(seed)
    device, dtype = _resolve(matvec, device, dtype)
    # Gaussian, not Rademacher: a ±1 start can be exactly orthogonal to the top eigenvector.
    start = torch.randn(dim, generator=generator, dtype=torch.float64).to(device=device, dtype=dtype)
    for alphas, betas, residual in _lanczos(matvec, start, min(iters, dim), dim):
        nodes, vectors = np.linalg.eigh(_tridiagonal(alphas, betas))
        theta = float(nodes[-1])
        if residual * abs(vectors[-1, -1]) <= tol * abs(theta):
            break
    return theta


# --- the bound of Theorem 1 -----------------------------------------------------------------------


def generalization_bound(trace: float, distance_sq: float, loss_range: float, num_samples: int) -> float:
    """The Hessian-based generalization bound of Theorem 1, as the group's code evaluates it:

        bound = C · sqrt( (Σ_l tr H_l⁺) · (Σ_l ‖W_l − W_l⁰‖_F²) / n ).

    Equation (6) lost its symbols in our copy of the paper; this is the form computed by
    ``Noise-stability-optimization/.../compute_noise_stability.py`` (printed there as the
    "Generalization error" next to test − train loss), and it has the structure of the proof in
    Appendix B: a Gaussian posterior N(W, σ²I) around the learned weights and a prior around the
    initialisation W⁰ cost KL = ‖W − W⁰‖²/(2σ²) in the PAC-Bayes bound (9), the noise raises the
    loss by at most σ² tr(H⁺)/2 (eqs. 10, 12; truncating H makes this an upper bound), and the σ
    balancing the two leaves a gap of order sqrt(C · tr(H⁺) · ‖W − W⁰‖² / n). Not included: the
    (1 + ε) factors and the error term ξ = O(n^(-3/4)), which vanish as n grows, and the
    log(1/δ) confidence term. Note the prefactor: that balancing gives √C, while the group's code
    multiplies by C (``max_loss``); we follow the code so the values compare with Figure 3.

    :param trace: Σ_l tr H_l⁺ >= 0, the truncated traces of the layer-wise Hessian blocks of the
        loss, e.g. from ``truncated_trace`` on ``module_hessian_vector_product(...,
        parameter_names=[layer])``; the group's code takes each layer's maximum over mini-batches.
    :param distance_sq: Σ_l ‖W_l − W_l⁰‖_F² >= 0, e.g.
        ``(flatten(params) - flatten(initial_params)).square().sum()``.
    :param loss_range: C > 0, the loss lies in [0, C].
    :param num_samples: n >= 1, the number of training samples the loss averages over.
    """
    for name, value in (("trace", trace), ("distance_sq", distance_sq)):
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"{name} must be finite and >= 0, got {value!r}")
    if not math.isfinite(loss_range) or loss_range <= 0:
        raise ValueError(f"loss_range must be finite and > 0, got {loss_range!r}")
    _check_int("num_samples", num_samples, 1)
    return float(loss_range * math.sqrt(trace * distance_sq / num_samples))


# --- helpers --------------------------------------------------------------------------------------


def _lanczos(
    matvec: Matvec, start: torch.Tensor, steps: int, dim: int
) -> Iterator[tuple[tuple[float, ...], tuple[float, ...], float]]:
    """Lanczos with full re-orthogonalisation from ``start: (dim,)``.

    After step k yields ``(alphas (k,), betas (k-1,), β_k)``: the diagonal and off-diagonal of
    T_k and the norm of the next residual, which bounds the Ritz residuals. Stops after ``steps``
    steps or on breakdown (β_k tiny: the Krylov space is invariant and T_k is exact).
    """
    basis = torch.empty(steps, dim, device=start.device, dtype=start.dtype)
    basis[0] = start / start.norm()
    alphas: list[float] = []
    betas: list[float] = []
    breakdown = math.sqrt(torch.finfo(start.dtype).eps)
    for k in range(steps):
        q = basis[k]
        w = _apply(matvec, q, dim)
        alphas.append(torch.dot(q, w).item())
        # Classical Gram-Schmidt against the whole basis, twice ("twice is enough"), in place of
        # the three-term recurrence alone, which loses orthogonality in floating point.
        for _ in range(2):
            w = w - basis[: k + 1].mT @ (basis[: k + 1] @ w)
        beta = w.norm().item()
        yield tuple(alphas), tuple(betas), beta
        scale = max(max(abs(a) for a in alphas), max(betas, default=0.0))
        if k + 1 == steps or beta <= breakdown * scale:
            return
        betas.append(beta)
        basis[k + 1] = w / beta


def _tridiagonal(alphas: Sequence[float], betas: Sequence[float]) -> np.ndarray:
    """Dense T_k from its diagonal ``(k,)`` and off-diagonal ``(k-1,)``."""
    return np.diag(alphas) + np.diag(betas, 1) + np.diag(betas, -1)


def _apply(matvec: Matvec, v: torch.Tensor, dim: int) -> torch.Tensor:
    """``matvec(v)`` checked to be a finite ``(dim,)`` tensor, so bad values fail here by name."""
    hv = matvec(v.contiguous())
    if not isinstance(hv, torch.Tensor) or hv.shape != (dim,):
        shape = tuple(hv.shape) if isinstance(hv, torch.Tensor) else type(hv).__name__
        raise ValueError(f"matvec must return a tensor of shape ({dim},), got {shape}")
    if not torch.isfinite(hv).all():
        raise ValueError("matvec returned non-finite values (nan or inf); the loss or its Hessian overflowed")
    return hv


def _summarise(samples: list[float], num_matvecs: int) -> TraceEstimate:
    """Mean and standard error of per-probe estimates."""
    count = len(samples)
    mean = math.fsum(samples) / count
    if count < 2:
        std_error = math.nan
    else:
        std_error = math.sqrt(math.fsum((s - mean) ** 2 for s in samples) / (count - 1) / count)
    return TraceEstimate(estimate=mean, std_error=std_error, num_matvecs=num_matvecs, samples=tuple(samples))


def _rademacher(
    generator: torch.Generator, shape: tuple[int, ...], device: torch.device | str, dtype: torch.dtype
) -> torch.Tensor:
    """±1 entries drawn on the CPU generator (same draws on every device), then moved."""
    bits = torch.randint(0, 2, shape, generator=generator, dtype=torch.int8)
    return (2 * bits - 1).to(device=device, dtype=dtype)


def _generator(seed: int) -> torch.Generator:
    _check_int("seed", seed, 0)
    return torch.Generator().manual_seed(int(seed))


def _resolve(
    matvec: Matvec, device: torch.device | str | None, dtype: torch.dtype | None
) -> tuple[torch.device, torch.dtype]:
    """Explicit arguments, else the matvec's own ``device``/``dtype``, else torch's defaults."""
    device = device if device is not None else getattr(matvec, "device", torch.get_default_device())
    dtype = dtype if dtype is not None else getattr(matvec, "dtype", torch.get_default_dtype())
    if not dtype.is_floating_point:
        raise ValueError(f"dtype must be a floating dtype, got {dtype}")
    return torch.device(device), dtype


def _check_int(name: str, value: object, minimum: int) -> None:
    if not is_int(value) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
