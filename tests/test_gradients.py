"""Per-sample gradients and the JL projector of ``pgx.gradients``."""

from __future__ import annotations

import math
import pickle

import numpy as np
import pytest
import torch
from torch import nn

from pgx.gradients import (
    GaussianProjector,
    GradientFeatures,
    per_sample_grads,
    per_sample_grads_loop,
    projected_grads,
    theta_fingerprint,
)
from pgx.nets.policies import Actor, CategoricalActor, GaussianActor, PolicyConfig, mlp


def _seeded(seed: int, build):
    """Build a module from a fixed seed without touching the caller's global RNG."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return build()


def _actor(seed: int = 0) -> Actor:
    return _seeded(seed, lambda: CategoricalActor(5, 3, PolicyConfig(hidden=8, layers=3))).double()


def _batch(n: int, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` observations of ``_actor`` (5-dimensional) and actions among its 3."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 5, generator=g, dtype=torch.float64), torch.randint(0, 3, (n,), generator=g)


class _GaussianActor(nn.Module):
    """Diagonal Gaussian policy with a state-independent ``log_std``: a parameter no nn.Linear owns.

    ``log_std`` is registered first so that it sits between nothing and the linear layers in
    ``named_parameters`` order, exercising the offsets of the fallback path.
    """

    def __init__(self, obs_dim: int = 4, act_dim: int = 2):
        super().__init__()
        self.log_std = nn.Parameter(torch.linspace(-0.5, 0.3, act_dim))
        self.net = mlp(obs_dim, act_dim, PolicyConfig(hidden=6, layers=3), out_std=0.5)

    def log_prob(self, obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        z = (actions - self.net(obs)) / self.log_std.exp()
        return (-0.5 * z**2 - self.log_std - 0.5 * math.log(2 * math.pi)).sum(-1)


class _SharedLinearActor(nn.Module):
    """One nn.Linear called twice on ``(N, K, in)`` inputs, a bias-free head, and a scalar parameter."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Linear(3, 4)
        self.head = nn.Linear(4, 2, bias=False)
        self.temperature = nn.Parameter(torch.tensor(0.7))

    def log_prob(self, obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        hidden = torch.tanh(self.embed(obs))  # (N, K, 4)
        hidden = torch.tanh(self.embed(hidden[..., :3])).mean(1)
        logits = torch.log_softmax(self.head(hidden) * self.temperature, dim=-1)
        return logits.gather(-1, actions.unsqueeze(-1)).squeeze(-1)


# --- per-sample gradients ---------------------------------------------------------------------


def test_vmap_matches_per_sample_backward_loop():
    actor = _actor()
    obs, actions = _batch(12)
    grads = per_sample_grads(actor, obs, actions)
    assert grads.shape == (12, sum(p.numel() for p in actor.parameters()))
    torch.testing.assert_close(grads, per_sample_grads_loop(actor, obs, actions), rtol=1e-10, atol=1e-12)
    # Each row is a single sample's gradient: summing them gives the batched gradient.
    actor.zero_grad()
    actor.log_prob(obs, actions).sum().backward()
    total = torch.cat([p.grad.reshape(-1) for p in actor.parameters()])
    torch.testing.assert_close(grads.sum(0), total, rtol=1e-10, atol=1e-12)


def test_gradients_do_not_depend_on_grad_mode_or_touch_param_grads():
    actor = _actor()
    obs, actions = _batch(6)
    expected = per_sample_grads(actor, obs, actions)
    projector = GaussianProjector.for_module(actor, 5, seed=0)
    with torch.no_grad():
        torch.testing.assert_close(per_sample_grads_loop(actor, obs, actions), expected)
        no_grad_fast = projected_grads(actor, obs, actions, projector)
    torch.testing.assert_close(no_grad_fast, projected_grads(actor, obs, actions, projector))
    assert all(p.grad is None for p in actor.parameters())


@pytest.mark.parametrize(
    "build, batch",
    [
        (lambda: _actor(), lambda: _batch(10)),
        (
            lambda: _seeded(2, _GaussianActor).double(),
            lambda: (
                torch.randn(10, 4, generator=torch.Generator().manual_seed(3), dtype=torch.float64),
                torch.randn(10, 2, generator=torch.Generator().manual_seed(4), dtype=torch.float64),
            ),
        ),
        (
            lambda: _seeded(5, _SharedLinearActor).double(),
            lambda: (
                torch.randn(10, 3, 3, generator=torch.Generator().manual_seed(6), dtype=torch.float64),
                torch.randint(0, 2, (10,), generator=torch.Generator().manual_seed(7)),
            ),
        ),
        (
            lambda: _seeded(8, lambda: GaussianActor(4, 2, PolicyConfig(hidden=6, layers=3, init_log_std=-0.3))).double(),
            lambda: (
                torch.randn(10, 4, generator=torch.Generator().manual_seed(9), dtype=torch.float64),
                torch.randn(10, 2, generator=torch.Generator().manual_seed(10), dtype=torch.float64),
            ),
        ),
    ],
    ids=["categorical-mlp", "gaussian-log-std", "shared-linear-3d", "pgx-gaussian-actor"],
)
def test_fast_projection_matches_vmap_then_project(build, batch):
    actor = build()
    obs, actions = batch()
    # block_rows 7 divides no layer width, so blocks start and end inside weight rows; chunks of 4
    # leave a partial last chunk.
    projector = GaussianProjector.for_module(actor, 6, seed=11, block_rows=7)
    reference = projector.project(per_sample_grads(actor, obs, actions))
    oracle = per_sample_grads_loop(actor, obs, actions)
    torch.testing.assert_close(per_sample_grads(actor, obs, actions), oracle, rtol=1e-10, atol=1e-12)
    fast = projected_grads(actor, obs, actions, projector, chunk_size=4)
    assert fast.shape == (10, 6) and fast.dtype == torch.float64
    torch.testing.assert_close(fast, reference, rtol=1e-10, atol=1e-12)


def test_non_finite_gradients_name_count_and_first_index():
    actor = _actor()
    obs, actions = _batch(6)
    obs[[1, 4], 0] = math.nan
    projector = GaussianProjector.for_module(actor, 4, seed=0)
    message = r"non-finite for 2 of 6 samples \(first: index 1\)"
    for compute in (per_sample_grads, per_sample_grads_loop):
        with pytest.raises(ValueError, match=message):
            compute(actor, obs, actions)
    with pytest.raises(ValueError, match=message):
        projected_grads(actor, obs, actions, projector, chunk_size=4)


def test_gradient_input_errors():
    actor = _actor()
    obs, actions = _batch(6)
    with pytest.raises(ValueError, match=r"share their first \(sample\) dimension"):
        per_sample_grads(actor, obs, actions[:5])
    with pytest.raises(ValueError, match="obs is empty"):
        per_sample_grads(actor, obs[:0], actions[:0])
    with pytest.raises(ValueError, match="must define log_prob"):
        per_sample_grads(nn.Linear(5, 3), obs, actions)
    four_actions = _seeded(0, lambda: CategoricalActor(5, 4, PolicyConfig(hidden=8, layers=3)))
    other = GaussianProjector.for_module(four_actions, 4, 0)
    with pytest.raises(ValueError, match="projector was built for parameter shapes"):
        projected_grads(actor, obs, actions, other)
    with pytest.raises(ValueError, match="chunk_size must be an integer >= 1, got 0"):
        projected_grads(actor, obs, actions, GaussianProjector.for_module(actor, 4, 0), chunk_size=0)


@pytest.mark.cuda
def test_fast_projection_on_cuda_matches_cpu():
    actor = _actor()
    obs, actions = _batch(10)
    projector = GaussianProjector.for_module(actor, 6, seed=3, block_rows=7)
    on_cpu = projected_grads(actor, obs, actions, projector, chunk_size=4)
    on_gpu = projected_grads(actor.cuda(), obs.cuda(), actions.cuda(), projector, chunk_size=4)
    assert on_gpu.device.type == "cuda"
    torch.testing.assert_close(on_gpu.cpu(), on_cpu)


# --- the projector ----------------------------------------------------------------------------


def test_projection_preserves_inner_products_within_jl_bounds():
    """For orthonormal q_i, the Pᵀq_i are i.i.d. N(0, I/d): norms² ~ χ²_d/d, products ~ N(0, 1/d)."""
    d, k = 400, 40
    projector = GaussianProjector([(30, 50), (1500,)], dim=d, seed=7, block_rows=512)
    p = projector.num_params
    g = torch.Generator().manual_seed(0)
    basis, _ = torch.linalg.qr(torch.randn(p, k, generator=g, dtype=torch.float64))
    projected = projector.project(basis.T)  # (k, d)
    gram = projected @ projected.T
    squared_norms, products = gram.diagonal(), gram[~torch.eye(k, dtype=torch.bool)]
    # 5-sigma bounds from the exact distributions; a P with the wrong scale fails the mean check.
    assert abs(float(squared_norms.mean()) - 1) < 5 * math.sqrt(2 / (d * k))
    assert float((squared_norms - 1).abs().max()) < 5 * math.sqrt(2 / d)
    assert float(products.abs().max()) < 5.5 / math.sqrt(d)
    assert abs(float(products.square().mean()) * d - 1) < 0.25

    # Correlated, unnormalised vectors: Var[ĝ·ĥ] = (‖g‖²‖h‖² + (g·h)²) / d.
    shared = torch.randn(1, p, generator=g, dtype=torch.float64)
    vectors = torch.randn(8, p, generator=g, dtype=torch.float64) + 2 * shared
    projected = projector.project(vectors)
    exact, estimate = vectors @ vectors.T, projected @ projected.T
    norms2 = exact.diagonal()
    std = torch.sqrt((norms2[:, None] * norms2[None, :] + exact**2) / d)
    assert float(((estimate - exact) / std).abs().max()) < 5


def test_projector_entries_are_n0_1_over_d():
    d = 50
    matrix = GaussianProjector([(4000,)], dim=d, seed=3, block_rows=1000).materialize()
    assert matrix.shape == (4000, d) and matrix.dtype == torch.float32
    matrix, count = matrix.double(), matrix.numel()
    assert abs(float(matrix.mean())) < 5 * math.sqrt(1 / d / count)
    assert abs(float(matrix.var()) * d - 1) < 5 * math.sqrt(2 / count)


def test_same_seed_same_matrix_different_seed_different():
    shapes = [(6, 5), (6,), (3, 6)]
    first = GaussianProjector(shapes, dim=4, seed=1, block_rows=8)
    assert torch.equal(first.materialize(), GaussianProjector(shapes, 4, 1, 8).materialize())
    assert first.fingerprint() == GaussianProjector(shapes, 4, 1, 8).fingerprint()
    for other in (GaussianProjector(shapes, 4, 2, 8), GaussianProjector(shapes, 4, 1, 9)):
        assert not torch.allclose(first.materialize(), other.materialize())
        assert other.fingerprint() != first.fingerprint()


def test_blocks_are_independent_of_order_and_of_each_other():
    shapes = [(6, 5), (30,)]
    fresh = GaussianProjector(shapes, dim=3, seed=4, block_rows=8).block(1, 5, 22)
    projector = GaussianProjector(shapes, dim=3, seed=4, block_rows=8)
    whole = projector.materialize()
    assert torch.equal(projector.block(1, 5, 22), fresh)
    assert torch.equal(whole[30 + 5 : 30 + 22], fresh)
    assert torch.equal(torch.cat([projector.block(1, 5, 13), projector.block(1, 13, 22)]), fresh)
    # Tensors 0 and 1 both start with a full 8-row block; their seeds differ, so their rows do.
    assert not torch.allclose(projector.block(0, 0, 8), projector.block(1, 0, 8))
    assert projector.block(0, 3, 3).shape == (0, 3)


def test_lift_project_and_norms_agree_with_the_materialized_matrix():
    projector = GaussianProjector([(7, 3), (7,), (2, 7)], dim=5, seed=9, block_rows=4)
    matrix = projector.materialize().double()
    g = torch.Generator().manual_seed(2)
    v = torch.randn(3, 5, generator=g, dtype=torch.float64)
    flat = torch.randn(4, projector.num_params, generator=g, dtype=torch.float64)
    torch.testing.assert_close(projector.lift(v), v @ matrix.T)
    torch.testing.assert_close(projector.project(flat), flat @ matrix)
    torch.testing.assert_close(projector.lift_norms(v), (v @ matrix.T).norm(dim=1))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"dim": 0}, "dim must be an integer >= 1, got 0"),
        ({"dim": 2.5}, "dim must be an integer >= 1, got 2.5"),
        ({"seed": -1}, "seed must be a non-negative integer, got -1"),
        ({"block_rows": 0}, "block_rows must be an integer >= 1, got 0"),
        ({"param_shapes": []}, "param_shapes is empty"),
        ({"param_shapes": [(3, -1)]}, r"param_shapes\[0\] must be a tuple of non-negative ints"),
        ({"param_shapes": [(0,)]}, "hold no entries"),
    ],
)
def test_projector_rejects_bad_arguments(kwargs, message):
    arguments = {"param_shapes": [(3, 2)], "dim": 4, "seed": 0, **kwargs}
    with pytest.raises(ValueError, match=message):
        GaussianProjector(**arguments)


