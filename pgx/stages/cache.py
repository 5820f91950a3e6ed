"""Where stage results are kept: one folder per stage call, its result checksummed.

A stage call's result lives in ``<cache>/stages/<module>.<function>/<key>/``: ``output.pkl`` (the
result and the warnings it raised while computing), ``output.sha256`` (its checksum) and
``key.json`` (what the key hashed, for a person reading the cache). The key is computed by
:mod:`pgx.stages.graph`; this module only stores and loads. Every result is written atomically
with its checksum and checked when loaded: a result whose bytes no longer match (a bit flip, a
file cut short) is recomputed with a warning naming it. Deleting a folder forgets one result;
deleting ``<cache>/stages`` forgets them all, with the ground truth's finished fine-tuning runs,
which live beside them (``finetune_runs``).
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
from pathlib import Path
from typing import Any

import joblib

from pgx.keys import cache_dir
from pgx.runtime import atomic_write

__all__ = ["stages_dir", "DamagedResult", "load", "save", "forget"]


def stages_dir() -> Path:
    """``<cache>/stages``: every stage's results, and the fine-tune store's runs."""
    return cache_dir() / "stages"


class DamagedResult(ValueError):
    """A stage result whose bytes no longer match the checksum written beside them."""


def _seal_path(folder: Path) -> Path:
    return folder / "output.sha256"


def load(folder: Path) -> tuple[Any, list] | None:
    """The ``(result, warnings)`` kept in ``folder``, or None where there is none. The file is read
    once, checked against its checksum, and unpickled from those bytes; a mismatch, a missing
    checksum (a process killed between the two writes) or bytes that do not unpickle raise (damage:
    :func:`pgx.runtime.is_damage` tells the caller to recompute)."""
    path = folder / "output.pkl"
    if not path.is_file():
        return None
    data = path.read_bytes()
    seal = _seal_path(folder)
    if not seal.is_file():
        raise DamagedResult(f"no checksum {seal.name} beside it")
    if hashlib.sha256(data).hexdigest() != seal.read_text().strip():
        raise DamagedResult(f"its bytes do not match the checksum in {seal.name}")
    result, kept = joblib.numpy_pickle.load(io.BytesIO(data))
    if not isinstance(kept, list):
        raise TypeError(f"expected (result, warnings), got warnings of type {type(kept).__name__}")
    return result, kept


def save(folder: Path, result: Any, kept: list, key: dict[str, Any]) -> None:
    """Write ``(result, kept)`` and its checksum into ``folder`` (each atomically, the checksum
    last), with ``key`` as readable JSON beside them."""
    buffer = io.BytesIO()
    joblib.dump((result, kept), buffer)
    data = buffer.getvalue()
    atomic_write(folder / "key.json", lambda tmp: tmp.write_text(json.dumps(key, indent=1, default=repr)))
    atomic_write(folder / "output.pkl", lambda tmp: tmp.write_bytes(data))
    atomic_write(_seal_path(folder), lambda tmp: tmp.write_text(hashlib.sha256(data).hexdigest()))


def forget(folder: Path) -> None:
    """Delete ``folder`` (a stage's results, or one result): what is asked again is recomputed."""
    if folder.is_dir():
        shutil.rmtree(folder, ignore_errors=True)
