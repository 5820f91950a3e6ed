"""What a person waiting on a build sees: stage start/end events from the stage cache, remembered
durations, the fill step's printed lines, and the chapters it fills."""

import io
import json
import time
from pathlib import Path

import pytest

from pgx import progress
from pgx.book_fill import ROOT, _Watcher, _select, chapters
from pgx.profiles import Profile, get_profile
from pgx.stages import graph
from pgx.keys import PACKAGE_ROOT
from pgx.reach import reach
from pgx.stage_keys import stage_version

CALLS: list[int] = []


def _stage(family_name: str, profile: Profile, seed: int) -> int:
    CALLS.append(seed)
    return seed * 2


def test_a_computed_stage_reports_start_and_end_and_a_loaded_one_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("PGX_CACHE", str(tmp_path))
    events = tmp_path / "events.jsonl"
    monkeypatch.setenv(progress.PROGRESS_ENV, str(events))
    stage = graph.stage()(_stage)
    smoke = get_profile("smoke")
    CALLS.clear()

    assert stage("navigation:goals=partial", smoke, 3) == 6
    first = [json.loads(line) for line in events.read_text().splitlines()]
    assert [e["event"] for e in first] == ["start", "done"]
    assert first[0] | {"time": 0} == {"event": "start", "time": 0, "expected": None, "stage": "stage",
                                      "family": "navigation:goals=partial", "seed": 3, "profile": "smoke"}
    assert first[1]["seconds"] >= 0

    assert stage("navigation:goals=partial", smoke, 3) == 6  # loaded: no event
    assert len(events.read_text().splitlines()) == 2 and CALLS == [3]

    stage.clear()
    stage("navigation:goals=partial", smoke, 3)  # computed again: the last duration is expected
    again = json.loads(events.read_text().splitlines()[2])
    assert again["event"] == "start" and again["expected"] == first[1]["seconds"]


def test_without_a_progress_file_nothing_is_written(tmp_path, monkeypatch):
    monkeypatch.delenv(progress.PROGRESS_ENV, raising=False)
    with progress.stage_running("_x", {"family_name": "cartpole", "seed": 0}, tmp_path / "timings"):
        pass
    assert [p.name for p in tmp_path.rglob("*") if p.is_file()] == ["x--cartpole--None.json"]


def test_reporting_code_is_in_no_stage_version():
    reached = {part.split(":")[0] for part in reach([("pgx.stages.truth", "verdicts"), ("pgx.truth.finetune", "_finetune_batch"),
                                                     ("pgx.stages.downstream", "maml_transfer")], PACKAGE_ROOT).parts}
    assert "pgx.truth.finetune" in reached and "pgx.progress" not in reached
    assert stage_version("pgx.stages.truth", "verdicts").code  # and the stage's own version reads the same way


def test_format_seconds():
    assert [progress.format_seconds(s) for s in (None, 12.4, 185, 3725)] == ["?", "12s", "3m05s", "1h02m"]


def test_the_watcher_prints_each_event_and_what_is_still_running(tmp_path):
    events, out = tmp_path / "events.jsonl", io.StringIO()
    now = time.time()
    start = {"event": "start", "time": now - 100, "expected": 250.0, "stage": "ground_truth", "family": "highway",
             "seed": 1, "profile": "default"}
    events.write_text(json.dumps(start) + "\n" + '{"event": "do')  # the second line is half-written
    watcher = _Watcher(events, "07", out, heartbeat=0.5)
    watcher.start()
    time.sleep(1.6)
    with open(events, "a") as f:
        f.write('ne", "time": %f, "seconds": 240.0, "stage": "ground_truth", "family": "highway", "seed": 1, '
                '"profile": "default"}\n' % now)
    time.sleep(1.5)
    watcher.stop.set()
    watcher.join()
    lines = out.getvalue().splitlines()
    assert "computing ground_truth highway seed 1 (profile default; took 4m10s last time)" in lines[0]
    assert any("computing ground_truth highway seed 1: 1m4" in line and "expected ~4m10s" in line for line in lines)
    assert "done ground_truth highway seed 1 in 4m00s" in lines[-1]


def test_fill_runs_the_chapters_that_compute_stages_in_book_order():
    stems = [p.stem for p in chapters()]
    assert stems[0] == "02_families" and stems[-1] == "11_metaworld" and stems == sorted(stems)
    assert "01_introduction" not in stems and "12_speed" not in stems
    assert all(Path(ROOT, "book", f"{s}.py").exists() for s in stems)
    assert [p.stem for p in _select(["7", "09_transfer"], chapters())] == ["07_ground_truth", "09_transfer"]


@pytest.mark.parametrize("value, wanted", [(None, True), ("", True), ("0", True), ("false", True), ("1", False),
                                           ("True", False), ("yes", False)])
def test_bars_follow_tqdm_disable(monkeypatch, value, wanted):
    """A trainer handed ``progress=`` overrides tqdm's own reading of ``TQDM_DISABLE``; callers ask
    :func:`pgx.progress.bars_wanted` so that CI and book builds stay quiet in every process."""
    if value is None:
        monkeypatch.delenv("TQDM_DISABLE", raising=False)
    else:
        monkeypatch.setenv("TQDM_DISABLE", value)
    assert progress.bars_wanted() is wanted
