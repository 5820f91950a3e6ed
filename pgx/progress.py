"""What a person waiting on a long build sees: which stage is computing, for which family, seed and
profile, since when, and how long the same stage took the last time it was computed here.

Every cached stage reports when it starts and ends computing (never when it is loaded from the
cache) as one JSON line appended to the file named by ``$PGX_PROGRESS``, when that is set: the
book's fill step (``pgx.book_fill``) sets it and prints the lines as they come, whatever process or
notebook kernel computes the stage. Durations are kept per (stage, family, profile) beside the
stage cache, so a rebuild can say what to expect. This module only reports: nothing here can
change a result, so it is left out of every stage's code version (``pgx.keys``).
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

__all__ = ["PROGRESS_ENV", "describe", "stage_running", "expected_seconds", "format_seconds", "bars_wanted"]

PROGRESS_ENV = "PGX_PROGRESS"
"""Environment variable naming the JSON-lines file progress events are appended to."""


def describe(stage: str, arguments: Mapping[str, Any]) -> dict[str, Any]:
    """The fields a person reads: stage, family, seed and profile (where the stage takes them)."""
    family = next((arguments[k] for k in ("family_name", "family_spec", "family") if isinstance(arguments.get(k), str)),
                  None)
    profile = next((arguments[k] for k in ("profile", "budgets", "cfg") if arguments.get(k) is not None), None)
    return {"stage": stage.lstrip("_"), "family": family, "seed": arguments.get("seed"),
            "profile": getattr(profile, "name", profile if isinstance(profile, str) else None)}


def _timing_file(timings: Path, what: Mapping[str, Any]) -> Path:
    name = "--".join(str(what[k]) for k in ("stage", "family", "profile"))
    return timings / (re.sub(r"[^A-Za-z0-9_.=-]", "_", name) + ".json")


def expected_seconds(timings: Path, what: Mapping[str, Any]) -> float | None:
    """Seconds the same stage (family, profile) took when it was last computed here, or None."""
    try:
        return float(json.loads(_timing_file(timings, what).read_text())["seconds"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _emit(event: dict[str, Any]) -> None:
    path = os.environ.get(PROGRESS_ENV)
    if not path:
        return
    try:
        with open(path, "a", encoding="utf-8") as f:  # one short append per event: lines stay whole
            f.write(json.dumps(event, default=str) + "\n")
    except OSError:
        pass  # progress is a courtesy: a full disk or a removed file must not fail a stage


@contextmanager
def stage_running(stage: str, arguments: Mapping[str, Any], timings: Path) -> Iterator[None]:
    """Report ``stage`` starting, then ending with its duration, and remember the duration."""
    what = describe(stage, arguments)
    _emit({"event": "start", "time": time.time(), "expected": expected_seconds(timings, what), **what})
    start = time.perf_counter()
    yield
    seconds = time.perf_counter() - start
    _emit({"event": "done", "time": time.time(), "seconds": seconds, **what})
    try:
        timings.mkdir(parents=True, exist_ok=True)
        target = _timing_file(timings, what)
        tmp = target.with_name(f".{target.name}.{os.getpid()}")
        tmp.write_text(json.dumps({"seconds": seconds, "when": time.strftime("%Y-%m-%d %H:%M")}))
        os.replace(tmp, target)
    except OSError:
        pass


def bars_wanted() -> bool:
    """Whether progress bars should show: not where ``TQDM_DISABLE`` asks tqdm to hide them (CI,
    book builds). tqdm reads that variable only for calls that leave ``disable=`` out; a caller
    that must pass ``progress=`` to a trainer asks here, so the variable still holds in its worker
    processes."""
    return os.environ.get("TQDM_DISABLE", "").strip().lower() in ("", "0", "false", "no")


def format_seconds(seconds: float | None) -> str:
    """``"1h02m"``, ``"3m05s"``, ``"12s"``; ``"?"`` for None."""
    if seconds is None:
        return "?"
    seconds = int(round(seconds))
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    if seconds >= 60:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds}s"
