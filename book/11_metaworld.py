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
# # Meta-World MT10: multitask SAC, its groups, and Table 3's Meta-World column
#
# Meta-World is the paper's headline benchmark: ten manipulation tasks for one simulated Sawyer
# arm (MT10), from reaching a point to inserting a peg. The paper trains a multitask SAC
# meta-policy on all ten, groups the tasks by PolicyGradEx's affinity, trains one
# Soft-Modularization policy per group, and compares success rates with single policies on all
# tasks: a multitask SAC (MT-SAC), Soft Modularization, PaCo and CARE. It reports an NMI of 0.76
# between its estimated and true MT10 groups (per a summary of the paper).
#
# For reference, the published MT10 success rates (CARE's protocol: 2M environment steps per task,
# mean ± s.e.; PaCo's from its paper) — **not** computed in this build:
#
# | method | published MT10 success |
# |---|---|
# | MT-SAC | 0.49 |
# | MT-MH-SAC (multi-head) | 0.61 |
# | Soft Modularization | 0.73 |
# | CARE | 0.84 |
# | PaCo | 0.85 |
# | one SAC per task | 0.90 |
#
# This chapter runs the same comparison with `pgx`, at the budget its profile affords, and
# prints that budget. Everything below is computed in this build.
#
# **What differs from the control families.** The policy is SAC's tanh-squashed Gaussian, so the
# features are per-sample gradients of $\log\pi(u\mid s)$ of the pre-tanh sample $u$ (the
# squashing's Jacobian included), and the advantage is the soft advantage of SAC's own objective,
# from its twin critics $Q=\min(Q_1,Q_2)$ and the task's temperature $\alpha$:
#
# $$\hat A(s,a) = Q(s,a) - \alpha\log\pi(a\mid s) - V(s),\qquad V(s) = \mathbb E_{a'\sim\pi(\cdot\mid s)}\big[Q(s,a') - \alpha\log\pi(a'\mid s)\big],$$
#
# with $V$ estimated from a few sampled actions per state (`pgx.sac_features`). The entropy term
# on the left keeps $\hat A$ centred on the policy's own actions; without it every advantage
# would sit $\alpha H(\pi)$ below zero and the surrogate, which labels samples by the sign of
# $\hat A$, would see almost only negative labels (the module's docstring and tests show this).
# The surrogate, eq. 5's affinity and the SDP are the ones of the other chapters, unchanged.

# %%
import os
import time
from itertools import combinations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from IPython.display import display

from pgx.clustering import groups_from_labels
from pgx.envs import make_family
from pgx.envs.metaworld import EPISODE_STEPS, GOAL_SEED, REWARD_VERSION, task_names
from pgx.clustering import GROUPINGS
from pgx.plots import heatmap, small_multiples
from pgx.profiles import get_profile
from pgx.algos.sac_timing import sac_update_seconds
from pgx.report import agreement_beyond_chance, mean_std, metaworld_families, metaworld_kinds, show_warnings, versus
from pgx.stages import compute_many
from pgx.stages.metaworld import grouping, meta_config, metaworld_profile, multitask_table
from pgx.stages.sac_run import theta_star_call

show_warnings()
sns.set_theme()
profile = get_profile()
MT10 = metaworld_profile("mt10", profile)  # the profile's budgets for each family: θ* by SAC
MT50 = metaworld_profile("mt50", profile)
SEEDS = MT10.metaworld.seeds
print(f"profile: {profile.name}   seeds: {SEEDS}   reward {REWARD_VERSION}, goals seed {GOAL_SEED}, "
      f"{EPISODE_STEPS}-step episodes")
RUN_MT10, RUN_MT50 = ("mt10" in metaworld_families()), ("mt50" in metaworld_families())
if not (RUN_MT10 and RUN_MT50):
    left_out = ", ".join(name for name, run in (("MT10", RUN_MT10), ("MT50", RUN_MT50)) if not run)
    print(f"{left_out} left out of this build (PGX_FAMILIES={os.environ.get('PGX_FAMILIES')!r}): "
          f"the cells about {'it' if left_out.count(',') == 0 else 'them'} show nothing")
pd.DataFrame({name: {**{k: v for k, v in p.budgets().items() if "PPO" not in k and "single-task" not in k
                        and "fine-tuning" not in k and "truth" not in k}, **p.metaworld.budgets()}
              for name, p in (("MT10", MT10), ("MT50", MT50))})

