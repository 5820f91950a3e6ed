"""Every config refuses a bad field when it is built, naming the field and the value; every
shipped config and profile still builds; the CLI turns bad arguments and ``$PGX_*`` variables
into one line on stderr, not a traceback."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import asdict, replace
from pathlib import Path

import joblib
import numpy as np
import pytest

from pgx.algos.maml import MAMLConfig
from pgx.algos.ppo import PPOConfig
from pgx.algos.sac import SACConfig
from pgx.envs import FAMILIES
from pgx.nets import KINDS, ArchConfig
from pgx.nets.policies import PolicyConfig
from pgx.profiles import PROFILES, FidelityBudgets
from pgx.report import book_seed
from pgx.runtime import MAX_SEED, env_seed, pick_device
from pgx.surrogate import SurrogateConfig

ROOT = Path(__file__).resolve().parents[1]
NAN, INF = float("nan"), float("inf")

SMOKE = PROFILES["smoke"]
BASES = {
    "PPOConfig": PPOConfig(),
    "PolicyConfig": PolicyConfig(),
    "MAMLConfig": MAMLConfig(),
    "SACConfig": SACConfig(),
    "ArchConfig": ArchConfig(),
    "SurrogateConfig": SurrogateConfig(),
    "Profile('smoke')": SMOKE,
    "TransferBudgets": SMOKE.transfer,
    "MetaWorldBudgets": SMOKE.metaworld,
    "FidelityBudgets": SMOKE.fidelity,
}

BAD = [
    # PPOConfig: sizes, learning rate, ranges, non-finite floats, wrong types
    ("PPOConfig", "total_timesteps", 0), ("PPOConfig", "envs_per_task", -1), ("PPOConfig", "num_steps", 2.5),
    ("PPOConfig", "num_minibatches", True), ("PPOConfig", "update_epochs", 0), ("PPOConfig", "checkpoint_every", 0),
    ("PPOConfig", "learning_rate", -1.0), ("PPOConfig", "learning_rate", NAN), ("PPOConfig", "learning_rate", "1e-3"),
    ("PPOConfig", "anneal_lr", 1), ("PPOConfig", "clip_vloss", "false"), ("PPOConfig", "gamma", 0.0),
    ("PPOConfig", "gamma", 1.5),
    ("PPOConfig", "gae_lambda", -0.1), ("PPOConfig", "clip_coef", 0.0), ("PPOConfig", "ent_coef", -0.01),
    ("PPOConfig", "vf_coef", INF), ("PPOConfig", "max_grad_norm", 0.0), ("PPOConfig", "max_grad_norm", NAN),
    ("PPOConfig", "policy", {"hidden": 64}), ("PPOConfig", "num_minibatches", 257),  # > 2 envs * 128 steps
    # PolicyConfig
    ("PolicyConfig", "hidden", 0), ("PolicyConfig", "layers", 0), ("PolicyConfig", "hidden", True),
    ("PolicyConfig", "init_log_std", NAN), ("PolicyConfig", "init_log_std", "0"),
    # MAMLConfig
    ("MAMLConfig", "meta_iterations", 0), ("MAMLConfig", "inner_steps", -1), ("MAMLConfig", "inner_lr", 0.0),
    ("MAMLConfig", "outer_lr", INF), ("MAMLConfig", "max_grad_norm", -1.0), ("MAMLConfig", "first_order", "yes"),
    ("MAMLConfig", "gamma", "0.9"), ("MAMLConfig", "gae_lambda", 2.0), ("MAMLConfig", "horizon", 0),
    ("MAMLConfig", "policy", None),
    # SACConfig (the rest is pinned in test_sac.py)
    ("SACConfig", "buffer_size", 0), ("SACConfig", "tau", 0.0), ("SACConfig", "eval_episodes", 1001),
    ("SACConfig", "actor_arch", "mlp"), ("SACConfig", "checkpoint_buffer_mb", -1.0),
    ("SACConfig", "learning_starts", True),
    # ArchConfig
    ("ArchConfig", "hidden", 0), ("ArchConfig", "output_std", NAN), ("ArchConfig", "modules", True),
    ("ArchConfig", "kind", "resnet"),
    # SurrogateConfig
    ("SurrogateConfig", "l2", True), ("SurrogateConfig", "l2", -1.0), ("SurrogateConfig", "tol", INF),
    ("SurrogateConfig", "tol", NAN), ("SurrogateConfig", "max_iter", 0), ("SurrogateConfig", "step", "sideways"),
    ("SurrogateConfig", "relative_distance", NAN),
    # Profile
    ("Profile('smoke')", "eval_episodes", 0), ("Profile('smoke')", "projection_dim", -4),
    ("Profile('smoke')", "num_subsets", 40.0), ("Profile('smoke')", "per_task_baseline", "yes"),
    ("Profile('smoke')", "lambdas", (-0.1,)), ("Profile('smoke')", "lambdas", [0.1]),
    ("Profile('smoke')", "snapshot_steps", (0,)), ("Profile('smoke')", "validation_seeds", ()),
    ("Profile('smoke')", "validation_seeds", (-1,)), ("Profile('smoke')", "ablation_ks", (0, 2)),
    ("Profile('smoke')", "meta_ppo", {"total_timesteps": 10}), ("Profile('smoke')", "surrogate", None),
    ("Profile('smoke')", "taylor_subsets", -1), ("Profile('smoke')", "truth_episodes", True),
    ("Profile('smoke')", "family_budgets", {"cartpole": 3}), ("Profile('smoke')", "name", ""),
    ("Profile('smoke')", "transfer", None), ("Profile('smoke')", "metaworld", {"hidden": 8}),
    ("Profile('smoke')", "fidelity", "default"), ("Profile('smoke')", "trainer", "a2c"),
    # the profile's sections
    ("TransferBudgets", "num_targets", 0), ("TransferBudgets", "seeds", ()),
    ("TransferBudgets", "seeds", (-1,)), ("TransferBudgets", "maml", "maml"),
    ("MetaWorldBudgets", "hidden", 0), ("MetaWorldBudgets", "envs_per_task", 0),
    ("MetaWorldBudgets", "seeds", (1.5,)), ("MetaWorldBudgets", "sac", None),
    ("MetaWorldBudgets", "methods", "MT-SAC"), ("MetaWorldBudgets", "value_samples", True),
    ("FidelityBudgets", "episodes", 0), ("FidelityBudgets", "policies", "IDLE"),
    ("FidelityBudgets", "same_state_steps", 2.5),
]


@pytest.mark.parametrize("owner, field, value", BAD, ids=[f"{o.split('(')[0]}.{f}={v!r}" for o, f, v in BAD])
def test_each_bad_field_is_refused_naming_the_field_and_the_value(owner, field, value):
    with pytest.raises(ValueError) as raised:
        replace(BASES[owner], **{field: value})
    message = str(raised.value)
    assert field in message and repr(value) in message, message
    # who refuses it comes first ("profile 'smoke': ..." is the wording of the older truth checks)
    prefix = {"truth_episodes": "profile 'smoke': ", "name": "Profile.name"}.get(field, owner + ".")
    assert message.startswith(prefix), message


def test_a_bad_value_in_a_familys_budgets_is_refused_at_construction():
    base = PROFILES["smoke"]
    with pytest.raises(ValueError, match=r"eval_episodes must be an int >= 1, got 0"):
        replace(base, family_budgets={"cartpole": {"eval_episodes": 0}})
    with pytest.raises(ValueError, match=r"Profile\('smoke'\).transfer must be"):
        replace(base, family_budgets={"cartpole": {"transfer": {"num_targets": 3}}})
    with pytest.raises(ValueError, match=r"budgets for 'cartpole' name unknown fields \['num_targets'\]"):
        replace(base, family_budgets={"cartpole": {"num_targets": 3}})  # a section's field, not the profile's


def test_every_shipped_config_and_profile_builds_for_every_family():
    for config in (PPOConfig(), PolicyConfig(), MAMLConfig(), SACConfig(), SurrogateConfig(),
                   *(ArchConfig(kind=kind) for kind in KINDS)):
        assert replace(config) == config
    for profile in PROFILES.values():
        for family in sorted(set(FAMILIES) | set(profile.family_budgets)):
            specialised = profile.for_family(family)
            assert specialised.family == family and specialised.for_family(family) is specialised
    assert FidelityBudgets() == PROFILES["default"].fidelity


def test_validation_keeps_every_value_as_given():
    # A numpy int, a Python int for a float: kept as they are (the cache hashes them).
    cfg = PPOConfig(total_timesteps=np.int64(4096), learning_rate=1, gamma=np.float64(0.9))
    assert type(cfg.total_timesteps) is np.int64 and type(cfg.learning_rate) is int
    assert asdict(cfg)["gamma"] == 0.9 and type(cfg.gamma) is np.float64
    assert joblib.hash(replace(SMOKE)) == joblib.hash(SMOKE)
    # 0 is a legal learning rate (it keeps the weights: test_ppo's init_state test), inf a legal clip norm.
    assert PPOConfig(learning_rate=0.0, max_grad_norm=INF).learning_rate == 0.0


def test_num_minibatches_may_equal_one_tasks_batch():
    assert PPOConfig(envs_per_task=1, num_steps=4, num_minibatches=4).batch_size(3) == 12
    with pytest.raises(ValueError, match=r"num_minibatches must be <= envs_per_task \* num_steps \(1 \* 4, .*got 5"):
        PPOConfig(envs_per_task=1, num_steps=4, num_minibatches=5)


def test_pick_device_names_a_bad_pgx_device(monkeypatch):
    monkeypatch.setenv("PGX_DEVICE", "bogus")
    with pytest.raises(ValueError, match="PGX_DEVICE must name a torch device .*got 'bogus'"):
        pick_device()
    with pytest.raises(ValueError, match="device must name a torch device .*got 'gpu0'"):
        pick_device("gpu0")
    assert pick_device("cpu").type == "cpu"  # an explicit device wins over the variable
    monkeypatch.setenv("PGX_DEVICE", "cpu")
    assert pick_device().type == "cpu"


@pytest.mark.parametrize("raw, seed", [(None, 0), ("", 0), ("  ", 0), ("7", 7), (" 7\n", 7), (str(MAX_SEED), MAX_SEED)])
def test_pgx_seed_is_read_by_one_rule_for_the_book_and_the_cli(monkeypatch, raw, seed):
    if raw is None:
        monkeypatch.delenv("PGX_SEED", raising=False)
    else:
        monkeypatch.setenv("PGX_SEED", raw)
    assert env_seed() == book_seed() == seed


@pytest.mark.parametrize("raw", ["-1", "abc", "3.0", "+3", "1_000", "٣", str(MAX_SEED + 1)])
def test_a_bad_pgx_seed_is_refused_by_the_book_and_the_cli_alike(monkeypatch, raw):
    monkeypatch.setenv("PGX_SEED", raw)
    message = rf"PGX_SEED must be a non-negative integer, got {re.escape(repr(raw))} \(seeds run from 0 to {MAX_SEED}\)"
    for read in (env_seed, book_seed):
        with pytest.raises(ValueError, match=message):
            read()


# --- the CLI: one line on stderr, no traceback -------------------------------------------------

CLI_CASES = [
    ({"PGX_SEED": "abc"}, [], "PGX_SEED", "'abc'"),
    ({"PGX_SEED": "-1"}, [], "PGX_SEED", "'-1'"),
    ({"PGX_SEED": "4294967296"}, [], "PGX_SEED", "'4294967296'"),
    ({"PGX_DEVICE": "bogus"}, [], "PGX_DEVICE", "'bogus'"),
    ({"PGX_PROFILE": "nope"}, [], "PGX_PROFILE", "'nope'"),
    ({"PGX_PLUGINS": "no_such_plugin_module"}, [], "PGX_PLUGINS", "'no_such_plugin_module'"),
    ({}, ["--seed", "-1"], "--seed", "-1"),
    ({}, ["--family", "hopper"], "--family", "'hopper'"),
]


@pytest.mark.parametrize("env, argv, names, value", CLI_CASES, ids=[c[2] + "=" + c[3] for c in CLI_CASES])
def test_cli_refuses_bad_inputs_in_one_line_without_a_traceback(tmp_path, env, argv, names, value):
    environ = {k: v for k, v in os.environ.items() if not k.startswith("PGX_")}
    environ.update({"PGX_CACHE": str(tmp_path / "cache"), "PGX_PROFILE": "smoke", **env})
    proc = subprocess.run([sys.executable, "-m", "pgx", "train", "--out", str(tmp_path / "out"), *argv],
                          check=False, capture_output=True, text=True, cwd=ROOT, env=environ, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("python -m pgx: error: ") and names in last and value in last, proc.stderr
    assert not (tmp_path / "out").exists() and not (tmp_path / "cache").exists()  # refused before any work


def test_the_long_profile_raises_the_truths_budgets_and_lowers_none():
    """``long`` (issue 23) is the default with more replicates, evaluation episodes and MT10 θ* steps:
    never a smaller budget than the default's, and every other field the default's."""
    long, default = PROFILES["long"], PROFILES["default"]
    for family in ("cartpole", "lunarlander", "highway", "navigation", "mt10"):
        a, b = long.for_family(family), default.for_family(family)
        assert a.truth_replicates >= b.truth_replicates and a.truth_episodes > b.truth_episodes
        assert a.meta_ppo == b.meta_ppo and a.finetune_ppo == b.finetune_ppo and a.num_subsets == b.num_subsets
    assert long.for_family("cartpole").truth_replicates == 4 * default.for_family("cartpole").truth_replicates
    sac_long, sac_default = long.for_family("mt10").metaworld.sac, default.for_family("mt10").metaworld.sac
    assert sac_long.total_steps > sac_default.total_steps and sac_long.batch_size == sac_default.batch_size
