"""Budget curves along the replicates: how a truth's reliability, its group structure and an
estimate's agreement with it change as replicates are added.

Why: a verdict at one budget cannot tell "the method fails" from "the truth is too noisy to say".
The replicates of one truth (replicate j of every subset shares its seed) answer for every smaller
budget at no extra training: the truth built from its first j replicates is what a run with r = j
would have given.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from pgx.affinity import affinity_matrix
from pgx.clustering import sdp_cluster
from pgx.truth.reliability import split_half_reliability
from pgx.truth.structure import oracle_gain
from pgx.truth.validation import grouping_nmi

__all__ = ["by_replicates"]


def by_replicates(
    subsets: Sequence[Sequence[int]],
    replicate_scores: np.ndarray,
    k: int,
    seed: int = 0,
    estimate: np.ndarray | None = None,
    random_groupings: int = 100,
) -> list[dict]:
    """One row per budget j = 2 … r replicates (the first j): the truth's split-half NMI and
    off-diagonal r (halves of j // 2), its oracle gain z (median split), and, given an estimated
    affinity, the NMI of the estimate's k groups with the j-replicate truth's.

    :param replicate_scores: ``(r, m, n_tasks)`` as the ground truth keeps them, r >= 2.
    :param estimate: ``(n_tasks, n_tasks)`` estimated affinity, or None.
    """
    scores = np.asarray(replicate_scores, float)
    if scores.ndim != 3 or scores.shape[1] != len(subsets):
        raise ValueError(f"replicate_scores must have shape (r, {len(subsets)}, n_tasks), got {scores.shape}")
    r, n = scores.shape[0], scores.shape[2]
    if r < 2:
        raise ValueError(f"budget curves need r >= 2 replicates, got {r}")
    estimated = None if estimate is None else sdp_cluster(estimate, k=k, seed=seed)
    rows = []
    for j in range(2, r + 1):
        first = scores[:j]
        reliability = split_half_reliability(subsets, first, n, k, seed=seed, bootstrap=0)
        gain = oracle_gain(subsets, first, n, k, seed=seed, random_groupings=random_groupings)
        row = {"replicates": j, "split-half NMI": reliability.nmi, "split-half off-diagonal r": reliability.offdiagonal,
               "oracle gain z (median split)": gain.z_median, "structure above noise": gain.above_noise}
        if estimated is not None:
            truth = sdp_cluster(affinity_matrix(subsets, first.mean(0), n), k=k, seed=seed)
            row["NMI(estimate, truth)"] = grouping_nmi(estimated, truth)
        rows.append(row)
    return rows
