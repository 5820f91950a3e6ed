"""Algorithm 1 in ``pgx.surrogate``: the batched weighted logistic regression and its scores."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression

from pgx.gradients import GaussianProjector
from pgx.surrogate import (
    SurrogateConfig,
    delta_theta,
    first_order_scores,
    fit_subsets,
    fit_trust_region,
    rescale,
    subset_masks,
)

SUBSETS = [(0, 1, 2), (1, 3), (2, 4, 5), (0, 5), (3,)]


def _data(n: int = 1200, d: int = 12, n_tasks: int = 6, seed: int = 0):
    """Features with a shared mean direction (as policy gradients have) and advantages that depend
    on the features differently per task, so the subsets have different solutions."""
    g = torch.Generator().manual_seed(seed)
    task_ids = torch.arange(n) % n_tasks
    shared = torch.randn(d, generator=g, dtype=torch.float64)
    features = torch.randn(n, d, generator=g, dtype=torch.float64) + shared
    directions = torch.randn(n_tasks, d, generator=g, dtype=torch.float64)
    noise = torch.randn(n, generator=g, dtype=torch.float64)
    advantages = (features * directions[task_ids]).sum(1) / math.sqrt(d) + noise
    return features, advantages, task_ids


def _sklearn_fit(features, advantages, task_ids, subset, l2: float) -> np.ndarray:
    """scikit-learn's ``‖v‖²/2 + C Σ_S w·loss`` with ``C = 1/(2 λ Σ_S w)`` is ``Σ_S w`` times
    eq. (4)'s objective ``Σ_S w·loss / Σ_S w + λ‖v‖²``: the same minimiser."""
    mask = torch.isin(task_ids, torch.tensor(subset)).numpy()
    x, a = features.numpy()[mask], advantages.numpy()[mask]
    w, y = np.abs(a), np.where(a > 0, 1, -1)
    model = LogisticRegression(C=1 / (2 * l2 * w.sum()), fit_intercept=False, tol=1e-12, max_iter=10_000)
    return model.fit(x, y, sample_weight=w).coef_[0]


@pytest.mark.parametrize("l2", [1e-2, 1e-3])
def test_batched_fit_matches_sklearn(l2):
    features, advantages, task_ids = _data()
    V = fit_subsets(features, advantages, task_ids, SUBSETS, SurrogateConfig(l2=l2, tol=1e-9))
    assert V.shape == (len(SUBSETS), 12) and V.dtype == torch.float64
    for k, subset in enumerate(SUBSETS):
        expected = _sklearn_fit(features, advantages, task_ids, subset, l2)
        relative = np.abs(V[k].numpy() - expected).max() / np.abs(expected).max()
        assert relative < 1e-4, f"subset {subset}: relative difference {relative:.2e}"


def test_batched_fit_equals_one_fit_per_subset():
    features, advantages, task_ids = _data()
    cfg = SurrogateConfig(tol=1e-10)
    together = fit_subsets(features, advantages, task_ids, SUBSETS, cfg)
    alone = torch.cat([fit_subsets(features, advantages, task_ids, [subset], cfg) for subset in SUBSETS])
    torch.testing.assert_close(together, alone, rtol=1e-7, atol=1e-10)
    # Different subsets must get different solutions (the batch does not mix them up).
    assert (together[0] - together[1]).abs().max() > 1e-2


def test_fit_keeps_the_dtype_of_the_features_and_only_uses_subset_samples():
    features, advantages, task_ids = _data()
    V32 = fit_subsets(features.float(), advantages.float(), task_ids, SUBSETS)
    assert V32.dtype == torch.float32
    V64 = fit_subsets(features, advantages, task_ids, SUBSETS)
    torch.testing.assert_close(V32.double(), V64, rtol=1e-4, atol=1e-6)
    # Corrupting samples of task 4 leaves subsets without task 4 unchanged.
    changed = advantages.clone()
    changed[task_ids == 4] *= -3
    V = fit_subsets(features, advantages, task_ids, SUBSETS)
    W = fit_subsets(features, changed, task_ids, SUBSETS)
    torch.testing.assert_close(V[[0, 1, 3, 4]], W[[0, 1, 3, 4]])
    assert (V[2] - W[2]).abs().max() > 1e-2


