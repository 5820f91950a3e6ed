"""Many PPO runs of one shape in one process: ``train_many`` equals ``pgx.algos.ppo.train`` run R times.

The ground truth (subsets × replicates), the transfer matrix and the ablations train many small
PPO policies of one shape. One by one, each run pays Python's and torch's per-call overhead on
tiny matrices; here the R runs share the rollout's network calls, one backward and one optimiser
step per minibatch position:

* **envs** — every run's sub-envs are reset with the run's own seed and see the env stream that
  run's own ``family.source_envs(subset, envs_per_task)`` would give. Where the family allows it
  (``TaskFamily.merge_axis``: CartPole, navigation) all R × E sub-envs step in one vector env whose
  reset draws are split per run (:mod:`pgx.envs.runs`, bit for bit the runs' own envs); elsewhere
  (LunarLander, highway's envpool pools, Meta-World) each run steps its own env.
* **networks** — the R actor-critics' parameters are stacked (``torch.func.stack_module_state``:
  a leading run axis on every tensor), layer by layer as ``pgx.nets.policies.mlp`` builds them, and
  evaluated run by run on views of that storage (``exact=True``) or in batched matmuls
  (``baddbmm``, ``exact=False``). One backward of the sum of the R runs' losses gives each run its
  own gradient (the runs share no parameter).
* **sampling** — each run draws from its own ``torch.Generator`` with the very calls
  ``ActorCritic.act`` makes (``multinomial`` on the run's ``(E, A)`` probabilities, or ``randn`` of
  the run's ``(E, A)`` mean), then minibatch shuffles (``randperm``) in the same order as ``train``.
* **update** — runs have different numbers of valid transitions (autoreset steps are masked), so
  different minibatch sizes and even different minibatch counts. At position j of an epoch only the
  runs that have a j-th minibatch take a step: a stacked Adam (:class:`StackedAdam`, torch's
  ``Adam(eps=1e-5, foreach=True)`` arithmetic with a step count per run) moves those and leaves the
  others untouched, with ``cfg.learning_rate * (1 - iteration / num_iterations)`` under
  ``anneal_lr``. Two ways to get the gradients:

  - ``exact=True`` (the default): each run's minibatch at its own size through ``train``'s own
    calls — ``F.linear`` and ``tanh`` on the run's parameter slices (leaves of their own, views of
    the stacked storage), ``train``'s loss expressions, ``clip_grad_norm_(..., foreach=True)`` per
    run — and one backward of the sum of the runs' losses (each run's gradient is its own; the sum
    adds nothing to it). The batching here saves Python and autograd overhead, not arithmetic.
  - ``exact=False``: the rollout's networks in batched matmuls (``baddbmm`` on the stacked
    parameters) and ``tanh`` as ``2 sigmoid(2x) - 1`` (:class:`_SigmoidTanh`, 3x cheaper here and
    within 1.8e-7 of ``torch.tanh``); minibatches padded to the full minibatch size the config gives
    and masked, every run in one batched pass; every mean, and the advantages' mean and (unbiased)
    std, is a masked sum divided by the run's own count. Fewer, larger, cheaper calls; the sums add
    in another order than ``mean()``. A run's arithmetic depends on its own data and the config
    only, never on the other runs of its batch, so its result is the same bit for bit alone or in
    any batch (tested): the fine-tune store (``pgx.truth.finetune``) keeps one result per run whichever
    batch computed it, and a resumed call, which batches the remaining runs anew, gets the bits an
    uninterrupted one would. The ground truth fine-tunes this way.

What is equal, and why (torch 2.13, CPU, one thread; ``tests/test_ppo_batch.py`` checks it):

* **bit-identical with** ``exact=True``: everything — every run's returns log and final actor and
  critic parameters equal ``train``'s with ``torch.equal`` (CartPole, Discrete; navigation, Box;
  fresh and given initial weights; clipped and unclipped value loss; runs with different minibatch
  counts). Why, by construction rather than by luck of the BLAS: every run's env stream is its own
  env's, from the same seeds (one merged env elementwise, or its own env); every network pass, in
  the rollout and in the update, is run by run with the calls ``nn.Sequential`` makes (``F.linear``,
  ``torch.tanh``) on the run's own tensors at their own shapes, sampling and losses with ``act``'s
  and ``train``'s expressions, each run's generator drawn in ``train``'s order; gradients are
  clipped by ``clip_grad_norm_`` itself, per run; and :class:`StackedAdam` computes
  ``torch.optim.Adam``'s parameters bit for bit from the same gradients (tested alone). (A batched
  ``baddbmm`` is *not* a safe substitute: it matches ``nn.Linear``'s ``addmm`` bits for most shapes
  here but not for one-wide outputs nor for fewer than 4 rows, where the BLAS picks other kernels —
  measured.) What is shared: the Python loop, the envs' stepping (one call where merged), one
  backward and one optimiser step per minibatch position.
* **within float tolerance with** ``exact=False`` over a short run: gradients differ from
  ``train``'s by ~1e-7 relative (padded masked sums, matmuls blocked for another row count, the
  sigmoid form of tanh); parameters after 8 short iterations by < 2e-6 (tested). A Categorical
  action is the sequential run's unless a uniform draw falls within that noise of a probability
  boundary; a Gaussian action moves by the same ~1e-7, so navigation's returns agree within ~1e-5
  relative, not bit for bit (its whole default fine-tuning ends within 1.5e-7).
* **statistically** over a long ``exact=False`` run: two trajectories part where a draw falls on a
  boundary (chaos of the env and of training), as runs on two machines do. Over CartPole's whole
  default fine-tuning, 16 seeds, the learning curves' mean returns do not differ (paired t-test;
  measured p 0.75, padded minus exact -0.08 ± 0.90), while the same test tells a 30% lower
  learning rate apart (tested).

Speed (``benchmarks/bench_finetune_batch.py``, default fine-tuning configs, one core, 2026-12-07,
cores otherwise idle): runs per core-hour over ``train`` one at a time, R = 16 / 32 / 64 — CartPole
padded 2.47 / 2.43 / 2.36x (exact 1.51 / 1.49 / 1.45x), navigation padded 2.74 / 2.56 / 2.55x
(exact 1.42 / 1.38 / 1.36x), highway padded 2.10 / 2.02 / 2.01x. The padded batch is bound by
its matmuls: they run at 60-70 GFLOP/s on one core here (``baddbmm`` at these shapes as fast as
one large ``mm``) and take about half of a CartPole batch's time (cProfile, R = 32); the rest is
the sigmoid-tanh, sampling run by run, masking and the env.

Not supported (``train`` has them): checkpoint/resume inside a run (a batch's unit of resume is a
finished run, kept by the fine-tune store) and the global RNG state that ``train``'s
``seed_everything`` leaves behind (runs here are seeded only through their generator and env; a
fresh init draws from ``seed_everything(seed)`` per run, as ``train`` does).
"""

