import numpy as np
import pytest

from pgx.envs import make_family
from pgx.envs.cartpole import PoleLengthCartPole


def test_unknown_family_is_named():
    with pytest.raises(ValueError, match="unknown family 'cartpol'"):
        make_family("cartpol")


def test_cartpole_family_shapes_and_one_hot():
    fam = make_family("cartpole")
    assert fam.n_tasks == 10 and fam.obs_dim == 14 and fam.num_actions == 2
    assert len(set(fam.source_params)) == 10 and len(fam.target_params) == 50
    env = fam.source_envs([2, 7], envs_per_task=3)
    obs, _ = env.reset(seed=0)
    assert obs.shape == (6, 14)
    np.testing.assert_array_equal(obs[:3, 4 + 2], 1.0)
    np.testing.assert_array_equal(obs[3:, 4 + 7], 1.0)
    assert obs[:, 4:].sum() == 6
    np.testing.assert_allclose(env.length, [fam.source_params[2]] * 3 + [fam.source_params[7]] * 3)


def test_pole_length_changes_dynamics_per_sub_env():
    # Same start state and pushes: the short pole tips over faster than the long one.
    env = PoleLengthCartPole(np.array([0.1, 2.0]), np.array([0, 1]), n_tasks=2)
    env.reset(seed=0)
    env.state[:, 1] = env.state[:, 0]
    for _ in range(5):
        env.step(np.array([1, 1]))
    theta = np.abs(env.state[2])
    assert theta[0] > 3 * theta[1]


def test_bad_task_ids_and_lengths():
    fam = make_family("cartpole")
    with pytest.raises(ValueError, match="task id 10 is out of range"):
        fam.source_envs([0, 10])
    with pytest.raises(ValueError, match="target ids must be in"):
        fam.target_envs([50])
    with pytest.raises(ValueError, match="pole lengths must be finite and > 0"):
        PoleLengthCartPole(np.array([0.5, -1.0]), np.array([0, 1]), n_tasks=2)


def test_target_envs_show_no_task_id():
    env = make_family("cartpole").target_envs([0, 49])
    obs, _ = env.reset(seed=1)
    assert obs[:, 4:].sum() == 0
