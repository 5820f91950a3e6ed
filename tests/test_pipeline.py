"""The stages end to end in the smoke profile, through the CLI, plus profile and input checks."""

import json
from dataclasses import replace

import numpy as np
import pytest

from pgx.affinity import affinity_matrix
from pgx.cli import main
from pgx.clustering import sdp_cluster
from pgx.envs import make_family
from pgx.envs.cartpole import PoleLengthCartPole
from pgx.nets.policies import ActorCritic
from pgx.profiles import get_profile
from pgx.algos.rollouts import RolloutState, collect
from pgx.stages.downstream import METHODS
from pgx.truth.validation import grouping_nmi


def test_unknown_profile_is_named(monkeypatch):
    with pytest.raises(ValueError, match="unknown profile 'fast'"):
        get_profile("fast")
    monkeypatch.setenv("PGX_PROFILE", "smoke")
    assert get_profile().name == "smoke"


def test_cli_runs_every_stage_and_writes_json(isolated_cache):
    out = isolated_cache / "out"
    for stage in ("train", "features", "affinity", "group", "validate", "groundtruth", "maml"):
        assert main([stage, "--family", "cartpole", "--profile", "smoke", "--seed", "0", "--out", str(out)]) == 0
    train = json.loads((out / "train.json").read_text())
    assert len(train["eval_returns"]) == 10 and train["profile"] == "smoke"
    features = np.load(out / "features.npz")
    assert features["features"].shape[1] == get_profile("smoke").projection_dim
    saved = np.load(out / "affinity.npz")
    subsets = [tuple(s) for s in json.loads((out / "affinity.json").read_text())["subsets"]]
    # eq. 5 of the saved scores, z-normalised: each task's scores average to 0, so does the diagonal
    np.testing.assert_array_equal(saved["affinity"], affinity_matrix(subsets, saved["scores"], 10))
    np.testing.assert_allclose(np.diag(saved["affinity"]), 0.0, atol=1e-12)
    group = json.loads((out / "group.json").read_text())
    for labels in group["labels"].values():
        assert sorted(set(labels)) == [0, 1, 2] and len(labels) == 10
    assert (isolated_cache / "cache" / "checkpoints").is_dir()
    smoke = get_profile("smoke")
    validate = json.loads((out / "validate.json").read_text())
    assert len(validate["taylor_along_finetuning"]) == smoke.taylor_subsets * len(smoke.snapshot_steps)
    assert all(0 <= row["rss"] < row["rss_zeroth"] for row in validate["taylor_along_finetuning"])
    assert list(validate["table1_mean_rss_by_relative_distance"]) == [f"{d:g}" for d in smoke.table1_distances]
    table1 = list(validate["table1_mean_rss_by_relative_distance"].values())
    assert table1[-1] > table1[0], "the first-order error is larger at 5% than at 0.1%"
    truth = json.loads((out / "groundtruth.json").read_text())
    assert truth["replicates"] == smoke.truth_replicates
    rows = truth["verdicts"]["rows"]
    assert set(rows) == {"first-order (PolicyGradEx)", "plug-in (PolicyGradEx)", "offline exact truth",
                         "gradient similarity", "random groups", "first-order, λ step rescaled"}
    arrays = np.load(out / "groundtruth.npz")
    np.testing.assert_array_equal(arrays["estimated_affinity"], saved["affinity"])

    def groups(affinity):
        return sdp_cluster(affinity, k=3, seed=0)

    ours = groups(saved["affinity"])
    assert rows["first-order (PolicyGradEx)"]["NMI vs truth"] == grouping_nmi(ours, groups(arrays["true_affinity"]))
    assert rows["first-order (PolicyGradEx)"]["NMI vs return truth"] == grouping_nmi(
        ours, groups(arrays["true_return_affinity"]))
    assert rows["offline exact truth"]["NMI vs exact truth"] == 1
    # returns and objectives are in different units: no relative error between them
    assert all(row["relative error vs return truth"] is None for name, row in rows.items() if name != "random groups")  # null, strict JSON
    # r = 2: the one split puts replicate 0 against replicate 1
    halves = [groups(affinity_matrix(subsets, replicate, 10)) for replicate in arrays["replicate_objective"]]
    assert truth["verdicts"]["truth reliability"]["split-half NMI"] == grouping_nmi(*halves)
    # Beside the estimate's figures: whether the truth has groups to find (its own grouping, held out)
    # and the raw target's reliability, recomputed here from the replicates the CLI saved.
    from pgx.truth.reliability import split_half_reliability
    from pgx.truth.structure import oracle_gain

    structure = truth["verdicts"]["truth structure"]
    assert structure["oracle gain z"] == pytest.approx(oracle_gain(subsets, arrays["replicate_objective"], 10, 3).z)
    assert isinstance(structure["group structure above noise"], bool)
    raw = split_half_reliability(subsets, arrays["replicate_objective"], 10, 3, bootstrap=0, normalize=False)
    assert truth["verdicts"]["raw target"]["truth reliability"]["split-half NMI"] == raw.nmi
    assert truth["speedup"] > 1 and truth["flops_ratio"] > 1
    replicates = np.load(out / "groundtruth.npz")["replicate_objective"]
    assert replicates.shape == (smoke.truth_replicates, smoke.num_subsets, 10)
    maml = json.loads((out / "maml.json").read_text())
    budgets = maml["transfer_budgets"]
    assert list(maml["mean_return_after_adaptation"]) == list(METHODS)
    assert len(maml["target_ids"]) == budgets["target tasks"] and maml["ppo_env_steps"] > 0
    assert all(len(maml["per_target"][m]["after"]) == budgets["target tasks"] for m in METHODS)
    assert maml["groups"]["PolicyGradEx"] == group["labels"]["policygradex"]
    returns = np.load(out / "maml.npz")["returns"]
    assert returns.shape == (len(METHODS), budgets["target tasks"], budgets["adaptation steps"] + 1)


