"""Many stage calls at once, over the cores: the second core of a laptop is not left idle.

Why: most stages run one process's worth of work — a meta-training, a MAML run, one family's
ground truth up to its fine-tuning — so a chapter that loops over families and seeds keeps one of
two cores busy. The calls of such a loop are independent (each has its own key), so
:func:`compute_many` computes the ones not yet cached in worker processes (joblib's loky, longest
expected first), each stage storing its own result as it always does, then loads every result here
in the order asked. A result is the same whichever process computed it: it is the stage's, keyed
and stored by the stage.

Inside a worker (and where only one call is missing, or one core is there) the calls simply run
one after another in this process. A call a fresh process could not rebuild runs here too: a stage
defined in ``__main__`` (a script, a notebook), or a family registered there or by a module that
``$PGX_PLUGINS`` does not name. In a worker the stage's own joblib calls (the ground truth's
fine-tuning) run sequentially, in that worker, as they would with ``n_jobs=1``.

This module decides where a call runs, never what it computes, so no stage's key hashes it
(:data:`pgx.keys.REPORTING_MODULES`): a fix to it re-runs nothing, so it must not change which
result a caller receives — the tests pin the order and the one-computation-per-key rule.
"""

from __future__ import annotations

import os
import pickle
import traceback
from collections.abc import Iterable, Sequence
from typing import Any

import joblib
from tqdm.auto import tqdm

from pgx import progress
from pgx.envs import load_plugins, parse_family_spec, registry_entry
import pgx.stages.cache as cache  # noqa: I001 (a module import: no cycle through pgx.stages' __init__)
from pgx.stages.graph import Call

__all__ = ["compute_many"]

_CACHE_ENV = "PGX_CACHE"
_SHARED_ENV = (_CACHE_ENV, progress.PROGRESS_ENV, "PGX_DEVICE", "PGX_PLUGINS")
"""Environment a worker takes from its caller: the cache, the progress file, the device, the plugins."""
_WORKER_ENV = "PGX_STAGE_WORKER"
"""Set in a worker of :func:`compute_many`: a nested call runs its calls in that worker."""


def compute_many(calls: Iterable[Call], n_jobs: int = -1) -> list[Any]:
    """Every call's result, in order; the uncached ones computed ``n_jobs`` at a time (-1: every core).

    ``calls`` are :meth:`pgx.stages.graph.Stage.call` objects, e.g.
    ``compute_many(meta_train.call(spec, profile, seed) for spec in families)``. Calls with one key
    are computed once. An error in a worker is raised here once the other calls have finished and
    been stored, so a rerun computes only what failed.
    """
    if isinstance(n_jobs, bool) or not isinstance(n_jobs, int) or n_jobs == 0:
        raise ValueError(f"n_jobs must be a non-zero int (-1: every core), got {n_jobs!r}")
    calls = list(calls)
    if not all(isinstance(c, Call) for c in calls):
        bad = next(c for c in calls if not isinstance(c, Call))
        raise TypeError(f"compute_many takes Stage.call(...) objects, got {type(bad).__name__}: {bad!r}")
    missing = [c for c in _missing(calls) if _portable(c)]  # the others are computed below, here
    workers = min(len(missing), 1 if os.environ.get(_WORKER_ENV) else joblib.effective_n_jobs(n_jobs))
    if workers > 1:
        # Everything a worker must share with this process, set on every call: a reused worker
        # may have run a call of another caller (an empty value reads as unset).
        environment = {name: os.environ.get(name, "") for name in _SHARED_ENV}
        environment[_CACHE_ENV] = str(cache.cache_dir())
        names = sorted({c.stage.__name__.lstrip("_") for c in missing})
        jobs = (joblib.delayed(_compute_in_worker)(c, environment) for c in _longest_first(missing))
        errors = []
        with tqdm(total=len(missing), desc=f"{', '.join(names)}: {len(missing)} calls over {workers} processes") as bar:
            for error in joblib.Parallel(n_jobs=workers, batch_size=1, return_as="generator_unordered")(jobs):
                if error is not None:
                    errors.append(error)
                bar.update(1)
        if errors:  # raised once every other call has finished and is stored: a rerun resumes
            errors[0].add_note(f"(raised in a worker process; {len(missing) - len(errors)} of the {len(missing)} "
                               f"calls computed were stored, {len(errors)} failed)")
            raise errors[0]
    return [c() for c in calls]


def _missing(calls: Sequence[Call]) -> list[Call]:
    """The calls whose result is not in the cache, one per key (a damaged result is left to the
    stage, which recomputes it here with its warning)."""
    seen, missing = set(), []
    for c in calls:
        folder = c.folder()
        if folder not in seen and not (folder / "output.pkl").is_file():
            missing.append(c)
        seen.add(folder)
    return missing


def _portable(call: Call) -> bool:
    """Whether a fresh worker process can rebuild ``call``: its stage importable by name, its family
    built in or registered by a module ``$PGX_PLUGINS`` names (the worker imports those)."""
    if call.stage.__module__ == "__main__":
        return False
    spec = call.arguments().get(call.stage.family_parameter) if call.stage.family_parameter else None
    if not isinstance(spec, str):
        return True
    entry = registry_entry(parse_family_spec(spec)[0])
    plugins = {n.strip() for n in os.environ.get("PGX_PLUGINS", "").split(",") if n.strip()}
    return isinstance(entry, str) or getattr(entry, "__module__", None) in plugins


def _longest_first(calls: list[Call]) -> list[Call]:
    """The calls ordered by the time each took when last computed here, longest first (unknown ones
    first, in the order given): the last call to start is then a short one, and the cores finish
    together."""
    timings = cache.cache_dir() / "timings"

    def expected(c: Call) -> float:
        seconds = progress.expected_seconds(timings, progress.describe(c.stage.__name__, c.arguments()))
        return float("inf") if seconds is None else seconds

    return sorted(calls, key=expected, reverse=True)  # sorted is stable: ties keep their order


def _compute_in_worker(call: Call, environment: dict[str, str]) -> BaseException | None:
    """Compute ``call`` in a worker with the caller's cache and progress file (a reused worker may
    have started under another environment), storing its result where the caller will load it.
    An error is returned, not raised, so that the other workers' calls run to their end."""
    before = {name: os.environ.get(name) for name in [*environment, _WORKER_ENV]}
    os.environ.update(environment, **{_WORKER_ENV: "1"})
    try:
        load_plugins()
        with joblib.parallel_config(backend="sequential"):  # the stage's own joblib calls: here, in order
            call()
        return None
    except Exception as error:
        error.add_note("worker traceback:\n" + "".join(traceback.format_exception(error)))
        try:
            pickle.loads(pickle.dumps(error))  # it must also unpickle, or the caller gets joblib's error
            return error
        except Exception:  # an error that cannot travel back is sent as its text
            return RuntimeError(f"{type(error).__name__}: {error}\n" + "\n".join(getattr(error, "__notes__", [])))
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
