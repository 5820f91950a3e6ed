"""Multitask PPO throughput: pgx against Stable-Baselines3's PPO on the same family and budget.

Both sides train the CartPole family (10 pole lengths, 4 sub-envs per task, 128 steps per
rollout, so 5,120 env steps per iteration; 4 epochs × 4 minibatches; learning rate 2.5e-4 decayed
linearly to 0 over the same iterations; the same clipping, entropy coefficient, gradient-norm cap
and Adam ε) with the same network: separate actor and critic MLPs of four linear layers, 64 wide,
tanh, orthogonal init. SB3 builds the family as its users would: one
``gymnasium.make("CartPole-v1")`` per sub-env with its pole length set and the task one-hot
appended by an observation wrapper, in a ``DummyVecEnv``. One torch thread, same process, sides
alternating by seed, a warm-up run of each first; each side's time includes building its envs
and networks.

Matched by hand: SB3's value loss is a plain mean squared error where pgx's (CleanRL's) carries a
factor ½, so SB3 gets ``vf_coef`` 0.25 for pgx's 0.5; SB3 updates its learning rate from the
progress *after* a rollout, one iteration later than pgx, so its schedule is shifted by one
iteration to match. Neither clips the value loss (pgx's ``PPOConfig.clip_vloss`` defaults to False;
``--ablate-clip-vloss`` also runs pgx with it on, CleanRL's max of clipped and unclipped); the
step budget is a multiple of 5,120 so both run the same iterations.

Returns: after training, each policy's actor (SB3's copied into a pgx actor, layer by layer) plays
the same seeded greedy episodes on every task (``pgx.evaluation.evaluate``), so returns compare
like with like.

Run by hand: ``python benchmarks/bench_ppo.py`` (409,600 steps × 3 seeds per side, about 2 minutes
on one free core); ``--steps`` and ``--seeds`` change the budget; ``--ablate-clip-vloss`` adds pgx
with the value loss clipped; ``--profile`` adds where each library's time goes (cProfile) and what
pgx's one actor pass per minibatch saves over the two it made before.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass

import gymnasium as gym
import numpy as np
import pandas as pd
import torch

from _timing import profile_shares

from pgx.algos.ppo import PPOConfig, train
from pgx.envs import make_family
from pgx.envs.cartpole import SOURCE_LENGTHS
from pgx.evaluation import evaluate
from pgx.nets.policies import CategoricalActor, PolicyConfig

FAMILY = "cartpole"
ENVS_PER_TASK, NUM_STEPS, EPOCHS, MINIBATCHES, LR = 4, 128, 4, 4, 2.5e-4
POLICY = PolicyConfig(hidden=64, layers=4)
EVAL_EPISODES, EVAL_SEED = 10, 12_345


@dataclass(frozen=True)
class Run:
    library: str
    """``"pgx"`` (its default config), ``"pgx clip_vloss=..."`` (the ablation) or ``"sb3"``."""
    seed: int
    steps: int
    wall_s: float
    mean_return: float
    """Mean over tasks of the greedy return, ``EVAL_EPISODES`` seeded episodes per task."""

    @property
    def steps_per_s(self) -> float:
        return self.steps / self.wall_s


def pgx_config(steps: int, clip_vloss: bool | None = None) -> PPOConfig:
    """pgx's PPO at this benchmark's sizes; ``clip_vloss`` None keeps ``PPOConfig``'s default."""
    extra = {} if clip_vloss is None else {"clip_vloss": clip_vloss}
    return PPOConfig(total_timesteps=steps, envs_per_task=ENVS_PER_TASK, num_steps=NUM_STEPS,
                     learning_rate=LR, anneal_lr=True, num_minibatches=MINIBATCHES, update_epochs=EPOCHS,
                     policy=POLICY, **extra)


