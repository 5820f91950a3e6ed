"""Damaged files on disk are detected, never trusted: a truncated or garbage PPO, SAC or MAML
checkpoint is refused naming the file and the fix (it may hold hours of training, so deleting it
is the user's call); a damaged stage-cache result is a miss that warns naming the file, is
recomputed and written over; an interrupted write leaves the previous file whole. Errors that say
nothing of the file (a file this user may not read, no memory left, a missing module) are raised as
they are, neither called damage nor papered over by recomputation."""

from __future__ import annotations

import pickle
import re
import struct
import warnings
from pathlib import Path

import gymnasium as gym
import joblib
import numpy as np
import pytest
import torch

from pgx.algos import maml, ppo, sac
from pgx.envs import gym_family, make_family
from pgx.nets import ArchConfig
from pgx.nets.policies import PolicyConfig
from pgx.runtime import (
    UnreadableCheckpoint,
    is_damage,
    load_checkpoint,
    load_pickled,
    save_torch,
)
from pgx.stages import graph

PPO_TINY = ppo.PPOConfig(total_timesteps=2 * 2 * 32, envs_per_task=2, num_steps=32, num_minibatches=2, update_epochs=1,
                         policy=PolicyConfig(hidden=8), checkpoint_every=1)
MAML_TINY = maml.MAMLConfig(meta_iterations=2, meta_batch_size=2, episodes=1, horizon=10,
                            policy=PolicyConfig(hidden=4, layers=2))
SMALL = ArchConfig(hidden=8, layers=2)
SAC_TINY = sac.SACConfig(total_steps=40, buffer_size=32, batch_size=4, learning_starts=8, actor_arch=SMALL,
                         critic_arch=SMALL, eval_every=10**6, eval_episodes=1, checkpoint_every=10)


def make_pendulum(g):
    return gym.make("Pendulum-v1", g=float(g[0]))


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _garbage(path: Path) -> None:
    path.write_bytes(np.random.default_rng(0).bytes(4096))


def _empty(path: Path) -> None:
    path.write_bytes(b"")


def _not_a_checkpoint(path: Path) -> None:  # a valid torch file of something else
    torch.save({"weights": torch.zeros(3)}, path)


DAMAGE = {"truncated": _truncate, "garbage": _garbage, "empty": _empty, "not a checkpoint": _not_a_checkpoint}


def _cut_in_header(path: Path) -> None:  # joblib then reads the pickle's frame length from 1 byte: struct.error
    path.write_bytes(path.read_bytes()[:3])


def _run(trainer: str, path: Path):
    if trainer == "ppo":
        return ppo.train(make_family("cartpole"), [0], PPO_TINY, seed=0, checkpoint_path=path, progress=False)
    if trainer == "maml":
        return maml.train(make_family("navigation"), [0, 1], MAML_TINY, seed=0, checkpoint_path=path, progress=False)
    family = gym_family("pendulum-gravity", make_pendulum, [5.0, 10.0], [], "gravity (m/s²)")
    return sac.train(family, SAC_TINY, seed=0, checkpoint=path, progress=False)


def _weights(trainer: str, result) -> dict[str, torch.Tensor]:
    return result.actor_state if trainer != "sac" else result.init_state()["actor"]


@pytest.mark.parametrize("trainer", ["ppo", "sac", "maml"])
@pytest.mark.parametrize("damage", list(DAMAGE))
def test_a_damaged_checkpoint_is_refused_naming_the_file_and_the_fix(tmp_path, trainer, damage):
    path = tmp_path / f"{trainer}.pt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # CartPole's env may not pickle: PPO says so, and it is not the point
        first = _run(trainer, path)
        DAMAGE[damage](path)
        damaged = path.read_bytes()
        named = re.escape(str(path))
        with pytest.raises(UnreadableCheckpoint, match=rf"checkpoint {named} .*delete {named} to start the run over"):
            _run(trainer, path)
        assert path.read_bytes() == damaged  # refused, not deleted or written over
        path.unlink()  # the fix the message gives
        again = _run(trainer, path)
    for name, tensor in _weights(trainer, first).items():
        assert torch.equal(tensor, _weights(trainer, again)[name]), name


def test_maml_checkpoint_holds_only_what_weights_only_loads(tmp_path):
    path = tmp_path / "maml.pt"
    _run("maml", path)
    saved = torch.load(path, weights_only=True)
    assert set(saved) == set(maml._CHECKPOINT_KEYS) and saved["iteration"] == MAML_TINY.meta_iterations


