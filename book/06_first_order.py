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
# # Is the first-order model accurate?
#
# The surrogate rests on one approximation (eq. 1): near $\theta^\star$,
#
# $$ \log\pi_\theta(a\mid s) \approx \log\pi_{\theta^\star}(a\mid s) + g(s,a)^\top(\theta-\theta^\star). $$
#
# The paper checks it (Table 1) by fine-tuning for real on random subsets and measuring, on
# held-out states, the relative residual sum of squares
#
# $$ \mathrm{RSS} = \frac{\sum \big(f_\theta - f_{\theta^\star} - g^\top(\theta-\theta^\star)\big)^2}{\sum f_\theta^2}, \qquad f = \log\pi(a\mid s), $$
#
# against the relative distance $\|\theta-\theta^\star\|/\|\theta^\star\|$, and reports it within 2%
# while the adapted policy stays close to $\theta^\star$. Here, for every family of the build,
# every subset of the surrogate is fine-tuned with PPO from that family's $\theta^\star$
# (`pgx.truth.finetune`, in parallel with joblib), and the first `taylor_subsets` of them keep
# snapshots of their weights at growing step counts, so one run gives several distances. The
# held-out states come from a fresh rollout of $\theta^\star$ (a seed the features never saw).
# $g^\top(\theta-\theta^\star)$ is one forward-mode pass (`torch.func.jvp`). The whole check is
# repeated for each validation seed, meta-training included, so the spread between seeds shows
# how reproducible the measured error itself is.

# %%
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from pgx import stages
from pgx.plots import small_multiples
from pgx.profiles import get_profile
from pgx.report import book_families, budgets_table, show_warnings

show_warnings()  # warnings that matter (solvers, NaNs) print on the page; stderr is dropped

profile = get_profile()
FAMILIES = book_families()
print(f"profile: {profile.name}   families: {', '.join(FAMILIES)}")
taylor_budgets = pd.DataFrame({f: {"Taylor subsets": profile.for_family(f).taylor_subsets,
                                   "snapshot steps": profile.for_family(f).snapshot_steps} for f in FAMILIES})
pd.concat([budgets_table(profile, FAMILIES), taylor_budgets])

# %%
# Every family's ground truth at every validation seed: independent calls, computed over the cores.
CASES = [(spec, seed) for spec in FAMILIES for seed in profile.for_family(spec).validation_seeds]
truths = dict(zip(CASES, stages.compute_many(stages.ground_truth.call(spec, profile, seed) for spec, seed in CASES)))
rows = [{**row, "family": spec, "seed": seed} for (spec, seed), truth in truths.items() for row in truth.taylor]
taylor = pd.DataFrame(rows)
MARGIN = 0.02  # the paper's 2%


def pct(x: float) -> str:
    """A fraction as a percentage with two significant digits (RSS spans several decades)."""
    return f"{np.format_float_positional(100 * x, precision=2, fractional=False, trim='-')}%"