def run_pgx(steps: int, seed: int, clip_vloss: bool | None = None) -> Run:
    """One pgx run; labelled ``"pgx"`` at the default ``clip_vloss``, else ``"pgx clip_vloss=..."``."""
    family = make_family(FAMILY)
    tasks = list(range(family.n_tasks))
    cfg = pgx_config(steps, clip_vloss)
    start = time.perf_counter()
    result = train(family, tasks, cfg, seed=seed, progress=False)
    wall = time.perf_counter() - start
    actor = result.agent(family, POLICY).actor
    returns = evaluate(actor, family, tasks, EVAL_EPISODES, seed=EVAL_SEED)
    label = "pgx" if cfg.clip_vloss == PPOConfig.clip_vloss else f"pgx clip_vloss={cfg.clip_vloss}"
    return Run(label, seed, int(result.steps[-1]), wall, float(returns.mean()))


class _TaskOneHot(gym.ObservationWrapper):
    """Appends task ``task``'s one-hot, as pgx's family does (so both see the same observations)."""

    def __init__(self, env: gym.Env, task: int, n_tasks: int):
        super().__init__(env)
        self.one_hot = np.eye(n_tasks, dtype=np.float32)[task]
        low = np.concatenate([env.observation_space.low, np.zeros(n_tasks, np.float32)])
        high = np.concatenate([env.observation_space.high, np.ones(n_tasks, np.float32)])
        self.observation_space = gym.spaces.Box(low, high, dtype=np.float32)

    def observation(self, obs: np.ndarray) -> np.ndarray:
        return np.concatenate([obs, self.one_hot]).astype(np.float32)


def _cartpole_task(task: int):
    def make() -> gym.Env:
        env = gym.make("CartPole-v1")
        env.unwrapped.length = SOURCE_LENGTHS[task]
        env.unwrapped.polemass_length = env.unwrapped.masspole * SOURCE_LENGTHS[task]
        return _TaskOneHot(env, task, len(SOURCE_LENGTHS))
    return make


def sb3_model(steps: int, seed: int):
    """SB3's PPO on the family, configured as pgx's (module docstring: what is matched by hand)."""
    from stable_baselines3 import PPO
    from stable_baselines3.common.vec_env import DummyVecEnv

    n_tasks = len(SOURCE_LENGTHS)
    batch = ENVS_PER_TASK * n_tasks * NUM_STEPS
    venv = DummyVecEnv([_cartpole_task(t) for t in range(n_tasks) for _ in range(ENVS_PER_TASK)])
    hidden = [POLICY.hidden] * (POLICY.layers - 1)
    # SB3 reads `remaining` after the rollout (1 - (i+1)·batch/steps at iteration i); pgx anneals
    # from 1 - i·batch/steps. Adding one batch back gives both the same rate at every iteration.
    shift = batch / steps
    return PPO(
        "MlpPolicy", venv, n_steps=NUM_STEPS, batch_size=batch // MINIBATCHES, n_epochs=EPOCHS,
        learning_rate=lambda remaining: LR * min(1.0, remaining + shift), gamma=0.99, gae_lambda=0.95,
        clip_range=0.2, ent_coef=0.01, vf_coef=0.25, max_grad_norm=0.5, seed=seed, device="cpu", verbose=0,
        policy_kwargs=dict(net_arch=dict(pi=hidden, vf=hidden), activation_fn=torch.nn.Tanh),
    )


def run_sb3(steps: int, seed: int) -> Run:
    n_tasks = len(SOURCE_LENGTHS)
    start = time.perf_counter()
    model = sb3_model(steps, seed)
    model.learn(steps)
    wall = time.perf_counter() - start
    family = make_family(FAMILY)
    returns = evaluate(sb3_actor(model, family), family, range(n_tasks), EVAL_EPISODES, seed=EVAL_SEED)
    return Run("sb3", seed, int(model.num_timesteps), wall, float(returns.mean()))


