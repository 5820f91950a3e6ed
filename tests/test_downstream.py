"""The downstream stage's plumbing: budgets, the hidden-task family, target choice, Appendix C."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from pgx.algos.maml import MAMLConfig
from pgx.envs import make_family
from pgx.profiles import get_profile
from pgx.stages.downstream import SOURCE_DISTRIBUTIONS, hidden_task_spec, target_subset, unseen_targets
from pgx.algos.transfer import AdaptConfig
from pgx.profiles import PROFILES
from pgx.stages.downstream import transfer_budgets
from pgx.transfer_budgets import TransferBudgets


def test_downstream_families_hide_the_task_and_targets_are_evenly_spaced():
    assert hidden_task_spec("cartpole") == "cartpole:observe_task=false"
    assert hidden_task_spec("highway:observe_task=true") == "highway:observe_task=true,observe_task=false"
    assert hidden_task_spec("navigation:goals=partial") == "navigation:goals=partial"  # hidden already
    assert target_subset(tuple(range(50)), 50) == tuple(range(50))
    assert target_subset(tuple(range(50)), 5) == (0, 12, 24, 37, 49)
    assert target_subset((3, 5, 8, 9), 10) == (3, 5, 8, 9)
    assert target_subset((3, 5, 8, 9, 11), 3) == (3, 8, 11)


def test_targets_that_are_source_tasks_are_left_out():
    # Both ends of CartPole's target grid are source tasks (0.05 m and 5 m).
    cartpole = unseen_targets("cartpole")
    assert len(cartpole) == 48 and 0 not in cartpole and 49 not in cartpole
    # Every fifth uniform target goal is a uniform source goal; partial's are among them.
    both = unseen_targets("navigation:goals=uniform", "navigation:goals=partial", "navigation:goals=biased")
    assert len(both) == 40 and not any(i % 5 == 0 for i in both)
    assert len(unseen_targets("navigation")) == 50  # the clustered sources sit between targets


def test_every_profile_has_downstream_budgets_for_every_family():
    for profile in PROFILES.values():
        for family in ("cartpole", "lunarlander", "highway", "navigation:goals=uniform"):
            budgets = transfer_budgets(family, profile)
            assert budgets is profile.for_family(family.partition(":")[0]).transfer
            # MAML on all tasks must train on every source task.
            assert budgets.maml.meta_batch_size >= make_family(family).n_tasks
    assert PROFILES["paper"].transfer.adapt.steps == 200  # the paper's number
    assert PROFILES["default"].for_family("lunarlander").transfer.num_targets == 20  # a family's own section
    with pytest.raises(ValueError, match="profile must be a pgx.profiles.Profile, got str"):
        transfer_budgets("cartpole", "smoke")


def test_bad_transfer_budgets_are_named():
    base = PROFILES["smoke"].transfer
    with pytest.raises(ValueError, match=r"adapt.lr \(0.5\) must equal maml.inner_lr \(0.1\)"):
        replace(base, adapt=AdaptConfig(lr=0.5))
    with pytest.raises(ValueError, match="num_targets must be an int >= 1, got 0"):
        replace(base, num_targets=0)
    with pytest.raises(ValueError, match="adapt.lr"):
        TransferBudgets(maml=MAMLConfig(inner_lr=0.2), adapt=AdaptConfig())


def test_source_distributions_share_the_uniform_targets(isolated_cache):
    from pgx.stages.downstream import source_distributions  # bound to the isolated cache

    runs = source_distributions(get_profile("smoke"), seed=0)
    assert tuple(runs) == SOURCE_DISTRIBUTIONS
    budgets = PROFILES["smoke"].for_family("navigation").transfer
    for run, adaptation in runs.values():
        assert adaptation.returns.shape == (budgets.num_targets, budgets.adapt.steps + 1)
        assert not set(adaptation.target_ids) & {i for i in range(50) if i % 5 == 0}  # no source goal among them
        assert run.returns_after.shape == (budgets.maml.meta_iterations,)
        path = adaptation.trajectories[budgets.adapt.steps]
        assert path.shape[0] == budgets.num_targets and path.shape[-1] == 2
        assert np.isfinite(path[:, 0]).all()  # every episode has a first step
    assert len({adaptation.target_ids for _, adaptation in runs.values()}) == 1  # the same targets for all
    # Different source goals, same targets and seeds: different meta-policies.
    assert not np.array_equal(runs["uniform"][0].actor_state["net.0.weight"], runs["partial"][0].actor_state["net.0.weight"])
