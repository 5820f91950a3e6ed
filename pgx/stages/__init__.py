"""Cached stage functions: the one path by which chapters and the CLI run the pipeline.

family → meta-policy → gradient features → surrogate fit → affinity → groups → truth and
downstream. Each stage is a function of ``(family spec, profile, seed)``, cached on disk
(``pgx.stages.cache``) and split by concern:

* ``pipeline``: meta-training, the transfer matrix, features, the surrogate and the affinity;
* ``truth``: real fine-tuning of subsets (the ground truth) and the ablations against it;
* ``hessian_bound``: the train/test gap and the Hessian bound of section 4.4.

A later downstream stage (MAML transfer, Meta-World) gets a module of its own here.
"""

from pgx.stages.cache import CODE_VERSION, cache_dir, stage_args
from pgx.stages.hessian_bound import GeneralizationResult, generalization
from pgx.stages.pipeline import (
    ROUTES, AffinityResult, FeatureResult, MetaPolicy, SurrogateFit, estimate_affinity, gradient_features,
    meta_train, projector_for, surrogate_fit, theta_star_samples, transfer_matrix,
)
from pgx.stages.truth import GroundTruth, cost_by_depth, ground_truth, projection_ablation, subset_size_ablation

__all__ = [
    "CODE_VERSION", "cache_dir", "stage_args", "MetaPolicy", "meta_train", "transfer_matrix", "FeatureResult",
    "gradient_features", "SurrogateFit", "surrogate_fit", "AffinityResult", "ROUTES", "estimate_affinity",
    "theta_star_samples", "projector_for", "GroundTruth", "ground_truth", "projection_ablation", "cost_by_depth",
    "subset_size_ablation", "GeneralizationResult", "generalization",
]
