"""Cached stage functions: the one path by which chapters and the CLI run the pipeline.

family → meta-policy → gradient features → surrogate fit → affinity → groups.

Each stage is a module-level function of ``(family name, profile, seed)`` cached on disk with
``joblib.Memory``. joblib tracks only the cached function's own code, not what it calls, so every
cache key also carries ``CODE_VERSION``, a hash of all of pgx's sources: any edit to pgx re-runs
the stages (correct, if slow while developing). Results are small dataclasses; their recorded
``wall_time`` is the time the stage took when it was computed, not when it was loaded.
"""

from __future__ import annotations

import hashlib
import os
import time
from dataclasses import dataclass
from pathlib import Path

import joblib
import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode
from tqdm.auto import tqdm

from pgx.affinity import affinity_matrix, sample_subsets
from pgx.algos.ppo import TrainResult, train
from pgx.envs import make_family
from pgx.evaluation import episode_returns, evaluate
from pgx.gradients import GaussianProjector, GradientFeatures, projected_grads, theta_fingerprint
from pgx.policies import ActorCritic
from pgx.profiles import Profile
from pgx.rollouts import Samples, policy_samples
from pgx.runtime import seed_everything
from pgx.surrogate import delta_theta, first_order_scores, fit_subsets, rescale

__all__ = [
    "CODE_VERSION", "cache_dir", "MetaPolicy", "meta_train", "transfer_matrix", "FeatureResult",
    "gradient_features", "SurrogateFit", "surrogate_fit", "AffinityResult", "estimate_affinity",
    "GroundTruth", "ground_truth", "projection_ablation", "cost_by_depth", "subset_size_ablation",
    "generalization",
]


