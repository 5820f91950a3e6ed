"""Property tests (hypothesis) of eq. 5, the rounding of the SDP and the Johnson–Lindenstrauss projector.

Every test is derandomised (``derandomize=True``: the same examples on every run and machine) and
keeps ``max_examples`` small, so the suite stays fast and never flakes.
"""

from __future__ import annotations

import itertools
import math
import re

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from pgx.affinity import affinity_matrix
from pgx.clustering import round_solution, sdp_cluster
from pgx.gradients import GaussianProjector

PROPERTY = settings(derandomize=True, max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SLOW_PROPERTY = settings(PROPERTY, max_examples=12)


# --- eq. 5 ------------------------------------------------------------------------------------


@st.composite
def subsets_and_scores(draw, cover_pairs: bool = True):
    """``(subsets, scores, n)``: random subsets of n tasks, patched with the missing pairs when
    ``cover_pairs``, and scores that are NaN outside each subset (eq. 5 must ignore them)."""
    n = draw(st.integers(2, 7))
    subsets = draw(st.lists(st.sets(st.integers(0, n - 1), min_size=1), min_size=1, max_size=12))
    subsets = [tuple(sorted(s)) for s in subsets]
    if cover_pairs:
        covered = {pair for s in subsets for pair in itertools.combinations(s, 2)}
        subsets += [pair for pair in itertools.combinations(range(n), 2) if pair not in covered]
    values = draw(st.lists(st.floats(-100, 100, allow_nan=False, allow_subnormal=False),
                           min_size=len(subsets) * n, max_size=len(subsets) * n))
    scores = np.asarray(values, dtype=np.float64).reshape(len(subsets), n)
    member = np.zeros_like(scores, dtype=bool)
    for s, subset in enumerate(subsets):
        member[s, list(subset)] = True
    return subsets, np.where(member, scores, np.nan), n


def _raw_eq5(subsets, scores: np.ndarray, n: int) -> np.ndarray:
    """Eq. 5 before symmetrisation, by its definition: ``R[i, j]`` is the mean of task i's score over
    the subsets holding both i and j (NaN where there is none)."""
    raw = np.full((n, n), np.nan)
    for i, j in itertools.product(range(n), repeat=2):
        both = [s for s, subset in enumerate(subsets) if i in subset and j in subset]
        if both:
            raw[i, j] = math.fsum(scores[s, i] for s in both) / len(both)
    return raw


@PROPERTY
@given(subsets_and_scores())
def test_eq5_is_the_symmetrised_mean_over_shared_subsets(case):
    subsets, scores, n = case
    raw = _raw_eq5(subsets, scores, n)
    np.testing.assert_allclose(affinity_matrix(subsets, scores, n, normalize=False), (raw + raw.T) / 2,
                               rtol=1e-12, atol=1e-10)


@PROPERTY
@given(subsets_and_scores())
def test_eq5_is_symmetric_before_symmetrising_when_a_subset_scores_all_its_tasks_alike(case):
    """If every task of S scores the same ``f(S)``, ``R[i, j]`` and ``R[j, i]`` average the same numbers
    over the same subsets: the raw estimate is symmetric, and symmetrising must leave it as it is."""
    subsets, scores, n = case
    alike = np.where(np.isnan(scores), np.nan, np.nan_to_num(scores, nan=0.0)[:, :1])  # f(S): column 0's draw
    raw = _raw_eq5(subsets, alike, n)
    np.testing.assert_array_equal(raw, raw.T)
    np.testing.assert_allclose(affinity_matrix(subsets, alike, n, normalize=False), raw, rtol=1e-12, atol=1e-10)


@PROPERTY
@given(subsets_and_scores())
def test_normalised_eq5_has_a_zero_diagonal(case):
    """Each task's z-scores average to 0 over the subsets holding it, and that is T[i, i]."""
    subsets, scores, n = case
    np.testing.assert_allclose(np.diag(affinity_matrix(subsets, scores, n)), 0.0, atol=1e-9)


@PROPERTY
@given(subsets_and_scores(cover_pairs=False))
def test_eq5_names_the_pairs_no_subset_covers(case):
    subsets, scores, n = case
    counts = np.zeros((n, n), dtype=int)
    for subset in subsets:
        counts[np.ix_(subset, subset)] += 1
    # row by row, diagonal included (a task in no subset)
    uncovered = [(i, j) for i in range(n) for j in range(i, n) if counts[i, j] == 0]
    assume(uncovered)
    shown = ", ".join(f"({i}, {j})" for i, j in uncovered[:5])
    more = f" and {len(uncovered) - 5} more" if len(uncovered) > 5 else ""
    with pytest.raises(ValueError, match=rf"^task pairs covered by no subset: {re.escape(shown + more)}; "):
        affinity_matrix(subsets, scores, n)


# --- rounding the SDP -------------------------------------------------------------------------


def _assert_partition(labels: np.ndarray, n: int, k: int) -> None:
    """What ``round_solution`` promises: one int64 label per task, exactly k non-empty groups,
    numbered in order of first appearance."""
    assert labels.shape == (n,) and labels.dtype == np.int64
    assert sorted(set(labels.tolist())) == list(range(k))
    firsts = [int(np.flatnonzero(labels == g)[0]) for g in range(k)]
    assert firsts == sorted(firsts)


@st.composite
def symmetric_matrices(draw, max_n: int = 8):
    n = draw(st.integers(1, max_n))
    entries = draw(st.lists(st.floats(-3, 3, allow_nan=False, allow_subnormal=False), min_size=n * n, max_size=n * n))
    matrix = np.asarray(entries).reshape(n, n)
    return (matrix + matrix.T) / 2


@PROPERTY
@given(symmetric_matrices(), st.data())
def test_rounding_any_symmetric_matrix_gives_exactly_k_groups(X, data):
    n = X.shape[0]
    k = data.draw(st.integers(1, n))
    _assert_partition(round_solution(X, k, seed=data.draw(st.integers(0, 2**31 - 1))), n, k)


@PROPERTY
@given(st.lists(st.integers(0, 4), min_size=1, max_size=10), st.integers(0, 2**31 - 1))
def test_rounding_recovers_any_partition_from_its_exact_solution(raw_labels, seed):
    """For X = Σ_C 1_C 1_Cᵀ/|C| (what the SDP returns for a clean block structure) the partition
    comes back exactly, relabelled in order of first appearance."""
    order = {label: g for g, label in enumerate(dict.fromkeys(raw_labels))}
    labels = np.array([order[label] for label in raw_labels], dtype=np.int64)
    same = labels[:, None] == labels[None, :]
    X = same / same.sum(axis=1, keepdims=True)
    np.testing.assert_array_equal(round_solution(X, len(order), seed=seed), labels)


@SLOW_PROPERTY
@given(symmetric_matrices(max_n=7), st.data())
def test_sdp_cluster_partitions_every_task(affinity, data):
    n = affinity.shape[0]
    k = data.draw(st.integers(1, n))
    _assert_partition(sdp_cluster(affinity, k=k), n, k)
    by_trace = sdp_cluster(affinity, lam=data.draw(st.floats(0, 3, allow_subnormal=False)))
    _assert_partition(by_trace, n, int(by_trace.max()) + 1)  # k̂ = round(tr X) in [1, n] groups


# --- the Johnson–Lindenstrauss projector ------------------------------------------------------

JL_DIM, JL_EPS = 2000, 0.25
JL_FAILURE = 4 * math.exp(-JL_DIM / 2 * (JL_EPS**2 / 2 - JL_EPS**3 / 3))
"""Chance that one pair of unit vectors breaks ``|ũ·ṽ − u·v| ≤ ε``: with P's N(0, 1/d) entries,
``d‖Pᵀx‖²/‖x‖²`` is χ²_d, whose tails beyond ``(1 ± ε)d`` are each at most
``exp(−(d/2)(ε²/2 − ε³/3))`` (Dasgupta & Gupta 2003); ``ũ·ṽ = (‖Pᵀ(u+v)‖² − ‖Pᵀ(u−v)‖²)/4`` then
errs by at most ε unless one of four tails occurs. About 2e-11 here: over a test's examples, never."""


@st.composite
def unit_vector_pairs(draw):
    """Parameter shapes, and two unit vectors over them: Gaussian, sparse, equal or orthogonal."""
    shapes = draw(st.lists(st.lists(st.integers(1, 12), min_size=1, max_size=2).map(tuple), min_size=1, max_size=3))
    p = sum(math.prod(s) for s in shapes)
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    kind = draw(st.sampled_from(["gaussian", "sparse", "equal", "orthogonal"]))
    u = rng.normal(size=p)
    if kind == "sparse":
        u = np.zeros(p)
        u[rng.integers(p)] = 1.0
        v = np.zeros(p)
        v[rng.integers(p)] = -1.0
    elif kind == "equal":
        v = u.copy()
    else:
        v = rng.normal(size=p)
        if kind == "orthogonal" and p > 1:
            v -= (v @ u) / (u @ u) * u
    assume(np.linalg.norm(v) > 1e-9)
    return shapes, u / np.linalg.norm(u), v / np.linalg.norm(v)


@settings(PROPERTY, max_examples=25)
@given(unit_vector_pairs(), st.integers(0, 2**31 - 1), st.integers(1, 64))
def test_projection_keeps_inner_products_within_the_jl_bound(vectors, seed, block_rows):
    assert JL_FAILURE < 1e-10
    shapes, u, v = vectors
    projector = GaussianProjector(shapes, JL_DIM, seed=seed, block_rows=block_rows)
    projected = projector.project(torch.as_tensor(np.stack([u, v])))
    pu, pv = projected.numpy()
    assert abs(pu @ pv - u @ v) <= JL_EPS
    assert abs(pu @ pu - 1.0) <= JL_EPS and abs(pv @ pv - 1.0) <= JL_EPS
