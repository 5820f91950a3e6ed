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
  ``call_mb``: how much the call raised that peak above everything before it (interpreter, torch,
  the actor, the batch): the call's own peak memory, to page granularity;
- ``gathered_before_mb``: what the path before issue 12 held at once for this N (every chunk's
  activations and non-Linear per-sample gradients, ``N × (Σ layer widths + non-Linear p)`` floats);
- ``block_mb``: P's largest block (``projector.largest_block_shape``); P whole would be
  ``p × d × 4`` bytes (1.5 GiB at 1M); ``passes``: how many times P was drawn;
- ``x_vs_loop_each``: against one backward per sample, each gradient projected with the same
  projector as it comes (memory as bounded as the fast path's, but P is redrawn per sample).
  Timed on ``loop_samples`` samples and scaled per sample to N;
- ``x_vs_loop_all``: against one backward per sample for all N, then one projection of the
  ``(N, p)`` gradients block by block as ``projector.project`` does (P drawn once; needs ``N × p``
  floats). Timed on ``batch_samples`` samples: ``N/s × (backward loop + products) + drawing P``,
  the draws and the products timed apart. The fast path does the same N·p·d multiply-adds and
  draws P as often, so this ratio stays near 1 at d = 400: what the fast path saves here is the
  ``(N, p)`` memory, not time.

Run by hand: ``python benchmarks/bench_features_scale.py`` (about 1 minute on one core: 48 s to
1.5 min on a shared 2-core machine; ``--params 136000`` for the small size only, ~25 s). Timings
are single runs, so expect run-to-run spread on a busy machine.
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
from torch import nn

from pgx.algos.sac import TanhGaussianActor
from pgx.gradients import GaussianProjector, per_sample_grads_loop, projected_grads
from pgx.nets import ArchConfig, make_network
from pgx.policies import CategoricalActor, PolicyConfig

MLP_OBS, MLP_ACTIONS = 14, 4
PACO_OBS, PACO_TASKS, PACO_ACTIONS, PACO_MODULES = 39, 10, 4, 4
SAMPLES = {"mlp": (2048, 512), "paco": (512, 256)}
"""N for each network at the default sizes (136k, 1M)."""
CHUNK_SIZE = {"mlp": 1024, "paco": 32}
HELD_BYTES = {"mlp": 1 << 30, "paco": 256 << 20}


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
    before_mb = _peak_mb()
    start = time.perf_counter()
    projected_grads(actor, obs, actions, projector, chunk_size, held_bytes=held_bytes)
    seconds = time.perf_counter() - start
    peak_mb = _peak_mb()
    del projector._generated_block

    # Baseline 1: one backward per sample, each gradient projected as it comes.
    per_sample_grads_loop(actor, obs[:1], actions[:1])
    start = time.perf_counter()
    for i in range(loop_samples):
        projector.project(per_sample_grads_loop(actor, obs[i : i + 1], actions[i : i + 1]))
    loop_each_s = (time.perf_counter() - start) / loop_samples * n_samples

    # Baseline 2: one backward per sample for all, then one projection (P drawn once). The
    # projection's draws and products are timed apart, so each scales as it would at N.
    s = min(batch_samples, n_samples)
    start = time.perf_counter()
    flat = per_sample_grads_loop(actor, obs[:s], actions[:s])
    grads_s = time.perf_counter() - start
    draw_s = products_s = 0.0
    for t, a, b in projector.block_ranges():
        start = time.perf_counter()
        block = projector.block(t, a, b)
        middle = time.perf_counter()
        flat[:, projector.offsets[t] + a : projector.offsets[t] + b] @ block
        draw_s, products_s = draw_s + middle - start, products_s + time.perf_counter() - middle
    loop_all_s = n_samples / s * (grads_s + products_s) + draw_s
    del flat

    linears = [m for m in actor.modules() if isinstance(m, nn.Linear)]
    non_linear = count(actor) - sum(count(m) for m in linears)
    widths = sum(m.in_features + m.out_features for m in linears)
    rows, cols = projector.largest_block_shape
    return {
        "network": network, "hidden": hidden, "p": count(actor), "samples": n_samples, "d": d,
        "chunk_size": chunk_size, "held_mb": held_bytes / 2**20, "seconds": seconds,
        "samples_per_s": n_samples / seconds, "peak_rss_mb": peak_mb, "call_mb": peak_mb - before_mb,
        "gathered_before_mb": n_samples * (widths + non_linear) * 4 / 2**20,
        "block_mb": rows * cols * 4 / 2**20, "p_whole_mb": count(actor) * d * 4 / 2**20,
        "passes": draws.count((0, 0)), "x_vs_loop_each": loop_each_s / seconds,
        "x_vs_loop_all": loop_all_s / seconds, "loop_samples": loop_samples, "batch_samples": s,
    }


def scale_rows(params: Sequence[int] = (136_000, 1_000_000), n_samples: Sequence[int] | None = None,
               d: int = 400, seed: int = 0, networks: Sequence[str] = ("mlp", "paco"),
               loop_samples: int = 2, batch_samples: int = 64) -> pd.DataFrame:
    """One row per (network, p), each measured in a fresh one-thread subprocess (module docstring).

    :param n_samples: N for each entry of ``params``, the same for every network; default
        ``SAMPLES`` (which has entries for the two default sizes only).
    """
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
    print(f"loop baselines timed on {table.loop_samples.iloc[0]} (each) and {table.batch_samples.iloc[0]} "
          "(all) samples and scaled to N; ratios above 1 mean projected_grads is faster")


if __name__ == "__main__":
    main()
