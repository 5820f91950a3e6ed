"""Highway driving tasks that differ in traffic density.

highway-env's ``highway-fast-v0``: the ego car drives on a 3-lane highway among IDM-driven traffic,
observes the kinematics (presence, x, y, vx, vy) of itself and its 4 nearest vehicles (a 5 × 5 table
the family flattens to 25 numbers), and picks one of 5 meta-actions (lane left, idle, lane right,
faster, slower) once per simulated second. Reward favours speed and the right lane; a crash ends
the episode, otherwise it is truncated after ``duration`` = 30 policy steps.

Why this range: ``vehicles_density`` scales the gaps between spawned cars (gaps ∝ 1/density; 1 is
highway-env's default). The 10 source tasks are 0.25, 0.5, …, 2.5 and the 50 unseen targets are
spread evenly over the same range. Sparse traffic rewards speed; dense traffic punishes it: always
braking survives all 30 steps at density ≤ 1 but only ~17 at 2.0–2.5, while holding 25 m/s
survives all 30 at 0.5 and ~5 at 2.5 (mean of 10 seeded episodes), so the best policy changes
with the task.

What was trimmed, and what it costs: ``highway-fast-v0`` already simulates at 5 Hz (not 15), with
3 lanes, 20 other vehicles, 30-second episodes and collision checks for the ego car only, and we
keep all of that. On top of it we spawn 15 other vehicles instead of 20: a simulation frame costs
O(vehicles²) (every IDM car searches all others for its neighbours), and the cars cut are the far
front of the platoon, which the ego car does not reach in 30 steps: with a gap-seeking driver, the
farthest car ever among the ego car's 4 observed neighbours was the 13th of the platoon (densities
0.5–2.5, 8 episodes each). So what the policy sees is unchanged, except that the platoon's new lead
car drives freely instead of behind five more. Rendering is off (``render_mode=None``: no frames,
not even offscreen). One env at density 1, 150 random-action steps, best of 3 alternating runs
(``benchmarks/bench_envs.py``, a 2-core machine shared with other jobs): stock ``highway-fast-v0``
48 steps/s, trimmed 64 steps/s, 1.34× (1.3–1.45× over several runs). Episodes last at most 30
policy steps, where highway-env's own ``duration`` truncates them; the ``TimeLimit`` agrees.

Two backends (``backend=``). **envpool** (the default since issue 21): envpool's C++ port of
``highway-fast-v0`` with this same config, one pool per density (``pgx.envs.highway_envpool``,
which names what was checked and the differences found). 10 sub-envs stepped from Python ran
~20,000–30,000 steps/s here against ~130 for highway-env in two worker processes
(``benchmarks/bench_envs.py``), and PPO on all ten tasks ~6,000–10,000 steps/s against ~90: what
lets highway train at budgets like the other families'. **highway-env**: the reference, for the
fidelity checks and the family's pictures. The trimmed config (15 other cars) stays on both, so
the backends are compared on one task.

Why two worker processes for highway-env (:class:`~pgx.envs.parallel.ProcessVectorEnv`): a
highway-env step costs 15–20 ms, a pipe round trip ~0.13 ms, so a second core nearly doubles
throughput when there is one to have. With 10 sub-envs (one per source task), ``processes=2``
ran 131 steps/s vs 73 for one process with a core free (1.80×, ``benchmarks/bench_envs.py``), and
0.97–1.03× of it while other jobs kept both cores busy (load ≈ 3): never slower within the noise.
Workers take 0.8–1.6 s to start for every new vector env, a few highway steps' worth.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import highway_env
import numpy as np

from pgx.envs.family import TaskFamily, as_param_array, render_after
from pgx.envs.gym_family import gym_family

gym.register_envs(highway_env)

__all__ = ["highway_family", "make_highway", "highway_frame", "ENV_ID", "TRIMMED_CONFIG", "EPISODE_STEPS", "SOURCE_DENSITIES",
           "TARGET_DENSITIES", "DEFAULT_PROCESSES", "BACKENDS",
           "envpool_vector_env"]

ENV_ID = "highway-fast-v0"

TRIMMED_CONFIG: dict[str, Any] = {
    "observation": {"type": "Kinematics", "vehicles_count": 5, "features": ["presence", "x", "y", "vx", "vy"]},
    "action": {"type": "DiscreteMetaAction"},
    "lanes_count": 3,
    "vehicles_count": 15,
    "duration": 30,
    "simulation_frequency": 5,
    "policy_frequency": 1,
}
"""``highway-fast-v0``'s config with 15 other vehicles instead of 20; everything else as in the
fast config, spelled out so the trade-offs are visible. Each task adds its ``vehicles_density``."""

EPISODE_STEPS = TRIMMED_CONFIG["duration"] * TRIMMED_CONFIG["policy_frequency"]
"""Policy steps until highway-env truncates an episode (its ``time`` counts seconds)."""

SOURCE_DENSITIES: tuple[float, ...] = tuple(float(d) for d in np.arange(1, 11) * 0.25)
"""Traffic densities of the 10 source tasks: 0.25 … 2.5."""
TARGET_DENSITIES: tuple[float, ...] = tuple(float(d) for d in np.round(np.linspace(0.25, 2.5, 50), 3))
"""Traffic densities of 50 unseen target tasks over the same range."""

DEFAULT_PROCESSES = 2
"""Worker processes for the sub-envs: two, never slower than one (see the module docstring)."""


def make_highway(param: np.ndarray) -> gym.Env:
    """``highway-fast-v0`` with :data:`TRIMMED_CONFIG` and density ``param[0]``; module-level so
    worker processes can unpickle it. The ``TimeLimit`` matches highway-env's own truncation."""
    density = _check_densities(param)[0]
    config = {**TRIMMED_CONFIG, "vehicles_density": float(density)}
    return gym.make(ENV_ID, config=config, render_mode=None, max_episode_steps=EPISODE_STEPS)


