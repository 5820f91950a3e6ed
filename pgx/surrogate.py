"""Algorithm 1: the surrogate model of fine-tuning θ* on a task subset (section 3.1).

Linearising ``log π_θ`` around θ* turns PPO's objective ``E[r Â]`` with ``r = π_θ/π_θ*`` into a
function of ``g_nᵀ Δθ``. The paper maximises it as a weighted logistic regression on the projected
features ``g̃_n = Pᵀ g_n`` (eq. 4): label ``y_n = sign(Â_n)``, weight ``w_n = |Â_n|``, score
``g̃_nᵀ v``, and for each subset S

    v_S = argmin_v  Σ_{n∈S} w_n softplus(−y_n g̃_nᵀ v) / Σ_{n∈S} w_n  +  λ ‖v‖²,

then maps back with ``Δθ_S = P v_S``. ``fit_subsets`` solves all subsets at once;
``first_order_scores`` estimates each task's PPO objective after the update without touching an
environment, ``mean_n Â_n exp(g̃_nᵀ v_S)``.
"""

from __future__ import annotations

import math
import operator
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from pgx.checks import KeyedByChanges, check_choice, check_number, check_optional_number
from pgx.gradients import GaussianProjector, check_samples
from pgx.runtime import is_int

__all__ = [
    "SurrogateConfig",
    "subset_masks",
    "fit_subsets",
    "rescale",
    "fit_trust_region",
    "delta_theta",
    "first_order_scores",
]


STEPS = ("trust_region", "rescale")


@dataclass(frozen=True)
class SurrogateConfig(KeyedByChanges):
    """How the per-subset logistic regressions are solved and scaled."""

    l2: float = 1e-2
    """λ in eq. (4). Keeps ‖v‖ small, so Δθ = P v stays where the first-order model holds; it also
    makes every problem strongly convex, so each subset has exactly one solution."""
    max_iter: int = 1000
    """Iteration cap of the solver; a warning quoting the residual is raised when it is reached."""
    tol: float = 1e-6
    """Stop when, for every subset, the bound-preconditioned gradient step ``‖M⁻¹∇f(v)‖`` is at most
    ``tol · ‖v‖`` (a relative error estimate of v)."""
    relative_distance: float | None = None
    """If set, every step is taken at ‖Δθ‖ / ‖θ*‖ equal to it (Table 1's distance), where the
    first-order model is trusted, before both Δθ = P v and the scores are computed (how: ``step``);
    ``fit_subsets`` has no P and leaves this to its caller. None keeps the norm that λ gives."""
    step: str = "trust_region"
    """How a step reaches ``relative_distance``: ``"trust_region"`` minimises eq. (4)'s loss over the
    sphere ‖P v‖ = relative_distance·‖θ*‖ (:func:`fit_trust_region`); ``"rescale"`` solves eq. (4)
    with λ alone and rescales that v (:func:`rescale`, as the authors' group's scripts do). The two
    differ because λ alone lands far from θ*, where the best direction is not the best one nearby."""

    def __post_init__(self) -> None:
        owner = "SurrogateConfig"
        check_number(owner, "l2", self.l2, 0)
        if not is_int(self.max_iter) or self.max_iter < 1:
            raise ValueError(f"SurrogateConfig.max_iter must be an integer >= 1, got {self.max_iter!r}")
        check_number(owner, "tol", self.tol, 0, finite=False)
        if math.isinf(self.tol):  # would stop every solve at its first iteration, silently
            raise ValueError(f"SurrogateConfig.tol must be finite, got {self.tol!r}")
        check_choice(owner, "step", self.step, STEPS)
        check_optional_number(owner, "relative_distance", self.relative_distance, 0)


# --- subsets ------------------------------------------------------------------------------------