def test_projector_rejects_bad_shapes_and_ranges():
    projector = GaussianProjector([(3, 2)], dim=4, seed=0)
    with pytest.raises(ValueError, match=r"flat_grads must have shape \(N, 6\), got \(2, 5\)"):
        projector.project(torch.zeros(2, 5))
    with pytest.raises(ValueError, match=r"v must have shape \(m, 4\), got \(4,\)"):
        projector.lift(torch.zeros(4))
    with pytest.raises(ValueError, match=r"tensor index t must be in \[0, 1\), got 1"):
        projector.block(1, 0, 1)
    with pytest.raises(ValueError, match="need 0 <= start <= stop <= 6 for tensor 0, got start=2, stop=7"):
        projector.block(0, 2, 7)


# --- saved features ---------------------------------------------------------------------------


def _features(actor: Actor, projector: GaussianProjector) -> GradientFeatures:
    obs, actions = _batch(9)
    advantages = torch.linspace(-1, 1, 9, dtype=torch.float64)
    task_ids = torch.arange(9) % 3
    return GradientFeatures.compute(actor, obs, actions, advantages, task_ids, projector, chunk_size=4)


def test_gradient_features_refuse_a_different_d_seed_p_or_theta():
    actor = _actor()
    projector = GaussianProjector.for_module(actor, 6, seed=1)
    features = _features(actor, projector)
    assert features.features.dtype == np.float32 and features.features.shape == (9, 6)
    np.testing.assert_allclose(
        features.features, projected_grads(actor, *_batch(9), projector).numpy(), rtol=1e-6, atol=1e-7
    )
    theta = theta_fingerprint(actor)
    features.check_compatible(6, 1, theta, projector.fingerprint())
    features.check_compatible(6, 1, theta)
    with pytest.raises(ValueError, match="features were projected to d=6, not d=7"):
        features.check_compatible(7, 1, theta)
    with pytest.raises(ValueError, match="features were projected with seed=1, not seed=2"):
        features.check_compatible(6, 2, theta)
    other_blocks = GaussianProjector.for_module(actor, 6, 1, block_rows=5)
    with pytest.raises(ValueError, match="different P"):
        features.check_compatible(6, 1, theta, other_blocks.fingerprint())
    moved = _actor()
    with torch.no_grad():
        moved.net[0].bias[0] += 1e-6
    with pytest.raises(ValueError, match="different θ"):
        features.check_compatible(6, 1, theta_fingerprint(moved))


