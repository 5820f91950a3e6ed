"""Task families and the one registry chapters use to get them: ``make_family(name)``."""

from __future__ import annotations

from typing import Callable

from pgx.envs.family import TaskFamily

__all__ = ["TaskFamily", "FAMILIES", "make_family"]


def _cartpole() -> TaskFamily:
    from pgx.envs.cartpole import cartpole_family

    return cartpole_family()


FAMILIES: dict[str, Callable[[], TaskFamily]] = {"cartpole": _cartpole}
"""Family name → factory. Factories import lazily so a family's heavy dependency loads only on use."""


def make_family(name: str) -> TaskFamily:
    """The task family called ``name`` (one of ``FAMILIES``)."""
    try:
        factory = FAMILIES[name]
    except KeyError:
        raise ValueError(f"unknown family {name!r}; known families: {sorted(FAMILIES)}") from None
    return factory()
