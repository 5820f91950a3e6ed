"""How good is the first-order model of log π around θ*? (Section 3.2, Table 1.)

For an adapted θ the model predicts ``log π_θ(a|s) ≈ log π_θ*(a|s) + g(s,a)ᵀ(θ − θ*)``. The paper
measures its relative residual sum of squares on held-out states,

    RSS = Σ (f_θ − f_θ* − gᵀ(θ − θ*))² / Σ f_θ²,      f = log π(a|s),

against the relative distance ‖θ − θ*‖ / ‖θ*‖. The directional derivative gᵀΔθ is one
forward-mode pass (``torch.func.jvp``), so no per-sample gradient matrix is formed.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.func import jvp

from pgx.gradients import log_prob_at

__all__ = ["TaylorCheck", "linearization_rss", "relative_distance"]


@dataclass(frozen=True)
class TaylorCheck:
    rss: float
    """Relative residual sum of squares of the first-order model."""
    rss_zeroth: float
    """The same without the gradient term (f_θ* alone as the prediction): what the slope buys."""
    distance: float
    """‖θ − θ*‖ / ‖θ*‖."""


def _flat(state: dict[str, torch.Tensor]) -> torch.Tensor:
    return torch.cat([v.reshape(-1) for v in state.values()])


def relative_distance(theta: dict[str, torch.Tensor], theta_star: dict[str, torch.Tensor]) -> float:
    """‖θ − θ*‖ / ‖θ*‖ over all parameters (same keys, same order)."""
    if list(theta) != list(theta_star):
        raise ValueError(f"parameter names differ: {list(theta)} vs {list(theta_star)}")
    star = _flat(theta_star)
    return float((_flat(theta) - star).norm() / star.norm())


@torch.no_grad()
def linearization_rss(
    actor: nn.Module,
    theta_star: dict[str, torch.Tensor],
    theta: dict[str, torch.Tensor],
    obs: torch.Tensor,
    actions: torch.Tensor,
) -> TaylorCheck:
    """RSS of the first-order model of ``actor.log_prob`` at ``theta`` around ``theta_star``.

    :param actor: module with ``log_prob(obs, actions) -> (N,)``; its own weights are not used.
    :param theta_star, theta: parameter dicts (``named_parameters`` names) of θ* and the adapted θ.
    :param obs: ``(N, obs_dim)`` held-out states; ``actions``: ``(N,)`` actions taken there.
    """
    names = [name for name, _ in actor.named_parameters()]
    if list(theta_star) != names or list(theta) != names:
        raise ValueError(f"theta and theta_star must hold exactly the actor's parameters {names}")
    if obs.shape[0] != actions.shape[0] or obs.shape[0] == 0:
        raise ValueError(f"obs and actions must have the same non-zero length, got {obs.shape[0]} and {actions.shape[0]}")
    device = next(actor.parameters()).device
    star = {k: v.to(device) for k, v in theta_star.items()}
    delta = {k: theta[k].to(device) - star[k] for k in names}
    obs, actions = obs.to(device), actions.to(device)

    def log_prob(params: dict[str, torch.Tensor]) -> torch.Tensor:
        return log_prob_at(actor, params, obs, actions)

    f_star, slope = jvp(log_prob, (star,), (delta,))
    f_theta = log_prob({k: theta[k].to(device) for k in names})
    denominator = (f_theta**2).sum()
    if not torch.isfinite(denominator) or denominator == 0:
        raise ValueError(f"Σ log π_θ² is {float(denominator)}; RSS is undefined for these samples")
    rss = ((f_theta - f_star - slope) ** 2).sum() / denominator
    rss_zeroth = ((f_theta - f_star) ** 2).sum() / denominator
    return TaylorCheck(rss=float(rss), rss_zeroth=float(rss_zeroth), distance=relative_distance(theta, theta_star))

