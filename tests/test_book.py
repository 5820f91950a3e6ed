"""Every chapter runs as a notebook in the smoke profile, then the whole book builds with -W.

Stage results are cached in $PGX_CACHE, so the book build after the chapter tests reuses the
meta-policy and features instead of training again.
"""

import os
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
    # The kernel must use its inline backend, or figures are drawn but never shown.
    monkeypatch.delenv("MPLBACKEND", raising=False)


def test_every_chapter_is_in_the_toc():
    toc = (ROOT / "_toc.yml").read_text()
    assert CHAPTERS, "no chapters found in book/"
    for chapter in CHAPTERS:
        assert f"book/{chapter.stem}" in toc, f"{chapter.name} is missing from _toc.yml"


@pytest.mark.parametrize("chapter", CHAPTERS, ids=[c.stem for c in CHAPTERS])
def test_chapter_executes(chapter):
    notebook = jupytext.read(chapter)
    NotebookClient(notebook, timeout=1800, kernel_name="python3", resources={"metadata": {"path": str(chapter.parent)}}).execute()
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    # Every chapter shows at least one figure.
    assert any("image/png" in o.get("data", {}) for o in outputs), f"{chapter.name} displayed no figure"


def test_book_builds_without_warnings(book_build):
    # The build itself is the session fixture in conftest.py, shared with tests/test_site.py.
    assert book_build.returncode == 0, book_build.stdout[-4000:] + book_build.stderr[-4000:]
    assert (book_build.html / "index.html").exists()
    for chapter in CHAPTERS:
        page = book_build.html / "book" / f"{chapter.stem}.html"
        assert "<img" in page.read_text(), f"{page.name} has no figure"
