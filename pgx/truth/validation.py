"""How close is the surrogate's affinity to the one real fine-tuning gives? (Section 4.2, Table 2.)

Pure metrics on matrices and labels; the stages that produce their inputs live in ``pgx.stages``.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from scipy.stats import spearmanr
from sklearn.metrics import normalized_mutual_info_score

from pgx.clustering import random_grouping

__all__ = ["relative_error", "offdiagonal_correlation", "per_task_spearman", "grouping_nmi", "random_nmi",
           "exact_objective_scores", "compare"]


def relative_error(estimate: np.ndarray, truth: np.ndarray) -> float:
    """‖T̂ − T‖_F / ‖T‖_F."""
    estimate, truth = np.asarray(estimate, float), np.asarray(truth, float)
    if estimate.shape != truth.shape:
        raise ValueError(f"shapes differ: estimate {estimate.shape}, truth {truth.shape}")
    norm = np.linalg.norm(truth)
    if not np.isfinite(norm) or norm == 0:
        raise ValueError(f"‖T‖_F is {norm}; the relative error is undefined")
    return float(np.linalg.norm(estimate - truth) / norm)


def offdiagonal_correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation of the strictly upper-triangular entries of two ``(n, n)`` matrices (NaN
    when either is constant there)."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    if a.shape != b.shape or a.ndim != 2 or a.shape[0] != a.shape[1]:
        raise ValueError(f"need two square matrices of the same shape, got {a.shape} and {b.shape}")
    upper = np.triu_indices(a.shape[0], 1)
    x, y = a[upper], b[upper]
    if x.size < 2 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan")
    return float(np.corrcoef(x, y)[0, 1])


def per_task_spearman(estimated: np.ndarray, true: np.ndarray) -> np.ndarray:
    """Spearman ρ between estimated and true performance of each task across the subsets holding it.

    Ranking within a task compares like with like (the two routes measure different units, and
    tasks differ in scale); ``(n,)``, NaN where either side never varies.

    :param estimated, true: ``(num_subsets, n_tasks)``, NaN outside each subset.
    """
    estimated, true = np.asarray(estimated, float), np.asarray(true, float)
    if estimated.shape != true.shape:
        raise ValueError(f"shapes differ: estimated {estimated.shape}, true {true.shape}")
    rho = np.full(estimated.shape[1], np.nan)
    for i in range(estimated.shape[1]):
        both = np.isfinite(estimated[:, i]) & np.isfinite(true[:, i])
        a, b = estimated[both, i], true[both, i]
        if both.sum() >= 3 and np.ptp(a) > 0 and np.ptp(b) > 0:
            rho[i] = spearmanr(a, b).statistic
    return rho


def grouping_nmi(labels: np.ndarray, reference: np.ndarray) -> float:
    """Normalised mutual information between two partitions of the same tasks (1 = identical)."""
    labels, reference = np.asarray(labels), np.asarray(reference)
    if labels.shape != reference.shape or labels.ndim != 1:
        raise ValueError(f"label arrays must be 1-D and of equal length, got {labels.shape} and {reference.shape}")
    return float(normalized_mutual_info_score(reference, labels))


def random_nmi(reference: np.ndarray, k: int, seeds: Sequence[int]) -> np.ndarray:
    """NMI of uniformly random k-groupings against ``reference``, one per seed: the chance level."""
    reference = np.asarray(reference)
    return np.array([grouping_nmi(random_grouping(reference.size, k, s), reference) for s in seeds])


def exact_objective_scores(
    log_ratio: np.ndarray, advantages: np.ndarray, task_ids: np.ndarray, members: Sequence[int], n_tasks: int
) -> np.ndarray:
    """Per-task PPO objective ``mean Â·π_θ/π_θ*`` with the *exact* ratio, ``(n_tasks,)``, NaN outside
    ``members``: the quantity whose linearisation is the first-order route's estimate.

    :param log_ratio: ``(N,)`` log π_θ(a|s) − log π_θ*(a|s) on held-out samples.
    """
    gains = advantages * np.exp(log_ratio)
    out = np.full(n_tasks, np.nan)
    for i in members:
        mask = task_ids == i
        if not mask.any():
            raise ValueError(f"task {i} has no held-out samples")
        out[i] = gains[mask].mean()
    return out


def compare(
    estimate: np.ndarray,
    truth: np.ndarray,
    k: int,
    seed: int = 0,
    estimate_scores: np.ndarray | None = None,
    truth_scores: np.ndarray | None = None,
    same_units: bool = True,
) -> dict[str, float]:
    """One row of the verdict table: how an estimated affinity matches a true one.

    NMI of their k SDP groups, relative error ‖T̂−T‖/‖T‖, Pearson correlation of the off-diagonal
    entries, and, when both sides have per-subset scores, the mean per-task Spearman ρ. The
    relative error needs both matrices in the same units (``same_units``); it is NaN otherwise.
    """
    from pgx.clustering import sdp_cluster

    row = {"NMI": grouping_nmi(sdp_cluster(estimate, k=k, seed=seed), sdp_cluster(truth, k=k, seed=seed)),
           "relative error": relative_error(estimate, truth) if same_units and np.any(truth) else float("nan"),
           "off-diagonal r": offdiagonal_correlation(estimate, truth), "Spearman ρ": float("nan")}
    if estimate_scores is not None and truth_scores is not None:
        rho = per_task_spearman(estimate_scores, truth_scores)
        row["Spearman ρ"] = float(np.nanmean(rho)) if np.isfinite(rho).any() else float("nan")
    return row


def k_ablation(estimate: np.ndarray, truth: np.ndarray, ks: Sequence[int], seed: int = 0, random_seeds: int = 20) -> list[dict]:
    """For each k: NMI of the groups from T̂ against those from T, the chance NMI, and how dense the
    groups are under the *true* affinity (ours, the truth's own, random) — the downstream score
    available before any group is trained."""
    from pgx.clustering import average_density, sdp_cluster

    rows = []
    for k in ks:
        ours, best = sdp_cluster(estimate, k=k, seed=seed), sdp_cluster(truth, k=k, seed=seed)
        chance = [random_grouping(truth.shape[0], k, seed + 1000 + r) for r in range(random_seeds)]
        rows.append({
            "k": k,
            "nmi": grouping_nmi(ours, best),
            "random nmi": float(np.mean([grouping_nmi(c, best) for c in chance])),
            "true density, ours": average_density(truth, ours),
            "true density, truth's groups": average_density(truth, best),
            "true density, random": float(np.mean([average_density(truth, c) for c in chance])),
        })
    return rows


def error_vs_num_subsets(
    subsets: Sequence[Sequence[int]], estimated_scores: np.ndarray, truth: np.ndarray, counts: Sequence[int]
) -> list[dict]:
    """Relative error of T̂ built from the first m subsets only, against the full-data truth T.

    Where some pair is covered by none of the first m subsets, eq. (5) is undefined: the row says so
    (error NaN) instead of failing.
    """
    from pgx.affinity import affinity_matrix

    rows = []
    for m in counts:
        if not 1 <= m <= len(subsets):
            raise ValueError(f"number of subsets must be in [1, {len(subsets)}], got {m}")
        try:
            estimate = affinity_matrix(subsets[:m], estimated_scores[:m], truth.shape[0])
            rows.append({"m": m, "relative error": relative_error(estimate, truth), "all pairs covered": True})
        except ValueError:
            rows.append({"m": m, "relative error": np.nan, "all pairs covered": False})
    return rows
