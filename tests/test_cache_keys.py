"""What an edit re-keys: a family module its own family's stages alone, the surrogate or the
affinity no training run, a trainer its own runs, a stage only what it reaches, a profile field only
the stages that read it, a docstring or a comment nothing (issue 22, item 2).

Versions are computed over a copy of the pgx sources (``stage_version``'s ``root``), which the
tests edit; where a whole key is needed (profile fields included) the copy is imported in a
subprocess. Nothing is trained.
"""

import json
import os
import shutil
import subprocess
import sys
import textwrap

import pytest

from pgx.envs import FAMILIES
from pgx.keys import PACKAGE_ROOT, TRAINERS, family_version, key_version, trainer_version, versioned
from pgx.profiles import get_profile
from pgx.stage_keys import stage_version

STAGES = {
    "pgx.stages.pipeline": ("meta_train", "theta_star_returns", "transfer_matrix", "gradient_features", "held_out_features",
                            "surrogate_fit", "estimate_affinity"),
    "pgx.stages.truth": ("ground_truth", "projection_ablation", "_cost_by_depth", "_subset_size_ablation",
                         "exact_truth", "rss_by_distance", "verdicts", "budget_curves", "theta_budget_curve"),
    "pgx.stages.hessian_bound": ("generalization",),
    "pgx.stages.fidelity": ("highway_fidelity",),
    "pgx.stages.downstream": ("_maml_run", "_ppo_run", "maml_transfer", "_source_distribution"),
    "pgx.stages.sac_run": ("_sac_run",),
}
BUILTIN = ("cartpole", "lunarlander", "highway", "navigation", "mt10", "mt50")
TRAINING = {("pgx.stages.pipeline", "meta_train"), ("pgx.stages.pipeline", "transfer_matrix"),
            ("pgx.stages.downstream", "_maml_run"), ("pgx.stages.downstream", "_ppo_run"),
            ("pgx.stages.sac_run", "_sac_run")}
"""Stages whose result is a training run (θ*, single-task policies, MAML, PPO and SAC baselines)."""


@pytest.fixture
def package(tmp_path):
    """A copy of the pgx sources to edit."""
    root = tmp_path / "pgx"
    shutil.copytree(PACKAGE_ROOT, root, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return root


def _keys(root) -> dict[tuple[str, str], str]:
    """(stage as "module:function", or trainer; family) → the code part of its key: the stage's
    code version with the family's, or the trainer's version for its runs."""
    families = {family: family_version(family, root) for family in BUILTIN}
    trainers = {family: get_profile("default").for_family(family).trainer for family in BUILTIN}
    codes = {(f"{module}:{fn}", trainer): stage_version(module, fn, root, trainer).code
             for module, functions in STAGES.items() for fn in functions for trainer in set(trainers.values())}
    keys = {(stage, family): f"{codes[stage, trainers[family]]} {families[family]}"
            for stage, _ in codes for family in BUILTIN}
    keys.update({(trainer, family): trainer_version(trainer, family, root) for trainer in TRAINERS for family in BUILTIN})
    return keys


def _changed(before: dict, after: dict) -> set[tuple[str, str]]:
    return {k for k in before if before[k] != after[k]}


def _append(path, text):
    path.write_text(path.read_text() + textwrap.dedent(text))


def _edit(path, old, new):
    text = path.read_text()
    assert text.count(old) == 1, old
    path.write_text(text.replace(old, new))


def _touch(path, function):
    """Insert a statement that runs at the top of top-level ``function``'s body (after its docstring):
    an edit that can change what the function does, as keys see it."""
    import ast

    text = path.read_text()
    node = next(n for n in ast.parse(text).body if isinstance(n, ast.FunctionDef) and n.name == function)
    first = node.body[1] if isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant) \
        else node.body[0]
    lines = text.splitlines(keepends=True)
    lines.insert(first.lineno - 1, " " * first.col_offset + "_probe = 0\n")
    path.write_text("".join(lines))


def test_a_family_edit_rekeys_that_family_alone(package):
    before = _keys(package)
    _touch(package / "envs" / "highway.py", "highway_family")
    changed = _changed(before, _keys(package))
    # Every stage and run of highway, nothing of another family — but the fidelity check, which
    # compares highway's two backends and runs on highway alone, calls highway's functions itself
    # (the factory is not among them).
    fidelity = {k for k in before if k[0].startswith("pgx.stages.fidelity:")}
    assert changed - fidelity == {k for k in before if k[1] == "highway"} - fidelity


