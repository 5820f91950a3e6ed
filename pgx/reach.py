"""What code a definition can run, read from the sources: the functions, classes and constants it
reaches, one by one, across every pgx module.

Keys hashed whole modules before: an edit anywhere in a module (a new option of one family, a
defaulted parameter, a new family in the registry) re-keyed everything that imported it, and a
cache filled for hours was recomputed for an edit that could not change it. Here a key covers a
definition's own syntax tree (docstrings, comments, type annotations and the stage decorator left
out) and, name by name, what it loads: a name defined in its module is followed to that
definition; a name imported from a pgx module to the definition there (a package re-exporting a
name is followed through); a module used as ``module.attr`` to ``attr`` of that module, a module
used as a value to all of its definitions; a library import to the statement that binds it (so
``import numpy as np`` becoming ``import torch as np`` counts, a library's version is keyed
apart). Statements a reached module runs at import without binding a name (``torch.set_...(...)``)
count, with those of the packages above it.

A key for one trainer (``reach(..., trainer="ppo")``) leaves out the branch that the other trainer
takes: in ``if profile.trainer == "sac": … else: …`` (a ``.trainer`` attribute compared with ``==``
or ``!=`` to a literal), only the branch this trainer runs is followed, so a PPO family's stages
do not reach SAC's code, nor a SAC family's PPO's. The definition's own syntax tree still counts
whole. Without a trainer, every branch is followed.

What is not followed: code named in a string (a family in the registry: each family's own
factory is keyed through :func:`pgx.keys.family_version`), the registry itself (:data:`DATA`),
modules that only report or schedule (:data:`REPORTING_MODULES`), modules that reach a stage only
as values (:data:`VALUE_MODULES`: a stage's key holds the profile fields it reads) and the key
machinery (:data:`KEYING_MODULES`). A method called on an object is followed through the class's
name: a function that builds the object names its class, one handed it names the class in its
annotations (``cfg: PPOConfig``; annotations are followed for pgx names, not hashed), and a class
counts whole, its bases followed. ``tests/test_reach_soundness.py`` runs a ground truth and checks
that every pgx function it executes is reached.

Below every other key module (:mod:`pgx.keys`, :mod:`pgx.stage_keys`); imports no pgx module.
"""

from __future__ import annotations

import ast
import copy
import functools
import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

__all__ = ["REPORTING_MODULES", "VALUE_MODULES", "KEYING_MODULES", "DATA", "STAGE_DECORATOR", "Reach", "reach", "module_entries",
           "module_path", "imported_modules", "drop_docstrings", "semantic"]


REPORTING_MODULES = ("pgx.progress", "pgx.stages.many")
"""Modules a stage calls only to report or to schedule (progress lines, remembered durations; which
process computes a stage call it makes): they cannot change a result, so editing them re-runs
nothing. The stages a stage calls through :func:`pgx.stages.many.compute_many` are still its own
(named in its source: ``_maml_run.call(...)``), keyed as consumed stages."""

VALUE_MODULES = ("pgx.profiles", "pgx.transfer_budgets", "pgx.metaworld_budgets")
"""Modules that reach a stage only as values: the :class:`~pgx.profiles.Profile` and its sections,
whose fields a stage's key holds by value (those it reads, :mod:`pgx.stages.graph`) and which run
no code a stage depends on. Editing a profile's value re-runs the stages that read that field."""

KEYING_MODULES = ("pgx.keys", "pgx.reach", "pgx.stage_keys")
"""The key machinery itself: a stage or a trainer calls it to name where its result is kept
(``checkpoint_path``), which cannot change the result. A change to how keys are computed changes
every key by itself; a refactor of it that keeps them re-runs nothing."""

DATA = frozenset({("pgx.envs", "FAMILIES")})
"""Definitions that are data another key part covers: the family registry (which factory builds a
family is read from it by :func:`pgx.keys.family_version`, which keys that family's code). Adding a
family re-keys no other family."""

_SKIPPED = frozenset(REPORTING_MODULES + VALUE_MODULES + KEYING_MODULES)

