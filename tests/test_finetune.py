"""Fine-tuning subsets in parallel gives the same weights whatever runs it: in process, loky, Dask."""

import pytest
import torch
from joblib import parallel_config

from pgx.algos.ppo import PPOConfig, train
from pgx.envs import make_family
from pgx.truth.finetune import finetune_subset, finetune_subsets
from pgx.nets.policies import PolicyConfig

TINY = PPOConfig(total_timesteps=2 * 2 * 2 * 32, envs_per_task=2, num_steps=32, num_minibatches=2,
                 update_epochs=1, policy=PolicyConfig(hidden=16), anneal_lr=False)
SUBSETS = [(0, 3), (2, 9)]


@pytest.fixture(scope="module")
def init_state():
    result = train(make_family("cartpole"), range(10), TINY, seed=0, progress=False)
    return result.actor_state, result.critic_state


def _same(a, b):
    return all(torch.equal(a[k], b[k]) for k in a)


def test_snapshots_and_flops(init_state):
    run = finetune_subset("cartpole", init_state, (1, 4), TINY, seed=5, snapshot_steps=(1, 256), count_flops=True)
    assert sorted(run.snapshots) == [128, 256]  # each rounded up to a whole iteration of 128 steps
    assert _same(run.snapshots[256], run.actor_state)
    assert not _same(run.snapshots[128], run.actor_state)
    assert run.flops > 0 and run.subset == (1, 4)
    assert finetune_subset("cartpole", init_state, (1, 4), TINY, seed=5).flops == 0


def test_bad_subset_is_named(init_state):
    with pytest.raises(ValueError, match="repeats a task"):
        finetune_subset("cartpole", init_state, (2, 2), TINY, seed=0)
    with pytest.raises(ValueError, match="subsets is empty"):
        finetune_subsets("cartpole", init_state, [], TINY, seed=0)


def test_loky_and_dask_backends_match_sequential(init_state):
    distributed = pytest.importorskip("distributed")
    sequential = finetune_subsets("cartpole", init_state, SUBSETS, TINY, seed=3, n_jobs=1)[0]
    loky = finetune_subsets("cartpole", init_state, SUBSETS, TINY, seed=3, n_jobs=2)[0]
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            distributed.Client(cluster), parallel_config(backend="dask"):
        dask = finetune_subsets("cartpole", init_state, SUBSETS, TINY, seed=3)[0]
    for a, b, c in zip(sequential, loky, dask):
        assert a.subset == b.subset == c.subset
        assert _same(a.actor_state, b.actor_state) and _same(a.actor_state, c.actor_state)
    assert not _same(sequential[0].actor_state, sequential[1].actor_state)


def test_replicates_use_common_random_numbers(init_state):
    """Replicate j of every subset runs with seed + j: a subset's replicate equals a lone run with that seed."""
    runs = finetune_subsets("cartpole", init_state, SUBSETS[:2], TINY, seed=3, n_jobs=1, replicates=2)
    assert len(runs) == 2 and all(len(replicate) == 2 for replicate in runs)
    for j, replicate in enumerate(runs):
        for run, subset in zip(replicate, SUBSETS[:2]):
            assert _same(run.actor_state, finetune_subset("cartpole", init_state, subset, TINY, seed=3 + j).actor_state)
    assert not _same(runs[0][0].actor_state, runs[1][0].actor_state)
    with pytest.raises(ValueError, match="replicates must be an integer >= 1, got 0"):
        finetune_subsets("cartpole", init_state, SUBSETS, TINY, seed=0, replicates=0)