def _code_version() -> str:
    digest = hashlib.sha256()
    root = Path(__file__).parent
    for path in sorted(root.rglob("*.py")):
        digest.update(path.relative_to(root).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


CODE_VERSION = _code_version()


def cache_dir() -> Path:
    """``$PGX_CACHE``, else ``~/.cache/pgx``: stage results and training checkpoints live here."""
    return Path(os.environ.get("PGX_CACHE") or Path.home() / ".cache" / "pgx")


_memory = joblib.Memory(cache_dir() / "stages", verbose=0)


# --- meta-training -----------------------------------------------------------------------------

@dataclass
class MetaPolicy:
    """θ* and how good it is: the multitask PPO run on all source tasks."""

    train: TrainResult
    eval_returns: np.ndarray
    """``(n_tasks,)`` mean greedy return of θ* on each source task."""

    def agent(self, family_name: str, profile: Profile) -> ActorCritic:
        family = make_family(family_name)
        return self.train.agent(family.obs_dim, family.num_actions, profile.meta_ppo.policy)


@_memory.cache
def _meta_train(family_name: str, profile: Profile, seed: int, code_version: str) -> MetaPolicy:
    family = make_family(family_name)
    key = joblib.hash((family_name, profile.meta_ppo, seed, code_version))[:12]
    ckpt = cache_dir() / "checkpoints" / f"meta-{family_name}-{profile.name}-s{seed}-{key}.pt"
    result = train(family, range(family.n_tasks), profile.meta_ppo, seed, checkpoint_path=ckpt)
    agent = result.agent(family.obs_dim, family.num_actions, profile.meta_ppo.policy)
    returns = evaluate(agent.actor, family, range(family.n_tasks), profile.eval_episodes, seed=seed + 10_000)
    return MetaPolicy(train=result, eval_returns=returns)


def meta_train(family_name: str, profile: Profile, seed: int) -> MetaPolicy:
    """Multitask PPO on every source task of the family (checkpointed; resumes if interrupted)."""
    return _meta_train(family_name, profile, seed, CODE_VERSION)


# --- transfer between tasks --------------------------------------------------------------------

@_memory.cache
def _transfer_matrix(family_name: str, profile: Profile, seed: int, code_version: str) -> tuple[np.ndarray, float]:
    family = make_family(family_name)
    n = family.n_tasks
    from pgx.finetune import finetune_subsets

    matrix = np.zeros((n, n))
    start = time.perf_counter()
    # Independent runs, so in parallel (task i trains with seed + i).
    runs = finetune_subsets(family_name, None, [(i,) for i in range(n)], profile.single_task_ppo, seed)
    for i, run in enumerate(runs):
        agent = ActorCritic(family.obs_dim, family.num_actions, profile.single_task_ppo.policy)
        agent.actor.load_state_dict(run.actor_state)
        # Evaluate with task i's one-hot on every task, so only the dynamics change along a row.
        matrix[i] = _evaluate_with_task_id(agent, family, i, profile.eval_episodes, seed + 20_000)
    return matrix, time.perf_counter() - start


def _evaluate_with_task_id(agent: ActorCritic, family, shown_task: int, episodes: int, seed: int) -> np.ndarray:
    params = np.repeat(np.asarray(family.source_params), episodes)
    env = family.make_vec_env(params, np.full(params.size, shown_task), family.n_tasks)
    totals = episode_returns(agent.actor, env, seed, family.max_episode_steps + 1)
    return totals.reshape(family.n_tasks, episodes).mean(axis=1)


def transfer_matrix(family_name: str, profile: Profile, seed: int) -> tuple[np.ndarray, float]:
    """``(n, n)`` return on task j (column) of a policy trained on task i alone (row), and seconds taken."""
    return _transfer_matrix(family_name, profile, seed, CODE_VERSION)


# --- gradient features at θ* -------------------------------------------------------------------

@dataclass
class FeatureResult:
    features: GradientFeatures
    obs: np.ndarray
    """``(N, obs_dim)`` states the features were computed on (for Taylor checks)."""
    actions: np.ndarray
    """``(N,)`` actions taken there."""
    rollout_time: float
    gradient_time: float
    gradient_flops: int


@_memory.cache
def _gradient_features(family_name: str, profile: Profile, seed: int, code_version: str) -> FeatureResult:
    family = make_family(family_name)
    meta = meta_train(family_name, profile, seed)
    agent = meta.agent(family_name, profile)
    seed_everything(seed)

    # Rollouts of θ* itself; advantages from its own critic (GAE, as in training).
    start = time.perf_counter()
    samples = _theta_star_samples(agent, family, profile, seed + 30_000)
    rollout_time = time.perf_counter() - start

    start = time.perf_counter()
    projector = _projector(agent, profile, seed)
    features = projected_grads(agent.actor, samples.obs, samples.actions, projector)
    gradient_time = time.perf_counter() - start
    with FlopCounterMode(display=False) as counter:  # counted in a second, untimed pass
        projected_grads(agent.actor, samples.obs, samples.actions, projector)
    return FeatureResult(
        features=GradientFeatures(
            features=features.cpu().numpy().astype(np.float32),
            advantages=samples.advantages.cpu().numpy(),
            task_ids=samples.task_ids.cpu().numpy(),
            dim=profile.projection_dim,
            seed=seed,
            theta_fingerprint=theta_fingerprint(agent.actor),
            projector_fingerprint=projector.fingerprint(),
        ),
        obs=samples.obs.cpu().numpy(),
        actions=samples.actions.cpu().numpy(),
        rollout_time=rollout_time,
        gradient_time=gradient_time,
        gradient_flops=int(counter.get_total_flops()),
    )


def _theta_star_samples(agent: ActorCritic, family, profile: Profile, seed: int) -> Samples:
    cfg = profile.meta_ppo
    return policy_samples(agent, family, profile.steps_per_task, seed, cfg.gamma, cfg.gae_lambda)


def _projector(agent: ActorCritic, profile: Profile, seed: int) -> GaussianProjector:
    shapes = [tuple(p.shape) for p in agent.actor.parameters()]
    return GaussianProjector(shapes, profile.projection_dim, seed=seed)


def gradient_features(family_name: str, profile: Profile, seed: int) -> FeatureResult:
    """Projected per-sample gradients of log π(a|s) at θ*, with advantages and task ids."""
    return _gradient_features(family_name, profile, seed, CODE_VERSION)


# --- surrogate (Algorithm 1) -------------------------------------------------------------------

@dataclass
class SurrogateFit:
    subsets: list[tuple[int, ...]]
    V: np.ndarray
    """``(m, d)`` regression solutions (rescaled when the profile asks for a relative distance)."""
    fit_time: float
    fit_flops: int


@_memory.cache
def _surrogate_fit(family_name: str, profile: Profile, seed: int, code_version: str) -> SurrogateFit:
    family = make_family(family_name)
    feats = gradient_features(family_name, profile, seed).features
    agent = meta_train(family_name, profile, seed).agent(family_name, profile)
    projector = _projector(agent, profile, seed)
    feats.check_compatible(profile.projection_dim, seed, theta_fingerprint(agent.actor), projector.fingerprint())
    subsets = sample_subsets(family.n_tasks, profile.subset_size, profile.num_subsets, seed)
    start = time.perf_counter()
    V = fit_subsets(torch.as_tensor(feats.features), torch.as_tensor(feats.advantages),
                    torch.as_tensor(feats.task_ids), subsets, profile.surrogate)
    if profile.surrogate.relative_distance is not None:
        theta_norm = float(torch.cat([p.detach().reshape(-1) for p in agent.actor.parameters()]).norm())
        V = rescale(V, projector, theta_norm, profile.surrogate.relative_distance)
    fit_time = time.perf_counter() - start
    with FlopCounterMode(display=False) as counter:  # counted in a second, untimed pass
        fit_subsets(torch.as_tensor(feats.features), torch.as_tensor(feats.advantages),
                    torch.as_tensor(feats.task_ids), subsets, profile.surrogate)
    return SurrogateFit(subsets=subsets, V=V.cpu().numpy(), fit_time=fit_time, fit_flops=int(counter.get_total_flops()))


def surrogate_fit(family_name: str, profile: Profile, seed: int) -> SurrogateFit:
    """One weighted logistic regression per random subset, all solved at once."""
    return _surrogate_fit(family_name, profile, seed, CODE_VERSION)


# --- affinity (eq. 5) --------------------------------------------------------------------------

@dataclass
class AffinityResult:
    route: str
    subsets: list[tuple[int, ...]]
    scores: np.ndarray
    """``(m, n)`` estimated performance of each task after adapting on each subset (NaN outside it)."""
    affinity: np.ndarray
    """``(n, n)`` task affinity T."""
    score_time: float


ROUTES = ("first_order", "plug_in")


@_memory.cache
def _estimate_affinity(family_name: str, profile: Profile, seed: int, route: str, code_version: str) -> AffinityResult:
    family = make_family(family_name)
    fit = surrogate_fit(family_name, profile, seed)
    V = torch.as_tensor(fit.V)
    start = time.perf_counter()
    if route == "first_order":
        feats = gradient_features(family_name, profile, seed).features
        scores = first_order_scores(torch.as_tensor(feats.features), torch.as_tensor(feats.advantages),
                                    torch.as_tensor(feats.task_ids), fit.subsets, V, family.n_tasks)
        scores = np.asarray(scores.cpu().numpy() if torch.is_tensor(scores) else scores, dtype=np.float64)
    else:
        scores = _plug_in_scores(family_name, profile, seed, fit)
    return AffinityResult(route=route, subsets=fit.subsets, scores=scores,
                          affinity=affinity_matrix(fit.subsets, scores, family.n_tasks),
                          score_time=time.perf_counter() - start)


def _plug_in_scores(family_name: str, profile: Profile, seed: int, fit: SurrogateFit) -> np.ndarray:
    """Return of θ*+Δθ_S on each task of S, from real (sampled-action) rollouts.

    Every subset is evaluated with the same seed (common random numbers), so differences between
    subsets come from Δθ, not from the luck of the episodes.
    """
    family = make_family(family_name)
    agent = meta_train(family_name, profile, seed).agent(family_name, profile)
    projector = _projector(agent, profile, seed)
    theta_star = torch.cat([p.detach().reshape(-1) for p in agent.actor.parameters()])
    deltas = delta_theta(torch.as_tensor(fit.V), projector)
    scores = np.full((len(fit.subsets), family.n_tasks), np.nan)
    for s, subset in enumerate(tqdm(fit.subsets, desc="plug-in rollouts")):
        torch.nn.utils.vector_to_parameters(theta_star + deltas[s].to(theta_star), agent.actor.parameters())
        scores[s, list(subset)] = evaluate(agent.actor, family, subset, profile.plug_in_episodes,
                                           seed=seed + 40_000, greedy=False)
    return scores


def estimate_affinity(family_name: str, profile: Profile, seed: int, route: str = "first_order") -> AffinityResult:
    """Task affinity from the surrogate: ``route`` is ``"first_order"`` (linearised log-probabilities,
    no environment steps) or ``"plug_in"`` (real rollouts of θ*+Δθ)."""
    if route not in ROUTES:
        raise ValueError(f"unknown route {route!r}; choose one of {ROUTES}")
    return _estimate_affinity(family_name, profile, seed, route, CODE_VERSION)


# --- ground truth by real fine-tuning (Table 1, Table 2) ---------------------------------------

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


@_memory.cache
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

    held_out = _theta_star_samples(agent, family, profile, seed + 50_000)
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
    return _ground_truth(family_name, profile, seed, CODE_VERSION)


@_memory.cache
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
    return _projection_ablation(family_name, profile, seed, CODE_VERSION)


@_memory.cache
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
        agent = ActorCritic(family.obs_dim, family.num_actions, policy)
        with single_thread():  # both sides on one core, like each parallel fine-tuning job
            start = time.perf_counter()
            samples = _theta_star_samples(agent, family, profile, seed + 30_000)
            projector = _projector(agent, profile, seed)
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
    return _cost_by_depth(family_name, profile, seed, tuple(depths), timed_subsets, CODE_VERSION)


# --- generalization errors and the Hessian bound (section 4.4, Figure 3) -----------------------

from pgx.generalization import (  # noqa: E402  (this section was appended after the others)
    EstimatorComparison, compare_trace_estimators, largest_group, policy_gradient_hvp, source_samples,
    standardise_advantages, train_and_measure,
)
from pgx.runtime import is_int  # noqa: E402


@dataclass
class GeneralizationResult:
    """Figure 3 from one initialisation: the dynamics of the all-task run, the three training sets,
    and Hutch++ against Hutchinson on the final all-task policy's Hessian."""

    single_task: tuple[int, ...]
    """The first task of ``group``, so the three training sets are nested."""
    group: tuple[int, ...]
    """The largest PolicyGradEx group (first-order affinity, SDP with k = ``num_groups``)."""
    group_labels: np.ndarray
    """``(n,)`` the whole PolicyGradEx grouping the group was taken from."""
    dynamics: list[dict]
    """All-task run: ``iteration``, ``steps`` and ``Measurement.as_row()`` per snapshot."""
    by_tasks: list[dict]
    """``setting``, ``tasks``, ``num_tasks``, ``mean return`` (training episodes of the last tenth
    of the iterations) and ``Measurement.as_row()`` for the single task, the group and all tasks."""
    estimators: EstimatorComparison
    wall_time: float


@_memory.cache
def _generalization(family_name: str, profile: Profile, seed: int, code_version: str) -> GeneralizationResult:
    from pgx.clustering import sdp_cluster  # cvxpy loads only when grouping is needed
    from pgx.finetune import single_thread

    start = time.perf_counter()
    family = make_family(family_name)
    labels = sdp_cluster(estimate_affinity(family_name, profile, seed, "first_order").affinity,
                         k=profile.num_groups, seed=seed)
    # One thread: these networks are too small to gain from more, and on a shared 2-core machine
    # torch's spinning worker threads made a smoke run of this stage 20x slower.
    with single_thread():
        return _measure_generalization(family, profile, seed, labels, start)


def _measure_generalization(family, profile: Profile, seed: int, labels: np.ndarray, start: float) -> GeneralizationResult:
    cfg = profile.generalization
    group = largest_group(labels)
    all_tasks = tuple(range(family.n_tasks))
    settings = {"single task": group[:1], "PolicyGradEx group": group, "all tasks": all_tasks}

    # One initialisation θ⁰ for every run, so the three policies differ only in their tasks.
    seed_everything(seed)
    init_agent = ActorCritic(family.obs_dim, family.num_actions, cfg.ppo.policy)
    init = ({k: v.detach().clone() for k, v in init_agent.actor.state_dict().items()},
            {k: v.detach().clone() for k, v in init_agent.critic.state_dict().items()})
    runs, dynamics, by_tasks = {}, [], []
    for setting, tasks in settings.items():
        snapshots = cfg.snapshot_iterations() if tasks == all_tasks else (cfg.iterations - 1,)
        runs[setting], measured = train_and_measure(family, tasks, init, cfg, seed, snapshots)
        if tasks == all_tasks:
            batch = cfg.ppo.batch_size(len(tasks))
            dynamics = [{"iteration": i, "steps": (i + 1) * batch, **m.as_row()} for i, m in measured]
        tail = runs[setting].task_returns[-max(1, cfg.iterations // 10):]
        mean_return = float(np.nanmean(tail)) if np.isfinite(tail).any() else float("nan")
        by_tasks.append({"setting": setting, "tasks": tasks, "num_tasks": len(tasks), "mean return": mean_return,
                         **measured[-1][1].as_row()})

    # Hutch++ vs Hutchinson on the train-loss Hessian of the final all-task policy (same samples
    # as its last measurement: same rollout seed).
    agent = runs["all tasks"].agent(family.obs_dim, family.num_actions, cfg.ppo.policy)
    samples = source_samples(agent, family, all_tasks, cfg.steps_per_task, seed + 70_000,
                             cfg.ppo.gamma, cfg.ppo.gae_lambda)
    advantages, _ = standardise_advantages(samples.advantages, samples.advantages)
    hvp = policy_gradient_hvp(agent.actor, samples.obs, samples.actions, advantages)
    estimators = compare_trace_estimators(hvp, cfg.estimator_budgets, cfg.estimator_seeds, cfg.reference_matvecs, seed)
    return GeneralizationResult(single_task=group[:1], group=group, group_labels=labels, dynamics=dynamics,
                                by_tasks=by_tasks, estimators=estimators, wall_time=time.perf_counter() - start)


def generalization(family_name: str, profile: Profile, seed: int) -> GeneralizationResult:
    """Generalization error (target − source policy-gradient loss) and the Hessian bound of
    Theorem 1 for policies trained from one initialisation on one task, the largest PolicyGradEx
    group and all tasks, with snapshots of the all-task run (Figure 3); see ``pgx.generalization``."""
    make_family(family_name)  # an unknown name fails here, before any work
    if not isinstance(profile, Profile):
        raise ValueError(f"profile must be a pgx.profiles.Profile, got {type(profile).__name__}")
    if not is_int(seed) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    return _generalization(family_name, profile, int(seed), CODE_VERSION)


__all__ += ["GeneralizationResult", "generalization"]


@_memory.cache
def _subset_size_ablation(family_name: str, profile: Profile, seed: int, sizes: tuple[int, ...], code_version: str) -> list[dict]:
    from pgx.clustering import sdp_cluster
    from pgx.finetune import finetune_subsets
    from pgx.validation import grouping_nmi, relative_error

    family = make_family(family_name)
    meta = meta_train(family_name, profile, seed)
    agent = meta.agent(family_name, profile)
    feats = gradient_features(family_name, profile, seed).features
    features, advantages, task_ids = (torch.as_tensor(x) for x in (feats.features, feats.advantages, feats.task_ids))
    held_out = _theta_star_samples(agent, family, profile, seed + 50_000)
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
    n = make_family(family_name).n_tasks
    bad = [s for s in sizes if not 2 <= s <= n]
    if bad:
        raise ValueError(f"subset sizes must be in [2, {n}] so that pairs are covered, got {bad}")
    return _subset_size_ablation(family_name, profile, seed, tuple(sizes), CODE_VERSION)
