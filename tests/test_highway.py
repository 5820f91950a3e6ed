import warnings

import numpy as np
import pytest
from gymnasium import spaces
from gymnasium.utils.env_checker import check_env

from pgx.envs import make_family
from pgx.envs.highway import (
    EPISODE_STEPS,
    SOURCE_DENSITIES,
    highway_family,
    make_highway,
)

SLOWER = 4


def test_spaces_and_one_hot():
    fam = make_family("highway:processes=1")
    assert fam.observation_shape == (5, 5) and fam.base_obs_dim == 25 and fam.obs_dim == 25 + 10
    assert fam.action_space == spaces.Discrete(5) and fam.max_episode_steps == EPISODE_STEPS == 30
    assert fam.source_params == SOURCE_DENSITIES and len(fam.target_params) == 50
    env = fam.source_envs([0, 9])
    try:
        obs, _ = env.reset(seed=0)
        assert obs.shape == (2, 35)
        np.testing.assert_array_equal(obs[:, 25:], np.eye(10)[[0, 9]])
    finally:
        env.close()
    assert make_family("highway:observe_task=false").obs_dim == 25


def test_density_changes_the_traffic():
    # Same seed, same actions: gaps between spawned cars scale with 1/density.
    observations = {}
    for density in (0.5, 2.5):
        env = make_highway(np.array([density]))
        obs, _ = env.reset(seed=0)
        observations[density] = [obs] + [env.step(1)[0] for _ in range(3)]
        env.close()
    nearest_gap = {d: obs[0][1, 1] for d, obs in observations.items()}  # row 1: nearest car, column 1: x
    assert 0 < nearest_gap[2.5] < nearest_gap[0.5]
    assert all(not np.array_equal(a, b) for a, b in zip(observations[0.5], observations[2.5]))


def test_same_seed_reproduces_and_workers_match_one_process():
    actions = np.random.default_rng(0).integers(0, 5, size=(6, 3))
    runs = []
    for processes in (1, 1, 2):
        env = make_family(f"highway:backend=highway-env,processes={processes}").source_envs([0, 5, 9])
        obs, _ = env.reset(seed=1)
        steps = [(obs, {})]
        for a in actions:
            obs, reward, terminated, truncated, info = env.step(a)
            steps.append(((obs, reward, terminated, truncated), info))
        env.close()
        runs.append(steps)
    for step_1, step_2, step_3 in zip(*runs):
        for a, b, c in zip(step_1[0], step_2[0], step_3[0]):
            np.testing.assert_array_equal(a, b)
            np.testing.assert_array_equal(a, c)
        assert step_1[1].keys() == step_3[1].keys()
        for key in ("speed", "crashed", "_speed"):
            if key in step_1[1]:
                np.testing.assert_array_equal(step_1[1][key], step_3[1][key])


def test_every_episode_ends_at_the_duration():
    env = make_highway(np.array([0.25]))
    env.reset(seed=0)
    for step in range(1, EPISODE_STEPS + 1):
        _, _, terminated, truncated, _ = env.step(SLOWER)  # sparse traffic, braking: no crash
        if terminated or truncated:
            break
    assert (step, terminated, truncated) == (EPISODE_STEPS, False, True)
    assert env.unwrapped._is_truncated()  # highway-env's own clock agrees with the TimeLimit
    env.close()


def test_single_task_env_passes_gymnasium_checks():
    env = make_highway(np.array([1.5]))
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*Box observation space (minimum|maximum) value is")
        check_env(env.unwrapped, skip_render_check=True)
    assert env.unwrapped.config["vehicles_density"] == 1.5 and env.unwrapped.render_mode is None
    env.close()


def test_bad_density_is_named():
    with pytest.raises(ValueError, match="traffic density must be > 0, got 0.0"):
        make_highway(np.array([0.0]))
    with pytest.raises(ValueError, match="traffic density must be > 0, got -1.0"):
        highway_family(source_densities=[1.0, -1.0])
    with pytest.raises(ValueError, match="traffic density must be > 0, got -0.5"):
        make_family("highway:processes=1").make_vec_env(np.array([[1.0], [-0.5]]))


def test_highway_fine_tunes_in_joblib_workers():
    # Fine-tuning runs in loky workers, where worker processes for the sub-envs cannot start.
    from joblib import Parallel, delayed

    def first_obs(seed: int):
        env = make_family("highway:backend=highway-env").source_envs([0, 9])
        obs, _ = env.reset(seed=seed)
        kind = type(env.unwrapped).__name__
        env.close()
        return obs, kind

    results = Parallel(n_jobs=2, backend="loky")(delayed(first_obs)(0) for _ in range(2))
    for obs, kind in results:
        assert kind == "SyncVectorEnv" and obs.shape == (2, 25 + 10)
    np.testing.assert_array_equal(results[0][0], results[1][0])


