"""Seeds, devices and atomic files: the small plumbing every stage shares."""

from __future__ import annotations

import json
import operator
import os
import random
import tempfile
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

__all__ = ["is_int", "seed_everything", "pick_device", "atomic_write", "save_torch", "save_json", "save_npz"]


def is_int(value: object) -> bool:
    """Python, numpy and 0-d torch integers; not bools or floats (validation of counts and indices)."""
    if isinstance(value, (bool, np.bool_)):
        return False
    try:
        operator.index(value)
    except TypeError:
        return False
    return True


def seed_everything(seed: int) -> None:
    """Seed Python, numpy and torch once at an entry point (network initialisation uses torch's RNG)."""
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    random.seed(int(seed))
    np.random.seed(int(seed) % 2**32)
    torch.manual_seed(int(seed))


def pick_device(device: str | None = None) -> torch.device:
    """``device`` if given, else CUDA when available, else CPU."""
    if device is None:
        device = os.environ.get("PGX_DEVICE") or ("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested but CUDA is not available")
    return torch.device(device)


def atomic_write(path: str | Path, write: Callable[[Path], Any]) -> Path:
    """Call ``write(tmp)`` then rename ``tmp`` onto ``path``: a reader never sees a half-written file,
    and an interruption leaves the previous version intact."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def save_torch(obj: Any, path: str | Path) -> Path:
    return atomic_write(path, lambda tmp: torch.save(obj, tmp))


def save_json(obj: Any, path: str | Path) -> Path:
    return atomic_write(path, lambda tmp: tmp.write_text(json.dumps(obj, indent=2, default=_jsonable)))


def save_npz(arrays: dict[str, np.ndarray], path: str | Path) -> Path:
    def write(tmp: Path) -> None:
        with tmp.open("wb") as fh:  # a file handle: np.savez would append ".npz" to a path
            np.savez(fh, **arrays)

    return atomic_write(path, write)


def _jsonable(x: Any) -> Any:
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, (np.integer, np.floating)):
        return x.item()
    raise TypeError(f"cannot write {type(x).__name__} to JSON")
