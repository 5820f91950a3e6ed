"""Task grouping from an affinity matrix: the SDP of Appendix A, its rounding, and the baselines.

A partition into clusters C₁..C_k scores its *average density* Σ_C (Σ_{i,j∈C} T_ij)/|C|. Writing
the partition as X = Σ_C 1_C 1_Cᵀ/|C| turns that into ⟨T, X⟩, where X is PSD, non-negative, has
rows summing to one and trace k. Dropping the rank condition gives a semi-definite program
(Awasthi et al. 2015); penalising tr X instead of fixing it lets the number of groups fall out
(eq. 7). A rounding step turns the SDP's X back into a partition.

The paper compares against random grouping and gradient-similarity grouping; the latter reuses
the same SDP on a cosine-similarity affinity, so the comparison isolates the affinity.

cvxpy + SCS solves the SDP to SCS's tolerance, but its time and memory grow fast with n (chapter 12
measures both in every build); ``solver="auto"`` hands
more than ``CVXPY_MAX_TASKS`` tasks to the non-negative low-rank solver of ``pgx.sdp_lowrank``,
unless k > n/2 groups are asked for (k = n excepted), which that solver is slow to reach.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Sequence

import cvxpy as cp
import numpy as np
from sklearn.cluster import KMeans

from pgx.affinity import check_affinity
from pgx.runtime import is_int
from pgx.sdp_lowrank import solve_lowrank

__all__ = [
    "solve_sdp",
    "round_solution",
    "sdp_cluster",
    "lambda_sweep",
    "average_density",
    "random_grouping",
    "gradient_similarity",
    "gradient_similarity_grouping",
    "groups_from_labels",
    "GROUPINGS",
    "RANDOM_SEED_OFFSET",
    "groupings",
]

_SCS_OPTIONS = {"eps_abs": 1e-6, "eps_rel": 1e-6, "max_iters": 200_000}
"""Tighter than SCS's defaults, so that near-ties between partitions are resolved reliably."""

_SOLUTION_ATOL = 1e-6
"""Asymmetry tolerated in an X given to :func:`round_solution` (solver output is only approximate)."""

SOLVERS = ("auto", "cvxpy", "lowrank")
"""Solvers of the SDP: cvxpy + SCS (:func:`solve_sdp`), ``pgx.sdp_lowrank``, or by size (``auto``)."""

CVXPY_MAX_TASKS = 100
"""``solver="auto"`` uses cvxpy up to this many tasks (about a second, exact) and the low-rank solver
above it, where cvxpy's time and memory grow fastest; every cached result has n <= 50."""


def _check_k(k: object, n: int) -> int:
    if not is_int(k) or not 1 <= k <= n:
        raise ValueError(f"k must be an integer in [1, {n}], got {k!r}")
    return int(k)


def _check_labels(labels: np.ndarray, n: int | None = None) -> np.ndarray:
    array = np.asarray(labels)
    if array.ndim != 1 or array.size == 0 or not np.issubdtype(array.dtype, np.integer):
        raise ValueError(
            f"labels must be a non-empty 1-D integer array, got shape {array.shape} dtype {array.dtype}"
        )
    if n is not None and array.shape[0] != n:
        raise ValueError(f"labels must have one entry per task ({n}), got {array.shape[0]}")
    if array.min() < 0:
        raise ValueError(f"labels must be >= 0, got {int(array.min())}")
    return array


def _use_lowrank(solver: object, n: int, k: object = None) -> bool:
    """Whether ``solver`` means the low-rank solver for n tasks and k groups (None: trace penalty).

    ``auto`` keeps k > n/2 on cvxpy at any n: there the partition's factor has k columns of one or
    two tasks each, and the low-rank solver's augmented Lagrangian crawls (n = 150, k = 140 on a
    Gaussian affinity: row-sum error 8.4 after its 100 iterations, 13 s) where SCS is exact (18 s).
    k = n has the one feasible point X = I, which
    ``solve_lowrank`` returns at once. A k that is not a valid count is refused by either solver."""
    if not isinstance(solver, str) or solver not in SOLVERS:
        raise ValueError(f"solver must be one of {SOLVERS}, got {solver!r}")
    if solver != "auto":
        return solver == "lowrank"
    if n <= CVXPY_MAX_TASKS:
        return False
    return k is None or not is_int(k) or 2 * k <= n or k == n


