"""Meta-World MT10 and MT50: robot-arm manipulation tasks, one task per kind of manipulation.

Meta-World 3.x (MuJoCo, headless). Unlike the other families, tasks differ in *what* the arm must
do (reach, push, open a door, ...), not in a physical constant: the task parameter is the task's
index in :data:`MT10_TASKS` or :data:`MT50_TASKS`, and :func:`task_names` gives the names for
plots. There are no unseen target tasks.

What is pinned, and why:

* **Goals.** Each task has 50 goal (object and target) positions, drawn once by
  ``metaworld.MT1(name, seed=GOAL_SEED)``; every reset picks one of them from the env's own
  seeded generator. Meta-World seeds an env at construction (``env.seed``), not in
  ``reset(seed=...)``, which it ignores: :class:`GoalSampling` routes ``reset(seed=s)`` to both,
  so Gymnasium's seeding convention reproduces runs.
* **Reward.** ``reward_function_version="v2"`` for every method (rewards in [0, 10] per step).
* **Episodes** are 500 steps (``max_path_length``), ended by truncation only: reaching the goal
  does not end an episode. ``info["success"]`` says whether the goal is reached at that step; a
  task is solved in an episode if it is reached at any step (the standard evaluation).
* **Observation** 39 numbers (hand, gripper, two objects, the previous frame's and the goal);
  the task one-hot is appended by the family (``observe_task``, on by default here as in MT-SAC).

Speed (``OMP_NUM_THREADS=1``, random actions, this 2-core machine): 1,400 (push, pick-place) to
4,500 (button-press) steps/s, about 2,500 on average over MT10's tasks; building MT10's goal
sets costs about 6 s per process, MT50's about 30 s, done once per process.
"""

from __future__ import annotations

import functools
from typing import Any, Sequence

import gymnasium as gym
import numpy as np

from pgx.envs.family import TaskFamily, as_param_array
from pgx.envs.gym_family import gym_family

__all__ = ["MT10_TASKS", "MT50_TASKS", "GOAL_SEED", "REWARD_VERSION", "EPISODE_STEPS", "mt10_family", "mt50_family",
           "make_mt10_env", "make_mt50_env", "task_names", "GoalSampling", "task_descriptions"]

GOAL_SEED = 0
"""Seed of each task's 50 goal positions (``metaworld.MT1(name, seed=GOAL_SEED)``)."""
REWARD_VERSION = "v2"
"""Meta-World's reward function version, the same for every method."""
EPISODE_STEPS = 500
"""Meta-World's ``max_path_length``."""


def _benchmark_tasks(benchmark: str) -> tuple[str, ...]:
    import metaworld.env_dict as env_dict

    return tuple(getattr(env_dict, f"{benchmark}_V3").keys())


MT10_TASKS: tuple[str, ...] = _benchmark_tasks("MT10")
"""MT10's tasks in Meta-World's order: reach, push, pick-place, door-open, drawer-open,
drawer-close, button-press-topdown, peg-insert-side, window-open, window-close."""
MT50_TASKS: tuple[str, ...] = _benchmark_tasks("MT50")


@functools.lru_cache(maxsize=None)
def _goals(name: str) -> tuple[Any, ...]:
    """The task's 50 pinned goals (``metaworld.types.Task``), built once per process."""
    import metaworld

    return tuple(metaworld.MT1(name, seed=GOAL_SEED).train_tasks)


class GoalSampling(gym.Wrapper):
    """Sets one of the task's 50 goals at every reset, drawn from this wrapper's seeded generator.

    ``reset(seed=s)`` seeds this generator and Meta-World's own (which its ``reset`` ignores), so
    a seed reproduces an episode; without a seed the generators continue.
    """

    def __init__(self, env: gym.Env, goals: Sequence[Any]):
        super().__init__(env)
        if not goals:
            raise ValueError("a Meta-World task needs at least one goal")
        self.goals = tuple(goals)
        self.goal_index = -1
        self._rng = np.random.default_rng()

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        if seed is not None:
            self._rng = np.random.default_rng(seed)
            self.env.unwrapped.seed(int(seed))
        self.goal_index = int(self._rng.integers(len(self.goals)))
        self.env.unwrapped.set_task(self.goals[self.goal_index])
        return self.env.reset(options=options)


