"""What keys a stored result: the version of the code that computed it.

Every cached stage result, training checkpoint and stored fine-tuning run is keyed by the code
that can change it, read from the sources definition by definition (:mod:`pgx.reach`): a
function's key covers the functions, classes and constants it reaches, in any pgx module, and
nothing else of those modules. :func:`code_version` is that of every definition of a module;
:func:`family_version` that of one family's factory, found through the registry, so an edit to one
family re-keys that family alone and a new family re-keys nothing; :func:`key_version` joins them
with the versions of the libraries that can change a result (:func:`library_versions`), and
:func:`trainer_version` does the same for a trainer's entry point, so an edit to what runs after
training (the surrogate, the affinity) finds θ* and every fine-tuning run where they were. A
declared stage's own code part is :mod:`pgx.stage_keys`', built on these. This module sits below
the stages and the trainers (``pgx.truth.finetune`` keys its store with it) and imports neither.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import inspect
import os
import sys
import textwrap
from pathlib import Path

import joblib

from pgx.envs import parse_family_spec, registry_entry
from pgx.reach import REPORTING_MODULES, VALUE_MODULES, module_entries, module_path, reach, semantic

__all__ = ["PACKAGE_ROOT", "REPORTING_MODULES", "VALUE_MODULES", "code_version", "versioned", "family_version",
           "family_entry", "FAMILY_BUILDER", "key_version", "TRAINERS",
           "trainer_version", "checkpoint_path", "cache_dir", "LIBRARIES", "library_versions", "libraries_version"]


PACKAGE_ROOT = Path(__file__).parent
"""The ``pgx`` package directory, whose modules the code versions hash."""


def code_version(module: str, root: Path = PACKAGE_ROOT) -> str:
    """A hash of the code that ``module`` (``"pgx.algos.ppo"``) or one of its definitions
    (``"pgx.algos.ppo:train"``) can run: its definitions and, name by name, the functions, classes
    and constants they reach in any pgx module (:func:`pgx.reach.reach`), with the statements those
    modules run at import. Docstrings, comments, formatting and type annotations are left out, so
    only an edit that can change a result re-runs what it can change; a definition nothing reaches
    (a chapter's helper, a new option's code path in a function not called) re-runs nothing. A
    string naming a module (the family registry's ``"pgx.envs.cartpole:cartpole_family"``) is not
    followed: a stage reaches a family only through the registry, and its key carries that one
    family's version (:func:`family_version`).
    """
    entries = []
    for entry in module.split("+"):  # several entries joined: "pgx.envs.cartpole:cartpole_family+pgx.envs:make_family"
        name, _, function = entry.partition(":")
        entries += [(name, function)] if function else module_entries(name, root)
    return reach(entries, root).digest


def versioned(module: str, root: Path = PACKAGE_ROOT) -> str:
    """``"module@version"`` (or ``"module:function@version"``): :func:`code_version` with what it covers
    named, as keys show it.

    For the installed pgx (the default ``root``) it is computed once per process, when first asked
    for (stage modules ask at import): the code a process runs is the code it imported, so an edit
    made while a long run goes on does not change the keys that run writes under.
    """
    if root == PACKAGE_ROOT:
        return _pinned(module)
    return f"{module}@{code_version(module, root)}"


@functools.cache
def _pinned(module: str) -> str:
    return f"{module}@{_pinned_code(module)}"


@functools.cache
def _pinned_code(entry: str) -> str:
    return code_version(entry)


def family_version(spec: str, root: Path = PACKAGE_ROOT) -> str:
    """The version of the code that defines ``spec``'s family (``"highway:observe_task=false"``; its
    options enter keys as the spec itself), as ``"module@hash"``. The factory is found in the
    registry (:data:`pgx.envs.FAMILIES`):

    * a built-in ``"module:function"`` string, or a registered callable defined at the top of a pgx
      module: :func:`code_version` of that factory — what it reaches, in its module and any other
      (a callable defined inside a function: its whole module) — and of :data:`FAMILY_BUILDER`,
      which turns a spec into the family (:func:`family_entry`);
    * a callable or string from outside pgx (a plugin, a notebook): that module's name and a hash of
      its source, docstrings and comments left out, or of the factory's own source where the
      module's cannot be read (``__main__`` of a notebook); its imports are not followed (a family
      spread over several modules of a plugin is keyed by the factory's module alone) and joined with
      :data:`FAMILY_BUILDER`'s; where no source can be read at all the hash is ``"unversioned"`` and
      an edit re-runs nothing.

    Computed once per process and factory, for the reason :func:`versioned` gives.
    """
    factory = registry_entry(parse_family_spec(spec)[0])
    entry = family_entry(spec, root)
    if entry is not None:
        module = entry.partition(":")[0]
        return f"{module}@{_pinned_code(entry) if root == PACKAGE_ROOT else code_version(entry, root)}"
    factory = getattr(factory, "func", factory)  # a functools.partial's function
    module, _, digest = _outside_version(factory, getattr(factory, "__module__", None) if not isinstance(factory, str)
                                         else factory.partition(":")[0]).rpartition("@")
    if digest != "unversioned":  # built by pgx's own builder too
        builder = _pinned_code(FAMILY_BUILDER) if root == PACKAGE_ROOT else code_version(FAMILY_BUILDER, root)
        digest = hashlib.sha256(f"{digest}+{builder}".encode()).hexdigest()[:16]
    return f"{module}@{digest}"


def family_entry(spec: str, root: Path = PACKAGE_ROOT) -> str | None:
    """The definitions a built-in family's version covers, as :func:`code_version` takes them
    (``"pgx.envs.cartpole:cartpole_family+pgx.envs:make_family"``): its factory and the code that
    builds a family from its spec (:data:`FAMILY_BUILDER`); None for a family defined outside pgx."""
    factory = registry_entry(parse_family_spec(spec)[0])
    if isinstance(factory, str):
        module, _, function = factory.partition(":")
    else:
        factory = getattr(factory, "func", factory)  # a functools.partial's function
        module, function = getattr(factory, "__module__", None), getattr(factory, "__qualname__", "")
    package = root.name
    if not (module and (module == package or module.startswith(package + ".")) and module_path(module, root, package)):
        return None
    top_level = function and "." not in function and "<" not in function
    return (f"{module}:{function}" if top_level else module) + f"+{FAMILY_BUILDER}"


FAMILY_BUILDER = "pgx.envs:make_family"
"""What turns a family spec into the family besides its factory (the options every family takes,
``observe_task``): part of every built-in family's version, so a training run resumed from its
checkpoint ran on a family built the same way."""


_OUTSIDE_VERSIONS: dict = {}
"""Factory (the registry's value) → its version, for families defined outside pgx."""


def _outside_version(factory, module: str | None) -> str:
    try:
        return _OUTSIDE_VERSIONS[factory]
    except (KeyError, TypeError):  # not seen yet, or not hashable (then computed each time)
        pass
    source = None
    if module:
        try:
            source = inspect.getsource(sys.modules.get(module) or importlib.import_module(module))
        except (ImportError, OSError, TypeError):
            pass
    if source is None and not isinstance(factory, str):
        try:
            source = textwrap.dedent(inspect.getsource(factory))
        except (OSError, TypeError):
            pass
    if source is None:
        digest = "unversioned"
    else:
        try:
            source = semantic(source)
        except SyntaxError:
            pass  # a fragment that does not parse on its own: hashed as written
        digest = hashlib.sha256(source.encode()).hexdigest()[:16]
    version = f"{module or type(factory).__name__}@{digest}"
    try:
        _OUTSIDE_VERSIONS[factory] = version
    except TypeError:
        pass
    return version


def key_version(code: str, family_spec: str, root: Path = PACKAGE_ROOT) -> str:
    """What a stage call's or a checkpoint's key carries of the code, readable in the key:
    ``"pgx.stages.pipeline@… + pgx.envs.highway@… + libraries@…"``. ``code`` is the
    :func:`versioned` module whose code the call runs (the stage's module, or the trainer's for a
    checkpoint); the family's module counts through :func:`family_version` only, so one family's
    edit re-keys that family; the libraries part is :func:`library_versions`, so an upgrade of a
    library that can change a result re-runs what was computed with the old one."""
    return f"{code} + {family_version(family_spec, root)} + {libraries_version()}"


LIBRARIES = ("numpy", "scipy", "scikit-learn", "cvxpy", "scs", "gymnasium", "highway-env", "envpool", "box2d",
             "metaworld", "mujoco")
"""Distributions whose versions can change a result, besides torch: the numerics (numpy, scipy, the
surrogate's and the SDP's solvers) and the env packages of every built-in family (all of them:
which one a family, or a plugin's, uses is not known here)."""


@functools.cache
def library_versions() -> tuple[tuple[str, str], ...]:
    """torch's and each installed distribution of :data:`LIBRARIES`' version (a process's do not change)."""
    import torch
    from importlib.metadata import PackageNotFoundError, version

    found = [("torch", torch.__version__)]
    for name in LIBRARIES:
        try:
            found.append((name, version(name)))
        except PackageNotFoundError:
            pass
    return tuple(found)


def libraries_version() -> str:
    """``"libraries@<hash>"`` of :func:`library_versions`, for keys."""
    return "libraries@" + hashlib.sha256(repr(library_versions()).encode()).hexdigest()[:16]


TRAINERS = {"ppo": "pgx.algos.ppo:train", "maml": "pgx.algos.maml:train", "sac": "pgx.algos.sac:train",
            "finetune": "pgx.truth.finetune:_finetune_batch"}
"""Trainer → the function its runs run (or, written without ``:function``, every definition of a
module): what names their checkpoints (``"finetune"``: the fine-tuning runs of the ground truth and
the transfer matrix, kept in their own store; one run or many, each is computed by
``_finetune_batch``, so the store's own code is not in the key)."""


def trainer_version(trainer: str, family_spec: str, root: Path = PACKAGE_ROOT) -> str:
    """:func:`key_version` of ``trainer``'s entry point (:data:`TRAINERS`) and the family: what a
    training run's checkpoint or stored result is keyed by besides its config, seed and tasks. Not
    the calling stage's code: a stage re-keyed by an edit to code that runs after training (the
    surrogate, the affinity) finds its run's checkpoint and resumes from it, which for a finished
    run returns at once."""
    if trainer not in TRAINERS:
        raise ValueError(f"unknown trainer {trainer!r}; known trainers: {sorted(TRAINERS)}")
    return key_version(versioned(TRAINERS[trainer], root), family_spec, root)


def checkpoint_path(trainer: str, family_spec: str, config, seed: int, *rest) -> Path:
    """Where a training run of ``trainer`` checkpoints: ``checkpoints/<trainer>/<family>-s<seed>-<hash>.pt``,
    the hash of :func:`trainer_version`, the family spec, ``config``, ``seed`` and ``rest`` (the
    task ids and whatever else determines the run)."""
    key = joblib.hash((trainer_version(trainer, family_spec), family_spec, config, int(seed), rest))
    safe = "".join(c if c.isalnum() or c in "_.-" else "_" for c in family_spec)
    return cache_dir() / "checkpoints" / trainer / f"{safe}-s{int(seed)}-{key[:16]}.pt"


def cache_dir() -> Path:
    """``$PGX_CACHE``, else ``~/.cache/pgx``: stage results and training checkpoints live here."""
    return Path(os.environ.get("PGX_CACHE") or Path.home() / ".cache" / "pgx")
