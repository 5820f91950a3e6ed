"""``pgx.algos.rollouts``: which steps are valid, what is stored at a reset step, and which task a sample is.

Gymnasium 1.x autoresets in NEXT_STEP mode: the step after an episode ends resets the sub-env,
ignores the action and pays nothing. ``collect`` must mark that step invalid and store there the
observation the env returned when the episode ended (its final observation); ``env_samples`` and
``policy_samples`` must drop it and label every kept sample with the task of its sub-env.

The oracle is a counting env whose episodes have known lengths (``CountingEnv`` of
tests/_counting_env.py: the observation is the step count, episodes end after ``length`` steps),
so every flag and stored value is known in advance; CartPole then checks the same on real physics.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from _counting_env import counting_env

from pgx.envs import gym_family, make_family
from pgx.nets.policies import ActorCritic
from pgx.algos.rollouts import RolloutState, collect, env_samples, policy_samples

TIME_LIMIT = 6
LENGTHS = (2, 3, 50)
"""Episode length of each source task; 50 exceeds the time limit, so that task is truncated at 6."""


def make_countdown(param: np.ndarray) -> gym.Env:
    return counting_env(param, TIME_LIMIT)


@pytest.fixture(scope="module")
def countdown():
    return gym_family("countdown", make_countdown, list(LENGTHS), [4.0], "episode length", max_episode_steps=TIME_LIMIT)


def _agent(family, seed: int = 0) -> ActorCritic:
    torch.manual_seed(seed)
    return ActorCritic(family.obs_dim, family.action_space)


def _episode_end(length: int) -> int:
    """Steps from a reset to the end of the episode: its length, or the time limit."""
    return min(length, TIME_LIMIT)


def test_reset_steps_are_invalid_and_store_the_final_observation(countdown):
    env = countdown.source_envs(range(3), envs_per_task=2)  # sub-envs of tasks [0, 0, 1, 1, 2, 2]
    steps = 20
    rollout = collect(_agent(countdown), env, RolloutState.start(env, seed=0), steps, torch.Generator().manual_seed(0))
    t = np.arange(steps)
    for e in range(env.num_envs):
        length = LENGTHS[e // 2]
        end = _episode_end(length)
        phase = t % (end + 1)  # an episode is `end` steps, then one reset step
        np.testing.assert_array_equal(rollout.valid[:, e].numpy(), phase != end)
        # The counter: 0..end-1 on valid steps, and `end` (the final observation) on the reset step.
        np.testing.assert_array_equal(rollout.obs[:, e, 0].numpy(), phase)
        np.testing.assert_array_equal(rollout.terminated[:, e].numpy(), (phase == end - 1) & (length <= TIME_LIMIT))
        np.testing.assert_array_equal(rollout.truncated[:, e].numpy(), (phase == end - 1) & (length > TIME_LIMIT))
        rewards, actions = rollout.rewards[:, e].numpy(), rollout.actions[:, e].numpy()
        np.testing.assert_array_equal(rewards, np.where(phase == end, 0.0, 1.0 + actions))  # reset steps pay 0
        # Task one-hot of the sub-env on every step.
        np.testing.assert_array_equal(rollout.obs[:, e, 1:].numpy(), np.tile(np.eye(3)[e // 2], (steps, 1)))
        # Every finished episode's return is the sum of its rewards.
        ends = np.flatnonzero(phase == end - 1)
        expected = [float(rewards[i - end + 1:i + 1].sum()) for i in ends]
        assert [r for env_index, r in rollout.finished_returns if env_index == e] == pytest.approx(expected)


def test_a_rollout_continues_where_the_last_one_stopped(countdown):
    """A reset pending at the end of one rollout is the first, invalid step of the next (PPO's iterations)."""
    env = countdown.source_envs([0])  # episodes of 2 steps: the third step of every 3 is a reset
    agent, generator = _agent(countdown), torch.Generator().manual_seed(0)
    state = RolloutState.start(env, seed=0)
    first = collect(agent, env, state, 2, generator)
    assert first.valid[:, 0].tolist() == [True, True] and bool(state.reset_next[0])  # the episode just ended
    second = collect(agent, env, state, 4, generator)
    assert second.valid[:, 0].tolist() == [False, True, True, False]
    assert second.obs[:, 0, 0].tolist() == [2.0, 0.0, 1.0, 2.0]


@pytest.mark.parametrize("envs_per_task", [1, 3])
def test_policy_samples_keep_valid_steps_labelled_by_task(countdown, envs_per_task):
    steps_per_task = 12
    samples = policy_samples(_agent(countdown), countdown, steps_per_task, seed=1, gamma=0.9, gae_lambda=0.8,
                             envs_per_task=envs_per_task)
    num_steps = -(-steps_per_task // envs_per_task)
    counts = np.bincount(samples.task_ids.numpy(), minlength=3)
    for task, length in enumerate(LENGTHS):
        end = _episode_end(length)
        phase = np.arange(num_steps) % (end + 1)
        kept = phase[phase != end]  # the step counter of each valid step of one sub-env
        # Each of the task's sub-envs contributes its valid steps, and only those: no kept sample is
        # the final observation (counter `end`) of a reset step.
        assert counts[task] == envs_per_task * len(kept)
        mine = samples.task_ids == task
        np.testing.assert_array_equal(np.sort(samples.obs[mine, 0].numpy()), np.sort(np.tile(kept, envs_per_task)))
        assert (samples.obs[mine, 1:].argmax(1) == task).all()  # labels agree with the one-hot the env showed
    assert samples.actions.dtype == torch.long and len(samples.actions) == len(samples.advantages) == counts.sum()


def test_env_samples_label_each_sub_env_as_told(countdown):
    env = countdown.source_envs([2, 0, 1])
    samples = env_samples(_agent(countdown), env, np.array([7, 5, 6]), num_steps=9, seed=0, gamma=0.9, gae_lambda=0.8)
    shown = samples.obs[:, 1:].argmax(1)  # source task of the sub-env each sample came from
    np.testing.assert_array_equal(samples.task_ids.numpy(), np.array([5, 6, 7])[shown.numpy()])
    # valid steps in 9: task 2 (ends at the limit, 6) keeps 8, task 0 (2 steps) keeps 6, task 1 (3 steps) keeps 7
    assert np.bincount(samples.task_ids.numpy()).tolist()[5:] == [6, 7, 8]


def test_cartpole_reset_steps_hold_the_failed_state_then_a_fresh_one():
    """Real physics: a short pole falls within ~10 steps; the stored observation at each reset step
    is past CartPole's failure thresholds, the next one a fresh reset state (every entry within 0.05)."""
    family = make_family("cartpole")
    env = family.source_envs([0, 1], envs_per_task=2)  # the two shortest poles
    rollout = collect(_agent(family), env, RolloutState.start(env, seed=0), 60, torch.Generator().manual_seed(0))
    state = rollout.obs[..., :4]
    done = rollout.terminated | rollout.truncated
    invalid = ~rollout.valid
    assert invalid.sum() >= 8  # several episodes end in 60 steps
    np.testing.assert_array_equal(invalid[1:].numpy(), done[:-1].numpy())
    assert bool(rollout.valid[0].all())
    failed = (state[..., 0].abs() > 2.4) | (state[..., 2].abs() > 12 * 2 * np.pi / 360)
    np.testing.assert_array_equal(failed[invalid].numpy(), np.ones(int(invalid.sum()), bool))
    assert not bool(failed[rollout.valid].any())
    after_reset = torch.zeros_like(invalid)
    after_reset[1:] = invalid[:-1]
    assert bool((state[after_reset].abs() <= 0.05).all())
    assert float(rollout.rewards[invalid].abs().sum()) == 0.0