def test_code_nothing_reaches_rekeys_nothing(package):
    """Keys follow definitions, not modules: a new function in a family's module, a trainer's, the
    surrogate's, or a new family in the registry (each family keyed by its own factory) re-keys no
    stage and no run."""
    before = _keys(package)
    for module in ("envs/highway.py", "envs/cartpole.py", "algos/ppo.py", "surrogate.py", "truth/finetune.py"):
        _append(package / module, "\n\ndef _probe():\n    return 1\n")
    _edit(package / "envs" / "__init__.py", '"cartpole": "pgx.envs.cartpole:cartpole_family",',
          '"cartpole": "pgx.envs.cartpole:cartpole_family",\n    "probe": "pgx.envs.cartpole:cartpole_family",')
    assert _changed(before, _keys(package)) == set()


@pytest.mark.parametrize("module, function, stage", [("surrogate.py", "fit_subsets", "surrogate_fit"),
                                                     ("affinity.py", "affinity_matrix", "estimate_affinity")])
def test_surrogate_or_affinity_edits_rekey_no_training(package, module, function, stage):
    before = _keys(package)
    _touch(package / module, function)
    changed = _changed(before, _keys(package))
    assert not {k for k in changed if k[0] in TRAINERS}  # θ*, MAML, SAC and fine-tuning runs are reused
    assert not {k for k in changed if tuple(k[0].split(":")) in TRAINING}  # and so are the stages that train
    assert {(f"pgx.stages.pipeline:{stage}", f) for f in BUILTIN} <= changed  # while the fit or the affinity re-runs


def test_an_edit_to_sacs_training_rekeys_no_ppo_family(package):
    """PPO and SAC families share the stages from θ* on, each keyed by the branches its own trainer
    takes: an edit to SAC's trainer re-runs Meta-World's stages and runs, no PPO family's."""
    before = _keys(package)
    _touch(package / "algos" / "sac.py", "train")
    # The stages (SAC's own run stage, which no PPO family calls, aside).
    changed = {k for k in _changed(before, _keys(package)) if k[0] not in TRAINERS and "sac_run" not in k[0]}
    assert {family for _, family in changed} == {"mt10", "mt50"}
    assert {("pgx.stages.pipeline:meta_train", "mt10"), ("pgx.stages.truth:ground_truth", "mt10")} <= changed


def test_an_evaluation_edit_rekeys_no_training_and_no_features(package):
    """θ*'s evaluation is a stage of its own: an edit to how a policy is evaluated re-runs θ*'s
    returns (and the truths, which evaluate their fine-tuned policies), not θ*, its features or the
    surrogate's fit, which consume θ* but evaluate nothing."""
    before = _keys(package)
    _touch(package / "evaluation.py", "evaluate_episodes")
    changed = {k[0] for k in _changed(before, _keys(package))}
    assert {"pgx.stages.pipeline:theta_star_returns", "pgx.stages.truth:ground_truth"} <= changed
    assert not changed & {"pgx.stages.pipeline:meta_train", "pgx.stages.pipeline:gradient_features",
                          "pgx.stages.pipeline:held_out_features", "pgx.stages.pipeline:surrogate_fit", *TRAINERS}


def test_a_stage_is_keyed_by_what_it_reaches_not_by_its_module(package):
    """The exact truth's solver re-keys the exact truth and what consumes it (the verdicts), not the
    ground truth beside it in the same module, nor anything upstream."""
    before = _keys(package)
    _touch(package / "truth" / "exact.py", "exact_fit_subsets")
    changed = {k[0] for k in _changed(before, _keys(package))}
    assert changed == {"pgx.stages.truth:exact_truth", "pgx.stages.truth:verdicts"}


def test_an_edit_to_one_stage_rekeys_it_and_its_consumers(package):
    before = _keys(package)
    _edit(package / "stages" / "pipeline.py", "held_out_features(family_name: str, profile: Profile, seed: int) -> FeatureResult:\n",
          "held_out_features(family_name: str, profile: Profile, seed: int) -> FeatureResult:\n    seed = seed + 0\n")
    changed = {k[0].split(":")[1] for k in _changed(before, _keys(package))}
    consumers = {"held_out_features", "estimate_affinity", "ground_truth", "projection_ablation",
                 "_subset_size_ablation", "exact_truth", "rss_by_distance", "verdicts", "generalization",
                 "maml_transfer", "budget_curves", "theta_budget_curve"}
    assert changed == consumers  # not θ*, the fit's features, the surrogate, Meta-World or the runs


