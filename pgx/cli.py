"""``python -m pgx STAGE --family FAMILY --profile smoke --seed 0 --out DIR``.

Runs one stage through the same cached functions the book uses and writes ``STAGE.json`` (figures
and timings) and, where there are arrays, ``STAGE.npz`` into ``--out``. Earlier stages a stage
needs are run (or loaded from the cache) first. ``--family`` takes any registered family with
options (``navigation:goals=partial``, ``cartpole:observe_task=false``); your own families are
registered by the modules named in ``$PGX_PLUGINS`` (comma-separated), imported first.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from pgx.envs import FAMILIES, load_plugins, make_family
from pgx.profiles import PROFILES, get_profile
from pgx.runtime import (
    MAX_SEED,
    UnreadableCheckpoint,
    env_seed,
    pick_device,
    save_json,
    save_npz,
)

__all__ = ["main", "run_stage", "STAGES"]

STAGES = ("train", "features", "affinity", "group", "validate", "groundtruth", "maml", "multitask")


class StageUnavailable(ValueError):
    """A stage this family does not have (the CLI reports it as a usage error)."""


METAWORLD = ("mt10", "mt50")
"""Families whose meta-policy is multitask SAC (:mod:`pgx.stages.metaworld`), not PPO."""


def run_stage(stage: str, family: str, profile_name: str, seed: int, route: str = "first_order") -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Run ``stage``; return its JSON summary and its arrays."""
    from pgx import stages
    from pgx.clustering import groupings

    if family.partition(":")[0] in METAWORLD:
        return _run_metaworld(stage, family, profile_name, seed, route)
    if stage == "multitask":
        raise StageUnavailable(f"the multitask stage (Table 3's Meta-World column) runs {' or '.join(METAWORLD)}, "
                               f"got family {family!r}")
    profile = get_profile(profile_name).for_family(family)
    head = {"stage": stage, "family": family, "profile": profile.name, "seed": seed, "budgets": profile.budgets()}
    if stage == "train":
        meta = stages.meta_train(family, profile, seed)
        returns = stages.theta_star_returns(family, profile, seed)
        return ({**head, "eval_returns": returns, "mean_eval_return": float(returns.mean()),
                 "wall_time_s": meta.train.wall_time},
                {"steps": meta.train.steps, "task_returns": meta.train.task_returns})
    if stage == "features":
        res = stages.gradient_features(family, profile, seed)
        f = res.features
        return ({**head, "num_samples": int(f.features.shape[0]), "dim": f.dim, "theta_fingerprint": f.theta_fingerprint,
                 "rollout_time_s": res.rollout_time, "gradient_time_s": res.gradient_time},
                {"features": f.features, "advantages": f.advantages, "task_ids": f.task_ids})
    if stage == "affinity":
        res = stages.estimate_affinity(family, profile, seed, route)
        fit = stages.surrogate_fit(family, profile, seed)
        return ({**head, "route": route, "subsets": [list(s) for s in res.subsets], "affinity": res.affinity,
                 "fit_time_s": fit.fit_time, "score_time_s": res.score_time},
                {"affinity": res.affinity, "scores": res.scores})
    if stage == "group":
        res = stages.estimate_affinity(family, profile, seed, route)
        k = profile.num_groups
        n = res.affinity.shape[0]
        feats = stages.gradient_features(family, profile, seed).features
        labels = {name.lower().replace(" ", "_"): found  # JSON keys: policygradex, random, gradient_similarity
                  for name, found in groupings(res.affinity, feats.task_policy_gradients(n), k, seed).items()}
        return {**head, "route": route, "k": k, "labels": {m: l.tolist() for m, l in labels.items()}}, labels
    if stage == "validate":
        truth = stages.ground_truth(family, profile, seed)
        table1 = stages.rss_by_distance(family, profile, seed)
        rss = np.array([row["rss"] for row in truth.taylor])
        distance = np.array([row["distance"] for row in truth.taylor])
        closest = rss[np.argsort(distance)[: max(1, len(rss) // 4)]]
        by_distance = {f"{d:g}": float(np.mean([row["rss"] for row in table1 if row["distance"] == d]))
                       for d in profile.table1_distances}
        return ({**head, "table1_mean_rss_by_relative_distance": by_distance, "table1": table1,
                 "taylor_along_finetuning": truth.taylor,
                 "rss_at_smallest_distances_max": float(closest.max()), "rss_max": float(rss.max())},
                {"distance": distance, "rss": rss,
                 "table1_distance": np.array([row["distance"] for row in table1]),
                 "table1_rss": np.array([row["rss"] for row in table1])})
    if stage == "groundtruth":
        truth = stages.ground_truth(family, profile, seed)
        exact = stages.exact_truth(family, profile, seed)
        estimate = stages.estimate_affinity(family, profile, seed, "first_order")
        features = stages.gradient_features(family, profile, seed)
        held_out = stages.held_out_features(family, profile, seed)
        fit = stages.surrogate_fit(family, profile, seed)
        surrogate_s = (features.rollout_time + features.gradient_time + held_out.rollout_time + held_out.gradient_time
                       + fit.fit_time + estimate.score_time)
        return ({**head, "k": profile.num_groups, "replicates": truth.replicates,
                 "verdicts": stages.verdicts(family, profile, seed),
                 "reliability_by_finetuning_steps": truth.reliability_by_steps,
                 "surrogate_s": surrogate_s, "finetune_one_replicate_one_core_s": truth.finetune_time,
                 "finetune_all_replicates_elapsed_s": truth.finetune_elapsed,
                 "speedup": truth.finetune_time / surrogate_s,
                 "flops_ratio": truth.finetune_flops / (features.gradient_flops + held_out.gradient_flops + fit.fit_flops),
                 "exact_truth_s": exact.seconds, "exact_truth_converged": sum(exact.converged)},
                {"estimated_affinity": estimate.affinity, "true_affinity": truth.objective_affinity,
                 "true_return_affinity": truth.return_affinity, "exact_affinity": exact.affinity,
                 "replicate_objective": truth.replicate_objective, "replicate_returns": truth.replicate_returns,
                 "estimated_scores": estimate.scores, "exact_scores": exact.scores})
    if stage == "maml":
        from pgx.stages.downstream import maml_transfer

        res = maml_transfer(family, profile, seed)
        methods = list(res.adaptations)
        return ({**head, "transfer_budgets": profile.transfer.budgets(),
                 "target_ids": list(res.target_ids), "groups": {g: l.tolist() for g, l in res.groups.items()},
                 "representatives": res.representatives, "ppo_env_steps": res.ppo_steps,
                 "mean_return_after_adaptation": res.final_returns(),
                 "per_target": {m: {"before": a.before, "after": a.after} for m, a in res.adaptations.items()},
                 "wall_time_s": res.wall_time},
                {"methods": np.array(methods),
                 "returns": np.stack([res.adaptations[m].returns for m in methods]),
                 **{f"maml_curve/{m}": np.stack([r.env_steps, r.returns_before, r.returns_after])
                    for m, r in res.maml.items()}})
    raise ValueError(f"unknown stage {stage!r}; choose one of {STAGES}")


def _run_metaworld(stage: str, family: str, profile_name: str, seed: int, route: str) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The Meta-World stages: a SAC meta-policy's features, affinity and groups, and ``multitask``."""
    from pgx.stages import metaworld as mw

    profile = mw.metaworld_profile(family, profile_name)
    head = {"stage": stage, "family": family, "profile": profile.name, "seed": seed,
            "budgets": {**profile.budgets(), **profile.metaworld.budgets()}}
    if route != "first_order":
        raise StageUnavailable(f"Meta-World families estimate affinity by the first-order route only, got --route {route}")
    if stage in ("validate", "groundtruth", "maml"):
        raise StageUnavailable(f"stage {stage!r} is not available for {family!r}: Meta-World has no SAC fine-tuning "
                               f"ground truth or MAML transfer yet; its stages are train, features, affinity, group, multitask")
    if stage == "multitask":
        if family.partition(":")[0] != "mt10":
            raise StageUnavailable(f"the multitask stage (Table 3's Meta-World column) runs mt10, got {family!r}")
        table = mw.multitask_table(family, profile, seed)
        return ({**head, "hardware": sorted({run.hardware for r in table.values() for run in r["runs"]}),
                 "success": {m: r["success"] for m, r in table.items()},
                 "mean_success": {m: float(np.nanmean(r["success"])) for m, r in table.items()},
                 "returns": {m: r["returns"] for m, r in table.items()},
                 "groups": {m: r["groups"].tolist() for m, r in table.items() if r["groups"] is not None},
                 "env_steps": {m: r["env_steps"] for m, r in table.items()}},
                {"methods": np.array(list(table)), "success": np.stack([r["success"] for r in table.values()])})
    if stage == "train":  # θ* alone: the same cached run the grouping starts from
        meta = mw.theta_star_run(family, profile, seed)
        head["hardware"] = meta.hardware  # where θ* trained, which may not be this machine (the cache)
        r = meta.result
        return ({**head, "eval_success": meta.success, "eval_returns": meta.returns,
                 "mean_eval_success": float(meta.success.mean()), "wall_time_s": r.wall_time},
                {"eval_steps": r.eval_steps, "eval_success": r.eval_success, "eval_returns": r.eval_returns,
                 "episode_steps": r.episode_steps, "episode_tasks": r.episode_tasks,
                 "episode_success": r.episode_success})
    res = mw.grouping(family, profile, seed)
    head["hardware"] = res.meta.hardware
    if stage == "features":
        f = res.features
        return ({**head, "num_samples": int(f.features.shape[0]), "dim": f.dim, "theta_fingerprint": f.theta_fingerprint,
                 "rollout_time_s": res.times["rollouts"], "gradient_time_s": res.times["gradients"]},
                {"features": f.features, "advantages": f.advantages, "task_ids": f.task_ids})
    if stage == "affinity":
        return ({**head, "route": route, "subsets": [list(s) for s in res.subsets], "affinity": res.affinity,
                 "times_s": res.times}, {"affinity": res.affinity, "scores": res.scores})
    if stage == "group":
        return ({**head, "route": route, "k": profile.num_groups,
                 "labels": {m.lower().replace(" ", "_"): l.tolist()
                            for m, l in res.groups.items()}, "times_s": res.times}, res.groups)
    raise ValueError(f"unknown stage {stage!r}; choose one of {STAGES}")


def main(argv: Sequence[str] | None = None) -> int:
    """Parse, check every input before any work (arguments and ``$PGX_*`` variables: a bad one is a
    one-line error and exit status 2, no traceback), run the stage, write its files."""
    try:
        load_plugins()
    except ValueError as e:
        return _fail(str(e))
    parser = argparse.ArgumentParser(prog="python -m pgx", description=__doc__.splitlines()[0])
    parser.add_argument("stage", choices=STAGES)
    parser.add_argument("--family", default="cartpole",
                        help=f"a family spec NAME[:key=value,...]; registered: {', '.join(sorted(FAMILIES))}")
    parser.add_argument("--profile", default=None, choices=sorted(PROFILES), help="default: $PGX_PROFILE or 'default'")
    parser.add_argument("--seed", type=int, default=None, help="default: $PGX_SEED or 0")
    parser.add_argument("--route", default="first_order", choices=("first_order", "plug_in"),
                        help="how subset performance is estimated (affinity, group)")
    parser.add_argument("--out", type=Path, default=Path("pgx-out"))
    args = parser.parse_args(argv)
    if args.seed is not None and not 0 <= args.seed <= MAX_SEED:
        parser.error(f"--seed must be in [0, {MAX_SEED}], got {args.seed}")
    try:
        make_family(args.family)
    except ValueError as e:
        parser.error(f"--family: {e}")
    if args.out.exists() and not args.out.is_dir():
        parser.error(f"--out must be a directory, got the file {args.out}")
    try:
        seed = env_seed() if args.seed is None else args.seed
        get_profile(args.profile)  # an unknown $PGX_PROFILE fails here, not after the imports of a stage
        pick_device()  # an unknown $PGX_DEVICE, or a GPU this machine lacks
        _check_cache_dir()
    except ValueError as e:
        return _fail(str(e))
    try:
        summary, arrays = run_stage(args.stage, args.family, args.profile, seed, args.route)
    except StageUnavailable as e:
        parser.error(str(e))
    except UnreadableCheckpoint as e:  # names the file and the fix; a traceback would add nothing
        return _fail(str(e), status=1)
    save_json(summary, args.out / f"{args.stage}.json")
    if arrays:
        save_npz(arrays, args.out / f"{args.stage}.npz")
    print(f"wrote {args.out / (args.stage + '.json')}", file=sys.stderr)
    return 0


def _check_cache_dir() -> None:
    raw = os.environ.get("PGX_CACHE")
    if raw and Path(raw).exists() and not Path(raw).is_dir():
        raise ValueError(f"PGX_CACHE must name a directory, got the file {raw!r}")


def _fail(message: str, status: int = 2) -> int:
    """One line on stderr, in argparse's format, and the exit status."""
    print(f"python -m pgx: error: {' '.join(message.split())}", file=sys.stderr)
    return status
