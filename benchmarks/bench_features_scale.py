"""``projected_grads`` at scale: time and peak memory at p ≈ 136k and 1M, d = 400, one core.

Networks: pgx's 4-layer MLP actor (``CategoricalActor``, 14 observations, 4 actions, every weight
in an ``nn.Linear``) and a SAC actor over PaCo (``TanhGaussianActor(PaCoNetwork)``, MT10's shape:
39 observations + 10 task one-hot, 4 actions, 3 layers, K = 4; no ``nn.Linear``, so every
per-sample gradient goes through ``torch.func`` chunk by chunk). Widths are chosen to reach each
target p. Samples: N = 2048 at 136k and 512 at 1M for the MLP, 512 and 256 for PaCo, whose
chunks are 32 samples and whose passes hold at most 256 MiB (``held_bytes``).

Each (network, p) is measured in a fresh subprocess with one torch thread:

- ``seconds``: one ``projected_grads`` call, after a warm-up call on a tiny actor of the same kind;
- ``peak_rss_mb``: the subprocess's peak resident memory (``resource.getrusage(RUSAGE_SELF).ru_maxrss``,
  which counts torch's allocations, unlike tracemalloc) read right after that call;
  ``call_mb``: the highest resident size during the call above the size just before it (the
  interpreter, torch, the actor and the batch already loaded), sampled every millisecond by a
  thread (``_timing.peak_rss_above_start``): the call's own peak memory;
- ``gathered_before_mb``: what the path before issue 12 held at once for this N (every chunk's
  activations and non-Linear per-sample gradients, ``N × (Σ layer widths + non-Linear p)`` floats);
- ``block_mb``: P's largest block (``projector.largest_block_shape``); P whole would be
  ``p × d × 4`` bytes (1.5 GiB at 1M); ``passes``: how many times P was drawn;
- ``loop_s`` and ``x_vs_loop = loop_s / seconds``: the per-sample loop, P drawn once: one backward
  per sample (``per_sample_grads_loop``), then each sample's gradient multiplied by P, one
  matrix-vector product per sample and block of P, every block drawn once and reused for every
  sample. Timed on the first ``loop_samples`` samples (64 by default) and scaled per sample to N;
  the one-off ``draw_s`` is added once. Only the timed samples' gradients are kept
  (``loop_samples × p`` floats). A loop holding P whole (``p × d`` floats) does the same products
  but streams all of P per sample (slower at 136k here), so this baseline errs on the fast side;
- ``loop_all_s`` and ``x_vs_loop_all``: the same backward loop and draws, but each block of P
  multiplied with all samples' gradients at once (one matrix product per block, as
  ``projector.project`` does; at N that needs ``N × p`` floats). Timed on ``batch_samples``
  samples (64 by default), scaled the same way. The fast path does the same N·p·d multiply-adds
  and draws P as often (``passes``), so this ratio is small: what the fast path saves over this
  loop is mostly the ``(N, p)`` memory;
- ``draw_s``: drawing every block of P once (counted once in ``loop_s`` and ``loop_all_s``).

Both baselines share one backward loop over the first max(``loop_samples``, ``batch_samples``)
samples, timed as the best of ``BACKWARD_REPEATS`` runs after a warm-up (it is short, so a single
run is easily disturbed; this favours the baselines), and the products are timed apart from the
draws. Each baseline's features must match ``projected_grads``' for those samples (relative error
below 1e-4) or the row fails.

Run by hand: ``python benchmarks/bench_features_scale.py`` (about 1 minute on a shared 2-core
machine; ``--params 136000`` for the small size only, ~15 s). ``seconds`` is a single run, so
expect run-to-run spread on a busy machine.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from collections.abc import Sequence

import pandas as pd
import torch
from _timing import best_time, peak_rss_above_start
from torch import nn

from pgx.algos.sac import TanhGaussianActor
from pgx.gradients import GaussianProjector, per_sample_grads_loop, projected_grads
from pgx.nets import ArchConfig, make_network
from pgx.nets.policies import CategoricalActor, PolicyConfig

MLP_OBS, MLP_ACTIONS = 14, 4
PACO_OBS, PACO_TASKS, PACO_ACTIONS, PACO_MODULES = 39, 10, 4, 4
SAMPLES = {"mlp": (2048, 512), "paco": (512, 256)}
"""N for each network at the default sizes (136k, 1M)."""
CHUNK_SIZE = {"mlp": 1024, "paco": 32}
HELD_BYTES = {"mlp": 1 << 30, "paco": 256 << 20}
BACKWARD_REPEATS = 3
"""Runs of the baselines' backward loop, after a warm-up; the best is kept (the loop is short)."""