def test_theta_fingerprint_depends_on_values_only():
    assert theta_fingerprint(_actor(0)) == theta_fingerprint(_actor(0))
    assert theta_fingerprint(_actor(0)) != theta_fingerprint(_actor(1))


def test_gradient_features_survive_pickling():
    actor = _actor()
    features = _features(actor, GaussianProjector.for_module(actor, 6, seed=1))
    loaded = pickle.loads(pickle.dumps(features))
    np.testing.assert_array_equal(loaded.features, features.features)
    loaded.check_compatible(6, 1, theta_fingerprint(actor), features.projector_fingerprint)


def test_task_policy_gradients_by_hand():
    features = GradientFeatures(
        features=np.array([[1.0, 0.0], [0.0, 2.0], [3.0, 3.0], [1.0, 1.0]], dtype=np.float32),
        advantages=np.array([2.0, -1.0, 0.5, 4.0]),
        task_ids=np.array([0, 0, 1, 2]),
        dim=2,
        seed=0,
        theta_fingerprint="theta",
    )
    expected = np.array([[1.0, -1.0], [1.5, 1.5], [4.0, 4.0]])  # mean of Â·g̃ per task
    np.testing.assert_allclose(features.task_policy_gradients(3), expected)
    with pytest.raises(ValueError, match=r"tasks \[3\] have no samples"):
        features.task_policy_gradients(4)
    with pytest.raises(ValueError, match="task_ids must be < n_tasks=2, got maximum 2"):
        features.task_policy_gradients(2)