# %% [markdown]
# ## The tasks, and what a step costs
#
# `make_family("mt10")` builds each task from Meta-World's own environment class with reward v2,
# one of 50 pinned goal positions drawn at every reset, and the task one-hot appended to the
# 39-number observation. A task counts as solved in an episode if `info["success"]` is reached at
# any step. The speed of one step decides every budget below, so it is measured here, with random
# actions, in this build:

# %%
if RUN_MT10:
    family = make_family("mt10")
    NAMES = task_names(family)
    env = family.source_envs(range(family.n_tasks), 1)
    rng = np.random.default_rng(0)
    env.reset(seed=0)
    steps = 200
    start = time.perf_counter()
    for _ in range(steps):
        env.step(rng.uniform(-1, 1, (family.n_tasks, family.num_actions)))
    env_rate = steps * family.n_tasks / (time.perf_counter() - start)
    env.close()
    print(f"MT10: {family.n_tasks} tasks, observation {family.obs_dim} numbers (39 + one-hot), action {family.action_space}")
    print(f"measured: {env_rate:,.0f} env steps/s over the ten tasks, one process")

# %% [markdown]
# One SAC update draws a batch from every task's replay buffer and passes it through the actor and
# both critics; its cost, measured here for MT-SAC's network at this profile's width, and what the
# profile's budget is next to the published one:

# %%
if RUN_MT10:
    cfg = meta_config(MT10.metaworld, "mt10")
    update_ms = sac_update_seconds(family, cfg) * 1e3
    per_task = MT10.metaworld.sac.total_steps // family.n_tasks
    print(f"one update ({family.n_tasks} tasks × {cfg.batch_size} transitions, width {MT10.metaworld.hidden}): {update_ms:.1f} ms on this machine")
    print(f"budget: {per_task:,} env steps per task ({per_task // EPISODE_STEPS} episodes), "
          f"{(MT10.metaworld.sac.total_steps - MT10.metaworld.sac.learning_starts) // family.n_tasks * MT10.metaworld.sac.updates_per_step:,.0f} updates; "
          f"the published runs take 2,000,000 steps per task, {2_000_000 / per_task:,.0f} times more")

# %% [markdown]
# **Success rates below are therefore far from the published ones**: SAC on Meta-World needs
# hundreds of thousands of steps per task before most tasks succeed. What this build can show is
# whether the pipeline runs on Meta-World end to end, what its groups look like, and whether any
# method separates from the others at this budget.
#
# ## θ*: multitask SAC on all ten tasks
#
# The meta-policy is MT-SAC (`pgx.algos.sac`): one shared MLP actor and twin critics on the
# observation and task one-hot, a temperature per task, every update drawing the same number of
# transitions from each task's replay buffer, truncation at 500 steps bootstrapped as not-done.
# It is also the MT-SAC baseline of the table further down. Its training episodes, per task:

# %%
if RUN_MT10:
    compute_many(theta_star_call("mt10", MT10, seed) for seed in SEEDS)  # every seed's θ* at once, over the cores
    runs = {seed: grouping("mt10", MT10, seed) for seed in SEEDS}
    curve_rows = []
    for seed, g in runs.items():
        r = g.meta.result
        for step, task, success, ret in zip(r.episode_steps, r.episode_tasks, r.episode_success, r.episode_returns):
            curve_rows.append({"seed": seed, "env steps": int(step), "task": NAMES[int(task)], "success": success,
                               "return": ret})
    curves = pd.DataFrame(curve_rows, columns=["seed", "env steps", "task", "success", "return"])
    if len(curves):
        fig, axes = small_multiples(2, ncols=2, panel=(6.5, 4.2))
        sns.lineplot(curves, x="env steps", y="return", hue="task", errorbar=None, ax=axes[0], legend=False)
        axes[0].set(title="θ* training episodes: return per task (mean over seeds)")
        sns.lineplot(curves, x="env steps", y="success", hue="task", errorbar=None, ax=axes[1])
        axes[1].set(title="θ* training episodes: success (reached at any step)", ylim=(-0.05, 1.05))
        axes[1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1, 1))
        plt.show()
    else:
        print("no training episode of θ* ended within this profile's budget")
    meta_success = pd.DataFrame({seed: g.meta.success for seed, g in runs.items()}, index=NAMES)
    print(f"θ* after training, deterministic policy, {MT10.eval_episodes} evaluation episode(s) per task: success per task and seed")
    display(meta_success.T.round(2))
    print(f"mean success over tasks: {mean_std(meta_success.mean(axis=0))} (seeds {SEEDS}), trained on "
          f"{', '.join(sorted({g.meta.hardware for g in runs.values()}))}; "
          f"meta-training took {mean_std([g.times['meta-training'] / 60 for g in runs.values()])} min per seed")

