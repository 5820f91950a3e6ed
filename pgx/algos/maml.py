"""MAML for policy-gradient RL (Finn et al., 2017), read top to bottom: config → losses → adapt →
meta-gradient → the training loop.

* **Inner loop** (``adapt``): ``inner_steps`` vanilla policy-gradient steps on a task's own
  episodes, θ'ᵢ = θ − α ∇θ Lᵢ(θ), with Lᵢ the policy-gradient loss on normalised GAE advantages over
  a linear feature baseline (``pgx.algos.episodes``). Each step's episodes are played by the policy of
  that step, as at test time.
* **Outer loop**: the meta-loss is the same policy-gradient loss of each adapted policy on fresh
  episodes it played itself, averaged over the meta-batch; its gradient flows back through the
  adaptation (second order: ∇θ Lᵢ(θ'ᵢ) = (I − α ∇²Lᵢ(θ)) ∇Lᵢ(θ'ᵢ) for one step) with ``torch.func``:
  ``grad`` of a ``vmap`` over tasks of a function that itself calls ``grad``. ``first_order=True``
  stops the gradient at the inner step (FOMAML): the Hessian term is dropped, nothing else.
  Like pytorch-maml-rl and learn2learn, the meta-gradient ignores that the sampled episodes depend
  on θ (the DiCE/ProMP correction is not applied).
* **Outer step: Adam**, not TRPO. The references (pytorch-maml-rl, ProMP) take a TRPO step with a
  KL limit of 0.01; that step needs ~10 conjugate-gradient Hessian-vector products through the
  adaptation plus a line search per iteration, an order of magnitude more compute than one
  meta-gradient, which on two cores would buy fewer iterations. Adam with a small learning rate
  and gradient-norm clipping is the original MAML paper's supervised choice and keeps one
  meta-gradient per iteration; the book shows the learning curve it gives.
* **Meta-batch**: ``meta_batch_size`` slots, slot s always running training task ``s mod n``, with
  ``episodes`` episodes each; it must hold every training task at least once (where n does not
  divide it, the first tasks get one slot more). Every method trained with this config spends the
  same episodes per iteration whether it has 3 tasks or 10; the env is built once.
* **Reproducible and resumable**: every batch starts from an env reset seeded by (seed, iteration,
  phase) and action sampling draws from a generator seeded the same way, so a run resumed from its
  checkpoint (weights, Adam state, curve) continues exactly as an uninterrupted one, on every
  family, picklable env or not.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from torch.func import grad, vmap
from tqdm.auto import tqdm

from pgx.checks import KeyedByChanges, check_bool, check_instance, check_int, check_number, check_optional_int
from pgx.envs import TaskFamily
from pgx.algos.episodes import EpisodeBatch, collect_episodes, stack_params
from pgx.gradients import log_prob_at
from pgx.nets.policies import Actor, PolicyConfig, make_actor
from pgx.runtime import load_run_checkpoint, pick_device, save_torch, seed_everything

__all__ = ["MAMLConfig", "MAMLResult", "pg_loss", "adapt", "meta_loss", "meta_gradient", "meta_gradient_loop",
           "batch_seed", "train"]

Params = dict[str, torch.Tensor]


@dataclass(frozen=True)
class MAMLConfig(KeyedByChanges):
    meta_iterations: int = 100
    """Outer (Adam) steps."""
    meta_batch_size: int = 10
    """Task slots per meta-batch; slot s runs training task s mod n (see the module docstring)."""
    episodes: int = 10
    """Episodes per task slot in every inner and outer batch (pytorch-maml-rl uses 20)."""
    inner_steps: int = 1
    """Policy-gradient steps of the inner loop during meta-training."""
    inner_lr: float = 0.1
    """α, the inner step size (the references' ``fast_lr``)."""
    outer_lr: float = 1e-3
    """Adam's learning rate for the meta-update."""
    max_grad_norm: float = 1.0
    """Clip the meta-gradient's global norm (inf: no clipping)."""
    first_order: bool = False
    """FOMAML: treat the inner gradient as a constant (drops the Hessian term)."""
    gamma: float = 0.99
    gae_lambda: float = 1.0
    """λ = 1: advantages are discounted returns minus the linear baseline, as in the references."""
    horizon: int | None = None
    """Cut episodes after this many steps (None: the family's ``max_episode_steps``)."""
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    checkpoint_every: int = 10
    """Iterations between checkpoints (when a checkpoint path is given)."""

    def __post_init__(self) -> None:
        owner = "MAMLConfig"
        for name in ("meta_iterations", "meta_batch_size", "episodes", "checkpoint_every"):
            check_int(owner, name, getattr(self, name))
        check_int(owner, "inner_steps", self.inner_steps, 0)
        check_number(owner, "inner_lr", self.inner_lr, 0)
        check_number(owner, "outer_lr", self.outer_lr, 0)
        check_number(owner, "max_grad_norm", self.max_grad_norm, 0, finite=False)  # inf: no clipping
        check_bool(owner, "first_order", self.first_order)
        check_number(owner, "gamma", self.gamma, 0, 1)
        check_number(owner, "gae_lambda", self.gae_lambda, 0, 1, low_open=False)
        check_optional_int(owner, "horizon", self.horizon)
        check_instance(owner, "policy", self.policy, PolicyConfig)

    def max_steps(self, family: TaskFamily) -> int:
        return family.max_episode_steps if self.horizon is None else min(self.horizon, family.max_episode_steps)


# --- losses and the inner loop ------------------------------------------------------------------

def pg_loss(actor: Actor, params: Params, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
    """The policy-gradient loss of one task: −mean over real steps of log π(a|s) · Â.

    ``batch = (obs (E, T, D), actions (E, T[, A]), advantages (E, T), mask (E, T))``; the advantages
    are constants, so the gradient is the REINFORCE estimate with a baseline."""
    obs, actions, advantages, mask = batch
    flat_actions = actions.reshape(-1, *actions.shape[2:])
    log_probs = log_prob_at(actor, params, obs.reshape(-1, obs.shape[-1]), flat_actions).reshape(mask.shape)
    m = mask.to(log_probs.dtype)
    return -(log_probs * advantages * m).sum() / m.sum().clamp_min(1.0)


def adapt(actor: Actor, params: Params, batches: Sequence[tuple[torch.Tensor, ...]], inner_lr: float,
          first_order: bool = False) -> Params:
    """θ' after one policy-gradient step per batch: θ ← θ − α ∇L(θ; batch). Differentiable in θ
    (second order) unless ``first_order``, which treats each inner gradient as a constant."""
    for batch in batches:
        g = grad(pg_loss, argnums=1)(actor, params, batch)
        params = {k: p - inner_lr * (g[k].detach() if first_order else g[k]) for k, p in params.items()}
    return params


def _task_meta_loss(actor: Actor, params: Params, inner: Sequence[tuple], outer: tuple, inner_lr: float,
                    first_order: bool) -> torch.Tensor:
    return pg_loss(actor, adapt(actor, params, inner, inner_lr, first_order), outer)


def meta_loss(actor: Actor, params: Params, inner: Sequence[tuple], outer: tuple, inner_lr: float,
              first_order: bool = False) -> torch.Tensor:
    """Mean over tasks of the post-adaptation loss; every tensor in ``inner`` (one batch per inner
    step) and ``outer`` has a leading task dimension, over which this ``vmap``s."""
    losses = vmap(_task_meta_loss, in_dims=(None, None, 0, 0, None, None))(actor, params, list(inner), outer,
                                                                           inner_lr, first_order)
    return losses.mean()


def meta_gradient(actor: Actor, params: Params, inner: Sequence[tuple], outer: tuple, inner_lr: float,
                  first_order: bool = False) -> tuple[Params, torch.Tensor]:
    """(∇θ meta-loss, meta-loss), all tasks at once (``vmap``)."""
    def loss(p: Params) -> tuple[torch.Tensor, torch.Tensor]:
        value = meta_loss(actor, p, inner, outer, inner_lr, first_order)
        return value, value.detach()

    return grad(loss, has_aux=True)(params)


def meta_gradient_loop(actor: Actor, params: Params, inner: Sequence[tuple], outer: tuple, inner_lr: float,
                       first_order: bool = False) -> tuple[Params, torch.Tensor]:
    """The same meta-gradient with a Python loop over tasks: the test oracle and the benchmark's baseline."""
    def loss(p: Params) -> tuple[torch.Tensor, torch.Tensor]:
        num_tasks = outer[0].shape[0]
        per_task = [_task_meta_loss(actor, p, [tuple(x[b] for x in batch) for batch in inner],
                                    tuple(x[b] for x in outer), inner_lr, first_order) for b in range(num_tasks)]
        value = torch.stack(per_task).mean()
        return value, value.detach()

    return grad(loss, has_aux=True)(params)


def as_tuple(batch: EpisodeBatch) -> tuple[torch.Tensor, ...]:
    """The tensors a loss needs, each with a leading task dimension."""
    return batch.obs, batch.actions, batch.advantages, batch.mask


@torch.no_grad()
def adapted_values(actor: Actor, params: Params, batch: EpisodeBatch, inner_lr: float) -> Params:
    """One inner step for every task of ``batch`` (values only, for playing the next batch):
    ``params`` has a leading task dimension."""
    step = vmap(lambda p, b: adapt(actor, p, [b], inner_lr, first_order=True))
    return step(params, as_tuple(batch))


# --- training -----------------------------------------------------------------------------------

@dataclass
class MAMLResult:
    """A MAML run: meta-parameters (CPU) and its learning curve."""

    actor_state: dict[str, torch.Tensor]
    task_ids: tuple[int, ...]
    returns_before: np.ndarray
    """``(iterations,)`` mean return of the meta-batch's episodes before adaptation."""
    returns_after: np.ndarray
    """``(iterations,)`` mean return after ``inner_steps`` adaptation steps (the meta-objective)."""
    env_steps: np.ndarray
    """``(iterations,)`` cumulative real environment steps."""
    wall_time: float
    config: dict = field(default_factory=dict)

    def actor(self, family: TaskFamily, policy: PolicyConfig) -> Actor:
        actor = make_actor(family.obs_dim, family.action_space, policy)
        actor.load_state_dict(self.actor_state)
        return actor


def batch_seed(seed: int, iteration: int, phase: int) -> int:
    """Seed of the env reset and action sampling of one batch: phase j < inner_steps is inner step
    j's batch, phase ``inner_steps`` the outer batch. Independent streams per (seed, iteration, phase)."""
    return int(np.random.SeedSequence([int(seed), int(iteration), int(phase)]).generate_state(1)[0])


_CHECKPOINT_KEYS = ("actor", "optimizer", "curve", "iteration", "task_ids", "config", "seed", "wall_time")
"""What a MAML checkpoint holds: tensors, numbers, lists and the config as given (numpy scalars too)."""


def train(
    family: TaskFamily,
    task_ids: Sequence[int],
    cfg: MAMLConfig,
    seed: int,
    checkpoint_path: str | Path | None = None,
    device: str | None = None,
    progress: bool = True,
    on_iteration: Callable[[int], None] | None = None,
) -> MAMLResult:
    """Meta-train a policy with MAML on the source tasks ``task_ids`` of ``family``.

    :param checkpoint_path: save there every ``cfg.checkpoint_every`` iterations (atomically) and
        resume from it when it exists; the resumed run equals an uninterrupted one.
    :param on_iteration: called after each iteration and its checkpoint (tests interrupt runs with it).
    """
    task_ids = tuple(int(t) for t in family.check_tasks(task_ids))
    if cfg.meta_batch_size < len(task_ids):
        raise ValueError(f"meta_batch_size {cfg.meta_batch_size} is smaller than the {len(task_ids)} training tasks: "
                         f"some would never be trained on")
    dev = pick_device(device)
    seed_everything(seed)
    actor = make_actor(family.obs_dim, family.action_space, cfg.policy).to(dev)
    optimizer = torch.optim.Adam(actor.parameters(), lr=cfg.outer_lr, eps=1e-5)
    slots = [task_ids[s % len(task_ids)] for s in range(cfg.meta_batch_size)]
    env = family.source_envs(slots, cfg.episodes)
    max_steps = cfg.max_steps(family)
    curve: dict[str, list[float]] = {"before": [], "after": [], "steps": []}
    start_iteration, wall_before = 0, 0.0
    path = Path(checkpoint_path) if checkpoint_path is not None else None
    # weights_only=False, as PPO and SAC load theirs: a config or seed given as numpy scalars (which
    # configs accept) is pickled as numpy objects, which weights_only would refuse.
    state = load_run_checkpoint(path, dev, _CHECKPOINT_KEYS,
                                {"config": asdict(cfg), "task_ids": task_ids, "seed": seed})
    if state is not None:
        actor.load_state_dict(state["actor"])
        optimizer.load_state_dict(state["optimizer"])
        curve, start_iteration, wall_before = state["curve"], state["iteration"], state["wall_time"]

    def play(params: Params, iteration: int, phase: int) -> EpisodeBatch:
        return collect_episodes(actor, params, env, cfg.episodes, max_steps, batch_seed(seed, iteration, phase),
                                cfg.gamma, cfg.gae_lambda)

    started = time.perf_counter()
    bar = tqdm(range(start_iteration, cfg.meta_iterations), desc=f"MAML {family.name}", disable=not progress,
               initial=start_iteration, total=cfg.meta_iterations)
    try:
        for iteration in bar:
            # 1. Play each task's inner batches, adapting between them (values only).
            theta = {k: p.detach() for k, p in actor.named_parameters()}
            params = stack_params(theta, len(slots))
            inner: list[EpisodeBatch] = []
            for phase in range(cfg.inner_steps):
                inner.append(play(params, iteration, phase))
                params = adapted_values(actor, params, inner[-1], cfg.inner_lr)
            # 2. The adapted policies play the outer batch.
            outer = play(params, iteration, cfg.inner_steps)
            # 3. Meta-gradient through the adaptation, then one Adam step.
            grads, _ = meta_gradient(actor, theta, [as_tuple(b) for b in inner], as_tuple(outer), cfg.inner_lr,
                                     cfg.first_order)
            for name, p in actor.named_parameters():
                p.grad = grads[name].detach().clone()
            norm = torch.nn.utils.clip_grad_norm_(actor.parameters(), cfg.max_grad_norm)
            if not torch.isfinite(norm):
                raise ValueError(f"{family.name}: the meta-gradient is not finite at iteration {iteration} "
                                 f"(norm {float(norm)}); try a smaller inner_lr ({cfg.inner_lr}) or outer_lr ({cfg.outer_lr})")
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)

            before = (inner[0] if inner else outer).returns.mean().item()
            steps = (curve["steps"][-1] if curve["steps"] else 0) + sum(b.env_steps for b in [*inner, outer])
            curve["before"].append(before)
            curve["after"].append(outer.returns.mean().item())
            curve["steps"].append(steps)
            bar.set_postfix(before=f"{before:.1f}", after=f"{curve['after'][-1]:.1f}")
            done = iteration + 1
            if path is not None and (done % cfg.checkpoint_every == 0 or done == cfg.meta_iterations):
                save_torch({"actor": actor.state_dict(), "optimizer": optimizer.state_dict(), "curve": curve,
                            "iteration": done, "task_ids": task_ids, "config": asdict(cfg), "seed": seed,
                            "wall_time": wall_before + time.perf_counter() - started}, path)
            if on_iteration is not None:
                on_iteration(iteration)
    finally:
        bar.close()
        env.close()
    return MAMLResult(
        actor_state={k: v.detach().cpu().clone() for k, v in actor.state_dict().items()},
        task_ids=task_ids,
        returns_before=np.asarray(curve["before"]),
        returns_after=np.asarray(curve["after"]),
        env_steps=np.asarray(curve["steps"], dtype=np.int64),
        wall_time=wall_before + time.perf_counter() - started,
        config=asdict(cfg),
    )