STAGE_DECORATOR = "stage"
"""The decorator that declares a stage (:func:`pgx.stages.graph.stage`), found by name in the
syntax tree: its ``reads=`` literal is the profile fields the stage reads."""


@dataclass(frozen=True)
class Reach:
    """What a set of entry definitions reaches: ``parts``, each definition's (and each reached
    module's import-time statements') syntax tree as ``"module:name:dump"``; ``stages``, the stages
    reached (``"module:function"``); ``reads``, the profile fields they declare; ``profile_reads``,
    the ``profile.<field>`` attributes read anywhere in what is reached."""

    parts: frozenset[str]
    stages: frozenset[str]
    reads: frozenset[str]
    profile_reads: frozenset[str]

    @property
    def digest(self) -> str:
        hasher = hashlib.sha256()
        for part in sorted(self.parts):
            hasher.update(part.encode())
        return hasher.hexdigest()[:16]


def reach(entries: Iterable[tuple[str, str]], root: Path, trainer: str | None = None) -> Reach:
    """Follow ``entries`` (``("pgx.algos.ppo", "train")``, …) through the sources under ``root``
    (the package directory; nothing is imported, so an edited copy is read as it stands); with
    ``trainer``, only the branches of a ``.trainer`` test that trainer takes."""
    package = root.name
    parts: set[str] = set()
    stages: set[str] = set()
    reads: set[str] = set()
    attributes: set[str] = set()
    seen: set[tuple[str, str]] = set()
    modules: set[str] = set()
    todo = list(entries)
    while todo:
        mod, name = todo.pop()
        if (mod, name) in seen or mod in _SKIPPED or (mod, name) in DATA:
            continue
        seen.add((mod, name))
        table = _table(mod, root)
        if mod not in modules:  # what the module (and the packages above it) runs at import
            modules.add(mod)
            for above in _packages_above(mod, root, package):
                todo.extend((above, f"<import {i}>") for i in range(len(_table(above, root).prologue)))
            todo.extend((mod, f"<import {i}>") for i in range(len(table.prologue)))
        info = _definition(table, mod, name, root, trainer)
        if info is None:  # a re-export (a package's ``from .x import f``)
            todo.extend(_follow(table.imported[name], (), root, package))
            continue
        part, attrs, edges, inline = info
        parts.add(part)
        parts.update(inline)
        attributes.update(attrs)
        declared = table.stage_reads.get(name)
        if declared is not None:
            stages.add(f"{mod}:{name}")
            reads.update(declared)
        todo.extend(edges)
    return Reach(frozenset(parts), frozenset(stages), frozenset(reads), frozenset(attributes))


def _definition(table: "_Table", mod: str, name: str, root: Path, trainer: str | None = None):
    """``(part, profile attributes, definitions it loads, library imports it uses)`` of one
    definition, or None for a re-exported name; remembered with the module's parsed source."""
    try:
        return table.memo[root, name, trainer]
    except KeyError:
        pass
    package = root.name
    if name.startswith("<import "):
        node = table.prologue[int(name[len("<import "):-1])]
    elif name in table.definitions:
        node = table.definitions[name]
    elif name in table.imported:
        table.memo[root, name, trainer] = None
        return None
    else:
        raise ValueError(f"{mod} defines no top-level {name!r} (reached from a stage, a trainer or a family)")
    runs = _pruned(node, trainer)
    attributes = frozenset(inner.attr for inner in ast.walk(runs) if isinstance(inner, ast.Attribute)
                           and isinstance(inner.value, ast.Name) and inner.value.id == "profile")
    local = dict(_local_bindings(runs, mod, package))
    edges, inline = [], set()
    for base, chain, annotation in _references(runs):
        if base in local:
            edges.extend(_follow(local[base], chain, root, package))
        elif base in table.definitions and base != name:
            edges.append((mod, base))
        elif base in table.imported:
            edges.extend(_follow(table.imported[base], chain, root, package))
        elif base in table.external and not annotation:
            inline.add(f"{mod}:import {base}:{table.external[base]}")
        # else: a builtin, a local variable, the definition itself
    info = (f"{mod}:{name}:{_semantic_node(node)}", attributes, tuple(edges), frozenset(inline))
    table.memo[root, name, trainer] = info
    return info