def test_docstring_and_comment_edits_change_no_key(package):
    before = _keys(package)
    for name, old, new in [("envs/highway.py", '"""', '"""A longer docstring. '),
                           ("algos/ppo.py", "\nimport ", "\n# a comment\nimport "),
                           ("surrogate.py", '"""', '"""Reworded. '),
                           ("stages/truth.py", '"""Fine-tune θ* for real', '"""Fine-tune θ*, for real,'),
                           ("stages/pipeline.py", "def meta_train(", "def meta_train(  # a comment\n        ")]:
        text = (package / name).read_text()
        assert old in text
        (package / name).write_text(text.replace(old, new, 1))
    assert _changed(before, _keys(package)) == set()


def test_scheduling_edits_change_no_key(package):
    """compute_many decides which process computes a call, not its result: editing it re-runs
    nothing, and the stages called through it stay consumed (their reads and keys count)."""
    before = _keys(package)
    _edit(package / "stages" / "many.py", "    return [c() for c in calls]",
          "    results = [c() for c in calls]\n    return results")
    assert _changed(before, _keys(package)) == set()
    consumed = stage_version("pgx.stages.downstream", "maml_transfer", package).stages
    assert {"pgx.stages.downstream:_maml_run", "pgx.stages.downstream:_ppo_run"} <= set(consumed)


_STAGE_KEYS = """
import json, joblib
from pgx.profiles import get_profile
from pgx.stages import graph, pipeline, truth, hessian_bound
out = {}
for module in (pipeline, truth, hessian_bound):
    for name, stage in vars(module).items():
        if isinstance(stage, graph.Stage) and list(stage.signature.parameters)[:3] == ["family_name", "profile", "seed"]:
            extra = {"_cost_by_depth": ((2,), 1), "_subset_size_ablation": ((3,),)}.get(name, ())
            out[name] = joblib.hash(stage.key(stage.arguments("cartpole", get_profile("smoke"), 0, *extra)))
print(json.dumps(out))
"""


def _stage_keys(root) -> dict[str, str]:
    """Every (family, profile, seed) stage's whole key for smoke CartPole seed 0, from the copy."""
    env = {**os.environ, "PYTHONPATH": str(root.parent)}
    out = subprocess.run([sys.executable, "-c", _STAGE_KEYS], env=env, capture_output=True, text=True, cwd=root.parent)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.splitlines()[-1])


def test_a_profile_field_rekeys_only_the_stages_that_read_it(package):
    """A new field read by Table 1's stage alone re-keys that stage alone; changing a field that
    only fine-tuning reads re-keys the truth and what consumes it, and no θ*, feature or fit."""
    before = _stage_keys(package)
    assert len(before) >= 12
    _edit(package / "profiles.py", "    family: str | None = None\n", "    table1_extra: int = 3\n    family: str | None = None\n")
    _edit(package / "stages" / "truth.py", '@stage(reads=("taylor_subsets", "table1_distances"))',
          '@stage(reads=("taylor_subsets", "table1_distances", "table1_extra"))')
    after = _stage_keys(package)
    assert {k for k in before if before[k] != after[k]} == {"rss_by_distance"}
    _edit(package / "profiles.py", "truth_episodes=1,", "truth_episodes=2,")  # smoke's value
    changed = {k for k, v in _stage_keys(package).items() if after[k] != v}
    assert changed == {"ground_truth", "projection_ablation", "verdicts", "budget_curves", "theta_budget_curve"}


def test_a_stage_reading_an_undeclared_field_fails_naming_it(tmp_path, monkeypatch):
    from pgx.profiles import get_profile
    from pgx.stages import graph

    monkeypatch.setenv("PGX_CACHE", str(tmp_path))

    def peeks(family_name, profile, seed):
        return profile.eval_episodes + profile.num_groups

    stage = graph.stage(reads=("eval_episodes",))(peeks)
    with pytest.raises(graph.UndeclaredRead, match=r"read profile field 'num_groups'.*reads=\('eval_episodes',\)"):
        stage("cartpole", get_profile("smoke"), 0)
    assert not list(tmp_path.rglob("output.pkl"))  # nothing stored under a key that misses a field
    assert graph.stage(reads=("eval_episodes", "num_groups"))(peeks)("cartpole", get_profile("smoke"), 0) == 5
    with pytest.raises(ValueError, match=r"unknown profile fields \['eval_budget'\]"):
        graph.stage(reads=("eval_budget",))(peeks)


