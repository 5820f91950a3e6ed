"""The pipeline's stages: family → meta-policy → gradient features → surrogate fit → affinity.

One pipeline for every family: θ* is trained by the profile's ``trainer`` for the family — PPO
(``meta_ppo``) or SAC (``metaworld``, Meta-World's families) — and from there the stages are the
same: per-sample gradients of log π at θ* (PPO's GAE advantages from its critic, SAC's soft
advantages Q − V from its critics, :mod:`pgx.sac_features`), Algorithm 1's fits, first-order
scores and eq. 5. Also the transfer matrix of single-task policies, which the family chapter uses
to show how much the tasks conflict.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode
from tqdm.auto import tqdm

from pgx.affinity import affinity_matrix, sample_subsets
from pgx.algos.ppo import TrainResult, train
from pgx.algos.sac import SACAgent, SACResult, to_env_action
from pgx.envs import TaskFamily, as_param_array, make_family
from pgx.evaluation import episode_returns, evaluate
from pgx.gradients import GaussianProjector, GradientFeatures, projected_grads, theta_fingerprint
from pgx.keys import checkpoint_path
from pgx.nets.policies import ActorCritic, flat_params
from pgx.profiles import Profile
from pgx.algos.rollouts import Samples, center_per_task, policy_samples
from pgx.runtime import seed_everything
from pgx.sac_features import sac_samples
from pgx.stages.graph import stage
from pgx.stages.sac_run import theta_star_run
from pgx.surrogate import delta_theta, first_order_scores, fit_subsets, fit_trust_region, rescale

__all__ = [
    "MetaPolicy", "meta_train", "theta_star_returns", "transfer_matrix", "FeatureResult", "gradient_features", "SurrogateFit",
    "surrogate_fit", "AffinityResult", "ROUTES", "estimate_affinity", "theta_star_samples", "projector_for",
    "held_out_features", "scoring_features", "fit_scaled", "theta_norm", "FIT_ROLLOUT", "SCORE_ROLLOUT",
]


# --- meta-training -----------------------------------------------------------------------------

@dataclass
class MetaPolicy:
    """θ*: the multitask run (PPO or SAC, ``Profile.trainer``) on all source tasks. How good it is
    per task is a stage of its own (:func:`theta_star_returns`)."""

    train: TrainResult | SACResult
    success: np.ndarray | None = None
    """SAC families: ``(n_tasks,)`` success rate per task (Meta-World's ``info["success"]``, from the
    SAC run, which evaluates as it ends); else None."""

    def agent(self, family_name: str, profile: Profile) -> ActorCritic | SACAgent:
        family, profile = make_family(family_name), profile.for_family(family_name)
        if profile.trainer == "sac":
            return SACAgent.from_result(family, self.train)
        else:
            return self.train.agent(family, profile.meta_ppo.policy)


@stage(reads=("trainer", "meta_ppo", "metaworld", "eval_episodes"))
def meta_train(family_name: str, profile: Profile, seed: int) -> MetaPolicy:
    """Multitask PPO, or SAC, on every source task of the family (checkpointed; resumes if interrupted).

    It does not evaluate θ* (:func:`theta_star_returns` does): what consumes θ* — features, fits,
    affinities, truths — is then not re-run by an edit to evaluation. ``eval_episodes`` is read for
    SAC's families only, whose one cached run trains and evaluates (it is MT-SAC's baseline too)."""
    family = make_family(family_name)
    if profile.trainer == "sac":  # the same cached run as Meta-World's MT-SAC baseline
        run = theta_star_run(family_name, profile, seed)
        return MetaPolicy(train=run.result, success=run.success)
    else:
        # Named by the trainer's code, not this stage's: an edit downstream of θ* resumes it.
        ckpt = checkpoint_path("ppo", family_name, profile.meta_ppo, seed, tuple(range(family.n_tasks)))
        return MetaPolicy(train=train(family, range(family.n_tasks), profile.meta_ppo, seed, checkpoint_path=ckpt))


@stage(reads=("eval_episodes",))
def theta_star_returns(family_name: str, profile: Profile, seed: int) -> np.ndarray:
    """``(n_tasks,)`` mean return of θ* on each source task (PPO: greedy, over ``eval_episodes``
    episodes seeded apart from training; SAC: deterministic, from its run)."""
    meta = meta_train(family_name, profile, seed)
    if profile.trainer == "sac":
        return theta_star_run(family_name, profile, seed).returns
    else:
        family = make_family(family_name)
        agent = meta.agent(family_name, profile)
        return evaluate(agent.actor, family, range(family.n_tasks), profile.eval_episodes, seed=seed + 10_000)


# --- transfer between tasks --------------------------------------------------------------------

@stage(reads=("single_task_ppo", "eval_episodes"))
def transfer_matrix(family_name: str, profile: Profile, seed: int) -> tuple[np.ndarray, float]:
    """``(n, n)`` return on task j (column) of a policy trained on task i alone (row), and seconds taken."""
    family = make_family(family_name)
    n = family.n_tasks
    from pgx.truth.finetune import default_store, finetune_subsets

    matrix = np.zeros((n, n))
    start = time.perf_counter()
    # Independent runs, so in parallel (every task with the same seed: common random numbers).
    # Each finished run is kept on disk as it completes, so a killed stage resumes with them.
    runs = finetune_subsets(family_name, None, [(i,) for i in range(n)], profile.single_task_ppo, seed,
                            store=default_store())[0]
    for i, run in enumerate(runs):
        agent = ActorCritic(family.obs_dim, family.action_space, profile.single_task_ppo.policy)
        agent.actor.load_state_dict(run.actor_state)
        # Evaluate with task i's one-hot on every task (when the family shows it), so only the
        # dynamics change along a row.
        matrix[i] = _evaluate_with_task_id(agent, family, i, profile.eval_episodes, seed + 20_000)
    return matrix, time.perf_counter() - start


def _evaluate_with_task_id(agent: ActorCritic, family: TaskFamily, shown_task: int, episodes: int,
                           seed: int) -> np.ndarray:
    params = np.repeat(as_param_array(family.source_params), episodes, axis=0)
    env = family.envs(params, np.full(len(params), shown_task))
    totals = episode_returns(agent.actor, env, seed, family.max_episode_steps + 1)
    return totals.reshape(family.n_tasks, episodes).mean(axis=1)


# --- gradient features at θ* -------------------------------------------------------------------

@dataclass
class FeatureResult:
    features: GradientFeatures
    obs: np.ndarray
    """``(N, obs_dim)`` states the features were computed on (for Taylor checks)."""
    actions: np.ndarray
    """``(N,)`` (Discrete) or ``(N, action_dim)`` (Box) actions taken there."""
    rollout_time: float
    gradient_time: float
    gradient_flops: int


FIT_ROLLOUT, SCORE_ROLLOUT = 30_000, 50_000
"""Seed offsets of θ*'s two rollouts: the surrogate fits on the first and scores on the second
(out of sample); the ground truth scores on the second too, so both sides are judged on the same
held-out samples."""


def _features(family_name: str, profile: Profile, seed: int, rollout_seed: int) -> FeatureResult:
    family = make_family(family_name)
    meta = meta_train(family_name, profile, seed)
    agent = meta.agent(family_name, profile)
    seed_everything(seed)

    # Rollouts of θ* itself; advantages from its own critic(s).
    start = time.perf_counter()
    samples = theta_star_samples(agent, family, profile, rollout_seed)
    rollout_time = time.perf_counter() - start

    start = time.perf_counter()
    projector = projector_for(agent, profile, seed)
    features = projected_grads(agent.actor, samples.obs, samples.actions, projector)
    gradient_time = time.perf_counter() - start
    # Counted in a second, untimed pass over at most FLOP_SAMPLES samples, scaled to all: a
    # sample's gradient costs the same whichever sample it is.
    counted = min(FLOP_SAMPLES, len(samples.obs))
    with FlopCounterMode(display=False) as counter:
        projected_grads(agent.actor, samples.obs[:counted], samples.actions[:counted], projector)
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
        gradient_flops=int(counter.get_total_flops() * len(samples.obs) / max(counted, 1)),
    )


FLOP_SAMPLES = 256
"""Samples the features' FLOPs are counted on (then scaled to all of them)."""


