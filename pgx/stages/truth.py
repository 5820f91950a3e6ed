"""Ground truth by real fine-tuning (Tables 1 and 2) and the ablations measured against it."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, replace

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode
from tqdm.auto import tqdm

from pgx.affinity import affinity_matrix, sample_subsets
from pgx.envs import make_family
from pgx.evaluation import evaluate_episodes
from pgx.gradients import GaussianProjector, log_prob_at, projected_grads
from pgx.nets.policies import ActorCritic, flat_params
from pgx.profiles import Profile
from pgx.truth.reliability import Reliability, split_half_reliability
from pgx.runtime import seed_everything
from pgx.stages.graph import stage
from pgx.stages.pipeline import (
    FIT_ROLLOUT,
    SCORE_ROLLOUT,
    FeatureResult,
    fit_scaled,
    gradient_features,
    held_out_features,
    meta_train,
    projector_for,
    scoring_features,
    surrogate_fit,
    theta_star_samples,
)
from pgx.surrogate import first_order_scores
from pgx.truth.validation import exact_objective_scores

logger = logging.getLogger(__name__)

__all__ = ["GroundTruth", "ground_truth", "projection_ablation", "cost_by_depth", "subset_size_ablation",
           "ExactTruth", "exact_truth", "rss_by_distance", "ESTIMATORS", "verdicts", "budget_curves",
           "theta_budget_curve"]


@dataclass
class GroundTruth:
    """Real PPO fine-tuning of θ* on each of the surrogate's subsets, r times, and what it gives.

    Replicate j of every subset runs with the same seed (common random numbers). Scores are
    measured per replicate; the truth is their mean, and the split halves of the replicates say how
    far it can be trusted (``reliability``).
    """

    subsets: list[tuple[int, ...]]
    replicate_objective: np.ndarray
    """``(r, m, n)`` per-task PPO objective ``mean Â·π_θS/π_θ*`` (exact ratio) on held-out θ* samples."""
    replicate_returns: np.ndarray
    """``(r, m, n)`` per-task return of θ_S (sampled actions; every subset is evaluated from the same
    base seed, so a task's episodes share seeds across subsets where it holds the same position in
    the subset, and the action noise is drawn for the subset's batch as a whole)."""
    objective_by_steps: dict[int, np.ndarray]
    """Fine-tuning steps → ``(r, m, n)`` objective scores of the snapshot taken there."""
    objective_affinity: np.ndarray
    return_affinity: np.ndarray
    reliability: dict[str, Reliability]
    """``"objective"`` / ``"return"`` → split-half reliability of that truth."""
    reliability_by_steps: list[dict]
    """Split-half reliability of the objective truth had fine-tuning stopped at each snapshot."""
    taylor: list[dict]
    """One row per (subset, snapshot) of replicate 0: subset index, steps, distance, rss, rss_zeroth."""
    finetune_time: float
    """Seconds of fine-tuning summed over the subsets of one replicate (what one core would spend
    for a single-run truth, the cost the surrogate replaces), averaged over replicates."""
    finetune_elapsed: float
    """Wall-clock seconds of the parallel fine-tuning of all replicates; NaN when some runs were loaded
    from the store of finished runs (a resumed stage: no call's wall clock covers them all)."""
    finetune_flops: int
    """FLOPs of fine-tuning one subset (counted in a separate run of subset 0) times m: one replicate."""
    replicate_episode_returns: np.ndarray | None = None
    """``(r, m, n, e)``: each of the ``truth_episodes`` episodes behind ``replicate_returns`` (their
    mean), so the return truth can be rebuilt from its first episodes (budget curves)."""

    @property
    def replicates(self) -> int:
        return self.replicate_objective.shape[0]

    @property
    def objective_scores(self) -> np.ndarray:
        """``(m, n)`` mean over replicates."""
        return self.replicate_objective.mean(0)

    @property
    def return_scores(self) -> np.ndarray:
        return self.replicate_returns.mean(0)


@stage(reads=("finetune_ppo", "truth_replicates", "num_groups", "snapshot_steps", "truth_episodes", "taylor_subsets"))
def ground_truth(family_name: str, profile: Profile, seed: int) -> GroundTruth:
    """Fine-tune θ* for real on every surrogate subset (in parallel) and measure each task."""
    from pgx.truth.finetune import default_store, finetune_subset, finetune_subsets

    if profile.trainer != "ppo":
        raise ValueError(f"the ground truth fine-tunes θ* with PPO; {family_name}'s θ* is trained with {profile.trainer} "
                         f"(no {profile.trainer} fine-tuning truth yet)")
    from pgx.truth.taylor import linearization_rss

    family = make_family(family_name)
    meta = meta_train(family_name, profile, seed)
    agent = meta.agent(family_name, profile)
    subsets = surrogate_fit(family_name, profile, seed).subsets
    init = (meta.train.actor_state, meta.train.critic_state)
    cfg, r, k = profile.finetune_ppo, profile.truth_replicates, profile.num_groups

    start = time.perf_counter()
    # Replicate j of every subset: seed 60_000 + 1_000·seed + j, so validation seeds never share RL streams.
    # Each finished run is kept in the store: a stage killed halfway resumes.
    runs = finetune_subsets(family_name, init, subsets, cfg, _finetune_seed(seed), profile.snapshot_steps, replicates=r,
                            store=default_store())
    elapsed = _finetune_elapsed(family_name, runs, time.perf_counter() - start)
    flops = finetune_subset(family_name, init, subsets[0], cfg, _finetune_seed(seed), count_flops=True,
                            store=default_store()).flops

    held_out = held_out_features(family_name, profile, seed)
    obs, actions = torch.as_tensor(held_out.obs), torch.as_tensor(held_out.actions)
    theta_star = {k_: v.detach() for k_, v in agent.actor.named_parameters()}
    objective = _objective_scorer(agent, held_out, family.n_tasks)

    shape = (r, len(subsets), family.n_tasks)
    scores, episodes = np.full(shape, np.nan), np.full(shape + (profile.truth_episodes,), np.nan)
    by_steps: dict[int, np.ndarray] = {}
    taylor: list[dict] = []
    tuned = meta.agent(family_name, profile)
    for j, replicate in enumerate(runs):
        for s, run in enumerate(tqdm(replicate, desc=f"evaluating fine-tuned policies, replicate {j}")):
            scores[j, s] = objective(run.actor_state, run.subset)
            tuned.actor.load_state_dict(run.actor_state)
            episodes[j, s, list(run.subset)] = evaluate_episodes(tuned.actor, family, run.subset, profile.truth_episodes,
                                                                 seed=seed + 40_000, greedy=False)
            for steps, weights in sorted(run.snapshots.items()):
                by_steps.setdefault(steps, np.full(shape, np.nan))[j, s] = objective(weights, run.subset)
                if j == 0 and s < profile.taylor_subsets:
                    check = linearization_rss(agent.actor, theta_star, weights, obs, actions)
                    taylor.append({"subset": s, "steps": steps, "distance": check.distance, "rss": check.rss,
                                   "rss_zeroth": check.rss_zeroth})
    returns = episodes.mean(-1)
    reliability = {name: split_half_reliability(subsets, values, family.n_tasks, k, seed=seed)
                   for name, values in (("objective", scores), ("return", returns))}
    reliability_by_steps = [{"steps": steps, **split_half_reliability(subsets, values, family.n_tasks, k, seed=seed,
                                                                      bootstrap=0).row()}
                            for steps, values in sorted(by_steps.items())]
    return GroundTruth(
        subsets=subsets, replicate_objective=scores, replicate_returns=returns, objective_by_steps=by_steps,
        objective_affinity=affinity_matrix(subsets, scores.mean(0), family.n_tasks),
        return_affinity=affinity_matrix(subsets, returns.mean(0), family.n_tasks),
        reliability=reliability, reliability_by_steps=reliability_by_steps, taylor=taylor,
        finetune_time=float(sum(run.wall_time for replicate in runs for run in replicate)) / r,
        finetune_elapsed=elapsed, finetune_flops=flops * len(subsets), replicate_episode_returns=episodes,
    )


def _finetune_elapsed(family_name: str, runs: list[list], seconds: float) -> float:
    """``seconds``, the wall clock of the call that returned ``runs`` (``finetune_subsets``'s
    ``FinetuneResult`` lists), when that call computed them all; NaN when some came from the store
    of finished runs (a resumed stage), whose time no one call's clock covers. ``finetune_time``,
    the sum of each run's own seconds, is right either way."""
    loaded = sum(run.from_store for replicate in runs for run in replicate)
    if not loaded:
        return seconds
    logger.info("%s ground truth: %d of %d fine-tuning runs were loaded from the store, so finetune_elapsed "
                "is not recorded (NaN); finetune_time sums each run's own seconds", family_name, loaded,
                sum(len(replicate) for replicate in runs))
    return float("nan")


def _finetune_seed(seed: int) -> int:
    return 60_000 + 1_000 * seed


def _objective_scorer(agent: ActorCritic, held_out: FeatureResult, n_tasks: int):
    """``(actor state, subset) ↦ (n,)`` exact PPO objective of that actor on the held-out θ* samples
    of the subset's tasks (NaN elsewhere); θ*'s own log-probabilities are computed once."""
    obs, actions = torch.as_tensor(held_out.obs), torch.as_tensor(held_out.actions)
    advantages, task_ids = held_out.features.advantages, held_out.features.task_ids
    with torch.no_grad():
        log_star = agent.actor.log_prob(obs, actions)

    def score(state: dict[str, torch.Tensor], subset: tuple[int, ...]) -> np.ndarray:
        with torch.no_grad():
            log_theta = log_prob_at(agent.actor, state, obs, actions)
        return exact_objective_scores((log_theta - log_star).cpu().numpy(), advantages, task_ids, subset, n_tasks)

    return score


def _objective_scores(agent: ActorCritic, runs, held_out: FeatureResult, n_tasks: int) -> np.ndarray:
    """``(m, n)`` exact PPO objective of each fine-tuned actor on the held-out θ* samples of its tasks."""
    score = _objective_scorer(agent, held_out, n_tasks)
    return np.stack([score(run.actor_state, run.subset) for run in runs])


@stage(reads=("num_groups", "ablation_dims", "out_of_sample"))
def projection_ablation(family_name: str, profile: Profile, seed: int) -> list[dict]:
    """Error and NMI of the first-order affinity against the objective ground truth, for each d."""
    from pgx.clustering import sdp_cluster
    from pgx.truth.validation import grouping_nmi, relative_error

    family = make_family(family_name)
    agent = meta_train(family_name, profile, seed).agent(family_name, profile)
    base, scoring = gradient_features(family_name, profile, seed), held_out_features(family_name, profile, seed)
    truth = ground_truth(family_name, profile, seed).objective_affinity
    subsets = surrogate_fit(family_name, profile, seed).subsets
    true_groups = sdp_cluster(truth, k=profile.num_groups, seed=seed)
    rows = []
    for d in tqdm(profile.ablation_dims, desc="projection dimension"):
        projector = GaussianProjector([tuple(p.shape) for p in agent.actor.parameters()], d, seed=seed)
        start = time.perf_counter()
        feats = {}
        for name, source in (("fit", base), ("score", scoring)):
            f = projected_grads(agent.actor, torch.as_tensor(source.obs), torch.as_tensor(source.actions), projector)
            feats[name] = replace(source.features, features=f.numpy().astype(np.float32), dim=d,
                                  projector_fingerprint=projector.fingerprint())
        V = fit_scaled(feats["fit"], subsets, profile, agent, projector)
        used = feats["score"] if profile.out_of_sample else feats["fit"]
        scores = first_order_scores(torch.as_tensor(used.features), torch.as_tensor(used.advantages),
                                    torch.as_tensor(used.task_ids), subsets, V, family.n_tasks).cpu().numpy()
        seconds = time.perf_counter() - start
        estimate = affinity_matrix(subsets, scores, family.n_tasks)
        rows.append({"d": d, "relative error": relative_error(estimate, truth),
                     "nmi": grouping_nmi(sdp_cluster(estimate, k=profile.num_groups, seed=seed), true_groups),
                     "seconds": seconds})
    return rows


@stage(reads=("trainer", "subset_size", "num_subsets", "meta_ppo", "metaworld", "finetune_ppo", "steps_per_task",
               "per_task_baseline", "projection_dim", "surrogate", "out_of_sample"))
def _cost_by_depth(family_name: str, profile: Profile, seed: int, depths: tuple[int, ...],
                   timed_subsets: int) -> list[dict]:
    from dataclasses import replace

    from pgx.truth.finetune import finetune_subset, single_thread

    family = make_family(family_name)
    subsets = sample_subsets(family.n_tasks, profile.subset_size, profile.num_subsets, seed)
    rows = []
    for depth in tqdm(depths, desc="policy depth"):
        policy = replace(profile.meta_ppo.policy, layers=depth)
        seed_everything(seed)
        agent = ActorCritic(family.obs_dim, family.action_space, policy)
        with single_thread():  # both sides on one core, like each parallel fine-tuning job
            start = time.perf_counter()
            feats, samples, projector = _depth_features(agent, family, profile, seed)
            V = fit_scaled(feats["fit"], subsets, profile, agent, projector)
            score = feats["score"]
            first_order_scores(torch.as_tensor(score.features), torch.as_tensor(score.advantages),
                               torch.as_tensor(score.task_ids), subsets, V, family.n_tasks)
            surrogate_seconds = time.perf_counter() - start
        with FlopCounterMode(display=False) as counter:
            _depth_features(agent, family, profile, seed, samples=samples)
            fit_scaled(feats["fit"], subsets, profile, agent, projector)
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


def _depth_features(agent: ActorCritic, family, profile: Profile, seed: int,
                    samples: dict | None = None) -> tuple[dict, dict, GaussianProjector]:
    """What the surrogate computes before its fits, as the pipeline does: θ*'s two rollouts (fit and
    score) and their projected gradients. Given the ``samples`` of an earlier call, only the
    gradients are recomputed (FLOPs cover torch work only, not the environments)."""
    from pgx.gradients import GradientFeatures

    projector = projector_for(agent, profile, seed)
    if samples is None:
        samples = {name: theta_star_samples(agent, family, profile, seed + offset)
                   for name, offset in (("fit", FIT_ROLLOUT), ("score", SCORE_ROLLOUT))}
    feats = {name: GradientFeatures.compute(agent.actor, x.obs, x.actions, x.advantages, x.task_ids, projector)
             for name, x in samples.items()}
    return feats, samples, projector


def cost_by_depth(family_name: str, profile: Profile, seed: int, depths: tuple[int, ...] = (2, 4, 6),
                  timed_subsets: int = 3) -> list[dict]:
    """Surrogate vs full fine-tuning cost for policies of several depths (Table 2's rows). The
    surrogate side does what the pipeline does: two rollouts of θ*, their projected gradients, the
    fits with the profile's step, and the first-order scores.

    Cost does not depend on how well a policy plays, so each depth starts from a fresh seeded
    initialisation; fine-tuning is timed on ``timed_subsets`` subsets and scaled to all m of them.
    """
    if timed_subsets < 1:
        raise ValueError(f"timed_subsets must be >= 1, got {timed_subsets}")
    return _cost_by_depth(family_name, profile, seed, tuple(depths), timed_subsets)


@stage(reads=("num_groups", "num_subsets", "finetune_ppo", "out_of_sample", "surrogate"))
def _subset_size_ablation(family_name: str, profile: Profile, seed: int, sizes: tuple[int, ...]) -> list[dict]:
    from pgx.clustering import sdp_cluster
    from pgx.truth.finetune import default_store, finetune_subsets
    from pgx.truth.validation import grouping_nmi, relative_error

    family = make_family(family_name)
    meta = meta_train(family_name, profile, seed)
    agent = meta.agent(family_name, profile)
    feats, scoring = gradient_features(family_name, profile, seed).features, scoring_features(family_name, profile, seed)
    projector = projector_for(agent, profile, seed)
    held_out = held_out_features(family_name, profile, seed)
    k = profile.num_groups
    rows = []
    for size in sizes:
        subsets = sample_subsets(family.n_tasks, size, profile.num_subsets, seed)
        V = fit_scaled(feats, subsets, profile, agent, projector)
        estimate = affinity_matrix(subsets, first_order_scores(
            torch.as_tensor(scoring.features), torch.as_tensor(scoring.advantages), torch.as_tensor(scoring.task_ids),
            subsets, V, family.n_tasks).cpu().numpy(), family.n_tasks)
        # Two replicates (common random numbers): the least that measures this truth's reliability.
        runs = finetune_subsets(family_name, (meta.train.actor_state, meta.train.critic_state), subsets,
                                profile.finetune_ppo, _finetune_seed(seed), replicates=2, store=default_store())
        replicates = np.stack([_objective_scores(agent, replicate, held_out, family.n_tasks) for replicate in runs])
        truth = affinity_matrix(subsets, replicates.mean(0), family.n_tasks)
        reliability = split_half_reliability(subsets, replicates, family.n_tasks, k, seed=seed, bootstrap=0)
        rows.append({"subset size": size, "relative error": relative_error(estimate, truth),
                     "nmi": grouping_nmi(sdp_cluster(estimate, k=k, seed=seed), sdp_cluster(truth, k=k, seed=seed)),
                     "truth split-half nmi (1 vs 1 replicate)": reliability.nmi})
    return rows


def subset_size_ablation(family_name: str, profile: Profile, seed: int, sizes: tuple[int, ...]) -> list[dict]:
    """Error and NMI of the first-order affinity against real fine-tuning, for subsets of each size
    (each size gets its own m subsets and its own two-replicate ground truth, whose split-half NMI
    is reported beside)."""
    n = make_family(family_name).n_tasks
    bad = [s for s in sizes if not 2 <= s <= n]
    if bad:
        raise ValueError(f"subset sizes must be in [2, {n}] so that pairs are covered, got {bad}")
    return _subset_size_ablation(family_name, profile, seed, tuple(sizes))


# --- the offline exact truth and Table 1 ------------------------------------------------------

@dataclass
class ExactTruth:
    """Algorithm 1 with the exact log-ratio instead of its linearisation (``pgx.truth.exact``)."""

    subsets: list[tuple[int, ...]]
    V: np.ndarray
    """``(m, d)`` exact solutions."""
    scores: np.ndarray
    """``(m, n)`` exact PPO objective of θ* + P v_S on the held-out θ* samples (NaN outside S)."""
    affinity: np.ndarray
    direction_cosine: np.ndarray
    """``(m,)`` cosine between each exact Δθ and the surrogate's (1 = the same step)."""
    iterations: tuple[int, ...]
    converged: tuple[bool, ...]
    seconds: float


@stage(reads=())
def exact_truth(family_name: str, profile: Profile, seed: int) -> ExactTruth:
    """The offline exact truth: each subset's logistic problem solved with the real network's
    log-ratios (same samples, λ and step size as the surrogate), scored on held-out θ* samples."""
    from pgx.truth.exact import exact_fit_subsets

    family = make_family(family_name)
    agent = meta_train(family_name, profile, seed).agent(family_name, profile)
    fit_on, held_out = gradient_features(family_name, profile, seed), held_out_features(family_name, profile, seed)
    fit = surrogate_fit(family_name, profile, seed)
    projector = projector_for(agent, profile, seed)
    start = time.perf_counter()
    V0 = torch.as_tensor(fit.V)
    exact = exact_fit_subsets(agent.actor, torch.as_tensor(fit_on.obs), torch.as_tensor(fit_on.actions),
                              torch.as_tensor(fit_on.features.features), torch.as_tensor(fit_on.features.advantages),
                              torch.as_tensor(fit_on.features.task_ids), fit.subsets, projector, profile.surrogate,
                              start=V0)
    seconds = time.perf_counter() - start
    theta = flat_params(agent.actor)
    deltas, surrogate_deltas = projector.lift(exact.V.float()), projector.lift(V0.float())
    obs, actions = torch.as_tensor(held_out.obs), torch.as_tensor(held_out.actions)
    scores = np.full((len(fit.subsets), family.n_tasks), np.nan)
    with torch.no_grad():
        log_star = agent.actor.log_prob(obs, actions)
        for s, subset in enumerate(fit.subsets):
            torch.nn.utils.vector_to_parameters(theta + deltas[s], agent.actor.parameters())
            log_theta = agent.actor.log_prob(obs, actions)
            scores[s] = exact_objective_scores((log_theta - log_star).numpy(), held_out.features.advantages,
                                               held_out.features.task_ids, subset, family.n_tasks)
    cosine = torch.nn.functional.cosine_similarity(deltas, surrogate_deltas).numpy()
    return ExactTruth(subsets=fit.subsets, V=exact.V.numpy(), scores=scores,
                      affinity=affinity_matrix(fit.subsets, scores, family.n_tasks), direction_cosine=cosine,
                      iterations=exact.iterations, converged=exact.converged, seconds=seconds)


@stage(reads=("taylor_subsets", "table1_distances"))
def rss_by_distance(family_name: str, profile: Profile, seed: int) -> list[dict]:
    """Table 1: relative RSS of the first-order model along the surrogate's own steps Δθ_S, scaled to
    each of the profile's relative distances, on held-out θ* samples (``taylor_subsets`` subsets)."""
    from pgx.truth.taylor import linearization_rss

    agent = meta_train(family_name, profile, seed).agent(family_name, profile)
    held_out = held_out_features(family_name, profile, seed)
    fit = surrogate_fit(family_name, profile, seed)
    projector = projector_for(agent, profile, seed)
    names = [name for name, _ in agent.actor.named_parameters()]
    theta_star = {name: p.detach() for name, p in agent.actor.named_parameters()}
    flat = flat_params(agent.actor)
    obs, actions = torch.as_tensor(held_out.obs), torch.as_tensor(held_out.actions)
    directions = projector.lift(torch.as_tensor(fit.V[: profile.taylor_subsets]).float())
    rows = []
    for s, direction in enumerate(directions):
        for distance in profile.table1_distances:
            theta = flat + direction * (distance * flat.norm() / direction.norm())
            weights = dict(zip(names, (t.view_as(theta_star[n]) for n, t in
                                       zip(names, torch.split(theta, [p.numel() for p in theta_star.values()])))))
            check = linearization_rss(agent.actor, theta_star, weights, obs, actions)
            rows.append({"subset": s, "distance": distance, "rss": check.rss, "rss_zeroth": check.rss_zeroth})
    return rows


# --- the verdict table ------------------------------------------------------------------------

ESTIMATORS = ("first-order (PolicyGradEx)", "plug-in (PolicyGradEx)", "offline exact truth", "gradient similarity",
              "random groups", "first-order, λ step rescaled")
"""The last is the first-order route with the authors' group's step (λ alone, then rescaled to the
distance); present when the profile takes trust-region steps at a relative distance."""


@stage(reads=("num_groups",))
def verdicts(family_name: str, profile: Profile, seed: int) -> dict:
    """Every estimator (both PolicyGradEx routes, the offline exact truth, gradient similarity, random
    groups, and the first-order route with the rescaled λ step when the profile takes trust-region
    steps) against the replicated online truth — its objective and its return, the paper's kind — and
    the exact truth, with both online truths' reliability and group structure (the held-out gain of
    their own grouping over random groups, :mod:`pgx.truth.structure`) beside; NMI against the planted
    groups where the family has them."""
    from pgx.clustering import gradient_similarity, random_grouping, sdp_cluster
    from pgx.stages.pipeline import estimate_affinity
    from pgx.truth.structure import oracle_gain
    from pgx.truth.validation import compare, grouping_nmi

    family = make_family(family_name)
    k, n = profile.num_groups, family.n_tasks
    truth, exact = ground_truth(family_name, profile, seed), exact_truth(family_name, profile, seed)
    first_order = estimate_affinity(family_name, profile, seed, "first_order")
    plug_in = estimate_affinity(family_name, profile, seed, "plug_in")
    similarity = gradient_similarity(gradient_features(family_name, profile, seed).features.task_policy_gradients(n))
    estimates = {
        ESTIMATORS[0]: (first_order.affinity, first_order.scores),
        ESTIMATORS[1]: (plug_in.affinity, plug_in.scores),
        ESTIMATORS[2]: (exact.affinity, exact.scores),
        ESTIMATORS[3]: (similarity, None),
    }
    if profile.surrogate.relative_distance is not None and profile.surrogate.step == "trust_region":
        rescaled = profile.replaced(surrogate=replace(profile.surrogate, step="rescale"))
        agent = meta_train(family_name, profile, seed).agent(family_name, profile)
        fit = surrogate_fit(family_name, profile, seed)
        V = fit_scaled(gradient_features(family_name, profile, seed).features, fit.subsets, rescaled, agent,
                       projector_for(agent, profile, seed))
        held = scoring_features(family_name, profile, seed)
        scores = first_order_scores(torch.as_tensor(held.features), torch.as_tensor(held.advantages),
                                    torch.as_tensor(held.task_ids), fit.subsets, V, n).cpu().numpy()
        estimates[ESTIMATORS[5]] = (affinity_matrix(fit.subsets, scores, n), scores)
    rows = {}
    for name, (affinity, scores) in estimates.items():
        same_units = name != ESTIMATORS[3]  # gradient similarity is a cosine, not z-normalised scores
        row = {f"{key} vs truth": value for key, value in
               compare(affinity, truth.objective_affinity, k, seed, scores, truth.objective_scores, same_units).items()}
        row.update({f"{key} vs exact truth": value for key, value in
                    compare(affinity, exact.affinity, k, seed, scores, exact.scores, same_units).items()})
        # The paper's truth: returns after fine-tuning (other units than the objective: ranks and groups only).
        row.update({f"{key} vs return truth": value for key, value in
                    compare(affinity, truth.return_affinity, k, seed, scores, truth.return_scores, False).items()})
        rows[name] = row
    chance_truth, chance_exact = sdp_cluster(truth.objective_affinity, k=k, seed=seed), sdp_cluster(exact.affinity, k=k, seed=seed)
    chance_return = sdp_cluster(truth.return_affinity, k=k, seed=seed)
    draws = [random_grouping(n, k, seed + 1000 + r) for r in range(100)]
    rows[ESTIMATORS[4]] = {"NMI vs truth": float(np.mean([grouping_nmi(d, chance_truth) for d in draws])),
                           "NMI vs exact truth": float(np.mean([grouping_nmi(d, chance_exact) for d in draws])),
                           "NMI vs return truth": float(np.mean([grouping_nmi(d, chance_return) for d in draws]))}
    planted = family.planted_groups
    if planted is not None:
        groups = {name: sdp_cluster(affinity, k=k, seed=seed) for name, (affinity, _) in estimates.items()}
        groups["online truth"] = chance_truth
        groups["return truth"] = chance_return
        for name, labels in groups.items():
            rows.setdefault(name, {})["NMI vs planted groups"] = grouping_nmi(labels, np.asarray(planted))
        rows[ESTIMATORS[4]]["NMI vs planted groups"] = float(np.mean([grouping_nmi(d, np.asarray(planted)) for d in draws]))
    plug_in_reliability = split_half_reliability(plug_in.subsets, plug_in.replicate_scores, n, k, seed=seed, bootstrap=0)
    # Is there group structure for any estimator to find? The truth's own grouping, held out.
    structure = {kind: oracle_gain(truth.subsets, scores, n, k, seed=seed).row()
                 for kind, scores in (("truth", truth.replicate_objective), ("return truth", truth.replicate_returns))}
    # The target as the authors' group builds it (each task standardised across subsets) or raw.
    raw_truth = affinity_matrix(truth.subsets, truth.objective_scores, n, normalize=False)
    raw_estimate = affinity_matrix(first_order.subsets, first_order.scores, n, normalize=False)
    raw = {"truth reliability": split_half_reliability(truth.subsets, truth.replicate_objective, n, k, seed=seed,
                                                       bootstrap=0, normalize=False).row(),
           "first-order vs truth": compare(raw_estimate, raw_truth, k, seed, first_order.scores, truth.objective_scores,
                                           False)}
    return {"rows": rows, "truth reliability": truth.reliability["objective"].row(), "raw target": raw,
            "return truth reliability": truth.reliability["return"].row(),
            "truth structure": structure["truth"], "return truth structure": structure["return truth"],
            "plug-in reliability (1 half vs the other)": plug_in_reliability.row()}


@stage(reads=("num_groups",))
def budget_curves(family_name: str, profile: Profile, seed: int) -> dict[str, list[dict]]:
    """Budget curves of the ground truth (:mod:`pgx.truth.curves`): for the truth built from its
    first j replicates (objective and return), had fine-tuning stopped at each snapshot
    (objective), and measured with its first e evaluation episodes (return) — the split-half
    reliability, the oracle gain and the first-order estimate's NMI with that truth."""
    from pgx.stages.pipeline import estimate_affinity
    from pgx.truth.curves import by_episodes, by_replicates, by_steps

    truth = ground_truth(family_name, profile, seed)
    estimate = estimate_affinity(family_name, profile, seed, "first_order").affinity
    k = profile.num_groups
    curves = {kind: by_replicates(truth.subsets, scores, k, seed=seed, estimate=estimate)
              for kind, scores in (("objective", truth.replicate_objective), ("return", truth.replicate_returns))}
    curves["objective by steps"] = by_steps(truth.subsets, truth.objective_by_steps, k, seed=seed, estimate=estimate)
    curves["return by episodes"] = by_episodes(truth.subsets, truth.replicate_episode_returns, k, seed=seed,
                                               estimate=estimate)
    return curves


@stage(reads=("theta_fractions",))
def theta_budget_curve(family_name: str, profile: Profile, seed: int) -> list[dict]:
    """The estimate as θ*'s own budget grows: one row per fraction f of the meta-training steps
    (``Profile.theta_fractions``), with θ* trained on f of them (its own run: the learning rate
    anneals over its own budget), its mean greedy return, and the NMI of its first-order groups with
    the full-budget truth's (objective and return) and with the full-budget estimate's.

    The truth stays the one fine-tuned from the full-budget θ* (a truth per fraction would cost a
    ground truth each): the curve asks how much meta-training the gradients need to predict it."""
    from pgx.clustering import sdp_cluster
    from pgx.stages.pipeline import estimate_affinity, theta_star_returns
    from pgx.truth.validation import grouping_nmi

    if profile.trainer != "ppo":
        raise ValueError(f"the θ* budget curve retrains θ* with PPO's budget; {family_name} trains θ* with "
                         f"{profile.trainer!r}")
    k, total = profile.num_groups, profile.meta_ppo.total_timesteps
    truth = ground_truth(family_name, profile, seed)
    truths = {kind: sdp_cluster(affinity, k=k, seed=seed)
              for kind, affinity in (("objective", truth.objective_affinity), ("return", truth.return_affinity))}
    full = sdp_cluster(estimate_affinity(family_name, profile, seed, "first_order").affinity, k=k, seed=seed)
    rows = []
    for fraction in sorted(profile.theta_fractions):
        steps = max(1, round(fraction * total))
        if steps == total:
            at, groups = profile, full
        else:
            at = profile.replaced(meta_ppo=replace(profile.meta_ppo, total_timesteps=steps))
            groups = sdp_cluster(estimate_affinity(family_name, at, seed, "first_order").affinity, k=k, seed=seed)
        trained = int(meta_train(family_name, at, seed).train.steps[-1])  # whole PPO iterations: at least one
        rows.append({"θ* fraction": fraction, "θ* steps": trained,
                     "θ* mean return": float(theta_star_returns(family_name, at, seed).mean()),
                     "NMI(estimate, truth)": grouping_nmi(groups, truths["objective"]),
                     "NMI(estimate, return truth)": grouping_nmi(groups, truths["return"]),
                     "NMI(estimate, full-budget estimate)": grouping_nmi(groups, full)})
    return rows