from __future__ import annotations

import time
from dataclasses import asdict
from typing import Callable, Sequence

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from pgx.algos.ppo import PPOConfig, TrainResult, ppo_loss
from pgx.envs import TaskFamily
from pgx.envs.autoreset import EnvState, step_envs
from pgx.envs.runs import MergedRuns, SeparateRuns, run_envs
from pgx.nets.policies import (
    ActorCritic, categorical_log_prob_and_entropy, categorical_sample_and_log_prob, gaussian_entropy,
    gaussian_log_prob, gaussian_sample_and_log_prob,
)
from pgx.algos.rollouts import gae
from pgx.runtime import pick_device, seed_everything

__all__ = ["StackedAdam", "train_many"]

# --- stacked networks -------------------------------------------------------------------------

def _layers(seq: nn.Module, prefix: str) -> list[tuple[str, str | None]]:
    """The ``pgx.nets.policies.mlp`` structure as ``[("linear", name) | ("tanh", None)]``; anything else is refused."""
    if not isinstance(seq, nn.Sequential):
        raise TypeError(f"train_many batches the MLPs of pgx.nets.policies.mlp; {prefix} is a {type(seq).__name__}")
    out: list[tuple[str, str | None]] = []
    for i, m in enumerate(seq):
        if isinstance(m, nn.Linear):
            out.append(("linear", f"{prefix}.{i}"))
        elif isinstance(m, nn.Tanh):
            out.append(("tanh", None))
        else:
            raise TypeError(f"train_many batches Linear and Tanh layers only; {prefix}.{i} is a {type(m).__name__}")
    return out


