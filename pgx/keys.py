"""What keys a stored result: the version of the code that computed it.

Every cached stage result, training checkpoint and stored fine-tuning run is keyed by the code
that can change it. :func:`code_version` hashes a module with the pgx modules it imports,
transitively (docstrings, comments and formatting left out); :func:`family_version` hashes one
family's module, found through the registry, so an edit to one family re-keys that family alone;
:func:`key_version` joins the two with the versions of the libraries that can change a result
(:func:`library_versions`), and :func:`trainer_version` does the same for a trainer, so an edit
to what runs after training (the surrogate, the affinity) finds θ* and every fine-tuning run
where they were. A declared stage's own code part is :mod:`pgx.stage_keys`', built on these. This
module sits below the stages and the trainers (``pgx.truth.finetune`` keys its store with it) and
imports neither.
"""

from __future__ import annotations

import ast
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

__all__ = ["PACKAGE_ROOT", "code_version", "versioned", "family_version",
           "key_version", "TRAINERS",
           "trainer_version", "checkpoint_path", "cache_dir", "LIBRARIES", "library_versions", "libraries_version"]


PACKAGE_ROOT = Path(__file__).parent
"""The ``pgx`` package directory, whose modules the code versions hash."""

REPORTING_MODULES = ("pgx.progress", "pgx.stages.many")
"""Modules a stage calls only to report or to schedule (progress lines, remembered durations; which
process computes a stage call it makes): they cannot change a result, so editing them re-runs
nothing. The stages a stage calls through :func:`pgx.stages.many.compute_many` are still its own
(named in its source: ``_maml_run.call(...)``), keyed as consumed stages."""

VALUE_MODULES = ("pgx.profiles", "pgx.transfer_budgets", "pgx.metaworld_budgets")
"""Modules that reach a stage only as values: the :class:`~pgx.profiles.Profile` and its sections,
whose fields a stage's key holds by value (those it reads, :mod:`pgx.stages.graph`) and which run
no code a stage depends on. Editing a profile's value re-runs the stages that read that field."""


def code_version(module: str, root: Path = PACKAGE_ROOT) -> str:
    """A hash of the code that ``module`` (``"pgx.stages.truth"``) can run: its own source and that of
    every pgx module it imports, transitively, and of the packages above each (Python runs their
    ``__init__``). Docstrings, comments and formatting are left out, so only an edit that can change
    a result re-runs a stage, and a module no stage imports (a chapter's helper, a new algorithm)
    re-runs nothing. Imports inside functions count. A string naming a module (the family
    registry's ``"pgx.envs.cartpole:cartpole_family"``) is not an import: a stage reaches a family
    only through the registry, and its key carries that one family's version
    (:func:`family_version`), so a family module's edit re-keys that family alone. Code reached any
    other way (a plugin named at run time) is not hashed.
    """
    package = root.name
    digest = hashlib.sha256()
    for name in sorted(_closure(module, root, package)):
        digest.update(name.encode())
        digest.update(_semantic_source(_module_path(name, root, package)).encode())
    return digest.hexdigest()[:16]


def versioned(module: str, root: Path = PACKAGE_ROOT) -> str:
    """``"module@version"``: :func:`code_version` with the module it covers named, as keys show it.

    For the installed pgx (the default ``root``) it is computed once per process, when first asked
    for (stage modules ask at import): the code a process runs is the code it imported, so an edit
    made while a long run goes on does not change the keys that run writes under.
    """
    if root == PACKAGE_ROOT:
        return _pinned(module)
    return f"{module}@{code_version(module, root)}"


@functools.cache
def _pinned(module: str) -> str:
    return f"{module}@{code_version(module)}"