def test_a_trainer_edit_rekeys_its_runs(package):
    before = _keys(package)
    _touch(package / "algos" / "ppo.py", "ppo_loss")
    changed = _changed(before, _keys(package))
    assert {("ppo", f) for f in BUILTIN} <= changed
    assert {("finetune", f) for f in BUILTIN} <= changed  # fine-tuning is PPO
    assert not {k for k in changed if k[0] == "maml"}  # MAML runs no PPO code


def test_keys_are_readable(tmp_path, monkeypatch):
    from pgx.profiles import get_profile
    from pgx.stages import pipeline

    version = key_version(versioned("pgx.algos.ppo"), "highway:observe_task=false")
    trainer, family, libraries = version.split(" + ")
    assert trainer.startswith("pgx.algos.ppo@") and family.startswith("pgx.envs.highway@")
    assert libraries.startswith("libraries@")
    key = pipeline.surrogate_fit.key(pipeline.surrogate_fit.arguments("highway", get_profile("smoke"), 0))
    assert key["stage"] == "pgx.stages.pipeline:surrogate_fit" and key["family"].startswith("pgx.envs.highway@")
    # highway trains θ* with PPO: SAC's run is not among what its stages consume (a SAC family's are)
    assert key["consumes"] == ["pgx.stages.pipeline:gradient_features", "pgx.stages.pipeline:meta_train",
                               "pgx.stages.pipeline:surrogate_fit"]
    # highway trains θ* with PPO: SAC's budgets (``metaworld``) are neither keyed nor readable for it
    assert set(key["profile"]) == {"eval_episodes", "meta_ppo", "num_subsets", "per_task_baseline", "projection_dim",
                                   "steps_per_task", "subset_size", "surrogate", "trainer"}
    sac = pipeline.surrogate_fit.key(pipeline.surrogate_fit.arguments("mt10", get_profile("smoke"), 0))
    assert "metaworld" in sac["profile"] and "meta_ppo" not in sac["profile"]
    assert "pgx.stages.sac_run:_sac_run" in sac["consumes"]
    assert key["arguments"] == {"family_name": "highway", "seed": 0}


def test_registered_families_are_versioned_by_their_module(monkeypatch):
    from pgx.envs.cartpole import cartpole_family

    def probe_family(**options):
        return cartpole_family(**options)

    monkeypatch.setitem(FAMILIES, "probe_pgx", cartpole_family)  # a pgx module's callable: that module
    monkeypatch.setitem(FAMILIES, "probe_user", probe_family)  # defined outside pgx: its module's source
    assert family_version("probe_pgx") == family_version("cartpole")
    module, digest = family_version("probe_user").split("@")
    assert module == probe_family.__module__ and digest != "unversioned"


def _captured_checkpoint(monkeypatch, target: str, stage, *args):
    """The checkpoint path ``stage`` (called uncached) hands the trainer ``target``."""

    class Captured(Exception):
        pass

    def fake_train(*_, **kwargs):
        raise Captured(kwargs.get("checkpoint_path", kwargs.get("checkpoint")))

    monkeypatch.setattr(target, fake_train)
    with pytest.raises(Captured) as caught:
        stage.__wrapped__(*args)
    return caught.value.args[0]


def test_stages_name_checkpoints_by_the_trainer_not_by_themselves(monkeypatch, tmp_path):
    """A training stage's checkpoint is named by the trainer's code, config, family, seed and tasks
    (``keys.checkpoint_path``), not by the stage's key: a stage re-keyed by an edit resumes its run."""
    from dataclasses import replace

    from pgx.keys import checkpoint_path
    from pgx.profiles import get_profile
    from pgx.stages import downstream, pipeline

    monkeypatch.setenv("PGX_CACHE", str(tmp_path))
    profile = get_profile("smoke").for_family("cartpole")
    budgets = downstream.transfer_budgets("cartpole", profile)
    n = 10
    for target, stage, args, expected in [
        ("pgx.stages.pipeline.train", pipeline.meta_train, ("cartpole", profile, 0),
         checkpoint_path("ppo", "cartpole", profile.meta_ppo, 0, tuple(range(n)))),
        ("pgx.algos.ppo.train", downstream._ppo_run, ("cartpole", profile, 0, (0, 1), 1000),
         checkpoint_path("ppo", "cartpole", replace(profile.meta_ppo, total_timesteps=1000), 0, (0, 1))),
        ("pgx.algos.maml.train", downstream._maml_run, ("cartpole", budgets.maml, 0, (0, 1)),
         checkpoint_path("maml", "cartpole", budgets.maml, 0, (0, 1))),
    ]:
        path = _captured_checkpoint(monkeypatch, target, stage, *args)
        assert path == expected and str(path).startswith(str(tmp_path / "checkpoints"))


