"""Every chapter runs as a notebook in the smoke profile, then the whole book builds with -W.

Stage results are cached in $PGX_CACHE, so the book build after the chapter tests reuses the
meta-policy and features instead of training again.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import jupytext
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = sorted((ROOT / "book").glob("[0-9][0-9]_*.py"))

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def _smoke_profile(monkeypatch):
    monkeypatch.setenv("PGX_PROFILE", os.environ.get("PGX_PROFILE", "smoke"))
    monkeypatch.setenv("TQDM_DISABLE", "1")
    monkeypatch.setenv("MPLBACKEND", "Agg")


def test_every_chapter_is_in_the_toc():
    toc = (ROOT / "_toc.yml").read_text()
    assert CHAPTERS, "no chapters found in book/"
    for chapter in CHAPTERS:
        assert f"book/{chapter.stem}" in toc, f"{chapter.name} is missing from _toc.yml"


@pytest.mark.parametrize("chapter", CHAPTERS, ids=[c.stem for c in CHAPTERS])
def test_chapter_executes(chapter):
    notebook = jupytext.read(chapter)
    NotebookClient(notebook, timeout=1800, kernel_name="python3", resources={"metadata": {"path": str(chapter.parent)}}).execute()
    errors = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs if o.output_type == "error"]
    assert not errors


def test_book_builds_without_warnings(tmp_path):
    build = tmp_path / "_build"
    cmd = [sys.executable, "-m", "jupyter_book", "build", str(ROOT), "--path-output", str(tmp_path), "-n", "-W", "--keep-going"]
    if shutil.which("jupyter-book"):
        cmd = ["jupyter-book", *cmd[3:]]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    assert (build / "html" / "index.html").exists()
    for chapter in CHAPTERS:
        assert (build / "html" / "book" / f"{chapter.stem}.html").exists()
