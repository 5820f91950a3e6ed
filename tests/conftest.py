import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="no CUDA GPU on this machine")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def book_build(tmp_path_factory):
    """Build the whole book once per test session (smoke profile unless PGX_PROFILE says otherwise).

    tests/test_book.py checks that the build is clean; tests/test_site.py opens the same HTML in a
    browser. Chapters are executed by the build; their stage results come from $PGX_CACHE, which
    test_book.py's chapter tests have filled by the time the first test asks for this fixture.
    """
    out = tmp_path_factory.mktemp("book")
    env = {**os.environ, "PGX_PROFILE": os.environ.get("PGX_PROFILE", "smoke"), "TQDM_DISABLE": "1"}
    # The kernel must use its inline backend, or figures are drawn but never shown.
    env.pop("MPLBACKEND", None)
    cmd = [sys.executable, "-m", "jupyter_book", "build", str(ROOT), "--path-output", str(out), "-n", "-W", "--keep-going"]
    if shutil.which("jupyter-book"):
        cmd = ["jupyter-book", *cmd[3:]]
    proc = subprocess.run(cmd, check=False, capture_output=True, text=True, cwd=ROOT, env=env)
    return SimpleNamespace(returncode=proc.returncode, stdout=proc.stdout, stderr=proc.stderr, html=out / "_build" / "html")


@pytest.fixture
def isolated_cache(tmp_path, monkeypatch):
    """Stages cache into a fresh directory for one test (``$PGX_CACHE`` is read at each call)."""
    monkeypatch.setenv("PGX_CACHE", str(tmp_path / "cache"))
    yield tmp_path
