"""Is envpool's highway the same task as highway-env's? Measured, two ways.

1. **From the same state** (:func:`same_state_agreement`): envpool's simulator state is copied into
   highway-env (``highway_envpool.copy_state``), then both observe it, and both take one step with
   the same action. No randomness enters one step of highway-fast (IDM and MOBIL drivers are
   deterministic), so anything but float noise is a difference of the port.
2. **In distribution** (:func:`compare_backends`): episodes of fixed policies on each backend, per
   density, with return, length and crash rate compared by two-sided tests (Welch's t for means,
   the two-proportion z for crash rates) and Holm's correction over every comparison made: the
   backends draw traffic from different generators, so no episode can be matched one to one.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from pgx.envs.family import TaskFamily

__all__ = ["ALPHA", "FIXED_POLICIES", "EpisodeStats", "policy_episodes", "compare_backends", "holm", "same_state_agreement",
           "Policy"]

Policy = Callable[[np.ndarray, np.random.Generator], np.ndarray]
"""``(observations (E, obs_dim), rng) -> actions (E,)``."""

LANE_LEFT, IDLE, LANE_RIGHT, FASTER, SLOWER = range(5)

ALPHA = 0.01
"""Family-wise error rate of the episode comparisons (Holm-adjusted p below it: a difference)."""

FIXED_POLICIES: dict[str, Policy] = {
    "IDLE": lambda obs, rng: np.full(len(obs), IDLE),
    "FASTER": lambda obs, rng: np.full(len(obs), FASTER),
    "SLOWER": lambda obs, rng: np.full(len(obs), SLOWER),
    "random": lambda obs, rng: rng.integers(0, 5, len(obs)),
}
"""The fixed policies of the fidelity check: one meta-action always, or uniform random actions."""


@dataclass
class EpisodeStats:
    """One episode per sub-env: ``(episodes,)`` each."""

    returns: np.ndarray
    lengths: np.ndarray
    crashed: np.ndarray
    """The episode ended by termination (highway-fast terminates on a crash only)."""
    env_steps: int = 0
    """Sub-env steps taken (every sub-env steps until the last episode ends)."""
    seconds: float = 0.0
    """Wall time of those steps, env construction and reset included."""


def policy_episodes(family: TaskFamily, density: float, policy: Policy, episodes: int, seed: int,
                    shown_task: int = -1) -> EpisodeStats:
    """``episodes`` episodes of ``policy`` at traffic ``density``, one per sub-env, from a reset seeded
    with ``seed`` (sub-env ``e`` with ``seed + e``); random actions draw from ``seed`` too. The
    observations carry the one-hot of source task ``shown_task`` (-1: zeros), which only a
    trained θ* reads."""
    start = time.perf_counter()
    env = family.envs(np.full((episodes, 1), float(density)), np.full(episodes, shown_task))
    rng = np.random.default_rng(seed)
    steps = 0
    try:
        obs, _ = env.reset(seed=seed)
        returns, lengths = np.zeros(episodes), np.zeros(episodes, dtype=np.int64)
        crashed, running = np.zeros(episodes, bool), np.ones(episodes, bool)
        for _ in range(family.max_episode_steps + 1):
            obs, reward, terminated, truncated, _ = env.step(policy(obs, rng))
            steps += episodes
            returns += np.where(running, reward, 0.0)
            lengths += running
            crashed |= running & terminated
            running &= ~(terminated | truncated)
            if not running.any():
                break
    finally:
        env.close()
    return EpisodeStats(returns=returns, lengths=lengths, crashed=crashed, env_steps=steps,
                        seconds=time.perf_counter() - start)


def holm(p_values: Sequence[float]) -> np.ndarray:
    """Holm's step-down adjusted p-values: controls the chance of any false difference over all tests."""
    p = np.asarray(p_values, dtype=np.float64)
    order = np.argsort(p)
    adjusted = np.empty_like(p)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(p) - rank) * p[i]))
        adjusted[i] = running
    return adjusted


def _mean_test(a: np.ndarray, b: np.ndarray) -> float:
    if np.ptp(a) == 0 and np.ptp(b) == 0:  # both constant: equal or not, no variance to test
        return 1.0 if a[0] == b[0] else 0.0
    return float(stats.ttest_ind(a, b, equal_var=False).pvalue)


def _proportion_test(a: np.ndarray, b: np.ndarray) -> float:
    pooled = (a.sum() + b.sum()) / (len(a) + len(b))
    se = np.sqrt(pooled * (1 - pooled) * (1 / len(a) + 1 / len(b)))
    if se == 0:
        return 1.0
    z = (a.mean() - b.mean()) / se
    return float(2 * stats.norm.sf(abs(z)))


