import math
import pickle
import warnings

import numpy as np
import pytest
from gymnasium import spaces
from gymnasium.utils.env_checker import check_env

import pgx.envs.navigation as nav
from pgx.envs import make_family
from pgx.envs.navigation import (
    MAX_SPEED,
    SOURCE_ANGLES,
    Navigation2DEnv,
    NavigationVectorEnv,
    navigation_family,
    oracle_return,
    planted_groups,
    straight_line_actions,
)

DISTRIBUTIONS = sorted(SOURCE_ANGLES)


def _angles(params) -> np.ndarray:
    xy = np.asarray(params)
    return np.mod(np.arctan2(xy[:, 1], xy[:, 0]), 2 * np.pi)


def _run(env, actions: np.ndarray, seed: int):
    obs, _ = env.reset(seed=seed)
    observations, rewards = [obs], []
    for a in actions:
        obs, reward, _, _, _ = env.step(a)
        observations.append(obs)
        rewards.append(reward)
    return np.array(observations), np.array(rewards)


def test_family_spaces_and_shapes():
    fam = make_family("navigation")
    assert fam.parameter == "goal (x, y)" and fam.observation_shape == (2,) and fam.max_episode_steps == 100
    assert fam.action_space == spaces.Box(-0.1, 0.1, (2,), np.float32) and not fam.discrete
    assert not fam.observe_task and fam.obs_dim == 2 and fam.n_tasks == 10 and len(fam.target_params) == 50
    assert all(isinstance(g, tuple) and len(g) == 2 and all(isinstance(c, float) for c in g)
               for g in fam.source_params + fam.target_params)
    env = fam.source_envs(range(10), envs_per_task=4)
    obs, _ = env.reset(seed=0)
    assert obs.shape == (40, 2) and obs.dtype == np.float32
    np.testing.assert_array_equal(obs, 0.0)  # every episode starts exactly at the origin
    obs, reward, terminated, truncated, _ = env.step(env.action_space.sample())
    assert obs.shape == (40, 2) and reward.shape == terminated.shape == truncated.shape == (40,)
    assert env.observation_space.contains(obs)

    shown = make_family("navigation:observe_task=true")
    assert shown.obs_dim == 12
    obs, _ = shown.source_envs([3, 8], envs_per_task=2).reset(seed=0)
    assert obs.shape == (4, 12)
    np.testing.assert_array_equal(obs[:2, 2 + 3], 1.0)
    np.testing.assert_array_equal(obs[2:, 2 + 8], 1.0)
    assert obs[:, 2:].sum() == 4


def test_goal_changes_the_reward_not_the_observation():
    env = NavigationVectorEnv(np.array([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0]]))
    env.reset(seed=0)
    obs, reward, *_ = env.step(np.tile([0.1, 0.0], (3, 1)))
    np.testing.assert_array_equal(obs, np.float32([[0.1, 0.0]] * 3))  # the goal is not observed
    np.testing.assert_allclose(reward, [-0.9, -1.1, -math.hypot(0.1, 1.0)])


def test_actions_are_clipped_by_the_env_itself():
    env = NavigationVectorEnv(np.array([[1.0, 0.0]]))
    env.reset(seed=0)
    obs, *_ = env.step(np.array([[5.0, -3.0]]))
    np.testing.assert_allclose(obs, [[MAX_SPEED, -MAX_SPEED]])


def test_success_bonus_every_step_without_termination():
    env = NavigationVectorEnv(np.array([[0.05, 0.0]]), threshold=0.1, bonus=2.0, max_steps=5)
    env.reset(seed=0)
    for _ in range(4):  # stays at the start, within the threshold: bonus each step, no termination
        _, reward, terminated, truncated, _ = env.step(np.zeros((1, 2)))
        np.testing.assert_allclose(reward, [2.0 - 0.05])
        assert not terminated[0] and not truncated[0]


def test_same_seed_reproduces_and_other_seeds_differ():
    actions = np.random.default_rng(0).uniform(-0.1, 0.1, size=(30, 4, 2))
    fam = make_family("navigation:start_noise=0.05")
    runs = [_run(fam.source_envs([0, 5], envs_per_task=2), actions, seed) for seed in (7, 7, 8)]
    np.testing.assert_array_equal(runs[0][0], runs[1][0])
    np.testing.assert_array_equal(runs[0][1], runs[1][1])
    assert not np.allclose(runs[0][0], runs[2][0])
    assert np.all(np.abs(runs[0][0][0]) <= 0.05) and np.any(runs[0][0][0] != 0)


