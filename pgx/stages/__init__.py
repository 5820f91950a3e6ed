"""Cached stage functions: the one path by which chapters and the CLI run the pipeline.

family → meta-policy → gradient features → surrogate fit → affinity → groups → truth and
downstream. Each stage is a function of ``(family spec, profile, seed)``, declared with the profile
fields it reads (``pgx.stages.graph``: what its key hashes), kept on disk (``pgx.stages.cache``),
and split by concern:

* ``pipeline``: meta-training, the transfer matrix, features, the surrogate and the affinity;
* ``truth``: real fine-tuning of subsets (the replicated ground truth and its reliability), the
  offline exact truth, Table 1's RSS by distance, and the ablations against the truth;
* ``hessian_bound``: the train/test gap and the Hessian bound of section 4.4;
* ``fidelity``: the highway family's fast backend (envpool) checked against highway-env;
* ``sac_run``: one cached multitask SAC run (θ* of a SAC family, every Meta-World baseline);
* ``metaworld``: MT10/MT50's grouping gathered with its times, and Table 3's Meta-World column;
* ``downstream``: MAML transfer (Table 3) and the source distributions (Appendix C);
* ``many``: many independent stage calls computed over the cores (:func:`compute_many`).
"""

from pgx.keys import cache_dir, code_version
from pgx.stages.fidelity import FidelityResult, highway_fidelity
from pgx.stages.hessian_bound import GeneralizationResult, generalization
from pgx.stages.many import compute_many
from pgx.stages.pipeline import (
    ROUTES, AffinityResult, FeatureResult, MetaPolicy, SurrogateFit, estimate_affinity, gradient_features,
    held_out_features, meta_train, projector_for, scoring_features, surrogate_fit, theta_star_returns, theta_star_samples,
    transfer_matrix,
)
from pgx.stages.truth import (
    ESTIMATORS, ExactTruth, GroundTruth, cost_by_depth, exact_truth, ground_truth, projection_ablation, budget_curves,
    rss_by_distance, subset_size_ablation, theta_budget_curve, verdicts,
)

__all__ = [
    "code_version", "cache_dir", "MetaPolicy", "meta_train", "theta_star_returns", "transfer_matrix", "FeatureResult",
    "gradient_features", "SurrogateFit", "surrogate_fit", "AffinityResult", "ROUTES", "estimate_affinity",
    "theta_star_samples", "projector_for", "GroundTruth", "ground_truth", "projection_ablation", "cost_by_depth",
    "subset_size_ablation", "GeneralizationResult", "generalization", "held_out_features", "scoring_features",
    "ExactTruth", "exact_truth", "rss_by_distance", "ESTIMATORS", "verdicts", "FidelityResult", "highway_fidelity",
    "compute_many", "budget_curves", "theta_budget_curve",
]
