"""Sub-environments stepped in a few worker processes: parallelism for slow scalar envs.

Gymnasium's ``AsyncVectorEnv`` starts one process per sub-env, so 40 highway envs on a 2-core
machine would be 40 processes (and 40 imports of highway-env) contending for 2 cores. Here each of
``processes`` workers holds a contiguous block of the sub-envs in a ``SyncVectorEnv`` and steps
them in turn; the parent sends every worker its slice of the actions before waiting for any reply,
then concatenates the replies in sub-env order.

Semantics are ``SyncVectorEnv``'s, sub-env by sub-env, so results are bit-identical to
``SyncVectorEnv(env_fns)``: NEXT_STEP autoreset (done inside each worker's ``SyncVectorEnv``),
``reset(seed=s)`` seeds sub-env ``i`` with ``s + i``, and infos are merged per sub-env index into
the same ``{key: values, "_key": mask}`` arrays (where workers disagree on a value's dtype, the
common dtype is used rather than the first sub-env's). ``reset`` options are passed on except
``reset_mask``, which no caller needs and which is refused.

Workers start from the ``"forkserver"`` context: forking a parent that already runs torch's thread
pools can deadlock the child. ``env_fns`` are therefore pickled, so they must be module-level
functions or ``functools.partial`` of them, not lambdas or closures; and, as with any non-fork
start method, a script that builds one must guard its entry point with
``if __name__ == "__main__":`` (``python -m pgx`` and notebooks need nothing).
"""

from __future__ import annotations

import multiprocessing as mp
import pickle
import traceback
from collections.abc import Callable, Sequence
from itertools import pairwise
from multiprocessing.connection import Connection
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.vector.utils import batch_space
from gymnasium.vector.vector_env import AutoresetMode

__all__ = ["ProcessVectorEnv"]

_ARRAY_SPACES = (spaces.Box, spaces.Discrete, spaces.MultiDiscrete, spaces.MultiBinary)
"""Single-env spaces whose batches are plain arrays, so worker slices concatenate along axis 0."""