def test_non_convergence_warns_with_the_residual():
    features, advantages, task_ids = _data()
    message = r"5 of 5 subsets did not converge in max_iter=1 iterations \(largest residual"
    with pytest.warns(RuntimeWarning, match=message):
        fit_subsets(features, advantages, task_ids, SUBSETS, SurrogateConfig(max_iter=1))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fit_subsets(features, advantages, task_ids, SUBSETS)


def test_subset_masks_by_hand():
    masks = subset_masks(torch.tensor([0, 1, 2, 1, 0]), [(0,), (1, 2)], n_tasks=3)
    expected = torch.tensor([[True, False, False, False, True], [False, True, True, True, False]])
    assert torch.equal(masks, expected)


def test_rescale_gives_the_requested_relative_distance():
    features, advantages, task_ids = _data()
    projector = GaussianProjector([(10, 3), (5, 4)], dim=12, seed=0, block_rows=7)
    V = fit_subsets(features, advantages, task_ids, SUBSETS)
    scaled = rescale(V, projector, theta_norm=3.0, relative_distance=0.05)
    lifted = delta_theta(scaled, projector)
    assert lifted.shape == (len(SUBSETS), 50)
    ones = torch.ones(len(SUBSETS), dtype=torch.float64)
    torch.testing.assert_close(lifted.norm(dim=1) / 3.0, 0.05 * ones)
    # Only the length changes, not the direction.
    torch.testing.assert_close(torch.nn.functional.cosine_similarity(scaled, V), ones)
    torch.testing.assert_close(lifted, scaled @ projector.materialize().double().T)


def test_rescale_errors():
    projector = GaussianProjector([(4,)], dim=2, seed=0)
    with pytest.raises(ValueError, match=r"rows \[1\] of V are zero"):
        rescale(torch.tensor([[1.0, 0.0], [0.0, 0.0]]), projector, 1.0, 0.1)
    with pytest.raises(ValueError, match="theta_norm must be a finite number > 0, got 0.0"):
        rescale(torch.ones(1, 2), projector, 0.0, 0.1)
    with pytest.raises(ValueError, match="relative_distance must be a finite number > 0, got -0.1"):
        rescale(torch.ones(1, 2), projector, 1.0, -0.1)


def _loss(features, advantages, task_ids, subset, v, l2):
    mask = torch.isin(task_ids, torch.tensor(subset))
    y = torch.where(advantages[mask] > 0, 1.0, -1.0)
    w = advantages[mask].abs() / advantages[mask].abs().sum()
    return float((w * torch.nn.functional.softplus(-y * (features[mask] @ v))).sum() + l2 * v.square().sum())


def test_trust_region_steps_lie_on_the_sphere_and_beat_the_rescaled_step():
    features, advantages, task_ids = _data()
    projector = GaussianProjector([(10, 3), (5, 4)], dim=12, seed=0, block_rows=7)
    cfg = SurrogateConfig(l2=1e-3)
    rescaled = rescale(fit_subsets(features, advantages, task_ids, SUBSETS, cfg), projector, 3.0, 0.05)
    V = fit_trust_region(features, advantages, task_ids, SUBSETS, projector, radius=0.15, cfg=cfg, start=rescaled)
    torch.testing.assert_close(projector.lift_norms(V), torch.full((len(SUBSETS),), 0.15, dtype=torch.float64))
    for k, subset in enumerate(SUBSETS):
        assert _loss(features, advantages, task_ids, subset, V[k], cfg.l2) <= \
            _loss(features, advantages, task_ids, subset, rescaled[k], cfg.l2) + 1e-12
    # The optimum on the sphere does not depend on where the search starts.
    other = fit_trust_region(features, advantages, task_ids, SUBSETS, projector, radius=0.15, cfg=cfg)
    torch.testing.assert_close(other, V, rtol=1e-4, atol=1e-6)


