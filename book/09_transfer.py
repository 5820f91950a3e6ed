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
# # Does grouping help? MAML transfer to unseen tasks
#
# Grouping exists to train better policies. For the control families the paper meta-trains a
# policy with MAML on **one representative task from each group**, adapts it to 50 unseen target
# tasks, and reports the return after adaptation (Table 3). On CartPole it reports 159.2 for
# PolicyGradEx's groups against 145.9 for a multitask policy and 144.1 for random groups (numbers
# from a summary of the paper), and it claims **+16%** over the multitask baselines and **+19%**
# over random and gradient-similarity grouping on average. This chapter runs that comparison on
# every family of the build, with the seeds' spread deciding each verdict.
#
# **What is compared** (`pgx.stages.downstream`, same budgets, same seeds):
#
# | method | trained on |
# |---|---|
# | MAML, PolicyGradEx groups | one representative task per group of the SDP grouping of the first-order affinity ({doc}`05_grouping`) |
# | MAML, random groups | one representative per group of a uniformly random $k$-partition |
# | MAML, gradient-similarity groups | one representative per group of the SDP grouping of task-gradient cosines |
# | MAML, all source tasks | all $n$ source tasks |
# | multitask PPO, all tasks | one PPO policy on all source tasks |
# | multitask PPO per PolicyGradEx group | one PPO policy per group; a target starts from its nearest source task's group |
#
# * **Representative task** of a group, for every grouping alike: the group's medoid in
#   task-parameter space (standardised), the member with the smallest summed distance to the
#   others. The rule sees only task parameters, so it cannot favour one grouping's affinity.
# * **MAML** (`pgx.algos.maml`): inner loop = vanilla policy-gradient steps on a task's own
#   episodes (linear feature baseline, normalised GAE advantages); outer loop = the second-order
#   meta-gradient through the adaptation (`torch.func`, `vmap` over tasks), applied with Adam — not
#   the references' TRPO step, which costs some ten Hessian-vector products through the adaptation
#   and a line search per iteration, iterations two cores cannot spare. Every
#   MAML run uses the same meta-batch (task slots × episodes), so 3 representatives and 10 tasks
#   cost the same; one seed initialises all of them.
# * **PPO baselines** spend, in total, the environment steps MAML on all source tasks spent (split
#   evenly between the per-group policies). No policy sees a task one-hot: targets have none.
# * **Targets**: the family's unseen target tasks, evenly spaced, leaving out those equal to a
#   source task (the target grids share their end points with the source grids).
# * **Adaptation step** (`pgx.algos.transfer`): one policy-gradient update, with MAML's inner step size,
#   from a fresh batch of episodes on the target. Every method adapts the same way from its own
#   starting policy, on the same targets with the same episode seeds. The return *after adaptation*
#   is the mean return of the batch played after the last update; *before* is the first batch's.

# %%
import numpy as np
import pandas as pd
import seaborn as sns
from IPython.display import display

from pgx.envs import make_family
from pgx.plots import small_multiples
from pgx.profiles import get_profile
from pgx.report import (
    BASELINE_KIND, PAPER_TABLE3_CLAIMS, book_families, improvement_verdicts, mean_std, relative_improvements,
    show_warnings, transfer_rows,
)
from pgx.stages import compute_many
from pgx.stages.downstream import METHODS, hidden_task_spec, maml_transfer, transfer_budgets

show_warnings()
sns.set_theme()
profile = get_profile()
FAMILIES = book_families()
SEEDS = profile.transfer.seeds
OURS = METHODS[0]
print(f"profile: {profile.name}   seeds: {SEEDS}   families: {', '.join(FAMILIES)}")
pd.DataFrame({f: transfer_budgets(f, profile).budgets() for f in FAMILIES})

# %% [markdown]
# CartPole's episodes run to the family's own 500 steps (CartPole-v1), not to CartPole-v0's 200
# that the paper's CartPole returns suggest: at 200 multitask PPO saturated (issue 23), which leaves
# no room for a method to do better; the budgets table gives each family's horizon ("None": the
# family's own end).
#
# The paper adapts for "200 adaptation steps"; the `paper` profile takes 200 of pgx's steps, the
# table above says what this build took. Each (family, seed) below is one cached stage: its MAML
# and PPO runs are checkpointed and cached one by one, so an interrupted build resumes.

