"""The keys' one blind spot, checked at run time: every pgx function a real stage executes must be
among the definitions its key reaches (its own code, its family's factory, its trainers' entry
points) — else an edit to it would serve stale results. Keys are read from the sources
(:mod:`pgx.reach`); here the stages run, from an empty cache, with every Python call recorded.
"""

import inspect
import sys
from pathlib import Path

import joblib
import pytest

from pgx.keys import PACKAGE_ROOT, TRAINERS
from pgx.reach import KEYING_MODULES, REPORTING_MODULES, VALUE_MODULES, reach

MACHINERY = ("pgx.stages.graph", "pgx.stages.cache", "pgx.stages.many", "pgx.checks")
"""Where a stage's result is stored, loaded and scheduled, and where its profile and configs are
validated and resolved per family (``pgx.checks``, run by the profile's own classes): code that runs
around every stage and cannot change what it computes — the values it yields are keyed as values."""


def _module_of(filename: str) -> str | None:
    path = Path(filename)
    if not path.is_absolute():  # <frozen ...>, <string> (a dataclass's generated methods)
        return None
    try:
        parts = path.resolve().relative_to(PACKAGE_ROOT.resolve()).with_suffix("").parts
    except ValueError:
        return None
    parts = (PACKAGE_ROOT.name,) + parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _executed(call) -> set[tuple[str, str]]:
    """(pgx module, top-level definition) of every Python function ``call()`` runs."""
    seen: set[tuple[str, str]] = set()
    codes: set = set()

    def hook(frame, event, arg):
        if event == "call" and frame.f_code not in codes:
            code = frame.f_code
            codes.add(code)
            if not code.co_flags & inspect.CO_OPTIMIZED:  # a module's or a class's body, run at import
                return
            module = _module_of(code.co_filename)
            if module is not None:
                seen.add((module, code.co_qualname.split(".")[0]))

    sys.setprofile(hook)
    try:
        with joblib.parallel_config(backend="sequential"):  # fine-tuning in this process, where the hook sees it
            call()
    finally:
        sys.setprofile(None)
    return seen


def _reached(entries, trainer: str | None = None) -> set[tuple[str, str]]:
    found = set()
    for part in reach(entries, PACKAGE_ROOT, trainer).parts:
        module, name = part.split(":")[:2]
        found.add((module, name))
    return found


def _unkeyed(executed: set[tuple[str, str]], entries, trainer: str | None = None) -> list[tuple[str, str]]:
    """What ran but no key reaches (the machinery and the skipped modules aside); with ``trainer``,
    the key of that trainer's families (the other trainer's branches left out)."""
    reached = _reached(entries, trainer)
    skipped = set(MACHINERY + REPORTING_MODULES + VALUE_MODULES + KEYING_MODULES)
    return sorted((m, name) for m, name in executed
                  if m not in skipped and not name.startswith("<") and (m, name) not in reached)


def _stage_entries(module: str, function: str, family: str) -> list[tuple[str, str]]:
    """What a stage call's key covers: the stage, its family's factory and builder, every trainer."""
    from pgx.keys import family_entry

    entries = [(module, function)] + [tuple(e.split(":")) for e in family_entry(family).split("+")]
    return entries + [tuple(entry.split(":")) for entry in TRAINERS.values() if ":" in entry]


@pytest.mark.parametrize("family", ["navigation", "cartpole"])
def test_what_a_stage_runs_is_what_its_key_reaches(family, isolated_cache, monkeypatch):
    from pgx.profiles import get_profile
    from pgx.stages import truth

    monkeypatch.setenv("PGX_PROFILE", "smoke")
    profile = get_profile("smoke")
    executed = _executed(lambda: truth.ground_truth(family, profile, 0))
    missing = _unkeyed(executed, _stage_entries("pgx.stages.truth", "ground_truth", family), trainer="ppo")
    assert not missing, f"executed but not keyed: {missing}"
    assert ("pgx.truth.finetune", "_finetune_batch") in executed and ("pgx.algos.ppo_batch", "train_many") in executed


def test_what_a_sac_familys_stage_runs_is_what_its_key_reaches(isolated_cache, monkeypatch):
    """A SAC family's stages are keyed without PPO's branches: its affinity (θ* by SAC, SAC's
    features) must run nothing that key leaves out."""
    from pgx.profiles import get_profile
    from pgx.stages import pipeline

    monkeypatch.setenv("PGX_PROFILE", "smoke")
    family = "mt10"
    executed = _executed(lambda: pipeline.estimate_affinity(family, get_profile("smoke"), 0))
    missing = _unkeyed(executed, _stage_entries("pgx.stages.pipeline", "estimate_affinity", family), trainer="sac")
    assert not missing, f"executed but not keyed: {missing}"
    assert ("pgx.sac_features", "sac_samples") in executed


@pytest.mark.parametrize("family", ["navigation", "cartpole:observe_task=false"])
def test_what_a_training_run_runs_is_what_its_checkpoint_key_reaches(family, monkeypatch):
    """A checkpoint is keyed by its trainer's code and its family's (``keys.trainer_version``), not
    by the stage that asked for it: building the family from its spec and training on it must run
    nothing else of pgx."""
    from dataclasses import replace

    from pgx import envs
    from pgx.algos.ppo import train
    from pgx.keys import family_entry
    from pgx.profiles import get_profile

    monkeypatch.setattr(envs, "_BUILT", {})  # built anew, under the hook
    cfg = replace(get_profile("smoke").for_family(family).meta_ppo, total_timesteps=256)

    def run():
        built = envs.make_family(family)
        train(built, range(built.n_tasks), cfg, 0, progress=False)

    executed = _executed(run)
    entries = [tuple(TRAINERS["ppo"].split(":"))] + [tuple(e.split(":")) for e in family_entry(family).split("+")]
    missing = _unkeyed(executed, entries)
    assert not missing, f"executed but not keyed: {missing}"
    assert ("pgx.envs", "_build_family") in executed and ("pgx.algos.ppo", "train") in executed