def _pruned(node, trainer: str | None):
    """``node`` without the branches of its ``.trainer`` tests that ``trainer`` does not take (a
    copy; ``node`` itself where there is no trainer or no such test)."""
    if trainer is None or not any(_trainer_test(inner) for inner in ast.walk(node) if isinstance(inner, ast.If)):
        return node
    node = copy.deepcopy(node)
    for inner in ast.walk(node):
        if isinstance(inner, ast.If) and (test := _trainer_test(inner)) is not None:
            equal, value = test
            if equal == (value == trainer):  # the body runs for this trainer
                inner.orelse = []
            else:
                inner.body = [ast.Pass()]
    return node


def _trainer_test(node: ast.If) -> tuple[bool, str] | None:
    """``(True, "sac")`` for ``if <x>.trainer == "sac":``, ``(False, "ppo")`` for ``!= "ppo"``; else None."""
    test = node.test
    if (isinstance(test, ast.Compare) and len(test.ops) == 1 and isinstance(test.ops[0], (ast.Eq, ast.NotEq))
            and isinstance(test.left, ast.Attribute) and test.left.attr == "trainer"
            and isinstance(test.comparators[0], ast.Constant) and isinstance(test.comparators[0].value, str)):
        return isinstance(test.ops[0], ast.Eq), test.comparators[0].value
    return None


def module_entries(module: str, root: Path) -> list[tuple[str, str]]:
    """Every top-level definition of ``module``: what a module used as a whole can run."""
    table = _table(module, root)
    return [(module, name) for name in sorted(table.definitions)]


def module_path(name: str, root: Path, package: str | None = None) -> Path | None:
    """The file of pgx module ``name`` under ``root`` (a package's ``__init__.py``), or None."""
    package = package or root.name
    parts = name.split(".")[1:] if name != package else []
    base = root.joinpath(*parts)
    for path in (base.with_suffix(".py") if parts else None, base / "__init__.py"):
        if path is not None and path.is_file():
            return path
    return None


def imported_modules(name: str, root: Path) -> set[str]:
    """The pgx modules one module imports, anywhere in it (relative imports resolved): the import
    graph the layout's tests read. Keys do not use it (they follow definitions, :func:`reach`)."""
    path = module_path(name, root)
    package = root.name
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                pieces = name.split(".")
                anchor = pieces[: len(pieces) - node.level + (1 if path.name == "__init__.py" else 0)]
                base = ".".join(anchor + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return {f for f in found if (f == package or f.startswith(package + ".")) and module_path(f, root, package)}


def semantic(source: str) -> str:
    """A module's syntax tree without docstrings or other bare strings: what it does, not how it is
    written down."""
    return _semantic(source)


@functools.lru_cache(maxsize=None)
def _semantic(source: str) -> str:
    return ast.dump(drop_docstrings(ast.parse(source)))


def drop_docstrings(tree):
    """``tree`` with every bare string statement (docstrings) removed from every body, in place."""
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list):
            kept = [stmt for stmt in body if not (isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant)
                                                   and isinstance(stmt.value.value, str))]
            node.body = kept or [ast.Pass()]
    return tree


# --- one module's table ------------------------------------------------------------------------

@dataclass(frozen=True)
class _Table:
    definitions: dict
    """Top-level name → the statement that binds it (a function, a class, an assignment, or the
    ``if``/``try`` around one), as one ``ast.Module`` of every such statement in order."""
    imported: dict
    """Top-level name → ``(pgx module, attribute or None)`` it was imported from."""
    external: dict
    """Top-level name → the library import that binds it (``"numpy as np"``)."""
    prologue: tuple
    """Top-level statements other than definitions, imports and assignments (calls, ``if``, ``for``,
    ``try`` blocks), which run at import: counted wherever the module is reached."""
    stage_reads: dict
    """Name of a function declared with the stage decorator → the fields of its ``reads=``."""
    memo: dict = field(default_factory=dict, compare=False)
    """(root, name) → what :func:`_definition` read of it (a table lives while its source is unchanged)."""