@stage(reads=("trainer", "steps_per_task", "per_task_baseline", "projection_dim", "metaworld"))
def gradient_features(family_name: str, profile: Profile, seed: int) -> FeatureResult:
    """Projected per-sample gradients of log π(a|s) at θ*, with advantages and task ids."""
    return _features(family_name, profile, seed, seed + FIT_ROLLOUT)


@stage(reads=("trainer", "steps_per_task", "per_task_baseline", "projection_dim", "metaworld"))
def held_out_features(family_name: str, profile: Profile, seed: int) -> FeatureResult:
    """The same as :func:`gradient_features` on a second, independent rollout of θ*: the samples
    on which estimates and ground truths are scored."""
    return _features(family_name, profile, seed, seed + SCORE_ROLLOUT)


def theta_star_samples(agent: ActorCritic | SACAgent, family, profile: Profile, seed: int) -> Samples:
    """Sampled-action rollouts of θ* on every source task with its own advantages — PPO's GAE from
    its critic, SAC's soft advantage Q − V from its critics (``pgx.sac_features``) — centred per task
    when the profile asks (``Profile.per_task_baseline``)."""
    if profile.trainer == "sac":
        budgets = profile.metaworld
        samples = sac_samples(agent, family, profile.steps_per_task, seed, budgets.value_samples,
                              lambda u: to_env_action(u, family.action_space), budgets.envs_per_task)
    else:
        cfg = profile.meta_ppo
        samples = policy_samples(agent, family, profile.steps_per_task, seed, cfg.gamma, cfg.gae_lambda)
    return center_per_task(samples) if profile.per_task_baseline else samples


