"""Budget curves: how a truth's reliability, its group structure and an estimate's agreement with
it change as the truth's budget grows — along its replicates, its fine-tuning steps and its
evaluation episodes.

Why: a verdict at one budget cannot tell "the method fails" from "the truth is too noisy to say".
One ground truth answers for every smaller budget at no extra training: the truth built from its
first j replicates is what a run with r = j would have given (replicate j of every subset shares
its seed); the snapshots its runs kept are the truth had fine-tuning stopped there; the first e of
its evaluation episodes are the return truth measured with e episodes (each episode's seed is the
same whatever the count).
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from pgx.affinity import affinity_matrix
from pgx.clustering import sdp_cluster
from pgx.truth.reliability import replicate_array, split_half_reliability
from pgx.truth.structure import oracle_gain
from pgx.truth.validation import grouping_nmi

__all__ = ["by_replicates", "by_steps", "by_episodes"]


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
    scores = _scores(subsets, replicate_scores)
    estimated = _groups(estimate, k, seed)
    return [{"replicates": j, **_measures(subsets, scores[:j], k, seed, estimated, random_groupings)}
            for j in range(2, scores.shape[0] + 1)]


def by_steps(
    subsets: Sequence[Sequence[int]],
    scores_by_steps: Mapping[int, np.ndarray],
    k: int,
    seed: int = 0,
    estimate: np.ndarray | None = None,
    random_groupings: int = 100,
) -> list[dict]:
    """One row per fine-tuning snapshot (steps ascending): the measures of :func:`by_replicates` for
    the truth, with all its replicates, had fine-tuning stopped there.

    :param scores_by_steps: steps → ``(r, m, n_tasks)`` (``GroundTruth.objective_by_steps``)."""
    estimated = _groups(estimate, k, seed)
    return [{"steps": int(steps), **_measures(subsets, _scores(subsets, values), k, seed, estimated, random_groupings)}
            for steps, values in sorted(scores_by_steps.items())]


def by_episodes(
    subsets: Sequence[Sequence[int]],
    episode_scores: np.ndarray,
    k: int,
    seed: int = 0,
    estimate: np.ndarray | None = None,
    random_groupings: int = 100,
) -> list[dict]:
    """One row per evaluation budget e = 1 … E episodes (the first e): the measures of
    :func:`by_replicates` for the return truth, with all its replicates, measured with e episodes.

    :param episode_scores: ``(r, m, n_tasks, E)`` (``GroundTruth.replicate_episode_returns``)."""
    values = np.asarray(episode_scores, float)
    if values.ndim != 4:
        raise ValueError(f"episode_scores must have shape (r, m, n_tasks, episodes), got {values.shape}")
    estimated = _groups(estimate, k, seed)
    return [{"episodes": e, **_measures(subsets, _scores(subsets, values[..., :e].mean(-1)), k, seed, estimated,
                                        random_groupings)}
            for e in range(1, values.shape[-1] + 1)]


def _scores(subsets: Sequence[Sequence[int]], replicate_scores: np.ndarray) -> np.ndarray:
    scores = np.asarray(replicate_scores, float)
    scores = replicate_array(subsets, scores, scores.shape[-1] if scores.ndim else 0)
    if scores.shape[0] < 2:
        raise ValueError(f"budget curves need r >= 2 replicates, got {scores.shape[0]}")
    return scores


def _groups(estimate: np.ndarray | None, k: int, seed: int) -> np.ndarray | None:
    return None if estimate is None else sdp_cluster(estimate, k=k, seed=seed)


def _measures(subsets, scores: np.ndarray, k: int, seed: int, estimated: np.ndarray | None,
              random_groupings: int) -> dict:
    """The truth ``scores.mean(0)``'s split-half NMI and off-diagonal r, oracle gain, and the
    estimate's agreement with its groups."""
    n = scores.shape[2]
    reliability = split_half_reliability(subsets, scores, n, k, seed=seed, bootstrap=0)
    gain = oracle_gain(subsets, scores, n, k, seed=seed, random_groupings=random_groupings)
    row = {"split-half NMI": reliability.nmi, "split-half off-diagonal r": reliability.offdiagonal,
           "oracle gain z (median split)": gain.z_median, "structure above noise": gain.above_noise}
    if estimated is not None:
        truth = sdp_cluster(affinity_matrix(subsets, scores.mean(0), n), k=k, seed=seed)
        row["NMI(estimate, truth)"] = grouping_nmi(estimated, truth)
    return row
