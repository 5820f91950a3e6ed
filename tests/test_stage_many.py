"""compute_many: independent stage calls computed over the cores, each stored by its stage."""

import os
import threading
import time

import joblib

import pytest
import torch

from pgx.profiles import get_profile
from pgx.stages import compute_many, meta_train
from pgx.stages.graph import stage


@stage()
def _nested(x: int) -> list[tuple[int, str]]:
    """Runs joblib itself, as the ground truth's fine-tuning does."""
    return joblib.Parallel(n_jobs=2)(joblib.delayed(_where)(i) for i in range(4))


def _where(i: int) -> tuple[int, str]:
    return os.getpid(), threading.current_thread().name


@stage()
def _of_family(family_name: str) -> int:
    return os.getpid()


@stage()
def _square(x: int, fail: bool = False) -> tuple[int, int]:
    if fail:
        raise ValueError(f"asked to fail at {x}")
    time.sleep(0.3)  # long enough that one worker cannot take every call before the other starts
    return x * x, os.getpid()


def test_results_in_order_cached_and_spread_over_processes(isolated_cache):
    results = compute_many([_square.call(x) for x in range(6)], n_jobs=2)
    assert [r[0] for r in results] == [x * x for x in range(6)]
    pids = {r[1] for r in results}
    assert os.getpid() not in pids and len(pids) == 2  # computed in two workers, loaded here
    assert all(_square.call(x).folder().joinpath("output.pkl").is_file() for x in range(6))
    again = compute_many([_square.call(x) for x in range(6)], n_jobs=2)
    assert again == results  # loaded: the pids of the first computation come back


def test_one_key_computed_once(isolated_cache):
    results = compute_many([_square.call(3), _square.call(x=3), _square.call(4)], n_jobs=2)
    assert results[0] == results[1]


def test_one_missing_or_one_job_runs_here(isolated_cache):
    (alone,) = compute_many([_square.call(5)], n_jobs=2)
    serial = compute_many([_square.call(6), _square.call(7)], n_jobs=1)
    assert alone[1] == os.getpid() and {r[1] for r in serial} == {os.getpid()}


def test_a_worker_uses_the_callers_cache(tmp_path, monkeypatch):
    # A worker reused from an earlier call started under another $PGX_CACHE: results must land in
    # the cache of the caller of now.
    for name in ("first", "second"):
        monkeypatch.setenv("PGX_CACHE", str(tmp_path / name))
        compute_many([_square.call(10), _square.call(11)], n_jobs=2)
        assert _square.call(10).folder().is_relative_to(tmp_path / name)
        assert (_square.call(10).folder() / "output.pkl").is_file()
        assert (_square.call(11).folder() / "output.pkl").is_file()


def test_an_error_is_raised_here_and_finished_calls_stay(isolated_cache):
    with pytest.raises(ValueError, match="asked to fail at 2"):
        compute_many([_square.call(1), _square.call(2, fail=True)], n_jobs=2)
    assert (_square.call(1).folder() / "output.pkl").is_file()


def test_bad_input_is_named(isolated_cache):
    with pytest.raises(TypeError, match="Stage.call"):
        compute_many([_square.call(1), (_square, 2)])
    with pytest.raises(ValueError, match="n_jobs must be a non-zero int.*got 0"):
        compute_many([_square.call(1)], n_jobs=0)
    with pytest.raises(ValueError, match="seed must be a non-negative int"):
        meta_train.call("cartpole", get_profile("smoke"), -1)
    with pytest.raises(ValueError, match="nosuchfamily"):
        meta_train.call("nosuchfamily", get_profile("smoke"), 0)


def test_a_stage_computed_in_a_worker_equals_one_computed_here(tmp_path, monkeypatch):
    """Real training (smoke θ* of two families): the worker's result is the in-process one, bit for bit."""
    profile = get_profile("smoke")
    calls = lambda: [meta_train.call(f, profile, 0) for f in ("cartpole", "navigation")]  # noqa: E731
    monkeypatch.setenv("PGX_CACHE", str(tmp_path / "workers"))
    in_workers = compute_many(calls(), n_jobs=2)
    monkeypatch.setenv("PGX_CACHE", str(tmp_path / "here"))
    here = [c() for c in calls()]
    for a, b in zip(in_workers, here):
        for state_a, state_b in ((a.train.actor_state, b.train.actor_state), (a.train.critic_state, b.train.critic_state)):
            assert state_a.keys() == state_b.keys()
            assert all(torch.equal(state_a[k], state_b[k]) for k in state_a)


def test_a_stages_own_joblib_calls_run_in_its_worker_in_order(isolated_cache):
    results = compute_many([_nested.call(1), _nested.call(2)], n_jobs=2)
    for places in results:
        assert {pid for pid, _ in places} != {os.getpid()} and len({pid for pid, _ in places}) == 1
        assert {thread for _, thread in places} == {"MainThread"}


def test_a_family_a_worker_cannot_rebuild_is_computed_here(isolated_cache):
    from pgx.envs import FAMILIES, make_family, register_family

    register_family("cartpole-mine", lambda **options: make_family("cartpole"))
    try:
        pids = compute_many([_of_family.call("cartpole-mine"), _of_family.call("cartpole-mine:observe_task=false"),
                             _of_family.call("cartpole"), _of_family.call("navigation")], n_jobs=2)
    finally:
        FAMILIES.pop("cartpole-mine")
    assert pids[0] == pids[1] == os.getpid()  # registered in this process only
    assert os.getpid() not in pids[2:]
