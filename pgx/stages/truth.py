"""Ground truth by real fine-tuning (Tables 1 and 2) and the ablations measured against it."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode
from tqdm.auto import tqdm

from pgx.affinity import affinity_matrix, sample_subsets
from pgx.envs import make_family
from pgx.evaluation import evaluate
from pgx.gradients import GaussianProjector, projected_grads
from pgx.policies import ActorCritic
from pgx.profiles import Profile
from pgx.rollouts import Samples
from pgx.runtime import seed_everything
from pgx.stages.cache import CODE_VERSION, memory, stage_args
from pgx.stages.pipeline import (
    gradient_features, meta_train, projector_for, surrogate_fit, theta_star_samples,
)
from pgx.surrogate import first_order_scores, fit_subsets

__all__ = ["GroundTruth", "ground_truth", "projection_ablation", "cost_by_depth", "subset_size_ablation"]


@dataclass
class GroundTruth:
    """Real PPO fine-tuning of θ* on each of the surrogate's subsets, and what it gives."""

    subsets: list[tuple[int, ...]]
    objective_scores: np.ndarray
    """``(m, n)`` per-task PPO objective ``mean Â·π_θS/π_θ*`` (exact ratio) on held-out θ* samples."""
    return_scores: np.ndarray
    """``(m, n)`` per-task return of θ_S (sampled actions, same episodes seeds for every subset)."""
    objective_affinity: np.ndarray
    return_affinity: np.ndarray
    taylor: list[dict]
    """One row per (subset, snapshot): subset index, steps, distance, rss, rss_zeroth."""
    finetune_time: float
    """Seconds of fine-tuning summed over subsets (what one core would spend)."""
    finetune_elapsed: float
    """Wall-clock seconds of the parallel fine-tuning."""
    finetune_flops: int
    """FLOPs of fine-tuning one subset (counted in a separate run of subset 0) times m."""


@memory.cache
def _ground_truth(family_name: str, profile: Profile, seed: int, code_version: str) -> GroundTruth:
    from pgx.finetune import finetune_subset, finetune_subsets
    from pgx.taylor import linearization_rss

    family = make_family(family_name)
    meta = meta_train(family_name, profile, seed)
    agent = meta.agent(family_name, profile)
    subsets = surrogate_fit(family_name, profile, seed).subsets
    init = (meta.train.actor_state, meta.train.critic_state)

    start = time.perf_counter()
    runs = finetune_subsets(family_name, init, subsets, profile.finetune_ppo, seed + 60_000, profile.snapshot_steps)
    elapsed = time.perf_counter() - start
    flops = finetune_subset(family_name, init, subsets[0], profile.finetune_ppo, seed + 60_000, count_flops=True).flops

    held_out = theta_star_samples(agent, family, profile, seed + 50_000)
    obs, actions = held_out.obs, held_out.actions
    theta_star = {k: v.detach() for k, v in agent.actor.named_parameters()}
    objective = _objective_scores(agent, runs, held_out, family.n_tasks)
    returns = np.full_like(objective, np.nan)
    taylor: list[dict] = []
    for s, run in enumerate(tqdm(runs, desc="evaluating fine-tuned policies")):
        tuned = meta.agent(family_name, profile)
        tuned.actor.load_state_dict(run.actor_state)
        returns[s, list(run.subset)] = evaluate(tuned.actor, family, run.subset, profile.plug_in_episodes,
                                                seed=seed + 40_000, greedy=False)
        if s < profile.taylor_subsets:
            for steps, weights in sorted(run.snapshots.items()):
                check = linearization_rss(agent.actor, theta_star, weights, obs, actions)
                taylor.append({"subset": s, "steps": steps, "distance": check.distance, "rss": check.rss,
                               "rss_zeroth": check.rss_zeroth})
    return GroundTruth(
        subsets=subsets, objective_scores=objective, return_scores=returns,
        objective_affinity=affinity_matrix(subsets, objective, family.n_tasks),
        return_affinity=affinity_matrix(subsets, returns, family.n_tasks),
        taylor=taylor, finetune_time=float(sum(r.wall_time for r in runs)), finetune_elapsed=elapsed,
        finetune_flops=flops * len(subsets),
    )