def _mlp(hidden: int) -> CategoricalActor:
    return CategoricalActor(MLP_OBS, MLP_ACTIONS, PolicyConfig(hidden=hidden, layers=4))


def _paco(hidden: int) -> TanhGaussianActor:
    cfg = ArchConfig(kind="paco", hidden=hidden, layers=3, modules=PACO_MODULES)
    net = make_network(cfg, PACO_OBS + PACO_TASKS, 2 * PACO_ACTIONS, PACO_TASKS)
    return TanhGaussianActor(net, PACO_TASKS, PACO_ACTIONS)


BUILDERS = {"mlp": _mlp, "paco": _paco}


def count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def width_for(network: str, params: int) -> int:
    """The hidden width whose network has the parameter count closest to ``params``."""

    def size(h: int) -> int:
        with torch.device("meta"):  # shapes only: nothing is allocated or initialised
            return count(BUILDERS[network](h))

    low, high = 1, 1 << 14  # bisect for the first width reaching params (counts grow with width)
    while low < high:
        middle = (low + high) // 2
        low, high = (middle + 1, high) if size(middle) < params else (low, middle)
    return min((max(low - 1, 1), low), key=lambda h: abs(size(h) - params))


def batch(network: str, n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` observations and actions the actor accepts (for PaCo, the task one-hot in the last columns)."""
    g = torch.Generator().manual_seed(seed)
    if network == "mlp":
        return torch.randn(n, MLP_OBS, generator=g), torch.randint(0, MLP_ACTIONS, (n,), generator=g)
    task = torch.eye(PACO_TASKS)[torch.randint(0, PACO_TASKS, (n,), generator=g)]
    obs = torch.cat([torch.randn(n, PACO_OBS, generator=g), task], dim=1)
    return obs, torch.randn(n, PACO_ACTIONS, generator=g)


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux


def measure(network: str, params: int, n_samples: int, d: int, seed: int, loop_samples: int,
            batch_samples: int) -> dict:
    """One row, measured in this process (``scale_rows`` runs it in a fresh one)."""
    torch.set_num_threads(1)
    hidden = width_for(network, params)
    torch.manual_seed(seed)
    actor = BUILDERS[network](hidden)
    obs, actions = batch(network, n_samples, seed + 1)
    projector = GaussianProjector.for_module(actor, d, seed=seed)
    chunk_size, held_bytes = CHUNK_SIZE[network], HELD_BYTES[network]
    tiny = BUILDERS[network](8)
    projected_grads(tiny, *batch(network, 4, seed), GaussianProjector.for_module(tiny, d, seed=seed))

    draws = []  # P is drawn once per pass: count the draws of its first block
    generated_block = projector._generated_block
    projector._generated_block = lambda t, b: (draws.append((t, b)), generated_block(t, b))[1]
    features, seconds, call_mb = peak_rss_above_start(
        lambda: projected_grads(actor, obs, actions, projector, chunk_size, held_bytes=held_bytes))
    peak_mb = _peak_mb()
    del projector._generated_block

    # Both baselines: one backward per sample on the first s samples (best of a few runs, scaled
    # per sample to N), then P drawn once, block by block, each block applied to those samples'
    # gradients one sample at a time (the per-sample loop) or all at once; draws timed apart.
    n_each, n_all = min(loop_samples, n_samples), min(batch_samples, n_samples)
    s = max(n_each, n_all)
    flat = per_sample_grads_loop(actor, obs[:s], actions[:s])
    backward_s = best_time(lambda: per_sample_grads_loop(actor, obs[:s], actions[:s]), BACKWARD_REPEATS) / s
    each, together = flat.new_zeros(n_each, d), flat.new_zeros(n_all, d)
    draw_s = each_s = together_s = 0.0
    for t, a, b in projector.block_ranges():
        start = time.perf_counter()
        block = projector.block(t, a, b)
        drawn = time.perf_counter()
        span = slice(projector.offsets[t] + a, projector.offsets[t] + b)
        for i in range(n_each):
            each[i].addmv_(block.T, flat[i, span])
        looped = time.perf_counter()
        together.addmm_(flat[:n_all, span], block)
        draw_s, each_s = draw_s + drawn - start, each_s + looped - drawn
        together_s += time.perf_counter() - looped
    del flat
    for name, baseline in (("loop", each), ("loop_all", together)):  # the baselines do the same work
        error = float((baseline - features[: len(baseline)]).norm() / features[: len(baseline)].norm())
        if not error < 1e-4:
            raise RuntimeError(f"the {name} baseline's features differ from projected_grads' by {error:.2e}")
    loop_s = n_samples * (backward_s + each_s / n_each) + draw_s
    loop_all_s = n_samples * (backward_s + together_s / n_all) + draw_s

    linears = [m for m in actor.modules() if isinstance(m, nn.Linear)]
    non_linear = count(actor) - sum(count(m) for m in linears)
    widths = sum(m.in_features + m.out_features for m in linears)
    rows, cols = projector.largest_block_shape
    return {
        "network": network, "hidden": hidden, "p": count(actor), "samples": n_samples, "d": d,
        "chunk_size": chunk_size, "held_mb": held_bytes / 2**20, "seconds": seconds,
        "samples_per_s": n_samples / seconds, "peak_rss_mb": peak_mb, "call_mb": call_mb,
        "gathered_before_mb": n_samples * (widths + non_linear) * 4 / 2**20,
        "block_mb": rows * cols * 4 / 2**20, "p_whole_mb": count(actor) * d * 4 / 2**20,
        "passes": draws.count((0, 0)), "loop_s": loop_s, "x_vs_loop": loop_s / seconds,
        "loop_all_s": loop_all_s, "x_vs_loop_all": loop_all_s / seconds, "draw_s": draw_s,
        "loop_samples": n_each, "batch_samples": n_all,
    }


def scale_rows(params: Sequence[int] = (136_000, 1_000_000), n_samples: Sequence[int] | None = None,
               d: int = 400, seed: int = 0, networks: Sequence[str] = ("mlp", "paco"),
               loop_samples: int = 64, batch_samples: int = 64) -> pd.DataFrame:
    """One row per (network, p), each measured in a fresh one-thread subprocess (module docstring).

    :param n_samples: N for each entry of ``params``, the same for every network; default
        ``SAMPLES`` (which has entries for the two default sizes only).
    """
    if min(loop_samples, batch_samples) < 1:
        raise ValueError(f"loop_samples and batch_samples must be >= 1, got {loop_samples} and {batch_samples}")
    rows = []
    for network in networks:
        counts = n_samples if n_samples is not None else SAMPLES[network]
        if len(counts) != len(params):
            raise ValueError(f"n_samples must give one N per entry of params {tuple(params)}, got {tuple(counts)}")
        for p, n in zip(params, counts):
            spec = {"network": network, "params": p, "n_samples": n, "d": d, "seed": seed,
                    "loop_samples": loop_samples, "batch_samples": batch_samples}
            env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
            done = subprocess.run([sys.executable, __file__, "--row", json.dumps(spec)], env=env,
                                  capture_output=True, text=True, check=False)
            if done.returncode != 0:
                raise RuntimeError(f"measuring {spec} failed:\n{done.stderr[-2000:]}")
            rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--params", type=int, nargs="+", default=[136_000, 1_000_000])
    parser.add_argument("--row", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.row:
        print(json.dumps(measure(**json.loads(args.row))))
        return
    defaults = {136_000: 0, 1_000_000: 1}
    if not all(p in defaults for p in args.params):
        parser.error(f"--params takes sizes among {sorted(defaults)} (N is set for those), got {args.params}")
    n_samples = {net: [SAMPLES[net][defaults[p]] for p in args.params] for net in SAMPLES}
    frames = [scale_rows(args.params, n_samples[net], networks=(net,)) for net in SAMPLES]
    table = pd.concat(frames, ignore_index=True)
    print(f"torch {torch.__version__}, 1 thread per measurement, d = 400; peak memory from ru_maxrss")
    with pd.option_context("display.width", 200, "display.max_columns", None, "display.precision", 1):
        print(table.drop(columns=["d", "loop_samples", "batch_samples"]).to_string(index=False))
    print(f"baselines (P drawn once) timed on {table.loop_samples.iloc[0]} (loop: one product per sample) and "
          f"{table.batch_samples.iloc[0]} (loop_all: one product for all) samples and scaled to N; "
          "ratios above 1 mean projected_grads is faster")


if __name__ == "__main__":
    main()