# %%
CASES = [(spec, seed) for spec in FAMILIES for seed in SEEDS]
# Every family and seed: independent calls, computed over the cores.
results = dict(zip(CASES, compute_many(maml_transfer.call(spec, profile, seed) for spec, seed in CASES)))
rows = transfer_rows(results)
for spec in FAMILIES:
    fam = make_family(spec)
    print(f"{spec}: {len(results[spec, SEEDS[0]].target_ids)} unseen targets evaluated of the family's "
          f"{len(fam.target_params)} (targets equal to a source task are left out)")
timing = pd.DataFrame({spec: {f"seed {seed}": f"{results[spec, seed].wall_time / 60:.1f} min" for seed in SEEDS}
                       for spec in FAMILIES})
print("wall time of each (family, seed) when computed (cores shared with other work: upper bounds)")
timing

# %% [markdown]
# ## The groups and their representatives
#
# The representatives MAML meta-trains on, for the first seed. Tasks are named by their
# parameter; groups that put one task apart from the others still give a representative each.

# %%
first = SEEDS[0]
table = {}
for spec in FAMILIES:
    res, fam = results[spec, first], make_family(hidden_task_spec(spec))
    labels = fam.task_labels()
    for grouping, reps in res.representatives.items():
        groups = [[labels[t] for t in np.flatnonzero(res.groups[grouping] == g)] for g in np.unique(res.groups[grouping])]
        table[(spec, grouping)] = {"groups": " | ".join(", ".join(g) for g in groups),
                                   "representatives": ", ".join(labels[t] for t in reps)}
# Groupings with the same representatives train the same MAML run (same tasks, same seed): their
# curves below coincide.
for spec in FAMILIES:
    for seed in SEEDS:
        reps = results[spec, seed].representatives
        names = list(reps)
        same = [f"{a} = {b}" for i, a in enumerate(names) for b in names[i + 1:] if reps[a] == reps[b]]
        if same:
            print(f"{spec}, seed {seed}: same representatives, same MAML run: {'; '.join(same)}")
pd.DataFrame(table).T

# %% [markdown]
# ## Table 3, control columns
#
# Mean return over the target tasks after adaptation, mean ± std over seeds (and, below it, the
# return before adaptation). A higher number is better in every family.

# %%
def table3(column: str) -> pd.DataFrame:
    frame = rows[column].unstack("family")
    return pd.DataFrame({spec: frame[spec].groupby(level="method").agg(mean_std) for spec in FAMILIES}).loc[list(METHODS)]


print("return after adaptation")
display(table3("after"))
print("return before adaptation (the starting policy on the targets)")
display(table3("before"))
spread = pd.DataFrame({spec: {m: np.mean([results[spec, s].adaptations[m].after.std(ddof=1) for s in SEEDS])
                              for m in METHODS} for spec in FAMILIES})
print("spread over targets: std of the return after adaptation across targets, averaged over seeds")
display(spread.round(1))

# %% [markdown]
# ## Adaptation curves
#
# Mean return over targets after each adaptation step, averaged over seeds (bands: the seeds'
# spread, one std). Where the curves of two methods overlap within their bands, the table's
# difference between them is not a difference.

# %%
fig, axes = small_multiples(len(FAMILIES))
palette = dict(zip(METHODS, sns.color_palette("tab10", len(METHODS))))
for ax, spec in zip(axes, FAMILIES):
    for method in METHODS:
        curves = np.stack([results[spec, s].adaptations[method].returns.mean(0) for s in SEEDS])
        mean, std = curves.mean(0), curves.std(0)
        steps = np.arange(len(mean))
        ax.plot(steps, mean, label=method, color=palette[method], lw=2.2 if method == OURS else 1.3)
        ax.fill_between(steps, mean - std, mean + std, color=palette[method], alpha=0.12)
    ax.set(title=spec, xlabel="adaptation steps", ylabel="mean return on targets")
