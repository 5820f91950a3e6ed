"""``projected_grads`` at scale (issue 12): bounded memory, and the same numbers as before.

The fast path now projects chunks in passes bounded by ``held_bytes`` instead of gathering every
chunk's activations and non-Linear per-sample gradients first, and draws P's blocks without a
copy. ``_projected_grads_before`` and ``_block_before`` are the code as it stood before that change
(the per-chunk inputs still come from the unchanged ``_linear_calls`` and ``_vmap_grads``); the new
path must reproduce them bit for bit.
"""

from __future__ import annotations

import hashlib
import math
import weakref

import pytest
import torch
from torch import nn

from pgx import gradients
from pgx.algos.sac import TanhGaussianActor
from pgx.gradients import GaussianProjector, per_sample_grads_loop, projected_grads
from pgx.nets import ArchConfig, make_network
from pgx.nets.policies import CategoricalActor, GaussianActor, PolicyConfig

# --- the frozen oracle -------------------------------------------------------------------------


def _projected_grads_before(actor, obs, actions, projector, chunk_size=1024):
    """``projected_grads`` before issue 12 (commit 513c286): all chunks gathered, then projected."""
    n = gradients._check_batch(actor, obs, actions)
    named = list(actor.named_parameters())
    index = {id(p): t for t, (_, p) in enumerate(named)}
    linear_owned = {
        index[id(p)]
        for m in actor.modules()
        if isinstance(m, nn.Linear) and id(m.weight) in index
        for p in (m.weight, m.bias)
        if id(p) in index
    }
    other_names = [named[t][0] for t in range(len(named)) if t not in linear_owned]
    chunks = [slice(i, min(i + chunk_size, n)) for i in range(0, n, chunk_size)]
    calls = [gradients._linear_calls(actor, obs[c], actions[c], index) for c in chunks]
    others = [gradients._vmap_grads(actor, obs[c], actions[c], other_names) if other_names else {} for c in chunks]
    theta = named[0][1]
    out = torch.zeros(n, projector.dim, dtype=theta.dtype, device=theta.device)
    for t, start, stop in projector.block_ranges():
        block = _block_before(projector, t, start, stop).to(out)
        for c, chunk_calls, chunk_others in zip(chunks, calls, others):
            if t not in linear_owned:
                entries = chunk_others[named[t][0]].reshape(c.stop - c.start, -1)[:, start:stop]
                out[c].addmm_(entries, block)
                continue
            for call in chunk_calls:
                if call.weight == t:
                    out[c].addmm_(_weight_grad_entries_before(call, start, stop), block)
                if call.bias == t:
                    out[c].addmm_(call.errors.sum(1)[:, start:stop], block)
    gradients._check_finite(out)
    return out


def _block_before(projector, t, start, stop):
    """Rows ``start:stop`` of P for tensor ``t`` as ``GaussianProjector.block`` drew them before issue 12."""
    first, last = start // projector.block_rows, (stop - 1) // projector.block_rows
    blocks = []
    for b in range(first, last + 1):
        digest = hashlib.sha256(f"pgx-jl:{projector.seed}:{t}:{b}".encode()).digest()
        generator = torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") >> 1)
        rows = min(projector.block_rows, projector.sizes[t] - b * projector.block_rows)
        gaussian = torch.randn(rows, projector.dim, generator=generator, dtype=torch.float32, device="cpu")
        blocks.append(gaussian / math.sqrt(projector.dim))
    offset = first * projector.block_rows
    return torch.cat(blocks)[start - offset : stop - offset]


def _weight_grad_entries_before(call, start, stop):
    in_features = call.inputs.shape[-1]
    first, last = start // in_features, -(-stop // in_features)
    rows = torch.einsum("nko,nki->noi", call.errors[:, :, first:last], call.inputs).flatten(1)
    return rows[:, start - first * in_features : stop - first * in_features]


# --- actors ------------------------------------------------------------------------------------