def family_version(spec: str, root: Path = PACKAGE_ROOT) -> str:
    """The version of the code that defines ``spec``'s family (``"highway:observe_task=false"``; its
    options enter keys as the spec itself), as ``"module@hash"``. The factory is found in the
    registry (:data:`pgx.envs.FAMILIES`):

    * a built-in ``"module:function"`` string, or a registered callable defined in a pgx module:
      :func:`versioned` of that module, its pgx imports included;
    * a callable or string from outside pgx (a plugin, a notebook): that module's name and a hash of
      its source, docstrings and comments left out, or of the factory's own source where the
      module's cannot be read (``__main__`` of a notebook); its imports are not followed (a family
      spread over several modules of a plugin is keyed by the factory's module alone), and where no
      source can be read at all the hash is ``"unversioned"`` and an edit re-runs nothing.

    Computed once per process and factory, for the reason :func:`versioned` gives.
    """
    factory = registry_entry(parse_family_spec(spec)[0])
    if isinstance(factory, str):
        module = factory.partition(":")[0]
    else:
        factory = getattr(factory, "func", factory)  # a functools.partial's function
        module = getattr(factory, "__module__", None)
    package = root.name
    if module and (module == package or module.startswith(package + ".")) and _module_path(module, root, package):
        return versioned(module, root)
    return _outside_version(factory, module)


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
            source = _semantic(source)
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


TRAINERS = {"ppo": "pgx.algos.ppo", "maml": "pgx.algos.maml", "sac": "pgx.algos.sac", "finetune": "pgx.truth.finetune"}
"""Trainer → the module whose code its runs run: what names their checkpoints (``"finetune"``:
the fine-tuning runs of the ground truth and the transfer matrix, kept in their own store)."""


def trainer_version(trainer: str, family_spec: str, root: Path = PACKAGE_ROOT) -> str:
    """:func:`key_version` of ``trainer``'s module (:data:`TRAINERS`) and the family: what a
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


def _module_path(name: str, root: Path, package: str) -> Path | None:
    parts = name.split(".")[1:] if name != package else []
    base = root.joinpath(*parts)
    for path in (base.with_suffix(".py") if parts else None, base / "__init__.py"):
        if path is not None and path.is_file():
            return path
    return None


def _closure(module: str, root: Path, package: str) -> set[str]:
    """``module``, the pgx modules it imports (transitively), and the packages above each: Python
    runs a package's ``__init__`` on the way, so its own code counts, but what it imports only
    counts where a module imports that too."""
    followed: set[str] = set()
    todo = [module]
    while todo:
        name = todo.pop()
        if name in followed or _module_path(name, root, package) is None:
            continue
        followed.add(name)
        todo.extend(_imports(name, root, package))
    parents = {".".join(name.split(".")[:i]) for name in followed for i in range(1, name.count(".") + 1)}
    return followed | {name for name in parents if _module_path(name, root, package) is not None}


def _imports(name: str, root: Path, package: str) -> set[str]:
    """The pgx modules one module imports: its import statements, anywhere in it, relative ones
    resolved."""
    path = _module_path(name, root, package)
    return set(_named_modules(path.read_text(), name, package, path.name == "__init__.py"))


@functools.lru_cache(maxsize=None)
def _named_modules(source: str, name: str, package: str, is_package: bool) -> frozenset[str]:
    # Keyed by the source itself: every stage module's version walks the same modules, and a
    # module edited since (tests do) is parsed again.
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = name.split(".")[: len(name.split(".")) - node.level + (1 if is_package else 0)]
                base = ".".join(anchor + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)  # kept only if a module
    return frozenset(f for f in found if (f == package or f.startswith(package + ".")) and f not in VALUE_MODULES
                     and f not in REPORTING_MODULES)


def _semantic_source(path: Path | None) -> str:
    """The module's syntax tree without docstrings or other bare strings: what it does, not how it
    is written down."""
    return "" if path is None else _semantic(path.read_text())


@functools.lru_cache(maxsize=None)
def _semantic(source: str) -> str:
    return ast.dump(_drop_docstrings(ast.parse(source)))


def _drop_docstrings(tree):
    """``tree`` with every bare string statement (docstrings) removed from every body, in place."""
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list):
            kept = [stmt for stmt in body if not (isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant)
                                                   and isinstance(stmt.value.value, str))]
            node.body = kept or [ast.Pass()]
    return tree


def cache_dir() -> Path:
    """``$PGX_CACHE``, else ``~/.cache/pgx``: stage results and training checkpoints live here."""
    return Path(os.environ.get("PGX_CACHE") or Path.home() / ".cache" / "pgx")