def _canonical(labels: np.ndarray) -> np.ndarray:
    """Relabel groups 0, 1, ... in order of first appearance, so equal partitions compare equal."""
    order = {}
    for label in labels.tolist():
        order.setdefault(label, len(order))
    return np.array([order[label] for label in labels.tolist()], dtype=np.int64)


def solve_sdp(affinity: np.ndarray, k: int | None = None, lam: float | None = None) -> np.ndarray:
    """Solve the SDP relaxation of average-density clustering (Appendix A).

    Maximise ⟨T, X⟩ over symmetric X with X ⪰ 0, X ≥ 0 and X·1 = 1, and either

    - ``k``: tr X = k (the fixed-k program of the authors' group), or
    - ``lam``: subtract ``lam · tr X`` from the objective (eq. 7); tr X then estimates the number
      of groups, fewer as ``lam`` grows.

    :param affinity: ``(n, n)`` symmetric task-affinity matrix T.
    :param k: number of groups, in ``[1, n]``; exclusive with ``lam``.
    :param lam: trace penalty, finite and >= 0; exclusive with ``k``.
    :return: ``(n, n)`` float64 symmetric X; for a clean block structure, 1/|C| on the blocks.
    """
    affinity = check_affinity(affinity)
    n = affinity.shape[0]
    if (k is None) == (lam is None):
        raise ValueError(f"give exactly one of k and lam, got k={k!r}, lam={lam!r}")
    x = cp.Variable((n, n), symmetric=True)
    constraints = [x >> 0, x >= 0, cp.sum(x, axis=1) == 1]
    objective = cp.sum(cp.multiply(affinity, x))
    if k is not None:
        constraints.append(cp.trace(x) == _check_k(k, n))
    else:
        if (
            isinstance(lam, bool)
            or not isinstance(lam, (int, float, np.integer, np.floating))
            or not math.isfinite(lam)
            or lam < 0
        ):
            raise ValueError(f"lam must be a finite number >= 0, got {lam!r}")
        objective = objective - float(lam) * cp.trace(x)
    problem = cp.Problem(cp.Maximize(objective), constraints)
    try:
        problem.solve(solver=cp.SCS, **_SCS_OPTIONS)
    except cp.error.SolverError as e:
        raise RuntimeError(f"SCS failed on the clustering SDP (n={n}): {e}") from e
    if problem.status not in (cp.OPTIMAL, cp.OPTIMAL_INACCURATE):
        raise RuntimeError(f"clustering SDP did not reach an optimum: SCS status {problem.status!r}")
    if problem.status == cp.OPTIMAL_INACCURATE:
        warnings.warn(f"clustering SDP (n={n}, {'k=' + str(k) if k is not None else 'λ=' + str(lam)}): SCS reached "
                      f"only an inaccurate optimum; the rounded groups may differ from the exact solution's",
                      RuntimeWarning, stacklevel=2)
    solution = np.asarray(x.value, dtype=np.float64)
    return (solution + solution.T) / 2


def round_solution(X: np.ndarray, k: int, seed: int = 0) -> np.ndarray:
    """Round an SDP solution to a partition into exactly ``k`` non-empty groups.

    The authors' greedy threshold rounding (X_ij > 1/n) can leave tasks in no group and does not
    control the number of groups. Here every task gets exactly one label: the rows of X's top-k
    eigenvectors, normalised to unit length, are clustered by k-means. For X = Σ_C 1_C 1_Cᵀ/|C|
    those rows are k orthogonal directions, one per group, so an exact solution is recovered
    exactly. The rows span R^k, so k-means always sees at least k distinct points, even for a
    degenerate X (all entries equal); should it still return fewer than k groups, the member of
    the largest group least attached to it by X moves into an empty group until there are k.

    :param X: ``(n, n)`` symmetric SDP solution.
    :param k: number of groups, in ``[1, n]``.
    :param seed: ``random_state`` of k-means.
    :return: ``(n,)`` int64 labels in ``[0, k)``, numbered in order of first appearance.
    """
    X = check_affinity(X, atol=_SOLUTION_ATOL, name="X")
    X = (X + X.T) / 2
    n = X.shape[0]
    k = _check_k(k, n)
    _, eigenvectors = np.linalg.eigh(X)
    embedding = eigenvectors[:, -k:]  # (n, k): top-k eigenvectors
    return _round_embedding(
        embedding, k, seed, lambda members: X[np.ix_(members, members)].sum(axis=1) - X[members, members]
    )


