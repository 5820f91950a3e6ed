"""Is the highway family's fast backend faithful? The families chapter's check, as a cached stage.

envpool's C++ highway (the family's default backend) against highway-env's own Python (the
reference, ``highway:backend=highway-env``): the same-state check of one step, then episodes of
fixed policies and of θ* (trained on the default backend) at each source density, compared in
distribution (``pgx.envs.highway_fidelity``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from pgx.envs import make_family
from pgx.envs.highway_fidelity import ALPHA, FIXED_POLICIES, compare_backends, holm, same_state_agreement
from pgx.profiles import Profile
from pgx.stages.graph import stage
from pgx.stages.pipeline import meta_train

__all__ = ["FidelityResult", "highway_fidelity"]


@dataclass
class FidelityResult:
    same_state: pd.DataFrame
    """One row per density of :func:`~pgx.envs.highway_fidelity.same_state_agreement`."""
    episodes: pd.DataFrame
    """:func:`~pgx.envs.highway_fidelity.compare_backends`'s table, θ* (``policy="θ*"``) included."""
    episodes_per_cell: int
    seconds: float


@stage(reads=("fidelity",))
def highway_fidelity(family_name: str, profile: Profile, seed: int) -> FidelityResult:
    """envpool's highway against highway-env's, for ``family_name`` (a highway spec on the default
    backend), with the profile's budget (``Profile.fidelity``)."""
    if not family_name.partition(":")[0] == "highway":
        raise ValueError(f"the fidelity check compares highway backends; got family {family_name!r}")
    if "backend=" in family_name:
        raise ValueError(f"give the highway spec without a backend (the check compares both), got {family_name!r}")
    start = time.perf_counter()
    budget = profile.fidelity
    fast = make_family(family_name)
    reference = make_family(f"{family_name}:backend=highway-env" if ":" not in family_name
                            else f"{family_name},backend=highway-env")
    densities = budget.densities or fast.source_params
    tasks = [fast.source_params.index(d) if d in fast.source_params else -1 for d in densities]
    same_state = pd.DataFrame([dict(density=d, **same_state_agreement(d, budget.same_state_steps, seed))
                               for d in densities])

    fixed = compare_backends(fast, reference, densities, {p: FIXED_POLICIES[p] for p in budget.policies},
                             budget.episodes, seed)
    actor = meta_train(family_name, profile, seed).agent(family_name, profile).actor

    @torch.no_grad()
    def theta_star(obs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return actor.mode(torch.as_tensor(obs, dtype=torch.float32)).cpu().numpy()

    trained = compare_backends(fast, reference, densities, {"θ*": theta_star}, budget.episodes, seed,
                               shown_tasks=tasks)
    episodes = pd.concat([fixed, trained], ignore_index=True)
    # One correction over every comparison made, fixed policies and θ* together.
    episodes["p_holm"] = holm(episodes["p"])
    episodes["agree"] = episodes["p_holm"] >= ALPHA
    return FidelityResult(same_state=same_state, episodes=episodes, episodes_per_cell=budget.episodes,
                          seconds=time.perf_counter() - start)

