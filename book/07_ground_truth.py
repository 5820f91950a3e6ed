# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Surrogate vs ground truth
#
# The paper's first question: does the first-order surrogate predict what real fine-tuning on a
# subset gives, and how much cheaper is it? For the **same** random subsets the surrogate used,
# `pgx.stages.ground_truth` fine-tunes $\theta^\star$ with PPO on each subset (in parallel) and
# measures every task of the subset two ways:
#
# * **objective**: PPO's objective $\operatorname{mean}_t \hat A_t\,\pi_{\theta_S}(a_t\mid s_t)/\pi_{\theta^\star}(a_t\mid s_t)$
#   with the *exact* ratio, on held-out states of $\theta^\star$ — the quantity whose
#   linearisation the first-order route estimates;
# * **return**: the episodic return of $\theta_S$ (sampled actions, the same episode seeds for
#   every subset).
#
# Each gives a true affinity matrix $T$ by eq. (5), compared with the surrogate's $\hat T$ (the
# first-order route of {doc}`04_affinity`): relative error $\|\hat T-T\|_F/\|T\|_F$, the Spearman
# correlation of estimated and true per-subset performance (within each task), and the NMI
# between the $k=3$ groups of $\hat T$ and of $T$ — next to the NMI of random groups. Everything
# is repeated for each seed, meta-training included.

# %%
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from pgx import stages
from pgx.clustering import sdp_cluster
from pgx.envs import make_family
from pgx.plots import heatmap
from pgx.profiles import get_profile
from pgx.validation import error_vs_num_subsets, grouping_nmi, k_ablation, per_task_spearman, random_nmi, relative_error

profile = get_profile()
family = make_family("cartpole")
labels = [f"{p:g}" for p in family.source_params]
k = profile.num_groups
print(f"profile: {profile.name}   seeds: {profile.validation_seeds}   k = {k}")
pd.Series(profile.budgets(), name="value").to_frame().T

# %%
seed0 = profile.validation_seeds[0]
results, rows = {}, []
for seed in profile.validation_seeds:
    estimate = stages.estimate_affinity("cartpole", profile, seed, "first_order")
    truth = stages.ground_truth("cartpole", profile, seed)
    results[seed] = (estimate, truth)
    ours = sdp_cluster(estimate.affinity, k=k, seed=seed)
    for name, true_affinity, true_scores in [("objective", truth.objective_affinity, truth.objective_scores),
                                             ("return", truth.return_affinity, truth.return_scores)]:
        if not np.any(true_affinity):
            rows.append({"seed": seed, "truth": name, "note": "every true score is constant: T = 0"})
            continue
        reference = sdp_cluster(true_affinity, k=k, seed=seed)
        rows.append({"seed": seed, "truth": name,
                     "relative error": relative_error(estimate.affinity, true_affinity),
                     "Spearman ρ (mean over tasks)": np.nanmean(per_task_spearman(estimate.scores, true_scores)),
                     "NMI(ours, truth)": grouping_nmi(ours, reference),
                     "NMI(random, truth)": random_nmi(reference, k, range(100)).mean()})
per_seed = pd.DataFrame(rows)
per_seed.round(3)

# %%
numeric = per_seed.drop(columns=[c for c in ("seed", "note") if c in per_seed]).groupby("truth")
summary = numeric.mean().round(3).astype(str) + " ± " + numeric.std().round(3).astype(str)
summary

# %% [markdown]
# How much of the truth is signal? The two ground truths measure the same fine-tuned policies in
# two ways; if their groups barely agree with each other, the true affinity is dominated by the
# noise of fine-tuning and evaluation, and no estimate can match it well.

# %%
objective_nmi = per_seed[per_seed["truth"] == "objective"]
truth_agreement = [grouping_nmi(sdp_cluster(t.objective_affinity, k=k, seed=s), sdp_cluster(t.return_affinity, k=k, seed=s))
                   for s, (_, t) in results.items() if np.any(t.return_affinity)]
ours, chance = objective_nmi["NMI(ours, truth)"].mean(), objective_nmi["NMI(random, truth)"].mean()
print(f"NMI(surrogate groups, objective-truth groups) = {ours:.3f} ± {objective_nmi['NMI(ours, truth)'].std():.3f} "
      f"vs random groups {chance:.3f}: the surrogate is {'above' if ours > chance + objective_nmi['NMI(ours, truth)'].std() else 'not above'} chance here.")
if truth_agreement:
    print(f"NMI(objective-truth groups, return-truth groups) = {np.mean(truth_agreement):.3f}: how well the two ground truths agree with each other.")

# %% [markdown]
# The table above is the mean ± standard deviation over the seeds. The return-based truth is
# flat wherever the fine-tuned policies all still balance the pole for 500 steps: then subsets
# cannot be told apart by return, whatever the estimate. The objective-based truth does not
# saturate.

# %%
estimate, truth = results[seed0]
fig, axes = plt.subplots(1, 3, figsize=(19, 5.8))
heatmap(estimate.affinity, labels, "surrogate T̂ (first-order)", "z-units", ax=axes[0], center=0)
heatmap(truth.objective_affinity, labels, "true T (objective after fine-tuning)", "z-units", ax=axes[1], center=0)
heatmap(truth.return_affinity, labels, "true T (return after fine-tuning)", "z-units", ax=axes[2], center=0)
for ax in axes:
    ax.set_xlabel("half pole length (m)")
    ax.set_ylabel("half pole length (m)")
fig.suptitle(f"Estimated vs real task affinity, CartPole ({profile.name}, seed {seed0})")
fig.tight_layout();