def _objective_scores(agent: ActorCritic, runs, held_out: Samples, n_tasks: int) -> np.ndarray:
    """``(m, n)`` exact PPO objective of each fine-tuned actor on the held-out θ* samples of its tasks."""
    from pgx.gradients import log_prob_at
    from pgx.validation import exact_objective_scores

    advantages, task_ids = held_out.advantages.cpu().numpy(), held_out.task_ids.cpu().numpy()
    scores = np.full((len(runs), n_tasks), np.nan)
    with torch.no_grad():
        log_star = agent.actor.log_prob(held_out.obs, held_out.actions)
        for s, run in enumerate(runs):
            log_theta = log_prob_at(agent.actor, run.actor_state, held_out.obs, held_out.actions)
            scores[s] = exact_objective_scores((log_theta - log_star).cpu().numpy(), advantages, task_ids,
                                               run.subset, n_tasks)
    return scores


def ground_truth(family_name: str, profile: Profile, seed: int) -> GroundTruth:
    """Fine-tune θ* for real on every surrogate subset (in parallel) and measure each task."""
    profile = stage_args(family_name, profile, seed)
    return _ground_truth(family_name, profile, seed, CODE_VERSION)


@memory.cache
def _projection_ablation(family_name: str, profile: Profile, seed: int, code_version: str) -> list[dict]:
    from pgx.clustering import sdp_cluster
    from pgx.validation import grouping_nmi, relative_error

    family = make_family(family_name)
    agent = meta_train(family_name, profile, seed).agent(family_name, profile)
    base = gradient_features(family_name, profile, seed)
    truth = ground_truth(family_name, profile, seed).objective_affinity
    subsets = surrogate_fit(family_name, profile, seed).subsets
    obs, actions = torch.as_tensor(base.obs), torch.as_tensor(base.actions)
    advantages, task_ids = torch.as_tensor(base.features.advantages), torch.as_tensor(base.features.task_ids)
    true_groups = sdp_cluster(truth, k=profile.num_groups, seed=seed)
    rows = []
    for d in tqdm(profile.ablation_dims, desc="projection dimension"):
        projector = GaussianProjector([tuple(p.shape) for p in agent.actor.parameters()], d, seed=seed)
        start = time.perf_counter()
        feats = projected_grads(agent.actor, obs, actions, projector)
        V = fit_subsets(feats, advantages, task_ids, subsets, profile.surrogate)
        scores = first_order_scores(feats, advantages, task_ids, subsets, V, family.n_tasks).cpu().numpy()
        seconds = time.perf_counter() - start
        estimate = affinity_matrix(subsets, scores, family.n_tasks)
        rows.append({"d": d, "relative error": relative_error(estimate, truth),
                     "nmi": grouping_nmi(sdp_cluster(estimate, k=profile.num_groups, seed=seed), true_groups),
                     "seconds": seconds})
    return rows


def projection_ablation(family_name: str, profile: Profile, seed: int) -> list[dict]:
    """Error and NMI of the first-order affinity against the objective ground truth, for each d."""
    profile = stage_args(family_name, profile, seed)
    return _projection_ablation(family_name, profile, seed, CODE_VERSION)