def projector_for(agent: ActorCritic, profile: Profile, seed: int) -> GaussianProjector:
    shapes = [tuple(p.shape) for p in agent.actor.parameters()]
    return GaussianProjector(shapes, profile.projection_dim, seed=seed)


# --- surrogate (Algorithm 1) -------------------------------------------------------------------

@dataclass
class SurrogateFit:
    subsets: list[tuple[int, ...]]
    V: np.ndarray
    """``(m, d)`` regression solutions (rescaled when the profile asks for a relative distance)."""
    fit_time: float
    fit_flops: int


@stage(reads=("projection_dim", "subset_size", "num_subsets", "surrogate"))
def surrogate_fit(family_name: str, profile: Profile, seed: int) -> SurrogateFit:
    """One weighted logistic regression per random subset, all solved at once."""
    family = make_family(family_name)
    feats = gradient_features(family_name, profile, seed).features
    agent = meta_train(family_name, profile, seed).agent(family_name, profile)
    projector = projector_for(agent, profile, seed)
    feats.check_compatible(profile.projection_dim, seed, theta_fingerprint(agent.actor), projector.fingerprint())
    subsets = sample_subsets(family.n_tasks, profile.subset_size, profile.num_subsets, seed)
    start = time.perf_counter()
    V = fit_scaled(feats, subsets, profile, agent, projector)
    fit_time = time.perf_counter() - start
    with FlopCounterMode(display=False) as counter:  # counted in a second, untimed pass
        fit_scaled(feats, subsets, profile, agent, projector)
    return SurrogateFit(subsets=subsets, V=V.cpu().numpy(), fit_time=fit_time, fit_flops=int(counter.get_total_flops()))


def fit_scaled(feats: GradientFeatures, subsets, profile: Profile, agent: ActorCritic,
               projector: GaussianProjector) -> torch.Tensor:
    """Algorithm 1's fits, taken to the profile's relative distance when it sets one (on the
    trust-region sphere, or rescaled: ``SurrogateConfig.step``): the one place every route, truth
    and ablation gets its Δθ = P v from, so all use the same step size."""
    features, advantages, task_ids = (torch.as_tensor(x) for x in (feats.features, feats.advantages, feats.task_ids))
    cfg = profile.surrogate
    V = fit_subsets(features, advantages, task_ids, subsets, cfg)
    if cfg.relative_distance is None:
        return V
    V = rescale(V, projector, theta_norm(agent), cfg.relative_distance)
    if cfg.step == "trust_region":
        V = fit_trust_region(features, advantages, task_ids, subsets, projector,
                             cfg.relative_distance * theta_norm(agent), cfg, start=V)
    return V


