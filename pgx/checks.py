"""Checks of config fields, shared by every frozen config's ``__post_init__``.

Each raises a ``ValueError`` that names the owner, the field and the value
(``PPOConfig.learning_rate must be a finite number >= 0, got -1.0``), so a bad budget fails where
it is written, not deep inside torch or a solver hours later. None of them converts or changes a
value: a config holds exactly what it was given, and so pickles (and caches) exactly as before.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from typing import Any, Collection, Mapping

import numpy as np

from pgx.runtime import is_int

__all__ = ["is_real", "check_int", "check_optional_int", "check_number", "check_optional_number", "check_bool",
           "check_instance", "check_choice", "check_ints", "check_numbers", "check_name", "check_budgets",
           "FamilyBudgets", "KeyedByChanges", "option"]


def is_real(value: object) -> bool:
    """Python and numpy real numbers (NaN and inf included); not bools, strings or tensors."""
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))


def check_int(owner: str, field: str, value: Any, minimum: int = 1) -> None:
    """An int (Python or numpy, not a bool or a float) ``>= minimum``."""
    if not is_int(value) or value < minimum:
        raise ValueError(f"{owner}.{field} must be an int >= {minimum}, got {value!r}")


def check_optional_int(owner: str, field: str, value: Any, minimum: int = 1) -> None:
    """None, or an int ``>= minimum``."""
    if value is not None and (not is_int(value) or value < minimum):
        raise ValueError(f"{owner}.{field} must be None or an int >= {minimum}, got {value!r}")


def _in_range(value: Any, low: float | None, high: float | None, low_open: bool, high_open: bool, finite: bool) -> bool:
    if not is_real(value) or math.isnan(value) or (finite and math.isinf(value)):
        return False
    above = low is None or (value > low if low_open else value >= low)
    below = high is None or (value < high if high_open else value <= high)
    return above and below


def _describe(low: float | None, high: float | None, low_open: bool, high_open: bool, finite: bool) -> str:
    if low is not None and high is not None:
        return f"in {'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"
    number = "a finite number" if finite else "a number"
    if low is not None:
        return f"{number} {'>' if low_open else '>='} {low}"
    if high is not None:
        return f"{number} {'<' if high_open else '<='} {high}"
    return number


def check_number(owner: str, field: str, value: Any, low: float | None = None, high: float | None = None, *,
                 low_open: bool = True, high_open: bool = False, finite: bool = True) -> None:
    """A real number (not a bool, never NaN) in the interval from ``low`` to ``high``, each bound
    open or closed, and finite unless ``finite=False`` (where inf means "no limit")."""
    if not _in_range(value, low, high, low_open, high_open, finite):
        raise ValueError(f"{owner}.{field} must be {_describe(low, high, low_open, high_open, finite)}, got {value!r}")


def check_optional_number(owner: str, field: str, value: Any, low: float | None = None, high: float | None = None, *,
                          low_open: bool = True, high_open: bool = False) -> None:
    """None, or a finite real number in the interval (see :func:`check_number`)."""
    if value is not None and not _in_range(value, low, high, low_open, high_open, True):
        raise ValueError(f"{owner}.{field} must be None or {_describe(low, high, low_open, high_open, True)}, "
                         f"got {value!r}")


def check_bool(owner: str, field: str, value: Any) -> None:
    """True or False: a 0/1 int or a string such as ``"false"`` is refused, not read as a flag."""
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{owner}.{field} must be True or False, got {value!r}")


def check_instance(owner: str, field: str, value: Any, cls: type) -> None:
    """An instance of ``cls`` (a nested config)."""
    if not isinstance(value, cls):
        raise ValueError(f"{owner}.{field} must be a {cls.__module__}.{cls.__qualname__}, got "
                         f"{type(value).__name__} {value!r}")


def check_choice(owner: str, field: str, value: Any, choices: Collection[Any]) -> None:
    """One of ``choices``."""
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{owner}.{field} must be one of {tuple(choices)}, got {value!r}")


def check_ints(owner: str, field: str, values: Any, minimum: int = 1, *, allow_empty: bool = False) -> None:
    """A tuple of ints, each ``>= minimum`` (and at least one unless ``allow_empty``)."""
    if (not isinstance(values, tuple) or (not values and not allow_empty)
            or any(not is_int(v) or v < minimum for v in values)):
        size = "a tuple" if allow_empty else "a non-empty tuple"
        raise ValueError(f"{owner}.{field} must be {size} of ints >= {minimum}, got {values!r}")


def check_numbers(owner: str, field: str, values: Any, low: float | None = None, high: float | None = None, *,
                  low_open: bool = True, high_open: bool = False, allow_empty: bool = False) -> None:
    """A tuple of finite real numbers, each in the interval (see :func:`check_number`)."""
    if (not isinstance(values, tuple) or (not values and not allow_empty)
            or any(not _in_range(v, low, high, low_open, high_open, True) for v in values)):
        size = "a tuple" if allow_empty else "a non-empty tuple"
        each = _describe(low, high, low_open, high_open, True)
        raise ValueError(f"{owner}.{field} must be {size} of numbers, each {each}, got {values!r}")


def check_name(owner: str, field: str, value: Any, optional: bool = False) -> None:
    """A non-empty string (or None where ``optional``)."""
    if (value is None and optional) or (isinstance(value, str) and value):
        return
    raise ValueError(f"{owner}.{field} must be a non-empty string{' or None' if optional else ''}, got {value!r}")


def check_budgets(owner: str, family_budgets: Any) -> None:
    """A profile's ``family_budgets``: a mapping from family names to mappings of field → value
    (which fields exist, and whether their values pass, each profile checks itself)."""
    if not isinstance(family_budgets, Mapping) or any(
            not isinstance(name, str) or not isinstance(changes, Mapping) for name, changes in family_budgets.items()):
        raise ValueError(f"{owner}.family_budgets must map family names to {{field: value}} mappings, "
                         f"got {family_budgets!r}")


def option(default: Any) -> Any:
    """A config field added after results were cached: ``new: bool = option(False)``. While it
    holds its default it is left out of the config's pickle, and so of every cache key (see
    :class:`KeyedByChanges`): adding it re-runs nothing until a profile sets it. Its default must
    never change afterwards (a config at the default would keep its old keys and load results
    computed under the old default); to change it, declare it a plain field, which re-keys once."""
    return dataclasses.field(default=default, metadata={"option": True})


class KeyedByChanges:
    """A frozen config dataclass whose :func:`option` fields are pickled — and so hashed into every
    cache key that holds the config — only where they differ from their defaults: a new option
    keeps every existing key. Every other field is always pickled, so changing a plain field's
    default re-keys what it can change. Unpickling restores an omitted option's default. A value
    equal to its default but of another type (``1.0`` for ``1``) is kept."""

    def __getstate__(self) -> dict[str, Any]:
        state = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            default = _default(f)
            if not f.metadata.get("option") or type(value) is not type(default) or not _equal(value, default):
                state[f.name] = value
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        for f in dataclasses.fields(self):
            value = state[f.name] if f.name in state else _default(f)
            if value is _NO_DEFAULT:
                raise ValueError(f"a pickled {type(self).__name__} lacks {f.name!r}, which has no default")
            object.__setattr__(self, f.name, value)


_NO_DEFAULT = object()


def _default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return _NO_DEFAULT


def _equal(a: Any, b: Any) -> bool:
    try:
        return bool(a == b)
    except Exception:  # an array's ambiguous truth value: not a default worth dropping
        return False


class FamilyBudgets(KeyedByChanges):
    """What every kind of profile (:class:`~pgx.profiles.Profile`, the downstream and the Meta-World
    budgets) does with its per-family overrides, written once: a frozen dataclass with fields
    ``name``, ``family`` and ``family_budgets`` inherits it.

    :attr:`label` names the kind in messages (``"profile"``, ``"transfer profile"``, ...).
    """

    label = "profile"

    def check_family_budgets(self, owner: str) -> None:
        """``family_budgets`` maps family names to changes of known fields, and each family's budgets
        pass the same checks as the base ones (built once here, so a bad value fails at import)."""
        check_budgets(owner, self.family_budgets)
        known = {f.name for f in dataclasses.fields(self)} - {"name", "family", "family_budgets"}
        for family, changes in self.family_budgets.items():
            bad = sorted(set(changes) - known)
            if bad:
                raise ValueError(f"{self.label} {self.name!r}: budgets for {family!r} name unknown fields {bad}")
            dataclasses.replace(self, family_budgets={}, **changes)

    def for_family(self, family: str):
        """The budgets ``family`` runs with (a spec such as ``"navigation:goals=partial"`` uses its
        base name's); idempotent."""
        base = family.partition(":")[0]
        if self.family is not None:
            if self.family != base:
                raise ValueError(f"{self.label} was specialised for {self.family!r}, cannot run family {family!r}")
            return self
        return dataclasses.replace(self, family=base, family_budgets={}, **self.family_budgets.get(base, {}))