@memory.cache
def _cost_by_depth(family_name: str, profile: Profile, seed: int, depths: tuple[int, ...], timed_subsets: int,
                   code_version: str) -> list[dict]:
    from dataclasses import replace

    from pgx.finetune import finetune_subset, single_thread

    family = make_family(family_name)
    subsets = sample_subsets(family.n_tasks, profile.subset_size, profile.num_subsets, seed)
    rows = []
    for depth in tqdm(depths, desc="policy depth"):
        policy = replace(profile.meta_ppo.policy, layers=depth)
        seed_everything(seed)
        agent = ActorCritic(family.obs_dim, family.action_space, policy)
        with single_thread():  # both sides on one core, like each parallel fine-tuning job
            start = time.perf_counter()
            samples = theta_star_samples(agent, family, profile, seed + 30_000)
            projector = projector_for(agent, profile, seed)
            feats = projected_grads(agent.actor, samples.obs, samples.actions, projector)
            V = fit_subsets(feats, samples.advantages, samples.task_ids, subsets, profile.surrogate)
            first_order_scores(feats, samples.advantages, samples.task_ids, subsets, V, family.n_tasks)
            surrogate_seconds = time.perf_counter() - start
        with FlopCounterMode(display=False) as counter:
            feats = projected_grads(agent.actor, samples.obs, samples.actions, projector)
            fit_subsets(feats, samples.advantages, samples.task_ids, subsets, profile.surrogate)
        cfg = replace(profile.finetune_ppo, policy=policy)
        init = ({k: v.detach().clone() for k, v in agent.actor.state_dict().items()},
                {k: v.detach().clone() for k, v in agent.critic.state_dict().items()})
        runs = [finetune_subset(family_name, init, subsets[s], cfg, seed + s) for s in range(timed_subsets)]
        flops = finetune_subset(family_name, init, subsets[0], cfg, seed, count_flops=True).flops
        per_subset = float(np.mean([r.wall_time for r in runs]))
        rows.append({"layers": depth, "parameters": sum(p.numel() for p in agent.actor.parameters()),
                     "surrogate s": surrogate_seconds, "fine-tuning s (all subsets, one core)": per_subset * len(subsets),
                     "speed-up": per_subset * len(subsets) / surrogate_seconds,
                     "FLOPs ratio": flops * len(subsets) / counter.get_total_flops()})
    return rows


def cost_by_depth(family_name: str, profile: Profile, seed: int, depths: tuple[int, ...] = (2, 4, 6),
                  timed_subsets: int = 3) -> list[dict]:
    """Surrogate vs full fine-tuning cost for policies of several depths (Table 2's rows).

    Cost does not depend on how well a policy plays, so each depth starts from a fresh seeded
    initialisation; fine-tuning is timed on ``timed_subsets`` subsets and scaled to all m of them.
    """
    if timed_subsets < 1:
        raise ValueError(f"timed_subsets must be >= 1, got {timed_subsets}")
    profile = stage_args(family_name, profile, seed)
    return _cost_by_depth(family_name, profile, seed, tuple(depths), timed_subsets, CODE_VERSION)



@memory.cache
def _subset_size_ablation(family_name: str, profile: Profile, seed: int, sizes: tuple[int, ...], code_version: str) -> list[dict]:
    from pgx.clustering import sdp_cluster
    from pgx.finetune import finetune_subsets
    from pgx.validation import grouping_nmi, relative_error

    family = make_family(family_name)
    meta = meta_train(family_name, profile, seed)
    agent = meta.agent(family_name, profile)
    feats = gradient_features(family_name, profile, seed).features
    features, advantages, task_ids = (torch.as_tensor(x) for x in (feats.features, feats.advantages, feats.task_ids))
    held_out = theta_star_samples(agent, family, profile, seed + 50_000)
    rows = []
    for size in sizes:
        subsets = sample_subsets(family.n_tasks, size, profile.num_subsets, seed)
        V = fit_subsets(features, advantages, task_ids, subsets, profile.surrogate)
        estimate = affinity_matrix(subsets, first_order_scores(features, advantages, task_ids, subsets, V,
                                                               family.n_tasks).cpu().numpy(), family.n_tasks)
        runs = finetune_subsets(family_name, (meta.train.actor_state, meta.train.critic_state), subsets,
                                profile.finetune_ppo, seed + 60_000)
        truth = affinity_matrix(subsets, _objective_scores(agent, runs, held_out, family.n_tasks), family.n_tasks)
        k = profile.num_groups
        rows.append({"subset size": size, "relative error": relative_error(estimate, truth),
                     "nmi": grouping_nmi(sdp_cluster(estimate, k=k, seed=seed), sdp_cluster(truth, k=k, seed=seed))})
    return rows


def subset_size_ablation(family_name: str, profile: Profile, seed: int, sizes: tuple[int, ...]) -> list[dict]:
    """Error and NMI of the first-order affinity against real fine-tuning, for subsets of each size
    (each size gets its own m subsets and its own ground truth)."""
    profile = stage_args(family_name, profile, seed)
    n = make_family(family_name).n_tasks
    bad = [s for s in sizes if not 2 <= s <= n]
    if bad:
        raise ValueError(f"subset sizes must be in [2, {n}] so that pairs are covered, got {bad}")
    return _subset_size_ablation(family_name, profile, seed, tuple(sizes), CODE_VERSION)
