"""Generalization error of policies and the Hessian bound of Theorem 1 (section 4.4, Figure 3).

Section 4.4 compares a policy's *policy-gradient loss* on the tasks it was trained on (train)
with the same loss on unseen target tasks (test), and sets the gap beside the Hessian measure of
Theorem 1. The definitions used here (the paper's symbols were lost in our copy):

* **Samples.** A policy θ (actor and critic) is rolled out with sampled actions; advantages Â are
  GAE from its own critic, exactly as in PPO (``pgx.algos.rollouts.collect`` and ``gae``). Train
  samples come from the source tasks θ was trained on (``policy_samples``, kept to those tasks),
  test samples from unseen target tasks (``target_samples``, ``family.target_envs``).
* **Standardisation.** Both sets' advantages are standardised with the *train* set's mean and
  (unbiased) std: Ã = (Â − μ_train)/σ_train. Raw GAE scales with the episode length the policy
  reaches, so without it a policy that balances longer would have larger losses for no other
  reason; the same affine map on both sets keeps train and test comparable. PPO standardises its
  advantages the same way, so this is the loss the policy was trained on. A consequence worth
  knowing: the train loss is 0 by construction, and the gap is (μ_train − μ_test)/σ_train.
* **Loss.** With the sampling log-probabilities held fixed,

      L(θ') = −mean_t Ã_t · π_θ'(a_t|s_t) / π_θ(a_t|s_t),

  evaluated at θ' = θ, where it equals −mean_t Ã_t; its Hessian in θ' at θ' = θ,
  −mean_t Ã_t ∇²(π_θ'/π_θ), is what the trace estimators measure (the actor's parameters only).
  The per-sample loss is ℓ_t = −Ã_t, and its **range** C = max_t ℓ_t − min_t ℓ_t over the train
  samples stands in for the bound C on the loss that Theorem 1 assumes.
* **Generalization error** = L_test − L_train.
* **Bound** = ``pgx.hessian.generalization_bound(tr H⁺, ‖θ − θ⁰‖², C, n)`` with tr H⁺ the
  truncated trace of the *full* train-loss Hessian (one SLQ estimate, not the group's layer-wise
  sum), θ⁰ the policy's initialisation and n the number of train samples.
* **Non-vacuous**: the bound is at least the observed error (it holds) and below C (a bound of C
  or more says nothing about a loss whose range is C).

Everything is a function of explicit configs, samples and seeds; the cached stage that trains
the policies of Figure 3 is ``pgx.stages.hessian_bound``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace

import numpy as np
import torch
from tqdm.auto import tqdm

from pgx.algos.ppo import PPOConfig, TrainResult, train
from pgx.checks import KeyedByChanges
from pgx.envs import TaskFamily
from pgx.hessian import (
    HessianVectorProduct,
    flatten,
    generalization_bound,
    hutchinson_trace,
    hutchpp_trace,
    module_hessian_vector_product,
    top_eigenvalue,
    truncated_trace,
)
from pgx.gradients import LogProb
from pgx.nets.policies import Actor, ActorCritic
from pgx.algos.rollouts import Samples, env_samples, policy_samples
from pgx.runtime import is_int

__all__ = [
    "GeneralizationConfig",
    "Measurement",
    "EstimatorComparison",
    "source_samples",
    "target_samples",
    "standardise_advantages",
    "policy_gradient_loss",
    "policy_gradient_hvp",
    "measure",
    "measure_policy",
    "train_and_measure",
    "compare_trace_estimators",
    "largest_group",
]


@dataclass(frozen=True)
class GeneralizationConfig(KeyedByChanges):
    """Budgets of the generalization measurements (Figure 3)."""

    iterations: int = 60
    """PPO iterations of every run from the initialisation; runs on 1, |group| and 10 tasks get
    the same number of iterations of the same steps per task, as in the paper's setup."""
    ppo: PPOConfig = field(default_factory=lambda: PPOConfig(envs_per_task=4, num_steps=128, learning_rate=1e-3))
    """PPO settings of those runs; ``total_timesteps`` is replaced by ``iterations`` batches
    (see ``ppo_for``)."""
    snapshots: int = 6
    """Evenly spaced iterations of the all-task run that are measured (Figure 3a); the last
    iteration is always one of them."""
    steps_per_task: int = 300
    """Environment steps per task of the train and of the test samples."""
    num_target_tasks: int = 25
    """Unseen target tasks of the test samples, evenly spaced over the family's targets."""
    trace_matvecs: int = 60
    """Hessian-vector products for tr H⁺ (stochastic Lanczos quadrature)."""
    lanczos_steps: int = 20
    """Lanczos steps per SLQ probe: ``trace_matvecs // lanczos_steps`` probes."""
    estimator_budgets: tuple[int, ...] = (15, 30, 60)
    """Matvec budgets m at which Hutch++ and Hutchinson are compared; multiples of 3, so that
    Hutch++ spends exactly m."""
    estimator_seeds: int = 10
    """Independent runs of each estimator per budget."""
    reference_matvecs: int = 1000
    """Hutchinson probes of the reference trace the two estimators are scored against."""

    def __post_init__(self) -> None:
        for name in ("iterations", "snapshots", "steps_per_task", "num_target_tasks", "trace_matvecs",
                     "lanczos_steps", "estimator_seeds", "reference_matvecs"):
            value = getattr(self, name)
            if not is_int(value) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        if self.snapshots > self.iterations:
            raise ValueError(f"snapshots must be <= iterations ({self.iterations}), got {self.snapshots}")
        if self.trace_matvecs < self.lanczos_steps:
            raise ValueError(
                f"trace_matvecs must be >= lanczos_steps ({self.lanczos_steps}) for one SLQ probe, "
                f"got {self.trace_matvecs}"
            )
        if not self.estimator_budgets or any(not is_int(m) or m < 3 or m % 3 for m in self.estimator_budgets):
            raise ValueError(
                f"estimator_budgets must be a non-empty tuple of multiples of 3 (>= 3), got {self.estimator_budgets!r}"
            )
        if self.estimator_seeds < 2:
            raise ValueError(f"estimator_seeds must be >= 2 to measure a spread, got {self.estimator_seeds}")

    def ppo_for(self, n_tasks: int) -> PPOConfig:
        """PPO config of a run on ``n_tasks`` tasks: ``iterations`` batches of its size, so every
        run takes the same number of updates and the same steps per task."""
        if not is_int(n_tasks) or n_tasks < 1:
            raise ValueError(f"n_tasks must be an integer >= 1, got {n_tasks!r}")
        return replace(self.ppo, total_timesteps=self.iterations * self.ppo.batch_size(n_tasks))

    def snapshot_iterations(self) -> tuple[int, ...]:
        """0-based iterations measured in the all-task run: ``snapshots`` evenly spaced, ending
        with the last."""
        points = np.linspace(self.iterations / self.snapshots - 1, self.iterations - 1, self.snapshots)
        return tuple(int(i) for i in np.unique(np.round(points).astype(int)))


