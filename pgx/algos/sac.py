"""Multitask Soft Actor-Critic (Haarnoja et al., 2018), as MT-SAC in Meta-World and mtrl.

Read top to bottom like CleanRL's ``sac_continuous_action.py``: config → actor and critics →
losses → one update → replay buffer → evaluation → the training loop. The equations, with
``ã = tanh(u)``, ``u = μ(s) + σ(s) ε`` and α_k the temperature of the sample's task k:

* soft Q target  y = r + γ (1 − terminated) (min_j Q̄_j(s', ã') − α_k log π(u'|s')),  u' ~ π(·|s')
* critic loss    J_Q = Σ_j mean_i (Q_j(s_i, ã_i) − y_i)²                  (:func:`critic_loss`)
* actor loss     J_π = mean_i (α_k log π(u_i|s_i) − min_j Q_j(s_i, tanh u_i))    (:func:`actor_loss`)
* temperatures   J_α = Σ_k mean_{i in task k} α_k (−log π(u_i|s_i) − H̄)        (:func:`alpha_loss`)
* targets        Q̄ ← (1 − τ) Q̄ + τ Q                                        (:func:`soft_update`)

What makes it multitask:

* one vectorised env runs every task of ``task_ids`` side by side (``envs_per_task`` sub-envs
  each); the networks (:mod:`pgx.nets`) read the task one-hot from the last ``n_tasks`` columns of
  the observation, so the family must show it (``observe_task``);
* one replay buffer per task, and every update samples ``batch_size`` transitions from *each*
  task, so every task weighs the same in every loss (as mtrl);
* one temperature per task, ``log_alpha (n_tasks,)``: tasks differ in how much entropy their
  reward leaves room for. The temperature loss averages within each task and *sums* over tasks,
  so each α_k gets exactly the gradient it would get in single-task SAC, however many tasks train
  beside it (with Adam, which normalises each parameter's step, a mean would behave nearly alike).

Details that matter:

* **Actions.** The actor samples a pre-tanh ``u``; the buffer stores ``u`` (so ``actor.log_prob``
  of a stored action is exact, as the features stage needs), the critics see ``tanh(u)`` in
  (−1, 1), and the env gets ``tanh(u)`` rescaled to the Box bounds (:func:`to_env_action`).
  log σ is clamped to ``[log_std_min, log_std_max]`` as in the original SAC (softlearning).
* **Time limits** are not terminal: the target bootstraps on truncation and only ``terminated``
  stops it. With Gymnasium 1.x NEXT_STEP autoreset the observation returned at a truncating step
  is the real final observation, so it is the s' of that transition; the following reset step
  (action ignored, reward 0) is not a transition and is never stored.
* **Update schedule.** ``updates_per_step`` gradient updates per vector-env step, fractional
  allowed: after the j-th vector step of the learning phase, ``floor(j·u) − floor((j−1)·u)``
  updates run, so 0.5 is an update every other step and 2 is two per step, with no counter to
  carry across a resume.
* **Randomness** comes from ``seed`` only: the networks are initialised from ``seed`` inside
  ``torch.random.fork_rng`` (the global RNG is left as it was), actions and the loss noise from one
  ``torch.Generator``, buffer sampling from one ``np.random.Generator``, episodes from
  ``env.reset(seed=...)``. Two runs with the same seed give identical parameters on one CPU thread.
* **Checkpoint and resume.** Every ``checkpoint_every`` env steps (atomically): networks, target
  critics, optimisers, temperatures, both RNG states, the step, the schedule and the curves; the
  replay buffer too when it is at most ``checkpoint_buffer_mb`` MB, and the env where it can be
  pickled (numpy and classic-control envs; not MuJoCo, Box2D or highway-env). With both, a resumed
  run equals an uninterrupted one. Without the env, the episodes in progress restart from a reset
  seeded by ``(seed, step)``; without the buffer, the resumed run refills it with the policy's
  own actions for ``learning_starts`` env steps before updates resume.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F
from gymnasium import spaces
from torch import nn
from tqdm.auto import tqdm

from pgx.checks import KeyedByChanges, check_instance, check_int, check_number, check_optional_number
from pgx.envs import TaskFamily
from pgx.envs.autoreset import EnvState, step_envs
from pgx.envs.runs import reset_each, start_training_envs
from pgx.nets import ArchConfig, make_network
from pgx.runtime import is_int, load_run_checkpoint, pick_device, pickled_env, resumed_envs, save_torch

__all__ = ["SACConfig", "SACResult", "TanhGaussianActor", "TwinQ", "SACAgent", "Batch", "SACOptimisers",
           "make_optimisers", "tanh_log_abs_det", "to_env_action", "soft_q_target", "critic_loss", "actor_loss",
           "alpha_loss", "soft_update", "update", "updates_due", "ReplayBuffer", "evaluate", "EVAL_STRIDE", "task_texts",
           "train"]


# --- config ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class SACConfig(KeyedByChanges):
    total_steps: int = 1_000_000
    """Environment steps summed over all sub-envs, autoreset steps included (as PPO counts them);
    the run takes ``total_steps // (len(task_ids) * envs_per_task)`` vector-env steps."""
    envs_per_task: int = 1
    """Sub-envs per task; the vector env has ``envs_per_task * len(task_ids)`` sub-envs, task-major."""
    buffer_size: int = 100_000
    """Transitions kept per task (one ring buffer each; MT10 × 100,000 is Meta-World's 1e6 in all)."""
    batch_size: int = 128
    """Transitions sampled from each task's buffer per update: an update sees ``len(task_ids) ×
    batch_size`` transitions, every task equally (as mtrl)."""
    learning_starts: int = 10_000
    """Env steps (summed over sub-envs, rounded up to whole vector steps) of uniformly random
    actions before the first update (1,000 per task on MT10: two episodes each)."""
    updates_per_step: float = 1.0
    """Gradient updates per vector-env step; fractional values spread them out (0.5: one every
    other step, see the module docstring)."""
    gamma: float = 0.99
    """Discount factor, in (0, 1]."""
    tau: float = 0.005
    """Polyak rate of the target critics per update, in (0, 1] (1: copy)."""
    actor_lr: float = 3e-4
    """Adam learning rate of the actor."""
    critic_lr: float = 3e-4
    """Adam learning rate of the twin critics."""
    alpha_lr: float = 3e-4
    """Adam learning rate of the per-task log-temperatures."""
    init_temperature: float = 1.0
    """α of every task at the start (Meta-World's MT-SAC and mtrl start at 1)."""
    target_entropy: float | None = None
    """H̄ each task's temperature steers the policy's entropy towards; None: −action_dim."""
    log_std_min: float = -20.0
    """Lower clamp of the actor's log σ (original SAC)."""
    log_std_max: float = 2.0
    """Upper clamp of the actor's log σ."""
    actor_arch: ArchConfig = field(default_factory=ArchConfig)
    """Network of the actor (its output is 2·action_dim: means, then log σ)."""
    critic_arch: ArchConfig = field(default_factory=ArchConfig)
    """Network of each of the two critics (input: observation ‖ tanh(u), output: one Q value)."""
    eval_every: int = 50_000
    """Env steps between evaluations of the deterministic policy; the last step is always evaluated."""
    eval_episodes: int = 10
    """Episodes per task at each evaluation (one sub-env each)."""
    checkpoint_every: int = 50_000
    """Env steps between checkpoints (when a checkpoint path is given); the last step is always saved."""
    checkpoint_buffer_mb: float = 1024.0
    """Save the replay buffer with each checkpoint when its full size is at most this many MB
    (0: never). MT10 with the defaults needs about 420 MB."""

    def __post_init__(self) -> None:
        owner = "SACConfig"
        for name in ("total_steps", "envs_per_task", "buffer_size", "batch_size", "eval_every", "eval_episodes",
                     "checkpoint_every"):
            check_int(owner, name, getattr(self, name))
        check_int(owner, "learning_starts", self.learning_starts, 0)
        if self.eval_episodes > EVAL_STRIDE:  # else refused by the first evaluation, after hours of training
            raise ValueError(f"SACConfig.eval_episodes must be <= {EVAL_STRIDE} (evaluation seeds are {EVAL_STRIDE} "
                             f"apart per task), got {self.eval_episodes}")
        if self.batch_size > self.buffer_size:
            raise ValueError(f"SACConfig.batch_size ({self.batch_size}) must be <= buffer_size ({self.buffer_size}): "
                             f"both count transitions per task")
        for name in ("updates_per_step", "actor_lr", "critic_lr", "alpha_lr", "init_temperature"):
            check_number(owner, name, getattr(self, name), 0)
        for name in ("gamma", "tau"):
            check_number(owner, name, getattr(self, name), 0, 1)
        check_optional_number(owner, "target_entropy", self.target_entropy)
        for name in ("log_std_min", "log_std_max"):
            check_number(owner, name, getattr(self, name))
        if self.log_std_min >= self.log_std_max:
            raise ValueError(f"SACConfig.log_std_min ({self.log_std_min}) must be < log_std_max ({self.log_std_max})")
        check_number(owner, "checkpoint_buffer_mb", self.checkpoint_buffer_mb, 0, low_open=False)
        for name in ("actor_arch", "critic_arch"):
            check_instance(owner, name, getattr(self, name), ArchConfig)

    def entropy_target(self, action_dim: int) -> float:
        """H̄: ``target_entropy``, or −action_dim (the SAC paper's heuristic) when it is None."""
        return float(-action_dim if self.target_entropy is None else self.target_entropy)