def highway_frame(param: np.ndarray) -> np.ndarray:
    """highway-env's drawing of the road after 3 idle steps at density ``param[0]``."""
    config = {**TRIMMED_CONFIG, "vehicles_density": float(_check_densities(param)[0]), "offscreen_rendering": True}
    return render_after(lambda: gym.make(ENV_ID, config=config, render_mode="rgb_array"), action=1, steps=3)


def _check_densities(params: Sequence[float] | np.ndarray) -> np.ndarray:
    values = as_param_array(params, "traffic densities")
    if values.shape[1] != 1:
        raise ValueError(f"a highway task has one parameter (vehicles_density), got {values.shape[1]} per task")
    bad = values[values <= 0.0]
    if bad.size:
        raise ValueError(f"traffic density must be > 0, got {float(bad[0])}")
    return values[:, 0]


BACKENDS = ("envpool", "highway-env")
"""``envpool`` (default): envpool's C++ port, a few hundred times faster (``pgx.envs.highway_envpool``
says what was checked and what differs); ``highway-env``: the reference, highway-env's own Python."""


def highway_family(
    processes: int = DEFAULT_PROCESSES,
    source_densities: Sequence[float] = SOURCE_DENSITIES,
    target_densities: Sequence[float] = TARGET_DENSITIES,
    backend: str = "envpool",
) -> TaskFamily:
    """Highway tasks with one traffic density each.

    :param processes: worker processes for highway-env's sub-envs (1: ``SyncVectorEnv`` in this
        process); envpool steps in its own C++ threads and ignores it.
    :param source_densities: ``vehicles_density`` (> 0; 1 is highway-env's default) of the source tasks.
    :param target_densities: densities of the unseen target tasks.
    :param backend: ``"envpool"`` or ``"highway-env"`` (:data:`BACKENDS`); pictures always come
        from highway-env.
    """
    if backend not in BACKENDS:
        raise ValueError(f"highway backend must be one of {BACKENDS}, got {backend!r}")
    _check_densities(source_densities)
    _check_densities(target_densities)
    family = gym_family(
        "highway", make_highway, source_densities, target_densities, "traffic density (vehicles_density)",
        max_episode_steps=EPISODE_STEPS, processes=processes, render_frame=highway_frame,
        description=f"drive fast on a 3-lane highway without crashing; tasks differ in traffic density "
                    f"({min(source_densities):g} to {max(source_densities):g})",
    )
    if backend == "envpool":
        family = family.with_options(make_vec_env=envpool_vector_env)
    return family


def envpool_vector_env(params: np.ndarray) -> gym.vector.VectorEnv:
    """The family's sub-envs on envpool (module-level, so a family pickles into worker processes)."""
    from pgx.envs.highway_envpool import EnvpoolHighway

    return EnvpoolHighway(_check_densities(params), TRIMMED_CONFIG)