class ProcessVectorEnv(gym.vector.VectorEnv):
    """``len(env_fns)`` scalar envs split into ``processes`` contiguous blocks, one worker process each.

    :param env_fns: picklable callables returning the sub-envs; sub-env ``i`` is ``env_fns[i]()``.
    :param processes: number of worker processes, in ``[1, len(env_fns)]``.
    :param context: ``multiprocessing`` start method; ``"fork"`` is unsafe once torch is imported.
    """

    def __init__(self, env_fns: Sequence[Callable[[], gym.Env]], processes: int, *, context: str = "forkserver"):
        fns = list(env_fns)
        if not fns:
            raise ValueError("env_fns is empty; a vector env needs at least one sub-env")
        if not isinstance(processes, int) or not 1 <= processes <= len(fns):
            raise ValueError(f"processes must be an int in [1, {len(fns)}] (at most one per sub-env), "
                             f"got {processes!r}")
        self.num_envs = len(fns)
        bounds = np.linspace(0, self.num_envs, processes + 1).round().astype(int)
        self._slices = [slice(int(a), int(b)) for a, b in pairwise(bounds)]
        self._conns: list[Connection] = []
        self._workers: list[mp.process.BaseProcess] = []
        ctx = mp.get_context(context)
        try:
            for w, block in enumerate(self._slices):
                parent_end, child_end = ctx.Pipe()
                worker = ctx.Process(target=_worker, args=(child_end, fns[block]), daemon=True,
                                     name=f"ProcessVectorEnv-{w}")
                self._conns.append(parent_end)
                self._workers.append(worker)
                try:
                    worker.start()
                except (pickle.PicklingError, AttributeError, TypeError) as e:
                    raise ValueError(
                        f"env_fns must be picklable (module-level functions or functools.partial of them), "
                        f"got {fns[block][0]!r}: {e}"
                    ) from e
                finally:
                    child_end.close()
            ready = self._receive()
        except BaseException:
            self.close(timeout=0.0)
            raise
        observation_space, action_space, metadata, render_mode = ready[0]
        for w, (obs_space, act_space, _, _) in enumerate(ready[1:], start=1):
            if obs_space != observation_space or act_space != action_space:
                self.close(timeout=0.0)
                raise ValueError(f"worker {w}'s spaces ({obs_space}, {act_space}) differ from worker 0's "
                                 f"({observation_space}, {action_space}); all sub-envs must share their spaces")
        for what, space in (("observation", observation_space), ("action", action_space)):
            if not isinstance(space, _ARRAY_SPACES):
                self.close(timeout=0.0)
                raise ValueError(f"ProcessVectorEnv needs Box, Discrete, MultiDiscrete or MultiBinary spaces; "
                                 f"the {what} space is {space}")
        self.single_observation_space, self.single_action_space = observation_space, action_space
        self.observation_space = batch_space(observation_space, self.num_envs)
        self.action_space = batch_space(action_space, self.num_envs)
        self.metadata = {**metadata, "autoreset_mode": AutoresetMode.NEXT_STEP}
        self.render_mode = render_mode

    # --- the VectorEnv interface ---

    def reset(self, *, seed: int | list[int | None] | None = None, options: dict[str, Any] | None = None):
        """Reset every sub-env; ``seed`` as in ``SyncVectorEnv`` (an int ``s`` seeds sub-env ``i`` with ``s + i``)."""
        if options is not None and "reset_mask" in options:
            raise ValueError("ProcessVectorEnv.reset does not support options['reset_mask']; reset all sub-envs")
        seeds = self._seeds(seed)
        results = self._request("reset", [(seeds[block], options) for block in self._slices])
        return np.concatenate([obs for obs, _ in results]), self._merge_infos([info for _, info in results])

    def step(self, actions: Any):
        """Step every sub-env with its row of ``actions`` (num_envs, ...)."""
        actions = np.asarray(actions)
        if actions.ndim == 0 or actions.shape[0] != self.num_envs:
            raise ValueError(f"actions must have {self.num_envs} rows (one per sub-env), got shape {actions.shape}")
        results = self._request("step", [actions[block] for block in self._slices])
        obs, rewards, terminated, truncated, infos = zip(*results)
        return (np.concatenate(obs), np.concatenate(rewards), np.concatenate(terminated), np.concatenate(truncated),
                self._merge_infos(list(infos)))

    def call(self, name: str, *args: Any, **kwargs: Any) -> tuple[Any, ...]:
        """``SyncVectorEnv.call`` on every worker: one result per sub-env, in sub-env order."""
        results = self._request("call", [(name, args, kwargs)] * len(self._slices))
        return tuple(value for block in results for value in block)

    def get_attr(self, name: str) -> tuple[Any, ...]:
        """The attribute ``name`` of every sub-env, in sub-env order."""
        return self.call(name)

    def close_extras(self, timeout: float = 5.0) -> None:
        """Ask workers to close their envs and exit; terminate any still alive after ``timeout`` seconds."""
        for conn in self._conns:
            try:
                conn.send(("close", None))
            except (BrokenPipeError, OSError):
                pass
        for worker in self._workers:
            if worker.pid is None:
                continue
            worker.join(timeout)
            if worker.is_alive():
                worker.terminate()
                worker.join()
        for conn in self._conns:
            conn.close()

    def __del__(self) -> None:
        if not getattr(self, "closed", True) and hasattr(self, "_workers"):
            self.close(timeout=0.0)

    # --- plumbing ---

    def _seeds(self, seed: int | list[int | None] | None) -> list[int | None]:
        if seed is None:
            return [None] * self.num_envs
        if isinstance(seed, (int, np.integer)):
            return [int(seed) + i for i in range(self.num_envs)]
        seeds = list(seed)
        if len(seeds) != self.num_envs:
            raise ValueError(f"a list of seeds needs one per sub-env ({self.num_envs}), got {len(seeds)}")
        return seeds

    def _request(self, command: str, payloads: list[Any]) -> list[Any]:
        """Send every worker its payload first, so they work in parallel, then collect the replies."""
        if self.closed:
            raise RuntimeError("ProcessVectorEnv is closed")
        try:
            for conn, payload in zip(self._conns, payloads):
                conn.send((command, payload))
            return self._receive()
        except BaseException:
            self.close(timeout=0.0)
            raise

    def _receive(self) -> list[Any]:
        """One reply per worker; a worker's exception is re-raised here once all have answered."""
        replies = []
        for w, (conn, worker) in enumerate(zip(self._conns, self._workers)):
            try:
                replies.append(conn.recv())
            except EOFError:
                worker.join(timeout=1.0)
                replies.append((False, (RuntimeError(f"worker {w} died (exit code {worker.exitcode})"), "")))
        for w, (ok, payload) in enumerate(replies):
            if not ok:
                error, remote_traceback = payload
                block = self._slices[w]
                raise error from _RemoteTraceback(
                    f"in worker {w} (sub-envs {block.start}..{block.stop - 1}):\n{remote_traceback}")
        return [payload for _, payload in replies]

    def _merge_infos(self, parts: list[dict[str, Any]]) -> dict[str, Any]:
        return _merge_infos(list(zip(self._slices, parts)), self.num_envs)


