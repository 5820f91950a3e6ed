"""Seeds, devices and atomic files: the small plumbing every stage shares."""

from __future__ import annotations

import errno
import json
import operator
import os
import pickle
import random
import struct
import tempfile
import warnings
import zipfile
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np
import torch

__all__ = ["is_int", "seed_everything", "MAX_SEED", "env_seed", "pick_device", "atomic_write", "save_torch",
           "save_json", "save_npz", "LOAD_ERRORS", "is_damage", "UnreadableCheckpoint", "load_checkpoint",
           "load_pickled", "pickled_env", "load_run_checkpoint", "resumed_envs"]

MAX_SEED = 2**32 - 1
"""Largest seed the CLI and ``$PGX_SEED`` take: seeds derived from it (resets, fine-tuning runs) stay
within what numpy and torch accept."""


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


def env_seed() -> int:
    """``$PGX_SEED``, the seed of the book and the CLI's default: surrounding spaces ignored, unset or
    empty means 0; anything but an integer in [0, :data:`MAX_SEED`] is refused, naming the value."""
    given = os.environ.get("PGX_SEED", "")
    raw = given.strip()
    if not raw:
        return 0
    if not (raw.isascii() and raw.isdigit()) or int(raw) > MAX_SEED:
        raise ValueError(f"PGX_SEED must be a non-negative integer, got {given!r} (seeds run from 0 to {MAX_SEED})")
    return int(raw)


def pick_device(device: str | None = None) -> torch.device:
    """``device`` if given, else ``$PGX_DEVICE``, else CUDA when available, else CPU. A name torch
    does not know, or a GPU this machine lacks, is refused here, naming where it came from."""
    source = "device"
    if device is None:
        if os.environ.get("PGX_DEVICE"):
            device, source = os.environ["PGX_DEVICE"], "PGX_DEVICE"
        else:
            device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        chosen = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"{source} must name a torch device such as 'cpu', 'cuda' or 'cuda:1', "
                         f"got {device!r}") from None
    if chosen.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"{source} {device!r} requested but CUDA is not available")
        if chosen.index is not None and chosen.index >= torch.cuda.device_count():
            raise ValueError(f"{source} {device!r} requested but this machine has {torch.cuda.device_count()} CUDA "
                             f"device(s)")
    return chosen


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
    """``obj`` as strict JSON: NaN and infinities (a verdict with nothing to compare, a resumed
    stage's unknown elapsed time) are written as null, never as ``NaN``, which JSON does not have."""
    text = json.dumps(_strict(obj), indent=2, default=_jsonable, allow_nan=False)
    return atomic_write(path, lambda tmp: tmp.write_text(text))


