"""Figures the chapters show. Each returns the matplotlib ``Figure`` so a chapter can save or tweak it."""

from __future__ import annotations

from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns
from matplotlib.figure import Figure
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

__all__ = ["pipeline_figure", "small_multiples", "family_picture", "learning_curves", "heatmap", "returns_bar", "lambda_sweep_plot",
           "groups_strip", "backend_fidelity"]


def small_multiples(count: int, ncols: int = 2, panel: tuple[float, float] = (5.5, 4.2), **kwargs) -> tuple[Figure, list]:
    """A grid of ``count`` panels (one per family), ``ncols`` wide; unused panels are hidden.

    Two columns read on a laptop and still on a phone (the image scales down as one piece).
    """
    if count < 1:
        raise ValueError(f"count must be >= 1, got {count}")
    ncols = min(ncols, count)
    nrows = -(-count // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(panel[0] * ncols, panel[1] * nrows), squeeze=False, **kwargs)
    flat = list(axes.ravel())
    for ax in flat[count:]:
        ax.set_visible(False)
    return fig, flat[:count]


def pipeline_figure() -> Figure:
    """The PolicyGradEx pipeline as boxes and arrows (the paper's Figure 1, redrawn)."""
    stages = [
        ("Task family\n(n source tasks)", "pgx.envs"),
        ("Meta-training\nmultitask PPO → θ*", "pgx.algos.ppo"),
        ("Gradient features\n∇log π at θ*, JL to d", "pgx.gradients"),
        ("Surrogate per subset\nweighted logistic reg.", "pgx.surrogate"),
        ("Task affinity T\neq. (5)", "pgx.affinity"),
        ("Groups\nSDP + rounding", "pgx.clustering"),
    ]
    fig, ax = plt.subplots(figsize=(12, 2.4))
    ax.set_xlim(0, len(stages) * 2)
    ax.set_ylim(0, 2)
    ax.axis("off")
    for i, (label, module) in enumerate(stages):
        x = i * 2 + 0.1
        ax.add_patch(FancyBboxPatch((x, 0.6), 1.7, 1.1, boxstyle="round,pad=0.05", fc=sns.color_palette()[i], alpha=0.25))
        ax.text(x + 0.85, 1.15, label, ha="center", va="center", fontsize=9)
        ax.text(x + 0.85, 0.35, module, ha="center", va="center", fontsize=8, family="monospace", color="0.3")
        if i:
            ax.add_patch(FancyArrowPatch((x - 0.25, 1.15), (x - 0.02, 1.15), arrowstyle="-|>", mutation_scale=12))
    ax.set_title("PolicyGradEx: one meta-policy, many cheap subset estimates, then clustering", fontsize=11)
    fig.tight_layout()
    return fig


def learning_curves(steps: np.ndarray, task_returns: np.ndarray, task_labels: Sequence[str], title: str, window: int = 5,
                    ax=None) -> Figure:
    """Per-task episodic return against environment steps, smoothed over ``window`` iterations."""
    if ax is None:
        fig, ax = plt.subplots(figsize=(8, 4.5))
    else:
        fig = ax.figure
    colors = sns.color_palette("viridis", len(task_labels))
    for j, label in enumerate(task_labels):
        series = np.array(task_returns[:, j], dtype=float)
        ok = np.isfinite(series)
        if ok.sum() == 0:
            continue
        filled = np.interp(np.arange(series.size), np.flatnonzero(ok), series[ok])
        smooth = np.convolve(filled, np.ones(window) / window, mode="valid") if filled.size >= window else filled
        ax.plot(steps[len(steps) - smooth.size:], smooth, color=colors[j], label=label, lw=1.4)
    ax.set_xlabel("environment steps (all tasks)")
    ax.set_ylabel("episodic return")
    ax.set_title(title)
    ax.legend(fontsize=7, ncol=2, title="task", title_fontsize=8)
    fig.tight_layout()
    return fig


def heatmap(matrix: np.ndarray, labels: Sequence[str], title: str, cbar_label: str, ax=None, center: float | None = None, fmt: str = ".2f") -> Figure:
    """Annotated seaborn heatmap of an ``(n, n)`` task matrix."""
    if ax is None:
        fig, ax = plt.subplots(figsize=(7, 5.8))
    else:
        fig = ax.figure
    sns.heatmap(matrix, annot=matrix.shape[0] <= 12, fmt=fmt, annot_kws={"fontsize": 7}, xticklabels=labels,
                yticklabels=labels, center=center, cmap="vlag" if center is not None else "rocket",
                cbar_kws={"label": cbar_label}, ax=ax, square=True)
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig


def returns_bar(values: np.ndarray, labels: Sequence[str], title: str, threshold: float | None = None, ylabel: str = "mean return",
                ax=None) -> Figure:
    if ax is None:
        fig, ax = plt.subplots(figsize=(8, 3.5))
    else:
        fig = ax.figure
    sns.barplot(x=list(labels), y=values, ax=ax, color=sns.color_palette()[0])
    if threshold is not None:
        ax.axhline(threshold, color="0.3", ls="--", lw=1, label=f"{threshold:g}")
        ax.legend(loc="lower right")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    fig.tight_layout()
    return fig


def lambda_sweep_plot(sweep: Sequence[dict], title: str, ax=None) -> Figure:
    """Number of groups and tr X against the trace penalty λ."""
    lams = [s["lam"] for s in sweep]
    if ax is None:
        fig, ax = plt.subplots(figsize=(6, 3.5))
    else:
        fig = ax.figure
    ax.plot(lams, [s["num_groups"] for s in sweep], "o-", label="groups after rounding")
    ax.plot(lams, [s["trace"] for s in sweep], "s--", label="tr X (SDP)")
    ax.set_xlabel("trace penalty λ")
    ax.set_ylabel("number of groups")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    return fig


def groups_strip(labelings: dict[str, np.ndarray], task_labels: Sequence[str], title: str, ax=None) -> Figure:
    """One row per method, one column per task, colour = group."""
    names = list(labelings)
    grid = np.vstack([labelings[m] for m in names])
    if ax is None:
        fig, ax = plt.subplots(figsize=(9, 0.6 + 0.6 * len(names)))
    else:
        fig = ax.figure
    k = int(grid.max()) + 1
    sns.heatmap(grid, annot=True, fmt="d", cbar=False, cmap=sns.color_palette("Set2", k), xticklabels=task_labels,
                yticklabels=names, ax=ax, linewidths=1, linecolor="white")
    ax.set_xlabel("task")
    ax.set_title(title)
    fig.tight_layout()
    return fig


def family_picture(family, ax) -> None:
    """The first and last source task side by side (the family's own drawing), or, for a family
    without one (2-D navigation), its source and target task parameters in the plane."""
    from pgx.envs import as_param_array

    params = as_param_array(family.source_params)
    labels = family.task_labels()
    if family.render_frame is not None:
        first, last = family.render_frame(params[0]), family.render_frame(params[-1])
        height = min(first.shape[0], last.shape[0])
        gap = np.full((height, 12, 3), 255, dtype=np.uint8)
        ax.imshow(np.concatenate([first[:height], gap, last[:height]], axis=1))
        ax.set_title(f"{family.name}: {family.parameter} {labels[0]} (left) vs {labels[-1]} (right)", fontsize=9)
        ax.axis("off")
        return
    if params.shape[1] != 2:
        raise ValueError(f"{family.name} has no render_frame and {params.shape[1]}-D parameters: nothing to draw")
    targets = as_param_array(family.target_params)
    ax.scatter(targets[:, 0], targets[:, 1], s=12, color="0.7", label="target tasks")
    ax.scatter(params[:, 0], params[:, 1], s=40, color=sns.color_palette()[0], label="source tasks", zorder=3)
    ax.scatter([0], [0], marker="x", color="k", label="start")
    ax.set_aspect("equal")
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    ax.legend(fontsize=7, loc="center")
    ax.set_title(f"{family.name}: {family.parameter} of each task", fontsize=9)


def backend_fidelity(table, metric: str = "return", title: str = "") -> Figure:
    """One panel per policy: ``metric`` against traffic density on each highway backend, with
    ±2 standard errors of the difference drawn around the reference, and the comparisons the
    Holm-corrected test calls different circled in red. ``table``: ``compare_backends``'s rows."""
    rows = table[table["metric"] == metric]
    policies = list(dict.fromkeys(rows["policy"]))
    fig, axes = small_multiples(len(policies), ncols=min(3, len(policies)), panel=(4.2, 3.2), sharey=True)
    for ax, policy in zip(axes, policies):
        r = rows[rows["policy"] == policy].sort_values("density")
        ax.fill_between(r["density"], r["reference"] - 2 * r["se"], r["reference"] + 2 * r["se"], color="0.85",
                        label="highway-env ± 2 SE of the difference")
        ax.plot(r["density"], r["reference"], "o-", color="0.3", label="highway-env (reference)")
        ax.plot(r["density"], r["fast"], "s--", color=sns.color_palette()[0], label="envpool (default)")
        bad = r[~r["agree"]]
        ax.scatter(bad["density"], bad["fast"], s=160, facecolors="none", edgecolors="red", label="differs (Holm)")
        ax.set_title(policy)
        ax.set_xlabel("traffic density")
    axes[0].set_ylabel(metric)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=4, bbox_to_anchor=(0.5, -0.02), frameon=False)
    fig.suptitle(title or f"highway {metric} per density: envpool vs highway-env")
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    return fig
