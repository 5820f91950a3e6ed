"""Fill the stage cache by executing the book's chapters, with progress in the terminal.

Why a step of its own: Jupyter Book runs each cell under a timeout (``_config.yml``: 3,600 s), and
on an empty cache one cell of chapter 07 computes every family's ground truth for three seeds,
hours of training. Here each chapter runs as a notebook with no cell timeout, in the book's
order, so every stage it calls is computed and cached; the render that follows (``jupyter-book
build``) then loads them. While a chapter runs, each stage it computes is printed as it starts and
ends (stage, family, seed, elapsed, and the time it took the last time it was computed here), and
a line every minute says what is still computing. Interrupted, it resumes: finished stages are in
the cache (and the ground truth's finished fine-tuning runs in its store).

``python -m pgx.book_fill [CHAPTER ...]`` (chapter stems or numbers, default: every chapter in
``_toc.yml`` that computes stages). Each chapter's wall time is printed and written to
``_build/fill_times.json``; the exit status is 1 if a chapter failed (its error is printed).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

from pgx.progress import PROGRESS_ENV, format_seconds

__all__ = ["main", "chapters", "ROOT"]

ROOT = Path(__file__).resolve().parents[1]
"""The repository: ``book/``, ``_toc.yml`` and ``_build/`` live here."""

RENDER_ONLY = ("01_introduction", "12_speed")
"""Chapters that compute no cached stage (the introduction; the benchmarks, timed in the render
itself): filling runs them for nothing, so they are left to the render."""


def chapters(root: Path = ROOT) -> list[Path]:
    """The chapters in the book's order (``_toc.yml``) that compute cached stages."""
    import yaml

    toc = yaml.safe_load((root / "_toc.yml").read_text())
    stems = [toc["root"]] + [entry["file"] for entry in toc.get("chapters", [])]
    return [root / f"{stem}.py" for stem in stems if Path(stem).name not in RENDER_ONLY]


def _select(requested: list[str], available: list[Path]) -> list[Path]:
    if not requested:
        return available
    chosen = []
    for name in requested:
        match = [p for p in available if p.stem == name or p.stem.split("_")[0] == name.zfill(2)]
        if not match:
            raise SystemExit(f"book_fill: no chapter {name!r} to fill; choose from {[p.stem for p in available]}")
        chosen += match
    return chosen


class _Watcher(threading.Thread):
    """Prints progress events as a notebook's kernel appends them, and a heartbeat every minute."""

    def __init__(self, path: Path, chapter: str, out=sys.stdout, heartbeat: float = 60.0):
        super().__init__(daemon=True)
        self.path, self.chapter, self.out, self.heartbeat = path, chapter, out, heartbeat
        self.stop = threading.Event()
        self.start_time = time.time()
        self.running: dict[tuple, dict] = {}

    def _say(self, text: str) -> None:
        print(f"[{self.chapter} +{format_seconds(time.time() - self.start_time)}] {text}", file=self.out, flush=True)

    @staticmethod
    def _label(event: dict) -> str:
        parts = [event["stage"]] + [f"{k} {event[k]}" if k == "seed" else str(event[k])
                                    for k in ("family", "seed") if event.get(k) is not None]
        return " ".join(parts)

    def run(self) -> None:
        offset, last_beat = 0, time.time()
        while not self.stop.is_set():
            try:
                with open(self.path, encoding="utf-8") as f:
                    f.seek(offset)
                    lines = f.readlines()
                    offset = f.tell()
            except OSError:
                lines = []
            for line in lines:
                if not line.endswith("\n"):
                    offset -= len(line.encode())  # half-written: read it again next time
                    break
                self._handle(json.loads(line))
            if self.running and time.time() - last_beat >= self.heartbeat:
                last_beat = time.time()
                for event in self.running.values():
                    if time.time() - event["time"] < self.heartbeat / 2:
                        continue
                    self._say(f"computing {self._label(event)}: {format_seconds(time.time() - event['time'])} so far, "
                              f"expected ~{format_seconds(event.get('expected'))}")
            self.stop.wait(1.0)

    def _handle(self, event: dict) -> None:
        key = (event["stage"], event.get("family"), event.get("seed"))
        if event["event"] == "start":
            self.running[key] = event
            expected = event.get("expected")
            self._say(f"computing {self._label(event)} (profile {event.get('profile')}; "
                      + (f"took {format_seconds(expected)} last time)" if expected else "first time here)"))
        else:
            self.running.pop(key, None)
            self._say(f"done {self._label(event)} in {format_seconds(event['seconds'])}")


def _run_chapter(path: Path, out=sys.stdout) -> tuple[float, str | None]:
    """Execute one chapter; its seconds and its error (None if it ran)."""
    import jupytext
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    with tempfile.NamedTemporaryFile(prefix="pgx-progress-", suffix=".jsonl", delete=False) as f:
        events = Path(f.name)
    os.environ[PROGRESS_ENV] = str(events)  # the kernel inherits it
    watcher = _Watcher(events, path.stem.split("_")[0], out)
    watcher.start()
    start = time.perf_counter()
    error = None
    try:
        notebook = jupytext.read(path)
        NotebookClient(notebook, timeout=None, kernel_name="python3",
                       resources={"metadata": {"path": str(path.parent)}}).execute()
    except CellExecutionError as e:
        error = str(e)
    finally:
        time.sleep(1.5)  # let the watcher print the last events
        watcher.stop.set()
        watcher.join()
        events.unlink(missing_ok=True)
        os.environ.pop(PROGRESS_ENV, None)
    return time.perf_counter() - start, error


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pgx.book_fill", description=__doc__.split("\n\n")[0])
    parser.add_argument("chapters", nargs="*", help="chapter stems or numbers (default: all that compute stages)")
    args = parser.parse_args(argv)
    selected = _select(args.chapters, chapters())
    profile = os.environ.get("PGX_PROFILE", "default")
    print(f"filling the stage cache ({os.environ.get('PGX_CACHE', '~/.cache/pgx')}) for {len(selected)} chapters, "
          f"profile {profile}, families {os.environ.get('PGX_FAMILIES') or 'all four'}", flush=True)
    times, failed = {}, []
    total = time.perf_counter()
    for path in selected:
        print(f"== {path.stem}", flush=True)
        seconds, error = _run_chapter(path)
        times[path.stem] = round(seconds, 1)
        print(f"== {path.stem}: {format_seconds(seconds)}" + (" FAILED" if error else ""), flush=True)
        if error:
            print(error[-3000:], file=sys.stderr, flush=True)
            failed.append(path.stem)
    times["total"] = round(time.perf_counter() - total, 1)
    build = ROOT / "_build"
    build.mkdir(exist_ok=True)
    (build / "fill_times.json").write_text(json.dumps({"profile": profile, "seconds": times}, indent=1))
    print("chapter wall times: " + ", ".join(f"{k} {format_seconds(v)}" for k, v in times.items()), flush=True)
    if failed:
        print(f"book_fill: {len(failed)} chapter(s) failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