# --- the envpool backend (the family's default) and its fidelity to highway-env ---------------

def test_envpool_is_the_default_and_a_bad_backend_is_named():
    from pgx.envs.highway_envpool import EnvpoolHighway

    env = make_family("highway").source_envs([0, 9])
    try:
        assert isinstance(env.unwrapped, EnvpoolHighway)
    finally:
        env.close()
    with pytest.raises(ValueError, match="highway backend must be one of .* got 'gpu'"):
        make_family("highway:backend=gpu")


def test_envpool_config_refuses_what_it_cannot_reproduce():
    from pgx.envs.highway import TRIMMED_CONFIG
    from pgx.envs.highway_envpool import envpool_config

    kwargs = envpool_config({**TRIMMED_CONFIG, "vehicles_density": 1.5})
    assert kwargs["vehicles_density"] == 1.5 and kwargs["vehicles_count"] == 15
    assert kwargs["observation_vehicles_count"] == 5 and kwargs["max_episode_steps"] == EPISODE_STEPS
    with pytest.raises(ValueError, match=r"cannot reproduce config keys \['reward_speed_range'\]"):
        envpool_config({**TRIMMED_CONFIG, "reward_speed_range": [10, 20]})
    with pytest.raises(ValueError, match="only the Kinematics observation"):
        envpool_config({**TRIMMED_CONFIG, "observation": {"type": "OccupancyGrid"}})


def test_envpool_backend_seeds_autoresets_and_truncates_like_gymnasium():
    fam = make_family("highway")
    reference = make_family("highway:backend=highway-env,processes=1").source_envs([0, 9])
    env = fam.source_envs([0, 0, 9])
    try:
        assert env.single_observation_space == reference.single_observation_space
        assert env.single_action_space == reference.single_action_space
        first, _ = env.reset(seed=3)
        again, _ = env.reset(seed=3)
        other, _ = env.reset(seed=4)
        np.testing.assert_array_equal(first, again)
        assert not np.array_equal(first[:, :25], other[:, :25])
        # reset(seed=s) seeds sub-env e with s + e: sub-env 1 at seed 3 is sub-env 0 at seed 4.
        np.testing.assert_array_equal(first[1, :25], other[0, :25])
        # Braking in the sparsest traffic never crashes: truncated at the 30th step, then one
        # NEXT_STEP autoreset step (reward 0, not done) that starts a new episode.
        env.reset(seed=0)
        for step in range(1, EPISODE_STEPS + 1):
            obs, reward, terminated, truncated, info = env.step(np.full(3, SLOWER))
            assert not truncated[:2].any() or step == EPISODE_STEPS
        assert truncated[:2].all() and not terminated[:2].any()
        obs, reward, terminated, truncated, info = env.step(np.full(3, SLOWER))
        np.testing.assert_array_equal(reward[:2], 0.0)
        assert not (terminated[:2] | truncated[:2]).any() and set(info) >= {"crashed", "speed", "_crashed"}
    finally:
        env.close()
        reference.close()


def test_envpool_observes_the_same_state_as_highway_env_and_steps_like_it():
    from pgx.envs.highway_fidelity import same_state_agreement

    for density in (0.5, 2.0):
        out = same_state_agreement(density, steps=120, seed=0)
        assert out["steps"] >= 80
        assert out["observation"] == 0.0  # highway-env's observation of envpool's state, bit for bit
        assert out["termination"] <= 0.02 * out["steps"]
        assert out["observed_diverged"] <= 0.1 * out["steps"]
        if out["termination"] == 0:
            assert out["reward"] < 1e-6


def test_fixed_policies_agree_in_distribution():
    from pgx.envs.highway_fidelity import FIXED_POLICIES, compare_backends

    table = compare_backends(make_family("highway"), make_family("highway:backend=highway-env,processes=1"),
                             [0.5, 2.0], {k: FIXED_POLICIES[k] for k in ("IDLE", "FASTER")}, episodes=16, seed=0)
    assert len(table) == 2 * 2 * 3 and table["agree"].all(), table.to_string()
    # The check can fail: a "reference" whose traffic is four times denser is told apart.
    from pgx.envs.highway import envpool_vector_env

    denser = make_family("highway").with_options(make_vec_env=lambda params: envpool_vector_env(4 * params))
    lopsided = compare_backends(make_family("highway"), denser, [0.5], {"IDLE": FIXED_POLICIES["IDLE"]},
                                episodes=16, seed=0)
    assert not lopsided.set_index("metric").loc["return", "agree"]


def test_holm_adjusts_as_written():
    from pgx.envs.highway_fidelity import holm

    np.testing.assert_allclose(holm([0.01, 0.04, 0.03]), [0.03, 0.06, 0.06])
    np.testing.assert_allclose(holm([0.5, 0.9]), [1.0, 1.0])
