"""The family interface, the registry with options, CartPole, and a user's own family."""

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from pgx.envs import FAMILIES, gym_family, make_family, parse_family_spec, register_family
from pgx.envs.cartpole import PoleLengthCartPole


def test_unknown_family_is_named():
    with pytest.raises(ValueError, match="unknown family 'cartpol'"):
        make_family("cartpol")


def test_family_options_are_parsed_and_checked():
    assert parse_family_spec("navigation:goals=partial,radius=2.5,observe_task=false") == (
        "navigation", {"goals": "partial", "radius": 2.5, "observe_task": False})
    with pytest.raises(ValueError, match="family 'cartpole' has no option 'gravity'"):
        make_family("cartpole:gravity=3")
    with pytest.raises(ValueError, match="is not key=value"):
        make_family("cartpole:observe_task")
    with pytest.raises(ValueError, match="observe_task must be true or false, got 3"):
        make_family("cartpole:observe_task=3")


def test_cartpole_family_shapes_and_one_hot():
    fam = make_family("cartpole")
    assert fam.n_tasks == 10 and fam.obs_dim == 14 and fam.num_actions == 2 and fam.discrete
    assert len(set(fam.source_params)) == 10 and len(fam.target_params) == 50
    assert min(fam.source_params) == 0.05 and max(fam.source_params) == 5.0
    env = fam.source_envs([2, 7], envs_per_task=3)
    obs, _ = env.reset(seed=0)
    assert obs.shape == (6, 14) and obs.dtype == np.float32
    np.testing.assert_array_equal(obs[:3, 4 + 2], 1.0)
    np.testing.assert_array_equal(obs[3:, 4 + 7], 1.0)
    assert obs[:, 4:].sum() == 6
    np.testing.assert_allclose(env.unwrapped.length, [fam.source_params[2]] * 3 + [fam.source_params[7]] * 3)


def test_observe_task_false_drops_the_one_hot():
    fam = make_family("cartpole:observe_task=false")
    assert fam.name == "cartpole:observe_task=false" and fam.obs_dim == 4
    obs, _ = fam.source_envs([0, 9]).reset(seed=0)
    assert obs.shape == (2, 4)


def test_pole_length_changes_dynamics_per_sub_env():
    # Same start state and pushes: the short pole tips over faster than the long one.
    env = PoleLengthCartPole(np.array([0.1, 2.0]))
    env.reset(seed=0)
    env.state[:, 1] = env.state[:, 0]
    for _ in range(5):
        env.step(np.array([1, 1]))
    theta = np.abs(env.state[2])
    assert theta[0] > 3 * theta[1]


def test_seeding_reproduces():
    fam = make_family("cartpole")
    runs = []
    for seed in (3, 3, 4):
        env = fam.source_envs(range(10))
        obs, _ = env.reset(seed=seed)
        trajectory = [obs]
        for t in range(20):
            trajectory.append(env.step(np.full(10, t % 2))[0])
        runs.append(np.stack(trajectory))
    np.testing.assert_array_equal(runs[0], runs[1])
    assert not np.array_equal(runs[0], runs[2])


def test_bad_task_ids_and_lengths():
    fam = make_family("cartpole")
    with pytest.raises(ValueError, match="task id 10 is out of range"):
        fam.source_envs([0, 10])
    with pytest.raises(ValueError, match="target ids must be in"):
        fam.target_envs([50])
    with pytest.raises(ValueError, match="pole lengths must be > 0 m, got -1.0"):
        PoleLengthCartPole(np.array([0.5, -1.0]))
    with pytest.raises(ValueError, match="must be finite"):
        PoleLengthCartPole(np.array([0.5, np.nan]))


def test_target_envs_show_no_task_id():
    env = make_family("cartpole").target_envs([0, 49])
    obs, _ = env.reset(seed=1)
    assert obs[:, 4:].sum() == 0