def _round_factor(V: np.ndarray, k: int, seed: int) -> np.ndarray:
    """:func:`round_solution` of X = V Vᵀ without forming X: X's top-k eigenvectors are V's top-k left
    singular vectors, O(n r²) instead of eigh's O(n³), and attachments are V[members] · Σ V[members].

    :param V: ``(n, r)`` factor of the SDP solution.
    """
    k = _check_k(k, V.shape[0])
    if V.shape[1] < k:  # X has rank < k: its top-k eigenvectors include some of eigenvalue 0
        V = np.hstack([V, np.zeros((V.shape[0], k - V.shape[1]))])
    left, _, _ = np.linalg.svd(V, full_matrices=False)

    def attachment(members: np.ndarray) -> np.ndarray:
        rows = V[members]
        return rows @ rows.sum(axis=0) - np.einsum("ij,ij->i", rows, rows)

    return _round_embedding(left[:, :k], k, seed, attachment)


def _round_embedding(embedding: np.ndarray, k: int, seed: int, attachment) -> np.ndarray:
    """k-means on the unit-normalised rows of ``embedding (n, k)``, then the repair of :func:`round_solution`;
    ``attachment(members)`` gives each member's X-weight to the rest of its group."""
    norms = np.linalg.norm(embedding, axis=1, keepdims=True)
    embedding = embedding / np.where(norms > 1e-12, norms, 1.0)
    labels = KMeans(n_clusters=k, n_init=10, random_state=seed).fit_predict(embedding).astype(np.int64)
    sizes = np.bincount(labels, minlength=k)
    for empty in np.flatnonzero(sizes == 0):
        # Fewer than k groups among n >= k tasks, so the largest group has at least two members.
        largest = int(np.argmax(sizes))
        members = np.flatnonzero(labels == largest)
        mover = members[int(np.argmin(attachment(members)))]
        labels[mover] = empty
        sizes[largest] -= 1
        sizes[empty] += 1
    return _canonical(labels)


def sdp_cluster(
    affinity: np.ndarray, k: int | None = None, lam: float | None = None, seed: int = 0, solver: str = "auto"
) -> np.ndarray:
    """Group tasks by affinity: Algorithm 2's clustering step (SDP, then rounding).

    With ``lam`` the number of groups is k̂ = clip(round(tr X), 1, n), since tr X = k for the
    matrix of an exact k-group partition.

    :param affinity: ``(n, n)`` symmetric task-affinity matrix.
    :param k: number of groups; exclusive with ``lam``.
    :param lam: trace penalty of eq. (7); exclusive with ``k``.
    :param seed: seed of the rounding's k-means (and of the low-rank solver's starting point).
    :param solver: one of :data:`SOLVERS`; ``"auto"`` is cvxpy up to :data:`CVXPY_MAX_TASKS` tasks, and
        above it for n/2 < k < n groups.
    :return: ``(n,)`` int64 labels, numbered in order of first appearance.
    """
    affinity = check_affinity(affinity)
    if _use_lowrank(solver, affinity.shape[0], k):
        solution = solve_lowrank(affinity, k=k, lam=lam, seed=seed)
        groups = _groups_from_trace_value(solution.trace, affinity.shape[0]) if k is None else k
        return _round_factor(solution.factor, groups, seed=seed)
    X = solve_sdp(affinity, k=k, lam=lam)
    return round_solution(X, _groups_from_trace(X) if k is None else k, seed=seed)


def _groups_from_trace(X: np.ndarray) -> int:
    return _groups_from_trace_value(np.trace(X), X.shape[0])


def _groups_from_trace_value(trace: float, n: int) -> int:
    return int(np.clip(np.rint(trace), 1, n))


