import math

import gymnasium as gym
import numpy as np
import pytest
import torch
from torch import nn

from pgx.algos.sac import (
    Batch,
    SACAgent,
    SACConfig,
    TanhGaussianActor,
    TwinQ,
    actor_loss,
    alpha_loss,
    critic_loss,
    evaluate,
    make_optimisers,
    soft_q_target,
    soft_update,
    train,
    update,
    updates_due,
)
from pgx.envs import gym_family, make_family
from pgx.nets import ArchConfig

# --- tiny families ---------------------------------------------------------------------------------

def make_pendulum(g):
    return gym.make("Pendulum-v1", g=float(g[0]))


def pendulum_family():
    return gym_family("pendulum-gravity", make_pendulum, [5.0, 10.0], [], "gravity (m/s²)")


class CountingEnv(gym.Env):
    """Observation = steps since reset, reward = the same; with ``terminates`` the episode
    terminates at step 3 (else a TimeLimit truncates it there)."""

    observation_space = gym.spaces.Box(-np.inf, np.inf, (1,), np.float32)
    action_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)

    def __init__(self, terminates: bool):
        self.terminates = terminates
        self.count = 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.count = 0
        return np.array([0.0], np.float32), {}

    def step(self, action):
        self.count += 1
        return np.array([self.count], np.float32), float(self.count), self.terminates and self.count == 3, False, {}


def make_counting(param):
    terminates = bool(param[0])
    return gym.wrappers.TimeLimit(CountingEnv(terminates), 10 if terminates else 3)


def counting_family():
    return gym_family("counting", make_counting, [0.0, 1.0], [], "ends by termination", max_episode_steps=10)


SMALL = ArchConfig(kind="mlp", hidden=16, layers=2)
TINY = SACConfig(total_steps=2 * 60, buffer_size=64, batch_size=8, learning_starts=20, updates_per_step=1.0,
                 actor_arch=SMALL, critic_arch=SMALL, eval_every=10**6, eval_episodes=1, checkpoint_every=40)


class Interrupt(Exception):
    pass