def test_single_task_cartpole_passes_check_env():
    env = gym.make("CartPole-v1").unwrapped
    env.length = make_family("cartpole").source_params[0]
    env.polemass_length = env.masspole * env.length
    check_env(env, skip_render_check=True)


# --- a user's own family ---------------------------------------------------------------------


def _pendulum(gravity: np.ndarray) -> gym.Env:
    return gym.make("Pendulum-v1", g=float(gravity[0]), max_episode_steps=50)


def pendulum_family(observe_task: bool = True):
    return gym_family("pendulum-gravity", _pendulum, source_params=[2.0, 5.0, 10.0, 20.0], target_params=[3.0, 15.0],
                      parameter="gravity (m/s²)", observe_task=observe_task)


@pytest.fixture
def registered_pendulum():
    register_family("pendulum-gravity", pendulum_family)
    yield
    FAMILIES.pop("pendulum-gravity")


def test_user_family_from_gym_env(registered_pendulum):
    fam = make_family("pendulum-gravity")
    assert not fam.discrete and fam.num_actions == 1 and fam.obs_dim == 3 + 4 and fam.max_episode_steps == 50
    env = fam.source_envs([0, 3])
    obs, _ = env.reset(seed=0)
    assert obs.shape == (2, 7)
    # Gravity changes the dynamics: same start and torque, different next states.
    env.unwrapped.envs[1].unwrapped.state = env.unwrapped.envs[0].unwrapped.state.copy()
    obs, *_ = env.step(np.array([[5.0], [5.0]]))  # clipped to the bound 2.0 by the family
    assert not np.allclose(obs[0, :3], obs[1, :3])


def test_register_family_rejects_bad_names_and_duplicates(registered_pendulum):
    with pytest.raises(ValueError, match="already registered"):
        register_family("pendulum-gravity", pendulum_family)
    with pytest.raises(ValueError, match="family name must be"):
        register_family("a:b", pendulum_family)


def test_gym_family_rejects_bad_input():
    with pytest.raises(ValueError, match="must be finite"):
        gym_family("x", _pendulum, [2.0, np.inf], [], "gravity")
    with pytest.raises(ValueError, match="need at least 2 source tasks"):
        gym_family("x", _pendulum, [2.0], [], "gravity")
    with pytest.raises(ValueError, match="processes must be an int >= 1, got 0"):
        gym_family("x", _pendulum, [2.0, 5.0], [], "gravity", processes=0)


def test_cartpole_two_regimes_reverse_the_motor_of_half_the_tasks():
    """``cartpole:actuators=mixed``: a controller that balances the poles as built drops the same
    poles at once when the motor is reversed: the regimes conflict for any policy that cannot
    tell them apart (the family hides the task)."""
    import numpy as np

    from pgx.envs import make_family

    family = make_family("cartpole:actuators=mixed")
    assert family.n_tasks == 10 and not family.observe_task
    assert family.planted_groups == (0,) * 5 + (1,) * 5
    assert make_family("cartpole:actuators=mixed,observe_task=true").observe_task
    env = family.source_envs(range(10), 4)
    obs, _ = env.reset(seed=0)
    alive, steps = np.ones(40, bool), np.zeros(40)
    for _ in range(200):
        action = (obs[:, 2] + 0.5 * obs[:, 3] > 0).astype(np.int64)  # push toward the lean
        obs, _, terminated, truncated, _ = env.step(action)
        alive &= ~(terminated | truncated)
        steps += alive
    by_task = steps.reshape(10, 4).mean(1)
    # Poles from 0.16 m up stay up 200 steps with the motor as built, and fall within a few dozen
    # steps with it reversed (the shortest pole, 0.05 m, is hard for this controller either way).
    assert np.all(by_task[1:5] == 200) and np.all(by_task[6:] < 60), by_task
    with pytest.raises(ValueError, match="actuators must be one of .*got 'sideways'"):
        make_family("cartpole:actuators=sideways")
