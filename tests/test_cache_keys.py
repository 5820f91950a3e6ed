"""What an edit re-keys: a family module its own family's stages alone, the surrogate or the
affinity no training run, a trainer its own runs, a docstring or a comment nothing.

Versions are computed over a copy of the pgx sources (``code_version``'s ``root``), which the
tests edit; nothing is trained.
"""

import shutil
import textwrap

import pytest

from pgx.envs import FAMILIES
from pgx.keys import PACKAGE_ROOT, TRAINERS, family_version, key_version, trainer_version, versioned

STAGE_MODULES = ("pgx.stages.pipeline", "pgx.stages.truth", "pgx.stages.downstream", "pgx.stages.hessian_bound",
                 "pgx.stages.metaworld")
BUILTIN = ("cartpole", "lunarlander", "highway", "navigation", "mt10", "mt50")


@pytest.fixture
def package(tmp_path):
    """A copy of the pgx sources to edit."""
    root = tmp_path / "pgx"
    shutil.copytree(PACKAGE_ROOT, root, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return root


def _keys(root) -> dict[tuple[str, str], str]:
    """(stage module or trainer, family) → the code part of that stage's (or run's) key."""
    keys = {(module, family): key_version(versioned(module, root), family, root)
            for module in STAGE_MODULES for family in BUILTIN}
    keys.update({(trainer, family): trainer_version(trainer, family, root) for trainer in TRAINERS for family in BUILTIN})
    return keys


def _changed(before: dict, after: dict) -> set[tuple[str, str]]:
    return {k for k in before if before[k] != after[k]}


def _append(path, text):
    path.write_text(path.read_text() + textwrap.dedent(text))


def test_a_family_edit_rekeys_that_family_alone(package):
    before = _keys(package)
    _append(package / "envs" / "highway.py", "\n\ndef _probe():\n    return 1\n")
    changed = _changed(before, _keys(package))
    assert changed == {k for k in before if k[1] == "highway"}  # every stage and run of highway, nothing else


@pytest.mark.parametrize("module", ["surrogate.py", "affinity.py"])
def test_surrogate_or_affinity_edits_rekey_stages_but_no_training_run(package, module):
    before = _keys(package)
    _append(package / module, "\n\ndef _probe():\n    return 1\n")
    changed = _changed(before, _keys(package))
    assert not {k for k in changed if k[0] in TRAINERS}  # θ*, MAML, SAC and fine-tuning are reused
    assert {("pgx.stages.pipeline", f) for f in BUILTIN} <= changed  # while the stages do re-run


def test_docstring_and_comment_edits_change_no_key(package):
    before = _keys(package)
    for name, old, new in [("envs/highway.py", '"""', '"""A longer docstring. '),
                           ("algos/ppo.py", "\nimport ", "\n# a comment\nimport "),
                           ("surrogate.py", '"""', '"""Reworded. ')]:
        text = (package / name).read_text()
        assert old in text
        (package / name).write_text(text.replace(old, new, 1))
    assert _changed(before, _keys(package)) == set()


def test_a_trainer_edit_rekeys_its_runs(package):
    before = _keys(package)
    _append(package / "algos" / "ppo.py", "\n\ndef _probe():\n    return 1\n")
    changed = _changed(before, _keys(package))
    assert {("ppo", f) for f in BUILTIN} <= changed
    assert {("finetune", f) for f in BUILTIN} <= changed  # fine-tuning is PPO
    assert not {k for k in changed if k[0] == "maml"}  # MAML runs no PPO code


def test_keys_are_readable():
    version = key_version(versioned("pgx.stages.pipeline"), "highway:observe_task=false")
    stage, family, libraries = version.split(" + ")
    assert stage.startswith("pgx.stages.pipeline@") and family.startswith("pgx.envs.highway@")
    assert libraries.startswith("libraries@")


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
    """The checkpoint path ``stage`` (a cached stage, called uncached) hands the trainer ``target``."""

    class Captured(Exception):
        pass

    def fake_train(*_, **kwargs):
        raise Captured(kwargs.get("checkpoint_path", kwargs.get("checkpoint")))

    monkeypatch.setattr(target, fake_train)
    with pytest.raises(Captured) as caught:
        stage.__wrapped__(*args)
    return caught.value.args[0]


def test_stages_name_checkpoints_by_the_trainer_not_by_themselves(monkeypatch, tmp_path):
    """The stage's own code version (its last argument) does not reach the checkpoint's name."""
    from pgx.profiles import get_profile
    from pgx.stages import downstream, pipeline

    monkeypatch.setenv("PGX_CACHE", str(tmp_path))
    profile = get_profile("smoke").for_family("cartpole")
    budgets = downstream.transfer_profile("cartpole", profile)
    for target, stage, args in [
        ("pgx.stages.pipeline.train", pipeline._meta_train, ("cartpole", profile, 0)),
        ("pgx.algos.ppo.train", downstream._ppo_run, ("cartpole", profile, 0, (0, 1), 1000)),
        ("pgx.algos.maml.train", downstream._maml_run, ("cartpole", budgets.maml, 0, (0, 1))),
    ]:
        paths = {_captured_checkpoint(monkeypatch, target, stage, *args, version) for version in ("a", "b")}
        assert len(paths) == 1
        assert str(next(iter(paths))).startswith(str(tmp_path / "checkpoints"))


_HASHES = """
import joblib
from pgx.metaworld_profiles import get_metaworld_profile
from pgx.profiles import get_profile
from pgx.transfer_profiles import get_transfer_profile
for name in ("smoke", "default"):
    print(joblib.hash(get_profile(name).for_family("cartpole")),
          joblib.hash(get_profile(name).for_family("lunarlander")),
          joblib.hash(get_transfer_profile(name).for_family("cartpole")), joblib.hash(get_metaworld_profile(name)))
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
    _add_field(package / "transfer_profiles.py", "TransferProfile", "new_targets: int = option(3)")
    _add_field(package / "metaworld_profiles.py", "MetaWorldProfile", "new_width: int = option(1)")
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
    from pgx import keys

    before = {(m, f): key_version(versioned(m), f) for m in STAGE_MODULES for f in ("cartpole", "mt10")}
    runs = {t: trainer_version(t, "cartpole") for t in TRAINERS}
    other = tuple((name, "0.0+other" if name == "numpy" else v) for name, v in keys.library_versions())
    monkeypatch.setattr(keys, "library_versions", lambda: other)
    assert all(key_version(versioned(m), f) != k for (m, f), k in before.items())
    assert all(trainer_version(t, "cartpole") != v for t, v in runs.items())
    monkeypatch.undo()
    assert {(m, f): key_version(versioned(m), f) for m, f in before} == before  # nothing else moves them
