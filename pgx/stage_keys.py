"""What a declared stage's key carries of the code: the functions it reaches, read from the sources.

:func:`stage_version` follows a stage's syntax tree name by name: functions, classes and constants
of the stage modules one by one, every other pgx module whole with its imports
(:func:`pgx.keys.code_version`). So an edit re-keys exactly the stages whose functions reach the
edited code, and two stages in one module do not share a key. Below the stages (which declare
themselves with :func:`pgx.stages.graph.stage`); it imports none of them.
"""

from __future__ import annotations

import ast
import copy
import functools
import hashlib
from dataclasses import dataclass
from pathlib import Path

from pgx.keys import (PACKAGE_ROOT, REPORTING_MODULES, VALUE_MODULES, _drop_docstrings, _module_path, _outside_version,
                      code_version)

__all__ = ["StageVersion", "stage_version", "outside_stage_version", "STAGE_PACKAGE", "STAGE_DECORATOR"]


STAGE_PACKAGE = "pgx.stages"
"""Modules whose functions are followed one by one (a stage's key covers the functions it reaches
there, not the whole module); a module outside it counts whole, with its imports."""

STAGE_DECORATOR = "stage"
"""The decorator that declares a stage (:func:`pgx.stages.graph.stage`), found by name in the
syntax tree: its ``reads=`` literal is the profile fields the stage reads."""


@dataclass(frozen=True)
class StageVersion:
    """What a declared stage's key carries of the code: ``code``, a hash of the functions and
    constants it reaches in the stage modules and of every other pgx module it reaches (with their
    imports); ``reads``, the profile fields it and every stage it reaches declare; ``stages``, the
    stages it reaches (itself included), as ``"module:function"``; ``profile_reads``, the
    ``profile.<field>`` attributes read in the functions it reaches in the stage modules (what a
    test checks its declaration against)."""

    code: str
    reads: frozenset[str]
    stages: tuple[str, ...]
    profile_reads: frozenset[str] = frozenset()


def stage_version(module: str, function: str, root: Path = PACKAGE_ROOT) -> StageVersion:
    """The :class:`StageVersion` of stage ``function`` of ``module`` (``"pgx.stages.truth"``).

    Read from the sources alone (nothing is imported, so an edited copy under ``root`` is versioned
    as it stands): from the stage's syntax tree, every name it loads is followed to what defines
    it. A function, class or constant of a stage module (:data:`STAGE_PACKAGE`) is followed one by
    one — its own syntax tree counts (docstrings, comments, type annotations and the stage
    decorator's line left out), and so do the names it loads; a name from any other pgx module
    counts as that module's :func:`code_version` (its imports included); a stage reached this way is
    a stage consumed, whose ``reads=`` join this one's. So an edit re-keys exactly the stages whose
    functions reach the edited code, and two stages in one module no longer share a key.

    For the installed pgx it is computed once per process (at import: stage modules declare their
    stages then), for the reason :func:`versioned` gives.
    """
    if root == PACKAGE_ROOT:
        return _pinned_stage(module, function)
    return _stage_version(module, function, root)


def outside_stage_version(fn, reads: tuple[str, ...]) -> StageVersion:
    """The :class:`StageVersion` of a stage defined outside pgx (a plugin's, a notebook's, a test's):
    keyed as a family from outside pgx is (:func:`pgx.keys.family_version`): its module's source, so
    a helper beside it counts too, or the function's own where the module's cannot be read (a
    notebook's ``__main__``); docstrings and comments left out, imports not followed. Its fields are
    those it declares."""
    code = _outside_version(fn, fn.__module__).rpartition("@")[2]
    return StageVersion(code=code, reads=frozenset(reads), stages=(f"{fn.__module__}:{fn.__qualname__}",))


@functools.cache
def _pinned_stage(module: str, function: str) -> StageVersion:
    return _stage_version(module, function, PACKAGE_ROOT)


