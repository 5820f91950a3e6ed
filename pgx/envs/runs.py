"""Many training runs' vector envs behind one interface: stepped together where the family allows it.

``pgx.algos.ppo_batch.train_many`` trains R runs at once; run r has its own vector env of E sub-envs
(its subset's tasks), started as every training run starts (:func:`start_training_envs`: sub-env by
sub-env, from seeds keyed by the run's seed and the sub-env's task). Stepping R envs one by one
costs R Python calls per step (CartPole's Gymnasium vector env ~60 µs a call, 13% of a batched run).
A family whose base vector env computes every sub-env elementwise with numpy — CartPole's
``CartPoleVectorEnv``, navigation's ``NavigationVectorEnv`` — can step all R × E sub-envs in one
env: the arithmetic of each sub-env is the same elementwise arithmetic on a longer array. What would
differ is the randomness, because one vector env draws every sub-env's reset state from one
generator. :class:`BlockRNG` stands in for that generator: each draw is split into the runs' blocks
and each block is drawn from its run's own generator, seeded as the run's own env's would be, at the
size the run's own env would have asked for (a size-0 draw leaves a generator's state alone, so a
run with nothing to reset draws nothing). Run r's sub-envs therefore see what they would see in
their own env, bit for bit (``tests/test_ppo_batch.py``).

The family says whether it can be merged, and along which axis its base env's draws lay out the
sub-envs: :attr:`pgx.envs.TaskFamily.merge_axis` (CartPole draws ``(4, k)`` states: axis 1;
navigation ``(k, 2)`` starts: axis 0). Families without it (LunarLander's Box2D, highway's
envpool pools, Meta-World) keep one env per run: :class:`SeparateRuns`.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
from gymnasium.utils import seeding

from pgx.envs.family import TaskFamily, as_param_array

__all__ = ["BlockRNG", "MergedRuns", "SeparateRuns", "run_envs", "reset_each", "task_seeds", "start_training_envs"]


class BlockRNG:
    """A merged env's ``np_random``: a draw for the sub-envs in :attr:`pending` is split into the
    runs' blocks of ``block`` sub-envs along ``axis``, each block drawn from its run's generator.

    Only ``uniform`` with scalar bounds is supported (all the numpy families draw); anything else
    is refused by name rather than silently drawn from a shared stream.
    """

    def __init__(self, generators: Sequence[np.random.Generator], block: int, axis: int):
        self.generators, self.block, self.axis = list(generators), int(block), int(axis)
        self.pending = np.ones(len(self.generators) * self.block, dtype=bool)
        """``(R * block,)`` bool: the sub-envs the env's next draws are for (set before each call)."""

    def uniform(self, low: Any = 0.0, high: Any = 1.0, size: Any = None) -> np.ndarray:
        if np.ndim(low) or np.ndim(high) or size is None:
            raise TypeError(f"BlockRNG draws uniform(low, high, size) with scalar bounds and a size only; got "
                            f"low={low!r}, high={high!r}, size={size!r}")
        size = (size,) if np.ndim(size) == 0 else tuple(size)
        counts = self.pending.reshape(len(self.generators), self.block).sum(1)
        if size[self.axis] != counts.sum():
            raise ValueError(f"a draw of size {size} along axis {self.axis} is not for the {int(counts.sum())} "
                             "pending sub-envs: the family's merge_axis does not match its env")
        parts = [g.uniform(low, high, size=size[:self.axis] + (int(c),) + size[self.axis + 1:])
                 for g, c in zip(self.generators, counts) if c]  # a size-0 draw would change no state
        return np.concatenate(parts, axis=self.axis) if parts else np.zeros(size)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):  # copy, pickle and hasattr probe dunders: not a draw
            raise AttributeError(name)
        raise TypeError(f"BlockRNG supports uniform() only; the env asked for {name!r}: set the family's "
                        "merge_axis to None so its runs keep envs of their own")


class SeparateRuns:
    """One vector env per run, stepped one after another: every family."""

    def __init__(self, family: TaskFamily, subsets: Sequence[Sequence[int]], envs_per_task: int):
        self.family = family
        self.tasks = [family.source_env_tasks(s, envs_per_task) for s in subsets]
        self.envs = []
        try:
            for subset in subsets:
                self.envs.append(family.source_envs(subset, envs_per_task))
        except BaseException:
            self.close()
            raise

    def reset(self, seeds: Sequence[int]) -> np.ndarray:
        """``(R, E, obs_dim)``: run r's env started with ``seeds[r]`` as a training run starts its own
        (:func:`start_training_envs`)."""
        return np.stack([start_training_envs(self.family, env, seed, tasks)
                         for env, seed, tasks in zip(self.envs, seeds, self.tasks)])

    def step(self, actions: np.ndarray) -> tuple:
        """``actions (R, E, ...)`` → Gymnasium's ``obs, reward, terminated, truncated, info``, the
        arrays ``(R, E, ...)`` (the runs' infos are dropped: ``{}``)."""
        out = [env.step(a)[:4] for env, a in zip(self.envs, actions)]
        return (*(np.stack([o[i] for o in out]) for i in range(4)), {})

    def close(self) -> None:
        for env in self.envs:
            env.close()


