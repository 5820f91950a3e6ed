"""The same seed gives bit-identical affinities and groups in two processes, for every built-in family.

Each case runs the chain twice, in two fresh Python processes at once, each with a cache of its own
(so nothing is loaded, everything is computed) and a different ``PYTHONHASHSEED`` (so no result may
hang on the order of a set or dict of strings), on the CPU. Each process prints a digest of the
bytes of every stage's result; all must agree, and when they do not, the message names the first
stage that differs.

PPO families run the cached stages (meta-training → features → held-out features → surrogate fit
→ first-order affinity) at a tiny budget, then the SDP; Meta-World runs its own stage (SAC
meta-policy → features → affinity → groups) on three tasks.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pgx.envs import FAMILIES

ROOT = Path(__file__).resolve().parents[1]

SPECS = {
    "cartpole": "cartpole",
    "lunarlander": "lunarlander",
    # One process per run (tests/test_highway.py checks that worker processes give the same episodes).
    "highway": "highway:processes=1",
    "navigation": "navigation",
    "mt10": "mt10:tasks=reach-v3+push-v3+window-open-v3",
    "mt50": "mt50:tasks=button-press-v3+door-close-v3+plate-slide-v3",
}
"""The spec each registered family is checked with (Meta-World on three of its tasks, for time)."""

STAGES = ("theta", "features", "held_out", "V", "scores", "affinity", "labels")
"""What each process reports, in the order the chain computes it."""

CHAIN = r'''
import dataclasses, hashlib, json, sys

import numpy as np
import torch


def digest(*arrays):
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a.detach().cpu().numpy() if torch.is_tensor(a) else np.asarray(a))
        h.update(f"{a.dtype}{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def main(family, seed):
    out = {}
    if family.startswith("mt"):
        from pgx.profiles import PROFILES
        from pgx.stages import metaworld

        smoke = PROFILES["smoke"].for_family(family)
        # 200 env steps, updates from step 100: the critics and actor do move.
        sac = dataclasses.replace(smoke.metaworld.sac, total_steps=200, learning_starts=100)
        budgets = dataclasses.replace(smoke, metaworld=dataclasses.replace(smoke.metaworld, sac=sac), num_subsets=3,
                                      subset_size=2, num_groups=2)
        g = metaworld.grouping(family, budgets, seed)
        out["theta"] = digest(*g.meta.result.actor_state.values(), *g.meta.result.critic_state.values())
        out["features"] = digest(g.features.features, g.features.advantages, g.features.task_ids)
        out["held_out"] = digest(g.held_out.features, g.held_out.advantages, g.held_out.task_ids)
        out["V"] = None  # the Meta-World stage keeps no V
        out["scores"] = digest(g.scores)
        affinity, labels = g.affinity, g.groups["PolicyGradEx"]
    else:
        from pgx.clustering import sdp_cluster
        from pgx.profiles import get_profile
        from pgx.stages import (estimate_affinity, gradient_features, held_out_features, meta_train, surrogate_fit,
                                theta_star_returns)

        base = get_profile("smoke").for_family(family)
        ppo = dataclasses.replace(base.meta_ppo, envs_per_task=1, num_steps=8)
        # Two PPO iterations, 8 feature steps per task, one evaluation episode per task.
        profile = dataclasses.replace(base, meta_ppo=dataclasses.replace(ppo, total_timesteps=2 * ppo.batch_size(10)),
                                      steps_per_task=8, eval_episodes=1)
        meta = meta_train(family, profile, seed)
        out["theta"] = digest(*meta.train.actor_state.values(), *meta.train.critic_state.values(),
                              theta_star_returns(family, profile, seed))
        f = gradient_features(family, profile, seed).features
        out["features"] = digest(f.features, f.advantages, f.task_ids)
        h = held_out_features(family, profile, seed).features
        out["held_out"] = digest(h.features, h.advantages, h.task_ids)
        out["V"] = digest(surrogate_fit(family, profile, seed).V)
        estimate = estimate_affinity(family, profile, seed)
        out["scores"] = digest(estimate.scores)
        affinity, labels = estimate.affinity, sdp_cluster(estimate.affinity, k=profile.num_groups, seed=seed)
    out["affinity"] = digest(affinity)
    out["labels"] = [int(x) for x in labels]
    print("RESULT " + json.dumps(out))


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
'''


def _start(spec: str, seed: int, cache: Path, hash_seed: int) -> subprocess.Popen:
    env = {**os.environ, "PGX_CACHE": str(cache), "PYTHONHASHSEED": str(hash_seed), "PGX_DEVICE": "cpu",
           "CUDA_VISIBLE_DEVICES": "", "TQDM_DISABLE": "1", "PYTHONPATH": str(ROOT)}
    env.setdefault("OMP_NUM_THREADS", "1")
    return subprocess.Popen([sys.executable, "-c", CHAIN, spec, str(seed)], cwd=ROOT, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _result(proc: subprocess.Popen) -> dict:
    stdout, stderr = proc.communicate(timeout=600)
    assert proc.returncode == 0, stderr[-3000:]
    lines = [line for line in stdout.splitlines() if line.startswith("RESULT ")]
    assert len(lines) == 1, stdout[-3000:]
    return json.loads(lines[0].removeprefix("RESULT "))


def test_every_registered_family_is_checked():
    """A family added to the registry must get a determinism case here."""
    assert set(SPECS) == {name for name, factory in FAMILIES.items() if isinstance(factory, str)}


@pytest.mark.slow
@pytest.mark.parametrize("family", list(SPECS))
def test_same_seed_same_affinity_and_groups_in_two_processes(family, tmp_path):
    runs = [_start(SPECS[family], 0, tmp_path / f"cache{i}", hash_seed=i + 1) for i in range(2)]
    first, second = (_result(proc) for proc in runs)
    assert list(first) == list(STAGES)
    differing = [stage for stage in STAGES if first[stage] != second[stage]]
    assert not differing, f"{SPECS[family]}: the two processes first differ at {differing[0]} (all: {differing})"
    assert len(first["labels"]) == (3 if family.startswith("mt") else 10)
