"""Task affinity from random subsets: eq. (5) of the paper.

Training on every subset of tasks is impossible, so the paper samples ``num_subsets`` random
subsets, estimates with the surrogate (Algorithm 1) how well each task in a subset does after
adapting on that subset, and averages: ``T[i, j]`` is task i's estimated performance over the
sampled subsets that contain both i and j, divided by their number ``n_ij``. A large ``T[i, j]``
says that training i together with j helps i. The matrix is symmetrised before clustering
(``pgx.clustering``), which needs a symmetric affinity.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import numpy as np

from pgx.runtime import is_int

__all__ = ["sample_subsets", "pair_counts", "affinity_matrix", "check_affinity"]

_NORMALIZE_FLOOR = 1e-3
"""Each task's standard deviation is floored at this fraction of the tasks' median one, so a task whose
score barely varies is not blown up to unit scale, and one that never varies maps to 0, not NaN.
Relative, not the authors' absolute ``std + 1e-3``: that suits accuracies of order 1 but erases
first-order estimates, whose spread across subsets is of order 1e-5."""

_MAX_REPORTED_PAIRS = 5


def sample_subsets(
    n_tasks: int, subset_size: int, num_subsets: int, seed: int
) -> list[tuple[int, ...]]:
    """``num_subsets`` distinct random subsets of ``range(n_tasks)``, each a sorted tuple.

    Subsets are distinct because a repeated subset adds no information to eq. (5) and only
    reweights the average. They are uniform among subsets of ``subset_size`` tasks and come in the
    order drawn, so the same seed gives the same list.

    :param n_tasks: number of tasks n.
    :param subset_size: tasks per subset, in ``[1, n_tasks]``.
    :param num_subsets: how many subsets, in ``[1, C(n_tasks, subset_size)]``.
    :param seed: seed of the ``np.random.default_rng`` that draws them.
    :return: ``num_subsets`` sorted tuples of ``subset_size`` task indices.
    """
    if not is_int(n_tasks) or n_tasks < 1:
        raise ValueError(f"n_tasks must be an integer >= 1, got {n_tasks!r}")
    if not is_int(subset_size) or not 1 <= subset_size <= n_tasks:
        raise ValueError(f"subset_size must be an integer in [1, {n_tasks}], got {subset_size!r}")
    available = math.comb(n_tasks, subset_size)
    if not is_int(num_subsets) or not 1 <= num_subsets <= available:
        raise ValueError(
            f"num_subsets must be an integer in [1, C({n_tasks}, {subset_size}) = {available}], "
            f"got {num_subsets!r}"
        )
    rng = np.random.default_rng(seed)
    # When most subsets are wanted, rejection sampling would stall on repeats; enumerating is then
    # cheap, since there are at most four times as many subsets as we return.
    if available <= 4 * num_subsets:
        every = list(itertools.combinations(range(n_tasks), subset_size))
        return [every[i] for i in rng.choice(available, size=num_subsets, replace=False)]
    chosen: dict[tuple[int, ...], None] = {}  # a dict keeps the draw order
    while len(chosen) < num_subsets:
        draw = rng.choice(n_tasks, size=subset_size, replace=False)
        chosen[tuple(sorted(int(i) for i in draw))] = None
    return list(chosen)


def _membership(subsets: Sequence[Sequence[int]], n_tasks: int) -> np.ndarray:
    """Indicator matrix ``(num_subsets, n_tasks)`` of bools: entry ``[s, i]`` says task i is in subset s."""
    if not is_int(n_tasks) or n_tasks < 1:
        raise ValueError(f"n_tasks must be an integer >= 1, got {n_tasks!r}")
    member = np.zeros((len(subsets), n_tasks), dtype=bool)
    for s, subset in enumerate(subsets):
        for i in subset:
            if not is_int(i) or not 0 <= i < n_tasks:
                raise ValueError(
                    f"subset {s} = {tuple(subset)!r} has task index {i!r} outside [0, {n_tasks - 1}]"
                )
            if member[s, i]:
                raise ValueError(f"subset {s} = {tuple(subset)!r} repeats task {i}")
            member[s, i] = True
    return member


def pair_counts(subsets: Sequence[Sequence[int]], n_tasks: int) -> np.ndarray:
    """``n_ij`` of eq. (5): how many subsets contain both task i and task j.

    The diagonal counts the subsets containing task i. A zero off the diagonal means eq. (5) has
    no estimate for that pair.

    :return: ``(n_tasks, n_tasks)`` int64, symmetric.
    """
    member = _membership(subsets, n_tasks).astype(np.int64)
    return member.T @ member


def affinity_matrix(
    subsets: Sequence[Sequence[int]],
    scores: np.ndarray,
    n_tasks: int,
    normalize: bool = True,
) -> np.ndarray:
    """The symmetrised task-affinity matrix of eq. (5).

    ``T[i, j]`` is the mean of ``score_i(S)`` over the subsets S containing both i and j (the
    diagonal: over the subsets containing i), then ``T ← (T + Tᵀ)/2`` because the clustering needs
    a symmetric matrix.

    With ``normalize``, each task's scores are first z-normalised across the subsets containing it,
    ``(t − mean)/max(std, 1e-3·median_j std_j)`` (population std), as the authors' group does (with an
    absolute ``+1e-3``, which is not scale-free; see ``_NORMALIZE_FLOOR``): tasks with different
    reward scales then weigh equally, and ``T[i, j]`` says whether j's company helps i more or less
    than i's average company. The diagonal is then 0.

    :param subsets: ``num_subsets`` subsets of task indices, e.g. from :func:`sample_subsets`.
    :param scores: ``(num_subsets, n_tasks)``; ``scores[s, i]`` is the estimated performance of
        task i after adapting on subset s, higher is better (use −loss for a loss). Entries for
        tasks not in subset s are ignored and may be NaN.
    :param n_tasks: number of tasks n.
    :param normalize: z-normalise each task's scores before averaging.
    :return: ``(n_tasks, n_tasks)`` float64, symmetric.
    """
    member = _membership(subsets, n_tasks)
    scores = np.asarray(scores, dtype=np.float64)
    if scores.shape != member.shape:
        raise ValueError(
            f"scores must have shape (len(subsets), n_tasks) = {member.shape}, got {scores.shape}"
        )
    bad = member & ~np.isfinite(scores)
    if bad.any():
        s, i = (int(v) for v in np.argwhere(bad)[0])
        raise ValueError(f"score of task {i} on subset {s} is {scores[s, i]}, expected a finite number")
    counts = member.T.astype(np.int64) @ member
    uncovered = np.argwhere(np.triu(counts == 0))
    if len(uncovered):
        shown = ", ".join(f"({i}, {j})" for i, j in uncovered[:_MAX_REPORTED_PAIRS])
        hidden = len(uncovered) - _MAX_REPORTED_PAIRS
        more = f" and {hidden} more" if hidden > 0 else ""
        raise ValueError(
            f"task pairs covered by no subset: {shown}{more}; eq. (5) has no estimate for them, "
            f"sample more or larger subsets"
        )
    values = np.where(member, scores, 0.0)  # (num_subsets, n_tasks), zero where a task is absent
    if normalize:
        per_task = counts.diagonal()
        mean = values.sum(axis=0) / per_task
        std = np.sqrt(np.where(member, (values - mean) ** 2, 0.0).sum(axis=0) / per_task)
        scale = np.maximum(std, _NORMALIZE_FLOOR * np.median(std))
        z = (values - mean) / np.where(scale > 0, scale, 1.0)  # scale 0: the task never varies, z = 0
        values = np.where(member & (scale > 0), z, 0.0)
    # Row i of values.T @ member sums score_i(S) over the subsets S that also contain j.
    affinity = (values.T @ member) / counts
    return (affinity + affinity.T) / 2


def check_affinity(affinity: np.ndarray, atol: float = 1e-8, name: str = "affinity") -> np.ndarray:
    """Validate a square, finite, symmetric matrix and return it as float64.

    The SDP of ``pgx.clustering`` is only meaningful for such a matrix, and cvxpy's own errors for
    a bad one do not say what was wrong with it.

    :param affinity: ``(n, n)`` matrix, n >= 1.
    :param atol: largest tolerated ``|T_ij − T_ji|``.
    :param name: what the matrix is called in error messages.
    :return: ``(n, n)`` float64 copy (or the array itself when it already is float64).
    """
    try:
        matrix = np.asarray(affinity, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{name} must be a numeric (n, n) array, got {type(affinity).__name__}") from e
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1] or matrix.shape[0] == 0:
        raise ValueError(f"{name} must be a square (n, n) matrix with n >= 1, got shape {matrix.shape}")
    finite = np.isfinite(matrix)
    if not finite.all():
        i, j = (int(v) for v in np.argwhere(~finite)[0])
        raise ValueError(f"{name} must be finite, got {matrix[i, j]} at ({i}, {j})")
    asymmetry = np.abs(matrix - matrix.T)
    i, j = np.unravel_index(int(np.argmax(asymmetry)), asymmetry.shape)
    if asymmetry[i, j] > atol:
        raise ValueError(
            f"{name} must be symmetric (atol={atol}), got |T[{i}, {j}] - T[{j}, {i}]| = "
            f"{asymmetry[i, j]:.3g}"
        )
    return matrix