def _stage_version(module: str, function: str, root: Path) -> StageVersion:
    package = root.name
    parts: set[str] = set()
    modules: set[str] = set()
    reads: set[str] = set()
    stages: set[str] = set()
    attributes: set[str] = set()
    seen: set[tuple[str, str]] = set()
    todo = [(module, function)]
    while todo:
        mod, name = todo.pop()
        if (mod, name) in seen:
            continue
        seen.add((mod, name))
        table = _top_level(_module_path(mod, root, package).read_text(), mod, package)
        if name not in table.definitions:
            raise ValueError(f"{mod} defines no top-level {name!r} (a stage or what one calls)")
        node, decorated = table.definitions[name], table.stage_reads.get(name)
        parts.add(f"{mod}:{name}:{_semantic_node(node)}")
        attributes.update(inner.attr for inner in ast.walk(node) if isinstance(inner, ast.Attribute)
                          and isinstance(inner.value, ast.Name) and inner.value.id == "profile")
        if decorated is not None:
            stages.add(f"{mod}:{name}")
            reads.update(decorated)
        for loaded in _loaded_names(node):
            if loaded in table.definitions:
                todo.append((mod, loaded))
            elif loaded in table.imported:
                source, attr = table.imported[loaded]
                if source in REPORTING_MODULES:
                    continue
                if source.startswith(STAGE_PACKAGE + ".") and attr is not None and _module_path(source, root, package):
                    todo.append((source, attr))
                else:
                    modules.add(source)
        for source, attr in _local_imports(node, mod, package):
            if source in REPORTING_MODULES:
                continue
            if source.startswith(STAGE_PACKAGE + ".") and attr is not None:
                todo.append((source, attr))
            else:
                modules.add(source)
    modules = {m for m in modules if m not in VALUE_MODULES and m not in REPORTING_MODULES
               and _module_path(m, root, package) is not None}
    digest = hashlib.sha256()
    for part in sorted(parts) + [f"{m}@{code_version(m, root)}" for m in sorted(modules)]:
        digest.update(part.encode())
    return StageVersion(code=digest.hexdigest()[:16], reads=frozenset(reads), stages=tuple(sorted(stages)),
                        profile_reads=frozenset(attributes))


@dataclass(frozen=True)
class _Table:
    definitions: dict
    """Top-level name → its defining node (function, class, or assignment)."""
    imported: dict
    """Top-level name → (pgx module, attribute or None for a module) it was imported from."""
    stage_reads: dict
    """Name of a function declared with the stage decorator → the fields of its ``reads=``."""


@functools.lru_cache(maxsize=None)
def _top_level(source: str, module: str, package: str) -> _Table:
    definitions, imported, stage_reads = {}, {}, {}
    is_package = False
    for node in ast.parse(source).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            definitions[node.name] = node
            reads = _declared_reads(node)
            if reads is not None:
                stage_reads[node.name] = reads
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                for leaf in ast.walk(target):
                    if isinstance(leaf, ast.Name):
                        definitions[leaf.id] = node
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            for name, source, attr in _import_bindings(node, module, package, is_package):
                imported[name] = (source, attr)
    return _Table(definitions, imported, stage_reads)


def _declared_reads(node) -> frozenset[str] | None:
    """The ``reads=`` of a ``@stage(reads=...)`` decorator (a literal tuple of field names), or None."""
    for decorator in getattr(node, "decorator_list", []):
        if isinstance(decorator, ast.Call) and _dotted(decorator.func).split(".")[-1] == STAGE_DECORATOR:
            for keyword in decorator.keywords:
                if keyword.arg == "reads":
                    return frozenset(ast.literal_eval(keyword.value))
            return frozenset()
    return None


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
                bound = alias.asname or alias.name.split(".")[0]
                yield bound, (alias.name if alias.asname else alias.name.split(".")[0]), None
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


def _local_imports(node, module: str, package: str):
    """(pgx module, attribute) of each import statement inside a function or class."""
    for inner in ast.walk(node):
        if inner is not node and isinstance(inner, (ast.Import, ast.ImportFrom)):
            for _, source, attr in _import_bindings(inner, module, package, False):
                yield source, attr


def _without_annotations(node):
    """The node's children that run: type annotations and the stage decorator are left out."""
    for field, value in ast.iter_fields(node):
        if field in ("annotation", "returns", "decorator_list", "type_comment"):
            continue
        for child in (value if isinstance(value, list) else [value]):
            if isinstance(child, ast.AST):
                yield child


def _loaded_names(node) -> set[str]:
    found, todo = set(), [node]
    while todo:
        current = todo.pop()
        if isinstance(current, ast.Name) and isinstance(current.ctx, ast.Load):
            found.add(current.id)
        todo.extend(_without_annotations(current))
    return found


def _semantic_node(node) -> str:
    """The node as it runs: docstrings, annotations and the decorator line left out."""
    node = _strip(copy.deepcopy(node))
    return ast.dump(node)


def _strip(node):
    _drop_docstrings(node)
    for inner in ast.walk(node):
        for field in ("annotation", "returns"):
            if getattr(inner, field, None) is not None and not isinstance(inner, ast.AnnAssign):
                setattr(inner, field, None)
        if isinstance(inner, ast.AnnAssign):
            inner.annotation = ast.Constant(None)
        if hasattr(inner, "decorator_list"):
            inner.decorator_list = [d for d in inner.decorator_list
                                    if not (isinstance(d, ast.Call) and _dotted(d.func).split(".")[-1] == STAGE_DECORATOR)]
    return node
