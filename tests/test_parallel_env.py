import multiprocessing as mp
import os
from functools import partial

import gymnasium as gym
import numpy as np
import pytest

from pgx.envs.lunarlander import make_lunarlander
from pgx.envs.parallel import ProcessVectorEnv, _merge_infos

GRAVITIES = (-11.0, -8.5, -6.0, -3.5, -2.0)


def lander_fns(gravities=GRAVITIES):
    return [partial(make_lunarlander, np.array([g])) for g in gravities]


def test_matches_sync_vector_env_bit_for_bit():
    # 5 sub-envs over 3 workers: uneven blocks; random landers crash within ~100 steps, so the
    # 300 steps cover several NEXT_STEP autoresets.
    sync, parallel = gym.vector.SyncVectorEnv(lander_fns()), ProcessVectorEnv(lander_fns(), processes=3)
    try:
        assert parallel.num_envs == 5 and parallel.observation_space == sync.observation_space
        assert parallel.action_space == sync.action_space
        for seed in ([3, 0, 5, 1, 2], 7):
            obs_s, _ = sync.reset(seed=seed)
            obs_p, _ = parallel.reset(seed=seed)
            np.testing.assert_array_equal(obs_p, obs_s)
        rng = np.random.default_rng(0)
        episodes_ended = 0
        for _ in range(300):
            actions = rng.integers(0, 4, size=5)
            got, want = parallel.step(actions), sync.step(actions)
            for g, w in zip(got[:4], want[:4]):
                assert g.dtype == w.dtype
                np.testing.assert_array_equal(g, w)
            episodes_ended += int(np.sum(want[2] | want[3]))
        assert episodes_ended >= 5
        assert parallel.get_attr("spec")[0].id == "LunarLander-v3"
    finally:
        sync.close()
        parallel.close()


def test_close_leaves_no_live_child_processes():
    env = ProcessVectorEnv(lander_fns(), processes=2)
    env.reset(seed=0)
    pids = [w.pid for w in env._workers]
    assert all(w.daemon and w.is_alive() for w in env._workers)
    env.close()
    assert env.closed and not any(w.is_alive() for w in env._workers)
    assert not set(pids) & {p.pid for p in mp.active_children()}
    if os.path.isdir("/proc"):
        assert not any(os.path.exists(f"/proc/{pid}") for pid in pids)
    with pytest.raises(RuntimeError, match="closed"):
        env.step(np.zeros(5, dtype=np.int64))


def test_worker_errors_are_raised_in_the_parent_with_their_message():
    with pytest.raises(ValueError, match=r"gravity must be in \(-12, 0\) m/s², got 1.5"):
        ProcessVectorEnv(lander_fns((-5.0, -4.0, 1.5)), processes=2)
    env = ProcessVectorEnv(lander_fns(), processes=2)
    env.reset(seed=0)
    with pytest.raises(AssertionError, match="invalid"):
        env.step(np.array([0, 0, 0, 0, 9]))  # LunarLander asserts its action is valid
    assert env.closed and not any(w.is_alive() for w in env._workers)


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match=r"processes must be an int in \[1, 5\].*got 6"):
        ProcessVectorEnv(lander_fns(), processes=6)
    with pytest.raises(ValueError, match="env_fns is empty"):
        ProcessVectorEnv([], processes=1)
    with pytest.raises(ValueError, match="picklable"):
        ProcessVectorEnv([lambda: gym.make("CartPole-v1")] * 2, processes=2)
    env = ProcessVectorEnv(lander_fns(), processes=2)
    try:
        with pytest.raises(ValueError, match=r"actions must have 5 rows.*got shape \(4,\)"):
            env.step(np.zeros(4, dtype=np.int64))
        with pytest.raises(ValueError, match="one per sub-env \\(5\\), got 2"):
            env.reset(seed=[1, 2])
    finally:
        env.close()


def _batched(infos, num_envs):
    """Infos batched exactly as SyncVectorEnv does."""
    vec = gym.vector.VectorEnv()
    vec.num_envs = num_envs
    out = {}
    for i, info in enumerate(infos):
        out = vec._add_info(out, info, i)
    return out


def _assert_infos_equal(got, want):
    assert got.keys() == want.keys()
    for key, value in want.items():
        if isinstance(value, dict):
            _assert_infos_equal(got[key], value)
        else:
            assert got[key].dtype == value.dtype, key
            np.testing.assert_array_equal(got[key], value)


def test_infos_merge_per_sub_env_like_sync_vector_env():
    infos = [
        {"speed": 1.5, "rewards": {"a": 1.0}},
        {"speed": 2.0, "crashed": True},
        {},
        {"speed": 0.5, "obj": "x", "vec": np.ones(2)},
        {"rewards": {"a": 2.0, "b": 3}, "vec": np.zeros(2)},
    ]
    blocks = [slice(0, 2), slice(2, 5)]
    parts = [(b, _batched(infos[b], b.stop - b.start)) for b in blocks]
    _assert_infos_equal(_merge_infos(parts, 5), _batched(infos, 5))
