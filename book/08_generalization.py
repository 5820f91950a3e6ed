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
# # Generalization bounds from Hessians
#
# The paper closes (section 4.4, Theorem 1, Figure 3) by asking how well a policy trained on some
# tasks does on tasks it never saw, and whether the sharpness of its loss — the trace of the
# Hessian — accounts for the gap. This chapter measures both on the CartPole family, from one
# initialisation $\theta^0$, for policies trained on one task, on a PolicyGradEx group and on all
# ten tasks.
#
# **The loss.** A policy $\theta$ (actor and critic) is rolled out with sampled actions; $\hat A_t$ is
# GAE from its own critic, as in PPO. With the sampling probabilities held fixed, its
# policy-gradient loss on a sample set is
#
# $$ L(\theta') = -\frac1n\sum_t \tilde A_t\,\frac{\pi_{\theta'}(a_t\mid s_t)}{\pi_\theta(a_t\mid s_t)}, \qquad \tilde A_t = \frac{\hat A_t-\mu_{\text{train}}}{\sigma_{\text{train}}}, $$
#
# evaluated at $\theta'=\theta$, where it equals $-\operatorname{mean}_t\tilde A_t$. The advantages of
# *both* sample sets are standardised with the train set's mean and std (PPO standardises its
# advantages the same way), so losses are in units of the train advantages' std and compare
# across policies. One consequence: the train loss is 0 by construction, and the gap below is
# $(\mu_{\text{train}}-\mu_{\text{test}})/\sigma_{\text{train}}$ — positive when the policy's
# advantages on the unseen tasks fall short of those on its own tasks.
#
# * **train samples**: the source tasks the policy was trained on; **test samples**: unseen target
#   tasks (pole lengths from a wider range, no task one-hot);
# * **generalization error** $= L_{\text{test}}-L_{\text{train}}$;
# * **Hessian**: $H=\nabla^2_{\theta'}L_{\text{train}}$ at $\theta'=\theta$, over the actor's
#   9.4k parameters, touched only through Hessian-vector products (`pgx.hessian`); its truncated
#   trace $\operatorname{tr}H^+$ (negative eigenvalues set to 0) by stochastic Lanczos quadrature;
# * **bound** (Theorem 1, in the form the authors' code evaluates, `pgx.hessian.generalization_bound`):
#
# $$ \text{bound} = C\,\sqrt{\frac{\operatorname{tr}H^+\;\|\theta-\theta^0\|^2}{n}}, $$
#
# with $C$ the range (max − min) of the per-sample train losses $-\tilde A_t$ and $n$ the number of
# train samples. The bound is **non-vacuous** when it is at least the observed error (it holds)
# and below $C$ (a bound of $C$ or more says nothing about a loss whose range is $C$).
#
# Every run trains for the same number of PPO iterations, each with the same steps per task, as
# in the paper's setup. The PolicyGradEx group is the **largest** group of the $k=3$ SDP grouping of
# the first-order affinity ({doc}`05_grouping`), and the single task is that group's first task,
# so the three training sets are nested. The computation lives in `pgx.generalization`; the
# cached stage `pgx.stages.generalization` runs it.

# %%
import os
from dataclasses import asdict

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.ticker import NullFormatter, ScalarFormatter
from scipy.stats import spearmanr

from pgx import stages
from pgx.envs import make_family
from pgx.profiles import get_profile

sns.set_theme()
profile = get_profile()
SEED = int(os.environ.get("PGX_SEED", "0"))
family = make_family("cartpole")
cfg = profile.generalization
print(f"profile: {profile.name}   seed: {SEED}   k = {profile.num_groups}")
budgets = {**profile.budgets(), **{f"gen. {k}": v for k, v in asdict(cfg).items() if k != "ppo"},
           "gen. PPO (lr, envs/task, steps/env)": (cfg.ppo.learning_rate, cfg.ppo.envs_per_task, cfg.ppo.num_steps)}
pd.Series({name: str(value) for name, value in budgets.items()}, name="value").to_frame()

