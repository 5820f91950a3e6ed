"""``pgx.evaluation``: returns of known policies on episodes of known length.

The oracle env pays ``1 + action`` per step and ends after ``length`` steps (or at the time limit),
so a policy that always plays 1 returns exactly ``2 · steps`` and a fair coin ``1.5 · steps`` on
average. Every evaluated number then has a hand-computed value.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from _counting_env import counting_env

from pgx.envs import gym_family
from pgx.evaluation import (
    episode_returns,
    evaluate,
    evaluate_targets,
    untrained_returns,
)
from pgx.nets.policies import CategoricalActor

TIME_LIMIT = 6
LENGTHS = (2, 3, 50)
STEPS = np.array([2, 3, 6])
"""Steps of one episode of each source task: its length, or the time limit (task 2 is truncated)."""


def make_pay_action(param: np.ndarray) -> gym.Env:
    return counting_env(param, TIME_LIMIT)


@pytest.fixture(scope="module")
def family():
    return gym_family("pay-action", make_pay_action, list(LENGTHS), [4.0, 1.0], "episode length",
                      max_episode_steps=TIME_LIMIT)


def _actor(family, logits: tuple[float, float]) -> CategoricalActor:
    """An actor whose logits are ``logits`` whatever it observes."""
    torch.manual_seed(0)
    actor = CategoricalActor(family.obs_dim, 2)
    last = actor.net[-1]
    with torch.no_grad():
        last.weight.zero_()
        last.bias.copy_(torch.tensor(logits))
    return actor


def test_greedy_returns_count_the_first_episode_of_each_task(family):
    # 7 steps are played (the time limit + 1): task 0's sub-envs finish two more episodes meanwhile,
    # which must not count.
    always_one = evaluate(_actor(family, (0.0, 3.0)), family, [0, 1, 2], episodes=3, seed=0)
    np.testing.assert_array_equal(always_one, 2.0 * STEPS)
    always_zero = evaluate(_actor(family, (3.0, 0.0)), family, [2, 0], episodes=2, seed=0)
    np.testing.assert_array_equal(always_zero, [6.0, 2.0])


def test_episode_returns_stop_counting_at_max_steps(family):
    env = family.source_envs([2, 1])
    np.testing.assert_array_equal(episode_returns(_actor(family, (0.0, 3.0)), env, seed=0, max_steps=4), [8.0, 6.0])


def test_sampled_returns_average_a_fair_coin(family):
    coin = _actor(family, (0.0, 0.0))
    episodes = 400
    returns = evaluate(coin, family, [0, 1, 2], episodes, seed=3, greedy=False)
    # Per episode: steps + Binomial(steps, 1/2); the mean of 400 has sd sqrt(steps/4/400) <= 0.06.
    np.testing.assert_allclose(returns, 1.5 * STEPS, atol=0.4)
    np.testing.assert_array_equal(evaluate(coin, family, [0, 1, 2], episodes, seed=3, greedy=False), returns)
    assert not np.array_equal(evaluate(coin, family, [0, 1, 2], episodes, seed=4, greedy=False), returns)


def test_untrained_policy_is_a_near_fair_coin(family):
    # A fresh actor's output layer is scaled by 0.01, so both actions are about equally likely.
    floor = untrained_returns(family, episodes=400, seed=0)
    np.testing.assert_allclose(floor, 1.5 * STEPS, atol=0.4)
    np.testing.assert_array_equal(untrained_returns(family, episodes=400, seed=0), floor)


def test_targets_are_evaluated_on_their_own_parameters(family):
    np.testing.assert_array_equal(evaluate_targets(_actor(family, (0.0, 3.0)), family, [1, 0], episodes=2, seed=0),
                                  [2.0, 8.0])


def test_bad_arguments_are_named(family):
    actor = _actor(family, (0.0, 0.0))
    with pytest.raises(ValueError, match="episodes must be >= 1, got 0"):
        evaluate(actor, family, [0], episodes=0, seed=0)
    with pytest.raises(ValueError, match="episodes must be >= 1, got 0"):
        evaluate_targets(actor, family, [0], episodes=0, seed=0)
    with pytest.raises(ValueError, match=r"task id 3 is out of range \[0, 2\]"):
        evaluate(actor, family, [0, 3], episodes=1, seed=0)
    with pytest.raises(ValueError, match=r"target ids must be in \[0, 1\], got \[2\]"):
        evaluate_targets(actor, family, [2], episodes=1, seed=0)
