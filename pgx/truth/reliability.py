"""How much a ground truth agrees with itself: its noise ceiling.

Fine-tuning is noisy, so a true affinity matrix built from one fine-tuning run per subset is partly
noise, and no estimate can agree with it better than it agrees with a rerun of itself. With r
replicate runs per subset (replicate j of every subset drawing the same seed: common random
numbers), the replicates split into two halves; each half's mean scores give a truth, and the two
truths are compared three ways — the NMI of their k groups, the correlation of their off-diagonal
affinities, and the per-task Spearman correlation of their subset scores. Averaged over the
balanced splits, these are the split-half reliabilities; the full-r truth is more reliable than
either half, as the Spearman–Brown formula projects for the correlations (approximately: each
half's affinity is z-normalised on its own, so it is not exactly a mean of replicates). For the
groups there is no such formula; a bootstrap over replicates gives their stability, optimistically.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from pgx.affinity import affinity_matrix
from pgx.clustering import sdp_cluster
from pgx.runtime import is_int
from pgx.truth.validation import grouping_nmi, offdiagonal_correlation, per_task_spearman

__all__ = ["Reliability", "spearman_brown", "half_splits", "split_half_reliability", "replicate_array"]


@dataclass(frozen=True)
class Reliability:
    """Split-half agreement of a replicated ground truth, and what it implies for the full truth."""

    replicates: int
    splits: int
    """Balanced splits averaged over."""
    nmi: float
    """Mean NMI between the k groups of the two halves' truths."""
    nmi_std: float
    offdiagonal: float
    """Mean Pearson correlation of the two halves' off-diagonal affinities."""
    spearman: float
    """Mean over splits of the mean over tasks of the per-task Spearman ρ between halves' scores."""
    full_offdiagonal: float
    """Spearman–Brown projection of ``offdiagonal`` to the full r replicates."""
    full_spearman: float
    """Spearman–Brown projection of ``spearman`` to the full r replicates."""
    full_nmi: float
    """Bootstrap over replicates: mean NMI of groups from resampled-replicate truths against the
    full truth's groups. A stability check, and an optimistic one: each resample shares most of
    its replicates with the full truth (pure noise scores about 0.65 here, chance about 0.25), so
    it is not a reliability and no verdict rests on it."""

    def row(self) -> dict[str, float]:
        return {"replicates r": self.replicates, "split-half NMI": self.nmi, "split-half NMI std": self.nmi_std,
                "split-half off-diagonal r": self.offdiagonal, "split-half Spearman ρ": self.spearman,
                "full-r off-diagonal r (Spearman–Brown)": self.full_offdiagonal,
                "full-r Spearman ρ (Spearman–Brown)": self.full_spearman,
                "full-r group stability (bootstrap, optimistic)": self.full_nmi}


def spearman_brown(rho: float, factor: float = 2.0) -> float:
    """Reliability of a measurement ``factor`` times as long as one with reliability ``rho``:
    ``factor·ρ / (1 + (factor − 1)·ρ)``. NaN for ρ ≤ 0: a measurement that does not agree with
    itself has no reliability to project (the formula would give values below −1 for negative ρ
    near −1/(factor − 1)); NaN stays NaN."""
    if not factor > 0:
        raise ValueError(f"factor must be > 0, got {factor!r}")
    if not np.isfinite(rho) or rho <= 0:
        return float("nan")
    return float(factor * rho / (1 + (factor - 1) * rho))


def half_splits(r: int, max_splits: int = 10, seed: int = 0) -> list[tuple[tuple[int, ...], tuple[int, ...]]]:
    """Balanced splits of ``range(r)`` into two halves (the odd one out, for odd r, left unused).

    Every split when there are at most ``max_splits`` of them, else ``max_splits`` distinct random
    ones; a split and its mirror count once, and for odd r every replicate takes its turn out.
    """
    if not is_int(r) or r < 2:
        raise ValueError(f"split-half reliability needs r >= 2 replicates, got {r!r}")
    half = r // 2
    splits = []
    for first in itertools.combinations(range(r), half):
        rest = [j for j in range(r) if j not in first]
        for second in itertools.combinations(rest, half):
            if first < second:  # each unordered split once
                splits.append((first, second))
    if len(splits) > max_splits:
        chosen = np.random.default_rng(seed).choice(len(splits), size=max_splits, replace=False)
        splits = [splits[i] for i in sorted(chosen)]
    return splits


def replicate_array(subsets: Sequence[Sequence[int]], replicate_scores: np.ndarray, n_tasks: int) -> np.ndarray:
    """``replicate_scores`` as a float ``(r, len(subsets), n_tasks)`` array, or an error naming the
    shape it has: the one check of every measure over a truth's replicates."""
    scores = np.asarray(replicate_scores, float)
    if scores.ndim != 3 or scores.shape[1:] != (len(subsets), n_tasks):
        raise ValueError(f"replicate_scores must have shape (r, {len(subsets)}, {n_tasks}), got {scores.shape}")
    return scores


def split_half_reliability(
    subsets: Sequence[Sequence[int]],
    replicate_scores: np.ndarray,
    n_tasks: int,
    k: int,
    seed: int = 0,
    max_splits: int = 10,
    bootstrap: int = 20,
    normalize: bool = True,
) -> Reliability:
    """Split-half reliability of the truth ``mean_j replicate_scores[j]``.

    :param replicate_scores: ``(r, m, n_tasks)``, replicate j's score of each task on each subset
        (NaN outside the subset), r >= 2.
    :param k: number of groups compared.
    :param normalize: standardise each task's scores across subsets before the affinity
        (:func:`pgx.affinity.affinity_matrix`); False: the raw target.
    """
    scores = replicate_array(subsets, replicate_scores, n_tasks)
    r = scores.shape[0]
    splits = half_splits(r, max_splits, seed)
    nmis, offdiagonals, spearmans = [], [], []
    for first, second in splits:
        a, b = scores[list(first)].mean(0), scores[list(second)].mean(0)
        ta, tb = affinity_matrix(subsets, a, n_tasks, normalize), affinity_matrix(subsets, b, n_tasks, normalize)
        nmis.append(grouping_nmi(sdp_cluster(ta, k=k, seed=seed), sdp_cluster(tb, k=k, seed=seed)))
        offdiagonals.append(offdiagonal_correlation(ta, tb))
        rho = per_task_spearman(a, b)
        spearmans.append(float(np.nanmean(rho)) if np.isfinite(rho).any() else np.nan)
    full_groups = sdp_cluster(affinity_matrix(subsets, scores.mean(0), n_tasks, normalize), k=k, seed=seed)
    rng = np.random.default_rng(seed)
    boot = [grouping_nmi(sdp_cluster(affinity_matrix(subsets, scores[rng.integers(0, r, r)].mean(0), n_tasks, normalize),
                                     k=k, seed=seed), full_groups) for _ in range(bootstrap)]
    offdiagonal, spearman = _nanmean(offdiagonals), _nanmean(spearmans)
    # A half holds r//2 replicates; the full truth r of them.
    factor = r / (r // 2)
    return Reliability(replicates=r, splits=len(splits), nmi=float(np.mean(nmis)), nmi_std=float(np.std(nmis)),
                       offdiagonal=offdiagonal, spearman=spearman,
                       full_offdiagonal=spearman_brown(offdiagonal, factor), full_spearman=spearman_brown(spearman, factor),
                       full_nmi=float(np.mean(boot)) if boot else float("nan"))


def _nanmean(values: Sequence[float]) -> float:
    finite = [v for v in values if np.isfinite(v)]
    return float(np.mean(finite)) if finite else float("nan")
