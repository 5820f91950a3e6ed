"""The offline exact truth: Algorithm 1 without its first-order approximation.

The surrogate fits, for each subset S, a logistic regression on the *linearised* log-ratio
``g̃_nᵀ v`` of θ*'s own samples (``pgx.surrogate``). Replacing that logit with the *exact* log-ratio
``log π_{θ*+Pv}(a_n|s_n) − log π_θ*(a_n|s_n)`` of the real network gives the same problem — same
samples, labels, weights, λ‖v‖², same subspace ``Δθ = P v``, same rescaling to a relative distance
— with nothing approximated. Its solution, scored with the exact PPO objective on held-out θ*
samples, is what the first-order route would give if its Taylor model were exact; it is
deterministic, so it carries no RL noise. The surrogate should match it closely; real PPO
fine-tuning (``pgx.stages.truth``) differs from it by what the offline problem leaves out (new
rollouts, many steps, the clipped objective) and by RL noise, which the replicated truth measures.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from pgx.gradients import GaussianProjector, check_samples, log_prob_at
from pgx.nets.policies import flat_params
from pgx.surrogate import SurrogateConfig, subset_masks

__all__ = ["ExactFit", "exact_fit_subsets"]


@dataclass(frozen=True)
class ExactFit:
    V: torch.Tensor
    """``(m, d)`` solutions of the exact problem (on the sphere ``‖P v‖ = relative_distance·‖θ*‖``
    when the config sets a distance)."""
    iterations: tuple[int, ...]
    """Iterations each subset took."""
    converged: tuple[bool, ...]


def _unflatten(actor: nn.Module, flat: torch.Tensor) -> dict[str, torch.Tensor]:
    params, offset = {}, 0
    for name, p in actor.named_parameters():
        params[name] = flat[offset: offset + p.numel()].view_as(p)
        offset += p.numel()
    return params


def _lifter(projector: GaussianProjector):
    """``v ↦ P v`` for one ``(d,)`` vector, differentiable in v. P's blocks are kept when P is small
    (under 16M entries, 128 MB in float64); otherwise each call regenerates them, so P is never held whole."""
    keep = projector.num_params * projector.dim <= 16_000_000
    blocks = [projector.block(t, a, b).double() for t, a, b in projector.block_ranges()] if keep else None

    def lift(v: torch.Tensor) -> torch.Tensor:
        parts = blocks if blocks is not None else (projector.block(t, a, b).double()
                                                   for t, a, b in projector.block_ranges())
        return torch.cat([block @ v for block in parts])

    return lift


def exact_fit_subsets(
    actor: nn.Module,
    obs: torch.Tensor,
    actions: torch.Tensor,
    features: torch.Tensor,
    advantages: torch.Tensor,
    task_ids: torch.Tensor,
    subsets: Sequence[Sequence[int]],
    projector: GaussianProjector,
    cfg: SurrogateConfig = SurrogateConfig(),
    start: torch.Tensor | None = None,
    max_iter: int = 100,
    tol: float = 1e-5,
) -> ExactFit:
    """Solve eq. (4) with the exact log-ratio for every subset: ``V (m, d)``.

    Per subset, L-BFGS with a strong-Wolfe line search (full batch, so deterministic). Without a
    relative distance, in the variable whitened by the surrogate's Böhning bound
    ``M_S = ¼ Σ w g̃g̃ᵀ/Σw + 2λI`` (the linear problem's curvature bound, and the exact problem's at
    v = 0, where ``∇_v log π_{θ*+Pv} = Pᵀ∇ log π = g̃``); with one, over directions u on the sphere
    ``v = radius·u/‖Pu‖``: the exact counterpart of :func:`pgx.surrogate.fit_trust_region`.

    :param actor: the network at θ* (its weights are θ*; they are not changed).
    :param obs, actions: ``(N, ...)`` θ*'s samples the surrogate was fitted on.
    :param features: ``(N, d)`` their projected gradients g̃ at θ* (for the preconditioner).
    :param start: ``(m, d)`` where to start each subset (e.g. the surrogate's own solution; the
        unscaled one); zeros when None.
    :param tol: L-BFGS's gradient tolerance; a subset counts as converged when its final gradient's
        largest entry is at most ``10·tol``.
    """
    check_samples(features, advantages, task_ids)
    if obs.shape[0] != features.shape[0] or actions.shape[0] != features.shape[0]:
        raise ValueError(f"obs, actions and features must have the same number of samples, got "
                         f"{obs.shape[0]}, {actions.shape[0]} and {features.shape[0]}")
    if projector.dim != features.shape[1]:
        raise ValueError(f"projector has d={projector.dim} but features have d={features.shape[1]}")
    if not isinstance(max_iter, int) or max_iter < 1:
        raise ValueError(f"max_iter must be an integer >= 1, got {max_iter!r}")
    if not (isinstance(tol, (int, float)) and tol > 0):
        raise ValueError(f"tol must be a number > 0, got {tol!r}")
    n_tasks = int(task_ids.max()) + 1
    for subset in subsets:
        if max(subset) >= n_tasks:
            raise ValueError(f"subset {tuple(subset)} names task {max(subset)}, which has no samples")
    masks = subset_masks(task_ids, subsets, n_tasks)
    d = features.shape[1]
    if start is not None and start.shape != (len(subsets), d):
        raise ValueError(f"start must have shape ({len(subsets)}, {d}), got {tuple(start.shape)}")
    theta_star = flat_params(actor).double()
    actor64 = _float64_copy(actor)
    with torch.no_grad():  # θ*'s log-probabilities from the same float64 network, so v = 0 gives ratio 1
        log_star = actor64.log_prob(obs.double(), actions.double() if actions.is_floating_point() else actions)
    lift = _lifter(projector)
    radius = None if cfg.relative_distance is None else cfg.relative_distance * float(theta_star.norm())

    solutions, iterations, converged = [], [], []
    for k, mask in enumerate(masks):
        x, o, a, base = features[mask].double(), obs[mask].double(), actions[mask], log_star[mask]
        a = a.double() if a.is_floating_point() else a
        y = torch.where(advantages[mask] > 0, 1.0, -1.0).double()
        w = advantages[mask].double().abs()
        if w.sum() == 0:
            raise ValueError(f"subset {k} has total weight 0: all its advantages are 0")
        w = w / w.sum()
        bound = 0.25 * (x * w[:, None]).T @ x + 2 * cfg.l2 * torch.eye(d, dtype=x.dtype)
        factor = torch.linalg.cholesky(bound)

        def loss(v: torch.Tensor) -> torch.Tensor:
            log_ratio = log_prob_at(actor64, _unflatten(actor64, theta_star + lift(v)), o, a) - base
            return (w * nn.functional.softplus(-y * log_ratio)).sum() + cfg.l2 * v.square().sum()

        v0 = torch.zeros(d, dtype=torch.float64) if start is None else start[k].detach().double()
        if radius is None:
            # L-BFGS in the whitened variable u = Lᵀv (M_S = L Lᵀ), where the problem is well conditioned.
            def to_v(u: torch.Tensor) -> torch.Tensor:
                return torch.linalg.solve_triangular(factor.T, u[:, None], upper=True).squeeze(1)

            def objective(u: torch.Tensor) -> torch.Tensor:
                return loss(to_v(u))

            u0 = factor.T @ v0
        else:
            # The trust region: v = radius · u / ‖P u‖ lies on the sphere ‖Δθ‖ = relative_distance · ‖θ*‖.
            # Started at ‖P u‖ = 1 and measured from v = 0 in units of the radius, the gradient in u is of
            # order 1 at any radius, so ``tol`` means the same for every distance.
            def to_v(u: torch.Tensor) -> torch.Tensor:
                return radius * u / lift(u).norm()

            def objective(u: torch.Tensor) -> torch.Tensor:
                return (loss(to_v(u)) - zero) / radius

            if start is None or float(v0.norm()) == 0:
                raise ValueError("with cfg.relative_distance set, start (a non-zero direction per subset) is required")
            u0 = v0 / lift(v0).norm()
            with torch.no_grad():
                zero = loss(torch.zeros(d, dtype=torch.float64))
        u = u0.clone().requires_grad_()
        optimizer = torch.optim.LBFGS([u], lr=1, max_iter=max_iter, max_eval=2 * max_iter, tolerance_grad=tol,
                                      tolerance_change=1e-14, history_size=20, line_search_fn="strong_wolfe")

        def closure() -> torch.Tensor:
            optimizer.zero_grad()
            value = objective(u)
            value.backward()
            return value

        optimizer.step(closure)
        it = int(optimizer.state[u].get("n_iter", 0))
        closure()  # L-BFGS also stops on its evaluation budget or a stalled step: judge by the gradient
        done = float(u.grad.abs().max()) <= 10 * tol
        v = to_v(u.detach())
        solutions.append(v)
        iterations.append(it)
        converged.append(done)
    if not all(converged):
        warnings.warn(f"exact_fit_subsets: {converged.count(False)} of {len(subsets)} subsets did not converge in "
                      f"max_iter={max_iter} iterations (tol={tol:g})", RuntimeWarning, stacklevel=2)
    V = torch.stack(solutions)
    return ExactFit(V=V.to(features.dtype), iterations=tuple(iterations), converged=tuple(converged))


def _float64_copy(actor: nn.Module) -> nn.Module:
    """A float64 copy of the actor: the exact and linear problems are compared to ~1e-6, beyond
    float32's resolution of a log-ratio."""
    clone = copy.deepcopy(actor).double()
    for p in clone.parameters():
        p.requires_grad_(False)
    return clone