def sb3_actor(model, family) -> CategoricalActor:
    """SB3's trained policy as a pgx actor: the same layers, copied weight by weight."""
    actor = CategoricalActor(family.obs_dim, family.num_actions, POLICY)
    sb3_layers = [m for m in model.policy.mlp_extractor.policy_net if isinstance(m, torch.nn.Linear)]
    sb3_layers.append(model.policy.action_net)
    ours = [m for m in actor.net if isinstance(m, torch.nn.Linear)]
    if len(ours) != len(sb3_layers):
        raise ValueError(f"SB3's policy has {len(sb3_layers)} linear layers, pgx's actor {len(ours)}")
    with torch.no_grad():
        for mine, theirs in zip(ours, sb3_layers):
            mine.weight.copy_(theirs.weight)
            mine.bias.copy_(theirs.bias)
    return actor


def compare(steps: int = 409_600, seeds: tuple[int, ...] = (0, 1, 2),
            ablate_clip_vloss: bool = False) -> pd.DataFrame:
    """One row per (library, seed): env steps, wall seconds, steps/s and greedy return. Seeds
    alternate the sides, so load from other jobs falls on all of them. ``ablate_clip_vloss`` adds
    a third side: pgx with ``PPOConfig.clip_vloss`` flipped (same seeds, same greedy episodes)."""
    batch = ENVS_PER_TASK * len(SOURCE_LENGTHS) * NUM_STEPS
    if steps % batch:
        raise ValueError(f"steps must be a multiple of {batch} (one iteration of both libraries), got {steps}")
    torch.set_num_threads(1)
    for runner in (run_pgx, run_sb3):  # warm-up: first-call imports (torch's optimiser pulls in dynamo) untimed
        runner(NUM_STEPS * ENVS_PER_TASK * len(SOURCE_LENGTHS), 0)
    runners = [run_pgx, run_sb3]
    if ablate_clip_vloss:
        runners.insert(1, lambda steps, seed: run_pgx(steps, seed, clip_vloss=not PPOConfig.clip_vloss))
    rows = []
    for seed in seeds:
        for runner in runners:
            run = runner(steps, seed)
            rows.append({"library": run.library, "seed": run.seed, "steps": run.steps, "wall_s": run.wall_s,
                         "steps_per_s": run.steps_per_s, "mean_return": run.mean_return})
    return pd.DataFrame(rows)


def summary(runs: pd.DataFrame) -> pd.DataFrame:
    """Mean ± std over seeds per library (and pgx variant), and the speed ratio of pgx at its
    default config to SB3 (paired by seed)."""
    by = runs.groupby("library")[["steps_per_s", "mean_return"]].agg(["mean", "std"])
    pgx_rate = runs[runs.library == "pgx"].set_index("seed").steps_per_s
    sb3_rate = runs[runs.library == "sb3"].set_index("seed").steps_per_s
    ratio = pgx_rate / sb3_rate
    by.attrs["ratio_mean"], by.attrs["ratio_min"] = float(ratio.mean()), float(ratio.min())
    return by


def profile_pgx(steps: int = 102_400, seed: int = 0) -> pd.DataFrame:
    """Where pgx's training time goes: cProfile's cumulative seconds of the functions that matter
    (rollout, env step, policy passes, update's backward and Adam step), as a share of the run.
    cProfile adds per-call overhead to Python-heavy parts, so shares are indicative."""
    family = make_family(FAMILY)
    train(family, [0], pgx_config(5_000), seed=seed, progress=False)  # imports and first-call costs out
    return profile_shares(lambda: train(family, list(range(family.n_tasks)), pgx_config(steps), seed=seed, progress=False),
                   "train", {
                       "rollout (collect)": ("rollouts.py", "collect"),
                       "  env.step": ("family.py", "step"),
                       "  policy: act": ("policies.py", "act"),
                       "GAE": ("rollouts.py", "gae"),
                       "update: forward (get_action_and_value)": ("policies.py", "get_action_and_value"),
                       "update: backward": ("_tensor.py", "backward"),
                       "update: Adam step": ("adam.py", "step"),
                       "update: clip_grad_norm_": ("clip_grad.py", "clip_grad_norm_"),
                   })


