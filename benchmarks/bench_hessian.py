"""Speed of one Hessian-vector product of the policy-gradient loss, and accuracy per matvec.

1. ``module_hessian_vector_product`` (``torch.func`` forward-over-reverse, ``jvp`` of ``grad``) vs
   PyHessian's double backward (``autograd.grad`` of the gradient built with ``create_graph``),
   which rebuilds the graph on every call just as PyHessian's dataloader path does;
2. Hutch++ vs Hutchinson at the same number of matvecs on the actor's own Hessian: the spread of
   the estimate over seeds. Hutch++ only wins when the spectrum decays; an untrained actor's
   Hessian is flat, and there Hutchinson's 3x more remainder probes give it the smaller spread.

Actors: obs_dim 14, 4 actions, four linear layers of width 64 (~9.5k parameters) or 256 (~136k),
1024 stored samples. Run by hand: ``python benchmarks/bench_hessian.py``. Times are the best of a
few repeats after a warm-up; a ratio above 1 means the method is faster than its baseline.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable

import torch

from pgx.hessian import (
    flatten,
    hutchinson_trace,
    hutchpp_trace,
    module_hessian_vector_product,
    unflatten,
)
from pgx.nets.policies import Actor, CategoricalActor, PolicyConfig
from _timing import best_time

OBS_DIM, NUM_ACTIONS, SAMPLES = 14, 4, 1024
NUM_MATVECS, SEEDS = 30, 5


def policy_gradient_loss(
    actions: torch.Tensor, advantages: torch.Tensor
) -> Callable[[torch.Tensor], torch.Tensor]:
    """logits -> -(log π(a|s) · Â).mean()."""

    def loss(logits: torch.Tensor) -> torch.Tensor:
        chosen = torch.log_softmax(logits, dim=-1).gather(-1, actions.unsqueeze(-1)).squeeze(-1)
        return -(chosen * advantages).mean()

    return loss


def double_backward(
    actor: Actor, loss: Callable[[torch.Tensor], torch.Tensor], obs: torch.Tensor
) -> Callable[[torch.Tensor], torch.Tensor]:
    """The baseline matvec: H v = ∂(∇L · v)/∂θ with ``create_graph=True``."""
    names = [name for name, _ in actor.named_parameters()]

    def matvec(v: torch.Tensor) -> torch.Tensor:
        params = [p.detach().requires_grad_() for p in actor.parameters()]
        value = loss(torch.func.functional_call(actor, dict(zip(names, params)), (obs,)))
        grads = torch.autograd.grad(value, params, create_graph=True)
        tangents = list(unflatten(v, dict(zip(names, params))).values())
        return flatten(dict(zip(names, torch.autograd.grad(grads, params, grad_outputs=tangents))))

    return matvec


def main() -> None:
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {SAMPLES} samples")
    for hidden in (64, 256):
        generator = torch.Generator().manual_seed(0)
        with torch.random.fork_rng():
            torch.manual_seed(hidden)
            actor = CategoricalActor(OBS_DIM, NUM_ACTIONS, PolicyConfig(hidden=hidden, layers=4))
        obs = torch.randn(SAMPLES, OBS_DIM, generator=generator)
        actions = torch.randint(0, NUM_ACTIONS, (SAMPLES,), generator=generator)
        advantages = torch.randn(SAMPLES, generator=generator)
        loss = policy_gradient_loss(actions, advantages)
        method = module_hessian_vector_product(actor, loss, obs)
        baseline = double_backward(actor, loss, obs)
        v = torch.randn(method.dim, generator=generator)
        error = float((method(v) - baseline(v)).abs().max() / baseline(v).abs().max())
        method_s, baseline_s = best_time(lambda: method(v), 5), best_time(lambda: baseline(v), 5)
        print(
            f"{hidden}x4 (p = {method.dim}): forward-over-reverse {1e3 * method_s:.1f} ms vs double "
            f"backward {1e3 * baseline_s:.1f} ms per H v, ratio {baseline_s / method_s:.2f}, "
            f"max relative difference {error:.1e}"
        )
        for estimator in (hutchinson_trace, hutchpp_trace):
            estimates = [estimator(method, method.dim, NUM_MATVECS, seed).estimate for seed in range(SEEDS)]
            print(
                f"    {estimator.__name__:<16} m = {NUM_MATVECS}: mean {statistics.mean(estimates):.4g}, "
                f"std over {SEEDS} seeds {statistics.stdev(estimates):.2g}"
            )


if __name__ == "__main__":
    main()