def theta_norm(agent: ActorCritic) -> float:
    """‖θ*‖ over the actor's parameters."""
    return float(flat_params(agent.actor).norm())


def scoring_features(family_name: str, profile: Profile, seed: int) -> GradientFeatures:
    """The features first-order scores are computed on: held-out ones when the profile scores out
    of sample (fitting and scoring on the same samples favours the fitted subset), else the fit's own."""
    if profile.for_family(family_name).out_of_sample:
        return held_out_features(family_name, profile, seed).features
    return gradient_features(family_name, profile, seed).features


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
    replicate_scores: np.ndarray | None = None
    """Plug-in route: ``(2, m, n)``, the scores of two independent halves of the episodes (their
    agreement is the route's own reliability); None for the first-order route, which has no noise."""


ROUTES = ("first_order", "plug_in")


@stage(reads=("out_of_sample", "plug_in_episodes", "trainer"))
def estimate_affinity(family_name: str, profile: Profile, seed: int, route: str = "first_order") -> AffinityResult:
    """Task affinity from the surrogate: ``route`` is ``"first_order"`` (linearised log-probabilities,
    no environment steps) or ``"plug_in"`` (real rollouts of θ*+Δθ)."""
    if route not in ROUTES:
        raise ValueError(f"unknown route {route!r}; choose one of {ROUTES}")
    family = make_family(family_name)
    fit = surrogate_fit(family_name, profile, seed)
    V = torch.as_tensor(fit.V)
    start = time.perf_counter()
    if route == "first_order":
        feats = scoring_features(family_name, profile, seed)
        scores = first_order_scores(torch.as_tensor(feats.features), torch.as_tensor(feats.advantages),
                                    torch.as_tensor(feats.task_ids), fit.subsets, V, family.n_tasks)
        scores = np.asarray(scores.cpu().numpy() if torch.is_tensor(scores) else scores, dtype=np.float64)
        halves = None
    else:
        if profile.trainer != "ppo":
            raise ValueError(f"the plug-in route evaluates θ*+Δθ with PPO's actor; {family_name} trains θ* with "
                             f"{profile.trainer}: use route='first_order'")
        halves = _plug_in_scores(family_name, profile, seed, fit)
        scores = halves.mean(0)
    return AffinityResult(route=route, subsets=fit.subsets, scores=scores, replicate_scores=halves,
                          affinity=affinity_matrix(fit.subsets, scores, family.n_tasks),
                          score_time=time.perf_counter() - start)


def _plug_in_scores(family_name: str, profile: Profile, seed: int, fit: SurrogateFit) -> np.ndarray:
    """Return of θ*+Δθ_S on each task of S from real (sampled-action) rollouts: ``(2, m, n)``, two
    independent halves of ``plug_in_episodes`` episodes each, so the route's own noise is measured.

    Every subset is evaluated with the same seeds (common random numbers), so differences between
    subsets come from Δθ, not from the luck of the episodes.
    """
    family = make_family(family_name)
    agent = meta_train(family_name, profile, seed).agent(family_name, profile)
    projector = projector_for(agent, profile, seed)
    theta_star = flat_params(agent.actor)
    deltas = delta_theta(torch.as_tensor(fit.V), projector)
    scores = np.full((2, len(fit.subsets), family.n_tasks), np.nan)
    for s, subset in enumerate(tqdm(fit.subsets, desc="plug-in rollouts")):
        torch.nn.utils.vector_to_parameters(theta_star + deltas[s].to(theta_star), agent.actor.parameters())
        for half in range(2):
            scores[half, s, list(subset)] = evaluate(agent.actor, family, subset, profile.plug_in_episodes,
                                                     seed=seed + 40_000 + 1_000 * half, greedy=False)
    return scores