_HASHES = """
import joblib
from pgx.profiles import get_profile
for name in ("smoke", "default"):
    print(joblib.hash(get_profile(name).for_family("cartpole")),
          joblib.hash(get_profile(name).for_family("lunarlander")),
          joblib.hash(get_profile(name).transfer), joblib.hash(get_profile(name).for_family("mt10").metaworld))
"""


def _profile_hashes(root) -> str:
    import subprocess
    import sys

    env = {**__import__("os").environ, "PYTHONPATH": str(root.parent)}
    out = subprocess.run([sys.executable, "-c", _HASHES], env=env, capture_output=True, text=True, cwd=root.parent)
    assert out.returncode == 0, out.stderr
    return out.stdout


def _add_field(path, cls: str, line: str) -> None:
    """Add a field as the last field of dataclass ``cls`` (before its first method)."""
    text = path.read_text()
    if "from pgx.checks import option" not in text:
        text = text.replace("from __future__ import annotations\n",
                            "from __future__ import annotations\n\nfrom pgx.checks import option\n", 1)
    start = text.index(f"class {cls}(")
    method = text.index("\n    def ", start)
    path.write_text(text[:method] + f"\n    {line}\n" + text[method:])


def test_adding_an_option_to_a_profile_or_config_rekeys_no_stage(package):
    """Profiles and configs pickle their ``option`` fields only where set (``checks.KeyedByChanges``):
    a new option leaves every profile's hash — the value part of every stage key — as it was, so
    it re-runs nothing until a profile sets it; setting it changes the hash; and a plain field
    added with a default does change every hash (what keeps a changed default from serving old
    results). The checks can fail."""
    before = _profile_hashes(package)
    assert before.count("\n") == 2
    _add_field(package / "profiles.py", "Profile", "new_budget: int = option(7)")
    _add_field(package / "algos" / "ppo.py", "PPOConfig", "new_option: bool = option(False)")
    _add_field(package / "transfer_budgets.py", "TransferBudgets", "new_targets: int = option(3)")
    _add_field(package / "metaworld_budgets.py", "MetaWorldBudgets", "new_width: int = option(1)")
    assert _profile_hashes(package) == before
    text = (package / "profiles.py").read_text()
    (package / "profiles.py").write_text(text.replace('"default": Profile(\n        name="default",',
                                                       '"default": Profile(\n        name="default", new_budget=8,'))
    after = _profile_hashes(package).splitlines()
    assert after[0] == before.splitlines()[0] and after[1] != before.splitlines()[1]  # default's changed, smoke's not
    _add_field(package / "profiles.py", "Profile", "plain_budget: int = 2")
    plain = [line.split()[:2] for line in _profile_hashes(package).splitlines()]  # the two Profile hashes per line
    assert all(a != b for new, old in zip(plain, (line.split()[:2] for line in after)) for a, b in zip(new, old))


def test_a_library_version_in_the_keys_rekeys_what_it_touches(monkeypatch):
    """An upgrade of a library that can change a result (numpy here) changes every stage's and
    every training run's key: what was computed with the old one is computed again."""
    import joblib

    from pgx import keys
    from pgx.profiles import get_profile
    from pgx.stages import graph, pipeline, truth

    stages = [s for m in (pipeline, truth) for s in vars(m).values() if isinstance(s, graph.Stage)
              and list(s.signature.parameters) == ["family_name", "profile", "seed"]]
    smoke = get_profile("smoke")

    def stage_keys():
        return {(s.name, f): joblib.hash(s.key(s.arguments(f, smoke, 0))) for s in stages for f in ("cartpole", "navigation")}

    before = stage_keys()
    runs = {t: trainer_version(t, "cartpole") for t in TRAINERS}
    other = tuple((name, "0.0+other" if name == "numpy" else v) for name, v in keys.library_versions())
    monkeypatch.setattr(keys, "library_versions", lambda: other)
    after = stage_keys()
    assert len(before) >= 20 and all(after[k] != v for k, v in before.items())
    assert all(trainer_version(t, "cartpole") != v for t, v in runs.items())
    monkeypatch.undo()
    assert stage_keys() == before  # nothing else moves them