def _make(names: tuple[str, ...], param: np.ndarray) -> gym.Env:
    index = _check_index(param, names)
    name = names[index]
    import metaworld.env_dict as env_dict

    env = env_dict.ALL_V3_ENVIRONMENTS[name](reward_function_version=REWARD_VERSION)
    env = GoalSampling(env, _goals(name))
    return gym.wrappers.TimeLimit(env, EPISODE_STEPS)


def make_mt10_env(param: np.ndarray) -> gym.Env:
    """MT10 task ``int(param[0])`` with goal sampling and a 500-step limit; module-level so
    worker processes can unpickle it."""
    return _make(MT10_TASKS, param)


def make_mt50_env(param: np.ndarray) -> gym.Env:
    """MT50 task ``int(param[0])``, as :func:`make_mt10_env`."""
    return _make(MT50_TASKS, param)


def _check_index(param: Any, names: tuple[str, ...]) -> int:
    values = as_param_array(np.atleast_1d(np.asarray(param, dtype=np.float64)).reshape(-1, 1), "task index")
    value = float(values[0, 0])
    if values.shape[0] != 1 or value != int(value) or not 0 <= value < len(names):
        raise ValueError(f"a Meta-World task parameter is one task index in [0, {len(names) - 1}], got {param!r}")
    return int(value)


def _tasks_from(names: tuple[str, ...], tasks: Sequence[str] | None, benchmark: str) -> tuple[int, ...]:
    if tasks is None:
        return tuple(range(len(names)))
    chosen = [t.strip() for t in (tasks.split("+") if isinstance(tasks, str) else tasks)]
    unknown = [t for t in chosen if t not in names]
    if unknown:
        raise ValueError(f"unknown {benchmark} task {unknown[0]!r}; its tasks are {list(names)}")
    if len(set(chosen)) != len(chosen) or len(chosen) < 2:
        raise ValueError(f"{benchmark} tasks must be at least 2 distinct names, got {chosen}")
    return tuple(names.index(t) for t in chosen)


def _family(benchmark: str, names: tuple[str, ...], make_env, tasks, processes: int) -> TaskFamily:
    ids = _tasks_from(names, tasks, benchmark)
    return gym_family(
        benchmark.lower(), make_env, [float(i) for i in ids], [], f"{benchmark} task",
        max_episode_steps=EPISODE_STEPS, processes=processes, reward_range=(0.0, 10.0 * EPISODE_STEPS),
        description=f"a Sawyer arm's manipulation tasks from Meta-World's {benchmark} ({len(ids)} tasks), "
                    f"500-step episodes, reward v2, 50 goals per task",
    )


def mt10_family(tasks: str | Sequence[str] | None = None, processes: int = 1) -> TaskFamily:
    """Meta-World MT10.

    :param tasks: a subset of MT10's task names, ``"reach-v3+push-v3"`` in a family spec
        (default: all ten).
    :param processes: worker processes for the sub-envs (1: in this process).
    """
    return _family("MT10", MT10_TASKS, make_mt10_env, tasks, processes)


def mt50_family(tasks: str | Sequence[str] | None = None, processes: int = 1) -> TaskFamily:
    """Meta-World MT50 (all 50 tasks), as :func:`mt10_family`."""
    return _family("MT50", MT50_TASKS, make_mt50_env, tasks, processes)


def task_names(family: TaskFamily) -> list[str]:
    """The Meta-World task name of each source task of ``family`` (``"reach-v3"``, ...)."""
    names = MT50_TASKS if family.name.split(":")[0] == "mt50" else MT10_TASKS
    return [names[int(p)] for p in as_param_array(family.source_params)[:, 0]]


def task_descriptions(names: Sequence[str]) -> list[str]:
    """A sentence per task, built from its name ("drawer-open-v3" → "drawer open"): the text
    CARE's task encoder embeds. The paper's CARE embeds hand-written descriptions with a
    pretrained language model, which cannot be downloaded here; the names carry the same
    object and verb words."""
    return [" ".join(n.removesuffix("-v3").split("-")) for n in names]