def lambda_sweep(affinity: np.ndarray, lams: Sequence[float], seed: int = 0, solver: str = "auto") -> list[dict]:
    """Cluster with the trace-penalty SDP for each λ, to see how the number of groups follows λ.

    :param affinity: ``(n, n)`` symmetric task-affinity matrix.
    :param lams: trace penalties, each finite and >= 0.
    :param seed: seed of the rounding's k-means (and of the low-rank solver's starting point).
    :param solver: one of :data:`SOLVERS`, as in :func:`sdp_cluster`.
    :return: one dict per λ, in order: ``lam``, ``trace`` (tr X), ``num_groups`` (k̂),
        ``labels`` (``(n,)`` int64) and ``density`` (:func:`average_density` of those labels).
    """
    affinity = check_affinity(affinity)
    if len(lams) == 0:
        raise ValueError("lams must contain at least one value, got an empty sequence")
    lowrank = _use_lowrank(solver, affinity.shape[0])
    results = []
    for lam in lams:
        if lowrank:
            solution = solve_lowrank(affinity, lam=lam, seed=seed)
            trace = solution.trace
            num_groups = _groups_from_trace_value(trace, affinity.shape[0])
            labels = _round_factor(solution.factor, num_groups, seed=seed)
        else:
            X = solve_sdp(affinity, lam=lam)
            trace = float(np.trace(X))
            num_groups = _groups_from_trace(X)
            labels = round_solution(X, num_groups, seed=seed)
        results.append(
            {
                "lam": float(lam),
                "trace": trace,
                "num_groups": num_groups,
                "labels": labels,
                "density": average_density(affinity, labels),
            }
        )
    return results


def average_density(affinity: np.ndarray, labels: np.ndarray) -> float:
    """Σ_C (Σ_{i,j∈C} T_ij)/|C|: the objective of Appendix A that the SDP relaxes.

    :param affinity: ``(n, n)`` symmetric task-affinity matrix.
    :param labels: ``(n,)`` non-negative integer group labels.
    """
    affinity = check_affinity(affinity)
    labels = _check_labels(labels, affinity.shape[0])
    total = 0.0
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        total += affinity[np.ix_(members, members)].sum() / len(members)
    return float(total)


def random_grouping(n_tasks: int, k: int, seed: int) -> np.ndarray:
    """A partition of ``n_tasks`` tasks into ``k`` non-empty groups, uniform over all such partitions.

    The random-grouping baseline of the paper. Uniform labels conditioned on every group being
    non-empty would be uniform too, but rejection sampling stalls when k is close to n; instead the
    partition is drawn exactly with the Stirling recursion S(m, j) = j·S(m−1, j) + S(m−1, j−1):
    task m−1 either opens a group of its own or joins one of the j groups of the first m−1 tasks.

    :param n_tasks: number of tasks n >= 1.
    :param k: number of groups, in ``[1, n_tasks]``.
    :param seed: seed of the ``np.random.default_rng`` that draws it.
    :return: ``(n_tasks,)`` int64 labels in ``[0, k)``, numbered in order of first appearance.
    """
    if not is_int(n_tasks) or n_tasks < 1:
        raise ValueError(f"n_tasks must be an integer >= 1, got {n_tasks!r}")
    k = _check_k(k, n_tasks)
    # stirling[m][j] = number of partitions of m tasks into j non-empty groups (exact integers).
    stirling = [[1] + [0] * k]
    for m in range(1, n_tasks + 1):
        previous = stirling[-1]
        stirling.append([0] + [j * previous[j] + previous[j - 1] for j in range(1, k + 1)])
    rng = np.random.default_rng(seed)
    opens_group = np.zeros(n_tasks, dtype=bool)
    groups = k
    for m in range(n_tasks, 0, -1):  # decide, from the last task down, which tasks open a group
        if rng.random() < stirling[m - 1][groups - 1] / stirling[m][groups]:
            opens_group[m - 1] = True
            groups -= 1
    labels = np.empty(n_tasks, dtype=np.int64)
    groups = 0
    for task in range(n_tasks):  # then assign from the first task up, so labels come out canonical
        if opens_group[task]:
            labels[task] = groups
            groups += 1
        else:
            labels[task] = rng.integers(groups)
    return labels