def _affinity_run(root, tmp_path) -> set[str]:
    """``python -m pgx affinity --family navigation`` (smoke) from the copy ``root``: the stages it computed."""
    events = tmp_path / "events.jsonl"
    events.unlink(missing_ok=True)
    env = {**os.environ, "PYTHONPATH": str(root.parent), "PGX_CACHE": str(tmp_path / "cache"), "PGX_PROFILE": "smoke",
           "PGX_PROGRESS": str(events), "TQDM_DISABLE": "1", "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-m", "pgx", "affinity", "--family", "navigation", "--out", str(tmp_path / "out")],
                         env=env, capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    lines = events.read_text().splitlines() if events.exists() else []
    return {e["stage"] for e in map(json.loads, lines) if e["event"] == "start"}


def test_the_cli_after_another_familys_edit_recomputes_nothing(package, tmp_path):
    """Issue 22's 'done when', as a user meets it: fill the cache for navigation's affinity, edit
    highway's module, run the same command — nothing is recomputed; edit the surrogate — the fit and
    the affinity are, and θ* and its features are not."""
    assert _affinity_run(package, tmp_path) == {"meta_train", "gradient_features", "held_out_features", "surrogate_fit",
                                                "estimate_affinity"}
    _touch(package / "envs" / "highway.py", "highway_family")
    assert _affinity_run(package, tmp_path) == set()
    _touch(package / "surrogate.py", "fit_subsets")
    assert _affinity_run(package, tmp_path) == {"surrogate_fit", "estimate_affinity"}


def test_one_trainers_budgets_rekey_no_family_of_the_other():
    """PPO and SAC families run the same stages; a stage reads ``meta_ppo`` and ``metaworld`` both,
    but each family's key holds only its own trainer's: SAC's budgets re-key MT10's stages and no
    PPO family's, PPO's the reverse."""
    import joblib
    from dataclasses import replace

    from pgx.profiles import get_profile
    from pgx.stages import pipeline

    smoke = get_profile("smoke")
    more_sac = replace(smoke, metaworld=replace(smoke.metaworld, hidden=32),
                       family_budgets={**smoke.family_budgets, "mt10": {**smoke.family_budgets["mt10"],
                                                                         "metaworld": replace(smoke.metaworld, hidden=32)}})
    more_ppo = replace(smoke, meta_ppo=replace(smoke.meta_ppo, learning_rate=5e-4))

    def key(family, profile):
        stage = pipeline.surrogate_fit
        return joblib.hash(stage.key(stage.arguments(family, profile, 0)))

    assert key("cartpole", more_sac) == key("cartpole", smoke) and key("mt10", more_sac) != key("mt10", smoke)
    assert key("cartpole", more_ppo) != key("cartpole", smoke) and key("mt10", more_ppo) == key("mt10", smoke)


def test_every_stage_declares_the_profile_fields_its_code_reads():
    """Read statically: every ``profile.<field>`` in the functions a stage reaches is among the
    fields it (or a stage it consumes) declares — the profile view refuses an undeclared read at
    run time; this finds one before any stage runs, in branches a test never takes."""
    import sys

    import pgx.stages.downstream  # noqa: F401 (every stage module, imported: its stages declared)
    import pgx.stages.metaworld  # noqa: F401
    from pgx.stages.graph import PROFILE_FIELDS, Stage

    stages = {s.name: s for name, module in sys.modules.items() if name.startswith("pgx.stages.")
              for s in vars(module).values() if isinstance(s, Stage)}
    assert len(stages) >= 20
    missing = {name: sorted((s.version.profile_reads & PROFILE_FIELDS) - s.reads) for name, s in stages.items()}
    assert not {name: fields for name, fields in missing.items() if fields}
    assert stages["pgx.stages.truth:ground_truth"].version.profile_reads >= {"finetune_ppo", "truth_replicates"}
