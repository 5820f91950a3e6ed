"""The rollout's fused policy pass and PPO's foreach optimiser compute the same numbers, bit for bit,
as the separate calls they replaced: cached stage results stay valid only if they do."""

from __future__ import annotations

import copy

import pytest
import torch

from pgx.policies import ActorCritic, PolicyConfig
from gymnasium import spaces


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
