"""Speed of the features stage: per-sample gradients and their projection.

Two comparisons, each measured in this process against its baseline:

1. ``per_sample_grads`` (``torch.func`` vmap) vs ``per_sample_grads_loop`` (one backward per sample);
2. ``projected_grads`` (outer products projected block by block, never ``N × p``) vs
   ``projector.project(per_sample_grads(...))``.

Actors: obs_dim 14, 4 actions, four linear layers of width 64 (~9.5k parameters) or 256 (~136k).
Run by hand: ``python benchmarks/bench_features.py``. Times are the best of a few repeats after a
warm-up; a ratio above 1 means the method is faster than its baseline.
"""

from __future__ import annotations


import torch

from pgx.gradients import GaussianProjector, per_sample_grads, per_sample_grads_loop, projected_grads
from pgx.nets.policies import CategoricalActor, PolicyConfig
from _timing import best_time

OBS_DIM, NUM_ACTIONS, DIM = 14, 4, 200
LOOP_SAMPLES, PROJECT_SAMPLES = 256, 1024
COLUMNS = (
    f"{'actor':>6} {'p':>7}  {'method vs baseline':<36} {'N':>5} "
    f"{'method s':>9} {'baseline s':>10} {'ratio':>6}"
)


def row(label: str, p: int, comparison: str, n: int, method_s: float, baseline_s: float) -> str:
    ratio = baseline_s / method_s
    return f"{label:>6} {p:>7}  {comparison:<36} {n:>5} {method_s:>9.3f} {baseline_s:>10.3f} {ratio:>6.1f}"


def main() -> None:
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, d = {DIM}")
    print(COLUMNS)
    print("-" * len(COLUMNS))
    notes = []
    for hidden in (64, 256):
        generator = torch.Generator().manual_seed(0)
        with torch.random.fork_rng():
            torch.manual_seed(hidden)
            actor = CategoricalActor(OBS_DIM, NUM_ACTIONS, PolicyConfig(hidden=hidden, layers=4))
        p = sum(x.numel() for x in actor.parameters())
        obs = torch.randn(PROJECT_SAMPLES, OBS_DIM, generator=generator)
        actions = torch.randint(0, NUM_ACTIONS, (PROJECT_SAMPLES,), generator=generator)
        projector = GaussianProjector.for_module(actor, DIM, seed=0)
        label = f"{hidden}x4"

        few_obs, few_actions = obs[:LOOP_SAMPLES], actions[:LOOP_SAMPLES]
        vmap_s = best_time(lambda: per_sample_grads(actor, few_obs, few_actions), 3)
        loop_s = best_time(lambda: per_sample_grads_loop(actor, few_obs, few_actions), 1)
        print(row(label, p, "vmap vs per-sample backward loop", LOOP_SAMPLES, vmap_s, loop_s))

        fast_s = best_time(lambda: projected_grads(actor, obs, actions, projector), 2)
        reference_s = best_time(lambda: projector.project(per_sample_grads(actor, obs, actions)), 2)
        print(row(label, p, "fast projected vs vmap-then-project", PROJECT_SAMPLES, fast_s, reference_s))

        reference = projector.project(per_sample_grads(actor, obs, actions))
        fast = projected_grads(actor, obs, actions, projector)
        error = float((fast - reference).abs().max() / reference.abs().max())
        linears = [m for m in actor.modules() if isinstance(m, torch.nn.Linear)]
        activations_mib = PROJECT_SAMPLES * sum(m.in_features + m.out_features for m in linears) * 4 / 2**20
        gradients_mib = PROJECT_SAMPLES * p * 4 / 2**20
        notes.append(
            f"{label}: largest buffer {activations_mib:.1f} MiB of activations (fast) vs "
            f"{gradients_mib:.0f} MiB of per-sample gradients (reference); "
            f"max relative difference {error:.1e}"
        )
    print("\n".join(notes))


if __name__ == "__main__":
    main()
