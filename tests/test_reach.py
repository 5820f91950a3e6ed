"""Keys follow definitions, not modules (pgx.reach): what a function reaches through each way Python
names code — a module's attribute, a package's re-export, a base class, a decorator, a library
alias, a statement run at import — counts; its neighbours in the same modules do not."""

import textwrap

import pytest

from pgx.reach import reach

FILES = {
    "__init__.py": "",
    "entry.py": '''
        import numpy as np
        from pkg import tools
        from pkg.shapes import Child
        from pkg.deco import traced

        @traced
        def run():
            return tools.used() + Child().go() + np.sum([1])
    ''',
    "tools.py": '''
        from pkg.inner.core import core_value  # re-exported below

        LIMIT = 3

        def used():
            return LIMIT + core_value()

        def unused():
            return 0
    ''',
    "inner/__init__.py": "from pkg.inner.core import core_value\n",
    "inner/core.py": "def core_value():\n    return 5\n\n\ndef neighbour():\n    return 6\n",
    "shapes.py": '''
        class Base:
            def go(self):
                return 1

        class Child(Base):
            pass

        class Other:
            pass
    ''',
    "deco.py": '''
        import functools
        print("deco imported")

        def traced(fn):
            return functools.wraps(fn)(lambda: fn())
    ''',
}


@pytest.fixture
def pkg(tmp_path):
    root = tmp_path / "pkg"
    for name, text in FILES.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(textwrap.dedent(text))
    return root


def _digest(root):
    return reach([("pkg.entry", "run")], root).digest


def _edit(path, old, new):
    text = path.read_text()
    assert text.count(old) == 1, old
    path.write_text(text.replace(old, new))


@pytest.mark.parametrize("file, old, new", [
    ("tools.py", "LIMIT = 3", "LIMIT = 4"),                     # a constant a reached function loads
    ("tools.py", "return LIMIT +", "return LIMIT * 2 +"),        # a module's attribute (tools.used)
    ("inner/core.py", "return 5", "return 50"),                 # through a package's re-export
    ("shapes.py", "return 1", "return 10"),                     # a base class's method
    ("deco.py", "lambda: fn()", "lambda: fn() + 1"),             # a decorator
    ("deco.py", 'print("deco imported")', 'print("changed")'),  # what a reached module runs at import
    ("entry.py", "import numpy as np", "import math as np"),    # what a library alias names
])
def test_what_is_reached_counts(pkg, file, old, new):
    before = _digest(pkg)
    _edit(pkg / file, old, new)
    assert _digest(pkg) != before


@pytest.mark.parametrize("file, old, new", [
    ("tools.py", "return 0", "return 1"),                       # a neighbour in a reached module
    ("inner/core.py", "return 6", "return 60"),
    ("shapes.py", "class Other:\n    pass", "class Other:\n    x = 1"),
    ("tools.py", "def unused", "def added():\n    return 2\n\n\ndef unused"),  # a new function
    ("entry.py", "import numpy as np", "import numpy as np\nimport os"),       # an unused import
    ("tools.py", "LIMIT = 3", "LIMIT = 3  # a comment"),
])
def test_what_is_not_reached_does_not(pkg, file, old, new):
    before = _digest(pkg)
    _edit(pkg / file, old, new)
    assert _digest(pkg) == before


def test_a_trainer_key_leaves_out_the_other_trainers_branch(tmp_path):
    """``if profile.trainer == "sac": … else: …``: a key for PPO follows the else branch only, one for
    SAC the body only (``!=`` the other way round); without a trainer, both."""
    root = tmp_path / "pkg"
    root.mkdir()
    (root / "__init__.py").write_text("")
    (root / "entry.py").write_text(textwrap.dedent('''
        from pkg.sac import sac_train
        from pkg.ppo import ppo_train

        def run(profile):
            if profile.trainer == "sac":
                return sac_train()
            else:
                return ppo_train()

        def check(profile):
            if profile.for_family("x").trainer != "ppo":
                raise ValueError(sac_train())
            return ppo_train()
    '''))
    (root / "sac.py").write_text("def sac_train():\n    return 1\n")
    (root / "ppo.py").write_text("def ppo_train():\n    return 2\n")

    def names(entry, trainer):
        return {":".join(part.split(":")[:2]) for part in reach([("pkg.entry", entry)], root, trainer).parts
                if not part.split(":")[1].startswith(("<", "import"))}

    assert names("run", "ppo") == {"pkg.entry:run", "pkg.ppo:ppo_train"}
    assert names("run", "sac") == {"pkg.entry:run", "pkg.sac:sac_train"}
    assert names("run", None) == {"pkg.entry:run", "pkg.ppo:ppo_train", "pkg.sac:sac_train"}
    assert names("check", "ppo") == {"pkg.entry:check", "pkg.ppo:ppo_train"}
    assert names("check", "sac") == {"pkg.entry:check", "pkg.ppo:ppo_train", "pkg.sac:sac_train"}


def test_a_missing_definition_is_named(pkg):
    with pytest.raises(ValueError, match=r"pkg.tools defines no top-level 'nowhere'"):
        reach([("pkg.tools", "nowhere")], pkg)


def test_the_family_registry_is_data_and_each_family_its_own_factory():
    """Adding a family to the registry re-keys nothing: the registry is not followed; each family's
    key is what its factory reaches (checked on the real package)."""
    from pgx.keys import PACKAGE_ROOT

    reached = reach([("pgx.stages.truth", "ground_truth")], PACKAGE_ROOT)
    assert not any(part.startswith("pgx.envs:FAMILIES:") for part in reached.parts)
    assert not any(part.startswith(("pgx.envs.highway:", "pgx.envs.cartpole:")) for part in reached.parts)
    family = {part.split(":")[0] for part in reach([("pgx.envs.highway", "highway_family")], PACKAGE_ROOT).parts}
    assert {"pgx.envs.highway", "pgx.envs.highway_envpool", "pgx.envs.family"} <= family
    assert "pgx.envs.cartpole" not in family