def _membership(subsets: Sequence[Sequence[int]], n_tasks: int | None) -> torch.Tensor:
    """``(m, n_tasks)`` bool, row k marking the tasks of subset k; ``n_tasks=None`` → max task + 1."""
    if len(subsets) == 0:
        raise ValueError("subsets is empty: need at least one subset")
    parsed: list[list[int]] = []
    for k, subset in enumerate(subsets):
        try:
            tasks = [operator.index(task) for task in subset]
        except TypeError as e:
            raise ValueError(f"subset {k} must hold integer task indices, got {subset!r}") from e
        if not tasks:
            raise ValueError(f"subset {k} is empty")
        if len(set(tasks)) != len(tasks):
            raise ValueError(f"subset {k} lists a task more than once: {tasks}")
        for task in tasks:
            if task < 0 or (n_tasks is not None and task >= n_tasks):
                upper = "" if n_tasks is None else f", {n_tasks}"
                raise ValueError(f"subset {k} names task {task}, outside [0{upper})")
        parsed.append(tasks)
    width = n_tasks if n_tasks is not None else 1 + max(max(tasks) for tasks in parsed)
    membership = torch.zeros(len(parsed), width, dtype=torch.bool)
    for k, tasks in enumerate(parsed):
        membership[k, tasks] = True
    return membership


def subset_masks(task_ids: torch.Tensor, subsets: Sequence[Sequence[int]], n_tasks: int) -> torch.Tensor:
    """Which samples each subset trains on: ``(m, num_samples)`` bool.

    :param task_ids: ``(num_samples,)`` task of each sample, in ``[0, n_tasks)``.
    :param subsets: m task subsets, each a non-empty sequence of distinct task indices.
    """
    if not is_int(n_tasks) or n_tasks < 1:
        raise ValueError(f"n_tasks must be an integer >= 1, got {n_tasks!r}")
    if task_ids.ndim != 1 or task_ids.is_floating_point() or task_ids.dtype == torch.bool:
        raise ValueError(
            f"task_ids must be an integer tensor of shape (num_samples,), got "
            f"{task_ids.dtype} {tuple(task_ids.shape)}"
        )
    if task_ids.numel() and not 0 <= int(task_ids.min()) <= int(task_ids.max()) < n_tasks:
        raise ValueError(
            f"task_ids must lie in [0, {n_tasks}), got [{int(task_ids.min())}, {int(task_ids.max())}]"
        )
    return _membership(subsets, n_tasks).to(task_ids.device)[:, task_ids]


# --- Algorithm 1: fit every subset at once ------------------------------------------------------


def _check_populated(membership: torch.Tensor, counts: torch.Tensor) -> None:
    """Every task a subset names must have samples, else that part of the subset is silently void."""
    empty = membership & (counts == 0)
    if empty.any():
        k, task = (int(i) for i in empty.nonzero()[0])
        raise ValueError(f"subset {k} names task {task}, which has no samples")