class _SigmoidTanh(torch.autograd.Function):
    """``tanh(x) = 2 sigmoid(2x) - 1``: torch's CPU ``tanh`` costs ~2.6 ns an element here against
    ~0.9 ns for this (float32, AVX-512, one thread), a fifth of a padded batch's time. Within 1.8e-7
    of ``torch.tanh`` everywhere (float32's rounding near 0.5 of the sigmoid): float noise of the
    size the padded sums already add. The backward uses the output, as ``tanh``'s does."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        y = _sigmoid_tanh(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        (y,) = ctx.saved_tensors
        return torch.ops.aten.tanh_backward(grad, y)  # grad * (1 - y²), tanh's own fused kernel


def _sigmoid_tanh(x: torch.Tensor) -> torch.Tensor:
    return (x * 2).sigmoid_().mul_(2).sub_(1)  # in place after the first: one new tensor, not three


def _fast_tanh(x: torch.Tensor) -> torch.Tensor:
    if torch.is_grad_enabled() and x.requires_grad:
        return _SigmoidTanh.apply(x)
    return _sigmoid_tanh(x)


def _forward(layers: list[tuple[str, str | None]], params: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """``(R, N, in)`` → ``(R, N, out)``: run r's MLP on ``x[r]``, one batched matmul per layer and
    :class:`_SigmoidTanh` (within float tolerance, not bit for bit: only the padded mode uses this).

    Every call here gives run r the same bits whatever the other runs are: ``baddbmm`` does for the
    shapes used (checked), except a one-wide output, where its bits change with the number of
    runs in the batch (another BLAS path); that layer is an elementwise product and a row sum."""
    for kind, name in layers:
        if kind == "tanh":
            x = _fast_tanh(x)
        elif params[f"{name}.weight"].shape[1] == 1:  # the critic's head: see the docstring
            x = (x * params[f"{name}.weight"]).sum(-1, keepdim=True) + params[f"{name}.bias"].unsqueeze(1)
        else:
            x = torch.baddbmm(params[f"{name}.bias"].unsqueeze(1), x, params[f"{name}.weight"].transpose(1, 2))
    return x


def _forward_one(layers: list[tuple[str, str | None]], params: dict[str, torch.Tensor],
                 x: torch.Tensor) -> torch.Tensor:
    """One run's MLP with ``nn.Sequential``'s very calls (``F.linear``, ``torch.tanh``): its bits."""
    for kind, name in layers:
        x = F.linear(x, params[f"{name}.weight"], params[f"{name}.bias"]) if kind == "linear" else torch.tanh(x)
    return x


class _Stack:
    """R actor-critics of one shape as stacked parameters, with the actor's and critic's batched passes."""

    def __init__(self, agents: list[ActorCritic]):
        self.template = agents[0]
        self.discrete = agents[0].discrete
        params, _ = torch.func.stack_module_state(agents)
        # stack_module_state's tensors require grad already; keep them as the leaves we optimise.
        self.params: dict[str, torch.Tensor] = {k: v.detach().clone().requires_grad_(True) for k, v in params.items()}
        self.names = list(self.params)
        self.actor_layers = _layers(agents[0].actor.net, "actor.net")
        self.critic_layers = _layers(agents[0].critic, "critic")

    def actor_out(self, obs: torch.Tensor, params=None) -> torch.Tensor:
        """Logits (Discrete) or means (Box), ``(R, N, A)``."""
        return _forward(self.actor_layers, params or self.params, obs)

    def value(self, obs: torch.Tensor, params=None) -> torch.Tensor:
        return _forward(self.critic_layers, params or self.params, obs).squeeze(-1)

    def run_views(self, r: int) -> dict[str, torch.Tensor]:
        """Run ``r``'s parameters as views of the stacked storage (no grad; they see every update)."""
        return {k: v.detach()[r] for k, v in self.params.items()}

    def act_exact(self, obs: torch.Tensor, generators: list[torch.Generator],
                  views: list[dict[str, torch.Tensor]]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``ActorCritic.act`` run by run, with its very calls: ``(action, log_prob, value)``, each ``(R, E, ...)``."""
        actions, log_probs, values = [], [], []
        for r, (p, generator) in enumerate(zip(views, generators)):
            out = _forward_one(self.actor_layers, p, obs[r])
            action, log_prob = (categorical_sample_and_log_prob(out, generator) if self.discrete
                                else gaussian_sample_and_log_prob(out, p["actor.log_std"], generator))
            actions.append(action)
            log_probs.append(log_prob)
            values.append(_forward_one(self.critic_layers, p, obs[r]).squeeze(-1))
        return torch.stack(actions), torch.stack(log_probs), torch.stack(values)

    def value_exact(self, obs: torch.Tensor, views: list[dict[str, torch.Tensor]]) -> torch.Tensor:
        return torch.stack([_forward_one(self.critic_layers, p, obs[r]).squeeze(-1) for r, p in enumerate(views)])

    def log_std(self) -> torch.Tensor:
        """``(R, 1, A)``"""
        return self.params["actor.log_std"].unsqueeze(1)

    def load_into(self, agent: ActorCritic, r: int) -> ActorCritic:
        """Copy run ``r``'s weights into ``agent`` (same shape) and return it."""
        with torch.no_grad():
            for name, p in agent.named_parameters():
                p.copy_(self.params[name][r])
        return agent


# --- the optimiser ----------------------------------------------------------------------------

class StackedAdam:
    """Adam over stacked parameters (leading run axis), torch's ``Adam(foreach=True)`` arithmetic,
    one step count per run; a step moves only the runs marked active. No weight decay, no amsgrad.

    Given the same gradients it computes ``torch.optim.Adam(lr, betas, eps, foreach=True)``'s
    parameters bit for bit (tested): the same elementwise ops in the same order (``lerp``, ``mul``,
    ``addcmul``, ``sqrt``, divide by ``sqrt(1 - β₂ᵗ)``, add ε, ``p + (-lr/(1-β₁ᵗ)) · m / denom``), the
    bias corrections computed in Python doubles as torch does.
    """

    def __init__(self, params: Sequence[torch.Tensor], eps: float = 1e-5, betas: tuple[float, float] = (0.9, 0.999)):
        self.params = list(params)
        self.runs = self.params[0].shape[0]
        self.eps, self.beta1, self.beta2 = float(eps), float(betas[0]), float(betas[1])
        self.exp_avg = [torch.zeros_like(p, memory_format=torch.preserve_format) for p in self.params]
        self.exp_avg_sq = [torch.zeros_like(p, memory_format=torch.preserve_format) for p in self.params]
        self.steps = [0] * self.runs

    @torch.no_grad()
    def step(self, grads: Sequence[torch.Tensor], lr: float, active: Sequence[bool]) -> None:
        active = [bool(a) for a in active]
        if not any(active):
            return
        for r, a in enumerate(active):
            self.steps[r] += int(a)
        # torch: step_size = (lr / (1 - β₁ᵗ)) * -1, bias_correction2_sqrt = (1 - β₂ᵗ) ** 0.5, in doubles
        step_size, bc2_sqrt = [], []
        for r in range(self.runs):
            t = float(max(self.steps[r], 1))
            step_size.append((lr / (1 - self.beta1 ** t)) * -1)
            bc2_sqrt.append((1 - self.beta2 ** t) ** 0.5)
        dev, dtype = self.params[0].device, self.params[0].dtype
        step_t = torch.tensor(step_size, dtype=dtype, device=dev)
        bc2_t = torch.tensor(bc2_sqrt, dtype=dtype, device=dev)
        act = torch.tensor(active, device=dev)
        for p, g, m, v in zip(self.params, grads, self.exp_avg, self.exp_avg_sq):
            shape = (self.runs,) + (1,) * (p.dim() - 1)
            m_new = torch.lerp(m, g, 1 - self.beta1)
            v_new = (v * self.beta2).addcmul_(g, g, value=1 - self.beta2)
            denom = (v_new.sqrt() / bc2_t.view(shape)).add_(self.eps)
            p_new = p + step_t.view(shape) * m_new / denom
            a = act.view(shape)
            m.copy_(torch.where(a, m_new, m))
            v.copy_(torch.where(a, v_new, v))
            p.copy_(torch.where(a, p_new, p))


def _clip_per_run(grads: list[torch.Tensor], max_norm: float) -> None:
    """``clip_grad_norm_`` for each run separately: the norm of the per-tensor norms, coefficient
    ``max_norm / (norm + 1e-6)`` clamped at 1, every gradient multiplied by it."""
    runs = grads[0].shape[0]
    norms = torch.stack([torch.linalg.vector_norm(g.reshape(runs, -1), dim=1) for g in grads], dim=1)
    coef = torch.clamp(max_norm / (torch.linalg.vector_norm(norms, dim=1) + 1e-6), max=1.0)
    for g in grads:
        g.mul_(coef.view((runs,) + (1,) * (g.dim() - 1)))


# --- rollout ----------------------------------------------------------------------------------

@torch.no_grad()
def _collect_many(stack: _Stack, envs: MergedRuns | SeparateRuns, state: EnvState, num_steps: int,
                  generators: list[torch.Generator], device: torch.device, exact: bool) -> dict:
    """``pgx.algos.rollouts.collect`` for R runs at once: arrays ``(T, R, E, ...)``; ``state`` holds the
    runs' ``(R, E, ...)`` arrays, and each run's env block and generator are used exactly as
    ``collect`` uses its own. ``exact``: the networks run run by run with ``ActorCritic.act``'s
    calls (its bits whatever the BLAS); else in batched matmuls."""
    R, E, obs_dim = state.obs.shape
    action_shape = () if stack.discrete else tuple(stack.params["actor.log_std"].shape[1:])
    obs_buf = torch.zeros((num_steps, R, E, obs_dim), device=device)
    actions_buf = torch.zeros((num_steps, R, E, *action_shape), device=device)
    log_probs = torch.zeros((num_steps, R, E), device=device)
    values = torch.zeros((num_steps, R, E), device=device)
    rewards = np.zeros((num_steps, R, E), np.float32)
    flags = {k: np.zeros((num_steps, R, E), bool) for k in ("terminated", "truncated", "valid")}
    finished: list[list[tuple[int, float]]] = [[] for _ in range(R)]
    if not stack.discrete and not exact:
        log_std = stack.log_std()
        std = log_std.exp()
    views = [stack.run_views(r) for r in range(R)] if exact else None
    for t in range(num_steps):
        obs_t = torch.as_tensor(state.obs, dtype=torch.float32, device=device)
        if exact:
            action, log_probs[t], values[t] = stack.act_exact(obs_t, generators, views)
        else:  # batched passes; sampling still run by run, from each run's generator
            out = stack.actor_out(obs_t)
            if stack.discrete:
                probs = torch.softmax(out, -1)
                action = torch.stack([torch.multinomial(probs[r], 1, generator=generators[r]).squeeze(-1)
                                      for r in range(R)])
                log_probs[t] = categorical_log_prob_and_entropy(out, action)[0]
            else:
                noise = torch.stack([torch.randn(out.shape[1:], generator=generators[r], device=device,
                                                 dtype=out.dtype) for r in range(R)])
                action = out + noise * std
                log_probs[t] = gaussian_log_prob(out, log_std, action)
            values[t] = stack.value(obs_t)
        obs_buf[t], actions_buf[t] = obs_t, action
        flags["valid"][t] = ~state.reset_next
        out = step_envs(envs.step, action.cpu().numpy(), state, f"at step {t}")
        rewards[t], flags["terminated"][t], flags["truncated"][t] = out.reward, out.terminated, out.truncated
        for (r, e), ret in zip(out.finished, out.finished_returns):
            finished[r].append((int(e), float(ret)))
    last_obs = torch.as_tensor(state.obs, dtype=torch.float32, device=device)
    next_value = stack.value_exact(last_obs, views) if exact else stack.value(last_obs)
    on_device = {k: torch.from_numpy(v).to(device) for k, v in (("rewards", rewards), *flags.items())}
    return dict(obs=obs_buf, actions=actions_buf, log_probs=log_probs, values=values, next_value=next_value,
                finished=finished, **on_device)


# --- the update -------------------------------------------------------------------------------

def _update_exact(stack: _Stack, optimizer: StackedAdam, data: dict, orders, mbs, n_mb, cfg: PPOConfig,
                  lr: float) -> None:
    """The clipped-objective update, each run's minibatch at its own size through ``train``'s own
    calls (``F.linear``, ``tanh``, the loss, ``clip_grad_norm_``), one backward for all runs and one
    :class:`StackedAdam` step: bit for bit ``train``'s update. Position j of an epoch steps the runs
    that have a j-th minibatch."""
    R = len(mbs)
    for epoch in range(cfg.update_epochs):
        for j in range(max(n_mb)):
            active = [j < n_mb[r] for r in range(R)]
            leaves, losses = {}, []
            for r in (r for r in range(R) if active[r]):
                # run r's parameters as leaves of their own (views of the stacked storage)
                p = {k: stack.params[k].detach()[r].requires_grad_(True) for k in stack.names}
                leaves[r] = p
                idx = orders[r][epoch][j * mbs[r]:(j + 1) * mbs[r]]
                obs, actions = data["obs"][r][idx], data["actions"][r][idx]
                out = _forward_one(stack.actor_layers, p, obs)
                if stack.discrete:
                    logp, entropy = categorical_log_prob_and_entropy(out, actions)
                else:
                    logp = gaussian_log_prob(out, p["actor.log_std"], actions)
                    entropy = gaussian_entropy(p["actor.log_std"]).expand(obs.shape[0])
                value = _forward_one(stack.critic_layers, p, obs).squeeze(-1)
                losses.append(ppo_loss(logp, entropy, value, data["logp"][r][idx], data["adv"][r][idx],
                                        data["ret"][r][idx], data["val"][r][idx], cfg))
            flat = [leaf for r in leaves for leaf in leaves[r].values()]
            grads = torch.autograd.grad(torch.stack(losses).sum(), flat)
            per_run = {r: grads[i * len(stack.names):(i + 1) * len(stack.names)] for i, r in enumerate(leaves)}
            for r, gs in per_run.items():  # clip_grad_norm_(agent.parameters(), max_norm, foreach=True), as train
                for leaf, g in zip(leaves[r].values(), gs):
                    leaf.grad = g
                nn.utils.clip_grad_norm_(list(leaves[r].values()), cfg.max_grad_norm, foreach=True)
            if all(active):
                stacked = [torch.stack([leaves[r][k].grad for r in range(R)]) for k in stack.names]
            else:  # runs without a j-th minibatch get zeros, and StackedAdam leaves them alone
                stacked = [torch.zeros_like(stack.params[k]) for k in stack.names]
                for i, k in enumerate(stack.names):
                    for r in leaves:
                        stacked[i][r] = leaves[r][k].grad
            optimizer.step(stacked, lr, active)


def _update_padded(stack: _Stack, optimizer: StackedAdam, data: dict, orders, mbs, n_mb, cfg: PPOConfig,
                   lr: float, M: int) -> None:
    """The same update with every run's minibatch padded to ``M`` rows (the minibatch of a batch
    with no autoreset step: no run's is larger) and masked, all runs in one batched pass: fewer,
    larger calls, equal to ``train``'s within float tolerance (masked sums add in another order
    than ``mean``). ``M`` is fixed by the config, not by the other runs of the batch, so a run's
    arithmetic, and its result bit for bit, is the same whichever runs it is batched with."""
    R, dev = len(mbs), stack.params[stack.names[0]].device
    N = max(x.shape[0] for x in data["obs"])

    def padded(xs: list[torch.Tensor]) -> torch.Tensor:
        out = torch.zeros((R, N, *xs[0].shape[1:]), dtype=xs[0].dtype, device=dev)
        for r, x in enumerate(xs):
            out[r, :x.shape[0]] = x
        return out

    b_obs, b_actions, b_logp, b_adv, b_ret, b_val = (
        padded(data[k]) for k in ("obs", "actions", "logp", "adv", "ret", "val"))
    J = max(n_mb)
    if max(mbs) > M:
        raise AssertionError(f"a minibatch of {max(mbs)} rows exceeds the padded size {M}")
    index = torch.zeros((cfg.update_epochs, J, R, M), dtype=torch.long, device=dev)
    mask = torch.zeros((cfg.update_epochs, J, R, M), dtype=torch.bool, device=dev)
    for r in range(R):
        for epoch in range(cfg.update_epochs):
            used = orders[r][epoch][:n_mb[r] * mbs[r]].reshape(n_mb[r], mbs[r])
            index[epoch, :n_mb[r], r, :mbs[r]] = used
            mask[epoch, :n_mb[r], r, :mbs[r]] = True
    runs_ix = torch.arange(R, device=dev)
    params = [stack.params[k] for k in stack.names]
    for epoch in range(cfg.update_epochs):
        for j in range(J):
            idx, m = index[epoch, j], mask[epoch, j]
            n_rows = m.sum(1)
            active = (n_rows > 0).tolist()
            nf = n_rows.clamp(min=1).to(b_adv.dtype)
            sel = (runs_ix[:, None], idx)
            obs = b_obs[sel]

            def masked_mean(x: torch.Tensor) -> torch.Tensor:
                return torch.where(m, x, torch.zeros_like(x)).sum(1) / nf

            out = stack.actor_out(obs)
            if stack.discrete:
                new_logp, entropy = categorical_log_prob_and_entropy(out, b_actions[sel])
                entropy = masked_mean(entropy)
            else:
                new_logp = gaussian_log_prob(out, stack.log_std(), b_actions[sel])
                entropy = gaussian_entropy(stack.params["actor.log_std"])
            new_value = stack.value(obs)
            ratio = (new_logp - b_logp[sel]).exp()
            adv = b_adv[sel]
            mean = masked_mean(adv)
            centred = torch.where(m, adv - mean[:, None], torch.zeros_like(adv))
            std = ((centred**2).sum(1) / (nf - 1).clamp(min=1)).sqrt()
            adv = centred / (std[:, None] + 1e-8)
            pg_loss = masked_mean(torch.max(-adv * ratio, -adv * ratio.clamp(1 - cfg.clip_coef, 1 + cfg.clip_coef)))
            v_loss = (new_value - b_ret[sel]) ** 2
            if cfg.clip_vloss:
                old = b_val[sel]
                v_clipped = old + (new_value - old).clamp(-cfg.clip_coef, cfg.clip_coef)
                v_loss = torch.max(v_loss, (v_clipped - b_ret[sel]) ** 2)
            v_loss = 0.5 * masked_mean(v_loss)
            loss = pg_loss - cfg.ent_coef * entropy + cfg.vf_coef * v_loss  # (R,)
            grads = list(torch.autograd.grad(loss.sum(), params))
            _clip_per_run(grads, cfg.max_grad_norm)
            optimizer.step(grads, lr, active)


# --- the trainer ------------------------------------------------------------------------------

def train_many(
    family: TaskFamily,
    runs: Sequence[tuple[Sequence[int], int]],
    cfg: PPOConfig,
    init_state: tuple[dict, dict] | None = None,
    on_iteration: Callable[[int, int, ActorCritic], None] | None = None,
    device: str | None = None,
    exact: bool = True,
    merge_envs: bool = True,
) -> list[TrainResult]:
    """``[train(family, subset, cfg, seed, init_state=init_state) for subset, seed in runs]``, trained together.

    :param runs: ``(task subset, seed)`` per run; every subset has the same number of tasks (the
        runs share one batch shape), not necessarily the same tasks.
    :param init_state: ``(actor_state, critic_state)`` every run starts from; None: each run's fresh
        initialisation from ``seed_everything(seed)``, as ``train`` draws it.
    :param on_iteration: called as ``on_iteration(iteration, run_index, agent)`` after each iteration
        for every run; ``agent`` is one ActorCritic reloaded with that run's weights for the call, so
        copy what you keep (``{k: v.clone() ...}``).
    :param exact: True: each run's minibatch goes through ``train``'s own calls at its own size
        (bit for bit ``train``, see the module docstring); False: minibatches padded and masked into
        one batched pass (within float tolerance; faster where minibatches are small, e.g. highway's
        80 rows).
    :param merge_envs: step every run's sub-envs in one vector env where the family allows it
        (:mod:`pgx.envs.runs`; bit for bit the runs' own envs); False: one env per run.
    :return: one :class:`~pgx.algos.ppo.TrainResult` per run, in the order of ``runs``; its
        ``wall_time`` is the batch's training time divided by the number of runs.
    """
    if len(runs) == 0:
        raise ValueError("runs is empty")
    subsets = [tuple(int(t) for t in family.check_tasks(subset)) for subset, _ in runs]
    seeds = [int(seed) for _, seed in runs]
    lengths = sorted({len(s) for s in subsets})
    if len(lengths) > 1:
        by_length = {n: [s for s in subsets if len(s) == n][:3] for n in lengths}
        raise ValueError(f"train_many needs subsets of one length (one batch shape); got lengths {lengths}: "
                         + "; ".join(f"{n} tasks e.g. {list(map(list, ex))}" for n, ex in by_length.items()))
    R, n = len(runs), lengths[0]
    num_iterations = cfg.num_iterations(n)
    if cfg.batch_size(n) // cfg.num_minibatches < 1:
        raise ValueError(f"PPOConfig.num_minibatches ({cfg.num_minibatches}) exceeds the batch of {cfg.batch_size(n)} "
                         f"steps of {n} tasks")
    dev = pick_device(device)

    # --- envs, agents, optimiser, RNGs: each run's as train makes them ---
    env_task = np.repeat(np.arange(n), cfg.envs_per_task)
    agents = []
    for seed in seeds:
        seed_everything(seed)
        agent = ActorCritic(family.obs_dim, family.action_space, cfg.policy).to(dev)
        if init_state is not None:
            agent.actor.load_state_dict(init_state[0])
            agent.critic.load_state_dict(init_state[1])
        agents.append(agent)
    stack = _Stack(agents)
    view = agents[0]  # reloaded with run r's weights for callbacks and results
    optimizer = StackedAdam([stack.params[k] for k in stack.names], eps=1e-5)
    generators = [torch.Generator(device=dev).manual_seed(seed) for seed in seeds]
    envs = run_envs(family, subsets, cfg.envs_per_task, merge=merge_envs)
    try:
        state = EnvState.at(envs.reset(seeds))
        steps_log: list[int] = []
        returns_log: list[list[np.ndarray]] = [[] for _ in range(R)]
        elapsed = 0.0
        for iteration in range(num_iterations):
            t0 = time.perf_counter()
            lr = cfg.learning_rate * (1.0 - iteration / num_iterations) if cfg.anneal_lr else cfg.learning_rate

            # Rollout and advantages, every run at once
            ro = _collect_many(stack, envs, state, cfg.num_steps, generators, dev, exact)
            advantages = gae(ro["rewards"], ro["values"], ro["terminated"], ro["truncated"], ro["valid"],
                             ro["next_value"], cfg.gamma, cfg.gae_lambda)
            returns = advantages + ro["values"]
            # Each run's valid transitions, in train's (step, sub-env) order
            valid = ro["valid"].transpose(0, 1).reshape(R, -1)
            per_run = {}
            for key, x in (("obs", ro["obs"]), ("actions", ro["actions"]), ("logp", ro["log_probs"]),
                           ("adv", advantages), ("ret", returns), ("val", ro["values"])):
                flat = x.transpose(0, 1).reshape(R, -1, *x.shape[3:])
                per_run[key] = [flat[r][valid[r]] for r in range(R)]
            if stack.discrete:
                per_run["actions"] = [a.long() for a in per_run["actions"]]
            counts = [int(x.shape[0]) for x in per_run["obs"]]
            # train's minibatch size and count per run, and its shuffles, drawn in train's order
            mbs = [max(1, c // cfg.num_minibatches) for c in counts]
            n_mb = [c // m for c, m in zip(counts, mbs)]  # len(range(0, c - mb + 1, mb))
            orders = [[torch.randperm(counts[r], generator=generators[r], device=dev) for _ in range(cfg.update_epochs)]
                      for r in range(R)]
            if exact:
                _update_exact(stack, optimizer, per_run, orders, mbs, n_mb, cfg, lr)
            else:
                _update_padded(stack, optimizer, per_run, orders, mbs, n_mb, cfg, lr,
                               M=max(1, cfg.batch_size(n) // cfg.num_minibatches))

            # Bookkeeping, per run as train does it
            for r in range(R):
                per_task: list[list[float]] = [[] for _ in range(n)]
                for e, ret in ro["finished"][r]:
                    per_task[env_task[e]].append(ret)
                returns_log[r].append(np.array([np.mean(x) if x else np.nan for x in per_task]))
            steps_log.append((iteration + 1) * cfg.batch_size(n))
            elapsed += time.perf_counter() - t0
            if on_iteration is not None:
                for r in range(R):
                    on_iteration(iteration, r, stack.load_into(view, r))
    finally:
        envs.close()

    results = []
    for r in range(R):
        agent = stack.load_into(view, r)
        results.append(TrainResult(
            actor_state={k: v.detach().cpu().clone() for k, v in agent.actor.state_dict().items()},
            critic_state={k: v.detach().cpu().clone() for k, v in agent.critic.state_dict().items()},
            steps=np.asarray(steps_log),
            task_returns=np.vstack(returns_log[r]) if returns_log[r] else np.zeros((0, n)),
            task_ids=subsets[r],
            wall_time=elapsed / R,
            config=asdict(cfg),
        ))
    return results