@dataclass(frozen=True)
class Measurement:
    """Train and test loss of one policy, its generalization error and the bound of Theorem 1.

    Losses are in units of the train set's advantage std (see the module docstring).
    """

    train_loss: float
    test_loss: float
    generalization_error: float
    """``test_loss − train_loss``."""
    trace: float
    """tr H⁺ of the train loss (SLQ estimate)."""
    trace_std_error: float
    """Probe-noise standard error of ``trace`` (nan with one probe)."""
    distance_sq: float
    """‖θ − θ⁰‖² of the actor's parameters."""
    loss_range: float
    """C = max − min of the per-sample train losses."""
    num_train_samples: int
    num_test_samples: int
    bound: float
    """``generalization_bound(trace, distance_sq, loss_range, num_train_samples)``."""

    @property
    def bound_holds(self) -> bool:
        """The bound is at least the observed generalization error."""
        return self.bound >= self.generalization_error

    @property
    def bound_below_range(self) -> bool:
        """The bound is below the loss range C, so it says more than the range alone."""
        return self.bound < self.loss_range

    @property
    def non_vacuous(self) -> bool:
        return self.bound_holds and self.bound_below_range

    def as_row(self) -> dict[str, float | int | bool]:
        """The fields plus the three verdicts, for a table."""
        return {**asdict(self), "bound holds": self.bound_holds, "bound < C": self.bound_below_range,
                "non-vacuous": self.non_vacuous}


# --- samples ------------------------------------------------------------------------------------