# %% [markdown]
# ## Cost: surrogate vs fine-tuning every subset
#
# The surrogate's cost is one rollout of $\theta^\star$, the projected gradients, and all subsets'
# regressions and scores; the ground truth's is one PPO fine-tuning per subset. Both are timed in
# the same build on the same machine; "one core" sums the fine-tuning runs, "elapsed" is the
# parallel wall-clock. FLOPs are counted by `torch.utils.flop_counter` (torch work only; the
# environments' numpy physics is not counted on either side).

# %%
cost_rows = []
for seed, (estimate, truth) in results.items():
    features = stages.gradient_features("cartpole", profile, seed)
    fit = stages.surrogate_fit("cartpole", profile, seed)
    surrogate_seconds = features.rollout_time + features.gradient_time + fit.fit_time + estimate.score_time
    cost_rows.append({"seed": seed, "surrogate s": surrogate_seconds, "fine-tuning s (one core)": truth.finetune_time,
                      "fine-tuning s (elapsed)": truth.finetune_elapsed,
                      "speed-up (one core)": truth.finetune_time / surrogate_seconds,
                      "FLOPs ratio": truth.finetune_flops / (features.gradient_flops + fit.fit_flops)})
cost = pd.DataFrame(cost_rows).set_index("seed")
cost.round(2)

# %% [markdown]
# The surrogate above ran with torch's default threads, each fine-tuning job on one thread. For a
# like-for-like comparison, and for Table 2's rows by policy depth, the table below times both
# sides on one core for policies of 2, 4 and 6 linear layers (cost does not depend on how well a
# policy plays, so each depth starts from a fresh seeded initialisation; fine-tuning is timed on 3
# subsets and scaled to all $m$).

# %%
pd.DataFrame(stages.cost_by_depth("cartpole", profile, seed0)).set_index("layers").round(2)

# %% [markdown]
# ## Ablations (seed 0)
#
# **Projection dimension $d$.** Features, fits and scores are recomputed for each $d$; the truth
# stays the objective-based $T$.

# %%
ablation_d = pd.DataFrame(stages.projection_ablation("cartpole", profile, seed0)).set_index("d")
ax = ablation_d[["relative error", "nmi"]].plot(marker="o", logx=True, figsize=(6, 3.5),
                                                 title=f"Effect of d on the estimate ({profile.name}, seed {seed0})")
ax.set_xlabel("projection dimension d");
ablation_d.round(3)

# %% [markdown]
# **Number of groups $k$.** The NMI of our groups against the truth's at each $k$, and the
# density of the groups under the true affinity — the downstream score available before any group
# is trained (higher is better; the truth's own groups are the ceiling).

# %%
pd.DataFrame(k_ablation(estimate.affinity, truth.objective_affinity, profile.ablation_ks, seed=seed0)).set_index("k").round(3)

# %% [markdown]
# **Number of subsets $m$.** $\hat T$ from the first $m$ subsets only, against the truth from all of
# them. Eq. (5) needs every pair of tasks in some subset; below that $m$ the error is undefined.

# %%
counts = sorted({max(1, int(f * len(truth.subsets))) for f in (0.1, 0.2, 0.35, 0.5, 0.75, 1.0)})
by_m = pd.DataFrame(error_vs_num_subsets(truth.subsets, estimate.scores, truth.objective_affinity, counts)).set_index("m")
by_m.round(3)

# %% [markdown]
# **Subset size.** Each size gets its own $m$ random subsets, its own surrogate fits and its own
# ground truth by fine-tuning (the size above is the profile's `subset_size`).

# %%
pd.DataFrame(stages.subset_size_ablation("cartpole", profile, seed0, profile.ablation_subset_sizes)).set_index("subset size").round(3)

# %% [markdown]
# ## Running the ground truth on a cluster
#
# The fine-tunings are independent joblib jobs (loky processes by default). With a Dask cluster,
# the same call runs on its workers, unchanged — each job pins one torch thread and its own seed,
# so results do not depend on where it ran:
#
# ```python
# from dask.distributed import Client
# from joblib import parallel_config
# client = Client("tcp://scheduler:8786")
# with parallel_config(backend="dask"):
#     truth = stages.ground_truth("cartpole", profile, seed)
# ```
#
# The test suite runs this with a 2-worker `LocalCluster`.
#
# ## Compared with the paper
#
# The paper reports that the estimated groups match those of full training with high NMI on
# Meta-World and LunarLander. On CartPole, with the budgets printed at the top, the lines above
# say whether that holds here. When we built this book in the `default` profile (seeds 0–2), it did
# not: the surrogate's groups were no closer to the truth's than random groups,
# and the per-subset rankings were uncorrelated. The likely reason is visible in the earlier
# chapters: θ* already solves every CartPole task, advantages at θ* are tiny (most returns are the
# maximum), so the differences between subsets that fine-tuning produces are mostly noise — the
# agreement between the two ground truths above measures how much. The first-order model itself
# is accurate ({doc}`06_first_order`); what it predicts barely differs between subsets here. The
# cost claim does hold: the surrogate is two orders of magnitude cheaper.
#
# | | paper (Table 2, §4.2) | this build |
# |---|---|---|
# | NMI of estimated vs true groups | "over" a value lost with the paper's numbers, on Meta-World and LunarLander | CartPole, printed above (mean ± std over seeds) |
# | NMI of random groups | approximately a lost value | printed above |
# | relative error of $\hat T$ | at most a lost value | printed above |
# | speed-up over full training | up to 26× (FLOPs) | wall-clock and FLOPs ratios printed above |