# %%
result = stages.generalization("cartpole", profile, SEED)
lengths = [f"{p:g}" for p in family.source_params]
print(f"PolicyGradEx group (largest of k = {profile.num_groups}): tasks {list(result.group)}, "
      f"half pole lengths {[lengths[i] for i in result.group]} m; single task: {list(result.single_task)}")
print(f"stage wall time: {result.wall_time:.0f} s")
by_tasks = pd.DataFrame(result.by_tasks)
dynamics = pd.DataFrame(result.dynamics)
for frame in (by_tasks, dynamics):
    frame["|error|"] = frame["generalization_error"].abs()
    frame["bound / |error|"] = frame["bound"] / frame["|error|"]
columns = ["train_loss", "test_loss", "generalization_error", "trace", "trace_std_error", "distance_sq",
           "loss_range", "num_train_samples", "bound", "bound / |error|", "bound holds", "bound < C", "non-vacuous"]
by_tasks[["setting", "num_tasks", "mean return", *columns]].round(4)

# %% [markdown]
# ## Figure 3
#
# (a) The all-task run, measured at evenly spaced iterations (actor and critic of the same
# moment, fresh rollouts each time). (b) The final policies of the three training sets.

# %%
rho_dyn = spearmanr(dynamics["trace"], dynamics["|error|"]).statistic if len(dynamics) > 2 else float("nan")
holds_dyn = int(dynamics["bound holds"].sum())
tasks_sorted = by_tasks.sort_values("num_tasks")
falls = {name: bool(np.all(np.diff(tasks_sorted[name]) < 0)) for name in ("|error|", "trace", "bound")}

fig, axes = plt.subplots(1, 2, figsize=(14, 5))
for ax, frame, x, xlabel in [(axes[0], dynamics, "steps", "environment steps (all 10 tasks)"),
                             (axes[1], tasks_sorted, "num_tasks", "number of training tasks")]:
    ax.plot(frame[x], frame["generalization_error"], "o-", label="generalization error $L_{test}-L_{train}$")
    ax.plot(frame[x], frame["bound"], "s--", label="bound (Theorem 1)")
    ax.axhline(0, color="0.6", lw=0.8)
    ax.set(xlabel=xlabel, ylabel="loss (train-advantage std units)")
    twin = ax.twinx()
    twin.plot(frame[x], frame["trace"], "^:", color="C2", label=r"tr $H^+$ (right axis)")
    twin.set_ylabel(r"tr $H^+$ (loss units / parameter$^2$)")
    twin.grid(False)
    lines = ax.get_legend_handles_labels()[0] + twin.get_legend_handles_labels()[0]
    ax.legend(lines, [line.get_label() for line in lines], fontsize=8, ncol=3, loc="upper center",
              bbox_to_anchor=(0.5, -0.2))
for _, row in tasks_sorted.iterrows():
    axes[1].annotate(row["setting"], (row["num_tasks"], row["bound"]), textcoords="offset points", xytext=(4, 6), fontsize=8)
axes[0].set_title(f"(a) bound ≥ error at {holds_dyn}/{len(dynamics)} snapshots; "
                  f"Spearman(tr H⁺, |error|) = {rho_dyn:.2f}", fontsize=10)
axes[1].set_title("(b) " + ("|error| and tr H⁺ both fall with more tasks" if falls["|error|"] and falls["trace"]
                            else f"|error| {'falls' if falls['|error|'] else 'does not fall'}, tr H⁺ "
                                 f"{'falls' if falls['trace'] else 'does not fall'} with more tasks"), fontsize=10)
fig.suptitle(f"Generalization error and the Hessian bound on CartPole ({profile.name}, seed {SEED})")
fig.tight_layout()

# %%
dynamics[["iteration", "steps", *columns]].round(4)

# %%
everything = pd.concat([dynamics.assign(where="dynamics"), by_tasks.assign(where="by tasks")])
sign = "positive" if (everything["generalization_error"] > 0).all() else (
    "negative" if (everything["generalization_error"] < 0).all() else "of both signs")
print(f"Observed generalization errors are {sign}: {everything['generalization_error'].min():.3f} to "
      f"{everything['generalization_error'].max():.3f} (train-advantage std units).")