def source_samples(
    agent: ActorCritic,
    family: TaskFamily,
    task_ids: Sequence[int],
    steps_per_task: int,
    seed: int,
    gamma: float,
    gae_lambda: float,
) -> Samples:
    """Train samples: ``policy_samples`` on every source task, kept to ``task_ids`` (the tasks the
    policy was trained on). Rolling out the other tasks too wastes a few cheap steps but keeps
    one sampling path for every policy."""
    ids = family.check_tasks(task_ids)
    samples = policy_samples(agent, family, steps_per_task, seed, gamma, gae_lambda)
    keep = torch.isin(samples.task_ids, torch.as_tensor(ids, device=samples.task_ids.device))
    return Samples(obs=samples.obs[keep], actions=samples.actions[keep], advantages=samples.advantages[keep],
                   task_ids=samples.task_ids[keep])


def target_samples(
    agent: ActorCritic,
    family: TaskFamily,
    target_ids: Sequence[int],
    steps_per_task: int,
    seed: int,
    gamma: float,
    gae_lambda: float,
    envs_per_task: int = 4,
) -> Samples:
    """Test samples: like ``policy_samples`` on unseen target tasks (their one-hot is zero).

    ``task_ids`` of the result are indices into ``family.target_params``.
    """
    if not is_int(steps_per_task) or steps_per_task < 1:
        raise ValueError(f"steps_per_task must be an integer >= 1, got {steps_per_task!r}")
    ids = np.asarray(target_ids, dtype=np.int64).reshape(-1)
    env = family.target_envs(ids, envs_per_task)  # validates the ids
    return env_samples(agent, env, np.repeat(ids, envs_per_task), -(-steps_per_task // envs_per_task), seed,
                       gamma, gae_lambda)


def standardise_advantages(
    train_advantages: torch.Tensor, test_advantages: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Both sets mapped by Ã = (Â − μ_train)/σ_train (unbiased std), so train and test losses,
    and losses of different policies, are in the same units.

    :param train_advantages: ``(n,)``, n >= 2 and not all equal.
    :param test_advantages: ``(n_test,)``, n_test >= 1.
    """
    for name, adv, minimum in (("train_advantages", train_advantages, 2), ("test_advantages", test_advantages, 1)):
        if adv.dim() != 1 or adv.numel() < minimum:
            raise ValueError(f"{name} must be a 1-D tensor with >= {minimum} entries, got shape {tuple(adv.shape)}")
        if not torch.isfinite(adv).all():
            raise ValueError(f"{name} has non-finite entries (nan or inf)")
    mean, std = train_advantages.mean(), train_advantages.std()
    if not std > 0:
        raise ValueError(f"train_advantages are all equal ({mean.item():.6g}); they have no scale to standardise by")
    return (train_advantages - mean) / std, (test_advantages - mean) / std


# --- the loss and its Hessian -------------------------------------------------------------------


def policy_gradient_loss(
    log_probs: torch.Tensor, advantages: torch.Tensor, sampling_log_probs: torch.Tensor
) -> torch.Tensor:
    """L = −mean_t Â_t · π(a_t|s_t)/π_θ(a_t|s_t) from the log-probabilities of π; a scalar.

    The ratio form (not Â·log π) is the surrogate PPO optimises; its value at θ' = θ is −mean Â
    and its Hessian there adds the score outer products ∇log π ∇log πᵀ to ∇²log π. Taking
    ``log π(a|s)`` (not logits) makes it the same for Categorical and Gaussian policies.

    :param log_probs: ``(N,)`` log π_θ'(a_t|s_t) of the evaluated policy θ'.
    :param advantages: ``(N,)``.
    :param sampling_log_probs: ``(N,)`` log π_θ(a_t|s_t) of the policy that collected the samples,
        held fixed (no gradient flows into it).
    """
    n = log_probs.shape[0] if log_probs.dim() == 1 else -1
    if log_probs.dim() != 1 or advantages.shape != (n,) or sampling_log_probs.shape != (n,):
        raise ValueError(
            f"need log_probs (N,), advantages (N,), sampling_log_probs (N,); got "
            f"{tuple(log_probs.shape)}, {tuple(advantages.shape)}, {tuple(sampling_log_probs.shape)}"
        )
    return -(advantages * torch.exp(log_probs - sampling_log_probs.detach())).mean()


def policy_gradient_hvp(
    actor: Actor, obs: torch.Tensor, actions: torch.Tensor, advantages: torch.Tensor
) -> HessianVectorProduct:
    """The matvec v ↦ H v, H = ∇²_θ' L(θ') at θ' = θ (the actor's current parameters), with the
    sampling log-probabilities taken from the actor itself: the samples are on-policy.

    :param actor: the policy θ; its parameters are not modified.
    :param obs: ``(N, obs_dim)``; ``actions``: ``(N,)`` or ``(N, action_dim)``; ``advantages``: ``(N,)``.
    """
    _check_batch(obs, actions, advantages)
    with torch.no_grad():
        sampling_log_probs = actor.log_prob(obs, actions)

    def loss(log_probs: torch.Tensor) -> torch.Tensor:
        return policy_gradient_loss(log_probs, advantages, sampling_log_probs)

    return module_hessian_vector_product(LogProb(actor), loss, obs, actions)


# --- measuring one policy -----------------------------------------------------------------------


def measure(
    actor: Actor,
    initial_params: Mapping[str, torch.Tensor],
    train_samples: Samples,
    test_samples: Samples,
    cfg: GeneralizationConfig,
    seed: int,
) -> Measurement:
    """Train/test loss, generalization error, tr H⁺ and the bound of one policy.

    :param actor: the trained policy θ.
    :param initial_params: θ⁰, ``{name: tensor}`` of the actor's initialisation (same names and
        shapes as ``actor.named_parameters()``).
    :param train_samples: on-policy samples of θ on its training tasks (``source_samples``).
    :param test_samples: on-policy samples of θ on target tasks (``target_samples``).
    :param cfg: ``trace_matvecs`` and ``lanczos_steps`` are used.
    :param seed: seed of the SLQ probes.
    """
    for name, samples in (("train_samples", train_samples), ("test_samples", test_samples)):
        _check_batch(samples.obs, samples.actions, samples.advantages, name)
    params = dict(actor.named_parameters())
    if list(initial_params) != list(params) or any(initial_params[k].shape != p.shape for k, p in params.items()):
        raise ValueError(
            f"initial_params must match the actor's parameters {[(k, tuple(p.shape)) for k, p in params.items()]}, "
            f"got {[(k, tuple(v.shape)) for k, v in initial_params.items()]}"
        )
    train_adv, test_adv = standardise_advantages(train_samples.advantages, test_samples.advantages)
    with torch.no_grad():
        train_log_probs = actor.log_prob(train_samples.obs, train_samples.actions)
        test_log_probs = actor.log_prob(test_samples.obs, test_samples.actions)
        train_loss = policy_gradient_loss(train_log_probs, train_adv, train_log_probs).item()
        test_loss = policy_gradient_loss(test_log_probs, test_adv, test_log_probs).item()
    per_sample = -train_adv
    loss_range = (per_sample.max() - per_sample.min()).item()
    hvp = policy_gradient_hvp(actor, train_samples.obs, train_samples.actions, train_adv)
    trace = truncated_trace(hvp, hvp.dim, cfg.trace_matvecs, seed, cfg.lanczos_steps)
    theta = flatten({k: p.detach() for k, p in params.items()})
    distance_sq = (theta - flatten(initial_params).to(theta)).square().sum().item()
    n = int(train_samples.actions.shape[0])
    return Measurement(
        train_loss=train_loss, test_loss=test_loss, generalization_error=test_loss - train_loss,
        trace=trace.estimate, trace_std_error=trace.std_error, distance_sq=distance_sq, loss_range=loss_range,
        num_train_samples=n, num_test_samples=int(test_samples.actions.shape[0]),
        bound=generalization_bound(trace.estimate, distance_sq, loss_range, n),
    )


def measure_policy(
    agent: ActorCritic,
    initial_params: Mapping[str, torch.Tensor],
    family: TaskFamily,
    task_ids: Sequence[int],
    cfg: GeneralizationConfig,
    seed: int,
) -> Measurement:
    """Roll ``agent`` out on its training tasks and on ``cfg.num_target_tasks`` evenly spaced
    target tasks, then ``measure`` it. Rollout seeds are fixed offsets of ``seed``, so every
    policy measured with one seed sees the same episode starts."""
    ppo = cfg.ppo
    train_samples = source_samples(agent, family, task_ids, cfg.steps_per_task, seed + 70_000, ppo.gamma, ppo.gae_lambda)
    test_samples = target_samples(agent, family, _target_ids(family, cfg.num_target_tasks), cfg.steps_per_task,
                                  seed + 80_000, ppo.gamma, ppo.gae_lambda)
    return measure(agent.actor, initial_params, train_samples, test_samples, cfg, seed)


def train_and_measure(
    family: TaskFamily,
    task_ids: Sequence[int],
    init_state: tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]],
    cfg: GeneralizationConfig,
    seed: int,
    snapshot_iterations: Sequence[int],
    progress: bool = True,
) -> tuple[TrainResult, list[tuple[int, Measurement]]]:
    """PPO from ``init_state`` on ``task_ids`` for ``cfg.iterations`` iterations, measuring the
    policy (actor and critic: GAE needs the critic of the same moment) after each iteration in
    ``snapshot_iterations``.

    :param init_state: ``(actor_state, critic_state)``; θ⁰ of the bound is its actor.
    :param snapshot_iterations: 0-based iterations in ``[0, cfg.iterations)``.
    :return: the run and ``[(iteration, measurement)]`` in iteration order.
    """
    wanted = sorted({int(i) for i in snapshot_iterations})
    if not wanted or wanted[0] < 0 or wanted[-1] >= cfg.iterations:
        raise ValueError(f"snapshot_iterations must be non-empty and in [0, {cfg.iterations - 1}], "
                         f"got {list(snapshot_iterations)}")
    snapshots: dict[int, tuple[dict, dict]] = {}

    def keep(iteration: int, agent: ActorCritic) -> None:
        if iteration in wanted:
            snapshots[iteration] = (_clone(agent.actor.state_dict()), _clone(agent.critic.state_dict()))

    ppo = cfg.ppo_for(len(family.check_tasks(task_ids)))
    result = train(family, task_ids, ppo, seed, init_state=init_state, progress=progress, on_iteration=keep)
    initial_params = {k: v.detach().clone() for k, v in init_state[0].items()}
    agent = ActorCritic(family.obs_dim, family.action_space, ppo.policy)
    measurements = []
    for iteration in tqdm(wanted, total=len(wanted), desc=f"measuring tasks={list(task_ids)}"):
        agent.actor.load_state_dict(snapshots[iteration][0])
        agent.critic.load_state_dict(snapshots[iteration][1])
        measurements.append((iteration, measure_policy(agent, initial_params, family, task_ids, cfg, seed)))
    return result, measurements


# --- Hutch++ against Hutchinson -----------------------------------------------------------------


@dataclass(frozen=True)
class EstimatorComparison:
    """Hutch++ and Hutchinson at equal matvec budgets on one Hessian."""

    reference: float
    """tr H from ``reference_matvecs`` Hutchinson probes (seeds disjoint from the compared runs)."""
    reference_std_error: float
    reference_matvecs: int
    top_eigenvalue: float
    """λ_max of H (Lanczos); with ``bottom_eigenvalue`` it shows how much of the trace the few
    extreme directions Hutch++ deflates can hold."""
    bottom_eigenvalue: float
    """λ_min of H (Lanczos on −H)."""
    rows: list[dict]
    """One row per (estimator, budget): ``estimator``, ``matvecs``, ``mean``, ``std`` (spread over
    seeds: the error of an unbiased estimator), ``rmse`` (against the reference) and
    ``relative rmse`` (rmse / |reference|)."""


_EIGEN_ITERS = 60
"""Lanczos steps for λ_max and λ_min: enough for the extreme Ritz values to settle."""


def compare_trace_estimators(
    matvec: HessianVectorProduct,
    budgets: Sequence[int],
    num_seeds: int,
    reference_matvecs: int,
    seed: int,
) -> EstimatorComparison:
    """Run Hutchinson and Hutch++ ``num_seeds`` times at each budget and score them.

    Both estimators are unbiased, so their spread over seeds is their error; the rmse against a
    many-probe Hutchinson reference adds the reference's own error (reported, so a reader can
    see whether it is small beside the errors compared). λ_max and λ_min (60 Lanczos steps each)
    are returned as well: Hutch++ only gains where a few eigenvalues dominate. An exact Hessian of the 9.4k-parameter
    actor would take 9.4k matvecs and 700 MB, hence the reference.

    :param matvec: e.g. ``policy_gradient_hvp(...)``; its ``dim`` sets the probe size.
    :param budgets: matvecs per estimate, multiples of 3 (Hutch++ then spends exactly m).
    :param num_seeds: runs per estimator and budget, >= 2.
    :param reference_matvecs: probes of the reference, >= 1.
    :param seed: the reference uses ``seed``; run r of every budget uses ``seed + 1 + r``.
    """
    if not budgets or any(not is_int(m) or m < 3 or m % 3 for m in budgets):
        raise ValueError(f"budgets must be a non-empty sequence of multiples of 3 (>= 3), got {list(budgets)!r}")
    if not is_int(num_seeds) or num_seeds < 2:
        raise ValueError(f"num_seeds must be an integer >= 2, got {num_seeds!r}")
    reference = hutchinson_trace(matvec, matvec.dim, reference_matvecs, seed)
    extremes = {"device": matvec.device, "dtype": matvec.dtype}
    top = top_eigenvalue(matvec, matvec.dim, _EIGEN_ITERS, seed, **extremes)
    bottom = -top_eigenvalue(lambda v: -matvec(v), matvec.dim, _EIGEN_ITERS, seed, **extremes)
    estimators: dict[str, Callable] = {"Hutchinson": hutchinson_trace, "Hutch++": hutchpp_trace}
    rows = []
    bar = tqdm(total=len(estimators) * len(budgets) * num_seeds, desc="trace estimators")
    for name, estimator in estimators.items():
        for m in budgets:
            estimates = []
            for r in range(num_seeds):
                estimates.append(estimator(matvec, matvec.dim, m, seed + 1 + r).estimate)
                bar.update(1)
            values = np.asarray(estimates)
            rmse = float(np.sqrt(np.mean((values - reference.estimate) ** 2)))
            rows.append({"estimator": name, "matvecs": m, "mean": float(values.mean()), "std": float(values.std(ddof=1)),
                         "rmse": rmse, "relative rmse": rmse / abs(reference.estimate)})
    bar.close()
    return EstimatorComparison(reference=reference.estimate, reference_std_error=reference.std_error,
                               reference_matvecs=reference.num_matvecs, top_eigenvalue=top,
                               bottom_eigenvalue=bottom, rows=rows)


# --- choosing the PolicyGradEx group ------------------------------------------------------------


def largest_group(labels: np.ndarray) -> tuple[int, ...]:
    """The largest group of a grouping (ties: the one holding the smallest task index).

    The largest group puts the PolicyGradEx point of Figure 3b as far as possible from both the
    single task and all tasks on the "number of training tasks" axis.

    :param labels: ``(n,)`` non-negative integer group labels.
    """
    labels = np.asarray(labels)
    if labels.ndim != 1 or labels.size == 0 or not np.issubdtype(labels.dtype, np.integer) or labels.min() < 0:
        raise ValueError(f"labels must be a non-empty 1-D array of non-negative integers, got {labels!r}")
    groups = [np.flatnonzero(labels == label) for label in np.unique(labels)]
    best = max(groups, key=lambda g: (len(g), -g[0]))
    return tuple(int(i) for i in best)


# --- helpers ------------------------------------------------------------------------------------


def _target_ids(family: TaskFamily, count: int) -> list[int]:
    """``count`` evenly spaced indices into ``family.target_params``."""
    total = len(family.target_params)
    if count > total:
        raise ValueError(f"num_target_tasks must be <= {total} ({family.name} has {total} targets), got {count}")
    return sorted({int(i) for i in np.round(np.linspace(0, total - 1, count))})


def _check_batch(obs: torch.Tensor, actions: torch.Tensor, advantages: torch.Tensor, name: str = "samples") -> None:
    n = actions.shape[0] if actions.dim() in (1, 2) else -1
    if obs.dim() != 2 or n < 1 or obs.shape[0] != n or advantages.shape != (n,):
        raise ValueError(
            f"{name} must hold obs (N, obs_dim), actions (N,) or (N, action_dim) and advantages (N,) with N >= 1; got "
            f"{tuple(obs.shape)}, {tuple(actions.shape)}, {tuple(advantages.shape)}"
        )
    if not torch.isfinite(advantages).all():
        raise ValueError(f"{name} has non-finite advantages (nan or inf)")


def _clone(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().clone() for k, v in state.items()}