# --- actor and critics ----------------------------------------------------------------------------

def tanh_log_abs_det(u: torch.Tensor) -> torch.Tensor:
    """``Σ_d log(1 − tanh(u_d)²)``, the log-Jacobian of the squashing, in the stable form
    ``2 (log 2 − u − softplus(−2u))`` (finite for any u): ``u (..., A)`` → ``(...)``."""
    return (2.0 * (math.log(2.0) - u - F.softplus(-2.0 * u))).sum(-1)


def to_env_action(u: torch.Tensor, action_space: spaces.Box) -> np.ndarray:
    """The env's action for pre-tanh samples ``u (N, A)``: ``tanh(u)`` rescaled from (−1, 1) to the
    Box bounds, as a numpy array of the space's dtype."""
    low = torch.as_tensor(action_space.low, dtype=u.dtype, device=u.device)
    high = torch.as_tensor(action_space.high, dtype=u.dtype, device=u.device)
    action = low + (torch.tanh(u) + 1.0) * 0.5 * (high - low)
    return action.detach().cpu().numpy().astype(action_space.dtype)


class TanhGaussianActor(nn.Module):
    """π(u|s) = N(u; μ(s), σ(s)²) with a state-dependent mean and log σ; the action is tanh(u).

    ``net(x, task) -> (B, 2·action_dim)`` gives the means then the unclamped log σ; ``task`` is the
    one-hot in the last ``n_tasks`` columns of the observation. Every method is a pure function of
    its inputs and the parameters (no in-place ops, no global RNG), so ``torch.func`` can take
    per-sample gradients of :meth:`log_prob`.
    """

    discrete = False

    def __init__(self, net: nn.Module, n_tasks: int, action_dim: int, log_std_min: float = -20.0,
                 log_std_max: float = 2.0):
        super().__init__()
        self.net = net
        self.n_tasks = n_tasks
        self.action_dim = action_dim
        self.log_std_min = log_std_min
        self.log_std_max = log_std_max

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and clamped log σ of u, each ``(N, action_dim)``, for ``obs (N, obs_dim)``."""
        out = self.net(obs, obs[..., -self.n_tasks:])
        mean, log_std = out.split(self.action_dim, dim=-1)
        return mean, log_std.clamp(self.log_std_min, self.log_std_max)

    def log_prob(self, obs: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """``log π(tanh u|s) = log N(u; μ, σ²) − Σ log(1 − tanh(u)²)``: ``obs (N, obs_dim)``,
        ``u (N, A)`` pre-tanh → ``(N,)``."""
        mean, log_std = self(obs)
        return _normal_log_prob((u - mean) * torch.exp(-log_std), log_std) - tanh_log_abs_det(u)

    def rsample_with_log_prob(self, obs: torch.Tensor, generator: torch.Generator | None = None,
                              noise: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Reparameterised ``u = μ + σ ε`` and its ``log π``, differentiable in the parameters.
        ``ε (N, A)`` is ``noise`` when given, else drawn from ``generator``."""
        mean, log_std = self(obs)
        if noise is None:
            noise = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
        u = mean + noise * log_std.exp()
        return u, _normal_log_prob(noise, log_std) - tanh_log_abs_det(u)

    def sample(self, obs: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Pre-tanh samples ``u (N, A)`` drawn from ``generator``."""
        return self.rsample_with_log_prob(obs, generator)[0]

    def mode(self, obs: torch.Tensor) -> torch.Tensor:
        """The mean μ(s), pre-tanh: the deterministic policy plays ``tanh(μ)``."""
        return self(obs)[0]


def _normal_log_prob(z: torch.Tensor, log_std: torch.Tensor) -> torch.Tensor:
    """``Σ_d log N(μ + σ z; μ, σ²)`` from the standardised ``z`` and ``log σ``: ``(..., A)`` → ``(...)``."""
    return (-0.5 * z**2 - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)


class TwinQ(nn.Module):
    """Two independent critics Q_1, Q_2 of (observation ‖ squashed action); each ``net(x, task)``
    maps ``(B, obs_dim + action_dim)`` to ``(B, 1)``."""

    def __init__(self, q1: nn.Module, q2: nn.Module, n_tasks: int):
        super().__init__()
        self.q1, self.q2 = q1, q2
        self.n_tasks = n_tasks

    def forward(self, obs: torch.Tensor, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(Q_1, Q_2)``, each ``(N,)``, for ``obs (N, obs_dim)`` and squashed ``action (N, A)``."""
        x = torch.cat([obs, action], dim=-1)
        task = obs[..., -self.n_tasks:]
        return self.q1(x, task).squeeze(-1), self.q2(x, task).squeeze(-1)


class SACAgent(nn.Module):
    """Actor, twin critics, their target copies and one log-temperature per task of the family."""

    def __init__(self, actor: TanhGaussianActor, critic: TwinQ, n_tasks: int, init_temperature: float = 1.0):
        super().__init__()
        self.actor = actor
        self.critic = critic
        self.critic_target = copy.deepcopy(critic).requires_grad_(False)
        self.log_alpha = nn.Parameter(torch.full((n_tasks,), math.log(init_temperature)))
        self.n_tasks = n_tasks

    @classmethod
    def build(cls, family: TaskFamily, cfg: SACConfig, seed: int = 0) -> SACAgent:
        """A fresh agent for ``family``'s observations, actions and tasks, networks from
        ``cfg.actor_arch`` and ``cfg.critic_arch`` initialised from ``seed`` (the global RNG is
        left untouched)."""
        _check_family(family)
        obs_dim, action_dim, n = family.obs_dim, family.num_actions, family.n_tasks
        texts = task_texts(family)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            actor = TanhGaussianActor(make_network(cfg.actor_arch, obs_dim, 2 * action_dim, n, texts), n, action_dim,
                                      cfg.log_std_min, cfg.log_std_max)
            critic = TwinQ(make_network(cfg.critic_arch, obs_dim + action_dim, 1, n, texts),
                           make_network(cfg.critic_arch, obs_dim + action_dim, 1, n, texts), n)
        return cls(actor, critic, n, cfg.init_temperature)

    @classmethod
    def from_result(cls, family: TaskFamily, result: SACResult) -> SACAgent:
        """The trained agent of ``result`` (on CPU); its target critics equal its critics."""
        agent = cls.build(family, result.cfg)
        agent.load_weights(result.init_state())
        return agent

    def load_weights(self, state: Mapping[str, Any]) -> None:
        """Load ``{"actor": ..., "critic": ...}`` state dicts, optionally ``"critic_target"`` (else
        a copy of the critic) and ``"log_alpha" (n_tasks,)``."""
        unknown = set(state) - {"actor", "critic", "critic_target", "log_alpha"}
        if unknown or not {"actor", "critic"} <= set(state):
            raise ValueError(f"init_state needs keys 'actor' and 'critic' (optionally 'critic_target', 'log_alpha'), "
                             f"got {sorted(state)}")
        self.actor.load_state_dict(state["actor"])
        self.critic.load_state_dict(state["critic"])
        self.critic_target.load_state_dict(state.get("critic_target", state["critic"]))
        if "log_alpha" in state:
            log_alpha = torch.as_tensor(state["log_alpha"])
            if log_alpha.shape != self.log_alpha.shape:
                raise ValueError(f"log_alpha must have shape {tuple(self.log_alpha.shape)}, got {tuple(log_alpha.shape)}")
            with torch.no_grad():
                self.log_alpha.copy_(log_alpha)

    def task_index(self, obs: torch.Tensor) -> torch.Tensor:
        """``(N,)`` task of each observation, read from its one-hot."""
        return obs[..., -self.n_tasks:].argmax(-1)

    def alpha(self, task: torch.Tensor) -> torch.Tensor:
        """α of each sample's task, ``task (N,)`` → ``(N,)``."""
        return self.log_alpha.exp()[task]

    def q_values(self, obs: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """``min_j Q_j(s, tanh u)``, ``(N,)``, for pre-tanh actions ``u (N, A)``."""
        return torch.min(*self.critic(obs, torch.tanh(u)))

    def soft_value(self, obs: torch.Tensor, samples: int = 16, generator: torch.Generator | None = None) -> torch.Tensor:
        """``V(s) = E_{u'~π}[min_j Q_j(s, tanh u') − α log π(u'|s)]``, a mean over ``samples``
        draws: ``obs (N, obs_dim)`` → ``(N,)``. With :meth:`q_values`, Â = Q(s, a) − V(s)."""
        if not is_int(samples) or samples < 1:
            raise ValueError(f"samples must be an int >= 1, got {samples!r}")
        repeated = obs.repeat(samples, 1)
        u, log_prob = self.actor.rsample_with_log_prob(repeated, generator)
        values = self.q_values(repeated, u) - self.alpha(self.task_index(repeated)) * log_prob
        return values.reshape(samples, obs.shape[0]).mean(0)


def task_texts(family: TaskFamily) -> list[str]:
    """A sentence per task of ``family`` for CARE's task encoder: Meta-World's task descriptions,
    else ``"<parameter> <value>"`` (``"gravity (m/s²) 9.81"``)."""
    if family.name.split(":")[0] in ("mt10", "mt50"):
        from pgx.envs.metaworld import task_descriptions, task_names

        return task_descriptions(task_names(family))
    return [f"{family.parameter} {label}" for label in family.task_labels()]


def _check_family(family: TaskFamily) -> None:
    if not isinstance(family.action_space, spaces.Box):
        raise ValueError(f"SAC needs Box actions; {family.name} has {family.action_space}")
    if not np.all(np.isfinite(family.action_space.low)) or not np.all(np.isfinite(family.action_space.high)):
        raise ValueError(f"SAC squashes actions into the Box bounds, which must be finite; {family.name} has "
                         f"{family.action_space}")
    if not family.observe_task:
        raise ValueError(f"multitask SAC reads each sample's task from its one-hot; {family.name} has "
                         f"observe_task=False")


# --- losses and one update ------------------------------------------------------------------------

@dataclass
class Batch:
    """Transitions for one update, ``N = tasks × batch_size`` rows, task-major."""

    obs: torch.Tensor
    """``(N, obs_dim)``"""
    u: torch.Tensor
    """``(N, A)`` pre-tanh actions"""
    reward: torch.Tensor
    """``(N,)``"""
    next_obs: torch.Tensor
    """``(N, obs_dim)``: the real next observation (the final one at a truncation)"""
    terminated: torch.Tensor
    """``(N,)`` float, 1 where the episode terminated (truncation is not termination)"""
    task: torch.Tensor
    """``(N,)`` long, the family's id of each sample's task (indexes ``log_alpha``)"""


def soft_q_target(reward: torch.Tensor, terminated: torch.Tensor, next_q: torch.Tensor, next_log_prob: torch.Tensor,
                  alpha: torch.Tensor, gamma: float) -> torch.Tensor:
    """``y = r + γ (1 − terminated) (min_j Q̄_j(s', ã') − α log π(u'|s'))``; every input ``(N,)``."""
    return reward + gamma * (1.0 - terminated) * (next_q - alpha * next_log_prob)


def critic_loss(agent: SACAgent, batch: Batch, next_noise: torch.Tensor, gamma: float) -> torch.Tensor:
    """``J_Q = Σ_j mean (Q_j(s, tanh u) − y)²``, with ``u' = μ(s') + σ(s') next_noise`` in the
    target ``y`` (no gradient flows into the target)."""
    with torch.no_grad():
        next_u, next_log_prob = agent.actor.rsample_with_log_prob(batch.next_obs, noise=next_noise)
        next_q = torch.min(*agent.critic_target(batch.next_obs, torch.tanh(next_u)))
        target = soft_q_target(batch.reward, batch.terminated, next_q, next_log_prob, agent.alpha(batch.task), gamma)
    q1, q2 = agent.critic(batch.obs, torch.tanh(batch.u))
    return F.mse_loss(q1, target) + F.mse_loss(q2, target)


def actor_loss(agent: SACAgent, obs: torch.Tensor, task: torch.Tensor, noise: torch.Tensor,
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """``J_π = mean (α log π(u|s) − min_j Q_j(s, tanh u))`` with the reparameterised
    ``u = μ(s) + σ(s) noise`` (α is a constant here). Returns the loss and ``log π(u|s) (N,)``."""
    u, log_prob = agent.actor.rsample_with_log_prob(obs, noise=noise)
    q = torch.min(*agent.critic(obs, torch.tanh(u)))
    return (agent.alpha(task).detach() * log_prob - q).mean(), log_prob


def alpha_loss(log_alpha: torch.Tensor, log_prob: torch.Tensor, task: torch.Tensor, target_entropy: float,
               ) -> torch.Tensor:
    """``J_α = Σ_k mean_{i in task k} α_k (−log π(u_i|s_i) − H̄)`` over the tasks present in
    ``task (N,)``; ``log_prob (N,)`` is a constant. A task without samples gets no gradient."""
    per_sample = log_alpha.exp()[task] * (-log_prob.detach() - target_entropy)
    totals = torch.zeros_like(log_alpha).index_add(0, task, per_sample)
    counts = torch.bincount(task, minlength=log_alpha.shape[0])
    present = counts > 0
    return (totals[present] / counts[present]).sum()


@torch.no_grad()
def soft_update(target: nn.Module, source: nn.Module, tau: float) -> None:
    """Polyak averaging ``θ̄ ← (1 − τ) θ̄ + τ θ`` of every parameter; buffers are copied."""
    for target_param, param in zip(target.parameters(), source.parameters()):
        target_param.lerp_(param, tau)
    for target_buffer, buffer in zip(target.buffers(), source.buffers()):
        target_buffer.copy_(buffer)


@dataclass
class SACOptimisers:
    """One Adam per set of parameters, as the three losses have different targets."""

    actor: torch.optim.Optimizer
    critic: torch.optim.Optimizer
    alpha: torch.optim.Optimizer

    def state_dict(self) -> dict[str, Any]:
        return {"actor": self.actor.state_dict(), "critic": self.critic.state_dict(), "alpha": self.alpha.state_dict()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        for name in ("actor", "critic", "alpha"):
            getattr(self, name).load_state_dict(state[name])


def make_optimisers(agent: SACAgent, cfg: SACConfig) -> SACOptimisers:
    return SACOptimisers(
        actor=torch.optim.Adam(agent.actor.parameters(), lr=cfg.actor_lr),
        critic=torch.optim.Adam(agent.critic.parameters(), lr=cfg.critic_lr),
        alpha=torch.optim.Adam([agent.log_alpha], lr=cfg.alpha_lr),
    )


def update(agent: SACAgent, optimisers: SACOptimisers, batch: Batch, cfg: SACConfig,
           generator: torch.Generator) -> dict[str, float]:
    """One SAC update, CleanRL's order: critics, then the actor against the new critics, then the
    temperatures on the actor's log-probabilities, then the targets. The noise of both
    reparameterised samples is drawn from ``generator``. Returns the three losses."""
    # Each backward asks for its own parameters' gradients only: the actor loss does not compute
    # (or leave behind) gradients of the critics it passes through.
    q_loss = critic_loss(agent, batch, _noise(batch.u, generator), cfg.gamma)
    optimisers.critic.zero_grad(set_to_none=True)
    q_loss.backward(inputs=list(agent.critic.parameters()))
    optimisers.critic.step()

    pi_loss, log_prob = actor_loss(agent, batch.obs, batch.task, _noise(batch.u, generator))
    optimisers.actor.zero_grad(set_to_none=True)
    pi_loss.backward(inputs=list(agent.actor.parameters()))
    optimisers.actor.step()

    temperature_loss = alpha_loss(agent.log_alpha, log_prob, batch.task, cfg.entropy_target(batch.u.shape[-1]))
    optimisers.alpha.zero_grad(set_to_none=True)
    temperature_loss.backward(inputs=[agent.log_alpha])
    optimisers.alpha.step()

    soft_update(agent.critic_target, agent.critic, cfg.tau)
    return {"critic_loss": q_loss.item(), "actor_loss": pi_loss.item(), "alpha_loss": temperature_loss.item()}


def _noise(like: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    return torch.randn(like.shape, generator=generator, device=like.device, dtype=like.dtype)


def updates_due(j: int, updates_per_step: float) -> int:
    """Updates after the ``j``-th (1-based) vector step of the learning phase:
    ``floor(j·u) − floor((j−1)·u)``, which sums to ``floor(j·u)`` over the first j steps."""
    # The small slack keeps products such as 3 × (1/3) from landing just under an integer.
    return math.floor(j * updates_per_step + 1e-9) - math.floor((j - 1) * updates_per_step + 1e-9)


# --- replay buffer --------------------------------------------------------------------------------

class ReplayBuffer:
    """One preallocated numpy ring buffer per task: ``capacity`` transitions each, the oldest
    overwritten first. Slot ``k`` holds the k-th task of the run's ``task_ids``."""

    def __init__(self, n_tasks: int, capacity: int, obs_dim: int, action_dim: int):
        self.capacity = capacity
        self.obs = np.zeros((n_tasks, capacity, obs_dim), np.float32)
        self.u = np.zeros((n_tasks, capacity, action_dim), np.float32)
        self.reward = np.zeros((n_tasks, capacity), np.float32)
        self.next_obs = np.zeros((n_tasks, capacity, obs_dim), np.float32)
        self.terminated = np.zeros((n_tasks, capacity), np.bool_)
        self.size = np.zeros(n_tasks, np.int64)
        self.position = np.zeros(n_tasks, np.int64)

    @staticmethod
    def nbytes(n_tasks: int, capacity: int, obs_dim: int, action_dim: int) -> int:
        """Bytes of a full buffer of this shape."""
        return n_tasks * capacity * (4 * (2 * obs_dim + action_dim + 1) + 1)

    def add(self, slots: np.ndarray, obs: np.ndarray, u: np.ndarray, reward: np.ndarray, next_obs: np.ndarray,
            terminated: np.ndarray) -> None:
        """Append row ``i`` of each array to the buffer of task slot ``slots[i]``."""
        for i, k in enumerate(slots):
            p = self.position[k]
            self.obs[k, p], self.u[k, p], self.reward[k, p] = obs[i], u[i], reward[i]
            self.next_obs[k, p], self.terminated[k, p] = next_obs[i], terminated[i]
            self.position[k] = (p + 1) % self.capacity
            self.size[k] = min(self.size[k] + 1, self.capacity)

    def sample(self, rng: np.random.Generator, batch_size: int) -> dict[str, np.ndarray]:
        """``batch_size`` transitions drawn uniformly (with replacement) from each task's buffer,
        task-major; ``"slot"`` says which task each row came from."""
        if np.any(self.size == 0):
            raise ValueError(f"cannot sample: task slot {int(np.flatnonzero(self.size == 0)[0])} has no transitions yet")
        n = len(self.size)
        rows = np.repeat(np.arange(n), batch_size)
        index = rng.integers(0, self.size[:, None], size=(n, batch_size)).reshape(-1)
        return {"obs": self.obs[rows, index], "u": self.u[rows, index], "reward": self.reward[rows, index],
                "next_obs": self.next_obs[rows, index], "terminated": self.terminated[rows, index], "slot": rows}

    def state_dict(self) -> dict[str, np.ndarray]:
        """The filled part of every array (a checkpoint of a young buffer stays small)."""
        used = int(self.size.max())
        return {"obs": self.obs[:, :used], "u": self.u[:, :used], "reward": self.reward[:, :used],
                "next_obs": self.next_obs[:, :used], "terminated": self.terminated[:, :used],
                "size": self.size.copy(), "position": self.position.copy()}

    def load_state_dict(self, state: Mapping[str, np.ndarray]) -> None:
        used = state["obs"].shape[1]
        for name in ("obs", "u", "reward", "next_obs", "terminated"):
            getattr(self, name)[:, :used] = state[name]
        self.size[:], self.position[:] = state["size"], state["position"]


def _to_batch(arrays: Mapping[str, np.ndarray], slot_task: torch.Tensor, device: torch.device) -> Batch:
    def tensor(x: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(x, dtype=torch.float32, device=device)

    return Batch(obs=tensor(arrays["obs"]), u=tensor(arrays["u"]), reward=tensor(arrays["reward"]),
                 next_obs=tensor(arrays["next_obs"]), terminated=tensor(arrays["terminated"]),
                 task=slot_task[torch.as_tensor(arrays["slot"], device=device)])


# --- evaluation -----------------------------------------------------------------------------------

EVAL_STRIDE = 1_000
"""Seed distance between two tasks' evaluation episodes (at most this many episodes per task)."""


@torch.no_grad()
def evaluate(family: TaskFamily, actor: TanhGaussianActor, task_ids: Sequence[int], episodes: int, seed: int,
             env: gym.vector.VectorEnv | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Success rate and mean return of the deterministic policy ``tanh(μ(s))`` on each task.

    One vectorised env over the tasks, one sub-env per episode; each sub-env plays one episode (at
    most ``family.max_episode_steps`` steps). Episode ``e`` of task ``t`` is reset with seed
    ``seed + EVAL_STRIDE·t + e``: keyed by the task, not by its slot, so every method evaluated
    with the same ``seed`` meets the same starts and goals on a task (common random numbers), and
    seeds ``EVAL_STRIDE·n_tasks`` apart share none. An episode succeeds if
    ``info["success"]`` is true at any of its steps; a family whose envs never report
    ``"success"`` gets NaN success rates.

    :param env: ``family.source_envs(task_ids, episodes)`` to reuse (the training loop builds it
        once); built and closed here when None.
    :return: ``(success, returns)``, each ``(len(task_ids),)`` in the order of ``task_ids``.
    """
    ids = family.check_tasks(task_ids)
    if not is_int(episodes) or not 1 <= episodes <= EVAL_STRIDE:
        raise ValueError(f"episodes must be an int in [1, {EVAL_STRIDE}], got {episodes!r}")
    own_env = env is None
    if own_env:
        env = family.source_envs(ids, episodes)
    elif env.num_envs != len(ids) * episodes:
        raise ValueError(f"env has {env.num_envs} sub-envs; evaluating {len(ids)} tasks × {episodes} episodes needs "
                         f"{len(ids) * episodes}")
    try:
        device = next(actor.parameters()).device
        obs, _ = reset_each(family, env, [int(seed) + EVAL_STRIDE * int(t) + e for t in ids for e in range(episodes)])
        returns = np.zeros(env.num_envs)
        success = np.zeros(env.num_envs, dtype=bool)
        reports_success = False
        running = np.ones(env.num_envs, dtype=bool)
        for _ in range(family.max_episode_steps):
            u = actor.mode(torch.as_tensor(obs, dtype=torch.float32, device=device))
            obs, reward, terminated, truncated, info = env.step(to_env_action(u, family.action_space))
            returns += np.where(running, reward, 0.0)
            flags = _success_flags(info, env.num_envs)
            if flags is not None:
                reports_success = True
                success |= running & flags
            running &= ~np.logical_or(terminated, truncated)
            if not running.any():
                break
    finally:
        if own_env:
            env.close()
    per_task_success = success.reshape(len(ids), episodes).mean(1) if reports_success else np.full(len(ids), np.nan)
    return per_task_success, returns.reshape(len(ids), episodes).mean(1)


def _success_flags(info: Mapping[str, Any], num_envs: int) -> np.ndarray | None:
    """``(num_envs,)`` bool: the sub-envs whose step reported ``info["success"]`` true; None when
    no sub-env reported it (a vector env's ``"_success"`` marks which did)."""
    if "success" not in info:
        return None
    reported = np.asarray(info.get("_success", np.ones(num_envs, dtype=bool)), dtype=bool)
    return reported & np.asarray(info["success"]).astype(bool)


# --- training -------------------------------------------------------------------------------------

@dataclass(frozen=True, eq=False)
class SACResult:
    """What a SAC run leaves behind: weights (on CPU), temperatures and learning curves."""

    actor_state: dict[str, torch.Tensor]
    critic_state: dict[str, torch.Tensor]
    """The twin critics (``q1.*``, ``q2.*``)."""
    log_alpha: torch.Tensor
    """``(family.n_tasks,)`` log-temperature of every task of the family (untrained ones stay at
    ``log(init_temperature)``)."""
    cfg: SACConfig
    task_ids: tuple[int, ...]
    seed: int
    env_steps: int
    """Env steps taken, summed over sub-envs."""
    wall_time: float
    """Seconds of training (summed over resumed segments)."""
    eval_steps: np.ndarray
    """``(E,)`` env steps at each evaluation."""
    eval_success: np.ndarray
    """``(E, len(task_ids))`` success rate of the deterministic policy (NaN: the family reports none)."""
    eval_returns: np.ndarray
    """``(E, len(task_ids))`` mean return of the deterministic policy."""
    episode_steps: np.ndarray
    """``(K,)`` env step at which each training episode ended."""
    episode_tasks: np.ndarray
    """``(K,)`` family task id of each training episode."""
    episode_returns: np.ndarray
    """``(K,)`` undiscounted return of each training episode (stochastic policy)."""
    episode_success: np.ndarray
    """``(K,)`` 1.0 if the training episode succeeded at any step, 0.0 if not, NaN: not reported."""

    def init_state(self) -> dict[str, Any]:
        """The weights as ``train``'s and ``SACAgent.load_weights``'s ``init_state``."""
        return {"actor": self.actor_state, "critic": self.critic_state, "log_alpha": self.log_alpha}


@dataclass
class _EnvState(EnvState):
    """Where the sub-envs are between two vector steps (and across a checkpoint), with whether each
    episode has reported success."""

    episode_success: np.ndarray = None  # type: ignore[assignment]
    """``(num_envs,)`` the current episode has reported success at some step."""

    @classmethod
    def at(cls, obs: np.ndarray) -> _EnvState:
        state = super().at(obs)
        state.episode_success = np.zeros(state.reset_next.shape, bool)
        return state


def train(
    family: TaskFamily,
    cfg: SACConfig,
    seed: int,
    task_ids: Sequence[int] | None = None,
    checkpoint: str | Path | None = None,
    progress: bool = True,
    init_state: Mapping[str, Any] | None = None,
    device: str | None = None,
    callback: Callable[[int, SACAgent], None] | None = None,
) -> SACResult:
    """Train one multitask SAC agent on ``task_ids`` (default: all) of ``family``.

    :param checkpoint: a file path; saved there every ``cfg.checkpoint_every`` env steps and at the
        end (atomically), and resumed from when it exists (see the module docstring for what is
        restored). A checkpoint of another run (config, tasks or seed) is refused.
    :param init_state: weights to start from (``SACResult.init_state()``, or a mapping with
        ``"actor"``, ``"critic"`` and optionally ``"log_alpha"``); a checkpoint overrides it.
    :param callback: called after every vector step, its evaluation and checkpoint, with the env
        steps so far and the agent (tests interrupt runs with it).
    """
    # --- inputs ---
    if not is_int(seed) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    if not isinstance(cfg, SACConfig):
        raise ValueError(f"cfg must be a SACConfig, got {type(cfg).__name__}")
    _check_family(family)
    task_ids = tuple(range(family.n_tasks)) if task_ids is None else tuple(int(t) for t in family.check_tasks(task_ids))
    if len(set(task_ids)) != len(task_ids):
        raise ValueError(f"task_ids must be distinct, got {list(task_ids)}")
    n = len(task_ids)
    num_envs = n * cfg.envs_per_task
    if cfg.total_steps < num_envs:
        raise ValueError(f"total_steps ({cfg.total_steps}) must cover at least one step of the {num_envs} sub-envs")
    vector_steps = cfg.total_steps // num_envs
    random_steps = -(-cfg.learning_starts // num_envs)  # vector steps of uniformly random actions
    dev = pick_device(device)
    env_slot = np.repeat(np.arange(n), cfg.envs_per_task)  # buffer slot (position in task_ids) of each sub-env
    slot_task = torch.as_tensor(task_ids, device=dev)
    action_dim = family.num_actions

    # --- agent, optimisers, buffer, RNG ---
    agent = SACAgent.build(family, cfg, seed).to(dev)
    if init_state is not None:
        agent.load_weights(init_state)
    optimisers = make_optimisers(agent, cfg)
    generator = torch.Generator(device=dev).manual_seed(seed)
    rng = np.random.default_rng(seed)
    buffer = ReplayBuffer(n, cfg.buffer_size, family.obs_dim, action_dim)
    save_buffer = ReplayBuffer.nbytes(n, cfg.buffer_size, family.obs_dim, action_dim) <= cfg.checkpoint_buffer_mb * 2**20
    first_update = max(random_steps - 1, 0)  # vector step after which updates begin
    start, wall_before = 0, 0.0
    log: dict[str, list] = {"eval_steps": [], "eval_success": [], "eval_returns": [], "episode_steps": [],
                            "episode_tasks": [], "episode_returns": [], "episode_success": []}

    path = Path(checkpoint) if checkpoint is not None else None
    # The checkpoint holds numpy arrays (buffer, RNG) and the env's pickle: loaded with weights_only=False.
    saved = load_run_checkpoint(path, dev, _CHECKPOINT_KEYS,
                                {"config": asdict(cfg), "task_ids": task_ids, "seed": seed})
    if saved is not None:
        agent.load_state_dict(saved["agent"])
        optimisers.load_state_dict(saved["optimisers"])
        generator.set_state(saved["generator"].cpu())
        rng.bit_generator.state = saved["rng"]
        start, wall_before, log = saved["step"], saved["wall_time"], saved["log"]
        if saved["buffer"] is not None:
            buffer.load_state_dict(saved["buffer"])
            first_update = saved["first_update"]
        else:  # refill the empty buffer with the policy's own actions before updating again
            first_update = max(saved["first_update"], start + max(random_steps, 1) - 1)
    env, state = resumed_envs(saved, path, "env_state", lambda: family.source_envs(task_ids, cfg.envs_per_task),
                              lambda env, s: _EnvState.at(start_training_envs(
                                  family, env, s, family.source_env_tasks(task_ids, cfg.envs_per_task))),
                              seed if saved is None else _derived_seed(seed, start, 1))
    eval_env = None  # built at the first evaluation and reused

    def save_checkpoint(step: int, wall_time: float) -> None:
        save_torch({
            "agent": agent.state_dict(), "optimisers": optimisers.state_dict(), "generator": generator.get_state(),
            "rng": rng.bit_generator.state, "buffer": buffer.state_dict() if save_buffer else None,
            "env": pickled_env(env), "env_state": state, "step": step, "first_update": first_update,
            "log": log, "wall_time": wall_time, "config": asdict(cfg), "task_ids": task_ids, "seed": seed,
        }, path)

    # --- the loop ---
    started = time.perf_counter()
    recent_return, recent_success = np.full(n, np.nan), np.full(n, np.nan)
    reports_success = False  # whether the family's envs report info["success"] (else: NaN success)
    bar = tqdm(total=vector_steps * num_envs, initial=start * num_envs, unit="step",
               desc=f"SAC {family.name} tasks={list(task_ids)}", **({} if progress else {"disable": True}))
    try:  # close the envs even when a callback interrupts the run
        for k in range(start, vector_steps):
            env_steps = (k + 1) * num_envs

            # 1. Act: uniformly random actions during warm-up, then samples of π
            obs = torch.as_tensor(state.obs, dtype=torch.float32, device=dev)
            if k < random_steps:
                # tanh(u) uniform in (−1, 1)^A is an action uniform in the Box; the clamp keeps atanh finite
                uniform = torch.rand((num_envs, action_dim), generator=generator, device=dev) * 2 - 1
                u = torch.atanh(uniform.clamp(-1 + 1e-6, 1 - 1e-6))
            else:
                with torch.no_grad():
                    u = agent.actor.sample(obs, generator)
            obs_before = state.obs
            out = step_envs(env.step, to_env_action(u, family.action_space), state, f"at env step {env_steps}")

            # 2. Store the real transitions: a NEXT_STEP reset step is none, and the next_obs of a
            #    truncating step is its real final observation (bootstrapped: only `terminated` stops the target)
            real = out.real
            buffer.add(env_slot[real], obs_before[real], u.cpu().numpy()[real], out.reward[real], state.obs[real],
                       out.terminated[real])

            # 3. Episode bookkeeping (step_envs keeps the returns; success is SAC's own)
            flags = _success_flags(out.info, num_envs)
            if flags is not None:
                reports_success = True
                state.episode_success |= real & flags
            for (e,), episode_return in zip(out.finished, out.finished_returns):
                slot = env_slot[e]
                succeeded = float(state.episode_success[e]) if reports_success else np.nan
                log["episode_steps"].append(env_steps)
                log["episode_tasks"].append(task_ids[slot])
                log["episode_returns"].append(float(episode_return))
                log["episode_success"].append(succeeded)
                recent_return[slot], recent_success[slot] = episode_return, succeeded
            state.episode_success[out.done] = False

            # 4. Gradient updates on batch_size transitions of every task
            if k >= first_update:
                for _ in range(updates_due(k - first_update + 1, cfg.updates_per_step)):
                    update(agent, optimisers, _to_batch(buffer.sample(rng, cfg.batch_size), slot_task, dev), cfg,
                           generator)

            # 5. Evaluation, checkpoint, progress
            last = k + 1 == vector_steps
            if last or _crossed(env_steps, num_envs, cfg.eval_every):
                if eval_env is None:
                    eval_env = family.source_envs(task_ids, cfg.eval_episodes)
                success, returns = evaluate(family, agent.actor, task_ids, cfg.eval_episodes,
                                            _derived_seed(seed, env_steps, 2), eval_env)
                log["eval_steps"].append(env_steps)
                log["eval_success"].append(success)
                log["eval_returns"].append(returns)
                bar.set_postfix(_postfix(recent_return, recent_success, success, returns), refresh=False)
            elif out.done.any():
                bar.set_postfix(_postfix(recent_return, recent_success, *_last_eval(log)), refresh=False)
            if path is not None and (last or _crossed(env_steps, num_envs, cfg.checkpoint_every)):
                save_checkpoint(k + 1, wall_before + time.perf_counter() - started)
            bar.update(num_envs)
            if callback is not None:
                callback(env_steps, agent)
    finally:
        bar.close()
        env.close()
        if eval_env is not None:
            eval_env.close()

    return SACResult(
        actor_state={k: v.detach().cpu().clone() for k, v in agent.actor.state_dict().items()},
        critic_state={k: v.detach().cpu().clone() for k, v in agent.critic.state_dict().items()},
        log_alpha=agent.log_alpha.detach().cpu().clone(),
        cfg=cfg,
        task_ids=task_ids,
        seed=int(seed),
        env_steps=vector_steps * num_envs,
        wall_time=wall_before + time.perf_counter() - started,
        eval_steps=np.asarray(log["eval_steps"], dtype=np.int64),
        eval_success=np.asarray(log["eval_success"], dtype=np.float64).reshape(-1, n),
        eval_returns=np.asarray(log["eval_returns"], dtype=np.float64).reshape(-1, n),
        episode_steps=np.asarray(log["episode_steps"], dtype=np.int64),
        episode_tasks=np.asarray(log["episode_tasks"], dtype=np.int64),
        episode_returns=np.asarray(log["episode_returns"], dtype=np.float64),
        episode_success=np.asarray(log["episode_success"], dtype=np.float64),
    )


_CHECKPOINT_KEYS = ("agent", "optimisers", "generator", "rng", "buffer", "env", "env_state", "step", "first_update",
                    "log", "wall_time", "config", "task_ids", "seed")
"""What ``train`` saves; a file without them is refused, not half-read."""


def _crossed(env_steps: int, step_size: int, every: int) -> bool:
    """Whether the vector step that ended at ``env_steps`` passed a multiple of ``every``."""
    return env_steps // every > (env_steps - step_size) // every


def _derived_seed(seed: int, step: int, purpose: int) -> int:
    """A seed for ``purpose`` (1: episodes restarted at a resume, 2: an evaluation) at ``step``."""
    return int(np.random.SeedSequence([int(seed), int(step), purpose]).generate_state(1)[0])


def _last_eval(log: Mapping[str, list]) -> tuple[np.ndarray | None, np.ndarray | None]:
    return (log["eval_success"][-1], log["eval_returns"][-1]) if log["eval_steps"] else (None, None)


def _postfix(recent_return: np.ndarray, recent_success: np.ndarray, eval_success: np.ndarray | None,
             eval_returns: np.ndarray | None) -> dict[str, str]:
    """Mean over tasks of each task's latest training episode, and of the latest evaluation."""
    def mean(x: np.ndarray | None) -> str | None:
        return f"{np.nanmean(x):.2f}" if x is not None and np.isfinite(x).any() else None

    items = {"return": mean(recent_return), "success": mean(recent_success),
             "eval_return": mean(eval_returns), "eval_success": mean(eval_success)}
    return {k: v for k, v in items.items() if v is not None}
