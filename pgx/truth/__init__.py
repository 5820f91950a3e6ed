"""What the estimate is judged against: real fine-tuning and what is measured from it.

* ``finetune``: PPO from θ* on task subsets, batched, with the store of finished runs;
* ``exact``: the offline exact truth (Algorithm 1 with the network's exact log-ratios);
* ``reliability``: the truth's own reproducibility (split halves of its replicates);
* ``structure``: whether the truth has group structure at all (its own grouping, held out, vs random);
* ``validation``: the comparisons of an estimate with a truth (NMI, relative error, correlations);
* ``taylor``: the first-order model's error along fine-tuning and at fixed distances.

The stages that compute them are in :mod:`pgx.stages.truth`.
"""