def test_theta_star_samples_are_centred_per_task_unless_the_profile_says_not():
    from dataclasses import replace

    from pgx.stages import theta_star_samples

    family = make_family("cartpole")
    profile = get_profile("smoke").for_family("cartpole")
    agent = ActorCritic(family.obs_dim, family.action_space, profile.meta_ppo.policy)
    centred = theta_star_samples(agent, family, profile, seed=3)
    raw = theta_star_samples(agent, family, replace(profile, per_task_baseline=False), seed=3)
    means = [float(raw.advantages[raw.task_ids == t].mean()) for t in range(family.n_tasks)]
    assert max(abs(m) for m in means) > 1e-3, "an untrained critic leaves per-task offsets to remove"
    for t in range(family.n_tasks):
        assert abs(float(centred.advantages[centred.task_ids == t].mean())) < 1e-4
    assert np.allclose((raw.advantages - centred.advantages).numpy(),
                       np.asarray(means)[raw.task_ids.numpy()], atol=1e-4)


def test_cli_rejects_unknown_family(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--family", "hopper"])
    assert "--family: unknown family 'hopper'" in capsys.readouterr().err


class _NaNRewardCartPole(PoleLengthCartPole):
    def step(self, action):
        obs, reward, terminated, truncated, info = super().step(action)
        return obs, np.full_like(reward, np.nan), terminated, truncated, info


def test_non_finite_reward_is_a_clear_error():
    import torch

    env = _NaNRewardCartPole(np.array([0.5, 1.0]))
    agent = ActorCritic(env.single_observation_space.shape[0], 2)
    with pytest.raises(ValueError, match="non-finite reward nan from sub-env 0 at step 0"):
        collect(agent, env, RolloutState.start(env, 0), 4, torch.Generator().manual_seed(0))


def test_family_obs_dim_matches_env():
    family = make_family("cartpole")
    env = family.source_envs([0])
    assert env.single_observation_space.shape == (family.obs_dim,)


@pytest.mark.slow
@pytest.mark.parametrize("family", ["cartpole", "lunarlander", "highway", "navigation", "navigation:goals=partial"])
def test_affinity_runs_end_to_end_on_every_family(family, isolated_cache, tmp_path):
    out = tmp_path / "out"
    assert main(["affinity", "--family", family, "--profile", "smoke", "--out", str(out)]) == 0
    result = json.loads((out / "affinity.json").read_text())
    affinity = np.asarray(result["affinity"])
    assert result["family"] == family and affinity.shape == (10, 10)
    subsets = [tuple(s) for s in result["subsets"]]
    np.testing.assert_allclose(affinity, affinity_matrix(subsets, np.load(out / "affinity.npz")["scores"], 10),
                               rtol=1e-12, atol=1e-12)  # eq. 5 of the stage's scores (JSON keeps ~17 digits)
    np.testing.assert_allclose(np.diag(affinity), 0.0, atol=1e-12)  # z-normalised


@pytest.mark.parametrize("family, message", [
    ("navigation:goals=sideways", "unknown navigation goal distribution 'sideways'"),
    ("navigation:radius=-1", "radius must be > 0, got -1"),
])
def test_cli_rejects_bad_family_options(family, message, capsys):
    with pytest.raises(SystemExit):
        main(["affinity", "--family", family])
    assert message in capsys.readouterr().err


_CALLS = []


def _warns_once(x: int) -> int:
    import warnings

    _CALLS.append(x)
    warnings.warn(f"solver did not converge for x={x}", RuntimeWarning)
    warnings.warn("old API", DeprecationWarning)
    return 2 * x


def test_cached_stage_keeps_its_warnings_and_raises_them_when_loaded(isolated_cache):
    """A warning raised while a stage computed is raised again when its result comes from the cache."""
    from pgx.stages import graph

    stage = graph.stage()(_warns_once)
    for _ in range(2):
        with pytest.warns(RuntimeWarning, match=r"\[warns_once\] solver did not converge for x=3") as caught:
            assert stage(3) == 6
        assert not [w for w in caught if issubclass(w.category, DeprecationWarning)]
    assert _CALLS == [3], "the second call was served from the cache"


def test_show_warnings_prints_runtime_warnings_to_stdout(capsys):
    import warnings

    from pgx.report import show_warnings

    before = warnings.showwarning
    try:
        show_warnings()
        with warnings.catch_warnings():
            warnings.simplefilter("always")
            warnings.warn("SCS reached only an inaccurate optimum", RuntimeWarning)
            # A kept stage warning re-raised by every stage that loads it prints once.
            warnings.warn("[verdicts] [meta_train] env cannot be pickled", RuntimeWarning)
            warnings.warn("[exact_truth] [meta_train] env cannot be pickled", RuntimeWarning)
            warnings.warn("[meta_train] env cannot be pickled", RuntimeWarning)
    finally:
        warnings.showwarning = before
    out = capsys.readouterr().out
    assert "warning (RuntimeWarning): SCS reached only an inaccurate optimum" in out
    assert out.count("env cannot be pickled") == 1 and "[verdicts] [meta_train] env cannot be pickled" in out


def test_cli_runs_metaworld_stages_and_refuses_the_ones_it_lacks(isolated_cache, capsys):
    out = isolated_cache / "out"
    for stage in ("train", "features", "affinity", "group"):
        assert main([stage, "--family", "mt10", "--profile", "smoke", "--out", str(out)]) == 0
    train = json.loads((out / "train.json").read_text())
    assert len(train["eval_success"]) == 10 and train["budgets"]["profile"] == "smoke" and train["hardware"].split(":")[0] in ("cpu", "cuda")
    group = json.loads((out / "group.json").read_text())
    assert set(group["labels"]) == {"policygradex", "random", "gradient_similarity"}
    assert np.load(out / "affinity.npz")["affinity"].shape == (10, 10)
    for argv, message in ((["validate", "--family", "mt10"], "stage 'validate' is not available for 'mt10'"),
                          (["multitask", "--family", "cartpole"], "runs mt10 or mt50, got family 'cartpole'"),
                          (["multitask", "--family", "mt50"], "runs mt10, got 'mt50'"),
                          (["affinity", "--family", "mt10", "--route", "plug_in"], "first-order route only")):
        with pytest.raises(SystemExit):
            main([*argv, "--profile", "smoke", "--out", str(out)])
        assert message in capsys.readouterr().err


def test_theta_budget_curve_retrains_theta_at_each_fraction(tmp_path, monkeypatch):
    """Real smoke runs on navigation: θ* is retrained with each fraction of its steps (a run of its
    own), and the full-budget row's groups are the full-budget estimate's."""
    from pgx.profiles import get_profile
    from pgx.stages import meta_train, theta_budget_curve

    monkeypatch.setenv("PGX_CACHE", str(tmp_path))
    profile = get_profile("smoke").replaced(theta_fractions=(1.0, 0.25))
    rows = theta_budget_curve("navigation", profile, 0)
    total = profile.for_family("navigation").meta_ppo.total_timesteps
    assert [row["θ* fraction"] for row in rows] == [0.25, 1.0]
    assert rows[0]["θ* steps"] < rows[1]["θ* steps"] <= total and rows[0]["θ* steps"] <= total // 4 + total // 10
    assert rows[1]["NMI(estimate, full-budget estimate)"] == 1.0
    assert all(0.0 <= row[key] <= 1.0 for row in rows for key in row if key.startswith("NMI"))
    own = profile.for_family("navigation")
    quarter = own.replaced(meta_ppo=replace(own.meta_ppo, total_timesteps=round(total / 4)))
    assert int(meta_train("navigation", quarter, 0).train.steps[-1]) == rows[0]["θ* steps"]  # the stage's own run
    with pytest.raises(ValueError, match="trains θ\\* with 'sac'"):
        theta_budget_curve("mt10", get_profile("smoke"), 0)
    with pytest.raises(ValueError, match="theta_fractions"):
        get_profile("smoke").replaced(theta_fractions=(0.0, 1.0))
