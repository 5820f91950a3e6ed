"""Every multitask architecture: shapes, gradients, task conditioning, determinism, input checks."""

import pytest
import torch
from torch.func import functional_call, grad, vmap

from pgx.nets import (
    KINDS,
    ArchConfig,
    make_network,
    param_count,
    tfidf_embeddings,
)

N_TASKS, OBS_DIM, OUT_DIM = 4, 6, 3
IN_DIM = OBS_DIM + N_TASKS
TEXTS = ["drawer open", "drawer close", "door open", "window close"]


def _cfg(kind: str, **changes) -> ArchConfig:
    return ArchConfig(**{"kind": kind, "hidden": 16, "layers": 3, "modules": 3, **changes})


def _batch(rows_per_task: int = 2, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``x`` = observation ‖ one-hot and the one-hot ``task``, every task present."""
    g = torch.Generator().manual_seed(seed)
    task = torch.eye(N_TASKS).repeat_interleave(rows_per_task, dim=0)
    obs = torch.randn(task.shape[0], OBS_DIM, generator=g)
    return torch.cat([obs, task], dim=1), task


def _net(kind: str, **changes):
    torch.manual_seed(0)
    return make_network(_cfg(kind, **changes), IN_DIM, OUT_DIM, N_TASKS, task_texts=TEXTS if kind == "care" else None)


@pytest.mark.parametrize("kind", KINDS)
def test_each_row_is_computed_on_its_own(kind):
    """The batch gives what the rows give one at a time: no architecture mixes rows (a wrong einsum index would)."""
    net = _net(kind, output_std=1.0)
    x, task = _batch()
    out = net(x, task)
    assert out.shape == (x.shape[0], OUT_DIM)
    torch.testing.assert_close(out, torch.cat([net(x[i : i + 1], task[i : i + 1]) for i in range(len(x))]))


@pytest.mark.parametrize("kind", KINDS)
def test_unknown_task_gives_the_documented_output(kind):
    net = _net(kind, output_std=1.0)
    x, task = _batch()
    unknown = torch.zeros_like(task)
    out = net(x, unknown)
    assert torch.isfinite(out).all()
    if kind == "mlp":  # the task reaches it only through the one-hot inside x
        torch.testing.assert_close(out, net(x, task))
    elif kind in ("multihead", "paco"):  # no head, or all-zero composed parameters: zeros
        torch.testing.assert_close(out, torch.zeros_like(out), rtol=0, atol=0)
    elif kind == "softmod":  # no task embedding, and routing biases start at 0: uniform routes
        for route in net.routing(x, unknown):
            torch.testing.assert_close(route, torch.full_like(route, 1 / route.shape[-1]))
    else:  # care: a zero context, and attention biases start at 0: uniform attention over encoders
        torch.testing.assert_close(net.context(unknown), torch.zeros(len(x), net.attention.in_features))
        attention = torch.softmax(net.attention(net.context(unknown)), -1)
        torch.testing.assert_close(attention, torch.full_like(attention, 1 / net.attention.out_features))


@pytest.mark.parametrize("kind,layers", [(k, 3) for k in KINDS] + [("softmod", 2), ("softmod", 4), ("care", 2),
                                                                    ("mlp", 1), ("multihead", 1), ("paco", 1)])
def test_gradients_reach_every_parameter(kind, layers):
    net = _net(kind, layers=layers)
    x, task = _batch()
    net(x, task).pow(2).sum().backward()
    for name, p in net.named_parameters():
        assert p.grad is not None, name
        assert p.grad.abs().sum() > 0, name


@pytest.mark.parametrize("kind", KINDS)
def test_task_changes_the_output(kind):
    net = _net(kind, output_std=1.0)
    x, task = _batch(rows_per_task=1)
    other = task.roll(1, dims=0)  # each row now labelled with another task
    if kind == "mlp":  # its only channel for the task is the one-hot inside x
        x_other = torch.cat([x[:, :OBS_DIM], other], dim=1)
    else:  # x stays fixed: the task must act through ``task`` alone
        x_other = x
    difference = (net(x, task) - net(x_other, other)).abs().amax(dim=1)
    assert (difference > 1e-4).all(), difference


@pytest.mark.parametrize("kind", KINDS)
def test_initialisation_is_determined_by_the_seed(kind):
    first, second = _net(kind), _net(kind)
    assert param_count(first) > 0
    for (name, a), (_, b) in zip(first.named_parameters(), second.named_parameters()):
        assert torch.equal(a, b), name


@pytest.mark.parametrize("kind", KINDS)
def test_actor_output_starts_small(kind):
    x, task = _batch()
    assert _net(kind)(x, task).abs().max() < 0.5


@pytest.mark.parametrize("kind", KINDS)
def test_bad_inputs_are_rejected(kind):
    net = _net(kind)
    x, task = _batch()
    with pytest.raises(ValueError, match=rf"x must have shape \(batch, {IN_DIM}\), got \(8, {IN_DIM - 1}\)"):
        net(x[:, 1:], task)
    with pytest.raises(ValueError, match=rf"task must have shape \(batch, {N_TASKS}\)"):
        net(x, task[:, 1:])
    with pytest.raises(ValueError, match=r"task must have shape"):
        net(x, task.argmax(1).float())
    with pytest.raises(ValueError, match="same batch size, got 8 and 7"):
        net(x, task[1:])
    with pytest.raises(ValueError, match="floating point"):
        net(x, task.long())


@pytest.mark.parametrize(
    "changes,match",
    [
        ({"kind": "resnet"}, "kind must be one of mlp, multihead, softmod, paco, care; got 'resnet'"),
        ({"hidden": 0}, "hidden must be an int >= 1, got 0"),
        ({"hidden": -3}, "hidden must be an int >= 1, got -3"),
        ({"hidden": 16.0}, r"hidden must be an int >= 1, got 16\.0"),
        ({"layers": 0}, "layers must be an int >= 1 for kind 'mlp', got 0"),
        ({"kind": "softmod", "layers": 1}, "layers must be an int >= 2 for kind 'softmod', got 1"),
        ({"kind": "care", "layers": 1}, "layers must be an int >= 2 for kind 'care', got 1"),
        ({"modules": 0}, "modules must be an int >= 1, got 0"),
        ({"output_std": 0.0}, "output_std must be a finite number > 0, got 0.0"),
    ],
)
def test_bad_configs_are_rejected(changes, match):
    with pytest.raises(ValueError, match=match):
        ArchConfig(**changes)


def test_one_module_routing_warns():
    with pytest.warns(UserWarning, match="modules=1 with kind 'softmod'"):
        ArchConfig(kind="softmod", modules=1)


@pytest.mark.parametrize("kind", KINDS)
def test_task_texts_of_wrong_length_are_rejected(kind):
    with pytest.raises(ValueError, match=r"task_texts must hold one string per task \(4\)"):
        make_network(_cfg(kind), IN_DIM, OUT_DIM, N_TASKS, task_texts=TEXTS[:3])
    with pytest.raises(ValueError, match=r"task_texts must hold one string per task \(4\)"):
        make_network(_cfg(kind), IN_DIM, OUT_DIM, N_TASKS, task_texts="drawer open")


def test_bad_dimensions_are_rejected():
    with pytest.raises(ValueError, match="n_tasks must be an int >= 1, got 0"):
        make_network(_cfg("mlp"), IN_DIM, OUT_DIM, 0)


def test_tfidf_cosine_follows_shared_words():
    embeddings = tfidf_embeddings(["drawer open", "drawer close", "window close", "push button"])
    cosine = embeddings @ embeddings.T
    torch.testing.assert_close(cosine.diagonal(), torch.ones(4))
    assert cosine[0, 1] > 0 and cosine[1, 2] > 0  # "drawer", "close" shared
    assert cosine[0, 2] == 0 and cosine[0, 3] == 0  # no word shared
    with pytest.raises(ValueError, match="no word of two or more characters"):
        tfidf_embeddings(["a", "b"])
    with pytest.raises(ValueError, match="must be strings"):
        tfidf_embeddings(["drawer open", None])


def test_care_metadata_is_a_frozen_buffer():
    net = _net("care")
    assert "metadata" in dict(net.named_buffers()) and "metadata" not in dict(net.named_parameters())
    torch.testing.assert_close(net.metadata, tfidf_embeddings(TEXTS))
    one_hot = make_network(_cfg("care"), IN_DIM, OUT_DIM, N_TASKS)
    torch.testing.assert_close(one_hot.metadata, torch.eye(N_TASKS))


def test_multihead_uses_the_rows_own_head():
    net = _net("multihead")
    x, task = _batch()
    features = net.trunk(x)
    expected = torch.stack([net.heads[t](features[i]) for i, t in enumerate(task.argmax(1).tolist())])
    torch.testing.assert_close(net(x, task), expected)


def test_paco_rows_use_their_tasks_composed_parameters():
    net = _net("paco")
    x, task = _batch()
    expected = []
    for row, t in zip(x, task.argmax(1).tolist()):
        h = row
        for i, (weight, bias) in enumerate(net.composed_parameters(t)):
            h = weight @ h + bias
            h = torch.relu(h) if i < len(net.weights) - 1 else h
        expected.append(h)
    torch.testing.assert_close(net(x, task), torch.stack(expected))


@pytest.mark.parametrize("kind", KINDS)
def test_per_sample_gradients_match_a_loop(kind):
    """``torch.func`` (functional_call + vmap(grad)) agrees with one backward pass per row; PaCo's
    parameters are not ``nn.Linear`` layers, so this is the path its per-sample gradients take."""
    net = _net(kind).double()
    x, task = _batch(rows_per_task=2)
    x, task = x[:5].double(), task[:5].double()
    params = {name: p.detach() for name, p in net.named_parameters()}

    def loss(params, x_row, task_row):
        return functional_call(net, params, (x_row[None], task_row[None])).pow(2).sum()

    batched = vmap(grad(loss), in_dims=(None, 0, 0))(params, x, task)
    for i in range(5):
        net.zero_grad()
        net(x[i : i + 1], task[i : i + 1]).pow(2).sum().backward()
        for name, p in net.named_parameters():
            torch.testing.assert_close(batched[name][i], p.grad, atol=1e-5, rtol=0)
