"""Matrix-free Hessian estimators and the bound of ``pgx.hessian``.

Oracles: explicit small symmetric matrices with known spectra, and the dense Hessian of a small
MLP's policy-gradient loss from ``torch.autograd.functional.hessian``.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from pgx.hessian import (
    TraceEstimate,
    flatten,
    generalization_bound,
    hessian_vector_product,
    hutchinson_trace,
    hutchpp_trace,
    module_hessian_vector_product,
    top_eigenvalue,
    truncated_trace,
    unflatten,
)

F64 = torch.float64

# torch loads its forward-mode decompositions with torch.jit.script on the first jvp and warns.
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")


def _symmetric(eigenvalues: list[float], seed: int) -> torch.Tensor:
    """Q diag(eigenvalues) Qᵀ with a random orthogonal Q, so the diagonal is not the spectrum."""
    g = torch.Generator().manual_seed(seed)
    n = len(eigenvalues)
    q, _ = torch.linalg.qr(torch.randn(n, n, generator=g, dtype=F64))
    return q @ torch.diag(torch.tensor(eigenvalues, dtype=F64)) @ q.T


def _matvec(matrix: torch.Tensor):
    return lambda v: matrix @ v


def _positive_part(matrix: torch.Tensor) -> torch.Tensor:
    """H⁺: the same eigenvectors with negative eigenvalues set to zero."""
    eigenvalues, vectors = torch.linalg.eigh(matrix)
    return vectors @ torch.diag(eigenvalues.clamp(min=0)) @ vectors.T


# --- a small policy network and its exact Hessian ---------------------------------------------------

OBS_DIM, NUM_ACTIONS, BATCH = 3, 3, 16


def _policy() -> nn.Module:
    with torch.random.fork_rng():
        torch.manual_seed(0)
        return nn.Sequential(nn.Linear(OBS_DIM, 4), nn.Tanh(), nn.Linear(4, NUM_ACTIONS)).double()


def _rollout() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    obs = torch.randn(BATCH, OBS_DIM, generator=g, dtype=F64)
    actions = torch.randint(0, NUM_ACTIONS, (BATCH,), generator=g)
    advantages = torch.randn(BATCH, generator=g, dtype=F64)
    return obs, actions, advantages


def _policy_gradient_loss(actions: torch.Tensor, advantages: torch.Tensor):
    """logits -> -(log π(a|s) · Â).mean(), plus a little entropy so H is not rank-deficient."""

    def loss(logits: torch.Tensor) -> torch.Tensor:
        log_probs = torch.log_softmax(logits, dim=-1)
        chosen = log_probs.gather(-1, actions.unsqueeze(-1)).squeeze(-1)
        entropy = -(log_probs.exp() * log_probs).sum(-1)
        return -(chosen * advantages).mean() - 0.1 * entropy.mean()

    return loss


@pytest.fixture(scope="module")
def network() -> tuple[nn.Module, tuple, torch.Tensor]:
    """The policy, its (obs, actions, advantages) and the exact flattened Hessian: (dim, dim)."""
    policy = _policy()
    obs, actions, advantages = _rollout()
    loss = _policy_gradient_loss(actions, advantages)
    names = [name for name, _ in policy.named_parameters()]
    values = tuple(p.detach() for p in policy.parameters())

    def loss_of_tuple(*tensors: torch.Tensor) -> torch.Tensor:
        return loss(torch.func.functional_call(policy, dict(zip(names, tensors)), (obs,)))

    blocks = torch.autograd.functional.hessian(loss_of_tuple, values)
    sizes = [v.numel() for v in values]
    rows = [
        torch.cat([blocks[i][j].reshape(sizes[i], sizes[j]) for j in range(len(sizes))], dim=1)
        for i in range(len(sizes))
    ]
    dense = torch.cat(rows)
    return policy, (obs, actions, advantages), dense


# --- Hutchinson ------------------------------------------------------------------------------------


def test_hutchinson_is_exact_on_a_diagonal_matrix():
    # z_iᵀ D z_i = Σ d_i z_i² = tr D for every ±1 probe: zero variance.
    diagonal = torch.linspace(-1.0, 4.0, 30, dtype=F64)
    result = hutchinson_trace(lambda v: diagonal * v, 30, 5, seed=0, dtype=F64)
    assert result.estimate == pytest.approx(diagonal.sum().item(), abs=1e-12)
    assert result.std_error == pytest.approx(0.0, abs=1e-12)
    assert result.num_matvecs == 5 and len(result.samples) == 5


def test_hutchinson_matches_the_trace_and_its_variance():
    matrix = _symmetric(torch.linspace(-2.0, 3.0, 20).tolist(), seed=0)
    result = hutchinson_trace(_matvec(matrix), 20, 2000, seed=1, dtype=F64)
    assert abs(result.estimate - matrix.trace().item()) < 4 * result.std_error
    # Rademacher variance 2(‖A‖_F² − Σ A_ii²): the reported std error must estimate it.
    variance = 2 * (matrix.square().sum() - matrix.diagonal().square().sum()).item()
    assert result.std_error == pytest.approx(math.sqrt(variance / 2000), rel=0.15)
    assert sum(result.samples) / 2000 == pytest.approx(result.estimate)


def test_hutchinson_is_deterministic_for_a_seed():
    matrix = _symmetric([1.0, -2.0, 3.0, 0.5, 2.0], seed=3)
    first = hutchinson_trace(_matvec(matrix), 5, 10, seed=7, dtype=F64)
    assert first == hutchinson_trace(_matvec(matrix), 5, 10, seed=7, dtype=F64)
    assert first.samples != hutchinson_trace(_matvec(matrix), 5, 10, seed=8, dtype=F64).samples


# --- Hutch++ ---------------------------------------------------------------------------------------


def test_hutchpp_is_exact_when_the_sketch_spans_the_range():
    # rank 5 <= ⌈18/3⌉ = 6: Q holds the whole range, so the deflated remainder is zero.
    matrix = _symmetric([5.0, -3.0, 2.0, 1.0, 0.5] + [0.0] * 45, seed=4)
    result = hutchpp_trace(_matvec(matrix), 50, 18, seed=0, dtype=F64)
    assert result.estimate == pytest.approx(matrix.trace().item(), abs=1e-10)
    assert result.std_error == pytest.approx(0.0, abs=1e-10)
    assert result.num_matvecs == 18 and len(result.samples) == 6


def test_hutchpp_is_unbiased_within_its_std_error():
    # A flat spectrum leaves most of the trace (~2/3 here) to the sampled remainder.
    matrix = _symmetric(torch.linspace(1.0, 2.0, 300).tolist(), seed=5)
    result = hutchpp_trace(_matvec(matrix), 300, 300, seed=2, dtype=F64)
    assert 0 < result.std_error < 0.02 * matrix.trace().item()
    assert abs(result.estimate - matrix.trace().item()) < 4 * result.std_error
    assert result.num_matvecs == 300 and len(result.samples) == 100


def test_hutchpp_is_exact_when_the_sketch_exceeds_dim():
    # ⌈300/3⌉ = 100 > dim = 40: Q is a full basis; H Q needs only 40 matvecs.
    matrix = _symmetric(torch.linspace(-1.0, 2.0, 40).tolist(), seed=5)
    result = hutchpp_trace(_matvec(matrix), 40, 300, seed=2, dtype=F64)
    assert result.estimate == pytest.approx(matrix.trace().item(), abs=1e-10)
    assert result.num_matvecs == 100 + 40 + 100


def test_hutchpp_counts_the_extra_matvec_of_its_split():
    # m = 31: ⌈31/3⌉ = 11 sketch columns, used twice, and ⌊31/3⌋ = 10 probes.
    matrix = _symmetric(torch.linspace(0.0, 1.0, 40).tolist(), seed=6)
    calls = []

    def counting(v: torch.Tensor) -> torch.Tensor:
        calls.append(1)
        return matrix @ v

    result = hutchpp_trace(counting, 40, 31, seed=0, dtype=F64)
    assert result.num_matvecs == len(calls) == 32
    assert len(result.samples) == 10


def test_hutchpp_beats_hutchinson_on_a_decaying_spectrum():
    matrix = _symmetric([1.0 / i**2 for i in range(1, 101)], seed=0)
    exact = matrix.trace().item()
    seeds = range(50)
    mse = {
        estimator.__name__: sum(
            (estimator(_matvec(matrix), 100, 30, seed, dtype=F64).estimate - exact) ** 2 for seed in seeds
        ) / len(seeds)
        for estimator in (hutchinson_trace, hutchpp_trace)
    }
    # Measured: Hutchinson ≈ 7.8e-2, Hutch++ ≈ 1.4e-4 (about 575x lower).
    assert mse["hutchpp_trace"] < mse["hutchinson_trace"] / 50


# --- truncated trace (stochastic Lanczos quadrature) -------------------------------------------------


def test_truncated_trace_equals_hutchinson_on_the_positive_part():
    # dim <= lanczos_steps: the quadrature is exact, so each sample is zᵀH⁺z for the same probes.
    matrix = _symmetric([-3.0, -1.0, -0.5, 0.2, 1.0, 2.5, 4.0, -2.0, 0.0, 1.5], seed=7)
    slq = truncated_trace(_matvec(matrix), 10, 10 * 40, seed=3, lanczos_steps=30, dtype=F64)
    reference = hutchinson_trace(_matvec(_positive_part(matrix)), 10, 40, seed=3, dtype=F64)
    assert slq.samples == pytest.approx(reference.samples, abs=1e-9)
    assert slq.num_matvecs == 400
    exact = 0.2 + 1.0 + 2.5 + 4.0 + 1.5
    assert abs(slq.estimate - exact) < 4 * slq.std_error
    assert abs(slq.estimate - matrix.trace().item()) > 4 * slq.std_error


def test_truncated_trace_is_zero_for_a_negative_definite_matrix():
    matrix = _symmetric([-1.0, -2.0, -3.0, -0.1], seed=8)
    result = truncated_trace(_matvec(matrix), 4, 12, seed=0, dtype=F64)
    assert result.estimate == pytest.approx(0.0, abs=1e-12)


def test_truncated_trace_with_fewer_steps_than_dim():
    eigenvalues = torch.linspace(-2.0, 3.0, 200)
    matrix = _symmetric(eigenvalues.tolist(), seed=1)
    result = truncated_trace(_matvec(matrix), 200, 20 * 40, seed=0, lanczos_steps=20, dtype=F64)
    exact = eigenvalues.clamp(min=0).sum().item()  # 180.6; the full trace is 100
    assert result.num_matvecs == 800
    assert abs(result.estimate - exact) < 4 * result.std_error + 0.02 * exact


def test_truncated_trace_stops_at_an_invariant_subspace():
    # Two distinct eigenvalues: every Krylov space has dimension <= 2, so Lanczos stops early.
    matrix = _symmetric([2.0] * 10 + [-1.0] * 10, seed=9)
    result = truncated_trace(_matvec(matrix), 20, 20 * 6, seed=0, lanczos_steps=30, dtype=F64)
    assert len(result.samples) == 6 and result.num_matvecs == 6 * 2
    assert abs(result.estimate - 20.0) < 4 * result.std_error + 1e-9


# --- top eigenvalue --------------------------------------------------------------------------------


def test_top_eigenvalue_is_the_largest_algebraic_one():
    # The most negative eigenvalue is larger in magnitude; Lanczos must return +3, not -10.
    matrix = _symmetric([-10.0, -5.0, 1.0, 2.0, 3.0] + torch.linspace(-1.0, 2.5, 45).tolist(), seed=2)
    expected = torch.linalg.eigvalsh(matrix)[-1].item()
    assert top_eigenvalue(_matvec(matrix), 50, 50, seed=0, dtype=F64) == pytest.approx(expected, rel=1e-6)


def test_top_eigenvalue_stops_early_when_converged():
    matrix = _symmetric([100.0] + [1.0 / i for i in range(1, 200)], seed=3)
    calls = []

    def counting(v: torch.Tensor) -> torch.Tensor:
        calls.append(1)
        return matrix @ v

    assert top_eigenvalue(counting, 200, 100, seed=0, tol=1e-8, dtype=F64) == pytest.approx(100.0, rel=1e-8)
    assert len(calls) < 30


# --- Hessian-vector products of a network ----------------------------------------------------------


def test_hessian_vector_product_matches_the_dense_hessian(network):
    policy, (obs, actions, advantages), dense = network
    loss = _policy_gradient_loss(actions, advantages)
    params = dict(policy.named_parameters())
    matvec = hessian_vector_product(lambda p: loss(torch.func.functional_call(policy, p, (obs,))), params)
    assert (matvec.dim, matvec.dtype) == (dense.shape[0], F64)
    v = torch.randn(matvec.dim, generator=torch.Generator().manual_seed(0), dtype=F64)
    hv = matvec(v)
    torch.testing.assert_close(hv, dense @ v, rtol=1e-10, atol=1e-12)
    assert not hv.requires_grad


def test_module_hessian_vector_product_and_a_layer_block(network):
    policy, (obs, actions, advantages), dense = network
    loss = _policy_gradient_loss(actions, advantages)
    v = torch.randn(dense.shape[0], generator=torch.Generator().manual_seed(1), dtype=F64)
    full = module_hessian_vector_product(policy, loss, obs)
    torch.testing.assert_close(full(v), dense @ v, rtol=1e-10, atol=1e-12)
    # The last layer's weight is the block of rows/columns [16, 28) of the flattened Hessian.
    block = module_hessian_vector_product(policy, loss, obs, parameter_names=["2.weight"])
    assert block.dim == 12
    torch.testing.assert_close(block(v[16:28]), dense[16:28, 16:28] @ v[16:28], rtol=1e-10, atol=1e-12)


def test_estimators_on_the_network_hessian(network):
    policy, (obs, actions, advantages), dense = network
    matvec = module_hessian_vector_product(policy, _policy_gradient_loss(actions, advantages), obs)
    dim = matvec.dim  # 31: dtype and device of the probes come from the matvec
    hutchinson = hutchinson_trace(matvec, dim, 100, seed=0)
    assert abs(hutchinson.estimate - dense.trace().item()) < 4 * hutchinson.std_error
    slq = truncated_trace(matvec, dim, dim * 4, seed=0, lanczos_steps=dim)
    reference = hutchinson_trace(_matvec(_positive_part(dense)), dim, 4, seed=0, dtype=F64)
    assert slq.samples == pytest.approx(reference.samples, abs=1e-8)
    expected = torch.linalg.eigvalsh(dense)[-1].item()
    assert top_eigenvalue(matvec, dim, dim, seed=0) == pytest.approx(expected, rel=1e-6)


def test_flatten_and_unflatten_round_trip():
    tensors = {"a": torch.arange(6.0).reshape(2, 3), "b": torch.tensor([7.0])}
    vector = flatten(tensors)
    assert vector.tolist() == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 7.0]
    back = unflatten(vector, tensors)
    assert list(back) == ["a", "b"] and all(torch.equal(back[k], tensors[k]) for k in tensors)


# --- the bound of Theorem 1 ------------------------------------------------------------------------


def test_generalization_bound_value():
    # C · sqrt(tr · ‖W − W⁰‖² / n) = 2 · sqrt(4 · 9 / 36)
    assert generalization_bound(4.0, 9.0, 2.0, 36) == pytest.approx(2.0)
    assert generalization_bound(4.0, 9.0, 2.0, 144) == pytest.approx(1.0)
    assert generalization_bound(0.0, 9.0, 2.0, 36) == 0.0


# --- errors ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("estimator", "arguments", "keywords", "message"),
    [
        (hutchpp_trace, (4, 2, 0), {}, r"num_matvecs must be an integer >= 3 for Hutch\+\+, got 2"),
        (hutchinson_trace, (4, 0, 0), {}, r"num_matvecs must be an integer >= 1, got 0"),
        (hutchinson_trace, (0, 5, 0), {}, r"dim must be an integer >= 1, got 0"),
        (hutchinson_trace, (4, 5, -1), {}, r"seed must be an integer >= 0, got -1"),
        (hutchinson_trace, (4, 5, 1.5), {}, r"seed must be an integer >= 0, got 1.5"),
        (hutchinson_trace, (4, 5, 0), {"dtype": torch.int64}, r"dtype must be a floating dtype, got torch.int64"),
        (hutchinson_trace, (3, 5, 0), {}, r"matvec must return a tensor of shape \(3,\), got \(4,\)"),
        (truncated_trace, (4, 3, 0, 30), {}, r"num_matvecs must be an integer >= min\(lanczos_steps, dim\) = 4"),
        (truncated_trace, (4, 8, 0, 0), {}, r"lanczos_steps must be an integer >= 1, got 0"),
        (top_eigenvalue, (4, 0, 0), {}, r"iters must be an integer >= 1, got 0"),
        (top_eigenvalue, (4, 4, 0), {"tol": 0.0}, r"tol must be > 0, got 0.0"),
    ],
)
def test_estimator_errors(estimator, arguments, keywords, message):
    # Answers (4,) whatever it is given, so a dim of 3 gets the wrong shape back.
    def matvec(v: torch.Tensor) -> torch.Tensor:
        return 2.0 * torch.ones(4, dtype=v.dtype)

    with pytest.raises(ValueError, match=message):
        estimator(matvec, *arguments, **{"dtype": F64, **keywords})


@pytest.mark.parametrize("estimator", [hutchinson_trace, hutchpp_trace, truncated_trace, top_eigenvalue])
def test_non_finite_matvec_is_an_error(estimator):
    with pytest.raises(ValueError, match=r"matvec returned non-finite values \(nan or inf\)"):
        estimator(lambda v: v / 0.0, 4, 4, 0, dtype=F64)


def test_hessian_vector_product_errors(network):
    policy, (obs, actions, advantages), _ = network
    loss = _policy_gradient_loss(actions, advantages)
    with pytest.raises(ValueError, match="params is empty"):
        hessian_vector_product(lambda p: torch.tensor(0.0), {})
    with pytest.raises(ValueError, match=r"params\['b'\] must be a floating tensor, got dtype torch.int64"):
        hessian_vector_product(lambda p: p["a"].sum(), {"a": torch.ones(2), "b": torch.ones(2, dtype=torch.int64)})
    with pytest.raises(ValueError, match="params must share one dtype and device"):
        hessian_vector_product(lambda p: p["a"].sum(), {"a": torch.ones(2), "b": torch.ones(2, dtype=F64)})
    with pytest.raises(ValueError, match=r"loss_fn must return a 0-dim tensor \(a scalar loss\), got \(2,\)"):
        hessian_vector_product(lambda p: p["a"] ** 2, {"a": torch.ones(2)})
    with pytest.raises(ValueError, match="loss_fn returned a non-finite loss at params: inf"):
        hessian_vector_product(lambda p: (p["a"] / 0.0).sum(), {"a": torch.ones(2)})
    matvec = module_hessian_vector_product(policy, loss, obs)
    with pytest.raises(ValueError, match=r"v must have shape \(31,\), got \(30,\)"):
        matvec(torch.zeros(30, dtype=F64))
    with pytest.raises(ValueError, match="v must be torch.float64 on cpu, got torch.float32 on cpu"):
        matvec(torch.zeros(31))
    with pytest.raises(ValueError, match=r"parameter_names \['3.weight'\] are not parameters of the module"):
        module_hessian_vector_product(policy, loss, obs, parameter_names=["0.weight", "3.weight"])
    with pytest.raises(ValueError, match="parameter_names must not repeat a name"):
        module_hessian_vector_product(policy, loss, obs, parameter_names=["0.bias", "0.bias"])
    with pytest.raises(ValueError, match=r"vector must have shape \(31,\) to unflatten, got \(3,\)"):
        unflatten(torch.zeros(3), dict(policy.named_parameters()))


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ((-1.0, 9.0, 2.0, 36), r"trace must be finite and >= 0, got -1.0"),
        ((4.0, -0.5, 2.0, 36), r"distance_sq must be finite and >= 0, got -0.5"),
        ((math.nan, 9.0, 2.0, 36), r"trace must be finite and >= 0, got nan"),
        ((4.0, 9.0, 0.0, 36), r"loss_range must be finite and > 0, got 0.0"),
        ((4.0, 9.0, 2.0, 0), r"num_samples must be an integer >= 1, got 0"),
        ((4.0, 9.0, 2.0, 3.5), r"num_samples must be an integer >= 1, got 3.5"),
    ],
)
def test_generalization_bound_errors(arguments, message):
    with pytest.raises(ValueError, match=message):
        generalization_bound(*arguments)


def test_trace_estimate_is_frozen():
    result = TraceEstimate(estimate=1.0, std_error=0.1, num_matvecs=3, samples=(1.0, 0.9, 1.1))
    with pytest.raises(AttributeError):
        result.estimate = 2.0


# --- CUDA ------------------------------------------------------------------------------------------


@pytest.mark.cuda
def test_estimators_run_on_cuda_with_the_same_probes(network):
    policy, (obs, actions, advantages), _ = network
    loss = _policy_gradient_loss(actions, advantages)
    on_cpu = module_hessian_vector_product(policy, loss, obs)
    on_gpu = module_hessian_vector_product(
        _policy().cuda(), _policy_gradient_loss(actions.cuda(), advantages.cuda()), obs.cuda()
    )
    assert on_gpu.device.type == "cuda"
    for estimator in (hutchinson_trace, hutchpp_trace):
        cpu, gpu = estimator(on_cpu, 31, 12, 0), estimator(on_gpu, 31, 12, 0)
        assert gpu.samples == pytest.approx(cpu.samples, rel=1e-9, abs=1e-12)
    slq_cpu, slq_gpu = truncated_trace(on_cpu, 31, 62, 0), truncated_trace(on_gpu, 31, 62, 0)
    assert slq_gpu.estimate == pytest.approx(slq_cpu.estimate, rel=1e-8)
    assert top_eigenvalue(on_gpu, 31, 31, 0) == pytest.approx(top_eigenvalue(on_cpu, 31, 31, 0), rel=1e-8)
