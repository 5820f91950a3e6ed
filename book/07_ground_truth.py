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
# The paper's central question: do the groups the surrogate finds match the groups that real
# fine-tuning would give, and how much cheaper is it? An answer needs a ground truth that agrees
# with itself first. This chapter builds one, measures how far it can be trusted, and only then
# judges the estimate — and three other estimators — against it.
#
# **The online truth.** For the *same* random subsets the surrogate used,
# `pgx.stages.ground_truth` fine-tunes $\theta^\star$ with PPO on each subset, $r$ times
# (`truth_replicates`). Replicate $j$ of *every* subset runs with the same seed (common random
# numbers), so two subsets differ by their tasks, not by the luck of their seeds. Each fine-tuned
# policy is scored per task two ways, on held-out data the surrogate never fitted on:
#
# * **objective**: PPO's objective $\operatorname{mean}_t \hat A_t\,\pi_{\theta_S}(a_t\mid s_t)/\pi_{\theta^\star}(a_t\mid s_t)$
#   with the *exact* ratio on a second rollout of $\theta^\star$ — the quantity whose
#   linearisation the first-order route estimates;
# * **return**: the episodic return (sampled actions, from the same base seed for every subset) —
#   the paper's ground truth ("task-affinity scores derived from rewards obtained by training
#   policies on different task subsets").
#
# The truth is the mean over replicates. **Its reliability** (the noise ceiling): the replicates
# split into two halves, each half gives a truth, and the two are compared — the NMI of their $k$
# groups, the correlation of their off-diagonal affinities, the per-task Spearman correlation of
# their subset scores. The full $r$-replicate truth is more reliable than a half, as the
# Spearman–Brown formula projects for the correlations; for the groups there is no such formula,
# and a bootstrap over replicates only says how stable they are (optimistically: each resample
# shares most replicates with the full truth). Note the two sides of the comparison below: the
# estimate is judged against the full truth, the ceiling is half against half, so the ceiling is
# conservative. One caveat is the other way: every replicate's *objective* is read on the same
# held-out rollout of $\theta^\star$, so the noise of that one rollout is shared by both halves and
# the objective truth's split-half numbers do not include it. The return truth has no such shared
# part beyond its fixed evaluation seeds.
#
# **The offline exact truth.** Algorithm 1 with nothing approximated: each subset's logistic
# problem is solved with the real network's log-ratios $\log\pi_{\theta^\star+Pv}-\log\pi_{\theta^\star}$
# instead of $\tilde g^\top v$ (same samples, same $\lambda$, same step size — the sphere
# $\|\Delta\theta\|=\delta\|\theta^\star\|$), then scored like the online truth. It is
# deterministic: the surrogate's distance to it is the first-order error alone, and its distance
# to the online truth is what offline optimisation cannot see of real fine-tuning, RL noise included.
#
# **The estimators judged.** The surrogate's first-order route and its plug-in route
# (θ*+Δθ loaded into the network and rolled out, in two independent halves of episodes so its own
# noise is measured too), the offline exact truth, gradient similarity (tasks grouped by the
# cosine of their policy gradients at θ*, the usual baseline; computed from the same per-task
# centred advantages as the surrogate, see {doc}`04_affinity`), random groups, and the
# first-order route with the authors' group's step: eq. (4) solved with $\lambda$ alone and that
# $v$ rescaled to the distance, instead of the best step on the sphere of that distance (the
# trust region pgx uses by default; see {doc}`04_affinity`). Everything is repeated for each
# validation seed, meta-training included, and for every family of the build (the ablations and
# the cost by depth, at the end, use the first seed only).

# %%
from dataclasses import replace

from IPython.display import display

import numpy as np
import pandas as pd
from matplotlib.ticker import NullFormatter, ScalarFormatter

from pgx import stages
from pgx.envs import make_family
from pgx.plots import heatmap, small_multiples
from pgx.profiles import get_profile
from pgx.truth.reliability import spearman_brown, split_half_reliability
from pgx.report import (
    book_families,
    budgets_table,
    clearly_above,
    mean_std,
    reliability_rows,
    reliability_verdict,
    replicates_needed,
    show_warnings,
    verdict_rows,
    versus,
)
from pgx.truth.structure import STRUCTURE_Z
from pgx.truth.validation import error_vs_num_subsets, k_ablation

show_warnings()  # warnings that matter (solvers, NaNs) print on the page; stderr is dropped

profile = get_profile()
FAMILIES = book_families()
print(f"profile: {profile.name}   families: {', '.join(FAMILIES)}")
budgets_table(profile, FAMILIES)

# %%
# Every family at every validation seed: independent calls, computed over the cores.
CASES = [(spec, seed) for spec in FAMILIES for seed in profile.for_family(spec).validation_seeds]
verdicts = dict(zip(CASES, stages.compute_many(stages.verdicts.call(spec, profile, seed) for spec, seed in CASES)))
truths = dict(zip(CASES, stages.compute_many(stages.ground_truth.call(spec, profile, seed) for spec, seed in CASES)))
per_seed = verdict_rows(verdicts)
reliability = reliability_rows(verdicts)
return_reliability = reliability_rows(verdicts, "return truth reliability")
FIRST, PLUG_IN, EXACT, SIMILARITY, RANDOM, RESCALED = stages.ESTIMATORS


def over_seeds(spec: str, estimator: str, column: str) -> pd.Series:
    """One metric of one estimator on one family, one value per validation seed."""
    return per_seed.xs((spec, estimator), level=("family", "estimator"))[column]


# %% [markdown]
# ## How far can the truth be trusted?
#
# Split-half reliability of the objective truth, per family (mean ± standard deviation over the
# validation seeds), and the split-half NMI of the return truth. A family whose truth does not
# agree with itself cannot validate any grouping, however good.

# %%
rel_table = {}
for spec in FAMILIES:
    frame = reliability.loc[spec]
    returns = return_reliability.loc[spec]
    rel_table[spec] = {
        "replicates r": int(frame["replicates r"].iloc[0]),
        "split-half NMI (objective)": mean_std(frame["split-half NMI"]),
        "split-half off-diagonal r": mean_std(frame["split-half off-diagonal r"]),
        "split-half Spearman ρ": mean_std(frame["split-half Spearman ρ"]),
        "full-r off-diagonal r (Spearman–Brown)": mean_std(frame["full-r off-diagonal r (Spearman–Brown)"]),
        "full-r group stability (bootstrap, optimistic)": mean_std(frame["full-r group stability (bootstrap, optimistic)"]),
        "split-half NMI (return)": mean_std(returns["split-half NMI"]),
        "full-r off-diagonal r (return, Spearman–Brown)": mean_std(returns["full-r off-diagonal r (Spearman–Brown)"]),
        "fine-tuning s per seed (all r, one core)": mean_std(
            [truths[spec, s].finetune_time * truths[spec, s].replicates for s in profile.for_family(spec).validation_seeds]),
    }