class MergedRuns:
    """Every run's sub-envs in one vector env of R × E sub-envs (run-major), randomness per run."""

    def __init__(self, family: TaskFamily, subsets: Sequence[Sequence[int]], envs_per_task: int):
        if family.merge_axis is None:
            raise ValueError(f"{family.name}: the family's envs cannot be merged (merge_axis is None)")
        self.tasks = [family.source_env_tasks(s, envs_per_task) for s in subsets]
        ids = np.concatenate(self.tasks)
        self.runs, self.block = len(subsets), len(ids) // len(subsets)
        self.env = family.envs(as_param_array(family.source_params)[ids], ids)
        self.axis = family.merge_axis
        self.rng: BlockRNG | None = None
        self.resetting = np.zeros(len(ids), dtype=bool)
        """The sub-envs whose next step is an autoreset (NEXT_STEP): what that step's draws are for."""

    def reset(self, seeds: Sequence[int]) -> np.ndarray:
        """Each run started as :func:`start_training_envs` starts its own env: sub-env by sub-env
        from its (seed, task) seed, then the run's later resets from its first sub-env's seed."""
        per_env = [s for seed, tasks in zip(seeds, self.tasks) for s in task_seeds(seed, tasks)]
        base = self.env.unwrapped
        base.np_random = BlockRNG([seeding.np_random(s)[0] for s in per_env], 1, self.axis)
        obs, _ = self.env.reset()  # no seed: the base env keeps the BlockRNG
        self.rng = BlockRNG([seeding.np_random(per_env[r * self.block])[0] for r in range(self.runs)], self.block,
                            self.axis)
        base.np_random = self.rng
        self.resetting[:] = False
        return obs.reshape(self.runs, self.block, -1)

    def step(self, actions: np.ndarray) -> tuple:
        """As :meth:`SeparateRuns.step`; the autoreset steps' draws come from their runs' generators."""
        self.rng.pending = self.resetting
        flat = np.asarray(actions).reshape(self.runs * self.block, *np.shape(actions)[2:])
        obs, reward, terminated, truncated, _ = self.env.step(flat)
        self.resetting = np.logical_or(terminated, truncated)
        shape = (self.runs, self.block)
        return (obs.reshape(*shape, -1), np.asarray(reward).reshape(shape),
                np.asarray(terminated).reshape(shape), np.asarray(truncated).reshape(shape), {})

    def close(self) -> None:
        self.env.close()


def run_envs(family: TaskFamily, subsets: Sequence[Sequence[int]], envs_per_task: int,
             merge: bool = True) -> MergedRuns | SeparateRuns:
    """The runs' envs: merged into one where the family allows it and ``merge``, else one per run."""
    if merge and family.merge_axis is not None:
        return MergedRuns(family, subsets, envs_per_task)
    return SeparateRuns(family, subsets, envs_per_task)


def reset_each(family: TaskFamily, env, seeds: Sequence[int]) -> tuple[np.ndarray, dict]:
    """Reset sub-env e of ``env`` (one of ``family``'s vector envs) as if it were an env of its own
    reset with ``seeds[e]``: Gymnasium's list-of-seeds reset where the env takes one (vector envs
    of single envs, envpool's highway); for a numpy family's single vector env (``merge_axis``,
    which seeds one generator for all its sub-envs) each sub-env's reset draws come from its own
    generator through :class:`BlockRNG`. Later autoresets draw from one generator seeded
    ``seeds[0]``: callers that reset this way (evaluation) play one episode per sub-env."""
    seeds = [int(s) for s in seeds]
    if len(seeds) != env.num_envs:
        raise ValueError(f"reset_each got {len(seeds)} seeds for {env.num_envs} sub-envs")
    if family.merge_axis is None:
        return env.reset(seed=seeds)
    base = env.unwrapped
    base.np_random = BlockRNG([seeding.np_random(s)[0] for s in seeds], 1, family.merge_axis)
    try:
        return env.reset()
    finally:
        base.np_random = seeding.np_random(seeds[0])[0]


def task_seeds(seed: int, sub_env_tasks: Sequence[int]) -> list[int]:
    """The reset seed of each sub-env of a training run, keyed by ``(seed, task, j)`` for the j-th
    sub-env of its task: the same task starts the same way in every subset a run of that seed
    trains on (common random numbers across subsets), and no sub-env of seed s shares its starts
    with another sub-env of seed s + 1 (Gymnasium's ``seed + i`` rule would)."""
    seen: dict[int, int] = {}
    seeds = []
    for task in (int(t) for t in sub_env_tasks):
        j = seen.get(task, 0)
        seen[task] = j + 1
        seeds.append(int(np.random.SeedSequence([int(seed), task, j]).generate_state(1)[0]))
    return seeds


def start_training_envs(family: TaskFamily, env, seed: int, sub_env_tasks: Sequence[int]) -> np.ndarray:
    """Reset a training run's env (PPO's, SAC's, each run of a batch) at its start or restart: sub-env
    e from :func:`task_seeds` through :func:`reset_each`. Returns the first observations."""
    return reset_each(family, env, task_seeds(seed, sub_env_tasks))[0]