def test_maml_resumes_from_its_checkpoint_under_a_config_of_numpy_scalars(tmp_path):
    """Configs accept numpy scalars; the checkpoint holding them is MAML's own and must load."""
    cfg = maml.MAMLConfig(meta_iterations=np.int64(2), meta_batch_size=2, episodes=1, horizon=10,
                          outer_lr=np.float64(1e-3), policy=PolicyConfig(hidden=4, layers=2))
    path, iterations = tmp_path / "maml.pt", []
    first = maml.train(make_family("navigation"), [0, 1], cfg, seed=np.int64(0), checkpoint_path=path, progress=False,
                       on_iteration=iterations.append)
    again = maml.train(make_family("navigation"), [0, 1], cfg, seed=np.int64(0), checkpoint_path=path, progress=False,
                       on_iteration=iterations.append)
    assert iterations == [0, 1]  # the second call resumed at the end: no iteration run again
    assert all(torch.equal(first.actor_state[k], again.actor_state[k]) for k in first.actor_state)
    assert np.array_equal(first.returns_after, again.returns_after)


ERRORS_THAT_ARE_NOT_DAMAGE = [PermissionError(13, "Permission denied"), MemoryError(),
                              ModuleNotFoundError("No module named 'highway_env'"),
                              torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")]


def test_what_counts_as_damage():
    # torch's OutOfMemoryError is a RuntimeError, as a truncated archive's error is, yet says nothing of the file
    assert not is_damage(torch.OutOfMemoryError("CUDA out of memory")) and not is_damage(MemoryError())
    assert is_damage(struct.error("unpack requires a buffer of 8 bytes"))
    assert is_damage(AssertionError("Unknown typename for persistent_load, expected 'storage' but got 'storagf'"))
    assert is_damage(RuntimeError("PytorchStreamReader failed reading zip archive"))
    assert not is_damage(PermissionError(13, "Permission denied"))


def test_a_checkpoint_whose_storage_record_is_garbled_is_refused(tmp_path):
    path = tmp_path / "state.pt"
    save_torch({"iteration": 1, "weights": torch.arange(4.0)}, path)
    path.write_bytes(path.read_bytes().replace(b"storage", b"storagf"))  # torch's unpickler asserts on it
    with pytest.raises(UnreadableCheckpoint, match=rf"checkpoint {re.escape(str(path))} cannot be loaded "
                                                   r"\(AssertionError: Unknown typename for persistent_load"):
        load_checkpoint(path, "cpu", ["iteration"])


@pytest.mark.parametrize("error", ERRORS_THAT_ARE_NOT_DAMAGE, ids=lambda e: type(e).__name__)
def test_a_checkpoint_that_cannot_be_read_for_another_reason_raises_that_reason(tmp_path, monkeypatch, error):
    path = tmp_path / "ppo.pt"
    _run("ppo", path)
    assert set(load_checkpoint(path, "cpu", ppo._CHECKPOINT_KEYS)) >= set(ppo._CHECKPOINT_KEYS)

    def fails(*args, **kwargs):
        raise error

    monkeypatch.setattr(torch, "load", fails)
    with pytest.raises(type(error)) as raised:
        _run("ppo", path)
    assert raised.value.__notes__[-1] == f"while loading checkpoint {path}"  # the same error, naming the file
    monkeypatch.setattr(pickle, "loads", fails)
    with pytest.raises(type(error)) as raised:
        load_pickled(pickle.dumps(3), path, "env")
    assert raised.value.__notes__[-1] == f"while unpickling the env saved in checkpoint {path}"


def test_an_env_pickle_naming_a_missing_module_raises_import_error_and_damage_is_still_refused(tmp_path):
    missing = b"\x80\x04cno_such_module_of_pgx\nEnv\n)\x81."  # a pickle of no_such_module_of_pgx.Env()
    with pytest.raises(ModuleNotFoundError, match="no_such_module_of_pgx"):
        load_pickled(missing, tmp_path / "x.pt", "env")
    for damaged in (missing[:8], b"garbage", b""):
        with pytest.raises(UnreadableCheckpoint, match="the env saved in checkpoint .* cannot be unpickled"):
            load_pickled(damaged, tmp_path / "x.pt", "env")


def test_a_checkpoint_whose_env_cannot_be_unpickled_is_refused(tmp_path):
    path = tmp_path / "nav.pt"
    ppo.train(make_family("navigation"), [0], PPO_TINY, seed=0, checkpoint_path=path, progress=False)
    saved = torch.load(path, weights_only=False)
    assert saved["env"] is not None  # navigation's env pickles: resume is exact
    save_torch({**saved, "env": saved["env"][: len(saved["env"]) // 2]}, path)
    named = re.escape(str(path))
    with pytest.raises(UnreadableCheckpoint, match=rf"the env saved in checkpoint {named} cannot be unpickled"):
        ppo.train(make_family("navigation"), [0], PPO_TINY, seed=0, checkpoint_path=path, progress=False)


def test_an_interrupted_save_leaves_the_previous_file_whole(tmp_path):
    path = tmp_path / "state.pt"
    save_torch({"iteration": 1, "weights": torch.arange(4.0)}, path)
    with pytest.raises((pickle.PicklingError, AttributeError)):  # the lambda fails after torch began writing
        save_torch({"iteration": 2, "weights": torch.arange(1000.0), "bad": lambda: None}, path)
    assert torch.load(path, weights_only=True)["iteration"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.pt"]  # no temporary file left behind


# --- the stage cache --------------------------------------------------------------------------

CALLS: list[int] = []


def squares(n: int) -> np.ndarray:
    """A stage stand-in: counts its calls and warns, as a solver that did not converge would."""
    CALLS.append(n)
    warnings.warn("solver stopped at max_iter", RuntimeWarning)
    return np.arange(n) ** 2


def _flip_a_bit_in_the_data(path: Path) -> None:
    """One bit of the array's bytes (the pickle's last quarter): the file still loads without error,
    with one wrong number, unless a checksum notices."""
    data = bytearray(path.read_bytes())
    data[len(data) * 3 // 4] ^= 0x01
    path.write_bytes(bytes(data))


def _drop_the_checksum(path: Path) -> None:  # a process killed between the result and its checksum
    path.with_name("output.sha256").unlink()


STAGE_DAMAGE = {**DAMAGE, "cut in the pickle header": _cut_in_header, "a bit flipped": _flip_a_bit_in_the_data,
                "no checksum": _drop_the_checksum}


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty", "cut in the pickle header", "a bit flipped",
                                    "no checksum"])
def test_a_damaged_stage_result_is_recomputed_and_written_over(tmp_path, monkeypatch, damage):
    monkeypatch.setenv("PGX_CACHE", str(tmp_path))
    stage = graph.stage()(squares)
    CALLS.clear()
    with pytest.warns(RuntimeWarning, match="max_iter"):
        np.testing.assert_array_equal(stage(50), np.arange(50) ** 2)
    (output,) = (tmp_path / "stages").rglob("output.pkl")
    good = output.read_bytes()
    STAGE_DAMAGE[damage](output)
    if damage == "a bit flipped":  # what the checksum is for: joblib alone loads the wrong number
        assert not np.array_equal(joblib.load(output)[0], np.arange(50) ** 2)

    with pytest.warns(RuntimeWarning) as caught:
        np.testing.assert_array_equal(stage(50), np.arange(50) ** 2)
    messages = [str(w.message) for w in caught]
    assert any(f"stage cache file {output} cannot be read" in m and "recomputing squares" in m for m in messages)
    assert any("max_iter" in m for m in messages)  # the stage's own warning is still raised
    assert CALLS == [50, 50] and output.read_bytes() == good  # recomputed once, written over

    with pytest.warns(RuntimeWarning, match="max_iter"):
        stage(50)
    assert CALLS == [50, 50]  # a hit again: no recomputation


@pytest.mark.parametrize("error", ERRORS_THAT_ARE_NOT_DAMAGE, ids=lambda e: type(e).__name__)
def test_a_stage_result_unreadable_for_another_reason_raises_it_without_recomputing(tmp_path, monkeypatch, error):
    monkeypatch.setenv("PGX_CACHE", str(tmp_path))
    stage = graph.stage()(squares)
    CALLS.clear()
    with pytest.warns(RuntimeWarning, match="max_iter"):
        stage(50)

    def fails(*args, **kwargs):
        raise error

    monkeypatch.setattr(joblib.numpy_pickle, "load", fails)  # what joblib reads output.pkl with
    with warnings.catch_warnings(record=True) as caught, pytest.raises(type(error)) as raised:
        warnings.simplefilter("always")
        stage(50)
    assert CALLS == [50] and not [w for w in caught if "cannot be read" in str(w.message)]
    (output,) = (tmp_path / "stages").rglob("output.pkl")
    assert raised.value.__notes__[-1] == f"while loading stage cache folder {output.parent}"


def test_a_result_that_cannot_be_stored_is_returned_with_a_warning(tmp_path, monkeypatch):
    """A stage whose result cannot be pickled (or whose disk is full) still returns it: hours of
    work are not thrown away for want of a copy on disk; the warning names the folder."""
    import threading

    monkeypatch.setenv("PGX_CACHE", str(tmp_path))

    def holds_a_lock(n: int):
        return threading.Lock(), n

    stage = graph.stage()(holds_a_lock)
    with pytest.warns(RuntimeWarning, match=r"could not be stored in .*holds_a_lock.*computed again next time"):
        _, n = stage(3)
    assert n == 3 and not list(tmp_path.rglob("output.pkl"))