def _bound_solve(grad: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """``M_S⁻¹ ∇f_S`` for every subset from the Cholesky factors ``L`` of the bounds: ``L⁻ᵀ(L⁻¹ g)``.

    Two batched triangular solves compute the same numbers as ``torch.cholesky_solve`` (bit for
    bit on the CPU (MKL), checked on this code's shapes; not checked on CUDA) about three times
    faster at m in the hundreds, and without its copy of the m factors
    (benchmarks/bench_grouping.py's ``surrogate_at_scale``)."""
    half = torch.linalg.solve_triangular(factor, grad.unsqueeze(-1), upper=False)
    return torch.linalg.solve_triangular(factor.mH, half, upper=True).squeeze(-1)


def fit_subsets(
    features: torch.Tensor,
    advantages: torch.Tensor,
    task_ids: torch.Tensor,
    subsets: Sequence[Sequence[int]],
    cfg: SurrogateConfig = SurrogateConfig(),
) -> torch.Tensor:
    """Solve eq. (4) for every subset at once: ``V (m, d)``, row k the ``v`` of ``subsets[k]``.

    Solver: accelerated majorise-minimise, batched over subsets. Because ``σ(z)(1 − σ(z)) ≤ 1/4``,
    ``M_S = ¼ Σ_{n∈S} w_n g̃_n g̃_nᵀ / Σ_{n∈S} w_n + 2λI`` bounds the Hessian everywhere
    (Böhning's bound), so ``v ← y − M_S⁻¹ ∇f_S(y)`` is a guaranteed-descent step of size 1/L in the
    M_S-metric; Nesterov momentum with gradient restarts (O'Donoghue & Candès) accelerates it. M_S
    is the sum of per-task Gram matrices, computed once (``N d²``), and factored once per subset
    (``d³``); each iteration then costs two ``(m, N) × (N, d)`` products, far less than batched
    Newton's ``m N d²`` Hessians. λ keeps v small, where σ' ≈ ¼ and the bound is nearly the true
    Hessian, so few iterations are needed. Computed in float64 (a few ``(m, N)`` arrays and
    ``(n_tasks + m) d²`` for the bounds); returned in ``features.dtype``.

    :param features: ``(num_samples, d)`` projected gradients g̃.
    :param advantages: ``(num_samples,)`` Â; y = +1 where Â > 0 else −1, w = |Â|.
    :param task_ids: ``(num_samples,)`` task of each sample.
    :param subsets: m non-empty task subsets; every task named must have samples.
    """
    check_samples(features, advantages, task_ids)
    membership = _membership(subsets, None)
    n_tasks = max(membership.shape[1], int(task_ids.max()) + 1)
    membership = torch.nn.functional.pad(membership, (0, n_tasks - membership.shape[1]))
    membership = membership.to(features.device)
    counts = torch.bincount(task_ids, minlength=n_tasks)
    _check_populated(membership, counts)

    x = features.double()
    y = torch.where(advantages > 0, 1.0, -1.0).to(x)
    w = advantages.double().abs()
    weights = membership[:, task_ids] * w  # (m, N)
    total = weights.sum(1)
    if (total == 0).any():
        zero = (total == 0).nonzero().flatten().tolist()
        raise ValueError(f"subsets {zero} have total weight 0: all their advantages are 0")
    weights = weights / total[:, None]

    # Böhning's bound M_S from per-task Gram matrices Σ_{n∈task} w_n g̃_n g̃_nᵀ.
    d = x.shape[1]
    gram = torch.zeros(n_tasks, d, d, dtype=x.dtype, device=x.device)
    for task in counts.nonzero().flatten().tolist():
        in_task = task_ids == task
        gram[task] = (x[in_task] * w[in_task, None]).T @ x[in_task]
    bound = 0.25 * torch.einsum("mt,tde->mde", membership.to(x), gram) / total[:, None, None]
    bound += 2 * cfg.l2 * torch.eye(d, dtype=x.dtype, device=x.device)
    factor = torch.linalg.cholesky(bound)

    def gradient(v: torch.Tensor) -> torch.Tensor:
        margins = y * (v @ x.T)  # (m, N)
        return -(weights * y * torch.sigmoid(-margins)) @ x + 2 * cfg.l2 * v

    v = torch.zeros(len(subsets), d, dtype=x.dtype, device=x.device)
    lookahead, momentum_t = v, torch.ones(len(subsets), dtype=x.dtype, device=x.device)
    for _ in range(cfg.max_iter):
        grad = gradient(lookahead)
        step = _bound_solve(grad, factor)
        v_next = lookahead - step
        residual = step.norm(dim=1) / v_next.norm(dim=1).clamp_min(torch.finfo(x.dtype).tiny)
        if bool((residual <= cfg.tol).all()):
            return v_next.to(features.dtype)
        restart = (grad * (v_next - v)).sum(1) > 0
        t_next = (1 + torch.sqrt(1 + 4 * momentum_t**2)) / 2
        beta = torch.where(restart, 0.0, (momentum_t - 1) / t_next)
        momentum_t = torch.where(restart, 1.0, t_next)
        lookahead = v_next + beta[:, None] * (v_next - v)
        v = v_next
    failed = residual > cfg.tol
    warnings.warn(
        f"fit_subsets: {int(failed.sum())} of {len(subsets)} subsets did not converge in "
        f"max_iter={cfg.max_iter} iterations (largest residual {float(residual.max()):.3g} > "
        f"tol={cfg.tol:g}); raise max_iter or l2",
        RuntimeWarning,
        stacklevel=2,
    )
    return v.to(features.dtype)


def rescale(
    V: torch.Tensor, projector: GaussianProjector, theta_norm: float, relative_distance: float
) -> torch.Tensor:
    """Scale each row of ``V (m, d)`` so that ``‖P v‖ = relative_distance · theta_norm``.

    ``g̃ᵀv ≈ gᵀΔθ`` is linear in v, so the scores must be computed from the *same* scaled v whose
    ``P v`` is plugged into the policy.

    :param theta_norm: ``‖θ*‖``, > 0.
    :param relative_distance: the target ``‖Δθ‖ / ‖θ*‖``, > 0.
    """
    if not (math.isfinite(theta_norm) and theta_norm > 0):
        raise ValueError(f"theta_norm must be a finite number > 0, got {theta_norm!r}")
    if not (math.isfinite(relative_distance) and relative_distance > 0):
        raise ValueError(f"relative_distance must be a finite number > 0, got {relative_distance!r}")
    norms = projector.lift_norms(V)
    if (norms == 0).any():
        zero = (norms == 0).nonzero().flatten().tolist()
        raise ValueError(f"rows {zero} of V are zero: no direction to rescale")
    return V * (relative_distance * theta_norm / norms)[:, None]


def fit_trust_region(
    features: torch.Tensor,
    advantages: torch.Tensor,
    task_ids: torch.Tensor,
    subsets: Sequence[Sequence[int]],
    projector: GaussianProjector,
    radius: float,
    cfg: SurrogateConfig = SurrogateConfig(),
    start: torch.Tensor | None = None,
    max_iter: int = 200,
) -> torch.Tensor:
    """Eq. (4)'s loss minimised over the sphere ``‖P v‖ = radius`` for every subset: ``V (m, d)``.

    The first-order model is only trusted near θ*, so the step is chosen where it is used: among
    all steps of length ``radius`` (e.g. 1% of ‖θ*‖), the one the linearised objective likes
    best. ``v = radius · u / ‖P u‖`` turns it into an unconstrained problem in u, solved per subset
    by L-BFGS (full batch, deterministic) from ``start`` (default: the λ solution of
    :func:`fit_subsets`). ``‖P u‖² = uᵀ(PᵀP)u`` uses the ``d × d`` Gram matrix of P, built block by
    block, so P is never held whole. Float64 inside; returned in ``features.dtype``.

    :param radius: ``‖Δθ‖``, > 0 (``relative_distance · ‖θ*‖``).
    :param start: ``(m, d)`` non-zero starting directions.
    """
    if not (isinstance(radius, (int, float)) and math.isfinite(radius) and radius > 0):
        raise ValueError(f"radius must be a finite number > 0, got {radius!r}")
    if start is None:
        start = fit_subsets(features, advantages, task_ids, subsets, cfg)
    if start.shape != (len(subsets), features.shape[1]):
        raise ValueError(f"start must have shape ({len(subsets)}, {features.shape[1]}), got {tuple(start.shape)}")
    if (start.norm(dim=1) == 0).any():
        raise ValueError(f"start rows {(start.norm(dim=1) == 0).nonzero().flatten().tolist()} are zero: no direction")
    if projector.dim != features.shape[1]:
        raise ValueError(f"projector has d={projector.dim} but features have d={features.shape[1]}")
    n_tasks = int(task_ids.max()) + 1
    masks = subset_masks(task_ids, subsets, max(n_tasks, 1 + max(max(s) for s in subsets)))
    gram = torch.zeros(projector.dim, projector.dim, dtype=torch.float64)
    for t, a, b in projector.block_ranges():
        block = projector.block(t, a, b).double()
        gram += block.T @ block
    x, adv = features.double(), advantages.double()
    solutions, stalled = [], []
    for k, mask in enumerate(masks):
        xs, y = x[mask], torch.where(adv[mask] > 0, 1.0, -1.0).double()
        w = adv[mask].abs()
        if w.sum() == 0:
            raise ValueError(f"subset {k} has total weight 0: all its advantages are 0")
        w = w / w.sum()
        u0 = start[k].detach().double()
        u = (u0 / torch.sqrt(u0 @ gram @ u0)).requires_grad_()  # ‖P u‖ = 1
        optimizer = torch.optim.LBFGS([u], lr=1, max_iter=max_iter, max_eval=2 * max_iter, tolerance_grad=1e-9,
                                      tolerance_change=1e-14, history_size=20, line_search_fn="strong_wolfe")

        def on_sphere(u: torch.Tensor) -> torch.Tensor:
            return radius * u / torch.sqrt(u @ gram @ u)

        def closure() -> torch.Tensor:
            optimizer.zero_grad()
            v = on_sphere(u)
            value = (w * torch.nn.functional.softplus(-y * (xs @ v))).sum() + cfg.l2 * v.square().sum()
            # Measured from v = 0 (loss log 2) in units of the radius, and with ‖P u‖ near 1: gradients
            # in u of order 1 at any radius, so the tolerances mean the same for a tiny step and a large one.
            value = (value - math.log(2)) / radius
            value.backward()
            return value

        optimizer.step(closure)
        closure()  # L-BFGS also stops on its evaluation budget or a stalled step: judge by the gradient
        if float(u.grad.abs().max()) > 1e-4:
            stalled.append(k)
        solutions.append(on_sphere(u.detach()))
    if stalled:
        warnings.warn(f"fit_trust_region: {len(stalled)} of {len(subsets)} subsets stopped with a gradient above 1e-4 "
                      f"(first: subset {stalled[0]}); raise max_iter", RuntimeWarning, stacklevel=2)
    return torch.stack(solutions).to(features.dtype)


def delta_theta(V: torch.Tensor, projector: GaussianProjector) -> torch.Tensor:
    """``Δθ = P v`` for each subset: ``(m, d) → (m, p)`` in ``named_parameters`` order."""
    return projector.lift(V)


def first_order_scores(
    features: torch.Tensor,
    advantages: torch.Tensor,
    task_ids: torch.Tensor,
    subsets: Sequence[Sequence[int]],
    V: torch.Tensor,
    n_tasks: int,
) -> torch.Tensor:
    """Each task's estimated PPO objective after fine-tuning on each subset: ``(m, n_tasks)``.

    For task i ∈ S it is ``mean_{n ∈ task i} Â_n exp(g̃_nᵀ v_S)``: ``E[r Â]`` with the ratio
    ``r = π_θ/π_θ* ≈ exp(gᵀΔθ)`` from the linearised log-probabilities, so no environment steps.
    Higher is better; ``v = 0`` gives the mean advantage. NaN for tasks not in S. float64.

    :param V: ``(m, d)``, the (possibly rescaled) solutions of ``fit_subsets`` for ``subsets``.
    """
    check_samples(features, advantages, task_ids)
    if not is_int(n_tasks) or n_tasks < 1:
        raise ValueError(f"n_tasks must be an integer >= 1, got {n_tasks!r}")
    membership = _membership(subsets, n_tasks)
    if int(task_ids.max()) >= n_tasks:
        raise ValueError(f"task_ids must be < n_tasks={n_tasks}, got maximum {int(task_ids.max())}")
    if V.shape != (len(subsets), features.shape[1]):
        raise ValueError(
            f"V must have shape ({len(subsets)}, {features.shape[1]}) (subsets, d), got {tuple(V.shape)}"
        )
    membership = membership.to(features.device)
    counts = torch.bincount(task_ids, minlength=n_tasks)
    _check_populated(membership, counts)
    gains = advantages.double() * torch.exp(V.double() @ features.double().T)  # (m, N)
    sums = torch.zeros(len(subsets), n_tasks, dtype=torch.float64, device=features.device)
    sums.index_add_(1, task_ids, gains)
    scores = sums / counts.clamp_min(1)
    return scores.masked_fill(~membership, math.nan)