# %% [markdown]
# ## Affinity and groups
#
# Features: per-sample gradients of $\log\pi(u\mid s)$ at θ*, projected to $d$ dimensions, on
# rollouts of θ* itself; then Algorithm 1's fits on random subsets at 1% of $\|\theta^\star\|$,
# first-order scores on a second, held-out rollout, eq. 5 and the SDP with $k$ groups — the same
# functions as for the control families. The heatmap is the first seed's affinity:

# %%
if RUN_MT10:
    first = runs[SEEDS[0]]
    heatmap(first.affinity, NAMES, f"MT10 task affinity (first-order, seed {SEEDS[0]})", "affinity", center=0.0)
    plt.show()
    group_rows = []
    for seed, g in runs.items():
        for method, labels in g.groups.items():
            group_rows.append({"seed": seed, "grouping": method,
                               "groups": " | ".join(", ".join(NAMES[i].removesuffix("-v3") for i in members)
                                                    for members in groups_from_labels(labels))})
    pd.set_option("display.max_colwidth", 200)
    display(pd.DataFrame(group_rows).set_index(["seed", "grouping"]))

# %% [markdown]
# Do the groups reproduce? The ground truth the other families are judged against (fine-tuning θ*
# on every subset, replicated) would here be a SAC fine-tuning run per subset and replicate —
# hundreds of runs, beyond the budget of this build, so the paper's NMI of 0.76 against true
# groups is **not** checked here. What is checked: whether two seeds (independent θ*, rollouts,
# projections and subsets) find the same groups, against what random groups of the same sizes
# would give.

# %%
if RUN_MT10:
    stability = []
    for a, b in combinations(SEEDS, 2):
        for method in GROUPINGS:
            res = agreement_beyond_chance(runs[a].groups[method], runs[b].groups[method], seed=a * 10 + b)
            stability.append({"seeds": f"{a} vs {b}", "grouping": method, **res})
    stability = pd.DataFrame(stability)
    if len(stability):
        display(stability.round(3).set_index(["seeds", "grouping"]))
        policy = stability[stability.grouping == "PolicyGradEx"]
        print(f"PolicyGradEx groups between seeds: NMI {mean_std(policy.nmi)}, chance {mean_std(policy['chance nmi'])}")
    else:
        print("one seed in this profile: no stability between seeds to measure")

# %% [markdown]
# ## Table 3's Meta-World column
#
# Every method gets the same env steps per task and sees as many transitions per task in each
# update (`pgx.metaworld_budgets`): single networks on all ten tasks — MT-SAC (θ* itself),
# multi-head SAC, Soft Modularization, PaCo and CARE — and, for each grouping, one
# Soft-Modularization network per group, trained on that group's tasks only. CARE's task metadata
# are TF-IDF vectors of the task names (`pgx.nets.care`): its paper embeds hand-written
# descriptions with a pretrained language model, which cannot be downloaded here. Success is
# measured after training with the deterministic policy, on goals drawn at random from each task's
# 50 (with replacement, not each of the 50 once as in Meta-World's own protocol); episode $e$ of a
# task is seeded by the seed, the task and $e$, so every method meets the same goals on a task.

# %%
if RUN_MT10:
    tables = {seed: multitask_table("mt10", MT10, seed) for seed in SEEDS}
    rows = [{"seed": seed, "method": method, "task": NAMES[i], "success": r["success"][i], "return": r["returns"][i]}
            for seed, table in tables.items() for method, r in table.items() for i in range(len(NAMES))]
    results = pd.DataFrame(rows)
    methods = list(tables[SEEDS[0]])
    per_seed = results.groupby(["method", "seed"], sort=False)["success"].mean().unstack("seed").loc[methods]
    steps = pd.Series({m: tables[SEEDS[0]][m]["env_steps"] for m in methods})
    summary = pd.DataFrame({"mean success over tasks": per_seed.apply(mean_std, axis=1),
                            f"env steps (seed {SEEDS[0]})": steps})
    display(summary)
    fig, ax = plt.subplots(figsize=(11, 3.8))
    grid = results.groupby(["method", "task"], sort=False)["success"].mean().unstack("task").loc[methods, NAMES]
    sns.heatmap(grid, annot=True, fmt=".2f", vmin=0, vmax=1, cmap="viridis", ax=ax, cbar_kws={"label": "success"})
    ax.set(title=f"success per task, mean over seeds {SEEDS} ({profile.name} profile)", xlabel="", ylabel="")
    plt.setp(ax.get_xticklabels(), rotation=35, ha="right")
    plt.show()