pd.DataFrame(rel_table).T

# %%
VERDICT = {spec: reliability_verdict(reliability.loc[spec]["split-half NMI"],
                                     reliability.loc[spec]["full-r off-diagonal r (Spearman–Brown)"])
           for spec in FAMILIES}
RETURN_VERDICT = {spec: reliability_verdict(return_reliability.loc[spec]["split-half NMI"],
                                            return_reliability.loc[spec]["full-r off-diagonal r (Spearman–Brown)"])
                  for spec in FAMILIES}
for spec in FAMILIES:
    print(f"{spec:>12}: the objective truth is {VERDICT[spec]}")
    print(f"{'':>12}  the return truth is {RETURN_VERDICT[spec]}")

# %% [markdown]
# ## Is there anything to find?
#
# A truth can reproduce and still hold no groups worth finding. So before any estimator is judged,
# the truth is asked on its own (`pgx.truth.structure`): its replicates are split in halves, the
# tasks are grouped by one half's affinity (the SDP, as PolicyGradEx groups its estimate — an
# *oracle* that sees real fine-tuning), and that grouping's average within-group affinity is
# measured on the *other* half, against random groupings measured there too. The margin, in units
# of the random groupings' spread, is a $z$ per split (mean ± standard deviation over the
# validation seeds below). A seed counts as having structure above noise when its median split
# has $z \ge 2$ and no split has $z \le 0$; where a family has none, no grouping method can be
# shown better than random groups on it at this budget, and an estimator at chance there says
# nothing about the estimator.

# %%
STRUCTURE = {}
structure_table = {}
for spec in FAMILIES:
    seeds = profile.for_family(spec).validation_seeds
    for kind, key in (("objective", "truth structure"), ("return", "return truth structure")):
        frame = pd.DataFrame([verdicts[spec, s][key] for s in seeds])
        structure_table[spec, kind] = {
            "oracle gain z (held out)": mean_std(frame["oracle gain z"]),
            "z spread over splits": mean_std(frame["oracle gain z std"]),
            "lowest split's z": mean_std(frame["oracle gain z min"]),
            "oracle beats random (fraction)": mean_std(frame["oracle beats random (fraction)"]),
            "seeds with structure above noise": f"{int(frame['group structure above noise'].sum())} of {len(seeds)}",
        }
        STRUCTURE[spec, kind] = bool(frame["group structure above noise"].mean() > 0.5)
pd.DataFrame(structure_table).T

# %%
for spec in FAMILIES:
    for kind in ("objective", "return"):
        found = ("has group structure above noise" if STRUCTURE[spec, kind] else
                 "has no group structure above noise at this budget: no grouping can be shown better than random here")
        print(f"{spec:>12}: the {kind} truth {found}")

# %% [markdown]
# ### A natural family with groups: CartPole with reversed motors
#
# Where the paper's families show no structure above noise, a null verdict on an estimator says
# nothing. So the same questions are put to a family built to have groups without planting them in
# any reward: `cartpole:actuators=mixed` — five pole lengths over CartPole's range, each once with
# the cart's motor as built and once wired in reverse (a push "left" moves the cart right). The
# tasks are plain CartPole physics and the task is hidden from the policy; no single policy can
# serve both regimes, so subsets compete over them. The regimes are known (`planted_groups`), so
# every grouping is also scored against them, with $k = 2$ groups, one per regime. It runs with
# CartPole's budgets, at the validation seeds.

# %%
NATURAL = "cartpole:actuators=mixed"
natural_profile = replace(profile.for_family(NATURAL), num_groups=2)
# A one-family build that leaves CartPole out leaves this out too (it costs what CartPole's truth does).
RUN_NATURAL = "cartpole" in {spec.partition(":")[0] for spec in FAMILIES}
natural_seeds = natural_profile.validation_seeds if RUN_NATURAL else ()
natural = dict(zip(natural_seeds, stages.compute_many(stages.verdicts.call(NATURAL, natural_profile, seed)
                                                      for seed in natural_seeds)))
natural_rows = verdict_rows({(NATURAL, seed): v for seed, v in natural.items()}).xs(NATURAL, level="family") \
    if RUN_NATURAL else None


def natural_tables() -> tuple[pd.DataFrame, pd.DataFrame]:
    """The natural family's truths (structure, reliability) and its groupings against them and the regimes."""
    truth_table, grouping_table = {}, {}
    for kind, key, reliability_key in (("objective", "truth structure", "truth reliability"),
                                       ("return", "return truth structure", "return truth reliability")):
        gain = pd.DataFrame([natural[s][key] for s in natural_seeds])
        halves = pd.DataFrame([natural[s][reliability_key] for s in natural_seeds])
        truth_table[f"{kind} truth"] = {
            "oracle gain z (held out)": mean_std(gain["oracle gain z"]),
            "seeds with structure above noise": f"{int(gain['group structure above noise'].sum())} of {len(gain)}",
            "structure above noise": bool(gain["group structure above noise"].mean() > 0.5),
            "split-half NMI": mean_std(halves["split-half NMI"])}
    for name in (FIRST, SIMILARITY, RANDOM):
        by_seed = natural_rows.xs(name, level="estimator")
        grouping_table[name] = {"NMI vs objective truth": mean_std(by_seed["NMI vs truth"]),
                                "NMI vs return truth": mean_std(by_seed["NMI vs return truth"]),
                                "NMI vs the regimes": mean_std(by_seed["NMI vs planted groups"])}
    return pd.DataFrame(truth_table).T, pd.DataFrame(grouping_table).T


if RUN_NATURAL:
    print(f"{NATURAL}: profile {profile.name}, k = {natural_profile.num_groups}, seeds {list(natural_seeds)}, "
          f"r = {natural_profile.truth_replicates}; mean ± std over seeds")
    natural_truths, natural_groupings = natural_tables()
    display(natural_truths)
    display(natural_groupings)
else:
    print(f"this build's families ({', '.join(FAMILIES)}) leave CartPole out, and with it {NATURAL}")

# %%
if RUN_NATURAL:
    for kind, found in natural_truths["structure above noise"].items():
        print(f"{NATURAL}: the {kind} {'has' if found else 'has no'} group structure above noise")
    regimes = {name: natural_rows.xs(name, level="estimator")["NMI vs planted groups"]
               for name in (FIRST, SIMILARITY, RANDOM)}
    print(f"{NATURAL}: first-order groups against the regimes: NMI {regimes[FIRST].mean():.2f} — "
          f"{versus(regimes[FIRST], regimes[RANDOM], 'above', 'below')} random groups ({regimes[RANDOM].mean():.2f}); "
          f"gradient similarity {regimes[SIMILARITY].mean():.2f}")

# %% [markdown]
# What did it take? Every replicate keeps snapshots of its weights along fine-tuning, so the same
# runs say how reliable the truth would have been had fine-tuning stopped earlier (split halves,
# mean over seeds); the line under the figure says where each family's truth was most reliable.