def _table(module: str, root: Path) -> _Table:
    path = module_path(module, root)
    if path is None:
        raise ValueError(f"no module {module} under {root}")
    return _parse_table(path.read_text(), module, root.name, path.name == "__init__.py")


@functools.lru_cache(maxsize=None)
def _parse_table(source: str, module: str, package: str, is_package: bool) -> _Table:
    # Keyed by the source itself: every key walks the same modules, and a module edited since (tests
    # do) is parsed again.
    bindings_of: dict[str, list] = {}
    imported, external, prologue, stage_reads = {}, {}, [], {}
    for node in ast.parse(source).body:
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
            continue  # a docstring
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            if isinstance(node, ast.ImportFrom) and node.module == "__future__":
                continue
            bindings = list(_import_bindings(node, module, package, is_package))
            imported.update((bound, (source, attr)) for bound, source, attr in bindings)
            if not bindings:  # a library: what each name is bound to (``np`` → ``numpy``)
                origin = "" if isinstance(node, ast.Import) else "." * node.level + (node.module or "") + ":"
                for alias in node.names:
                    bound = alias.asname or alias.name.split(".")[0]
                    external[bound] = origin + (alias.name if alias.asname or origin else bound)
            continue
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            bindings_of.setdefault(node.name, []).append(node)
            declared = _declared_reads(node)
            if declared is not None:
                stage_reads[node.name] = declared
            continue
        bound = _bound_names(node)
        for inner in ast.walk(node):  # pgx imports inside a top-level ``if`` or ``try``
            if isinstance(inner, (ast.Import, ast.ImportFrom)):
                for name, source, attr in _import_bindings(inner, module, package, is_package):
                    imported[name] = (source, attr)
                    bound.discard(name)
        for name in bound:
            bindings_of.setdefault(name, []).append(node)
        if not bound or not isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            prologue.append(node)  # ``REGISTRY["x"] = f`` binds no name: it runs at import
    definitions = {name: nodes[0] if len(nodes) == 1 else ast.Module(body=nodes, type_ignores=[])
                   for name, nodes in bindings_of.items()}
    return _Table(definitions, imported, external, tuple(prologue), stage_reads)


def _bound_names(node) -> set[str]:
    """Names a top-level statement binds: assignment targets, and definitions or imports inside an
    ``if``/``try``/``with`` block."""
    names: set[str] = set()
    for inner in ast.walk(node):
        if isinstance(inner, ast.Name) and isinstance(inner.ctx, ast.Store):
            names.add(inner.id)
        elif isinstance(inner, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and inner is not node:
            names.add(inner.name)
        elif isinstance(inner, (ast.Import, ast.ImportFrom)):
            names.update(alias.asname or alias.name.split(".")[0] for alias in inner.names)
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)):
        return names
    # names bound only inside a function or class defined in the block are not top-level
    for inner in ast.walk(node):
        if isinstance(inner, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)):
            for deeper in ast.walk(inner):
                if deeper is not inner and isinstance(deeper, ast.Name) and isinstance(deeper.ctx, ast.Store):
                    names.discard(deeper.id)
    return names


def _declared_reads(node) -> frozenset[str] | None:
    """The ``reads=`` of a ``@stage(reads=...)`` decorator (a literal tuple of field names), or None."""
    for decorator in getattr(node, "decorator_list", []):
        if _is_stage_decorator(decorator):
            if isinstance(decorator, ast.Call):
                for keyword in decorator.keywords:
                    if keyword.arg == "reads":
                        return frozenset(ast.literal_eval(keyword.value))
            return frozenset()
    return None


def _is_stage_decorator(node) -> bool:
    target = node.func if isinstance(node, ast.Call) else node
    return _dotted(target).split(".")[-1] == STAGE_DECORATOR


def _dotted(node) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return ""