print(f"Bound holds (≥ error) in {int(everything['bound holds'].sum())}/{len(everything)} measurements, "
      f"also ≥ |error| in {int((everything['bound'] >= everything['|error|']).sum())}/{len(everything)}; "
      f"below the loss range C in {int(everything['bound < C'].sum())}/{len(everything)}; "
      f"non-vacuous in {int(everything['non-vacuous'].sum())}/{len(everything)}.")
for _, row in by_tasks.iterrows():
    print(f"  {row['setting']:>18}: error {row['generalization_error']:+.3f}, tr H⁺ {row['trace']:.2f}, "
          f"bound {row['bound']:.3f} vs C = {row['loss_range']:.2f} (n = {row['num_train_samples']}): "
          f"{'non-vacuous' if row['non-vacuous'] else 'vacuous'}")

# %% [markdown]
# The bound grows with the distance $\|\theta-\theta^0\|^2$ travelled and shrinks as $1/\sqrt n$;
# a single task has a tenth of the train samples of all tasks (same steps per task), which
# alone costs it a factor $\sqrt{10}$.
#
# ## Hutch++ against Hutchinson
#
# Section 4.4 uses Hutch++ as the faster estimator. On the train-loss Hessian of the final
# all-task policy, both estimators of $\operatorname{tr}H$ (untruncated: both are unbiased for it)
# are run with several seeds at equal budgets of Hessian-vector products. An exact Hessian of the
# 9.4k-parameter actor would take 9.4k products and 700 MB, so the reference is Hutchinson with
# many probes (`reference_matvecs`, seeds disjoint from the compared runs); its own standard
# error is printed next to the errors it scores. Since both estimators are unbiased, their
# spread over seeds is their error; the RMSE against the reference adds the reference's noise.

# %%
est = result.estimators
trace_plus = by_tasks.set_index("setting").loc["all tasks", "trace"]
print(f"reference tr H = {est.reference:.3f} ± {est.reference_std_error:.3f} ({est.reference_matvecs} Hutchinson probes); "
      f"λ_max = {est.top_eigenvalue:.3f}, λ_min = {est.bottom_eigenvalue:.3f}; tr H⁺ = {trace_plus:.2f}, so at least "
      f"{trace_plus / est.top_eigenvalue:.0f} positive eigenvalues' worth of λ_max")
comparison = pd.DataFrame(est.rows)
ratio = comparison.pivot(index="matvecs", columns="estimator", values="std")
ratio["Hutch++ / Hutchinson error"] = ratio["Hutch++"] / ratio["Hutchinson"]
wins = list(ratio.index[ratio["Hutch++ / Hutchinson error"] < 1])
finding = ("Hutch++ beats Hutchinson at every budget" if len(wins) == len(ratio) else
           f"Hutch++ beats Hutchinson only at {', '.join(map(str, wins))} matvecs" if wins else
           "Hutch++ does not beat Hutchinson at these budgets")
fig, ax = plt.subplots(figsize=(7, 4.5))
sns.lineplot(data=comparison, x="matvecs", y="std", hue="estimator", marker="o", ax=ax)
ax.axhline(est.reference_std_error, color="0.5", ls="--", lw=1, label="reference's own std error")
ax.set(xscale="log", ylim=(0, None), xlabel="Hessian-vector products per estimate",
       ylabel="error: std over seeds of the tr H estimate",
       title=f"{finding} ({profile.name}, {cfg.estimator_seeds} seeds)")
ax.set_xticks(list(cfg.estimator_budgets))
ax.xaxis.set_major_formatter(ScalarFormatter())
ax.xaxis.set_minor_formatter(NullFormatter())
ax.legend()
pd.concat([comparison.set_index(["matvecs", "estimator"]).unstack()[["std", "rmse"]].round(4),
           ratio[["Hutch++ / Hutchinson error"]].round(2)], axis=1)

