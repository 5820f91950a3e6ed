"""The CUDA path, checked and timed against the CPU in one run (about 5 minutes on one GPU).

On a machine with CUDA: runs the CUDA-marked tests, then times the ``paper`` profile's features
(projected per-sample gradients: 10 tasks × 5,000 samples, d = 400), its surrogate (100 subsets of
5 tasks on those features) and a short multitask PPO meta-training (CartPole, the paper profile's
meta-training config cut to 200k env steps) on the CPU and on the GPU, checking that each GPU
result matches the CPU's where it must (features and surrogate to float tolerance; PPO's learning
curves are not compared: sampling on another device draws other actions). Prints one table and
writes it as JSON (``--out``; ``benchmarks/gpu_check.json`` by default, kept in git as the record of
the last GPU run that the README quotes). Each device gets one untimed warm-up call first.

Run: ``bash benchmarks/gpu_check.sh`` (or ``python benchmarks/gpu_check.py --out gpu_check.json``).
Without CUDA it says so and exits 1, so nothing is reported as measured where it was not.
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

from pgx.algos.ppo import train
from pgx.envs import make_family
from pgx.gradients import GaussianProjector, projected_grads
from pgx.nets.policies import CategoricalActor
from pgx.profiles import PROFILES
from pgx.surrogate import fit_subsets

ROOT = Path(__file__).resolve().parents[1]
FEATURE_SAMPLES_PER_TASK, PPO_STEPS = 5_000, 200_000


def _timed(run, device: str) -> tuple[object, float]:
    if device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    out = run()
    if device == "cuda":
        torch.cuda.synchronize()
    return out, time.perf_counter() - start


def cuda_tests() -> dict:
    """``pytest -m cuda``: the tests that only run where a GPU is."""
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-m", "cuda", "-p", "no:cacheprovider"],
                          cwd=ROOT, capture_output=True, text=True)
    last = (proc.stdout.strip().splitlines() or ["(no output)"])[-1]
    return {"part": "pytest -m cuda", "result": last, "ok": proc.returncode == 0,
            "seconds": time.perf_counter() - start}


def features_and_surrogate(profile_name: str = "paper", seed: int = 0) -> list[dict]:
    profile = PROFILES[profile_name].for_family("cartpole")
    family = make_family("cartpole")
    n = family.n_tasks * FEATURE_SAMPLES_PER_TASK
    generator = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        actor = CategoricalActor(family.obs_dim, family.num_actions, profile.meta_ppo.policy)
    obs = torch.randn(n, family.obs_dim, generator=generator)
    actions = torch.randint(0, family.num_actions, (n,), generator=generator)
    advantages = torch.randn(n, generator=generator)
    task_ids = torch.arange(family.n_tasks).repeat_interleave(FEATURE_SAMPLES_PER_TASK)
    projector = GaussianProjector.for_module(actor, profile.projection_dim, seed=seed)
    subsets = [sorted(torch.randperm(family.n_tasks, generator=generator)[:profile.subset_size].tolist())
               for _ in range(profile.num_subsets)]
    rows, results = [], {}
    for device in ("cpu", "cuda"):
        actor_d = copy.deepcopy(actor).to(device)
        # Warm-up on a slice: CUDA's context, cuBLAS/cuSOLVER handles and lazy kernels load on first use.
        few = projected_grads(actor_d, obs[:64].to(device), actions[:64].to(device), projector)
        fit_subsets(few, advantages[:64].to(device), task_ids[:64].to(device), [[int(task_ids[0])]], profile.surrogate)
        feats, feat_s = _timed(lambda: projected_grads(actor_d, obs.to(device), actions.to(device), projector), device)
        fit, fit_s = _timed(lambda: fit_subsets(feats, advantages.to(device), task_ids.to(device), subsets,
                                                profile.surrogate), device)
        results[device] = (feats.cpu(), fit.cpu(), feat_s, fit_s)
    cpu, gpu = results["cpu"], results["cuda"]
    p = sum(x.numel() for x in actor.parameters())
    for i, part in ((0, f"features: {n} samples, p={p}, d={profile.projection_dim}"),
                    (1, f"surrogate: {profile.num_subsets} subsets of {profile.subset_size}")):
        match = torch.allclose(gpu[i], cpu[i], rtol=1e-3, atol=1e-4 * float(cpu[i].abs().max()))
        rows.append({"part": part, "cpu_s": cpu[2 + i], "cuda_s": gpu[2 + i], "speedup": cpu[2 + i] / gpu[2 + i],
                     "matches_cpu": bool(match), "max_abs_diff": float((gpu[i] - cpu[i]).abs().max())})
    return rows


def meta_training(profile_name: str = "paper", seed: int = 0, steps: int = PPO_STEPS) -> dict:
    cfg = replace(PROFILES[profile_name].for_family("cartpole").meta_ppo, total_timesteps=steps)
    family = make_family("cartpole")
    times = {}
    for device in ("cpu", "cuda"):
        train(family, [0], replace(cfg, total_timesteps=1), seed=seed, device=device, progress=False)  # warm-up
        _, times[device] = _timed(lambda: train(family, range(family.n_tasks), cfg, seed=seed, device=device,
                                                progress=False), device)
    return {"part": f"PPO meta-training: CartPole, {steps} steps, {cfg.envs_per_task} sub-envs per task",
            "cpu_s": times["cpu"], "cuda_s": times["cuda"], "speedup": times["cpu"] / times["cuda"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None, help="write the table as JSON here")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("no CUDA device: nothing to check here (run this on a machine with a GPU)")
        return 1
    header = {"gpu": torch.cuda.get_device_name(0), "torch": torch.__version__, "cpu": platform.processor() or
              platform.machine(), "cpu_threads": torch.get_num_threads()}
    print(header)
    rows = [cuda_tests()]
    print(rows[-1])
    for row in features_and_surrogate() + [meta_training()]:
        rows.append(row)
        print({k: (f"{v:.3g}" if isinstance(v, float) else v) for k, v in row.items()})
    if args.out is not None:
        args.out.write_text(json.dumps({"machine": header, "rows": rows}, indent=2))
    return 0 if all(r.get("ok", True) and r.get("matches_cpu", True) for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
