"""What every stage shares: the on-disk cache, its code version, and the checks of stage arguments.

Each stage is a module-level function of ``(family spec, profile, seed)`` cached on disk with
``joblib.Memory`` through :func:`cached`. joblib sees only the wrapper's code, not the stage's or
what it calls, so every cache key carries ``CODE_VERSION``, a hash of pgx's sources but the
presentation modules (``PRESENTATION``): any edit to code a stage can call re-runs the stages
(correct, if slow while developing). Results are small dataclasses; their recorded
``wall_time`` is the time the stage took when it was computed, not when it was loaded.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import os
import warnings
from pathlib import Path

import joblib

from pgx.envs import make_family
from pgx.profiles import Profile
from pgx.runtime import is_int

__all__ = ["CODE_VERSION", "cache_dir", "memory", "cached", "stage_args"]


PRESENTATION = ("cli.py", "plots.py", "report.py")
"""Modules that only show results: editing them leaves every stage's result as it was."""


def _code_version() -> str:
    digest = hashlib.sha256()
    root = Path(__file__).parents[1]
    for path in sorted(p for p in root.rglob("*.py") if p.relative_to(root).as_posix() not in PRESENTATION):
        digest.update(path.relative_to(root).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


CODE_VERSION = _code_version()


def cache_dir() -> Path:
    """``$PGX_CACHE``, else ``~/.cache/pgx``: stage results and training checkpoints live here."""
    return Path(os.environ.get("PGX_CACHE") or Path.home() / ".cache" / "pgx")


memory = joblib.Memory(cache_dir() / "stages", verbose=0)


def cached(fn):
    """``memory.cache`` that also keeps the warnings a stage raised while computing, and raises them
    again each time the result is loaded: a solver that did not converge while the cache was
    filled still says so in every later build. Deprecation warnings are not kept."""

    def computing(*args, **kwargs):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result = fn(*args, **kwargs)
        kept = [(w.category, str(w.message)) for w in caught
                if not issubclass(w.category, (DeprecationWarning, PendingDeprecationWarning))]
        return result, list(dict.fromkeys(kept))  # each distinct warning once

    # joblib files results under the function's module and name: the stage's, not this wrapper's.
    computing.__module__, computing.__name__, computing.__qualname__ = fn.__module__, fn.__name__, fn.__qualname__
    computing.__signature__ = inspect.signature(fn)  # arguments hashed by name, however they were passed
    store = memory.cache(computing)

    @functools.wraps(fn)
    def call(*args, **kwargs):
        result, kept = store(*args, **kwargs)
        for category, message in kept:
            warnings.warn(f"[{fn.__name__.lstrip('_')}] {message}", category, stacklevel=2)
        return result

    return call


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
