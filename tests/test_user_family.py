"""The README's "your own tasks" example, run as a user would: a plugin module registers a family
and the CLI runs the pipeline on it."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pgx.affinity import affinity_matrix

ROOT = Path(__file__).resolve().parents[1]
PLUGIN = '''
import gymnasium as gym
from pgx.envs import gym_family, register_family


def make_pendulum(g):
    return gym.make("Pendulum-v1", g=float(g[0]), max_episode_steps=50)


def pendulum_family():
    return gym_family("pendulum-gravity", make_pendulum,
                      source_params=[2.0, 3.0, 4.0, 5.0, 6.5, 8.0, 9.81, 12.0, 15.0, 20.0],
                      target_params=[2.5, 7.0, 11.0, 17.5], parameter="gravity (m/s²)")


register_family("pendulum-gravity", pendulum_family)
'''


@pytest.mark.slow
def test_plugin_family_runs_affinity_through_the_cli(tmp_path):
    (tmp_path / "my_tasks.py").write_text(PLUGIN)
    env = {**os.environ, "PGX_PLUGINS": "my_tasks", "PYTHONPATH": f"{tmp_path}{os.pathsep}{ROOT}",
           "PGX_CACHE": str(tmp_path / "cache"), "TQDM_DISABLE": "1"}
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "pgx", "affinity", "--family", "pendulum-gravity", "--profile",
                           "smoke", "--out", str(out)], env=env, cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads((out / "affinity.json").read_text())
    assert result["family"] == "pendulum-gravity" and len(result["affinity"]) == 10
    # eq. 5 of the stage's scores for the plugin's ten tasks, z-normalised (zero diagonal)
    affinity = np.asarray(result["affinity"])
    subsets = [tuple(s) for s in result["subsets"]]
    np.testing.assert_allclose(affinity, affinity_matrix(subsets, np.load(out / "affinity.npz")["scores"], 10),
                               rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(np.diag(affinity), 0.0, atol=1e-12)


def test_unknown_plugin_module_is_named(monkeypatch):
    from pgx.envs import load_plugins

    monkeypatch.setenv("PGX_PLUGINS", "no_such_module_xyz")
    with pytest.raises(ValueError, match="cannot import plugin module 'no_such_module_xyz'"):
        load_plugins()


def test_a_family_is_built_once_per_spec_and_anew_after_re_registration():
    """make_family returns the same frozen family for a spec (stages ask for it many times), and
    builds anew when another factory is registered under the name."""
    from pgx.envs import make_family, register_family

    assert make_family("cartpole") is make_family("cartpole")
    assert make_family("cartpole:observe_task=false") is not make_family("cartpole")
    calls = []

    def first():
        calls.append(1)
        return make_family("navigation").with_options(name="tmp_once")

    def second():
        calls.append(2)
        return make_family("navigation").with_options(name="tmp_once")

    from pgx.envs import FAMILIES

    try:
        register_family("tmp_once", first)
        make_family("tmp_once"), make_family("tmp_once")
        register_family("tmp_once", second, overwrite=True)
        make_family("tmp_once")
        assert calls == [1, 2]
    finally:
        FAMILIES.pop("tmp_once", None)