# %% [markdown]
# Hutch++ spends two thirds of its budget finding the top eigen-directions of $H$ (the sketch
# $HS$, then $HQ$) and counts them exactly; it wins when a few eigenvalues carry most of
# $\|H\|_F$, and loses to Hutchinson when the spectrum is spread over many more directions than
# its sketch has columns, since only a third of its budget is left for the remainder. $\lambda_{\max}$
# and $\lambda_{\min}$ against $\operatorname{tr}H^+$ above say which case this is: $\operatorname{tr}H^+/\lambda_{\max}$ is a
# lower bound on the number of positive eigen-directions it takes to make up the trace.
#
# ## Compared with the paper
#
# Figure 3's numbers are lost in our copy of the paper; its claims are qualitative. Each is checked
# below on the measured numbers. "Comparable in scale" is read as: the Hessian measure in loss
# units (the bound) is within a factor of 10 of the observed |error| (the raw trace is in other
# units, loss per parameter², and is not compared with a loss). "A similar trend" is read as a
# positive Spearman correlation of tr $H^+$ and |error| over the snapshots of (a).

# %%
scale = everything["bound / |error|"]
comparable = bool(((scale >= 0.1) & (scale <= 10)).all())
claims = pd.DataFrame([
    {"claim (paper)": "the Hessian measure is comparable in scale to the observed errors (Fig. 3)",
     "this build": f"bound / |error| from {scale.min():.2g} to {scale.max():.2g}",
     "holds here": comparable},
    {"claim (paper)": "gen. error and Hessian trace follow a similar trend during training (Fig. 3a)",
     "this build": f"Spearman(tr H⁺, |error|) = {rho_dyn:.2f} over {len(dynamics)} snapshots",
     "holds here": bool(rho_dyn > 0)},
    {"claim (paper)": "control tasks: gen. error decreases with more training tasks (Fig. 3b)",
     "this build": " → ".join(f"{v:.3f}" for v in tasks_sorted["|error|"]) + " (|error| at 1, |G|, 10 tasks)",
     "holds here": falls["|error|"]},
    {"claim (paper)": "control tasks: Hessian trace decreases with more training tasks (Fig. 3b)",
     "this build": " → ".join(f"{v:.2f}" for v in tasks_sorted["trace"]) + " (tr H⁺ at 1, |G|, 10 tasks)",
     "holds here": falls["trace"]},
    {"claim (paper)": "the bounds are non-vacuous (abstract, section 5)",
     "this build": f"non-vacuous in {int(everything['non-vacuous'].sum())}/{len(everything)} measurements",
     "holds here": bool(everything["non-vacuous"].all())},
    {"claim (paper)": "Hutch++ is the faster estimator (section 4.4)",
     "this build": "Hutch++/Hutchinson error " + ", ".join(f"{r:.2f} at {m}" for m, r in ratio["Hutch++ / Hutchinson error"].items()),
     "holds here": bool((ratio["Hutch++ / Hutchinson error"] < 1).all())},
])
pd.set_option("display.max_colwidth", 120)
claims

# %% [markdown]
# | | paper (Figure 3) | this build |
# |---|---|---|
# | environments | Meta-World MT10 and the control environments | CartPole (the other families come later) |
# | training sets | 1 task, a PolicyGradEx group, all 10 tasks | the same; the group is the largest SDP group, the single task its first |
# | loss | policy-gradient loss on target tasks vs training tasks | ratio form at θ, GAE advantages standardised with the train statistics |
# | trace | Hutchinson / Hutch++ | tr H⁺ by stochastic Lanczos quadrature (the bound needs the truncated trace); Hutch++ vs Hutchinson on tr H above |
# | bound | Theorem 1 | the authors' code's form $C\sqrt{\operatorname{tr}H^+\,\lVert\theta-\theta^0\rVert^2/n}$, without the $\xi$ and $\log(1/\delta)$ terms |
# | numbers | lost in our copy | printed above; the verdicts are in the table before this one |
#
# Caveats. The sign and size of the error depend on the critic: on unseen tasks (and with no task
# one-hot) GAE uses the critic's extrapolated values, so $L_{\text{test}}$ mixes how well the policy
# acts with how well its critic predicts. The bound is stated for a test set drawn from the
# training distribution, while the target tasks are a shifted one; it is evaluated here as the
# paper does, beside the observed target-task gap. One seed and one initialisation are measured.