def gradient_similarity(task_gradients: np.ndarray) -> np.ndarray:
    """Cosine similarity of per-task policy gradients: the affinity of the gradient-similarity baseline.

    Two tasks whose gradients at θ* point the same way pull the shared policy the same way
    (Yu et al. 2020), so they count as related.

    :param task_gradients: ``(n, d)``, row i the policy gradient of task i at θ*.
    :return: ``(n, n)`` float64 symmetric, entries in [−1, 1], ones on the diagonal.
    """
    try:
        gradients = np.asarray(task_gradients, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise ValueError(
            f"task_gradients must be a numeric (n, d) array, got {type(task_gradients).__name__}"
        ) from e
    if gradients.ndim != 2 or 0 in gradients.shape:
        raise ValueError(f"task_gradients must have shape (n, d) with n, d >= 1, got {gradients.shape}")
    finite = np.isfinite(gradients).all(axis=1)
    if not finite.all():
        raise ValueError(f"gradient of task {int(np.argmin(finite))} has a non-finite entry")
    norms = np.linalg.norm(gradients, axis=1)
    if (norms == 0).any():
        raise ValueError(f"gradient of task {int(np.argmin(norms))} is zero, so its direction is undefined")
    unit = gradients / norms[:, None]
    similarity = np.clip(unit @ unit.T, -1.0, 1.0)
    similarity = (similarity + similarity.T) / 2
    np.fill_diagonal(similarity, 1.0)
    return similarity


def gradient_similarity_grouping(
    task_gradients: np.ndarray, k: int, seed: int = 0, solver: str = "auto"
) -> np.ndarray:
    """The gradient-similarity baseline: the same SDP clustering on the cosine-similarity affinity.

    :param task_gradients: ``(n, d)`` per-task policy gradients.
    :param k: number of groups, in ``[1, n]``.
    :param seed: seed of the rounding's k-means.
    :param solver: one of :data:`SOLVERS`, as in :func:`sdp_cluster`.
    :return: ``(n,)`` int64 labels, numbered in order of first appearance.
    """
    return sdp_cluster(gradient_similarity(task_gradients), k=k, seed=seed, solver=solver)


def groups_from_labels(labels: np.ndarray) -> list[list[int]]:
    """The groups as lists of task indices, ordered by label; empty labels are skipped.

    :param labels: ``(n,)`` non-negative integer group labels.
    """
    labels = _check_labels(labels)
    return [np.flatnonzero(labels == label).tolist() for label in np.unique(labels)]


GROUPINGS: tuple[str, ...] = ("PolicyGradEx", "random", "gradient similarity")
"""The groupings every comparison sets side by side (the CLI's ``group``, the grouping chapter,
Table 3, the Meta-World chapter), in this order."""

RANDOM_SEED_OFFSET = 1000
"""The random grouping of seed s is drawn with seed ``s + 1000``: apart from the seeds the other
groupings' SDP rounding uses (the ground truth's chance draws continue at ``s + 1000 + r``)."""


def groupings(affinity: np.ndarray, task_gradients: np.ndarray, k: int, seed: int, solver: str = "auto",
              seconds: dict[str, float] | None = None) -> dict[str, np.ndarray]:
    """:data:`GROUPINGS` → ``(n,)`` labels: PolicyGradEx (the SDP on the estimated affinity), a
    random partition, and gradient similarity (the SDP on the cosines of the tasks' policy
    gradients). The one definition every caller uses, so that a grouping named the same is the
    same grouping everywhere.

    :param seconds: where given, each grouping's wall time is written into it under its name
        (PolicyGradEx's is its SDP's: what the method costs after the affinity)."""
    affinity = np.asarray(affinity)
    methods = {"PolicyGradEx": lambda: sdp_cluster(affinity, k=k, seed=seed, solver=solver),
               "random": lambda: random_grouping(affinity.shape[0], k, seed + RANDOM_SEED_OFFSET),
               "gradient similarity": lambda: gradient_similarity_grouping(task_gradients, k, seed=seed, solver=solver)}
    found = {}
    for name, method in methods.items():
        start = time.perf_counter()
        found[name] = method()
        if seconds is not None:
            seconds[name] = time.perf_counter() - start
    return found
