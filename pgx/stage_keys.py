"""What a declared stage's key carries of the code: the definitions it reaches, read from the sources.

:func:`stage_version` follows a stage's syntax tree name by name through every pgx module
(:func:`pgx.reach.reach`): functions, classes and constants one by one, so an edit re-keys exactly
the stages whose functions reach the edited code, and two stages in one module, or two functions
in one helper module, do not share a key. Below the stages (which declare themselves with
:func:`pgx.stages.graph.stage`); it imports none of them.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

from pgx.keys import PACKAGE_ROOT, _outside_version
from pgx.reach import STAGE_DECORATOR, reach

__all__ = ["StageVersion", "stage_version", "outside_stage_version", "STAGE_DECORATOR"]


@dataclass(frozen=True)
class StageVersion:
    """What a declared stage's key carries of the code: ``code``, a hash of the definitions it
    reaches in pgx (:func:`pgx.reach.reach`); ``reads``, the profile fields it and every stage it
    reaches declare; ``stages``, the stages it reaches (itself included), as
    ``"module:function"``; ``profile_reads``, the ``profile.<field>`` attributes read in what it
    reaches (what a test checks its declaration against)."""

    code: str
    reads: frozenset[str]
    stages: tuple[str, ...]
    profile_reads: frozenset[str] = frozenset()


def stage_version(module: str, function: str, root: Path = PACKAGE_ROOT, trainer: str | None = None) -> StageVersion:
    """The :class:`StageVersion` of stage ``function`` of ``module`` (``"pgx.stages.truth"``); for
    the families one ``trainer`` trains (``"ppo"``, ``"sac"``), without the branches it does not take
    (:func:`pgx.reach.reach`).

    Read from the sources alone (nothing is imported, so an edited copy under ``root`` is versioned
    as it stands). A stage reached by name is a stage consumed, whose ``reads=`` join this one's.

    For the installed pgx it is computed once per process (at import: stage modules declare their
    stages then): the code a process runs is the code it imported, so an edit made while a long
    run goes on does not change the keys that run writes under.
    """
    if root == PACKAGE_ROOT:
        return _pinned_stage(module, function, trainer)
    return _stage_version(module, function, root, trainer)


def outside_stage_version(fn, reads: tuple[str, ...]) -> StageVersion:
    """The :class:`StageVersion` of a stage defined outside pgx (a plugin's, a notebook's, a test's):
    keyed as a family from outside pgx is (:func:`pgx.keys.family_version`): its module's source, so
    a helper beside it counts too, or the function's own where the module's cannot be read (a
    notebook's ``__main__``); docstrings and comments left out, imports not followed. Its fields are
    those it declares."""
    code = _outside_version(fn, fn.__module__).rpartition("@")[2]
    return StageVersion(code=code, reads=frozenset(reads), stages=(f"{fn.__module__}:{fn.__qualname__}",))


@functools.cache
def _pinned_stage(module: str, function: str, trainer: str | None) -> StageVersion:
    return _stage_version(module, function, PACKAGE_ROOT, trainer)


def _stage_version(module: str, function: str, root: Path, trainer: str | None = None) -> StageVersion:
    reached = reach([(module, function)], root, trainer)
    if f"{module}:{function}" not in reached.stages:
        raise ValueError(f"{module}.{function} is not declared with @{STAGE_DECORATOR}(...)")
    return StageVersion(code=reached.digest, reads=reached.reads, stages=tuple(sorted(reached.stages)),
                        profile_reads=reached.profile_reads)
