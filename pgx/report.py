"""What chapters share to show every family side by side: which families a build covers, and
their budgets and descriptions as tables. Chapters narrate; this module only gathers."""

from __future__ import annotations

import os
import re
import sys
import time
import warnings
from typing import Sequence

import numpy as np
import pandas as pd

from pgx.envs import BUILTIN_FAMILIES, load_plugins, make_family, parse_family_spec
from pgx.profiles import Profile
from pgx.runtime import env_seed, is_int

__all__ = ["book_families", "metaworld_families", "METAWORLD_FAMILIES", "book_seed", "budgets_table", "families_table",
           "transfer_gaps", "hidden_and_shown", "mean_std", "clearly_above", "NO_DIFFERENCE", "versus", "verdict_rows",
           "reliability_rows", "reliability_verdict", "replicates_needed", "show_warnings", "PAPER_TABLE3_CLAIMS",
           "BASELINE_KIND", "transfer_rows", "relative_improvements", "improvement_verdicts", "chapter_wall_time"]


METAWORLD_FAMILIES: tuple[str, ...] = ("mt10", "mt50")
"""The Meta-World families, which only the Meta-World chapter runs (with SAC)."""


def _requested_families() -> tuple[str, ...] | None:
    """``$PGX_FAMILIES`` as specs, or None where it is unset or empty; every name checked."""
    load_plugins()
    raw = os.environ.get("PGX_FAMILIES", "").strip()
    if not raw:
        return None
    families = tuple(f.strip() for f in raw.split(",") if f.strip())
    for spec in families:
        try:
            if parse_family_spec(spec)[0] in METAWORLD_FAMILIES:
                parse_family_spec(spec)  # building Meta-World's goal sets takes seconds: the name is enough
            else:
                make_family(spec)
        except ValueError as e:
            raise ValueError(f"PGX_FAMILIES: {e}") from None
    return families


def book_families() -> tuple[str, ...]:
    """The families chapters 1–10 cover: the specs of ``$PGX_FAMILIES`` (comma-separated) that are
    not Meta-World's, else the paper's four. Families registered by ``$PGX_PLUGINS`` modules are
    known here. A bad name fails here with the registry's message, before any work."""
    requested = _requested_families()
    if requested is None:
        return BUILTIN_FAMILIES
    families = tuple(spec for spec in requested if parse_family_spec(spec)[0] not in METAWORLD_FAMILIES)
    if not families:
        raise ValueError(f"PGX_FAMILIES={os.environ['PGX_FAMILIES']!r} names only Meta-World families; chapters 2–10 "
                         f"need at least one other (e.g. add cartpole)")
    return families


def metaworld_families() -> tuple[str, ...]:
    """The Meta-World families the Meta-World chapter runs: those named in ``$PGX_FAMILIES``, or
    both when it is unset, so a build restricted to other families skips Meta-World's hour."""
    requested = _requested_families()
    if requested is None:
        return METAWORLD_FAMILIES
    return tuple(name for name in METAWORLD_FAMILIES if name in {parse_family_spec(s)[0] for s in requested})


def book_seed() -> int:
    """``$PGX_SEED`` (unset or empty: 0), read by the rules the CLI reads it by (``runtime.env_seed``)."""
    return env_seed()


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


def mean_std(values) -> str:
    """``"mean ± std"`` over seeds (sample std), the mean alone for one value, "—" for none."""
    values = pd.Series(values, dtype=float).dropna()
    if values.empty:
        return "—"
    return f"{values.mean():.3g} ± {values.std():.2g}" if len(values) > 1 else f"{values.mean():.3g}"


def clearly_above(a, b) -> bool:
    """Whether ``a``'s mean exceeds ``b``'s by more than the larger of their spreads between seeds:
    a difference smaller than the seeds' spread is not a difference. With one seed each, any
    positive difference counts (there is no spread to compare with)."""
    a, b = pd.Series(a, dtype=float).dropna(), pd.Series(b, dtype=float).dropna()
    if a.empty or b.empty:
        return False
    spread = max(a.std() if len(a) > 1 else 0.0, b.std() if len(b) > 1 else 0.0)
    return bool(a.mean() - b.mean() > spread)


NO_DIFFERENCE = "no difference beyond the seeds' spread"


def versus(a, b, above: str = "better", below: str = "worse") -> str:
    """``above`` where ``a`` is clearly above ``b`` (:func:`clearly_above`), ``below`` where clearly
    below, else :data:`NO_DIFFERENCE`: the three-way verdict between two methods over seeds."""
    return above if clearly_above(a, b) else below if clearly_above(b, a) else NO_DIFFERENCE


