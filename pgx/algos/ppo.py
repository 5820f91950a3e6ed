"""Multitask PPO (clipped objective, GAE, value loss, entropy bonus, advantage normalisation).

Read top to bottom like CleanRL's ``ppo.py``: config → env → agent → loop. Differences that
matter here:

* one vectorised env runs every task of ``task_ids`` side by side (``envs_per_task`` sub-envs
  each), so every update sees all tasks — the paper's multitask meta-training;
* Gymnasium 1.x NEXT_STEP autoreset is handled by masking reset steps (``pgx.algos.rollouts``);
* no global RNG: action sampling and minibatch shuffles draw from one ``torch.Generator``, whose
  state is checkpointed with the model and optimiser;
* resume is exact where the env can be pickled (the numpy families: CartPole, navigation): the
  env's state is checkpointed too, so an interrupted run resumes to the same parameters as an
  uninterrupted one. Box2D (LunarLander), highway-env and MuJoCo envs cannot be pickled reliably;
  for them the checkpoint restores weights, optimiser, RNG, learning curve and step count exactly,
  and the episodes that were in progress restart from a reset seeded by ``(seed, iteration)`` —
  the resumed run is reproducible but not identical to an uninterrupted one;
* ``init_state`` starts from given actor/critic weights: fine-tuning θ* uses the same loop;
* the value loss is unclipped by default (``PPOConfig.clip_vloss`` says why), and each minibatch
  evaluates the actor once for both log-probabilities and entropy.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from pgx.checks import KeyedByChanges, check_bool, check_instance, check_int, check_number
from pgx.envs import TaskFamily
from pgx.envs.runs import start_training_envs
from pgx.nets.policies import ActorCritic, PolicyConfig
from pgx.algos.rollouts import RolloutState, collect, flat_actions, gae
from pgx.runtime import load_run_checkpoint, pick_device, pickled_env, resumed_envs, save_torch, seed_everything

__all__ = ["PPOConfig", "TrainResult", "train", "resume_seed", "ppo_loss"]


@dataclass(frozen=True)
class PPOConfig(KeyedByChanges):
    total_timesteps: int = 500_000
    """Environment steps over all sub-envs (reset steps included)."""
    envs_per_task: int = 2
    """Sub-envs per task; the vector env has ``envs_per_task * len(task_ids)`` sub-envs."""
    num_steps: int = 128
    """Steps per sub-env in each rollout."""
    learning_rate: float = 2.5e-4
    anneal_lr: bool = True
    """Linearly decay the learning rate to 0 over the run."""
    gamma: float = 0.99
    gae_lambda: float = 0.95
    num_minibatches: int = 4
    update_epochs: int = 4
    clip_coef: float = 0.2
    clip_vloss: bool = False
    """Clip the value loss as CleanRL does (the max of the squared errors of the new value and of
    the value kept within ``clip_coef`` of the rollout's); False: plain ``0.5 * (v - ret)**2``, as
    Stable-Baselines3 does and as Andrychowicz et al. (2021) recommend. False is the default on
    measurement: ``benchmarks/bench_ppo.py --ablate-clip-vloss`` (CartPole family, 409,600 steps,
    seeds 0-9, greedy return averaged over the ten tasks' seeded episodes) gave 271.2 ± 26.3
    unclipped, 263.1 ± 23.3 clipped (paired difference +8.2, standard error 10.5: as good, not
    shown better) and 275.6 ± 23.8 for SB3."""
    ent_coef: float = 0.01
    vf_coef: float = 0.5
    max_grad_norm: float = 0.5
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    checkpoint_every: int = 20
    """Iterations between checkpoints (when a checkpoint path is given)."""

    def __post_init__(self) -> None:
        owner = "PPOConfig"
        for name in ("total_timesteps", "envs_per_task", "num_steps", "num_minibatches", "update_epochs",
                     "checkpoint_every"):
            check_int(owner, name, getattr(self, name))
        # 0 is allowed: it keeps the weights where they started (tests of init_state rely on it).
        check_number(owner, "learning_rate", self.learning_rate, 0, low_open=False)
        check_bool(owner, "anneal_lr", self.anneal_lr)
        check_number(owner, "gamma", self.gamma, 0, 1)
        check_number(owner, "gae_lambda", self.gae_lambda, 0, 1, low_open=False)
        check_number(owner, "clip_coef", self.clip_coef, 0)
        check_bool(owner, "clip_vloss", self.clip_vloss)
        check_number(owner, "ent_coef", self.ent_coef, 0, low_open=False)
        check_number(owner, "vf_coef", self.vf_coef, 0, low_open=False)
        check_number(owner, "max_grad_norm", self.max_grad_norm, 0, finite=False)  # inf: no clipping
        check_instance(owner, "policy", self.policy, PolicyConfig)
        # n_tasks is not known here, but a batch holds at least one task's envs_per_task * num_steps steps.
        if self.num_minibatches > self.envs_per_task * self.num_steps:
            raise ValueError(f"PPOConfig.num_minibatches must be <= envs_per_task * num_steps "
                             f"({self.envs_per_task} * {self.num_steps}, one task's batch), got {self.num_minibatches}")

    def batch_size(self, n_tasks: int) -> int:
        return self.envs_per_task * n_tasks * self.num_steps

    def num_iterations(self, n_tasks: int) -> int:
        return max(1, self.total_timesteps // self.batch_size(n_tasks))


@dataclass
class TrainResult:
    """What a PPO run leaves behind: weights (on CPU) and its learning curve."""

    actor_state: dict[str, torch.Tensor]
    critic_state: dict[str, torch.Tensor]
    steps: np.ndarray
    """``(iterations,)`` environment steps at the end of each iteration."""
    task_returns: np.ndarray
    """``(iterations, len(task_ids))`` mean return of the episodes each task finished in that
    iteration (NaN where none finished)."""
    task_ids: tuple[int, ...]
    wall_time: float
    """Seconds of training (summed over resumed segments)."""
    config: dict = field(default_factory=dict)

    def agent(self, family: TaskFamily, policy: PolicyConfig) -> ActorCritic:
        """The trained actor-critic (on CPU); ``policy`` must be the config it was trained with."""
        agent = ActorCritic(family.obs_dim, family.action_space, policy)
        agent.actor.load_state_dict(self.actor_state)
        agent.critic.load_state_dict(self.critic_state)
        return agent


def train(
    family: TaskFamily,
    task_ids: Sequence[int],
    cfg: PPOConfig,
    seed: int,
    checkpoint_path: str | Path | None = None,
    init_state: tuple[dict, dict] | None = None,
    device: str | None = None,
    progress: bool = True,
    on_iteration: Callable[[int, ActorCritic], None] | None = None,
) -> TrainResult:
    """Train one policy on ``task_ids`` of ``family`` with PPO.

    :param checkpoint_path: if given, save there every ``cfg.checkpoint_every`` iterations
        (atomically) and resume from it when it exists.
    :param init_state: ``(actor_state, critic_state)`` to start from instead of a fresh init.
    :param on_iteration: called with the iteration index and the agent after each iteration and
        its checkpoint (snapshots of fine-tuning use it; tests use it to interrupt a run).
    """
    task_ids = tuple(int(t) for t in family.check_tasks(task_ids))
    n = len(task_ids)
    num_iterations = cfg.num_iterations(n)
    minibatch_size = cfg.batch_size(n) // cfg.num_minibatches
    if minibatch_size < 1:
        raise ValueError(f"PPOConfig.num_minibatches ({cfg.num_minibatches}) exceeds the batch of {cfg.batch_size(n)} "
                         f"steps of {n} tasks")
    dev = pick_device(device)

    # --- env, agent, optimiser, RNG ---
    seed_everything(seed)
    env_task = np.repeat(np.arange(n), cfg.envs_per_task)  # position in task_ids of each sub-env
    agent = ActorCritic(family.obs_dim, family.action_space, cfg.policy).to(dev)
    if init_state is not None:
        agent.actor.load_state_dict(init_state[0])
        agent.critic.load_state_dict(init_state[1])
    # foreach: one kernel per step for all parameters instead of a Python loop over them; on a CPU
    # it computes the same numbers bit for bit (tested), ~10% of an update faster.
    optimizer = torch.optim.Adam(agent.parameters(), lr=cfg.learning_rate, eps=1e-5, foreach=True)
    generator = torch.Generator(device=dev).manual_seed(seed)
    start_iter, elapsed = 0, 0.0
    steps_log: list[int] = []
    returns_log: list[np.ndarray] = []

    ckpt = Path(checkpoint_path) if checkpoint_path is not None else None
    # The checkpoint holds the env's pickle (exact resume), so it is loaded with weights_only=False.
    saved = load_run_checkpoint(ckpt, dev, _CHECKPOINT_KEYS,
                                {"config": asdict(cfg), "task_ids": task_ids, "seed": seed})
    if saved is not None:
        agent.load_state_dict(saved["agent"])
        optimizer.load_state_dict(saved["optimizer"])
        generator.set_state(saved["generator"].cpu())
        start_iter, elapsed = saved["iteration"], saved["elapsed"]
        steps_log, returns_log = saved["steps"], saved["returns"]
    sub_env_tasks = family.source_env_tasks(task_ids, cfg.envs_per_task)
    env, state = resumed_envs(saved, ckpt, "rollout_state", lambda: family.source_envs(task_ids, cfg.envs_per_task),
                              lambda env, s: RolloutState.at(start_training_envs(family, env, s, sub_env_tasks)),
                              seed if saved is None else resume_seed(seed, start_iter))

    def save_checkpoint(iteration: int, elapsed: float) -> None:
        save_torch(
            {
                "agent": agent.state_dict(), "optimizer": optimizer.state_dict(),
                "generator": generator.get_state(), "env": pickled_env(env), "rollout_state": state,
                "iteration": iteration, "elapsed": elapsed, "steps": steps_log, "returns": returns_log,
                "config": asdict(cfg), "task_ids": task_ids, "seed": seed,
            },
            ckpt,
        )

    # --- the loop ---
    # No disable= unless asked: TQDM_DISABLE=1 then silences the bar in CI and book builds.
    bar = tqdm(total=num_iterations, initial=start_iter, desc=f"PPO {family.name} tasks={list(task_ids)}",
               **({} if progress else {"disable": True}))
    try:  # close the env (and any worker processes) even when a callback interrupts the run
        for iteration in range(start_iter, num_iterations):
            t0 = time.perf_counter()
            if cfg.anneal_lr:
                optimizer.param_groups[0]["lr"] = cfg.learning_rate * (1.0 - iteration / num_iterations)

            # Rollout and advantages
            agent.eval()
            rollout = collect(agent, env, state, cfg.num_steps, generator)
            advantages = gae(rollout.rewards, rollout.values, rollout.terminated, rollout.truncated,
                             rollout.valid, rollout.next_value, cfg.gamma, cfg.gae_lambda)
            returns = advantages + rollout.values
            valid = rollout.valid.reshape(-1)
            b_obs = rollout.obs.reshape(-1, rollout.obs.shape[-1])[valid]
            b_actions = flat_actions(rollout.actions, agent.discrete)[valid]
            b_logp, b_adv, b_ret, b_val = (
                x.reshape(-1)[valid] for x in (rollout.log_probs, advantages, returns, rollout.values)
            )

            # Clipped-objective update over minibatches of valid transitions
            agent.train()
            num_valid = b_obs.shape[0]
            mb = max(1, num_valid // cfg.num_minibatches)
            for _ in range(cfg.update_epochs):
                order = torch.randperm(num_valid, generator=generator, device=dev)
                for start in range(0, num_valid - mb + 1, mb):
                    idx = order[start:start + mb]
                    # one actor pass for log-probabilities and entropy, one critic pass
                    _, new_logp, entropy, new_value = agent.get_action_and_value(b_obs[idx], b_actions[idx])
                    loss = ppo_loss(new_logp, entropy, new_value, b_logp[idx], b_adv[idx], b_ret[idx], b_val[idx], cfg)
                    optimizer.zero_grad()
                    loss.backward()
                    nn.utils.clip_grad_norm_(agent.parameters(), cfg.max_grad_norm, foreach=True)
                    optimizer.step()

            # Bookkeeping: per-task mean return of the episodes that finished in this iteration
            per_task: list[list[float]] = [[] for _ in range(n)]
            for e, ret in rollout.finished_returns:
                per_task[env_task[e]].append(ret)
            returns_log.append(np.array([np.mean(r) if r else np.nan for r in per_task]))
            steps_log.append((iteration + 1) * cfg.batch_size(n))
            elapsed += time.perf_counter() - t0
            bar.update(1)
            bar.set_postfix(mean_return=f"{np.nanmean(returns_log[-1]) if np.isfinite(returns_log[-1]).any() else float('nan'):.1f}")
            if ckpt is not None and ((iteration + 1) % cfg.checkpoint_every == 0 or iteration + 1 == num_iterations):
                save_checkpoint(iteration + 1, elapsed)
            if on_iteration is not None:
                on_iteration(iteration, agent)
    finally:
        bar.close()
        env.close()

    return TrainResult(
        actor_state={k: v.detach().cpu().clone() for k, v in agent.actor.state_dict().items()},
        critic_state={k: v.detach().cpu().clone() for k, v in agent.critic.state_dict().items()},
        steps=np.asarray(steps_log),
        task_returns=np.vstack(returns_log) if returns_log else np.zeros((0, n)),
        task_ids=task_ids,
        wall_time=elapsed,
        config=asdict(cfg),
    )


_CHECKPOINT_KEYS = ("agent", "optimizer", "generator", "env", "rollout_state", "iteration", "elapsed", "steps",
                    "returns", "config", "task_ids", "seed")
"""What ``train`` saves; a file without them is refused, not half-read."""


def ppo_loss(logp: torch.Tensor, entropy: torch.Tensor, new_value: torch.Tensor, old_logp: torch.Tensor,
             adv: torch.Tensor, ret: torch.Tensor, old_value: torch.Tensor, cfg: PPOConfig) -> torch.Tensor:
    """One minibatch's loss: the clipped surrogate on advantages normalised within the minibatch,
    minus the entropy bonus, plus the value loss (clipped only where ``cfg.clip_vloss``). The one
    definition ``train`` and ``pgx.algos.ppo_batch`` both use, so batched runs keep its bits."""
    ratio = (logp - old_logp).exp()
    adv = (adv - adv.mean()) / (adv.std() + 1e-8)
    pg_loss = torch.max(-adv * ratio, -adv * ratio.clamp(1 - cfg.clip_coef, 1 + cfg.clip_coef)).mean()
    v_loss = (new_value - ret) ** 2
    if cfg.clip_vloss:
        v_clipped = old_value + (new_value - old_value).clamp(-cfg.clip_coef, cfg.clip_coef)
        v_loss = torch.max(v_loss, (v_clipped - ret) ** 2)
    v_loss = 0.5 * v_loss.mean()
    return pg_loss - cfg.ent_coef * entropy.mean() + cfg.vf_coef * v_loss


def resume_seed(seed: int, iteration: int) -> int:
    """Reset seed of the envs when a run resumes at ``iteration`` without a pickled env."""
    return seed + 1_000_003 * (iteration + 1)