def test_a_small_trust_region_follows_the_subset_policy_gradient():
    """On a tiny sphere the loss is linear in v, so the best step is along Σ_S |Â| y g̃ (metric PᵀP)."""
    features, advantages, task_ids = _data()
    projector = GaussianProjector([(200, 12)], dim=12, seed=0)
    V = fit_trust_region(features, advantages, task_ids, SUBSETS, projector, radius=1e-6)
    gram = projector.materialize().double().T @ projector.materialize().double()
    for k, subset in enumerate(SUBSETS):
        mask = torch.isin(task_ids, torch.tensor(subset))
        gradient = (advantages[mask, None] * features[mask]).sum(0)
        expected = torch.linalg.solve(gram, gradient)
        assert float(torch.nn.functional.cosine_similarity(V[k], expected, dim=0)) > 0.999


def test_trust_region_errors():
    features, advantages, task_ids = _data()
    projector = GaussianProjector([(10, 3), (5, 4)], dim=12, seed=0)
    with pytest.raises(ValueError, match="radius must be a finite number > 0, got 0"):
        fit_trust_region(features, advantages, task_ids, SUBSETS, projector, radius=0)
    with pytest.raises(ValueError, match=r"start rows \[0\] are zero"):
        start = torch.ones(len(SUBSETS), 12, dtype=torch.float64)
        start[0] = 0
        fit_trust_region(features, advantages, task_ids, SUBSETS, projector, 0.1, start=start)
    with pytest.raises(ValueError, match="step must be one of"):
        SurrogateConfig(step="sideways")


def test_first_order_scores_by_hand():
    features = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [2.0, 0.0]], dtype=torch.float64)
    advantages = torch.tensor([1.0, -2.0, 3.0, 5.0], dtype=torch.float64)
    task_ids = torch.tensor([0, 0, 1, 2])
    subsets = [(0, 1), (1, 2), (0, 2)]
    V = torch.zeros(3, 2, dtype=torch.float64)
    zero = first_order_scores(features, advantages, task_ids, subsets, V, 3)
    nan = math.nan
    expected = torch.tensor([[-0.5, 3.0, nan], [nan, 3.0, 5.0], [-0.5, nan, 5.0]], dtype=torch.float64)
    torch.testing.assert_close(zero, expected, equal_nan=True)  # v = 0: the mean advantage
    V = torch.tensor([[math.log(2), 0.0], [0.0, 0.0], [0.0, math.log(3)]], dtype=torch.float64)
    scores = first_order_scores(features, advantages, task_ids, subsets, V, 3)
    # Subset 0, task 0: (1·e^{ln 2} − 2·e^0)/2 = 0; task 1: 3·e^{ln 2} = 6.
    # Subset 2, task 0: (1 − 2·3)/2 = −2.5; task 2: 5·e^0 = 5.
    expected = torch.tensor([[0.0, 6.0, nan], [nan, 3.0, 5.0], [-2.5, nan, 5.0]], dtype=torch.float64)
    torch.testing.assert_close(scores, expected, equal_nan=True)


def test_the_fit_raises_the_first_order_objective():
    features, advantages, task_ids = _data()
    scaled = fit_subsets(features, advantages, task_ids, SUBSETS) * 0.1
    after = first_order_scores(features, advantages, task_ids, SUBSETS, scaled, 6)
    before = first_order_scores(features, advantages, task_ids, SUBSETS, torch.zeros_like(scaled), 6)
    assert bool((after.nansum(1) > before.nansum(1)).all())