class _MixedActor(nn.Module):
    """A non-Linear parameter before, between and after the ``nn.Linear`` ones, a layer called twice
    on ``(N, K, in)`` inputs, a bias-free head: every interleaving the fast path must keep in order."""

    def __init__(self):
        super().__init__()
        self.log_std = nn.Parameter(torch.linspace(-0.5, 0.3, 2))
        self.embed = nn.Linear(3, 4)
        self.gain = nn.Parameter(torch.linspace(0.5, 1.5, 4))
        self.head = nn.Linear(4, 2, bias=False)
        self.temperature = nn.Parameter(torch.tensor(0.7))

    def log_prob(self, obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        hidden = torch.tanh(self.embed(obs))  # (N, K, 4)
        hidden = (torch.tanh(self.embed(hidden[..., :3])) * self.gain).mean(1)
        z = (actions - self.head(hidden) * self.temperature) / self.log_std.exp()
        return (-0.5 * z**2 - self.log_std).sum(-1)


def _seeded(seed, build):
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return build()


def _sac_actor(kind: str, hidden: int, obs_dim: int = 6, n_tasks: int = 3, action_dim: int = 2):
    net = make_network(ArchConfig(kind=kind, hidden=hidden, layers=3, modules=3), obs_dim + n_tasks, 2 * action_dim, n_tasks)
    return TanhGaussianActor(net, n_tasks, action_dim)


def _sac_batch(n: int, seed: int, obs_dim: int = 6, n_tasks: int = 3, action_dim: int = 2, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    one_hot = torch.eye(n_tasks, dtype=dtype)[torch.randint(0, n_tasks, (n,), generator=g)]
    obs = torch.cat([torch.randn(n, obs_dim, generator=g, dtype=dtype), one_hot], dim=1)
    return obs, torch.randn(n, action_dim, generator=g, dtype=dtype)


CASES = {
    # name: (actor builder, batch builder)
    "categorical-16x4-f32": (
        lambda: _seeded(0, lambda: CategoricalActor(14, 4, PolicyConfig(hidden=16, layers=4))),
        lambda: (torch.randn(30, 14, generator=torch.Generator().manual_seed(1)),
                 torch.randint(0, 4, (30,), generator=torch.Generator().manual_seed(2))),
    ),
    "gaussian-f64": (
        lambda: _seeded(3, lambda: GaussianActor(4, 2, PolicyConfig(hidden=6, layers=3, init_log_std=-0.3))).double(),
        lambda: (torch.randn(10, 4, generator=torch.Generator().manual_seed(4), dtype=torch.float64),
                 torch.randn(10, 2, generator=torch.Generator().manual_seed(5), dtype=torch.float64)),
    ),
    "mixed-interleaved-f64": (
        lambda: _seeded(6, _MixedActor).double(),
        lambda: (torch.randn(10, 3, 3, generator=torch.Generator().manual_seed(7), dtype=torch.float64),
                 torch.randn(10, 2, generator=torch.Generator().manual_seed(8), dtype=torch.float64)),
    ),
    "sac-mlp-f32": (lambda: _seeded(9, lambda: _sac_actor("mlp", 32)), lambda: _sac_batch(40, 10)),
    "sac-paco-f32": (lambda: _seeded(11, lambda: _sac_actor("paco", 16)), lambda: _sac_batch(40, 12)),
}


# --- bit-identity with the path before issue 12 ------------------------------------------------


@pytest.mark.parametrize("name", list(CASES))
@pytest.mark.parametrize(
    "chunk_size, block_rows, held_bytes",
    [(1024, 8192, 1 << 30), (4, 7, 1 << 30), (4, 7, 0), (3, 5, 2_000)],
    ids=["defaults", "one-pass", "pass-per-chunk", "few-chunks-per-pass"],
)
def test_same_bits_as_before_whatever_the_passes(name, chunk_size, block_rows, held_bytes):
    build, batch = CASES[name]
    _check_same_bits(build(), *batch(), chunk_size, block_rows, held_bytes)


@pytest.mark.parametrize("held_bytes", [0, 1 << 30])
def test_same_bits_as_before_at_the_benchmark_width(held_bytes):
    # The features stage's shape: float32, 64-wide 4-layer MLP, several full chunks and a partial one.
    actor = _seeded(22, lambda: CategoricalActor(14, 4, PolicyConfig(hidden=64, layers=4)))
    g = torch.Generator().manual_seed(23)
    obs, actions = torch.randn(300, 14, generator=g), torch.randint(0, 4, (300,), generator=g)
    _check_same_bits(actor, obs, actions, 128, 1000, held_bytes)


def _check_same_bits(actor, obs, actions, chunk_size, block_rows, held_bytes):
    projector = GaussianProjector.for_module(actor, 9, seed=13, block_rows=block_rows)
    before = _projected_grads_before(actor, obs, actions, projector, chunk_size)
    after = projected_grads(actor, obs, actions, projector, chunk_size, held_bytes=held_bytes)
    assert after.dtype == before.dtype and after.shape == before.shape
    assert torch.equal(after, before), f"max difference {float((after - before).abs().max()):.3e}"


def test_p_is_drawn_as_before():
    projector = GaussianProjector([(50, 3), (7,), (1, 1)], 6, seed=24, block_rows=16)
    for t, start, stop in [*projector.block_ranges(), (0, 5, 40), (0, 16, 32), (0, 149, 150), (1, 0, 7)]:
        assert torch.equal(projector.block(t, start, stop), _block_before(projector, t, start, stop))


def test_chunked_non_linear_path_equals_the_projected_per_sample_loop():
    # PaCo holds no nn.Linear: every per-sample gradient comes from the chunked torch.func path.
    actor = _seeded(14, lambda: _sac_actor("paco", 5)).double()
    obs, actions = _sac_batch(11, 15, dtype=torch.float64)
    projector = GaussianProjector.for_module(actor, 7, seed=16, block_rows=11)
    assert not any(isinstance(m, nn.Linear) for m in actor.modules())
    expected = projector.project(per_sample_grads_loop(actor, obs, actions))
    fast = projected_grads(actor, obs, actions, projector, chunk_size=3, held_bytes=0)
    torch.testing.assert_close(fast, expected, rtol=1e-10, atol=1e-12)


def test_non_linear_gradients_are_projected_pass_by_pass_not_gathered(monkeypatch):
    actor = _seeded(17, lambda: _sac_actor("paco", 8))
    obs, actions = _sac_batch(20, 18)
    projector = GaussianProjector.for_module(actor, 5, seed=19)
    p = projector.num_params
    chunk_bytes = 4 * p * 4  # chunk_size 4 samples × p float32 gradients
    alive_bytes_at_each_call = []
    held: list[weakref.ref] = []  # what chunks hold: the flattened per-sample gradients
    compute, flatten = gradients._vmap_grads, gradients._flat_grads

    def computing(*args):
        alive = [r() for r in held]
        alive_bytes_at_each_call.append(sum(x.numel() * x.element_size() for x in alive if x is not None))
        return compute(*args)

    def flattening(grads):
        result = flatten(grads)
        held.extend(weakref.ref(x) for x in result.values())
        return result

    monkeypatch.setattr(gradients, "_vmap_grads", computing)
    monkeypatch.setattr(gradients, "_flat_grads", flattening)
    bounded = projected_grads(actor, obs, actions, projector, chunk_size=4, held_bytes=2 * chunk_bytes)
    # A pass closes at 2 chunks: while the next chunk is computed, at most one earlier one is alive.
    assert len(alive_bytes_at_each_call) == 5
    assert max(alive_bytes_at_each_call) <= chunk_bytes
    assert alive_bytes_at_each_call == [0, chunk_bytes, 0, chunk_bytes, 0]

    # The counter sees gathering: one pass holds every chunk (the path before issue 12).
    alive_bytes_at_each_call.clear(), held.clear()
    gathered = projected_grads(actor, obs, actions, projector, chunk_size=4)
    assert alive_bytes_at_each_call == [i * chunk_bytes for i in range(5)]
    assert torch.equal(bounded, gathered)


# --- P is never held whole ----------------------------------------------------------------------


def _million_parameter_actor() -> CategoricalActor:
    # 4 layers of width 704 on 14 inputs and 4 actions: 1,006,020 parameters.
    return _seeded(20, lambda: CategoricalActor(14, 4, PolicyConfig(hidden=704, layers=4)))


def test_projector_blocks_at_a_million_parameters_stay_within_block_rows():
    shapes = [tuple(p.shape) for p in _million_parameter_actor().parameters()]
    projector = GaussianProjector(shapes, 400, seed=0)
    assert projector.num_params == 1_006_020
    ranges = list(projector.block_ranges())
    assert max(stop - start for _, start, stop in ranges) == projector.largest_block_shape[0] == 8192
    assert projector.largest_block_shape == (8192, 400)  # 12.5 MiB of float32, not 1.5 GiB
    covered = {t: 0 for t in range(len(shapes))}
    for t, start, stop in ranges:
        assert start == covered[t]  # contiguous and in order
        covered[t] = stop
    assert [covered[t] for t in range(len(shapes))] == list(projector.sizes)
    # The last, partial block of the largest tensor is generated at its own size.
    t = max(range(len(shapes)), key=lambda i: projector.sizes[i])
    last = (projector.sizes[t] - 1) // projector.block_rows
    assert projector._generated_block(t, last).shape == (projector.sizes[t] - last * 8192, 400)
    assert GaussianProjector([(3, 5), (2,)], 4, seed=0, block_rows=100).largest_block_shape == (15, 4)


def test_projected_grads_at_a_million_parameters_draws_p_block_by_block(monkeypatch):
    actor = _million_parameter_actor()
    projector = GaussianProjector.for_module(actor, 400, seed=0)
    draws, zeros = [], {}

    def recording_randn(*size, generator=None, dtype=None, device=None):
        # Zeros, one tensor per shape, stand in for the draws: this test is about shapes, the others
        # about values.
        draws.append(tuple(size))
        if size not in zeros:
            zeros[size] = torch.zeros(*size, dtype=dtype, device=device)
        return zeros[size]

    def refuse():
        raise AssertionError("projected_grads materialized P")

    g = torch.Generator().manual_seed(21)
    obs, actions = torch.randn(4, 14, generator=g), torch.randint(0, 4, (4,), generator=g)
    monkeypatch.setattr(torch, "randn", recording_randn)
    monkeypatch.setattr(projector, "materialize", refuse)
    blocks = len(list(projector.block_ranges()))

    projected_grads(actor, obs, actions, projector, chunk_size=2)
    assert len(draws) == blocks and max(rows for rows, _ in draws) <= 8192
    assert {cols for _, cols in draws} == {400} and sum(rows for rows, _ in draws) == projector.num_params

    # One chunk per pass: P is drawn once per pass, still one bounded block at a time.
    draws.clear()
    projected_grads(actor, obs, actions, projector, chunk_size=2, held_bytes=0)
    assert len(draws) == 2 * blocks and max(rows for rows, _ in draws) <= 8192
    assert sum(rows for rows, _ in draws) == 2 * projector.num_params


@pytest.mark.parametrize("held_bytes", [-1, 1.5, "1GB", True])
def test_held_bytes_must_be_a_non_negative_integer(held_bytes):
    actor = CASES["gaussian-f64"][0]()
    obs, actions = CASES["gaussian-f64"][1]()
    projector = GaussianProjector.for_module(actor, 3, seed=0)
    with pytest.raises(ValueError, match=r"held_bytes must be a non-negative integer, got"):
        projected_grads(actor, obs, actions, projector, held_bytes=held_bytes)