class _RemoteTraceback(Exception):
    """Carries a worker's traceback as the ``__cause__`` of the exception re-raised in the parent."""

    def __str__(self) -> str:
        return self.args[0]


def _merge_infos(parts: list[tuple[slice, dict[str, Any]]], num_envs: int) -> dict[str, Any]:
    """Workers' batched infos ``(block, {key: values, "_key": mask})`` → one info over all sub-envs."""
    merged: dict[str, Any] = {}
    keys = dict.fromkeys(key for _, info in parts for key in info if f"_{key}" in info)
    for key in keys:
        present = [(block, info[key], info[f"_{key}"]) for block, info in parts if key in info]
        mask = np.zeros(num_envs, dtype=np.bool_)
        for block, _, block_mask in present:
            mask[block] = block_mask
        if isinstance(present[0][1], dict):
            merged[key] = _merge_infos([(block, values) for block, values, _ in present], num_envs)
        else:
            dtype = np.result_type(*(values.dtype for _, values, _ in present))
            shape = (num_envs, *present[0][1].shape[1:])
            array = np.full(shape, None, dtype=object) if dtype == object else np.zeros(shape, dtype=dtype)
            for block, values, _ in present:
                array[block] = values
            merged[key] = array
        merged[f"_{key}"] = mask
    return merged


def _worker(conn: Connection, env_fns: list[Callable[[], gym.Env]]) -> None:
    """Serve ``(command, payload)`` requests for one block of sub-envs until told to close.

    Replies are ``(True, result)`` or ``(False, (exception, traceback))``; after an error the
    worker exits, since its envs may be half-stepped.
    """
    env = None
    try:
        env = gym.vector.SyncVectorEnv(env_fns, copy=False)  # the pipe copies anyway
        conn.send((True, (env.single_observation_space, env.single_action_space, env.metadata, env.render_mode)))
        while True:
            command, payload = conn.recv()
            if command == "step":
                result = env.step(payload)
            elif command == "reset":
                seeds, options = payload
                result = env.reset(seed=seeds, options=options)
            elif command == "call":
                name, args, kwargs = payload
                result = env.call(name, *args, **kwargs)
            elif command == "close":
                return
            else:
                raise ValueError(f"unknown ProcessVectorEnv command {command!r}")
            conn.send((True, result))
    except KeyboardInterrupt:
        pass
    except Exception as error:
        conn.send((False, (_picklable(error), traceback.format_exc())))
    finally:
        if env is not None:
            env.close()
        conn.close()


def _picklable(error: Exception) -> Exception:
    """The exception itself if it survives the pipe, else a RuntimeError with its type and message."""
    try:
        pickle.loads(pickle.dumps(error))
        return error
    except Exception:
        return RuntimeError(f"{type(error).__name__}: {error}")
