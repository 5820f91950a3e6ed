import gymnasium as gym
import numpy as np
import pytest
import torch

from pgx.algos.ppo import PPOConfig, train
from pgx.envs import make_family
from pgx.nets.policies import PolicyConfig

TINY = PPOConfig(total_timesteps=6 * 2 * 2 * 32, envs_per_task=2, num_steps=32, num_minibatches=2,
                 update_epochs=2, policy=PolicyConfig(hidden=16), checkpoint_every=2)


class Interrupt(Exception):
    pass


def stop_after_fourth(iteration, agent):
    """Interrupts a run after its fourth iteration (and its checkpoint at iteration 4)."""
    if iteration == 3:
        raise Interrupt


def _same(a, b):
    return all(torch.equal(a[k], b[k]) for k in a)


def test_same_seed_same_theta_and_different_seed_differs():
    fam = make_family("cartpole")
    r1 = train(fam, [0, 5], TINY, seed=3, progress=False)
    r2 = train(fam, [0, 5], TINY, seed=3, progress=False)
    r3 = train(fam, [0, 5], TINY, seed=4, progress=False)
    assert _same(r1.actor_state, r2.actor_state)
    assert not _same(r1.actor_state, r3.actor_state)
    assert r1.task_returns.shape == (TINY.num_iterations(2), 2)
    np.testing.assert_array_equal(r1.steps, np.arange(1, 7) * TINY.batch_size(2))


def test_interrupted_run_resumes_to_the_uninterrupted_result(tmp_path):
    fam = make_family("cartpole")
    full = train(fam, [1, 8], TINY, seed=0, progress=False)
    ckpt = tmp_path / "run.pt"

    with pytest.raises(Interrupt):
        train(fam, [1, 8], TINY, seed=0, checkpoint_path=ckpt, progress=False, on_iteration=stop_after_fourth)
    assert ckpt.exists()
    assert torch.load(ckpt, weights_only=False)["iteration"] == 4
    resumed = train(fam, [1, 8], TINY, seed=0, checkpoint_path=ckpt, progress=False)
    assert _same(full.actor_state, resumed.actor_state)
    assert _same(full.critic_state, resumed.critic_state)
    np.testing.assert_array_equal(full.task_returns, resumed.task_returns)


def test_checkpoint_of_another_run_is_refused(tmp_path):
    fam = make_family("cartpole")
    ckpt = tmp_path / "run.pt"
    train(fam, [0], TINY, seed=0, checkpoint_path=ckpt, progress=False)
    with pytest.raises(ValueError, match="different run"):
        train(fam, [0], TINY, seed=1, checkpoint_path=ckpt, progress=False)


def test_fine_tuning_starts_from_given_weights():
    fam = make_family("cartpole")
    base = train(fam, [0], TINY, seed=0, progress=False)
    zero_lr = PPOConfig(**{**TINY.__dict__, "learning_rate": 0.0})
    tuned = train(fam, [2], zero_lr, seed=9, progress=False, init_state=(base.actor_state, base.critic_state))
    assert _same(base.actor_state, tuned.actor_state)


def test_box_actions_train_reproducibly_and_resume_exactly(tmp_path):
    # Navigation: a Gaussian policy on a numpy env that pickles, so resume is exact.
    fam = make_family("navigation")
    full = train(fam, [0, 6], TINY, seed=2, progress=False)
    assert full.actor_state["log_std"].shape == (2,)
    assert not torch.equal(full.actor_state["log_std"], torch.zeros(2))  # the std was learned
    ckpt = tmp_path / "nav.pt"

    with pytest.raises(Interrupt):
        train(fam, [0, 6], TINY, seed=2, checkpoint_path=ckpt, progress=False, on_iteration=stop_after_fourth)
    resumed = train(fam, [0, 6], TINY, seed=2, checkpoint_path=ckpt, progress=False)
    assert _same(full.actor_state, resumed.actor_state)


class _Unpicklable(gym.vector.VectorWrapper):
    """Stands for a Box2D or highway-env vector env, which cannot be pickled."""

    def __reduce__(self):
        raise TypeError("cannot pickle this env")


def test_unpicklable_env_resumes_from_a_seeded_reset(tmp_path):
    base = make_family("cartpole")
    fam = base.with_options(name="cartpole-unpicklable",
                            make_vec_env=lambda params: _Unpicklable(base.make_vec_env(params)))
    ckpt = tmp_path / "run.pt"

    runs = []
    for _ in range(2):
        ckpt.unlink(missing_ok=True)
        with pytest.warns(UserWarning, match="cannot be pickled"), pytest.raises(Interrupt):
            train(fam, [1, 8], TINY, seed=0, checkpoint_path=ckpt, progress=False, on_iteration=stop_after_fourth)
        saved = torch.load(ckpt, weights_only=False)
        assert saved["env"] is None and saved["iteration"] == 4
        runs.append(train(fam, [1, 8], TINY, seed=0, checkpoint_path=ckpt, progress=False))
    # Weights, optimiser and RNG are restored, the episodes restart: reproducible, and the
    # learning curve before the interruption is kept.
    assert _same(runs[0].actor_state, runs[1].actor_state)
    full = train(fam, [1, 8], TINY, seed=0, progress=False)
    np.testing.assert_array_equal(full.task_returns[:4], runs[0].task_returns[:4])
    assert len(runs[0].task_returns) == TINY.num_iterations(2)
