"""What chapters share to show every family side by side: which families a build covers, and
their budgets and descriptions as tables. Chapters narrate; this module only gathers."""

from __future__ import annotations

import os
from typing import Sequence

import numpy as np
import pandas as pd

from pgx.envs import BUILTIN_FAMILIES, load_plugins, make_family
from pgx.profiles import Profile

__all__ = ["book_families", "book_seed", "budgets_table", "families_table", "transfer_gaps", "hidden_and_shown"]


def book_families() -> tuple[str, ...]:
    """The families a book build covers: ``$PGX_FAMILIES`` (comma-separated family specs), else
    the paper's four. Families registered by ``$PGX_PLUGINS`` modules are known here. A bad name
    fails here with the registry's message, before any work."""
    load_plugins()
    raw = os.environ.get("PGX_FAMILIES", "").strip()
    families = tuple(f.strip() for f in raw.split(",") if f.strip()) if raw else BUILTIN_FAMILIES
    for spec in families:
        try:
            make_family(spec)
        except ValueError as e:
            raise ValueError(f"PGX_FAMILIES: {e}") from None
    return families


def book_seed() -> int:
    """``$PGX_SEED`` (default 0)."""
    raw = os.environ.get("PGX_SEED", "0")
    if not raw.isdigit():
        raise ValueError(f"PGX_SEED must be a non-negative integer, got {raw!r}")
    return int(raw)


def budgets_table(profile: Profile, families: Sequence[str]) -> pd.DataFrame:
    """One column per family: the budgets each runs with in ``profile``."""
    return pd.DataFrame({f: profile.for_family(f).budgets() for f in families}).drop(index="family")


def families_table(families: Sequence[str]) -> pd.DataFrame:
    """One row per family: what differs between its tasks, its spaces, and whether θ* sees the task."""
    rows = {}
    for spec in families:
        fam = make_family(spec)
        labels = fam.task_labels()
        rows[spec] = {
            "tasks differ in": fam.parameter,
            "source tasks": f"{fam.n_tasks}: {labels[0]} … {labels[-1]}",
            "target tasks": len(fam.target_params),
            "observation": f"{fam.base_obs_dim}" + (f" + {fam.n_tasks} one-hot" if fam.observe_task else ""),
            "actions": f"{fam.num_actions} discrete" if fam.discrete else f"{fam.num_actions}-D continuous",
            "episode steps": fam.max_episode_steps,
            "policy sees the task": fam.observe_task,
        }
    return pd.DataFrame(rows).T


def transfer_gaps(matrix: np.ndarray) -> np.ndarray:
    """``(n, n)``: how much worse task j does under task i's policy than under its own,
    ``(M[j, j] − M[i, j]) / (max M − min M)``. Scale-free, and meaningful for returns of either
    sign (LunarLander's are often negative), unlike a ratio to the own-task return."""
    matrix = np.asarray(matrix, dtype=float)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
        raise ValueError(f"transfer matrix must be square, got shape {matrix.shape}")
    spread = float(np.nanmax(matrix) - np.nanmin(matrix))
    return (np.diag(matrix)[None, :] - matrix) / (spread if spread > 0 else 1.0)


def hidden_and_shown(spec: str) -> dict[str, str]:
    """The two variants of a family the family chapter compares: ``{"task shown": spec', "task
    hidden": spec''}``, one of which is ``spec`` itself (its default)."""
    fam = make_family(spec)
    other = f"{spec}{',' if ':' in spec else ':'}observe_task={'false' if fam.observe_task else 'true'}"
    return {"task shown": spec, "task hidden": other} if fam.observe_task else {"task shown": other, "task hidden": spec}