# %%
fig, axes = small_multiples(len(FAMILIES), panel=(5.2, 3.6))
best_steps = {}
for spec, ax in zip(FAMILIES, axes):
    rows = pd.DataFrame([row | {"seed": seed} for (f, seed), truth in truths.items() if f == spec
                         for row in truth.reliability_by_steps])
    by_steps = rows.groupby("steps")[["split-half NMI", "split-half off-diagonal r", "split-half Spearman ρ"]].mean()
    by_steps.plot(ax=ax, marker="o")
    best_steps[spec] = (int(by_steps["split-half NMI"].idxmax()), float(by_steps["split-half NMI"].max()))
    ax.set(xscale="log", xlabel="fine-tuning steps per subset", ylabel="agreement between halves", ylim=(-0.3, 1.05))
    ax.set_title(f"{spec}: truth reliability vs fine-tuning", fontsize=10)
    ax.legend(fontsize=7)
fig.suptitle(f"Split-half reliability of the objective truth along fine-tuning ({profile.name})")
fig.tight_layout()
for spec, (steps, nmi) in best_steps.items():
    print(f"{spec:>12}: split-half NMI is highest ({nmi:.2f}) at {steps} fine-tuning steps; "
          f"the profile fine-tunes {profile.for_family(spec).finetune_ppo.total_timesteps} steps")

# %% [markdown]
# And how many replicates? The same runs answer for fewer of them: halves of $h = 1, \dots, r/2$
# replicates (the first $2h$) compared as above, for both truths. For correlations the
# Spearman–Brown formula projects further: if two halves of $H$ replicates agree at $\rho_H$, two
# halves of $h$ agree at $(h/H)\rho_H/(1+(h/H-1)\rho_H)$ (dotted, from the largest halves
# measured). For groups there is no formula, so one family is probed: among the families whose
# objective truth is not reliable in this build, the one whose probe costs least (chosen and
# printed below) runs its first seed's truth again with twice the profile's replicates
# (common random numbers: its first $r$ replicates are the book's), to see whether the groups'
# agreement climbs with the affinities'.

# %%
PROBE_FACTOR = 2
unreliable = [spec for spec in FAMILIES if not VERDICT[spec].startswith("reliable")]
probe_cost = {spec: PROBE_FACTOR * profile.for_family(spec).truth_replicates
              * truths[spec, profile.for_family(spec).validation_seeds[0]].finetune_time for spec in unreliable}
probes = {}
if probe_cost:
    PROBE = min(probe_cost, key=probe_cost.get)
    budgets = profile.for_family(PROBE)
    print(f"probe: {PROBE}, seed {budgets.validation_seeds[0]}, r = {PROBE_FACTOR * budgets.truth_replicates} — about "
          f"{probe_cost[PROBE] / 60:.0f} core-minutes of fine-tuning (the others would cost: "
          + (", ".join(f"{s} {c / 60:.0f}" for s, c in probe_cost.items() if s != PROBE) or "none") + ")")
    probes[PROBE] = stages.ground_truth(PROBE, replace(budgets, truth_replicates=PROBE_FACTOR * budgets.truth_replicates),
                                        budgets.validation_seeds[0])
else:
    print("every family's objective truth is reliable in this build: no probe")


