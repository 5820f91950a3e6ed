"""Task families and the registry every stage, chapter and CLI command gets them from.

``make_family(spec)`` takes a family name with optional options after a colon:
``"cartpole"``, ``"cartpole:observe_task=false"``, ``"navigation:goals=partial"``. Every family
takes ``observe_task``; the others are passed to the family's factory as keyword arguments, so
a bad option or value is a ``ValueError`` naming it. The spec string is what stages cache on.

Your own tasks: build a :class:`TaskFamily` (most easily with :func:`gym_family`) and
``register_family("name", factory)``; every stage and ``python -m pgx STAGE --family name``
then accepts it (the CLI imports the modules named in ``$PGX_PLUGINS`` first).
"""

from __future__ import annotations

import importlib
import inspect
import os
from typing import Any, Callable

from pgx.envs.family import TaskFamily, as_param_array
from pgx.envs.gym_family import gym_family

__all__ = ["TaskFamily", "FAMILIES", "make_family", "registry_entry", "register_family", "load_plugins", "gym_family",
           "parse_family_spec", "as_param_array", "BUILTIN_FAMILIES"]


FAMILIES: dict[str, Callable[..., TaskFamily] | str] = {
    "cartpole": "pgx.envs.cartpole:cartpole_family",
    "lunarlander": "pgx.envs.lunarlander:lunarlander_family",
    "highway": "pgx.envs.highway:highway_family",
    "navigation": "pgx.envs.navigation:navigation_family",
    "mt10": "pgx.envs.metaworld:mt10_family",
    "mt50": "pgx.envs.metaworld:mt50_family",
}
"""Family name → factory, or ``"module:function"`` of one: a family's heavy dependency (Box2D,
highway-env) is imported only when that family is used."""

BUILTIN_FAMILIES: tuple[str, ...] = ("cartpole", "lunarlander", "highway", "navigation")
"""The paper's control and navigation families, in the book's order, which chapters 1–10 run;
Meta-World (``mt10``, ``mt50``) has a chapter of its own."""


def register_family(name: str, factory: Callable[..., TaskFamily], *, overwrite: bool = False) -> None:
    """Make ``factory`` (``**options -> TaskFamily``) available to every stage as ``name``."""
    if not isinstance(name, str) or not name or any(c in name for c in ":,= /"):
        raise ValueError(f"family name must be a non-empty string without ':', ',', '=', ' ' or '/', got {name!r}")
    if not callable(factory):
        raise ValueError(f"factory for {name!r} must be callable, got {factory!r}")
    if name in FAMILIES and not overwrite:
        raise ValueError(f"family {name!r} is already registered; pass overwrite=True to replace it")
    FAMILIES[name] = factory


def load_plugins() -> None:
    """Import the modules named in ``$PGX_PLUGINS`` (comma-separated), so that the families they
    register are known; the CLI and the book call this first."""
    for name in filter(None, (n.strip() for n in os.environ.get("PGX_PLUGINS", "").split(","))):
        try:
            importlib.import_module(name)
        except ImportError as e:
            raise ValueError(f"cannot import plugin module {name!r} named in PGX_PLUGINS: {e}") from e


def parse_family_spec(spec: str) -> tuple[str, dict[str, Any]]:
    """``"name:key=value,key=value"`` → ``(name, {key: value})``; values are parsed as bool,
    int, float or left as strings."""
    if not isinstance(spec, str) or not spec:
        raise ValueError(f"family must be a non-empty string, got {spec!r}")
    name, _, rest = spec.partition(":")
    options: dict[str, Any] = {}
    for item in filter(None, rest.split(",")):
        key, eq, value = item.partition("=")
        if not eq or not key:
            raise ValueError(f"family option {item!r} in {spec!r} is not key=value")
        options[key.strip()] = _parse_value(value.strip())
    return name, options


def _parse_value(text: str) -> Any:
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def registry_entry(name: str) -> Callable[..., TaskFamily] | str:
    """What the registry holds for family ``name`` (a factory, or ``"module:function"``), with the
    one error every caller gives for a name it does not know."""
    try:
        return FAMILIES[name]
    except KeyError:
        raise ValueError(f"unknown family {name!r}; known families: {sorted(FAMILIES)}") from None


def make_family(spec: str) -> TaskFamily:
    """The task family ``spec`` names (see the module docstring); its ``name`` is ``spec``.

    Built once per spec and registered factory, then the same (frozen) object is returned: a
    stage asks for its family in many places (one ground-truth call asked six times), and a
    family's construction can load assets. Registering another factory under the name builds anew.
    """
    name, _ = parse_family_spec(spec)
    factory = registry_entry(name)
    built = _BUILT.get(spec)
    if built is None or built[0] is not factory:
        built = _BUILT[spec] = (factory, _build_family(spec, factory))
    return built[1]


_BUILT: dict[str, tuple[Any, TaskFamily]] = {}
"""spec → (the registry entry it was built from, the family)."""


def _build_family(spec: str, factory: Callable[..., TaskFamily] | str) -> TaskFamily:
    name, options = parse_family_spec(spec)
    if isinstance(factory, str):
        module, _, function = factory.partition(":")
        factory = getattr(importlib.import_module(module), function)
    observe_task = options.pop("observe_task", None)
    if observe_task is not None and not isinstance(observe_task, bool):
        raise ValueError(f"observe_task must be true or false, got {observe_task!r}")
    accepted = inspect.signature(factory).parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in accepted.values())
    unknown = [k for k in options if k not in accepted and not takes_any]
    if unknown:
        raise ValueError(f"family {name!r} has no option {unknown[0]!r}; it takes {sorted(accepted)}")
    try:
        family = factory(**options)
    except TypeError as e:
        raise ValueError(f"family {name!r} rejected options {options}: {e}") from e
    changes: dict[str, Any] = {"name": spec}
    if observe_task is not None:
        changes["observe_task"] = observe_task
    return family.with_options(**changes)
