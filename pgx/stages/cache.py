"""What every stage shares: the on-disk cache and the checks of stage arguments.

Each stage is a module-level function of ``(family spec, profile, seed)`` cached on disk with
``joblib.Memory`` through :func:`cached`. joblib sees only the wrapper's code, not the stage's or
what it calls, so every stage passes :func:`pgx.keys.key_version` of its module and the family as
an argument: an edit that can change a stage's result re-runs it, and an edit elsewhere (a
docstring, a chapter helper, a module no stage imports, another family's module) does not (the
rule is :mod:`pgx.keys`'s). Every result is written with a checksum beside it and checked when
loaded; a damaged one is recomputed. Results are small dataclasses; their recorded ``wall_time``
is the time the stage took when it was computed, not when it was loaded.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import io
import warnings
from pathlib import Path

import joblib

from pgx import progress
from pgx.envs import make_family
from pgx.keys import cache_dir
from pgx.profiles import Profile
from pgx.runtime import _first_line, atomic_write, is_damage, is_int

__all__ = ["memory", "cached", "stage_args"]


memory = joblib.Memory(cache_dir() / "stages", verbose=0)


def cached(fn):
    """``memory.cache`` that also keeps the warnings a stage raised while computing, and raises them
    again each time the result is loaded: a solver that did not converge while the cache was
    filled still says so in every later build. Deprecation warnings are not kept."""

    signature = inspect.signature(fn)

    def computing(*args, **kwargs):
        arguments = signature.bind_partial(*args, **kwargs).arguments
        with warnings.catch_warnings(record=True) as caught, \
                progress.stage_running(fn.__name__, arguments, cache_dir() / "timings"):
            warnings.simplefilter("always")
            result = fn(*args, **kwargs)
        kept = [(w.category, str(w.message)) for w in caught
                if not issubclass(w.category, (DeprecationWarning, PendingDeprecationWarning))]
        return result, list(dict.fromkeys(kept))  # each distinct warning once

    # joblib files results under the function's module and name: the stage's, not this wrapper's.
    computing.__module__, computing.__name__, computing.__qualname__ = fn.__module__, fn.__name__, fn.__qualname__
    computing.__signature__ = signature  # arguments hashed by name, however they were passed
    store = memory.cache(computing)
    # joblib compares a stage's source with the one stored beside its results on the stage's first
    # call, and wipes every result of the stage if they differ; it reads that source from disk
    # once, lazily. Read it now, at import: a process that read it after an edit of this file would
    # read the wrong lines, and a long run would wipe the cache of every stage it had not yet called.
    store.func_code_info  # noqa: B018 (read for its side effect: joblib keeps it)

    @functools.wraps(fn)
    def call(*args, **kwargs):
        result, kept = _load_or_compute(store, args, kwargs)
        for category, message in kept:
            warnings.warn(f"[{fn.__name__.lstrip('_')}] {message}", category, stacklevel=2)
        return result

    call.store = store  # the joblib MemorizedFunc, for tests and cache tools

    return call


def _load_or_compute(store, args: tuple, kwargs: dict) -> tuple:
    """``store(*args, **kwargs)``, except where the stored result cannot be read (a file cut short
    by a full disk or a killed copy, garbage): joblib would log a traceback and recompute; here
    the warning names the file, and the result is recomputed and written over it (atomically, by
    joblib). A stage result is a pure function of its key, so recomputing it is always right. Only
    the errors of a damaged file count (``runtime.is_damage``): an unreadable directory, a full
    memory or a missing module is raised, not papered over by hours of recomputation."""
    if not store.check_call_in_cache(*args, **kwargs):
        result, kept = store(*args, **kwargs)
        _seal(_output_path(store, args, kwargs))
        return result, kept
    path = _output_path(store, args, kwargs)
    try:
        data = path.read_bytes()  # read once: checked against its checksum, then unpickled
        _check_seal(path, data)
        result, kept = joblib.numpy_pickle.load(io.BytesIO(data))
        if not isinstance(kept, list):
            raise TypeError(f"expected (result, warnings), got warnings of type {type(kept).__name__}")
    except Exception as e:
        if not is_damage(e):
            e.add_note(f"while loading stage cache file {path}")  # the type is kept, for callers that catch it
            raise
        warnings.warn(f"stage cache file {path} cannot be read ({_first_line(e)}); "
                      f"recomputing {store.func.__name__} and overwriting it", RuntimeWarning, stacklevel=3)
        result, kept = store.call(*args, **kwargs)[0]
        _seal(path)
    return result, kept


class DamagedResult(ValueError):
    """A stage result whose bytes no longer match the checksum written beside them."""


def _output_path(store, args: tuple, kwargs: dict) -> Path:
    """Where joblib keeps this call's result (its layout: location/function/arguments/output.pkl),
    found without asking joblib for the result, which would compute it again if it were missing."""
    return Path(store.store_backend.location, store.func_id, store._get_args_id(*args, **kwargs), "output.pkl")


def _seal_path(path: Path) -> Path:
    return path.with_name("output.sha256")


def _seal(path: Path) -> None:
    """Write the sha256 of a result file just written beside it (atomically): a pickle whose bytes
    flip later can still load without error (a bit-flip test found half of the damaged files did),
    so only a checksum tells a damaged result from a good one."""
    if not path.is_file():  # joblib could not persist the result (it warned): nothing to seal
        return
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    atomic_write(_seal_path(path), lambda tmp: tmp.write_text(digest))


def _check_seal(path: Path, data: bytes) -> None:
    """Raise :class:`DamagedResult` (a damage error: the result is recomputed) where ``data``, the
    result file's bytes, does not match its checksum, or it has none (written by a process killed
    between the two writes)."""
    seal = _seal_path(path)
    if not seal.is_file():
        raise DamagedResult(f"no checksum {seal.name} beside it")
    if hashlib.sha256(data).hexdigest() != seal.read_text().strip():
        raise DamagedResult(f"its bytes do not match the checksum in {seal.name}")


def stage_args(family_name: str, profile: Profile, seed: int) -> Profile:
    """Check a stage's arguments before any work and return the profile's budgets for the family.

    An unknown family or a bad family option fails here (``make_family``), as do a profile that
    is not a :class:`Profile` and a negative or non-integer seed.
    """
    make_family(family_name)
    if not isinstance(profile, Profile):
        raise ValueError(f"profile must be a pgx.profiles.Profile, got {type(profile).__name__}")
    if not is_int(seed) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    return profile.for_family(family_name)