def by_replicates(spec: str, seed: int, truth) -> list[dict]:
    """Split-half agreement of the truth built from the first 2h replicates, h = 1 … r/2."""
    rows = []
    for kind, values in (("objective", truth.replicate_objective), ("return", truth.replicate_returns)):
        for half in range(1, truth.replicates // 2 + 1):
            rel = split_half_reliability(truth.subsets, values[: 2 * half], values.shape[2],
                                         profile.for_family(spec).num_groups, seed=seed, bootstrap=0)
            rows.append({"family": spec, "seed": seed, "truth": kind, "replicates per half": half,
                         "split-half NMI": rel.nmi, "split-half off-diagonal r": rel.offdiagonal})
    return rows


def replicate_means(frame: pd.DataFrame, spec: str, kind: str = "objective") -> pd.DataFrame:
    """One truth's agreement by replicates per half, mean over the seeds in ``frame``."""
    rows = frame[(frame["family"] == spec) & (frame["truth"] == kind)]
    return rows.groupby("replicates per half")[["split-half NMI", "split-half off-diagonal r"]].mean()


replicate_curve = pd.DataFrame([row for (spec, seed), truth in truths.items() for row in by_replicates(spec, seed, truth)])
probe_curve = pd.DataFrame([row for spec, truth in probes.items()
                            for row in by_replicates(spec, profile.for_family(spec).validation_seeds[0], truth)])
fig, axes = small_multiples(len(FAMILIES), panel=(5.2, 3.6))
for spec, ax in zip(FAMILIES, axes):
    for c, kind in enumerate(("objective", "return")):
        curve = replicate_means(replicate_curve, spec, kind)
        ax.plot(curve.index, curve["split-half NMI"], "o-", color=f"C{c}", label=f"{kind}: NMI")
        ax.plot(curve.index, curve["split-half off-diagonal r"], "s--", color=f"C{c}", label=f"{kind}: off-diagonal r")
    if spec in probes:
        probe = replicate_means(probe_curve, spec)
        label = f"{PROBE_FACTOR}r probe, seed {profile.for_family(spec).validation_seeds[0]}"
        ax.plot(probe.index, probe["split-half NMI"], "^-", color="C3", label=f"objective: NMI, {label}")
        ax.plot(probe.index, probe["split-half off-diagonal r"], "v--", color="C3", label=f"objective: r, {label}")
    objective = replicate_means(replicate_curve, spec)
    largest = int(objective.index.max())
    halves = np.arange(1, PROBE_FACTOR * largest + 1)
    ax.plot(halves, [spearman_brown(objective.loc[largest, "split-half off-diagonal r"], h / largest) for h in halves],
            ":", color="grey",
            label="objective r, Spearman–Brown")
    ax.set(xlabel="replicates per half", ylabel="agreement between halves", ylim=(-0.3, 1.05))
    ax.set_title(f"{spec}: truth reliability vs replicates", fontsize=10)
    ax.legend(fontsize=6)
fig.suptitle(f"Split-half reliability as replicates are added ({profile.name}; mean over seeds)")
fig.tight_layout()

# %% [markdown]
# What would a truth whose affinities reproduce cost? By the projection from the largest halves
# measured: the replicates $R$ in one truth at which its off-diagonal affinities would reach the
# verdict's 0.8 (Spearman–Brown; rounded up to an even number, so that it still splits in halves),
# and the fine-tuning that takes on one core per seed. This says nothing of the groups; the probe
# does.

# %%
PROJECTED_R = {}  # family -> replicates projected for split-half affinities of 0.8 (None: no projection)
for spec in FAMILIES:
    PROJECTED_R[spec] = None
    curve = replicate_means(replicate_curve, spec)
    half = int(curve.index.max())
    rho = curve.loc[half, "split-half off-diagonal r"]
    measured = f"halves of {half} replicate{'s' if half > 1 else ''} agree at r = {rho:.2f}"
    needed = replicates_needed(rho, 0.8, measured_with=half)
    if np.isnan(needed):
        print(f"{spec:>12}: the halves' off-diagonal correlation is undefined (constant affinities): no projection")
        continue
    if not np.isfinite(needed):
        print(f"{spec:>12}: {measured}: no number of replicates projects to 0.8")
        continue
    needed = PROJECTED_R[spec] = max(2, 2 * int(np.ceil(needed / 2)))
    seconds = np.mean([truths[spec, s].finetune_time for s in profile.for_family(spec).validation_seeds])
    r = profile.for_family(spec).truth_replicates
    print(f"{spec:>12}: {measured}; a truth reaching 0.8 needs R = {needed} replicates (the profile runs {r}): "
          f"{needed * seconds / 3600:.2g} core-hours of fine-tuning per seed ({'within' if needed <= r else 'beyond'} "
          f"this profile's budget)")
for spec, truth in probes.items():
    probe, seed0 = replicate_means(probe_curve, spec), profile.for_family(spec).validation_seeds[0]
    base = truths[spec, seed0]
    same = np.allclose(truth.replicate_objective[: base.replicates], base.replicate_objective, equal_nan=True)
    print(f"{spec:>12} probe (r = {truth.replicates}, seed {seed0}; its first {base.replicates} replicates equal the "
          f"book's: {same}):")
    print(probe.round(2).to_string())
    nmi, r = probe["split-half NMI"], probe["split-half off-diagonal r"]
    print(f"{'':>12} verdict: from halves of {nmi.index[0]} to {nmi.index[-1]} replicates the halves' affinities go from "
          f"r = {r.iloc[0]:.2f} to {r.iloc[-1]:.2f} and their groups from NMI {nmi.iloc[0]:.2f} to {nmi.iloc[-1]:.2f} — "
          f"{'reliable (≥ 0.8)' if nmi.iloc[-1] >= 0.8 else 'still below the 0.8 a reliable truth needs'}")

# %% [markdown]
# ## Budget curves: reliability, structure and agreement as replicates are added
#
# The same replicates answer for every smaller budget: the truth built from the first $j$ of them
# is what a run with $r = j$ would have given (`pgx.stages.budget_curves`). Per family, mean over
# the validation seeds, for the objective truth: its split-half NMI, the NMI of the first-order
# estimate's groups with the $j$-replicate truth, and the oracle gain's median-split $z$ (right axis;
# dashed: the bar for structure above noise). Where the estimate's agreement climbs with the
# truth's reliability, a larger budget would show more; where the truth becomes reliable and
# structured while the estimate stays at chance, the estimate misses real groups.

# %%
CURVES = dict(zip(CASES, stages.compute_many(stages.budget_curves.call(spec, profile, seed) for spec, seed in CASES)))
fig, axes = small_multiples(len(FAMILIES), panel=(5.2, 3.6))
curve_rows = {}
for spec, ax in zip(FAMILIES, axes):
    frame = pd.DataFrame([row | {"seed": seed} for (f, seed), curves in CURVES.items() if f == spec
                          for row in curves["objective"]])
    mean = frame.groupby("replicates")[["split-half NMI", "NMI(estimate, truth)", "oracle gain z (median split)"]].mean()
    ax.plot(mean.index, mean["split-half NMI"], "o-", label="truth: split-half NMI")
    ax.plot(mean.index, mean["NMI(estimate, truth)"], "s-", label="NMI(first-order, truth)")
    ax.set(xlabel="replicates j in the truth", ylabel="NMI", ylim=(-0.05, 1.05))
    twin = ax.twinx()
    twin.plot(mean.index, mean["oracle gain z (median split)"], "^:", color="C2", label="oracle gain z")
    twin.axhline(STRUCTURE_Z, color="C2", lw=0.8, ls="--")
    twin.set_ylabel("oracle gain z (median split)", color="C2")
    ax.set_title(f"{spec}: budget curves along the replicates", fontsize=10)
    ax.legend(fontsize=6, loc="upper left")
    first = frame[frame["replicates"] == frame["replicates"].min()]
    last = frame[frame["replicates"] == frame["replicates"].max()]
    reached = mean.index[mean["split-half NMI"] >= 0.8]
    curve_rows[spec] = {
        "replicates r": int(mean.index.max()),
        "truth split-half NMI ≥ 0.8 from j =": int(reached[0]) if len(reached) else f"not within r = {int(mean.index.max())}",
        "NMI(first-order, truth) at j = 2": mean_std(first["NMI(estimate, truth)"]),
        "NMI(first-order, truth) at j = r": mean_std(last["NMI(estimate, truth)"]),
        "agreement as replicates are added": versus(last["NMI(estimate, truth)"], first["NMI(estimate, truth)"],
                                                    "rises", "falls"),
        "structure above noise at j = r (seeds)": f"{int(last['structure above noise'].sum())} of {len(last)}",
    }
fig.suptitle(f"Objective truth and first-order estimate as the truth's replicates grow ({profile.name})")
fig.tight_layout()
pd.DataFrame(curve_rows).T

# %% [markdown]
# The same truths along their two other budgets, at no extra training: the objective truth had
# fine-tuning stopped at each snapshot its runs kept (all replicates), and the return truth
# measured with its first $e$ evaluation episodes (all replicates; each episode's seed is the same
# whatever the count). Per family, mean over the validation seeds: the truth's split-half NMI and
# the first-order estimate's NMI with that truth. A truth that grows more reliable with more
# fine-tuning, while the estimate does not follow, says that the first-order model describes the
# start of fine-tuning and the truth its later course; one that grows with episodes says the return
# truth is bound by its evaluation.

# %%
fig, axes = small_multiples(2 * len(FAMILIES), panel=(4.4, 3.2))
budget_rows = {}
for spec, (ax_steps, ax_episodes) in zip(FAMILIES, zip(axes[::2], axes[1::2])):
    row = {}
    for ax, curve, axis in ((ax_steps, "objective by steps", "steps"), (ax_episodes, "return by episodes", "episodes")):
        frame = pd.DataFrame([r | {"seed": seed} for (f, seed), curves in CURVES.items() if f == spec
                              for r in curves[curve]])
        mean = frame.groupby(axis)[["split-half NMI", "NMI(estimate, truth)"]].mean()
        ax.plot(mean.index, mean["split-half NMI"], "o-", label="truth: split-half NMI")
        ax.plot(mean.index, mean["NMI(estimate, truth)"], "s-", label="NMI(first-order, truth)")
        ax.set(xlabel=f"fine-tuning {axis}" if axis == "steps" else "evaluation episodes per task", ylabel="NMI",
               ylim=(-0.05, 1.05), title=f"{spec}: {curve.split(' by ')[0]} truth")
        if axis == "steps":
            ax.set_xscale("log", base=2)
        ax.legend(fontsize=6)
        first, last = (frame[frame[axis] == frame[axis].min()], frame[frame[axis] == frame[axis].max()])
        row[f"{curve}: budgets"] = f"{int(mean.index.min())} … {int(mean.index.max())}"
        row[f"{curve}: truth split-half NMI, least → most"] = (f"{mean_std(first['split-half NMI'])} → "
                                                             f"{mean_std(last['split-half NMI'])}")
        row[f"{curve}: NMI(first-order, truth), least → most"] = (f"{mean_std(first['NMI(estimate, truth)'])} → "
                                                                 f"{mean_std(last['NMI(estimate, truth)'])}")
        row[f"{curve}: truth reliability with the budget"] = versus(last["split-half NMI"], first["split-half NMI"],
                                                                    "rises", "falls")
    budget_rows[spec] = row
fig.suptitle(f"Budget curves along fine-tuning steps and evaluation episodes ({profile.name}; mean over seeds)")
fig.tight_layout()
pd.DataFrame(budget_rows).T

# %% [markdown]
# And along θ*'s own budget: θ* retrained with a fraction of its meta-training steps (each its own
# run, its learning rate annealed over its own budget), the first-order estimate recomputed at it,
# and its groups compared with the full-budget truth's — the truth stays the one fine-tuned from the
# full-budget θ*, since a truth per fraction would cost a ground truth each
# (`pgx.stages.theta_budget_curve`). Beside it, how far the groups have moved from the full-budget
# estimate's. Where the estimate agrees with the truth only at the full budget, a larger θ* budget
# may help; where it is at chance along the whole curve, θ*'s budget is not what holds it back.

# %%
THETA = dict(zip(CASES, stages.compute_many(stages.theta_budget_curve.call(spec, profile, seed) for spec, seed in CASES)))
fig, axes = small_multiples(len(FAMILIES), panel=(5.2, 3.6))
theta_rows = {}
for spec, ax in zip(FAMILIES, axes):
    frame = pd.DataFrame([row | {"seed": seed} for (f, seed), rows in THETA.items() if f == spec for row in rows])
    mean = frame.groupby("θ* fraction")[["NMI(estimate, truth)", "NMI(estimate, return truth)",
                                          "NMI(estimate, full-budget estimate)", "θ* mean return"]].mean()
    for column, marker in (("NMI(estimate, truth)", "s-"), ("NMI(estimate, return truth)", "d-"),
                           ("NMI(estimate, full-budget estimate)", "o:")):
        ax.plot(mean.index, mean[column], marker, label=column.replace("estimate", "first-order"))
    ax.set(xlabel="fraction of θ*'s meta-training steps", ylabel="NMI", ylim=(-0.05, 1.05),
           title=f"{spec}: along θ*'s budget")
    ax.legend(fontsize=6, loc="upper left")
    least, most = (frame[frame["θ* fraction"] == frame["θ* fraction"].min()],
                   frame[frame["θ* fraction"] == frame["θ* fraction"].max()])
    theta_rows[spec] = {
        "θ* steps, least → most": f"{int(least['θ* steps'].iloc[0]):,} → {int(most['θ* steps'].iloc[0]):,}",
        "θ* mean return, least → most": f"{mean_std(least['θ* mean return'])} → {mean_std(most['θ* mean return'])}",
        "NMI(first-order, truth), least → most": (f"{mean_std(least['NMI(estimate, truth)'])} → "
                                                  f"{mean_std(most['NMI(estimate, truth)'])}"),
        "NMI(first-order, return truth), least → most": (f"{mean_std(least['NMI(estimate, return truth)'])} → "
                                                         f"{mean_std(most['NMI(estimate, return truth)'])}"),
        "agreement with the truth as θ* trains": versus(most["NMI(estimate, truth)"], least["NMI(estimate, truth)"],
                                                        "rises", "falls"),
    }
fig.suptitle(f"First-order estimate along θ*'s meta-training budget, against the full-budget truth "
             f"({profile.name}; mean over seeds)")
fig.tight_layout()
pd.DataFrame(theta_rows).T

# %% [markdown]
# ## The estimate against the truth
#
# Each estimator's $k$ groups against those of the online truth (NMI), with the truth's own
# split-half NMI beside it: no estimate can be expected to agree with the truth much better than
# two halves of the truth agree with each other. Two tables: against the objective truth (the
# quantity the first-order route linearises) and against the return truth (the paper's). Relative
# error needs both sides in the same units, so it is given against the objective truth only. Mean
# ± standard deviation over the validation seeds.

# %%
TRUTHS = {"objective": ("NMI vs truth", VERDICT), "return": ("NMI vs return truth", RETURN_VERDICT)}


def estimator_table(kind: str) -> pd.DataFrame:
    column, _ = TRUTHS[kind]
    table = {}
    for spec in FAMILIES:
        rel = (reliability if kind == "objective" else return_reliability).loc[spec]
        row = {"truth split-half NMI": mean_std(rel["split-half NMI"]),
               "truth full-r off-diagonal r (Spearman–Brown)": mean_std(rel["full-r off-diagonal r (Spearman–Brown)"])}
        for estimator in stages.ESTIMATORS:
            if estimator in per_seed.loc[spec].index.get_level_values("estimator"):
                row[f"NMI: {estimator}"] = mean_std(over_seeds(spec, estimator, column))
        suffix = column.removeprefix("NMI ")
        if kind == "objective":
            row["relative error ‖T̂−T‖/‖T‖ (first-order)"] = mean_std(over_seeds(spec, FIRST, f"relative error {suffix}"))
        row["off-diagonal r (first-order)"] = mean_std(over_seeds(spec, FIRST, f"off-diagonal r {suffix}"))
        row["Spearman ρ (first-order)"] = mean_std(over_seeds(spec, FIRST, f"Spearman ρ {suffix}"))
        table[spec] = row
    return pd.DataFrame(table)


def estimator_verdicts(kind: str) -> None:
    column, truth_verdict = TRUTHS[kind]
    for spec in FAMILIES:
        ours = over_seeds(spec, FIRST, column)
        verdict = [f"NMI(first-order, {kind} truth) {ours.mean():.2f}"]
        for name in (RANDOM, SIMILARITY, PLUG_IN, RESCALED):
            if name not in per_seed.loc[spec].index.get_level_values("estimator"):
                continue
            other = over_seeds(spec, name, column)
            verdict.append(f"{'above' if clearly_above(ours, other) else 'not above'} {name} ({other.mean():.2f})")
        print(f"{spec:>12}: " + "; ".join(verdict) +
              f" — by more than the seeds' spread. Truth: {truth_verdict[spec].split(':')[0]}.")


print("Against the objective truth:")
estimator_table("objective")

# %%
estimator_verdicts("objective")

# %%
print("Against the return truth (the paper's):")
estimator_table("return")

# %%
estimator_verdicts("return")

# %% [markdown]
# ## Standardised or raw targets?
#
# Every affinity above standardises each task's subset scores across the subsets that contain it
# before averaging (as the authors' group does), so that tasks with different reward scales weigh
# equally. Does that help? The same replicates give the truth's split-half reliability and the
# first-order estimate's agreement with the truth both ways (mean ± standard deviation over the
# validation seeds); a difference smaller than the seeds' spread is not a difference.

# %%
target_table, TARGET_VERDICT = {}, {}
for spec in FAMILIES:
    seeds = profile.for_family(spec).validation_seeds
    standard_half = [verdicts[spec, s]["truth reliability"]["split-half NMI"] for s in seeds]
    raw_half = [verdicts[spec, s]["raw target"]["truth reliability"]["split-half NMI"] for s in seeds]
    standard_est = [verdicts[spec, s]["rows"][FIRST]["NMI vs truth"] for s in seeds]
    raw_est = [verdicts[spec, s]["raw target"]["first-order vs truth"]["NMI"] for s in seeds]
    target_table[spec] = {"truth split-half NMI, standardised": mean_std(standard_half),
                          "truth split-half NMI, raw": mean_std(raw_half),
                          "NMI(first-order, truth), standardised": mean_std(standard_est),
                          "NMI(first-order, truth), raw": mean_std(raw_est)}
    TARGET_VERDICT[spec] = versus(standard_half, raw_half, "the standardised target's truth is more reliable",
                                  "the raw target's truth is more reliable")
pd.DataFrame(target_table).T

# %%
for spec in FAMILIES:
    print(f"{spec:>12}: standardised vs raw target: {TARGET_VERDICT[spec]}")

# %% [markdown]
# ## First-order error alone: the surrogate against the offline exact truth
#
# The offline exact truth solves the surrogate's own problem with the real network (with the
# default trust-region step, exactly the same problem), so the first-order route's distance to it
# is the price of the Taylor model and nothing else. The cosine between the two steps
# $\Delta\theta_S$ says how much the linearisation bends the step itself; the NMI, how much that
# changes the groups. "NMI(exact, online truth)" is what offline optimisation on θ*'s samples
# misses of real fine-tuning.

# %%
exact_table = {}
for spec in FAMILIES:
    seeds = profile.for_family(spec).validation_seeds
    exacts = [stages.exact_truth(spec, profile, seed) for seed in seeds]
    exact_table[spec] = {
        "NMI(first-order, exact)": mean_std(over_seeds(spec, FIRST, "NMI vs exact truth")),
        "off-diagonal r (first-order, exact)": mean_std(over_seeds(spec, FIRST, "off-diagonal r vs exact truth")),
        "Spearman ρ (first-order, exact)": mean_std(over_seeds(spec, FIRST, "Spearman ρ vs exact truth")),
        "cos(Δθ first-order, Δθ exact), mean over subsets": mean_std([e.direction_cosine.mean() for e in exacts]),
        "exact fits converged": f"{sum(sum(e.converged) for e in exacts)}/{sum(len(e.converged) for e in exacts)}",
        "exact truth s": mean_std([e.seconds for e in exacts]),
        "NMI(exact, online truth)": mean_std(over_seeds(spec, EXACT, "NMI vs truth")),
        "NMI(gradient similarity, exact)": mean_std(over_seeds(spec, SIMILARITY, "NMI vs exact truth")),
        "NMI(random, exact)": mean_std(over_seeds(spec, RANDOM, "NMI vs exact truth")),
    }
pd.DataFrame(exact_table)

# %%
for spec in FAMILIES:
    ours, chance = over_seeds(spec, FIRST, "NMI vs exact truth"), over_seeds(spec, RANDOM, "NMI vs exact truth")
    similarity = over_seeds(spec, SIMILARITY, "NMI vs exact truth")
    print(f"{spec:>12}: against the exact truth the first-order groups reach NMI {ours.mean():.2f} — "
          f"{'above' if clearly_above(ours, chance) else 'not above'} random ({chance.mean():.2f}) and "
          f"{'above' if clearly_above(ours, similarity) else 'not above'} gradient similarity ({similarity.mean():.2f}); "
          f"the exact truth itself matches the online truth at NMI {over_seeds(spec, EXACT, 'NMI vs truth').mean():.2f}")

# %% [markdown]
# ## The plug-in route and its own noise
#
# The plug-in route measures θ*+Δθ by real rollouts, so it is noisy too: its two halves of
# episodes (`plug_in_episodes` each, fixed seeds) are compared like the truth's replicates.

# %%
plug_table = {}
plug_in_reliability = reliability_rows(verdicts, "plug-in reliability (1 half vs the other)")
for spec in FAMILIES:
    own = plug_in_reliability.loc[spec]
    plug_table[spec] = {"plug-in episodes/task per half": profile.for_family(spec).plug_in_episodes,
                        "plug-in split-half NMI": mean_std(own["split-half NMI"]),
                        "plug-in split-half off-diagonal r": mean_std(own["split-half off-diagonal r"]),
                        "NMI(plug-in, truth)": mean_std(over_seeds(spec, PLUG_IN, "NMI vs truth")),
                        "NMI(first-order, truth)": mean_std(over_seeds(spec, FIRST, "NMI vs truth"))}
pd.DataFrame(plug_table)

# %% [markdown]
# ## The planted case
#
# Families with a planted grouping (the navigation family's default source goals sit in three
# tight clusters) say what the right answer is without any fine-tuning. Each estimator's groups,
# and both online truths', against the plant:

# %%
planted = [spec for spec in FAMILIES if make_family(spec).planted_groups is not None]
if not planted:
    print("no family of this build has planted groups")
for spec in planted:
    frame = per_seed.loc[spec]
    scores = {name: frame.xs(name, level="estimator")["NMI vs planted groups"] for name in
              [*stages.ESTIMATORS, "online truth", "return truth"] if name in frame.index.get_level_values("estimator")}
    print(f"{spec}: NMI against the planted groups, mean ± std over seeds")
    for name, values in scores.items():
        print(f"   {name:>28}: {mean_std(values)}")
    ours = scores[FIRST]
    print(f"   verdict: the first-order groups {'recover' if ours.mean() >= 0.9 else 'do not recover'} the planted "
          f"clusters (NMI ≥ 0.9 asked; {ours.mean():.2f} measured); the objective truth reaches "
          f"{scores['online truth'].mean():.2f}, the return truth {scores['return truth'].mean():.2f}")

# %% [markdown]
# The matrices of the first validation seed, one row per family: the estimate, the online truth
# and the offline exact truth.

# %%
fig, axes = small_multiples(3 * len(FAMILIES), ncols=3, panel=(6.2, 5.4))
for f, spec in enumerate(FAMILIES):
    family = make_family(spec)
    seed0 = profile.for_family(spec).validation_seeds[0]
    estimate = stages.estimate_affinity(spec, profile, seed0, "first_order")
    labels = family.task_labels()
    panels = axes[3 * f: 3 * f + 3]
    heatmap(estimate.affinity, labels, f"{spec}: surrogate T̂ (first-order), seed {seed0}", "z-units", ax=panels[0], center=0)
    heatmap(truths[spec, seed0].objective_affinity, labels, f"{spec}: online truth T (r = {truths[spec, seed0].replicates})",
            "z-units", ax=panels[1], center=0)
    heatmap(stages.exact_truth(spec, profile, seed0).affinity, labels, f"{spec}: offline exact truth", "z-units",
            ax=panels[2], center=0)
    for ax in panels:
        ax.set_xlabel(family.parameter)
        ax.set_ylabel(family.parameter)
        ax.tick_params(labelsize=7)
fig.suptitle(f"Estimated vs real task affinity ({profile.name})")
fig.tight_layout()

# %% [markdown]
# ## Cost: surrogate vs fine-tuning every subset
#
# The surrogate's cost is two rollouts of $\theta^\star$ (one to fit, one to score), their
# projected gradients, and all subsets' regressions and scores; the truth's is one PPO
# fine-tuning per subset (one replicate: what a single-run truth costs, the work the surrogate
# replaces). Both are timed in the same build on the same machine; "one core" sums the
# fine-tuning runs. FLOPs are counted by `torch.utils.flop_counter` (torch work only; the
# environments' own physics is not counted on either side).

# %%
cost_rows = []
for (spec, seed), truth in truths.items():
    features, held_out = stages.gradient_features(spec, profile, seed), stages.held_out_features(spec, profile, seed)
    fit = stages.surrogate_fit(spec, profile, seed)
    estimate = stages.estimate_affinity(spec, profile, seed, "first_order")
    surrogate_seconds = (features.rollout_time + features.gradient_time + held_out.rollout_time + held_out.gradient_time
                         + fit.fit_time + estimate.score_time)
    cost_rows.append({"family": spec, "seed": seed, "surrogate s": surrogate_seconds,
                      "fine-tuning s (one replicate, one core)": truth.finetune_time,
                      "speed-up (one core)": truth.finetune_time / surrogate_seconds,
                      "FLOPs ratio": truth.finetune_flops / (features.gradient_flops + held_out.gradient_flops + fit.fit_flops)})
cost = pd.DataFrame(cost_rows)
cost.drop(columns="seed").groupby("family", sort=False).agg(mean_std).T

# %% [markdown]
# The surrogate above ran with torch's default threads, each fine-tuning job on one thread. For a
# like-for-like comparison, and for Table 2's rows by policy depth, the table below times both
# sides on one core for policies of 2, 4 and 6 linear layers, for every family (cost does not
# depend on how well a policy plays, so each depth starts from a fresh seeded initialisation;
# fine-tuning is timed on 3 subsets and scaled to all $m$).

# %%
# Timed one family after another, not over the cores: these rows are costs, measured alone.
FIRST_SEEDS = {spec: profile.for_family(spec).validation_seeds[0] for spec in FAMILIES}
by_depth = pd.concat({spec: pd.DataFrame(stages.cost_by_depth(spec, profile, FIRST_SEEDS[spec])).set_index("layers")
                      for spec in FAMILIES}, names=["family"])
by_depth.round(2)

# %% [markdown]
# ## Ablations
#
# Each ablation uses the first validation seed of each family and scores the estimate against
# that seed's online objective truth; the truth's split-half NMI is drawn in the $d$ ablation,
# listed in the subset-size ablation, and printed for every family in the reliability table above.
#
# **Projection dimension $d$.** Features (fit and held-out), fits and scores are recomputed for
# each $d$; the truth stays the same.

# %%
ablations = stages.compute_many(stages.projection_ablation.call(spec, profile, FIRST_SEEDS[spec]) for spec in FAMILIES)
ablation_d = pd.concat({spec: pd.DataFrame(rows).set_index("d") for spec, rows in zip(FAMILIES, ablations)},
                       names=["family"])
fig, axes = small_multiples(len(FAMILIES), panel=(5.5, 3.8))
for spec, ax in zip(FAMILIES, axes):
    frame = ablation_d.loc[spec]
    seed0 = profile.for_family(spec).validation_seeds[0]
    ax.plot(frame.index, frame["relative error"], "o-", label="relative error of T̂")
    ax.plot(frame.index, frame["nmi"], "s-", label="NMI(ours, truth)")
    ax.axhline(truths[spec, seed0].reliability["objective"].nmi, color="C1", ls=":", lw=1, label="truth split-half NMI")
    ax.set(xscale="log", xlabel="projection dimension d", ylabel="error / NMI")
    ax.set_xticks(list(frame.index))
    ax.xaxis.set_major_formatter(ScalarFormatter())
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_title(f"{spec}: effect of d on the estimate", fontsize=10)
    ax.legend(fontsize=6)
fig.suptitle(f"Projection dimension ablation ({profile.name}, first validation seed)")
fig.tight_layout()
ablation_d.round(3)

# %% [markdown]
# **Number of groups $k$.** The NMI of our groups against the truth's at each $k$, and the
# density of the groups under the *true* affinity — the downstream score available before any
# group is trained (higher is better; the truth's own groups are the ceiling).

# %%
by_k = {}
for spec in FAMILIES:
    seed0 = profile.for_family(spec).validation_seeds[0]
    estimate, truth = stages.estimate_affinity(spec, profile, seed0, "first_order"), truths[spec, seed0]
    if not np.any(truth.objective_affinity):
        continue
    for row in k_ablation(estimate.affinity, truth.objective_affinity, profile.for_family(spec).ablation_ks, seed=seed0):
        by_k[(spec, row.pop("k"))] = row
pd.DataFrame(by_k).T.rename_axis(["family", "k"]).round(3)

# %% [markdown]
# **Number of subsets $m$.** $\hat T$ from the first $m$ subsets only, against the truth from all
# of them; one column per family, one row per share of the family's $m$. Eq. (5) needs every pair
# of tasks in some subset; below that $m$ the error is undefined (NaN).

# %%
SHARES = (0.1, 0.2, 0.35, 0.5, 0.75, 1.0)
by_m = {}
for spec in FAMILIES:
    seed0 = profile.for_family(spec).validation_seeds[0]
    estimate, truth = stages.estimate_affinity(spec, profile, seed0, "first_order"), truths[spec, seed0]
    if not np.any(truth.objective_affinity):
        continue
    counts = [max(1, int(share * len(truth.subsets))) for share in SHARES]
    errors = error_vs_num_subsets(truth.subsets, estimate.scores, truth.objective_affinity, sorted(set(counts)))
    error_at = {row["m"]: row["relative error"] for row in errors}
    by_m[spec] = {f"{share:.0%} of m": error_at[m] for share, m in zip(SHARES, counts)}
pd.DataFrame(by_m).round(3)

# %% [markdown]
# **Subset size.** Each size gets its own $m$ random subsets, its own surrogate fits and its own
# two-replicate ground truth — the costliest ablation here, so it runs for the first family of
# the build only (printed below). The truth's split-half NMI at each size is listed beside.

# %%
ABLATION_FAMILY = FAMILIES[0]
budgets = profile.for_family(ABLATION_FAMILY)
print(f"subset-size ablation: {ABLATION_FAMILY} (the first family of this build), seed {budgets.validation_seeds[0]}, "
      f"sizes {budgets.ablation_subset_sizes}")
pd.DataFrame(stages.subset_size_ablation(ABLATION_FAMILY, profile, budgets.validation_seeds[0],
                                         budgets.ablation_subset_sizes)).set_index("subset size").round(3)

# %% [markdown]
# ## Running the ground truth on a cluster
#
# The fine-tunings are independent joblib jobs (loky processes by default). With a Dask cluster,
# the same calls run on its workers, unchanged — each job pins one torch thread and its own seed,
# so results do not depend on where it ran:
#
# ```python
# from dask.distributed import Client
# from joblib import parallel_config
# client = Client("tcp://scheduler:8786")
# with parallel_config(backend="dask"):
#     truths = {spec: stages.ground_truth(spec, profile, seed) for spec in FAMILIES}
# ```
#
# The test suite runs this with a 2-worker `LocalCluster`.
#
# ## Compared with the paper
#
# A summary of the paper (unverified against the PDF) gives Table 2's NMI between estimated and
# true groups as 0.73 on LunarLander and 0.76 on Meta-World MT10, random groups at about 0.2, and
# 21–26× fewer FLOPs than full training (the abstract: up to 26× faster). The table sets each
# family of this build beside them; every verdict is computed from the rows above. Comparisons
# between our estimators use the seeds' spread; comparisons with the paper's single numbers use
# the means (the paper's spread is not known); the paper's truth is built from rewards, so its NMI
# is set beside ours against the return truth. A claim is only testable where the truth is reliable.

# %%
def testable_at(spec: str) -> str:
    """The budget at which judging an estimator against the objective truth became possible here
    (the truth's split-half NMI ≥ 0.8 and group structure above noise), else the projection."""
    r = curve_rows[spec]["replicates r"]
    reached = curve_rows[spec]["truth split-half NMI ≥ 0.8 from j ="]
    if isinstance(reached, int) and STRUCTURE[spec, "objective"]:
        return f"r = {reached} replicates (this build: r = {r})"
    why = "no group structure above noise" if isinstance(reached, int) else "split-half NMI below 0.8"
    projected = (f"; split-half affinities of 0.8 projected at r = {PROJECTED_R[spec]} (Spearman–Brown)"
                 if PROJECTED_R[spec] else "")
    return f"not at r = {r} ({why}){projected}"


PAPER_NMI = {"lunarlander": 0.73}  # Table 2, reported in a summary of the paper (MT10: 0.76)
comparison = {}
for spec in FAMILIES:
    base = spec.partition(":")[0]
    ours, chance = over_seeds(spec, FIRST, "NMI vs truth"), over_seeds(spec, RANDOM, "NMI vs truth")
    similarity = over_seeds(spec, SIMILARITY, "NMI vs truth")
    ours_return = over_seeds(spec, FIRST, "NMI vs return truth")
    similarity_return = over_seeds(spec, SIMILARITY, "NMI vs return truth")
    flops = cost.loc[cost["family"] == spec, "FLOPs ratio"]
    speed = cost.loc[cost["family"] == spec, "speed-up (one core)"]
    comparison[spec] = {
        "NMI(ours, truth): paper": PAPER_NMI.get(base, "not reported"),
        "NMI(ours, objective truth): this build": mean_std(ours),
        "objective truth split-half NMI (noise ceiling)": mean_std(reliability.loc[spec]["split-half NMI"]),
        "NMI(ours, return truth, the paper's kind): this build": mean_std(ours_return),
        "return truth split-half NMI (noise ceiling)": mean_std(return_reliability.loc[spec]["split-half NMI"]),
        "NMI(random, truth): paper": "≈ 0.2",
        "NMI(random, objective truth): this build": mean_std(chance),
        "NMI(random, return truth): this build": mean_std(over_seeds(spec, RANDOM, "NMI vs return truth")),
        "NMI(gradient similarity, objective truth)": mean_std(similarity),
        "NMI(gradient similarity, return truth)": mean_std(similarity_return),
        "fewer FLOPs than fine-tuning: paper": "21–26×",
        "fewer FLOPs: this build": f"{flops.mean():.1f}×",
        "wall-clock speed-up (one core): this build": f"{speed.mean():.1f}×",
        "objective truth reliable enough to judge": VERDICT[spec].split(":")[0],
        "objective truth has groups to find (oracle, held out)": STRUCTURE[spec, "objective"],
        "claim testable at (objective truth)": testable_at(spec),
        "return truth reliable enough to judge": RETURN_VERDICT[spec].split(":")[0],
        "NMI (return truth) at least the paper's":
            bool(ours_return.mean() >= PAPER_NMI[base]) if base in PAPER_NMI else "no paper value",
        "NMI above random (objective truth, beyond the spread)": clearly_above(ours, chance),
        "NMI above gradient similarity (objective truth, beyond the spread)": clearly_above(ours, similarity),
        "NMI above random (return truth, beyond the spread)":
            clearly_above(ours_return, over_seeds(spec, RANDOM, "NMI vs return truth")),
        "NMI above gradient similarity (return truth, beyond the spread)": clearly_above(ours_return, similarity_return),
        "FLOPs saving at least 21×": bool(flops.mean() >= 21),
    }
pd.DataFrame(comparison)

# %% [markdown]
# | | paper (Table 2, §4.2) | this build |
# |---|---|---|
# | environments | Meta-World MT10, LunarLander (NMI); every environment (cost) | the families of this build, printed at the top |
# | NMI of estimated vs true groups | 0.76 (MT10), 0.73 (LunarLander), per a summary | the tables above, mean ± std over seeds |
# | the truth's own reliability | not in the text we have | split-half NMI and correlations, Spearman–Brown, above |
# | NMI of random groups | about 0.2, per a summary | the tables above |
# | truth protocol | rewards after training on each subset (details lost) | r replicates with common random numbers; return (the paper's kind) and the exact objective on held-out θ* samples |
# | speed-up over full training | up to 26× (abstract), 21–26× FLOPs (summary) | FLOPs and wall-clock ratios above, and by depth |

# %%
from pgx.report import chapter_wall_time  # noqa: E402

print(chapter_wall_time())