def verdict_rows(verdicts: dict[tuple[str, int], dict]) -> pd.DataFrame:
    """``stages.verdicts`` of several (family, seed) as one frame indexed (family, seed, estimator)."""
    rows = [{"family": spec, "seed": seed, "estimator": name, **row}
            for (spec, seed), v in verdicts.items() for name, row in v["rows"].items()]
    return pd.DataFrame(rows).set_index(["family", "seed", "estimator"])


def reliability_rows(verdicts: dict[tuple[str, int], dict], which: str = "truth reliability") -> pd.DataFrame:
    """One reliability block of ``stages.verdicts`` per (family, seed)."""
    return pd.DataFrame([{"family": spec, "seed": seed, **v[which]} for (spec, seed), v in verdicts.items()]
                        ).set_index(["family", "seed"])


def reliability_verdict(split_half_nmi, full_offdiagonal, threshold: float = 0.8) -> str:
    """What a truth can validate, from its split-half NMI (the groups of two halves of the
    replicates) and the Spearman–Brown projection of its split-half affinity correlation to all
    replicates, both averaged over seeds."""
    half = float(pd.Series(split_half_nmi, dtype=float).mean())
    full = float(pd.Series(full_offdiagonal, dtype=float).mean())
    if half >= threshold:
        return f"reliable: split-half NMI {half:.2f} ≥ {threshold}"
    if full >= threshold:
        return (f"partly reliable: its affinities reproduce (full-r off-diagonal r {full:.2f} by Spearman–Brown) but "
                f"the groups of two halves agree only at NMI {half:.2f} < {threshold}")
    return (f"unreliable: split-half NMI {half:.2f}, full-r off-diagonal r {full:.2f} — this truth cannot validate "
            f"a grouping at this budget")


def replicates_needed(rho: float, target: float, measured_with: int = 1) -> float:
    """How many replicates a truth needs for its reliability to reach ``target``, by the
    Spearman–Brown formula inverted, from a reliability ``rho`` measured on truths of
    ``measured_with`` replicates. ``inf`` when ``rho <= 0`` (the replicates share no signal, so no
    number of them helps); NaN stays NaN. A projection for correlations: it says nothing of groups.
    """
    if not 0 < target < 1:
        raise ValueError(f"target must lie in (0, 1), got {target!r}")
    if not is_int(measured_with) or measured_with < 1:
        raise ValueError(f"measured_with must be a positive int, got {measured_with!r}")
    rho = float(rho)
    if np.isnan(rho):
        return float("nan")
    if rho >= 1:
        return 0.0  # noise-free: any truth is as reliable as asked
    if rho <= 0:
        return float("inf")
    return measured_with * target * (1 - rho) / (rho * (1 - target))


_IMPORTED = time.perf_counter()
"""When a chapter's kernel imported this module: its first cell, the start of the chapter."""


def chapter_wall_time() -> str:
    """The chapter's last line: how long this build took to execute it, and with which profile.
    Stages loaded from the cache take little of it; the fill step (``pgx.book_fill``) prints what
    computing them took."""
    from pgx.progress import format_seconds

    return (f"this chapter ran for {format_seconds(time.perf_counter() - _IMPORTED)} in this build "
            f"(profile {os.environ.get('PGX_PROFILE') or 'default'}, seed {env_seed()})")


def show_warnings() -> None:
    """Print runtime and user warnings (solver not converged, SCS inaccurate, a stage's kept
    warnings) to stdout, where the built book keeps them; the book drops stderr, which carries
    progress bars and library deprecation noise. Each distinct warning prints once per kernel, however
    many cached stages carry it."""
    original = warnings.showwarning
    shown: set[tuple[type, str]] = set()

    def show(message, category, filename, lineno, file=None, line=None):
        ours = "pgx" in str(filename) or "book" in str(filename) or str(filename).startswith("<ipython")
        if issubclass(category, RuntimeWarning) or (issubclass(category, UserWarning) and ours):
            # A stage's kept warning comes back once per stage that loads it ("[verdicts] [meta_train] ...");
            # the page shows each distinct warning once, with the first chain of stages that raised it.
            core = (category, re.sub(r"^(\[\w+\] )+", "", str(message)))
            if core not in shown:
                shown.add(core)
                print(f"warning ({category.__name__}): {message}", file=sys.stdout)
        else:
            original(message, category, filename, lineno, file, line)

    warnings.showwarning = show