# %% [markdown]
# The paper's claim is that PolicyGradEx's groups train better policies than a single network on
# all tasks and than random or gradient-similarity groups. Each verdict below compares mean
# success over tasks seed by seed; a difference smaller than the seeds' spread is no difference.

# %%
if RUN_MT10:
    ours = per_seed.loc["PolicyGradEx groups"]
    verdicts = pd.DataFrame([{"baseline": m, "PolicyGradEx groups": mean_std(ours), "baseline success": mean_std(per_seed.loc[m]),
                              "verdict": versus(ours, per_seed.loc[m])}
                             for m in methods if m != "PolicyGradEx groups"]).set_index("baseline")
    display(verdicts)
    best = per_seed.mean(axis=1).max()
    print(f"highest mean success of any method here: {best:.2f} (published MT10 numbers: 0.49–0.90 at 2M steps per task)")
    solved = [t for t in NAMES if (grid[t] > 0).any()]
    print(f"tasks any method solved in any evaluation episode: {', '.join(solved) or 'none'} ({len(solved)} of {len(NAMES)})")
    print("verdicts: " + "; ".join(f"{v} {m}" for m, v in verdicts.verdict.value_counts().items()))

# %% [markdown]
# ## MT50: grouping fifty tasks
#
# The paper stops at MT10. On MT50 the surrogate's cost is the point: one multitask SAC θ*, one
# pass of per-sample gradients, and many small regressions in place of hundreds of SAC runs per
# subset. θ* here is trained for the budget in the table at the top, a few episodes per task. The
# section reports what each stage costs and whether the groups gather tasks of the same kind (the
# first word of a task's name: `door`, `drawer`, `button`, `plate`, ...) more often than random
# groups of the same sizes do.

# %%
if RUN_MT50:
    mt50 = grouping("mt50", MT50, MT50.metaworld.seeds[0])
    family50 = make_family("mt50")
    names50 = task_names(family50)
    display(pd.Series(mt50.times, name="seconds").to_frame().T.round(1))
    print(f"MT50: n = {family50.n_tasks} tasks, p = {mt50.parameters:,} actor parameters, d = {MT50.projection_dim}, "
          f"{len(mt50.subsets)} subsets of {MT50.subset_size}, k = {MT50.num_groups}; "
          f"θ* mean success {mt50.meta.success.mean():.2f}")
    print(f"surrogate side (rollouts, gradients, fits, scores, SDP): "
          f"{sum(v for k, v in mt50.times.items() if k != 'meta-training'):.0f} s; meta-training {mt50.times['meta-training']:.0f} s")
    kinds = metaworld_kinds(names50)
    kind_rows = [{"grouping": method, **agreement_beyond_chance(labels, kinds, seed=1)} for method, labels in mt50.groups.items()]
    display(pd.DataFrame(kind_rows).set_index("grouping").round(3))
    policy50 = mt50.groups["PolicyGradEx"]
    display(pd.DataFrame([{"group": g, "tasks": ", ".join(names50[i].removesuffix("-v3") for i in members)}
                          for g, members in enumerate(groups_from_labels(policy50))]).set_index("group"))
    verdict = kind_rows[0]["share of shuffles at least as high"]
    print(f"PolicyGradEx's MT50 groups vs task kinds: NMI {kind_rows[0]['nmi']:.2f}; "
          f"{verdict:.1%} of same-size random groupings score at least as high — "
          + ("kinds gather beyond chance" if verdict < 0.05 else "no evidence that kinds gather beyond chance"))

# %% [markdown]
# ## What this chapter shows, and what it does not
#
# * The whole pipeline runs on Meta-World with a SAC meta-policy: features from SAC's
#   tanh-Gaussian policy and soft advantages, the same surrogate, affinity and SDP; the tables above
#   give the groups, their stability between seeds and every method's success, all at the printed
#   budget.
# * At that budget the success rates are far below the published ones, and the verdicts above say
#   whether any method separates from another beyond the seeds' spread. The `paper` profile runs
#   the same code at 2M steps per task (`python -m pgx multitask --family mt10 --profile paper`),
#   meant for a GPU; no GPU run's numbers are shown here.
# * Not checked here: the paper's NMI of 0.76 against true MT10 groups, which needs a SAC
#   fine-tuning ground truth per subset (see the ground-truth chapter for how such a truth's own
#   reliability is measured on the control families).

# %%
from pgx.report import chapter_wall_time  # noqa: E402

print(chapter_wall_time())