def test_gradient_features_validate_their_contents():
    good = {
        "features": torch.zeros(4, 2),
        "advantages": torch.zeros(4),
        "task_ids": torch.zeros(4, dtype=torch.long),
        "dim": 2,
        "seed": 0,
        "theta_fingerprint": "t",
    }
    assert isinstance(GradientFeatures(**good).features, np.ndarray)  # tensors are stored as numpy
    nan_advantages = np.array([0.0, math.nan, -math.inf, 1.0])
    nan_features = np.array([[0.0, math.nan], [0, 0], [0, 0], [0, 0]], dtype=np.float32)
    cases = [
        ({"advantages": nan_advantages}, "advantages has 2 non-finite entries of 4"),
        ({"features": nan_features}, "features has 1 non-finite rows of 4"),
        ({"features": np.zeros((4, 2))}, "features must be float32, got float64"),
        ({"features": torch.zeros(4, 3)}, r"features must have shape \(num_samples, 2\), got \(4, 3\)"),
        ({"advantages": torch.zeros(3)}, r"advantages must be a floating-point tensor of shape \(4,\)"),
        ({"task_ids": torch.zeros(4)}, r"task_ids must be an integer tensor of shape \(4,\)"),
        ({"task_ids": np.array([0, -1, 0, 0])}, "task_ids must be >= 0, got minimum -1"),
    ]
    for change, message in cases:
        with pytest.raises(ValueError, match=message):
            GradientFeatures(**{**good, **change})