def _strict(x: Any) -> Any:
    """``x`` with every non-finite float (Python's or numpy's, in arrays too) replaced by None."""
    if isinstance(x, dict):
        return {k: _strict(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_strict(v) for v in x]
    if isinstance(x, np.ndarray):
        return _strict(x.tolist())
    if isinstance(x, (float, np.floating)):
        return float(x) if np.isfinite(x) else None
    return x


def save_npz(arrays: dict[str, np.ndarray], path: str | Path) -> Path:
    def write(tmp: Path) -> None:
        with tmp.open("wb") as fh:  # a file handle: np.savez would append ".npz" to a path
            np.savez(fh, **arrays)

    return atomic_write(path, write)


LOAD_ERRORS: tuple[type[BaseException], ...] = (
    EOFError, pickle.UnpicklingError, zipfile.BadZipFile, RuntimeError, ValueError, OverflowError,
    KeyError, IndexError, TypeError, AttributeError, struct.error, AssertionError)
"""What reading a damaged file raises (an empty file: EOFError; a truncated one: torch's zip reader's
RuntimeError (or an OSError, see :func:`is_damage`), joblib's ValueError or struct.error; garbage:
UnpicklingError, or KeyError, IndexError, TypeError, AttributeError, OverflowError, UnicodeDecodeError
where a pickle opcode reads junk, or the AssertionError "Unknown typename for persistent_load" of
torch's unpickler). Not among them: OSError (a file this user may not read, a failing disk),
MemoryError and torch's OutOfMemoryError (a RuntimeError, see :func:`is_damage`) and ImportError (a
module this environment lacks), which say nothing of the file and must reach the user as they are."""

_NOT_DAMAGE: tuple[type[BaseException], ...] = (MemoryError, torch.cuda.OutOfMemoryError)
"""Errors a load can raise that are subclasses of :data:`LOAD_ERRORS` (torch's OutOfMemoryError is
a RuntimeError) yet say the machine, not the file, failed: checked first."""


def is_damage(error: BaseException) -> bool:
    """Whether ``error``, raised reading a file that exists, says the file is damaged: one of
    :data:`LOAD_ERRORS` (but never an out-of-memory error), or the EINVAL that torch's zip reader
    meets seeking before the start of a file cut short (an OSError, unlike the EACCES of a file this
    user may not read)."""
    if isinstance(error, _NOT_DAMAGE):
        return False
    return isinstance(error, LOAD_ERRORS) or (isinstance(error, OSError) and error.errno == errno.EINVAL)


class UnreadableCheckpoint(ValueError):
    """A checkpoint file that cannot be loaded; the message names the file and how to start over."""


def load_checkpoint(path: str | Path, map_location: Any, keys: Iterable[str], weights_only: bool = False) -> dict:
    """The training checkpoint at ``path`` (written by :func:`save_torch`), holding ``keys``.

    ``save_torch`` writes atomically, so a checkpoint that cannot be loaded was damaged afterwards
    (a copy cut short, a full disk, a sync tool) or is not a checkpoint of this trainer. It is
    refused, naming the file: it may hold hours of training, so deleting it is the user's call,
    and a run that silently started over could hide what damaged it. Bytes flipped inside a
    tensor are not detected (torch's archive carries no checksum we can check).
    """
    path = Path(path)
    try:
        saved = torch.load(path, map_location=map_location, weights_only=weights_only)
    except Exception as e:
        if not is_damage(e):
            e.add_note(f"while loading checkpoint {path}")  # the type is kept, for callers that catch it
            raise
        raise UnreadableCheckpoint(f"checkpoint {path} cannot be loaded ({_first_line(e)}); it is truncated, corrupt "
                                   f"or not a checkpoint: delete {path} to start the run over") from e
    missing = [k for k in keys if k not in saved] if isinstance(saved, dict) else list(keys)
    if missing:
        raise UnreadableCheckpoint(f"checkpoint {path} lacks {missing}: it is not a checkpoint of this trainer; "
                                   f"delete {path} to start the run over")
    return saved


def load_run_checkpoint(path: str | Path | None, map_location: Any, keys: Iterable[str],
                        run: dict[str, Any]) -> dict | None:
    """A trainer's checkpoint to resume from: None where ``path`` is None or absent; else the
    checkpoint (:func:`load_checkpoint`), refused naming the file where its ``run`` entries (the
    config, tasks and seed that determine the run) differ from this run's."""
    if path is None or not Path(path).exists():
        return None
    saved = load_checkpoint(path, map_location, keys)
    if any(saved[key] != value for key, value in run.items()):
        raise ValueError(f"checkpoint {path} was written by a different run (config, tasks or seed differ); "
                         f"delete it to start over")
    return saved


def resumed_envs(saved: dict | None, path: str | Path | None, state_key: str, make_env: Callable[[], Any],
                 start: Callable[[Any, int], Any], seed: int) -> tuple[Any, Any]:
    """``(env, state)`` a trainer's run continues with: the checkpoint's pickled env and its state
    where it holds one (exact resume), else ``make_env()`` started by ``start(env, seed)`` (a fresh
    run, or a resumed one whose env could not be pickled: its episodes restart, reproducibly)."""
    if saved is not None and saved["env"] is not None:
        return load_pickled(saved["env"], path, "env"), saved[state_key]
    env = make_env()
    return env, start(env, seed)


def load_pickled(blob: bytes, path: str | Path, what: str) -> Any:
    """Unpickle the ``what`` part of the checkpoint at ``path`` (an env's state), refusing it as
    :func:`load_checkpoint` does when it cannot be read (damaged, or a class it names is gone; a
    module this environment lacks is raised as the ImportError it is)."""
    try:
        return pickle.loads(blob)
    except Exception as e:
        if not is_damage(e):
            e.add_note(f"while unpickling the {what} saved in checkpoint {path}")
            raise
        raise UnreadableCheckpoint(f"the {what} saved in checkpoint {path} cannot be unpickled ({_first_line(e)}); "
                                   f"delete {path} to start the run over") from e


def pickled_env(env) -> bytes | None:
    """The env's state as bytes for a training checkpoint (PPO's and SAC's), or None where it cannot
    be pickled (Box2D, highway-env, MuJoCo, worker processes): a resumed run then restarts the
    episodes in progress from a seeded reset, and a warning says so."""
    rebuilt = _rebuilt_on_unpickle(env)
    if rebuilt is not None:
        warnings.warn(f"{rebuilt} pickles by re-construction, without its state; a resumed run will restart its "
                      "episodes from a seeded reset", stacklevel=3)
        return None
    try:
        return pickle.dumps(env)
    except Exception as e:  # pickling fails with TypeError, AttributeError or a SWIG error
        warnings.warn(f"{type(env.unwrapped).__name__} cannot be pickled ({type(e).__name__}); a resumed run will restart "
                      "its episodes from a seeded reset", stacklevel=3)
        return None


def _rebuilt_on_unpickle(env) -> str | None:
    """The name of an env inside ``env`` that pickles as its constructor call (gymnasium's
    ``EzPickle``: Box2D and MuJoCo envs), else None. Such a pickle loads as a fresh, un-reset env,
    so it cannot carry episodes across a resume. Walks wrappers (``env``) and vector envs (``envs``)
    through their ``__dict__``, so no wrapper attribute forwarding is triggered."""
    from gymnasium.utils import EzPickle

    todo, seen = [env], set()
    while todo:
        node = todo.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, EzPickle):
            return type(node).__name__
        attributes = getattr(node, "__dict__", {})
        todo += [attributes["env"]] if "env" in attributes else []
        todo += list(attributes.get("envs", []) or [])
    return None


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return type(error).__name__ + (f": {text.splitlines()[0][:200]}" if text else "")


def _jsonable(x: Any) -> Any:
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, (np.integer, np.floating)):
        return x.item()
    raise TypeError(f"cannot write {type(x).__name__} to JSON")