# --- Table 3: transfer after adaptation -------------------------------------------------------

PAPER_TABLE3_CLAIMS = {"multitask baselines": 0.16, "random and gradient-similarity groups": 0.19}
"""The paper's average relative improvements of PolicyGradEx's groups (Table 3, control columns)."""

BASELINE_KIND = {"MAML, all source tasks": "multitask baselines", "multitask PPO, all tasks": "multitask baselines",
                 "multitask PPO per PolicyGradEx group": "multitask baselines",
                 "MAML, random groups": "random and gradient-similarity groups",
                 "MAML, gradient-similarity groups": "random and gradient-similarity groups"}
"""Which of the paper's two claims each baseline of ``stages.downstream.METHODS`` falls under."""


def transfer_rows(results: dict) -> pd.DataFrame:
    """``{(family, seed): TransferResult}`` → one row per (family, seed, method): the mean return
    over targets before and after adaptation."""
    rows = [{"family": spec, "seed": seed, "method": method, "before": float(a.before.mean()),
             "after": float(a.after.mean())}
            for (spec, seed), res in results.items() for method, a in res.adaptations.items()]
    return pd.DataFrame(rows).set_index(["family", "seed", "method"])


def relative_improvements(rows: pd.DataFrame, ours: str, column: str = "after") -> pd.DataFrame:
    """Per (family, seed, baseline): (ours − baseline) / |baseline| of ``column``, seed by seed, so
    the spread between seeds comes with it. Dividing by |baseline| keeps the sign meaningful for
    negative returns (LunarLander, navigation)."""
    values = rows[column].unstack("method")
    base = values.drop(columns=ours)
    scale = base.abs().where(base.abs() > 0)  # a baseline return of exactly 0 gives NaN, not inf
    return base.rsub(values[ours], axis=0).div(scale).stack().rename("improvement").to_frame()


def improvement_verdicts(rows: pd.DataFrame, ours: str, column: str = "after") -> pd.DataFrame:
    """For each (family, baseline): ours and the baseline's returns over seeds, mean ± std, and
    whether ours is clearly above, clearly below, or within the seeds' spread of the baseline."""
    values = rows[column].unstack("method")
    out = []
    for spec, frame in values.groupby(level="family", sort=False):
        for baseline in [m for m in frame.columns if m != ours]:
            a, b = frame[ours], frame[baseline]
            verdict = versus(a, b)
            out.append({"family": spec, "baseline": baseline, "PolicyGradEx": mean_std(a), "baseline return": mean_std(b),
                        "relative improvement": f"{(a.mean() - b.mean()) / abs(b.mean()):+.1%}" if b.mean() else "—",
                        "verdict": verdict})
    return pd.DataFrame(out).set_index(["family", "baseline"])


def metaworld_kinds(names: Sequence[str]) -> list[str]:
    """The kind of each Meta-World task: the first word of its name, mostly the object handled
    (``"drawer-open-v3"`` → ``"drawer"``), sometimes the verb (``"pick-place-wall-v3"`` →
    ``"pick"``). A crude taxonomy read off the names, used to ask whether tasks of the same kind
    land in the same group."""
    return [name.split("-")[0] for name in names]


def agreement_beyond_chance(labels, reference, seed: int = 0, draws: int = 2000) -> dict[str, float]:
    """NMI of ``labels`` with ``reference``, and how often random partitions *with the same group
    sizes* score at least as high: a permutation test's p-value, ``(1 + #{shuffles ≥ observed}) /
    (1 + draws)``, so it is never 0.

    Shuffling the labels keeps the number and sizes of the groups, so a grouping is compared with
    chance groupings of its own shape, not with an NMI threshold that depends on the shape."""
    from pgx.truth.validation import grouping_nmi

    labels = np.asarray(labels)
    if not is_int(draws) or draws < 1:
        raise ValueError(f"draws must be an int >= 1, got {draws!r}")
    observed = grouping_nmi(labels, reference)  # checks the shapes
    rng = np.random.default_rng(seed)
    shuffled = np.array([grouping_nmi(rng.permutation(labels), reference) for _ in range(draws)])
    return {"nmi": float(observed), "chance nmi": float(shuffled.mean()),
            "share of shuffles at least as high": float((1 + (shuffled >= observed - 1e-12).sum()) / (1 + draws))}