def compare_backends(
    fast: TaskFamily,
    reference: TaskFamily,
    densities: Sequence[float],
    policies: dict[str, Policy],
    episodes: int,
    seed: int,
    alpha: float = ALPHA,
    progress: Callable[[str], None] | None = None,
    shown_tasks: Sequence[int] | None = None,
) -> pd.DataFrame:
    """Return, length and crash rate of each policy at each density on both backends.

    One row per (density, policy, metric): the two means, their difference, its standard error,
    the raw and Holm-adjusted p-values and ``agree`` (adjusted p ≥ ``alpha``), and each side's
    env steps and seconds for those episodes (its throughput, measured in the same run). Both backends use
    the same seeds, which on different generators is no pairing: the tests are unpaired.
    ``shown_tasks[i]`` is the task one-hot shown at ``densities[i]`` (for a θ*; default none).
    """
    if episodes < 2:
        raise ValueError(f"episodes must be >= 2 to estimate a spread, got {episodes}")
    shown = [-1] * len(densities) if shown_tasks is None else list(shown_tasks)
    rows = []
    for density, task in zip(densities, shown, strict=True):
        for name, policy in policies.items():
            if progress is not None:
                progress(f"density {density:g}, {name}")
            a = policy_episodes(fast, density, policy, episodes, seed, task)
            b = policy_episodes(reference, density, policy, episodes, seed, task)
            for metric, x, y, test in (("return", a.returns, b.returns, _mean_test),
                                       ("length", a.lengths, b.lengths, _mean_test),
                                       ("crash rate", a.crashed, b.crashed, _proportion_test)):
                x, y = x.astype(np.float64), y.astype(np.float64)
                se = float(np.sqrt(x.var(ddof=1) / len(x) + y.var(ddof=1) / len(y)))
                rows.append(dict(density=float(density), policy=name, metric=metric, fast=x.mean(), reference=y.mean(),
                                 difference=x.mean() - y.mean(), se=se, p=test(x, y),
                                 fast_steps=a.env_steps, fast_seconds=a.seconds,
                                 reference_steps=b.env_steps, reference_seconds=b.seconds))
    table = pd.DataFrame(rows)
    table["p_holm"] = holm(table["p"])
    table["agree"] = table["p_holm"] >= alpha
    return table


def same_state_agreement(density: float, steps: int, seed: int) -> dict[str, float]:
    """Copy envpool's state into highway-env at every step of a random-action run, observe it on
    both, and step both once with the same action.

    Returns, over the steps compared (autoreset steps are not transitions and are skipped):
    ``observation``, the largest difference between the two observations of one state; for the
    step that follows, ``reward`` (largest difference), ``termination`` (disagreements) and
    ``collisions`` (steps with a crash in envpool); and, on the steps without a collision,
    ``diverged`` (steps where any vehicle ends more than 1 cm apart) and ``observed_diverged``
    (steps where the ego's next observation differs by more than 1e-4).
    """
    import gymnasium as gym

    from pgx.envs.highway import ENV_ID, EPISODE_STEPS, TRIMMED_CONFIG  # importing it registers highway-env's envs
    from pgx.envs.highway_envpool import EnvpoolHighway, copy_state

    fast = EnvpoolHighway([density], TRIMMED_CONFIG)
    reference = gym.make(ENV_ID, config={**TRIMMED_CONFIG, "vehicles_density": float(density)}).unwrapped
    reference.reset(seed=seed)
    rng = np.random.default_rng(seed)
    out = dict(steps=0, observation=0.0, reward=0.0, termination=0, collisions=0, diverged=0, observed_diverged=0)
    obs, _ = fast.reset(seed=seed)
    try:
        for _ in range(steps):
            state = fast.debug_states()[0]
            copy_state(reference, state)
            out["observation"] = max(out["observation"], float(np.abs(reference.observation_type.observe() - obs[0]).max()))
            action = int(rng.integers(0, 5))
            # The step after an episode's end is an autoreset step, not a transition.
            fresh = not state.vehicles[0].crashed and state.elapsed_step < EPISODE_STEPS
            if fresh:
                ref_obs, ref_reward, ref_terminated, _, _ = reference.step(action)
            obs, reward, terminated, _, _ = fast.step(np.array([action]))
            if not fresh:
                continue
            after = fast.debug_states()[0]
            out["steps"] += 1
            out["reward"] = max(out["reward"], abs(float(ref_reward) - float(reward[0])))
            out["termination"] += int(bool(ref_terminated) != bool(terminated[0]))
            if any(v.crashed for v in after.vehicles):
                out["collisions"] += 1
                continue
            gap = max(abs(v.position[0] - w.x) + abs(v.position[1] - w.y) for v, w in zip(reference.road.vehicles, after.vehicles))
            out["diverged"] += int(gap > 0.01)
            out["observed_diverged"] += int(float(np.abs(ref_obs - obs[0]).max()) > 1e-4)
    finally:
        fast.close()
        reference.close()
    return out