def test_next_step_autoreset_after_truncation():
    env = make_family("navigation").source_envs([0, 1])
    env.reset(seed=0)
    toward = np.tile([0.1, 0.0], (2, 1))
    for t in range(1, 101):
        obs, reward, terminated, truncated, _ = env.step(toward)
        assert not terminated.any()
        assert truncated.all() == (t == 100) and truncated.any() == (t == 100)
    assert np.all(obs[:, 0] > 0.9)
    obs, reward, terminated, truncated, _ = env.step(toward)  # the reset step: action ignored
    np.testing.assert_array_equal(obs, 0.0)
    np.testing.assert_array_equal(reward, 0.0)
    assert not terminated.any() and not truncated.any()
    obs, reward, *_ = env.step(toward)  # a fresh episode
    np.testing.assert_allclose(obs[:, 0], 0.1)
    assert np.all(reward < 0)


def test_vector_step_equals_single_envs_in_one_call():
    goals = np.array([[1.0, 0.0], [0.0, -2.0], [0.3, 0.4], [-0.7, 0.7]])
    options = {"threshold": 0.2, "bonus": 0.5, "max_steps": 15}
    vector = NavigationVectorEnv(goals, **options)
    singles = [Navigation2DEnv(g, **options) for g in goals]
    obs, _ = vector.reset(seed=0)
    np.testing.assert_array_equal(obs, [env.reset(seed=0)[0] for env in singles])
    rng = np.random.default_rng(1)
    done = np.zeros(len(goals), dtype=bool)
    for _ in range(40):  # spans two autoresets
        actions = rng.uniform(-0.2, 0.2, size=(len(goals), 2))  # beyond the bounds: clipping too
        obs, reward, terminated, truncated, _ = vector.step(actions)
        for i, env in enumerate(singles):
            if done[i]:
                expected = (env.reset()[0], 0.0, False, False)
            else:
                expected = env.step(actions[i])[:4]
            np.testing.assert_array_equal(obs[i], expected[0])
            assert (reward[i], terminated[i], truncated[i]) == expected[1:]
        done = terminated | truncated


def test_vector_env_steps_all_sub_envs_in_one_numpy_call(monkeypatch):
    calls = []

    def counting_step(positions, *args):
        calls.append(positions.shape)
        return step(positions, *args)

    step = nav.navigation_step
    monkeypatch.setattr(nav, "navigation_step", counting_step)
    env = NavigationVectorEnv(np.ones((7, 2)))
    env.reset(seed=0)
    env.step(np.zeros((7, 2)))
    assert calls == [(7, 2)]


def test_pickled_env_continues_identically():
    env = make_family("navigation:start_noise=0.05").source_envs(range(10))
    env.reset(seed=3)
    actions = np.random.default_rng(0).uniform(-0.1, 0.1, size=(150, 10, 2))
    for a in actions[:90]:
        env.step(a)
    copy = pickle.loads(pickle.dumps(env))
    for a in actions[90:]:
        np.testing.assert_array_equal(env.step(a)[0], copy.step(a)[0])


@pytest.mark.parametrize("start_noise", [0.0, 0.05])
def test_check_env_passes_on_the_single_task_env(start_noise):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_env(Navigation2DEnv((0.6, -0.8), start_noise=start_noise), skip_render_check=True)


@pytest.mark.parametrize("name", ["foo", "", "Clusters", 3])
def test_unknown_distribution_is_named(name):
    with pytest.raises(ValueError, match=f"unknown navigation goal distribution {name!r}; choose one of"):
        navigation_family(goals=name)
    with pytest.raises(ValueError, match="unknown navigation goal distribution"):
        planted_groups(name)


def test_unknown_distribution_through_the_registry():
    with pytest.raises(ValueError, match=r"unknown navigation goal distribution 'foo'; choose one of \['biased'"):
        make_family("navigation:goals=foo")


@pytest.mark.parametrize("options, message", [
    ({"radius": -1.0}, r"radius must be > 0, got -1.0"),
    ({"radius": 0.0}, r"radius must be > 0, got 0.0"),
    ({"radius": math.inf}, r"radius must be > 0, got inf"),
    ({"threshold": 0.0}, r"threshold must be > 0, got 0.0"),
    ({"threshold": -0.1}, r"threshold must be > 0, got -0.1"),
    ({"bonus": -1.0}, r"bonus must be finite and >= 0, got -1.0"),
    ({"max_steps": 0}, r"max_steps must be an int >= 1, got 0"),
    ({"max_steps": 2.5}, r"max_steps must be an int >= 1, got 2.5"),
    ({"start_noise": -0.1}, r"start_noise must be finite and >= 0, got -0.1"),
])
def test_bad_family_parameters_are_named(options, message):
    with pytest.raises(ValueError, match=message):
        navigation_family(**options)


def test_bad_parameters_through_the_registry():
    with pytest.raises(ValueError, match="radius must be > 0, got -2"):
        make_family("navigation:radius=-2")
    with pytest.raises(ValueError, match="max_steps must be an int >= 1, got 0"):
        make_family("navigation:max_steps=0")