def profile_sb3(steps: int = 102_400, seed: int = 0) -> pd.DataFrame:
    """Where SB3's time goes on the same run (cProfile, cumulative shares as in ``profile_pgx``)."""
    run_sb3(5_120 * 2, seed)  # first-call costs out
    model = sb3_model(steps, seed)
    return profile_shares(lambda: model.learn(steps), "learn", {
        "rollout (collect_rollouts)": ("on_policy_algorithm.py", "collect_rollouts"),
        "  env.step (DummyVecEnv, 40 envs)": ("dummy_vec_env.py", "step_wait"),
        "  policy: forward": ("policies.py", "forward"),
        "update (train)": ("ppo.py", "train"),
    })


def one_pass_saving(repeats: int = 50, seed: int = 0) -> dict[str, float]:
    """Milliseconds of one PPO minibatch step (forward, backward, clipping, Adam) on a synthetic
    minibatch of this benchmark's size, as pgx computed it before (the actor evaluated twice: once
    for log-probabilities, once for the entropy) and as it does now (``get_action_and_value``:
    both from one actor pass, ``log_prob_and_entropy``)."""
    from _timing import best_time
    from pgx.nets.policies import ActorCritic

    torch.set_num_threads(1)
    family = make_family(FAMILY)
    generator = torch.Generator().manual_seed(seed)
    n = ENVS_PER_TASK * family.n_tasks * NUM_STEPS // MINIBATCHES
    obs = torch.randn(n, family.obs_dim, generator=generator)
    actions = torch.randint(0, family.num_actions, (n,), generator=generator)
    agent = ActorCritic(family.obs_dim, family.action_space, POLICY)
    optimizer = torch.optim.Adam(agent.parameters(), lr=LR, eps=1e-5, foreach=True)

    def step(loss: torch.Tensor) -> None:
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(agent.parameters(), 0.5, foreach=True)
        optimizer.step()

    def two_passes() -> None:
        log_prob, entropy = agent.actor.log_prob(obs, actions), agent.actor.entropy(obs)
        step(-log_prob.mean() - 0.01 * entropy.mean() + agent.get_value(obs).pow(2).mean())

    def one_pass() -> None:
        _, log_prob, entropy, value = agent.get_action_and_value(obs, actions)
        step(-log_prob.mean() - 0.01 * entropy.mean() + value.pow(2).mean())

    two, one = best_time(two_passes, repeats), best_time(one_pass, repeats)
    return {"minibatch": n, "two_passes_ms": two * 1e3, "one_pass_ms": one * 1e3, "saving": 1 - one / two}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=409_600)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--ablate-clip-vloss", action="store_true",
                        help="also run pgx with PPOConfig.clip_vloss flipped (same seeds and greedy episodes)")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, 1 thread, {args.steps} env steps per run, seeds 0..{args.seeds - 1}")
    runs = compare(args.steps, tuple(range(args.seeds)), args.ablate_clip_vloss)
    print(runs.to_string(index=False, float_format=lambda x: f"{x:.1f}"))
    table = summary(runs)
    print(table.to_string(float_format=lambda x: f"{x:.1f}"))
    print(f"pgx / SB3 env steps per second: {table.attrs['ratio_mean']:.2f}x (worst seed {table.attrs['ratio_min']:.2f}x)")
    if args.profile:
        print(profile_pgx().to_string(index=False, float_format=lambda x: f"{x:.2f}"))
        print(profile_sb3().to_string(index=False, float_format=lambda x: f"{x:.2f}"))
        print("one minibatch step, two actor passes (pgx before) vs one (pgx now):", one_pass_saving())


if __name__ == "__main__":
    main()