axes[0].legend(fontsize=7)
fig.tight_layout()

# %% [markdown]
# ## Where each method does well
#
# Return after adaptation per target task against the target's parameter (first seed). A
# representative near a region of targets should help there; all-task training spreads itself
# over the whole range.

# %%
fig, axes = small_multiples(len(FAMILIES))
for ax, spec in zip(axes, FAMILIES):
    res, fam = results[spec, first], make_family(hidden_task_spec(spec))
    params = np.asarray(fam.target_params, dtype=float)[list(res.target_ids)]
    x = params if params.ndim == 1 else np.arctan2(params[:, 1], params[:, 0]) % (2 * np.pi)
    for method in METHODS:
        ax.plot(x, res.adaptations[method].after, "o-", ms=3, lw=1, label=method, color=palette[method])
    ax.set(title=spec, xlabel=fam.parameter if params.ndim == 1 else "goal angle (rad)",
           ylabel="return after adaptation")
    if params.ndim == 1 and np.all(params > 0) and params.max() / params.min() > 20:
        ax.set_xscale("log")
axes[0].legend(fontsize=7)
fig.tight_layout()

# %% [markdown]
# ## Meta-training
#
# The meta-objective of each MAML run — the return of the adapted policies on the meta-batch's
# tasks — against environment steps (first seed). A run on three representatives sees its three
# tasks over and over; the all-tasks run spreads the same episodes over ten.

# %%
fig, axes = small_multiples(len(FAMILIES))
for ax, spec in zip(axes, FAMILIES):
    for method, run in results[spec, first].maml.items():
        window = max(1, len(run.returns_after) // 10)
        smooth = pd.Series(run.returns_after).rolling(window, min_periods=1).mean()
        ax.plot(run.env_steps, smooth, label=method, color=palette[method])
    ax.set(title=spec, xlabel="environment steps", ylabel="return after inner step (meta-batch)")
axes[0].legend(fontsize=7)
fig.tight_layout()

# %% [markdown]
# ## Does PolicyGradEx's grouping help here?
#
# For each family and baseline: the relative improvement of MAML on PolicyGradEx's
# representatives, (ours − baseline)/|baseline| of the mean returns over seeds, and a verdict that
# lets the seeds decide: *better* or *worse* only where the difference of the means exceeds the
# larger of the two methods' spreads between seeds.

# %%
verdicts = improvement_verdicts(rows, OURS)
verdicts

# %% [markdown]
# The paper's two averages, computed the same way here: the mean over families and over the
# baselines of each kind of the seed-by-seed relative improvements, with their spread over seeds.
# "Multitask baselines" are MAML on all source tasks and both multitask PPO policies; "random and
# gradient-similarity" are MAML on those groupings' representatives.

# %%
improvements = relative_improvements(rows, OURS).reset_index()
improvements["kind"] = improvements["method"].map(BASELINE_KIND)
claims = []
for kind, paper in PAPER_TABLE3_CLAIMS.items():
    per_seed = improvements[improvements["kind"] == kind].groupby("seed")["improvement"].mean()
    spread = per_seed.std() if len(per_seed) > 1 else 0.0
    holds = per_seed.mean() - spread > 0 and per_seed.mean() >= paper - spread
    claims.append({"over": kind, "paper": f"+{paper:.0%}", "here (mean ± std over seeds)":
                   f"{per_seed.mean():+.1%} ± {spread:.1%}",
                   "verdict": ("holds here" if holds else "positive, but short of the paper's size"
                               if per_seed.mean() - spread > 0 else "does not hold here: no gain beyond the seeds' spread")})
pd.DataFrame(claims).set_index("over")

# %% [markdown]
# How to read the verdicts: every number above was computed in this build, at the budgets printed
# at the top. A claim "holds here" only when the mean improvement exceeds the seeds' spread and
# reaches the paper's size within that spread. A verdict is about these budgets: the meta-training
# curves above show whether each MAML run was still improving when its budget ran out, and the
# `paper` profile runs the same code at the paper's budgets.

# %%
from pgx.report import chapter_wall_time  # noqa: E402

print(chapter_wall_time())
