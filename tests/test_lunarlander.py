import numpy as np
import pytest
from gymnasium import spaces
from gymnasium.utils.env_checker import check_env

from pgx.envs import make_family
from pgx.envs.lunarlander import (
    SOURCE_GRAVITIES,
    TARGET_GRAVITIES,
    lunarlander_family,
    make_lunarlander,
)


def test_spaces_and_one_hot():
    fam = make_family("lunarlander")
    assert fam.n_tasks == 10 and fam.obs_dim == 8 + 10 and fam.base_obs_dim == 8
    assert fam.action_space == spaces.Discrete(4) and fam.max_episode_steps == 1000
    assert fam.parameter == "gravity (m/s²)" and fam.reward_range is None
    assert fam.source_params == SOURCE_GRAVITIES and len(fam.target_params) == 50
    assert all(-12 < g < 0 for g in SOURCE_GRAVITIES + TARGET_GRAVITIES)
    env = fam.source_envs([1, 8], envs_per_task=2)
    try:
        obs, _ = env.reset(seed=0)
        assert obs.shape == (4, 18)
        np.testing.assert_array_equal(obs[:2, 8 + 1], 1.0)
        np.testing.assert_array_equal(obs[2:, 8 + 8], 1.0)
        assert obs[:, 8:].sum() == 4
    finally:
        env.close()
    assert make_family("lunarlander:observe_task=false").obs_dim == 8


def test_gravity_changes_the_dynamics():
    # Same seed (same terrain and initial push), no engine: stronger gravity falls faster.
    vertical_speed = {}
    for gravity in (-11.0, -2.0):
        env = make_lunarlander(np.array([gravity]))
        obs, _ = env.reset(seed=0)
        for _ in range(20):
            obs, *_ = env.step(0)
        vertical_speed[gravity] = obs[3]
        env.close()
    assert vertical_speed[-11.0] < vertical_speed[-2.0] - 0.5


def test_same_seed_reproduces_the_first_steps():
    fam = make_family("lunarlander")
    actions = np.random.default_rng(0).integers(0, 4, size=(100, 3))
    trajectories = []
    for _ in range(2):
        env = fam.source_envs([0, 4, 9])
        obs, _ = env.reset(seed=3)
        steps = [obs]
        for a in actions:
            obs, reward, *_ = env.step(a)
            steps += [obs, reward]
        env.close()
        trajectories.append(steps)
    for a, b in zip(*trajectories):
        np.testing.assert_array_equal(a, b)


def test_single_task_env_passes_gymnasium_checks():
    env = make_lunarlander(np.array([-4.0]))
    check_env(env.unwrapped)
    assert env.unwrapped.gravity == -4.0 and not env.unwrapped.enable_wind
    assert env.spec.max_episode_steps == 1000


def test_bad_gravity_is_named():
    with pytest.raises(ValueError, match=r"gravity must be in \(-12, 0\) m/s², got 0.0"):
        lunarlander_family(source_gravities=[-5.0, 0.0])
    with pytest.raises(ValueError, match=r"gravity must be in \(-12, 0\) m/s², got -12.5"):
        lunarlander_family(target_gravities=[-12.5])
    with pytest.raises(ValueError, match=r"gravity must be in \(-12, 0\) m/s², got 3.0"):
        make_family("lunarlander").make_vec_env(np.array([[-5.0], [3.0]]))
    with pytest.raises(ValueError, match=r"got -12.0"):
        make_lunarlander(np.array([-12.0]))


def test_lunarlander_is_not_resumed_from_a_reconstructing_pickle():
    """gymnasium's LunarLander pickles as its constructor call (EzPickle): the copy is not reset and
    its first step fails. Resume must treat it as unpicklable and restart episodes instead."""
    from pgx.runtime import pickled_env

    env = make_family("lunarlander").source_envs([0, 1])
    try:
        with pytest.warns(UserWarning, match="LunarLander pickles by re-construction"):
            assert pickled_env(env) is None
    finally:
        env.close()
