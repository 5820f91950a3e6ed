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
# # PolicyGradEx, reproduced
#
# *Scalable Multi-Objective and Meta Reinforcement Learning via Gradient Estimation* (Zhang, Duan,
# Ye, Zhang; AAAI 2026) asks which of $n$ RL tasks should be trained together. Trying every
# subset means a full training run per subset. PolicyGradEx instead trains **one** meta-policy
# $\theta^\star$ on all tasks, and predicts what fine-tuning $\theta^\star$ on any subset $S$
# would do from per-sample gradients at $\theta^\star$ alone:
#
# 1. collect states, actions and advantages $\hat A$ with $\theta^\star$; compute per-sample
#    gradients $g = \nabla_\theta \log \pi_\theta(a\mid s)\big|_{\theta^\star}$ and project them to
#    $d$ dimensions with a random Johnson–Lindenstrauss matrix $P$, $\tilde g = P^\top g$;
# 2. for each of $m$ random subsets $S$, fit a weighted logistic regression (label
#    $\mathbb 1[\hat A>0]$, weight $|\hat A|$) on $S$'s samples: its solution $v_S$ gives the
#    fine-tuning step $\Delta\theta_S = P v_S$ (Algorithm 1);
# 3. score each task $i\in S$ after that step, and average over subsets into the task-affinity
#    matrix (eq. 5)
#
# $$ T_{ij} = \frac{1}{n_{ij}} \sum_{S \ni i, j} f_i(S); $$
#
# 4. cluster tasks by maximising intra-cluster affinity with a trace-penalised SDP
#    (Algorithm 2, Appendix A).
#
# This book runs each stage with the `pgx` package, on real Gymnasium environments, and puts
# every figure it measures next to the paper's. The paper's text lost its numbers; the ones we
# know (from its abstract) are quoted where they apply.

# %%
from pgx.plots import pipeline_figure
from pgx.profiles import get_profile
from pgx.report import book_families, book_seed, budgets_table, families_table, show_warnings

show_warnings()  # warnings that matter (solvers, NaNs) print on the page; stderr is dropped

profile = get_profile()
SEED = book_seed()
FAMILIES = book_families()
print(f"profile: {profile.name}   seed: {SEED}   families: {', '.join(FAMILIES)}")
families_table(FAMILIES)

# %%
budgets_table(profile, FAMILIES)

# %%
pipeline_figure();

# %% [markdown]
# ## Profiles
#
# Every chapter runs with the profile chosen by the environment variable `PGX_PROFILE`:
#
# | profile | meant for | what it shows |
# |---|---|---|
# | `smoke` | CI on 2 cores, minutes | that every stage runs end to end; its numbers are **not** results |
# | `default` | the README's build on a 2-core laptop | the figures discussed in the text |
# | `paper` | a GPU | paper-scale budgets |
#
# Stages are cached on disk (`$PGX_CACHE`, default `~/.cache/pgx`) keyed by family, profile,
# seed and a hash of pgx's sources, so a later chapter reuses an earlier chapter's meta-policy
# and features, and a rebuild repeats no work. The time each stage took is recorded when it is
# computed and shown in the chapters.
#
# ## What the paper claims, and where this book checks it
#
# | claim | paper | where this book checks it |
# |---|---|---|
# | first-order approximation error (abstract) | within 2% | {doc}`06_first_order`: along fine-tuning and at Table 1's distances, with a computed verdict per family |
# | estimated groups match the true ones (Table 2, per a summary) | NMI 0.73 (LunarLander), 0.76 (MT10) | {doc}`07_ground_truth`: against replicated truths (the return, the paper's kind, and PPO's objective on held-out samples) whose own split-half NMI is printed beside, over the profile's validation seeds (printed); on planted groups too |
# | speed-up over full training to get clusters (abstract) | up to 26× (21–26× FLOPs) | {doc}`07_ground_truth`: wall-clock and FLOPs in the same build |
# | loss-based clustering vs random / gradient-similarity grouping (abstract) | +19% downstream | {doc}`07_ground_truth` compares the groups themselves with a truth; the downstream +19% needs MAML transfer, not built yet |
# | improvement over multitask baselines (abstract) | 16% on average | not yet: needs the downstream MAML stage |
# | generalization bound tracks the gap (section 4.4) | qualitative | {doc}`08_generalization` |
#
# The chapters that follow run every stage on every family of the paper, side by side: the
# tasks ({doc}`02_families`), the meta-policy ({doc}`03_meta_training`), the affinity matrix
# ({doc}`04_affinity`), the groups ({doc}`05_grouping`), the first-order check
# ({doc}`06_first_order`), the estimate against real fine-tuning ({doc}`07_ground_truth`) and
# the generalization bound ({doc}`08_generalization`). `PGX_FAMILIES` restricts a build to some
# families (comma-separated names, e.g. `PGX_FAMILIES=cartpole,navigation`).

# %%
from pgx.report import chapter_wall_time  # noqa: E402

print(chapter_wall_time())
