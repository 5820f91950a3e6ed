"""The stage cache's code versions: an edit that can change a stage's result re-keys it; a
docstring, a comment, a module the stage never imports or a definition it never reaches does not."""

import textwrap

import pytest

from pgx.keys import PACKAGE_ROOT, code_version

FILES = {
    "__init__.py": '"""The package."""\nVERSION = 1\n',
    "stage.py": '''
        """A stage module."""
        from .helper import helper  # relative import

        def run():
            """Runs."""
            from pkg.lazy import lazy  # imported inside a function
            from pkg.registry import make
            return helper() + lazy() + make()
    ''',
    "helper.py": 'def helper():\n    return 1\n',
    "lazy.py": 'def lazy():\n    return 2\n',
    "unrelated.py": 'def unrelated():\n    return 3\n',
    "registry/__init__.py": '''
        import importlib
        FACTORIES = {"d": "pkg.registry.family_d:make_d"}  # imported by name, lazily

        def make():
            module, _, function = FACTORIES["d"].partition(":")
            return getattr(importlib.import_module(module), function)()
    ''',
    "registry/family_d.py": 'def make_d():\n    return 4\n',
}


@pytest.fixture
def package(tmp_path):
    root = tmp_path / "pkg"
    for name, text in FILES.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(textwrap.dedent(text))
    return root


def _edit(path, old, new):
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))


@pytest.mark.parametrize("file, old, new", [
    ("stage.py", '"""Runs."""', '"""Runs, and says so at length."""'),
    ("stage.py", "# imported inside a function", "# another comment"),
    ("helper.py", "return 1", "return  1  # spacing and a comment"),
    ("unrelated.py", "return 3", "return 30"),
    # Named only in a string, as the family registry names its families: a stage's key carries
    # the family's version on its own (pgx.keys.family_version), not every family's.
    ("registry/family_d.py", "return 4", "return 40"),
    # Keys follow definitions, not modules: what no reached function loads does not count.
    ("__init__.py", "VERSION = 1", "VERSION = 2"),
    ("helper.py", "def helper", "def added():\n    return 5\n\n\ndef helper"),
    ("registry/__init__.py", "import importlib", "import importlib, os"),
])
def test_edits_that_cannot_change_a_result_keep_the_version(package, file, old, new):
    before = code_version("pkg.stage", package)
    _edit(package / file, old, new)
    assert code_version("pkg.stage", package) == before


@pytest.mark.parametrize("file, old, new", [
    ("stage.py", "+ make()", "- make()"),
    ("helper.py", "return 1", "return 10"),               # relative import
    ("lazy.py", "return 2", "return 20"),                 # import inside a function
    ("registry/__init__.py", "import importlib", "import os as importlib"),  # a library a reached function uses
    ("__init__.py", "VERSION = 1", "VERSION = 2\nprint(VERSION)"),  # what the package above runs at import
])
def test_edits_to_code_the_stage_runs_change_the_version(package, file, old, new):
    before = code_version("pkg.stage", package)
    _edit(package / file, old, new)
    assert code_version("pkg.stage", package) != before


def test_pgx_stage_versions_cover_what_they_call_and_not_the_presentation():
    from pgx.reach import reach
    from pgx.stage_keys import stage_version

    trainer = {part.split(":")[0] for part in reach([("pgx.algos.ppo", "train")], PACKAGE_ROOT).parts}
    assert {"pgx.nets.policies", "pgx.algos.rollouts", "pgx.envs.autoreset"} <= trainer and "pgx.surrogate" not in trainer
    assert not {"pgx.envs.cartpole", "pgx.envs.highway", "pgx.envs.navigation"} & trainer  # via family_version only
    assert not {"pgx.keys", "pgx.reach", "pgx.progress"} & trainer  # naming, storing, reporting: no result changes
    verdicts = stage_version("pgx.stages.truth", "verdicts")
    assert {"pgx.stages.truth:ground_truth", "pgx.stages.truth:exact_truth", "pgx.stages.pipeline:meta_train",
            "pgx.stages.pipeline:estimate_affinity"} <= set(verdicts.stages)
    assert "pgx.stages.truth:rss_by_distance" not in verdicts.stages
    assert stage_version("pgx.stages.pipeline", "meta_train").stages == ("pgx.stages.pipeline:meta_train",
                                                                         "pgx.stages.sac_run:_sac_run")


def test_stages_pin_their_versions_at_import():
    """A long run must not change the keys it writes under when pgx is edited under it: each
    stage's version is read from the sources when its module is imported."""
    from pgx.stages import graph, hessian_bound, pipeline, truth

    for module in (pipeline, truth, hessian_bound):
        stages_here = [f for f in vars(module).values() if isinstance(f, graph.Stage)]
        assert stages_here
        assert all(f.version.code and f.version.stages for f in stages_here)