@pytest.mark.parametrize("goals, message", [
    (np.array([1.0, 0.0]), r"shape \(num_envs, 2\), got shape \(2,\)"),
    (np.zeros((3, 3)), r"shape \(num_envs, 2\), got shape \(3, 3\)"),
    (np.zeros((0, 2)), r"shape \(num_envs, 2\), got shape \(0, 2\)"),
    (np.array([[1.0, np.nan]]), r"goals must be finite, got \[\[1.0, nan\]\]"),
    ([["a", "b"]], r"goals must be numbers"),
])
def test_bad_goals_are_named(goals, message):
    with pytest.raises(ValueError, match=message):
        NavigationVectorEnv(goals)


def test_bad_single_goal_and_actions_are_named():
    with pytest.raises(ValueError, match=r"a navigation goal is \(x, y\), got shape \(3,\)"):
        Navigation2DEnv((1.0, 0.0, 0.0))
    with pytest.raises(ValueError, match=r"threshold must be > 0, got 0"):
        Navigation2DEnv((1.0, 0.0), threshold=0)
    env = NavigationVectorEnv(np.ones((2, 2)))
    env.reset(seed=0)
    with pytest.raises(ValueError, match=r"actions must have shape \(2, 2\), got \(2,\)"):
        env.step(np.zeros(2))
    with pytest.raises(ValueError, match=r"actions must be finite"):
        env.step(np.array([[0.0, np.nan], [0.0, 0.0]]))


@pytest.mark.parametrize("name", DISTRIBUTIONS)
def test_every_distribution_has_ten_source_goals_on_the_circle(name):
    fam = make_family(f"navigation:goals={name},radius=2.5")
    for params, count in ((fam.source_params, 10), (fam.target_params, 50)):
        xy = np.asarray(params)
        assert xy.shape == (count, 2)
        np.testing.assert_allclose(np.linalg.norm(xy, axis=1), 2.5, atol=1e-8)
        assert len(set(params)) == count
    targets = np.sort(_angles(fam.target_params))
    np.testing.assert_allclose(np.diff(targets), 2 * np.pi / 50, atol=1e-8)  # uniform over the circle


def _largest_gap(angles: np.ndarray) -> float:
    """Largest empty arc (radians) between consecutive goals around the circle."""
    a = np.sort(angles)
    return float(np.max(np.diff(np.append(a, a[0] + 2 * np.pi))))


def test_distributions_cover_the_circle_as_designed():
    angles = {name: _angles(navigation_family(goals=name).source_params) for name in DISTRIBUTIONS}
    np.testing.assert_allclose(np.diff(np.sort(angles["uniform"])), 2 * np.pi / 10, atol=1e-8)
    assert np.all(angles["partial"] < np.pi) and _largest_gap(angles["partial"]) > np.pi
    targets = _angles(navigation_family().target_params)
    assert np.sum(targets > np.pi) >= 20  # many targets lie beyond every partial source
    assert np.sum(angles["biased"] < np.pi / 2) == 7 and _largest_gap(angles["biased"]) < np.pi / 2
    assert _largest_gap(angles["clusters"]) < np.pi


def test_clusters_plant_three_separable_groups():
    assert navigation_family().source_params == navigation_family(goals="clusters").source_params
    groups = planted_groups("clusters")
    assert groups.dtype.kind == "i" and groups.shape == (10,)
    np.testing.assert_array_equal(np.bincount(groups), [4, 3, 3])
    assert planted_groups() is not None and all(planted_groups(n) is None for n in DISTRIBUTIONS if n != "clusters")
    xy = np.asarray(navigation_family().source_params)
    distance = np.linalg.norm(xy[:, None] - xy[None], axis=-1)
    same = groups[:, None] == groups[None]
    assert distance[same].max() < 0.35 and distance[~same].min() > 1.5


def test_straight_line_oracle_reaches_the_goal_and_beats_standing_still():
    fam = navigation_family()
    env = NavigationVectorEnv(fam.target_params)
    obs, _ = env.reset(seed=0)
    for t in range(1, 11):
        obs, *_ = env.step(straight_line_actions(obs, env.goals))
        np.testing.assert_allclose(np.linalg.norm(obs, axis=1), min(0.1 * t, 1.0), atol=1e-6)
    assert np.all(np.linalg.norm(obs - env.goals, axis=1) <= 0.1)
    oracle = oracle_return(fam.target_params)
    assert oracle.shape == (50,)
    # 9 steps of distance 0.9 ... 0.1, then 92 steps with the bonus
    np.testing.assert_allclose(oracle, -4.5 + 92.0, atol=1e-5)
    standing = -100.0 * np.linalg.norm(np.asarray(fam.target_params), axis=1)
    assert np.all(oracle > standing + 150)
    np.testing.assert_allclose(oracle_return([[0.0, 0.0]], bonus=0.0), 0.0)
