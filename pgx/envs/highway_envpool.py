"""The highway family's default backend: envpool's C++ ``highway-fast-v0``, one pool per density.

envpool (1.2.5) ships a C++ port of highway-env's ``highway-fast-v0`` with every knob the family
sets (``lanes_count``, ``vehicles_count``, ``vehicles_density``, ``duration``, simulation and
policy frequency, collision checks for the ego car only), the same Kinematics observation and the
same reward. It steps a few hundred times faster than highway-env's Python (``benchmarks/bench_envs.py``),
which is what lets the highway family train at budgets the other families get.

What is the same, checked rather than assumed (``pgx.envs.highway_fidelity``, ``tests/test_highway.py``
and the families chapter):

* the observation, field by field: envpool's state copied into highway-env (``copy_state``) gives
  highway-env's ``KinematicObservation`` equal to envpool's, bit for bit — same features (presence,
  x, y, vx, vy), same normalisation and clipping, same order (ego first, then the nearest vehicles
  ahead by distance), presence 0 for missing rows;
* one step from the same state: rewards agree to float precision (3e-8) wherever termination
  does, and termination disagreed on 2 of 2,658 steps (default build, seed 0, ten densities);
  every vehicle's position agrees too, except on the steps the two differences below touch;
* episodes of fixed policies (IDLE, FASTER, SLOWER, random, a trained θ*): return, length and
  crash rate per density agree within statistical error (the chapter shows every density);
* NEXT_STEP autoreset (the step after an episode's end returns the first observation, reward 0)
  and truncation after 30 policy steps, as Gymnasium's vector envs and highway-env's clock do.

The differences we found, and what they mean here:

* **after a collision** envpool separates the crashed cars differently from highway-env's impulse,
  so positions at the crash step differ (up to a few metres). The episode ends there (terminated):
  the observation is never acted on, and PPO does not bootstrap from it.
* **lane choice of other cars**: a car whose lane-change model (MOBIL) accepts both side lanes
  can take the other one than highway-env's (which keeps the last lane its loop accepts; seen as
  1 → 2 there, 1 → 0 in envpool). Seen mostly in sparse traffic: at density 0.25 some car ended
  more than 1 cm apart on 29 of 287 collision-free steps and the ego's next observation differed
  on 10; at the other densities on 1–6 steps of ~250.
* **random numbers**: envpool draws traffic with its own C++ generator, so a seed gives different
  (equally distributed) traffic than highway-env's numpy generator: the backends agree in
  distribution, never episode by episode.
* **seeding**: envpool seeds a pool when it is built; ``reset(seed=s)`` here rebuilds the pools
  with sub-env ``e`` seeded ``s + e`` (Gymnasium's rule; 2 ms per pool), so runs reproduce as with
  any Gymnasium vector env. Seeds are taken modulo 2³¹ (envpool's int32).
* **no pickling**: a pool holds C++ threads, so a PPO checkpoint cannot keep the episodes in
  progress; a resumed run restarts them from a seeded reset, as for highway-env (never bit-identical).

Sub-envs of one density share one pool (envpool's config is per pool); every pool gets the step's
actions before any result is read, so the pools' threads step side by side.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector.utils import batch_space
from gymnasium.vector.vector_env import AutoresetMode

__all__ = ["EnvpoolHighway", "ENVPOOL_ID", "envpool_config", "copy_state"]

ENVPOOL_ID = "highway-fast-v0"
"""envpool's registration of highway-env's fast highway (same name, same defaults)."""

_SEED_MODULUS = 2**31


def envpool_config(config: dict[str, Any]) -> dict[str, Any]:
    """envpool's keyword arguments for a highway-env ``config`` (the family's ``TRIMMED_CONFIG``
    plus ``vehicles_density``). A key envpool has no knob for is refused, naming it, rather than
    silently dropped: a config that cannot be reproduced must not run on the fast backend."""
    obs = config.get("observation", {})
    expected_obs = {"type": "Kinematics", "features": ["presence", "x", "y", "vx", "vy"]}
    for key, value in expected_obs.items():
        if obs.get(key, value) != value:
            raise ValueError(f"envpool's highway has only the Kinematics observation {expected_obs}; "
                             f"got observation {key}={obs.get(key)!r}")
    if config.get("action", {}).get("type", "DiscreteMetaAction") != "DiscreteMetaAction":
        raise ValueError(f"envpool's highway has only DiscreteMetaAction; got {config['action']!r}")
    direct = ("lanes_count", "vehicles_count", "duration", "simulation_frequency", "policy_frequency",
              "vehicles_density")
    unknown = sorted(set(config) - set(direct) - {"observation", "action"})
    if unknown:
        raise ValueError(f"envpool's highway backend cannot reproduce config keys {unknown}")
    kwargs = {key: config[key] for key in direct if key in config}
    kwargs["observation_vehicles_count"] = obs.get("vehicles_count", 5)
    # The TimeLimit highway-env's family adds: the clock truncates after duration × policy_frequency steps.
    kwargs["max_episode_steps"] = int(config.get("duration", 30) * config.get("policy_frequency", 1))
    return kwargs


class EnvpoolHighway(gym.vector.VectorEnv):
    """A Gymnasium vector env whose sub-env ``e`` is envpool's highway at density ``densities[e]``.

    Semantics of ``SyncVectorEnv`` over highway-env: NEXT_STEP autoreset, ``reset(seed=s)`` seeds
    sub-env ``e`` with ``s + e`` (a list seeds each), infos hold ``crashed`` and ``speed`` per
    sub-env (with their ``_key`` masks).

    :param config: highway-env config without ``vehicles_density`` (see :func:`envpool_config`).
    :param threads: envpool threads per pool (1: the book runs one process per core).
    """

    metadata = {"autoreset_mode": AutoresetMode.NEXT_STEP}

    def __init__(self, densities: Sequence[float], config: dict[str, Any], threads: int = 1):
        import envpool  # a heavy import, only when the backend is used

        self._envpool = envpool
        self.densities = np.asarray(densities, dtype=np.float64).reshape(-1)
        self.num_envs = len(self.densities)
        self._kwargs = [envpool_config({**config, "vehicles_density": float(d)}) for d in self.densities]
        self._threads = int(threads)
        # Sub-envs of one density share a pool; _members[p] are pool p's sub-env indices.
        keys = [tuple(sorted(k.items())) for k in self._kwargs]
        self._members = [np.flatnonzero([k == key for k in keys]) for key in dict.fromkeys(keys)]
        probe = envpool.make_spec(ENVPOOL_ID, **self._kwargs[0])
        self.single_observation_space = probe.gymnasium_observation_space
        self.single_action_space = probe.gymnasium_action_space
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self._pools: list[Any] = []

    def _build(self, seeds: np.ndarray) -> None:
        self.close_extras()
        self._pools = [
            self._envpool.make_gymnasium(ENVPOOL_ID, num_envs=len(idx), seed=[int(s) for s in seeds[idx]],
                                         num_threads=self._threads, **self._kwargs[idx[0]])
            for idx in self._members
        ]

    def reset(self, *, seed: int | Sequence[int] | None = None, options: dict[str, Any] | None = None):
        if options:
            raise ValueError(f"EnvpoolHighway.reset takes no options, got {sorted(options)}")
        if seed is None:
            seeds = np.random.SeedSequence().generate_state(self.num_envs, np.uint32).astype(np.int64)
        elif np.ndim(seed) == 0:
            seeds = int(seed) + np.arange(self.num_envs, dtype=np.int64)
        else:
            seeds = np.asarray(seed, dtype=np.int64)
            if seeds.shape != (self.num_envs,):
                raise ValueError(f"reset got {seeds.size} seeds for {self.num_envs} sub-envs")
        self._build(seeds % _SEED_MODULUS)
        results = [pool.reset() for pool in self._pools]
        obs = self._gather([r[0] for r in results])
        return obs, self._infos([r[1] for r in results])

    def step(self, actions):
        if not self._pools:
            raise RuntimeError("EnvpoolHighway.step called before reset")
        actions = np.asarray(actions).reshape(self.num_envs)
        for pool, idx in zip(self._pools, self._members):
            pool.send(actions[idx].astype(np.int32))
        results = [pool.recv() for pool in self._pools]
        obs, reward, terminated, truncated = (self._gather([r[i] for r in results]) for i in range(4))
        return (obs, reward.astype(np.float64), terminated.astype(bool), truncated.astype(bool),
                self._infos([r[4] for r in results]))

    def _gather(self, parts: list[np.ndarray]) -> np.ndarray:
        """Pool results back in sub-env order."""
        first = np.asarray(parts[0])
        out = np.empty((self.num_envs, *first.shape[1:]), dtype=first.dtype)
        for idx, part in zip(self._members, parts):
            out[idx] = part
        return out

    def _infos(self, infos: list[dict[str, Any]]) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        for key in ("crashed", "speed"):
            out[key] = self._gather([np.asarray(info[key]) for info in infos])
            out[f"_{key}"] = np.ones(self.num_envs, dtype=bool)
        return out

    def debug_states(self) -> list[Any]:
        """envpool's full simulator state of each sub-env (vehicles' positions, speeds, lanes…), in
        sub-env order: what the fidelity checks copy into highway-env."""
        states: list[Any] = [None] * self.num_envs
        for pool, idx in zip(self._pools, self._members):
            for e, state in zip(idx, pool.debug_states()):
                states[e] = state
        return states

    def close_extras(self, **kwargs: Any) -> None:
        for pool in self._pools:
            pool.close()
        self._pools = []


def copy_state(env: gym.Env, state: Any) -> None:
    """Put highway-env's ``env`` (its unwrapped ``HighwayEnv``, reset once) into the state envpool
    reports (``EnvpoolHighway.debug_states()[e]``): every vehicle's position, heading, speed, lane,
    target lane and speed, lane-change timer, IDM exponent and crash flag, and the clock. The ego
    is envpool's first vehicle. What this leaves out (the road's history, vehicles' past actions)
    does not enter the next step."""
    from highway_env.vehicle.behavior import IDMVehicle
    from highway_env.vehicle.controller import MDPVehicle

    env = env.unwrapped
    road = env.road
    vehicles = []
    for i, v in enumerate(state.vehicles):
        cls = MDPVehicle if i == 0 else IDMVehicle
        vehicle = cls(road, [v.x, v.y], heading=v.heading, speed=v.speed)
        vehicle.lane_index = ("0", "1", int(v.lane_index))
        vehicle.lane = road.network.get_lane(vehicle.lane_index)
        vehicle.target_lane_index = ("0", "1", int(v.target_lane_index))
        vehicle.crashed, vehicle.check_collisions = bool(v.crashed), bool(v.check_collisions)
        vehicle.target_speed = v.target_speed
        if i == 0:
            vehicle.target_speeds = np.array([v.target_speed0, v.target_speed1, v.target_speed2])
            vehicle.speed_index = int(v.speed_index)
        else:
            vehicle.timer, vehicle.DELTA, vehicle.enable_lane_change = v.timer, v.idm_delta, bool(v.enable_lane_change)
        vehicles.append(vehicle)
    road.vehicles = vehicles
    env.controlled_vehicles = [vehicles[0]]
    # highway-env counts simulation frames in ``steps`` and acts on a frame that is a multiple of
    # frames per policy step; its ``time`` counts policy steps.
    env.time = state.time
    env.steps = int(state.elapsed_step) * int(state.simulation_frequency) // int(state.policy_frequency)

