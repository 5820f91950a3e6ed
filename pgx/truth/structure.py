"""Is there anything to find? The gain of the best grouping a truth allows, scored on held-out replicates.

Why: an estimator at chance against a truth says nothing if the truth itself has no group structure
that replicates — no method could beat random groups there. So before any estimator is judged, the
truth is asked on its own: split its replicates into halves; group the tasks by half A's affinity
(the SDP, as PolicyGradEx groups an estimate: an *oracle* that sees real fine-tuning); score that
grouping by the SDP's own objective, the average within-group density Σ_C Σ_{i,j∈C} T_ij / |C|,
on half B's affinity, which the grouping never saw; compare with random groupings scored on the
same half B. The oracle's margin over random groups in units of their spread is a z-score, one per
balanced split and direction (they share replicates, so they are not independent); where the
median split's z is below 2 or some split has none, the family has no group structure above noise
at this budget, whatever an estimator scores.

Choosing on one half and scoring on the other keeps the oracle honest: on noise, the grouping
fitted to half A is no better than random on half B (tested), while scoring it on A itself would
always look good.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from pgx.affinity import affinity_matrix
from pgx.clustering import average_density, random_grouping, sdp_cluster
from pgx.runtime import is_int
from pgx.truth.reliability import half_splits, replicate_array

__all__ = ["OracleGain", "oracle_gain", "STRUCTURE_Z"]

STRUCTURE_Z = 2.0
"""Group structure above noise: in the median split the oracle beats the random groupings' mean by
this many of their standard deviations on the held-out half, and in no split does it fall below
that mean."""


@dataclass(frozen=True)
class OracleGain:
    """The held-out gain of the truth's own best grouping over random groups."""

    replicates: int
    splits: int
    """Balanced splits of the replicates, each scored both ways (A→B and B→A)."""
    oracle: float
    """Mean held-out average density of the oracle grouping."""
    random_mean: float
    """Mean held-out average density of random groupings (over draws and splits)."""
    random_std: float
    """Their standard deviation within a split, averaged over splits."""
    z: float
    """Mean over splits of (oracle − random mean) / random std on the held-out half."""
    z_std: float
    """Standard deviation of that z over the splits and directions (ddof 1; 0 for one value)."""
    z_median: float
    """Median of that z over the splits and directions: the typical split."""
    z_min: float
    """The lowest split's z: where it is at or below 0, some split's oracle does no better than chance."""
    percentile: float
    """Mean fraction of random groupings the oracle beats on the held-out half."""

    @property
    def above_noise(self) -> bool:
        """Group structure that replicates (:data:`STRUCTURE_Z`): median z ≥ 2, and z > 0 in every split."""
        return bool(np.isfinite(self.z_median) and self.z_median >= STRUCTURE_Z and self.z_min > 0)

    def row(self) -> dict[str, float]:
        return {"oracle gain z": self.z, "oracle gain z std": self.z_std, "oracle gain z median": self.z_median,
                "oracle gain z min": self.z_min,
                "oracle beats random (fraction)": self.percentile, "oracle density (held out)": self.oracle,
                "random density (held out)": self.random_mean, "group structure above noise": self.above_noise}


def oracle_gain(
    subsets: Sequence[Sequence[int]],
    replicate_scores: np.ndarray,
    n_tasks: int,
    k: int,
    seed: int = 0,
    max_splits: int = 10,
    random_groupings: int = 200,
    normalize: bool = True,
) -> OracleGain:
    """The oracle grouping's held-out gain over random groups (see the module docstring).

    :param replicate_scores: ``(r, m, n_tasks)``, replicate j's score of each task on each subset
        (NaN outside the subset), r >= 2.
    :param k: number of groups.
    :param random_groupings: random partitions into k groups scored per split (the same draws in
        every split, from ``seed``).
    :param normalize: the affinity's per-task standardisation (:func:`pgx.affinity.affinity_matrix`).
    """
    scores = replicate_array(subsets, replicate_scores, n_tasks)
    if not is_int(random_groupings) or random_groupings < 2:
        raise ValueError(f"random_groupings must be an integer >= 2, got {random_groupings!r}")
    r = scores.shape[0]
    splits = half_splits(r, max_splits, seed)
    draws = [random_grouping(n_tasks, k, seed + 1000 + d) for d in range(random_groupings)]
    oracle, random_mean, random_std, zs, beats = [], [], [], [], []
    for first, second in splits:
        halves = [affinity_matrix(subsets, scores[list(h)].mean(0), n_tasks, normalize) for h in (first, second)]
        for chosen, held_out in ((halves[0], halves[1]), (halves[1], halves[0])):
            value = average_density(held_out, sdp_cluster(chosen, k=k, seed=seed))
            baseline = np.array([average_density(held_out, d) for d in draws])
            spread = float(baseline.std(ddof=1))
            oracle.append(value)
            random_mean.append(float(baseline.mean()))
            random_std.append(spread)
            # A held-out half whose random groupings all score alike (constant affinities) says nothing.
            zs.append((value - baseline.mean()) / spread if spread > 0 else np.nan)
            beats.append(float((baseline < value).mean()) if spread > 0 else np.nan)
    finite = np.asarray([z for z in zs if np.isfinite(z)])
    if not len(finite):
        nan = float("nan")
        return OracleGain(r, len(splits), float(np.mean(oracle)), float(np.mean(random_mean)), 0.0, nan, nan, nan, nan, nan)
    return OracleGain(replicates=r, splits=len(splits), oracle=float(np.mean(oracle)),
                      random_mean=float(np.mean(random_mean)), random_std=float(np.mean(random_std)),
                      z=float(finite.mean()), z_std=float(finite.std(ddof=1)) if len(finite) > 1 else 0.0,
                      z_median=float(np.median(finite)), z_min=float(finite.min()), percentile=float(np.nanmean(beats)))