def _same(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# --- a hand-built agent: linear networks with hand-set weights -------------------------------------
# obs = [s, one-hot of task 0, one-hot of task 1], one action dimension.

class Linear(nn.Module):
    def __init__(self, weight, bias):
        super().__init__()
        self.layer = nn.Linear(len(weight[0]), len(weight))
        with torch.no_grad():
            self.layer.weight.copy_(torch.tensor(weight))
            self.layer.bias.copy_(torch.tensor(bias))

    def forward(self, x, task):
        return self.layer(x)


ACTOR_W = [[0.5, 0.2, -0.1], [0.1, 0.0, 0.0]]  # mean = 0.5 s + 0.2·[task 0] − 0.1·[task 1]; log σ = 0.1 s − 0.7
ACTOR_B = [0.0, -0.7]
Q1_W, Q1_B = [[1.0, 0.5, 0.0, 2.0]], [0.1]     # on [s, one-hot, a]
Q2_W, Q2_B = [[-0.5, 0.0, 0.3, -1.0]], [0.2]
Q1T_W, Q1T_B = [[0.8, 0.0, 0.1, 1.0]], [0.0]
Q2T_W, Q2T_B = [[0.3, 0.2, 0.0, -0.5]], [-0.1]
ALPHAS = [0.5, 2.0]


def hand_agent():
    actor = TanhGaussianActor(Linear(ACTOR_W, ACTOR_B), n_tasks=2, action_dim=1)
    agent = SACAgent(actor, TwinQ(Linear(Q1_W, Q1_B), Linear(Q2_W, Q2_B), 2), n_tasks=2)
    agent.critic_target.q1.layer.weight.data = torch.tensor(Q1T_W)
    agent.critic_target.q1.layer.bias.data = torch.tensor(Q1T_B)
    agent.critic_target.q2.layer.weight.data = torch.tensor(Q2T_W)
    agent.critic_target.q2.layer.bias.data = torch.tensor(Q2T_B)
    agent.log_alpha.data = torch.tensor([math.log(a) for a in ALPHAS])
    return agent


def obs_of(s, task):
    return [s, 1.0 if task == 0 else 0.0, 1.0 if task == 1 else 0.0]


def by_hand_policy(s, task):
    return 0.5 * s + (0.2 if task == 0 else -0.1), 0.1 * s - 0.7


def by_hand_log_pi(u, mean, log_std):
    """log N(u; μ, σ²) − log(1 − tanh(u)²), the change of variables written out naively."""
    z = (u - mean) / math.exp(log_std)
    return -0.5 * z * z - log_std - 0.5 * math.log(2 * math.pi) - math.log(1 - math.tanh(u) ** 2)


def by_hand_q(w, b, s, task, a):
    x = obs_of(s, task) + [a]
    return sum(wi * xi for wi, xi in zip(w[0], x)) + b[0]


# s, task, u, r, s', terminated, noise of u' (critic) — three samples
SAMPLES = [(1.0, 0, 0.3, 1.0, 0.5, 0, 0.2), (-1.0, 1, -0.8, -0.5, -2.0, 1, -1.0), (0.0, 0, 1.5, 0.2, 0.1, 0, 0.5)]


def hand_batch():
    s, task, u, r, s_next, term, _ = zip(*SAMPLES)
    return Batch(obs=torch.tensor([obs_of(x, k) for x, k in zip(s, task)]), u=torch.tensor(u)[:, None],
                 reward=torch.tensor(r), next_obs=torch.tensor([obs_of(x, k) for x, k in zip(s_next, task)]),
                 terminated=torch.tensor(term, dtype=torch.float32), task=torch.tensor(task))


# --- losses on the hand-built case -----------------------------------------------------------------

def test_critic_loss_equals_the_hand_computed_value():
    gamma = 0.9
    errors1, errors2 = [], []
    for s, task, u, r, s_next, term, eps in SAMPLES:
        mean, log_std = by_hand_policy(s_next, task)
        u_next = mean + math.exp(log_std) * eps
        a_next = math.tanh(u_next)
        next_q = min(by_hand_q(Q1T_W, Q1T_B, s_next, task, a_next), by_hand_q(Q2T_W, Q2T_B, s_next, task, a_next))
        y = r + gamma * (1 - term) * (next_q - ALPHAS[task] * by_hand_log_pi(u_next, mean, log_std))
        errors1.append((by_hand_q(Q1_W, Q1_B, s, task, math.tanh(u)) - y) ** 2)
        errors2.append((by_hand_q(Q2_W, Q2_B, s, task, math.tanh(u)) - y) ** 2)
    expected = sum(errors1) / 3 + sum(errors2) / 3
    next_noise = torch.tensor([[eps] for *_, eps in SAMPLES])
    loss = critic_loss(hand_agent(), hand_batch(), next_noise, gamma)
    assert loss.item() == pytest.approx(expected, rel=1e-5)


def test_actor_loss_equals_the_hand_computed_value():
    noise = [0.3, -0.4, 1.2]
    terms, log_pis = [], []
    for (s, task, *_), eps in zip(SAMPLES, noise):
        mean, log_std = by_hand_policy(s, task)
        u = mean + math.exp(log_std) * eps
        log_pis.append(by_hand_log_pi(u, mean, log_std))
        q = min(by_hand_q(Q1_W, Q1_B, s, task, math.tanh(u)), by_hand_q(Q2_W, Q2_B, s, task, math.tanh(u)))
        terms.append(ALPHAS[task] * log_pis[-1] - q)
    batch = hand_batch()
    loss, log_prob = actor_loss(hand_agent(), batch.obs, batch.task, torch.tensor(noise)[:, None])
    assert loss.item() == pytest.approx(sum(terms) / 3, rel=1e-5)
    np.testing.assert_allclose(log_prob.detach().numpy(), log_pis, rtol=1e-5)


def test_alpha_loss_is_a_per_task_mean_summed_over_tasks():
    # α = (0.5, 2), H̄ = −1, log π = (−1, 0.5, 2) for tasks (0, 0, 1):
    # task 0: 0.5 · mean(1 + 1, −0.5 + 1) = 0.625; task 1: 2 · (−2 + 1) = −2; total −1.375
    log_alpha = torch.tensor([math.log(0.5), math.log(2.0)], requires_grad=True)
    loss = alpha_loss(log_alpha, torch.tensor([-1.0, 0.5, 2.0]), torch.tensor([0, 0, 1]), target_entropy=-1.0)
    assert loss.item() == pytest.approx(-1.375, rel=1e-6)
    loss.backward()
    np.testing.assert_allclose(log_alpha.grad.numpy(), [0.625, -2.0], rtol=1e-6)  # ∂/∂log α_k = the task's term


def test_soft_q_target_bootstraps_after_truncation_but_not_after_termination():
    # The buffer stores only `terminated`: a truncated transition has terminated = 0 and bootstraps.
    y = soft_q_target(reward=torch.tensor([1.0, 1.0]), terminated=torch.tensor([0.0, 1.0]),
                      next_q=torch.tensor([5.0, 5.0]), next_log_prob=torch.tensor([-2.0, -2.0]),
                      alpha=torch.tensor([0.5, 0.5]), gamma=0.9)
    np.testing.assert_allclose(y.numpy(), [1.0 + 0.9 * (5.0 + 1.0), 1.0], rtol=1e-6)


def test_log_prob_is_the_change_of_variables_of_a_tanh_gaussian():
    from torch.distributions import Normal, TanhTransform, TransformedDistribution

    agent = SACAgent.build(pendulum_family(), TINY, seed=0).double()
    gen = torch.Generator().manual_seed(0)
    obs = torch.cat([torch.randn(64, 3, generator=gen, dtype=torch.float64),
                     nn.functional.one_hot(torch.arange(64) % 2, 2).double()], dim=1)
    u = torch.rand(64, 1, generator=gen, dtype=torch.float64) * 4 - 2
    mean, log_std = agent.actor(obs)
    reference = TransformedDistribution(Normal(mean, log_std.exp()), [TanhTransform()]).log_prob(torch.tanh(u)).sum(-1)
    torch.testing.assert_close(agent.actor.log_prob(obs, u), reference, atol=1e-5, rtol=0)
    # the reparameterised sample scores the same as log_prob of that sample
    sample, log_prob = agent.actor.rsample_with_log_prob(obs, gen)
    torch.testing.assert_close(log_prob, agent.actor.log_prob(obs, sample), atol=1e-9, rtol=1e-9)
    assert agent.actor.discrete is False
    torch.testing.assert_close(agent.actor.mode(obs), mean)


def test_log_prob_per_sample_gradients_with_torch_func_match_a_loop():
    # the features stage takes per-sample gradients of log π(u|s) with torch.func (pgx.gradients)
    from torch.func import grad, vmap

    from pgx.gradients import log_prob_at

    actor = SACAgent.build(pendulum_family(), TINY, seed=1).actor
    obs = torch.cat([torch.randn(5, 3), nn.functional.one_hot(torch.arange(5) % 2, 2).float()], dim=1)
    u = torch.randn(5, 1)
    params = {k: v.detach() for k, v in actor.named_parameters()}
    per_sample = vmap(grad(lambda p, o, a: log_prob_at(actor, p, o[None], a[None]).sum()), in_dims=(None, 0, 0))(
        params, obs, u)
    for i in range(5):
        expected = torch.autograd.grad(actor.log_prob(obs[i:i + 1], u[i:i + 1]).sum(), list(actor.parameters()))
        for (name, _), g in zip(actor.named_parameters(), expected):
            torch.testing.assert_close(per_sample[name][i], g, atol=1e-6, rtol=1e-5)


def test_soft_update_moves_the_target_by_tau():
    source, target = nn.Linear(3, 2), nn.Linear(3, 2)
    before = {k: v.clone() for k, v in target.state_dict().items()}
    soft_update(target, source, tau=0.1)
    for name, value in target.state_dict().items():
        torch.testing.assert_close(value, 0.9 * before[name] + 0.1 * source.state_dict()[name])
    soft_update(target, source, tau=1.0)
    assert _same(target.state_dict(), source.state_dict())


def test_q_values_and_soft_value():
    agent = hand_agent()
    batch = hand_batch()
    q = agent.q_values(batch.obs, batch.u)
    expected = [min(by_hand_q(Q1_W, Q1_B, s, k, math.tanh(u)), by_hand_q(Q2_W, Q2_B, s, k, math.tanh(u)))
                for s, k, u, *_ in SAMPLES]
    np.testing.assert_allclose(q.detach().numpy(), expected, rtol=1e-6)
    # V(s) is the mean of min Q − α log π over the samples the generator draws
    value = agent.soft_value(batch.obs, samples=4, generator=torch.Generator().manual_seed(0))
    noise = torch.randn(12, 1, generator=torch.Generator().manual_seed(0))
    obs = batch.obs.repeat(4, 1)
    u = agent.actor.rsample_with_log_prob(obs, noise=noise)[0]
    manual = agent.q_values(obs, u) - agent.alpha(obs[:, 1:].argmax(-1)) * agent.actor.log_prob(obs, u)
    torch.testing.assert_close(value, manual.reshape(4, 3).mean(0))


def test_temperature_of_a_task_changes_only_with_its_own_samples():
    agent = SACAgent.build(pendulum_family(), TINY, seed=0)
    optimisers = make_optimisers(agent, TINY)
    n = 16
    obs = torch.cat([torch.randn(n, 3), torch.tensor([[1.0, 0.0]]).repeat(n, 1)], dim=1)  # task 0 only
    batch = Batch(obs=obs, u=torch.randn(n, 1), reward=torch.randn(n), next_obs=obs + 0.1, terminated=torch.zeros(n),
                  task=torch.zeros(n, dtype=torch.long))
    before = agent.log_alpha.detach().clone()
    np.testing.assert_allclose(before.numpy(), [0.0, 0.0])  # log(init_temperature = 1)
    losses = update(agent, optimisers, batch, TINY, torch.Generator().manual_seed(0))
    assert set(losses) == {"critic_loss", "actor_loss", "alpha_loss"}
    assert agent.log_alpha[0].item() != before[0].item()
    assert agent.log_alpha[1].item() == before[1].item()


def test_updates_per_step_spreads_fractional_updates():
    assert [updates_due(j, 0.5) for j in range(1, 7)] == [0, 1, 0, 1, 0, 1]
    assert [updates_due(j, 2) for j in range(1, 4)] == [2, 2, 2]
    assert sum(updates_due(j, 1 / 3) for j in range(1, 31)) == 10


# --- the training loop ---------------------------------------------------------------------------

def test_reset_steps_are_not_stored_and_truncated_transitions_keep_their_final_observation(tmp_path):
    cfg = SACConfig(total_steps=2 * 10, buffer_size=32, batch_size=4, learning_starts=0, actor_arch=SMALL,
                    critic_arch=SMALL, eval_every=10**6, eval_episodes=1, checkpoint_every=10**6)
    result = train(counting_family(), cfg, seed=0, checkpoint=tmp_path / "run.pt", progress=False)
    buffer = torch.load(tmp_path / "run.pt", weights_only=False)["buffer"]
    # 10 steps of episodes of 3 steps: real, real, real (ends), reset, ... → 8 transitions per task
    np.testing.assert_array_equal(buffer["size"], [8, 8])
    obs, next_obs = buffer["obs"][..., 0], buffer["next_obs"][..., 0]
    np.testing.assert_array_equal(next_obs, obs + 1)  # never a (final obs → reset obs) transition
    np.testing.assert_array_equal(next_obs[:, :3], [[1, 2, 3], [1, 2, 3]])  # the final observation is s'
    np.testing.assert_array_equal(buffer["reward"], next_obs)
    assert not buffer["terminated"][0].any()  # task 0 is truncated by its time limit: not terminal
    np.testing.assert_array_equal(buffer["terminated"][1], next_obs[1] == 3)  # task 1 terminates at step 3
    np.testing.assert_array_equal(result.episode_steps, [6, 6, 14, 14])
    np.testing.assert_array_equal(result.episode_tasks, [0, 1, 0, 1])
    np.testing.assert_array_equal(result.episode_returns, [6.0] * 4)
    assert np.isnan(result.episode_success).all()


def test_same_seed_same_parameters_and_another_seed_differs():
    fam = pendulum_family()
    r1 = train(fam, TINY, seed=3, progress=False)
    r2 = train(fam, TINY, seed=3, progress=False)
    r3 = train(fam, TINY, seed=4, progress=False)
    assert _same(r1.actor_state, r2.actor_state) and _same(r1.critic_state, r2.critic_state)
    assert torch.equal(r1.log_alpha, r2.log_alpha)
    assert not _same(r1.actor_state, r3.actor_state)
    assert r1.env_steps == 120 and r1.log_alpha.shape == (2,)
    np.testing.assert_array_equal(r1.eval_steps, [120])
    assert r1.eval_returns.shape == (1, 2) and np.isnan(r1.eval_success).all()
    assert not torch.equal(r1.log_alpha, torch.zeros(2))  # the temperatures were trained
    agent = SACAgent.from_result(fam, r1)
    assert _same(agent.actor.state_dict(), r1.actor_state)


def test_an_interrupted_run_resumes_from_its_checkpoint_to_the_uninterrupted_result(tmp_path):
    fam = pendulum_family()
    full = train(fam, TINY, seed=0, progress=False)
    ckpt = tmp_path / "run.pt"

    def stop_at_90(env_steps, agent):
        if env_steps == 90:
            raise Interrupt

    with pytest.raises(Interrupt):
        train(fam, TINY, seed=0, checkpoint=ckpt, progress=False, callback=stop_at_90)
    assert torch.load(ckpt, weights_only=False)["step"] == 40  # vector steps: the checkpoint at 80 env steps
    seen = []
    resumed = train(fam, TINY, seed=0, checkpoint=ckpt, progress=False, callback=lambda s, a: seen.append(s))
    assert seen == list(range(82, 121, 2))  # continued from step 80, not from the start
    # Pendulum pickles and the buffer is small: env, buffer and RNGs were all restored
    assert _same(full.actor_state, resumed.actor_state) and _same(full.critic_state, resumed.critic_state)
    assert torch.equal(full.log_alpha, resumed.log_alpha)
    np.testing.assert_array_equal(full.episode_returns, resumed.episode_returns)


def test_resume_without_the_buffer_refills_it_before_updating(tmp_path):
    cfg = SACConfig(**{**TINY.__dict__, "checkpoint_buffer_mb": 0.0})
    ckpt = tmp_path / "run.pt"

    def stop_at_50(env_steps, agent):
        if env_steps == 50:
            raise Interrupt

    with pytest.raises(Interrupt):
        train(pendulum_family(), cfg, seed=0, checkpoint=ckpt, progress=False, callback=stop_at_50)
    saved = torch.load(ckpt, weights_only=False)
    assert saved["buffer"] is None and saved["step"] == 20
    seen = []
    resumed = train(pendulum_family(), cfg, seed=0, checkpoint=ckpt, progress=False,
                    callback=lambda s, a: seen.append(s))
    assert seen[0] == 42 and resumed.env_steps == 120
    assert torch.load(ckpt, weights_only=False)["first_update"] == 20 + 10 - 1  # learning_starts = 10 vector steps


def test_a_checkpoint_of_another_run_is_refused(tmp_path):
    ckpt = tmp_path / "run.pt"
    cfg = SACConfig(**{**TINY.__dict__, "total_steps": 20})
    train(pendulum_family(), cfg, seed=0, checkpoint=ckpt, progress=False)
    with pytest.raises(ValueError, match="different run"):
        train(pendulum_family(), cfg, seed=1, checkpoint=ckpt, progress=False)


@pytest.mark.parametrize("change, message", [
    ({"buffer_size": -5}, r"buffer_size must be an int >= 1, got -5"),
    ({"batch_size": 100, "buffer_size": 64}, r"batch_size \(100\) must be <= buffer_size \(64\)"),
    ({"gamma": 0.0}, r"gamma must be in \(0, 1\], got 0.0"),
    ({"gamma": 1.5}, r"gamma must be in \(0, 1\], got 1.5"),
    ({"tau": float("nan")}, r"tau must be in \(0, 1\], got nan"),
    ({"actor_lr": float("nan")}, r"actor_lr must be a finite number > 0, got nan"),
    ({"critic_lr": 0.0}, r"critic_lr must be a finite number > 0, got 0.0"),
    ({"updates_per_step": float("inf")}, r"updates_per_step must be a finite number > 0, got inf"),
    ({"learning_starts": -1}, r"learning_starts must be an int >= 0, got -1"),
    ({"total_steps": 1.5}, r"total_steps must be an int >= 1, got 1.5"),
    ({"log_std_min": 3.0}, r"log_std_min \(3.0\) must be < log_std_max \(2.0\)"),
    ({"target_entropy": float("-inf")}, r"target_entropy must be None or a finite number, got -inf"),
])
def test_bad_configs_are_rejected_naming_the_field(change, message):
    with pytest.raises(ValueError, match=message):
        SACConfig(**{**TINY.__dict__, **change})


def test_bad_task_ids_and_families_are_rejected():
    fam = pendulum_family()
    with pytest.raises(ValueError, match="task id 7 is out of range"):
        train(fam, TINY, seed=0, task_ids=[0, 7], progress=False)
    with pytest.raises(ValueError, match="distinct"):
        train(fam, TINY, seed=0, task_ids=[1, 1], progress=False)
    with pytest.raises(ValueError, match="observe_task=False"):
        train(fam.with_options(observe_task=False), TINY, seed=0, progress=False)
    with pytest.raises(ValueError, match="Box actions"):
        train(make_family("cartpole"), TINY, seed=0, progress=False)
    with pytest.raises(ValueError, match="total_steps"):
        train(fam, SACConfig(**{**TINY.__dict__, "total_steps": 1}), seed=0, progress=False)


# --- evaluation ----------------------------------------------------------------------------------

def test_evaluate_reports_success_per_task_on_meta_world():
    fam = make_family("mt10:tasks=reach-v3+push-v3")
    agent = SACAgent.build(fam, TINY, seed=0)
    success, returns = evaluate(fam, agent.actor, [0, 1], episodes=1, seed=0)
    assert success.shape == returns.shape == (2,)
    # Oracle: both episodes replayed on two plain envs in step, each reset with the seed evaluate gives
    # its task (seed + EVAL_STRIDE·task), the one-hots appended by hand; the actor sees the same batch
    # of two rows, so its float32 products round alike and the returns agree to the last bit.
    from pgx.algos.sac import EVAL_STRIDE, to_env_action
    from pgx.envs.metaworld import EPISODE_STEPS, make_mt10_env

    envs = [make_mt10_env(np.array([float(task)])) for task in (0, 1)]  # reach-v3, push-v3: MT10's first two
    obs = [env.reset(seed=EVAL_STRIDE * task)[0] for task, env in enumerate(envs)]
    totals, solved = np.zeros(2), np.zeros(2, dtype=bool)
    for _ in range(EPISODE_STEPS):  # Meta-World episodes end by the time limit only
        seen = torch.as_tensor(np.concatenate([np.stack(obs), np.eye(2)], axis=1), dtype=torch.float32)
        actions = to_env_action(agent.actor.mode(seen), fam.action_space)
        for task, env in enumerate(envs):
            obs[task], reward, _, _, info = env.step(actions[task])
            totals[task] += reward
            solved[task] |= bool(info["success"])
    for env in envs:
        env.close()
    np.testing.assert_array_equal(returns, totals)
    np.testing.assert_array_equal(success, solved.astype(float))


def test_evaluate_gives_nan_success_where_the_family_reports_none():
    fam = pendulum_family()
    agent = SACAgent.build(fam, TINY, seed=0)
    success, returns = evaluate(fam, agent.actor, [1, 0], episodes=2, seed=0)
    assert np.isnan(success).all()
    assert returns.shape == (2,) and np.all(returns < 0)  # Pendulum's rewards are negative


@pytest.mark.parametrize("kind", ["multihead", "softmod", "paco", "care"])
def test_every_network_kind_trains_and_rebuilds(kind):
    arch = ArchConfig(kind=kind, hidden=16, layers=2, modules=2)
    cfg = SACConfig(**{**TINY.__dict__, "total_steps": 40, "actor_arch": arch, "critic_arch": arch})
    fam = pendulum_family()
    result = train(fam, cfg, seed=0, progress=False)
    agent = SACAgent.from_result(fam, result)
    assert _same(agent.actor.state_dict(), result.actor_state)
    assert np.all(np.isfinite(result.eval_returns))


def test_init_state_starts_from_given_weights():
    fam = pendulum_family()
    base = train(fam, SACConfig(**{**TINY.__dict__, "total_steps": 40}), seed=0, progress=False)
    no_updates = SACConfig(**{**TINY.__dict__, "total_steps": 20, "learning_starts": 100})
    tuned = train(fam, no_updates, seed=5, progress=False, init_state=base.init_state())
    assert _same(base.actor_state, tuned.actor_state) and torch.equal(base.log_alpha, tuned.log_alpha)


def test_evaluation_on_a_numpy_family_seeds_each_sub_env():
    """SAC's evaluation resets sub-env e with its own seed: a numpy family's one vector env (CartPole
    would not take a list of seeds) does it through per-sub-env generators, and each episode's
    start equals that of an env of its own reset with the seed (issue 22: SAC's evaluation on the
    navigation family failed on the list of seeds)."""
    from pgx.envs.runs import reset_each

    family = make_family("navigation:observe_task=true,start_noise=0.05")
    env = family.source_envs([0, 1], 2)
    try:
        obs, _ = reset_each(family, env, [5, 6, 7, 8])
    finally:
        env.close()
    for e, seed in enumerate([5, 6, 7, 8]):
        own = family.source_envs([0], 1)
        try:
            np.testing.assert_array_equal(obs[e, :2], own.reset(seed=seed)[0][0, :2])
        finally:
            own.close()
    assert not np.array_equal(obs[0, :2], obs[1, :2])
    cartpole = make_family("cartpole")
    env = cartpole.source_envs([0, 1], 1)
    try:
        obs, _ = reset_each(cartpole, env, [3, 4])
        np.testing.assert_array_equal(obs[1, :4], gym.make("CartPole-v1").reset(seed=4)[0])
    finally:
        env.close()
    cfg = SACConfig(total_steps=200, eval_every=100, eval_episodes=2, batch_size=16, learning_starts=50)
    result = train(family, cfg, seed=0, task_ids=[0, 1], progress=False)
    assert result.eval_returns.size and np.isfinite(result.eval_returns).all()
