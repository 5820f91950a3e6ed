import pytest
import torch

from pgx.nets.policies import CategoricalActor, PolicyConfig
from pgx.truth.taylor import linearization_rss, relative_distance


def _setup(scale: float):
    torch.manual_seed(0)
    actor = CategoricalActor(6, 3, PolicyConfig(hidden=16)).double()
    star = {k: v.detach().clone() for k, v in actor.named_parameters()}
    direction = {k: torch.randn_like(v) for k, v in star.items()}
    norm = torch.cat([v.reshape(-1) for v in direction.values()]).norm()
    star_norm = torch.cat([v.reshape(-1) for v in star.values()]).norm()
    theta = {k: star[k] + scale * star_norm * direction[k] / norm for k in star}
    obs = torch.randn(64, 6, dtype=torch.float64)
    actions = torch.randint(0, 3, (64,))
    return actor, star, theta, obs, actions


def test_rss_matches_a_by_hand_linearisation_and_distance():
    actor, star, theta, obs, actions = _setup(0.05)
    check = linearization_rss(actor, star, theta, obs, actions)
    assert check.distance == pytest.approx(0.05, rel=1e-9)
    # By hand: finite-difference slope along Δθ.
    def f(params):
        with torch.no_grad():
            for (name, p) in actor.named_parameters():
                p.copy_(params[name])
            return actor.log_prob(obs, actions)
    eps = 1e-6
    f0 = f(star)
    slope = (f({k: star[k] + eps * (theta[k] - star[k]) for k in star}) - f0) / eps
    f1 = f(theta)
    expected = ((f1 - f0 - slope) ** 2).sum() / (f1**2).sum()
    assert check.rss == pytest.approx(float(expected), rel=1e-4)
    assert check.rss < check.rss_zeroth


def test_rss_shrinks_quadratically_with_distance():
    # Residual is second order: halving the distance divides RSS (a sum of squares) by about 16.
    small = linearization_rss(*_setup(0.01))
    smaller = linearization_rss(*_setup(0.005))
    assert 10 < small.rss / smaller.rss < 22
    assert linearization_rss(*_setup(0.0)).rss == 0.0


def test_bad_inputs_are_named():
    actor, star, theta, obs, actions = _setup(0.01)
    with pytest.raises(ValueError, match="same non-zero length"):
        linearization_rss(actor, star, theta, obs, actions[:3])
    with pytest.raises(ValueError, match="exactly the actor's parameters"):
        linearization_rss(actor, {"w": torch.zeros(1)}, theta, obs, actions)
    with pytest.raises(ValueError, match="parameter names differ"):
        relative_distance({"a": torch.ones(1)}, {"b": torch.ones(1)})