@pytest.mark.parametrize(
    "subsets, message",
    [
        ([], "subsets is empty"),
        ([(0, 1), ()], "subset 1 is empty"),
        ([(0, 6)], "subset 0 names task 6, which has no samples"),
        ([(0, 2, 2)], "subset 0 lists a task more than once"),
        ([(0, -1)], r"subset 0 names task -1, outside \[0\)"),
        ([(0, 1.5)], "subset 0 must hold integer task indices"),
    ],
)
def test_fit_rejects_bad_subsets(subsets, message):
    features, advantages, task_ids = _data(n=60)
    with pytest.raises(ValueError, match=message):
        fit_subsets(features, advantages, task_ids, subsets)


def test_a_task_without_samples_is_named():
    features, advantages, task_ids = _data(n=60)
    task_ids = torch.where(task_ids == 3, 4, task_ids)
    with pytest.raises(ValueError, match="subset 1 names task 3, which has no samples"):
        fit_subsets(features, advantages, task_ids, [(0, 1), (2, 3)])
    V = torch.zeros(2, 12, dtype=torch.float64)
    with pytest.raises(ValueError, match="subset 1 names task 3, which has no samples"):
        first_order_scores(features, advantages, task_ids, [(0, 1), (2, 3)], V, 6)


def test_fit_rejects_bad_data():
    features, advantages, task_ids = _data(n=60)
    bad = advantages.clone()
    bad[[3, 7, 9]] = math.nan
    with pytest.raises(ValueError, match="advantages has 3 non-finite entries of 60"):
        fit_subsets(features, bad, task_ids, SUBSETS)
    bad = features.clone()
    bad[5, 2], bad[8, 0] = math.inf, math.nan
    with pytest.raises(ValueError, match="features has 2 non-finite rows of 60"):
        fit_subsets(bad, advantages, task_ids, SUBSETS)
    message = r"advantages must be a floating-point tensor of shape \(60,\), got torch.float64 \(59,\)"
    with pytest.raises(ValueError, match=message):
        fit_subsets(features, advantages[:59], task_ids, SUBSETS)
    with pytest.raises(ValueError, match=r"task_ids must be an integer tensor of shape \(60,\)"):
        fit_subsets(features, advantages, task_ids[:59], SUBSETS)
    with pytest.raises(ValueError, match=r"features must be a floating-point \(num_samples, d\) tensor"):
        fit_subsets(features[0], advantages, task_ids, SUBSETS)
    zero = torch.where(task_ids == 3, 0.0, advantages)
    with pytest.raises(ValueError, match=r"subsets \[4\] have total weight 0"):
        fit_subsets(features, zero, task_ids, SUBSETS)


def test_scores_and_masks_reject_bad_shapes():
    features, advantages, task_ids = _data(n=60)
    with pytest.raises(ValueError, match=r"V must have shape \(5, 12\) \(subsets, d\), got \(5, 11\)"):
        first_order_scores(features, advantages, task_ids, SUBSETS, torch.zeros(5, 11), 6)
    with pytest.raises(ValueError, match="task_ids must be < n_tasks=5, got maximum 5"):
        first_order_scores(features, advantages, task_ids, [(0,)], torch.zeros(1, 12), 5)
    with pytest.raises(ValueError, match=r"subset 0 names task 6, outside \[0, 6\)"):
        subset_masks(task_ids, [(6,)], 6)
    with pytest.raises(ValueError, match="n_tasks must be an integer >= 1, got 0"):
        subset_masks(task_ids, [(0,)], 0)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"l2": 0.0}, "l2 must be a finite number > 0, got 0.0"),
        ({"max_iter": 0}, "max_iter must be an integer >= 1, got 0"),
        ({"tol": -1.0}, "tol must be a number > 0, got -1.0"),
        ({"relative_distance": 0.0}, "relative_distance must be None or a finite number > 0, got 0.0"),
    ],
)
def test_config_rejects_bad_values(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SurrogateConfig(**kwargs)