def closest(frame: pd.DataFrame) -> pd.DataFrame:
    """The quarter of the snapshots nearest θ* (at least one): where the paper's claim applies."""
    return frame.nsmallest(max(1, len(frame) // 4), "distance")


fig, axes = small_multiples(len(FAMILIES), panel=(6.4, 4.6))
for spec, ax in zip(FAMILIES, axes):
    data = taylor[taylor["family"] == spec]
    if data.empty:
        ax.set_title(f"{spec}: no snapshots (taylor_subsets = 0)", fontsize=10)
        continue
    near = closest(data)
    sns.scatterplot(data=data, x="distance", y="rss", hue="steps", style="seed", palette="viridis", ax=ax)
    ax.plot(data["distance"], data["rss_zeroth"], ".", color="0.7", ms=4, label="without the gradient term")
    ax.axhline(MARGIN, color="0.3", ls="--", lw=1, label="2% (the paper's margin)")
    verdict = "within" if near["rss"].max() <= MARGIN else "above"
    ax.set(xscale="log", yscale="log", xlabel="relative distance ‖θ−θ*‖/‖θ*‖", ylabel="relative RSS of log π")
    for axis in (ax.xaxis, ax.yaxis):
        axis.set_major_locator(LogLocator(subs=(1, 2, 5)))
        axis.set_major_formatter(FuncFormatter(lambda value, _: pct(value)))
        axis.set_minor_formatter(NullFormatter())
    ax.set_title(f"{spec}: nearest quarter {verdict} 2% (max {pct(near['rss'].max())})", fontsize=10)
    ax.legend(fontsize=6, ncol=2)
fig.suptitle(f"First-order model error vs distance ({profile.name}, seeds per family in the table above)")
fig.tight_layout()

# %% [markdown]
# The grey points are the same error without the gradient term ($f_\theta \approx f_{\theta^\star}$):
# the gap between the two clouds is what the first-order term explains. The table below sums up
# each family: the quarter of the snapshots nearest $\theta^\star$ is where the paper's 2% claim
# applies; "between seeds" is the standard deviation over the validation seeds of each seed's
# mean RSS there — how far the measurement itself moves when meta-training, subsets and
# fine-tuning are redrawn.

# %%
summary = {}
for spec, data in taylor.groupby("family", sort=False):
    near = closest(data)
    per_seed = pd.Series({seed: closest(frame)["rss"].mean() for seed, frame in data.groupby("seed")})
    summary[spec] = {
        "snapshots (all seeds)": len(data),
        "distance range": f"{pct(data['distance'].min())} – {pct(data['distance'].max())}",
        "nearest quarter: distances up to": pct(near["distance"].max()),
        "nearest quarter: RSS mean": pct(near["rss"].mean()),
        "nearest quarter: RSS max": pct(near["rss"].max()),
        "nearest quarter: between seeds (std)": pct(per_seed.std()) if len(per_seed) > 1 else "one seed",
        "nearest quarter: without gradient term": pct(near["rss_zeroth"].mean()),
        "gradient term lowers the error": f"{int((data['rss'] < data['rss_zeroth']).sum())} of {len(data)}",
        "largest RSS (at distance)": f"{pct(data['rss'].max())} (at {pct(data.loc[data['rss'].idxmax(), 'distance'])})",
        "within 2% nearest θ*": bool(near["rss"].max() <= MARGIN),
    }
pd.DataFrame(summary)

# %%
for spec, row in summary.items():
    print(f"{spec:>12}: at distances up to {row['nearest quarter: distances up to']}, RSS is "
          f"{row['nearest quarter: RSS mean']} on average (± {row['nearest quarter: between seeds (std)']} between seeds) and at "
          f"most {row['nearest quarter: RSS max']}: the paper's 2% claim {'holds' if row['within 2% nearest θ*'] else 'does not hold'} "
          f"here. Over all snapshots RSS reaches {row['largest RSS (at distance)']}.")

# %% [markdown]
# How the error grows with the distance, within each family (quartiles of the distances each
# family's fine-tuning reached):

# %%
binned = []
for spec, data in taylor.groupby("family", sort=False):
    bins = pd.qcut(data["distance"], q=min(4, len(data)), duplicates="drop")
    table = data.groupby(bins, observed=True).agg(**{
        "snapshots": ("rss", "size"), "RSS mean": ("rss", "mean"), "RSS max": ("rss", "max"),
        "without gradient term, mean": ("rss_zeroth", "mean")})
    table.index = pd.MultiIndex.from_tuples([(spec, f"{pct(b.left)} – {pct(b.right)}") for b in table.index],
                                            names=["family", "relative distance"])
    binned.append(table)
binned = pd.concat(binned)
binned.assign(**{column: binned[column].map(pct) for column in binned.columns[1:]})

# %% [markdown]
# ## Table 1 at the paper's distances, along the surrogate's own steps
#
# Fine-tuning snapshots land wherever PPO takes them. The surrogate's own steps can be placed
# exactly: each of the first `taylor_subsets` subsets' $\Delta\theta_S = Pv_S$ is rescaled to
# each relative distance of the profile (`table1_distances`: the paper's 0.1%, 0.5% and 1%, and 5%)
# and the first-order model is checked there, on held-out θ* samples
# (`pgx.stages.rss_by_distance`). Mean RSS over subsets, then mean ± standard deviation over
# the validation seeds.

# %%
table1 = pd.DataFrame([row | {"family": spec, "seed": seed} for spec in FAMILIES
                       for seed in profile.for_family(spec).validation_seeds
                       for row in stages.rss_by_distance(spec, profile, seed)])
per_seed_rss = table1.groupby(["family", "distance", "seed"], sort=False)["rss"].mean()
exact_distances = per_seed_rss.groupby(["family", "distance"], sort=False).agg(
    lambda v: f"{pct(v.mean())} ± {pct(v.std())}" if len(v) > 1 else pct(v.mean())).unstack("distance")
exact_distances.columns = [f"{d:.1%}" for d in exact_distances.columns]
exact_distances

# %%
for spec in FAMILIES:
    data = table1[table1["family"] == spec]
    small = data[data["distance"] <= 0.01]
    grows = data.groupby("distance")["rss"].mean().is_monotonic_increasing
    print(f"{spec:>12}: along the surrogate's steps, RSS at distances up to 1% is at most {pct(small['rss'].max())} — "
          f"{'within' if small['rss'].max() <= MARGIN else 'above'} the 2% margin; mean RSS "
          f"{'grows' if grows else 'does not grow monotonically'} with the distance "
          f"(at {data['distance'].max():.0%}: {pct(data[data['distance'] == data['distance'].max()]['rss'].mean())})")

# %% [markdown]
# ## Compared with the paper
#
# The text of the paper kept here lost Table 1's values; a summary of the paper reports them
# (unverified against the PDF) for MT10, CartPole, Highway and LunarLander at relative distances
# of 0.1%, 0.5% and 1%, and an error of about 10% beyond 5%. The table below sets our snapshots
# beside them: each snapshot is compared at the nearest of those distances (on a log scale), and
# only if it lies within a factor of 2 of it ("≥ 5%" takes every snapshot at 5% or farther).
# Navigation is not in the paper's Table 1. "Between seeds" is again the standard deviation of
# the per-seed means.

# %%
PAPER_TABLE_1 = {  # relative RSS by relative distance, reported in a summary of the paper
    "cartpole": {0.001: 0.0012, 0.005: 0.0073, 0.01: 0.0098},
    "highway": {0.001: 0.0002, 0.005: 0.0011, 0.01: 0.0204},
    "lunarlander": {0.001: 0.0006, 0.005: 0.0003, 0.01: 0.0048},
}
POINTS = np.array([0.001, 0.005, 0.01])
nearest = POINTS[np.abs(np.log(taylor["distance"].to_numpy()[:, None] / POINTS)).argmin(axis=1)]
near_enough = np.abs(np.log(taylor["distance"] / nearest)) <= np.log(2)
taylor["paper distance"] = np.where(taylor["distance"] >= 0.05, "≥ 5%",
                                    np.where(near_enough, [f"{p:.1%}" for p in nearest], ""))

rows = {}
for spec in FAMILIES:
    paper = PAPER_TABLE_1.get(spec.partition(":")[0])
    for label, point in [*((f"{p:.1%}", p) for p in POINTS), ("≥ 5%", None)]:
        data = taylor[(taylor["family"] == spec) & (taylor["paper distance"] == label)]
        paper_value = "not in the paper" if paper is None else "≈ 10%" if point is None else pct(paper[point])
        per_seed = data.groupby("seed")["rss"].mean()
        rows[(spec, label)] = {
            "paper (summary)": paper_value,
            "ours: RSS mean": pct(data["rss"].mean()) if len(data) else "no snapshot there",
            "ours: between seeds (std)": pct(per_seed.std()) if len(per_seed) > 1 else "—",
            "ours: snapshots": len(data),
        }
pd.DataFrame(rows).T.rename_axis(["family", "relative distance"])

# %% [markdown]
# | | paper (Table 1) | this build |
# |---|---|---|
# | environments | MT10, CartPole, Highway, LunarLander | the families of this build, printed at the top |
# | subsets | 10 random subsets | `taylor_subsets` per seed and family, snapshots at several fine-tuning budgets |
# | error at small distance | < 2% (abstract); 0.01–2.04% at 0.1–1% distance in the summary's Table 1 | the nearest-quarter rows, and the surrogate's own steps at exactly 0.1%, 0.5%, 1% above |
# | error at large distance | grows, about 10% beyond 5% (summary) | the largest RSS above and the "≥ 5%" rows |

# %%
from pgx.report import chapter_wall_time  # noqa: E402

print(chapter_wall_time())
