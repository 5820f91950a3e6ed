"""Speed of MAML's meta-gradient: one ``vmap`` over the meta-batch vs a Python loop over its tasks.

Both compute the same second-order meta-gradient (``pgx.algos.maml``; the test suite checks they
agree) on the same batches: a 4-layer 64-wide Categorical actor on CartPole's 4-dimensional
observations, one inner step, at two shapes: 10 tasks × 10 episodes × 200 steps (the default
profile's meta-batch) and 40 tasks × 2 episodes × 50 steps (many small tasks, where a loop's
per-task overhead weighs most). First-order mode is timed too.
Run by hand: ``python benchmarks/bench_maml.py``.
"""

from __future__ import annotations

import torch
from _timing import best_time

from pgx.algos.maml import meta_gradient, meta_gradient_loop
from pgx.nets.policies import PolicyConfig, make_actor

SHAPES = ((10, 10, 200), (40, 2, 50))
"""(tasks, episodes, steps) of the meta-batches timed."""
OBS, ACTIONS = 4, 2


def batch(tasks: int, episodes: int, steps: int, seed: int) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    obs = torch.randn(tasks, episodes, steps, OBS, generator=g)
    actions = torch.randint(ACTIONS, (tasks, episodes, steps), generator=g)
    advantages = torch.randn(tasks, episodes, steps, generator=g)
    lengths = torch.randint(steps // 4, steps + 1, (tasks, episodes), generator=g)
    mask = torch.arange(steps) < lengths[..., None]  # padded episodes, as collected
    return obs, actions, advantages * mask, mask


def main() -> None:
    torch.manual_seed(0)
    actor = make_actor(OBS, ACTIONS, PolicyConfig())
    params = {k: p.detach() for k, p in actor.named_parameters()}
    print(f"{sum(p.numel() for p in params.values())} parameters, {torch.get_num_threads()} threads, "
          f"torch {torch.__version__}")
    for shape in SHAPES:
        inner, outer = [batch(*shape, seed=1)], batch(*shape, seed=2)
        for first_order in (False, True):
            fast = best_time(lambda: meta_gradient(actor, params, inner, outer, 0.1, first_order), repeats=3)
            slow = best_time(lambda: meta_gradient_loop(actor, params, inner, outer, 0.1, first_order), repeats=3)
            kind = "first order" if first_order else "second order"
            print(f"{shape[0]} tasks × {shape[1]} episodes × ≤{shape[2]} steps, {kind:>12}: vmap {fast * 1e3:7.1f} ms, "
                  f"loop {slow * 1e3:7.1f} ms, ratio {slow / fast:.2f}×")


if __name__ == "__main__":
    main()