def _import_bindings(node, module: str, package: str, is_package: bool):
    """(bound name, pgx module, attribute or None) for each pgx name an import statement binds."""
    if isinstance(node, ast.Import):
        for alias in node.names:
            if alias.name == package or alias.name.startswith(package + "."):
                if alias.asname:
                    yield alias.asname, alias.name, None
                else:  # ``import pgx.envs.highway`` binds ``pgx``
                    yield alias.name.split(".")[0], package, None
        return
    if node.level:
        anchor = module.split(".")[: len(module.split(".")) - node.level + (1 if is_package else 0)]
        base = ".".join(anchor + ([node.module] if node.module else []))
    else:
        base = node.module or ""
    if not (base == package or base.startswith(package + ".")):
        return
    for alias in node.names:
        # ``from pgx import progress`` binds a module; ``from pgx.x import f`` a name of pgx.x.
        yield alias.asname or alias.name, base, alias.name


def _local_bindings(node, module: str, package: str):
    """(bound name, (pgx module, attribute)) of each pgx import inside a function or class."""
    for inner in ast.walk(node):
        if inner is not node and isinstance(inner, (ast.Import, ast.ImportFrom)):
            for name, source, attr in _import_bindings(inner, module, package, False):
                yield name, (source, attr)


def _follow(binding: tuple[str, str | None], chain: tuple[str, ...], root: Path, package: str) -> list[tuple[str, str]]:
    """The definitions a name bound by ``binding`` reaches when used as ``name.<chain>``."""
    source, attr = binding
    if attr is not None:
        if module_path(f"{source}.{attr}", root, package) is None:
            return [(source, attr)] if module_path(source, root, package) is not None else []
        source = f"{source}.{attr}"  # ``from pgx import progress``: a module
    for i, step in enumerate(chain):  # ``pgx.envs.highway.make`` → module pgx.envs.highway, name make
        if module_path(f"{source}.{step}", root, package) is not None:
            source = f"{source}.{step}"
            continue
        return [(source, step)]
    if source in _SKIPPED:
        return []
    return module_entries(source, root)  # the module used as a value: all it defines


def _packages_above(module: str, root: Path, package: str) -> list[str]:
    pieces = module.split(".")
    return [name for name in (".".join(pieces[:i]) for i in range(1, len(pieces))) if module_path(name, root, package)]


def _references(node) -> set[tuple[str, tuple[str, ...], bool]]:
    """(name, attribute chain, whether only in a type annotation) of every name the node loads:
    ``a.b.c`` as ``("a", ("b", "c"), False)``. The stage decorator is left out. Annotations count
    for pgx names — ``cfg: PPOConfig`` says the function is handed a PPOConfig and may run its
    methods (``cfg.batch_size(n)``), which no other name in it would reach — but not for libraries
    (``Sequence`` from ``typing`` or from ``collections.abc`` runs the same)."""
    found, todo = set(), [(node, False)]
    while todo:
        current, annotation = todo.pop()
        if isinstance(current, ast.Attribute):
            chain, inner = [], current
            while isinstance(inner, ast.Attribute):
                chain.append(inner.attr)
                inner = inner.value
            if isinstance(inner, ast.Name):
                found.add((inner.id, tuple(reversed(chain)), annotation))
                continue
        if isinstance(current, ast.Name) and isinstance(current.ctx, ast.Load):
            found.add((current.id, (), annotation))
        todo.extend(_children(current, annotation))
    return found


def _children(node, annotation: bool):
    """The node's children, each with whether it sits in a type annotation; the stage decorator is
    left out."""
    for slot, value in ast.iter_fields(node):
        if slot == "type_comment":
            continue
        inside = annotation or slot in ("annotation", "returns")
        for child in (value if isinstance(value, list) else [value]):
            if isinstance(child, ast.AST) and not (slot == "decorator_list" and _is_stage_decorator(child)):
                yield child, inside


def _semantic_node(node) -> str:
    """The node as it runs: docstrings, annotations and the stage decorator left out."""
    node = copy.deepcopy(node)
    drop_docstrings(node)
    for inner in ast.walk(node):
        for slot in ("annotation", "returns"):
            if getattr(inner, slot, None) is not None and not isinstance(inner, ast.AnnAssign):
                setattr(inner, slot, None)
        if isinstance(inner, ast.AnnAssign):
            inner.annotation = ast.Constant(None)
        if hasattr(inner, "decorator_list"):
            inner.decorator_list = [d for d in inner.decorator_list if not _is_stage_decorator(d)]
    return ast.dump(node)
