"""The two actors share one interface; the Gaussian one agrees with torch.distributions."""

import pytest
import torch
from gymnasium import spaces
from torch.distributions import Categorical, Independent, Normal

from pgx.nets.policies import ActorCritic, CategoricalActor, GaussianActor, PolicyConfig, make_actor

CFG = PolicyConfig(hidden=8, layers=3, init_log_std=-0.4)


def test_gaussian_actor_matches_torch_normal():
    torch.manual_seed(0)
    actor = GaussianActor(5, 3, CFG).double()
    obs = torch.randn(7, 5, dtype=torch.float64)
    actions = torch.randn(7, 3, dtype=torch.float64)
    reference = Independent(Normal(actor(obs), actor.log_std.exp()), 1)
    torch.testing.assert_close(actor.log_prob(obs, actions), reference.log_prob(actions))
    torch.testing.assert_close(actor.entropy(obs), reference.entropy())
    assert torch.equal(actor.mode(obs), actor(obs))


def test_categorical_actor_matches_torch_categorical():
    torch.manual_seed(0)
    actor = CategoricalActor(5, 4, CFG).double()
    obs = torch.randn(7, 5, dtype=torch.float64)
    actions = torch.randint(0, 4, (7,))
    reference = Categorical(logits=actor(obs))
    torch.testing.assert_close(actor.log_prob(obs, actions), reference.log_prob(actions))
    torch.testing.assert_close(actor.entropy(obs), reference.entropy())


def test_sampling_draws_from_the_generator_only():
    torch.manual_seed(0)
    agent = ActorCritic(4, spaces.Box(-1, 1, (2,)), CFG)
    obs = torch.randn(6, 4)
    first = agent.get_action_and_value(obs, generator=torch.Generator().manual_seed(1))[0]
    torch.manual_seed(123)  # the global RNG plays no part
    second = agent.get_action_and_value(obs, generator=torch.Generator().manual_seed(1))[0]
    assert first.shape == (6, 2) and torch.equal(first, second)
    assert not agent.discrete and ActorCritic(4, 3, CFG).discrete


def test_make_actor_picks_by_action_space_and_rejects_others():
    obs = torch.randn(5, 4, generator=torch.Generator().manual_seed(0))
    for space in (spaces.Discrete(3), 3):
        actor = make_actor(4, space)
        assert isinstance(actor, CategoricalActor)
        # A distribution over exactly three actions: their probabilities sum to one.
        probs = torch.stack([actor.log_prob(obs, torch.full((5,), a)) for a in range(3)]).exp()
        torch.testing.assert_close(probs.sum(0), torch.ones(5))
    gaussian = make_actor(4, spaces.Box(-1, 1, (2,)))
    assert isinstance(gaussian, GaussianActor)
    actions = torch.randn(5, 2, generator=torch.Generator().manual_seed(1))
    reference = Independent(Normal(gaussian.mode(obs), gaussian.log_std.exp()), 1)  # one Gaussian over 2 dims
    torch.testing.assert_close(gaussian.log_prob(obs, actions), reference.log_prob(actions))
    with pytest.raises(ValueError, match="must be Discrete or a 1-D Box"):
        make_actor(4, spaces.Box(-1, 1, (2, 2)))
