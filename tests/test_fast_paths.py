"""The rollout's fused policy pass and PPO's foreach optimiser compute the same numbers, bit for bit,
as the separate calls they replaced: cached stage results stay valid only if they do. PPO's update
takes log-probabilities and entropy from one actor pass (``log_prob_and_entropy``) where it made
two: the same loss, bit for bit, and a gradient equal to the two passes' up to floating-point
order (accepted, issue 21), so a training run matches the two-pass one to float tolerance."""

from __future__ import annotations

import copy

import pytest
import torch

from gymnasium import spaces

from pgx.algos.ppo import PPOConfig, train
from pgx.envs import make_family
from pgx.nets.policies import ActorCritic, CategoricalActor, GaussianActor, PolicyConfig


@pytest.mark.parametrize("action_space", [spaces.Discrete(3), spaces.Box(-1.0, 1.0, (2,))])
def test_act_equals_separate_sample_log_prob_and_value(action_space):
    torch.manual_seed(0)
    agent = ActorCritic(6, action_space, PolicyConfig(hidden=32, init_log_std=-0.3))
    obs = torch.randn(50, 6)
    fused = agent.act(obs, torch.Generator().manual_seed(7))
    action, log_prob, _, value = agent.get_action_and_value(obs, generator=torch.Generator().manual_seed(7))
    assert torch.equal(fused[0], action)
    assert torch.equal(fused[1], log_prob)
    assert torch.equal(fused[2], value)
    # and the log-probability is that of the sampled action, not of some other draw
    assert torch.equal(fused[1], agent.actor.log_prob(obs, fused[0]))


def test_foreach_adam_and_clip_match_the_loop_bit_for_bit():
    torch.manual_seed(1)
    base = ActorCritic(8, 2, PolicyConfig(hidden=32))
    obs, actions = torch.randn(256, 8), torch.randint(0, 2, (256,)).float()

    def trained(foreach: bool) -> torch.Tensor:
        agent = copy.deepcopy(base)
        optimizer = torch.optim.Adam(agent.parameters(), lr=1e-3, eps=1e-5, foreach=foreach)
        for _ in range(5):
            _, log_prob, entropy, value = agent.get_action_and_value(obs, actions)
            loss = -log_prob.mean() - 0.01 * entropy.mean() + ((value - 1.0) ** 2).mean()
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(agent.parameters(), 0.5, foreach=foreach)
            optimizer.step()
        return torch.cat([p.detach().reshape(-1) for p in agent.parameters()])

    loop, fused = trained(False), trained(True)
    assert not torch.equal(loop, torch.cat([p.detach().reshape(-1) for p in base.parameters()]))  # it moved
    assert torch.equal(loop, fused)


def _two_passes(actor, obs, actions):
    """What PPO's update computed before: the actor evaluated once per quantity."""
    return actor.log_prob(obs, actions), actor.entropy(obs)


@pytest.mark.parametrize("action_space", [spaces.Discrete(3), spaces.Box(-1.0, 1.0, (2,))])
def test_one_pass_ppo_loss_equals_the_two_pass_loss(action_space):
    torch.manual_seed(2)
    agent = ActorCritic(6, action_space, PolicyConfig(hidden=32, init_log_std=-0.3))
    obs = torch.randn(64, 6)
    actions = agent.actor.sample(obs, torch.Generator().manual_seed(3)).detach()  # stored, as in a rollout
    old_logp = agent.actor.log_prob(obs, actions).detach() + 0.1 * torch.randn(64)
    adv, ret = torch.randn(64), torch.randn(64)

    def loss_and_grads(log_prob_and_entropy):
        """PPO's minibatch loss (clipped objective, entropy bonus, value loss) and its gradient."""
        log_prob, entropy = log_prob_and_entropy(obs, actions)
        ratio = (log_prob - old_logp).exp()
        pg_loss = torch.max(-adv * ratio, -adv * ratio.clamp(0.8, 1.2)).mean()
        loss = pg_loss - 0.01 * entropy.mean() + 0.5 * 0.5 * ((agent.get_value(obs) - ret) ** 2).mean()
        grads = torch.autograd.grad(loss, list(agent.parameters()))
        return loss.detach(), torch.cat([g.reshape(-1) for g in grads])

    fused = agent.get_action_and_value(obs, actions)
    two = _two_passes(agent.actor, obs, actions)
    assert torch.equal(fused[1], two[0]) and torch.equal(fused[2], two[1])  # forward values: bit for bit
    one_loss, one_grad = loss_and_grads(agent.actor.log_prob_and_entropy)
    two_loss, two_grad = loss_and_grads(lambda o, a: _two_passes(agent.actor, o, a))
    assert torch.equal(one_loss, two_loss)
    assert one_grad.abs().max() > 0
    torch.testing.assert_close(one_grad, two_grad, rtol=1e-5, atol=1e-7)  # floating-point order only


@pytest.mark.parametrize("family_name", ["cartpole", "navigation"])
def test_one_pass_training_matches_two_pass_training(monkeypatch, family_name):
    cfg = PPOConfig(total_timesteps=2 * 2 * 2 * 32, envs_per_task=2, num_steps=32, num_minibatches=2,
                    update_epochs=2, policy=PolicyConfig(hidden=16))
    family = make_family(family_name)
    one = train(family, [0, 3], cfg, seed=5, progress=False)
    for actor_cls in (CategoricalActor, GaussianActor):
        monkeypatch.setattr(actor_cls, "log_prob_and_entropy", _two_passes)
    two = train(family, [0, 3], cfg, seed=5, progress=False)
    for key in one.actor_state:
        torch.testing.assert_close(one.actor_state[key], two.actor_state[key], rtol=1e-4, atol=1e-6)
    for key in one.critic_state:
        torch.testing.assert_close(one.critic_state[key], two.critic_state[key], rtol=1e-4, atol=1e-6)
