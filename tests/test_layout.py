"""The package's layers: no import cycle, and nothing below the stages imports them (issue 22).

Imports inside functions count: a cycle hidden in a lazy import is still a cycle of concerns.
"""

from pgx.keys import PACKAGE_ROOT
from pgx.reach import imported_modules

TOP = ("pgx.cli", "pgx.__main__")
"""What may import the stages besides the stages themselves: the command line."""


def _graph() -> dict[str, set[str]]:
    modules = set()
    for path in PACKAGE_ROOT.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE_ROOT.parent).with_suffix("").parts)
        modules.add(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return {m: {i for i in imported_modules(m, PACKAGE_ROOT) if i in modules and i != m} for m in modules}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle, as the modules along it, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(m: str) -> list[str] | None:
        state[m] = 1
        path.append(m)
        for n in sorted(graph[m]):
            if state.get(n) == 1:
                return path[path.index(n):] + [n]
            if n not in state and (found := visit(n)):
                return found
        state[m] = 2
        path.pop()
        return None

    for m in sorted(graph):
        if m not in state and (found := visit(m)):
            return found
    return None


def test_no_import_cycle():
    assert _cycle(_graph()) is None, " -> ".join(_cycle(_graph()))


def test_the_cycle_finder_finds_one():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_nothing_below_the_stages_imports_them():
    upward = sorted((m, i) for m, imported in _graph().items() for i in imported
                    if i.startswith("pgx.stages") and not m.startswith("pgx.stages") and m not in TOP)
    assert not upward, upward
