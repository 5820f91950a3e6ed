"""Nothing finished is lost when a run is killed (SIGKILL, no cleanup): the ground truth's fine-tuning
runs are each saved the moment they end, and a killed call, made again, computes only the runs that
had not finished, to the same bits; a killed MAML run resumes from its last checkpoint. Each killed
process blocks at a known point (its hook writes a marker, then sleeps), so the kill lands there
however loaded the machine is. A stored run is reused only where it would be computed again: same
key (library versions included) and same device and libraries in the process that would run it."""

import io
import logging
import math
import os
import signal
import subprocess
import sys
import textwrap
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from pgx import keys
from pgx.truth import finetune
from pgx.algos.maml import MAMLConfig, train as maml_train
from pgx.algos.ppo import PPOConfig
from pgx.envs import make_family
from pgx.truth.finetune import default_store, finetune_subset, finetune_subsets
from pgx.nets.policies import ActorCritic, PolicyConfig

ROOT = Path(__file__).resolve().parents[1]
SUBSETS = [(0, 3), (1, 2), (4, 7), (5, 9)]
REPLICATES = 2
SEED = 11
SNAPSHOTS = (128, 1_024)
# 8 iterations of 128 steps per run; the snapshots fall on the first and the last.
CFG = PPOConfig(total_timesteps=8 * 128, envs_per_task=2, num_steps=32, num_minibatches=2, update_epochs=1,
                policy=PolicyConfig(hidden=16), anneal_lr=False)
TINY = PPOConfig(total_timesteps=2 * 128, envs_per_task=2, num_steps=32, num_minibatches=2, update_epochs=1,
                 policy=PolicyConfig(hidden=16), anneal_lr=False)

# A ground-truth-like call in a process of its own. Every computed run is logged to a counter file
# as it starts (the hook wraps the function each job calls), so the test sees exactly what ran. With
# n_jobs=1 a run starts only once the one before it is saved: the hook of run `block_at` (counted
# from 0) writes the marker and sleeps, so exactly `block_at` runs are on disk when the kill lands.
SCRIPT = textwrap.dedent("""
    import logging, sys, time
    import torch
    import pgx.truth.finetune as finetune
    from tests.test_interrupt import CFG, REPLICATES, SEED, SNAPSHOTS, SUBSETS

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    store, out, counter, init, block_at, batch_runs = sys.argv[1:]
    started = 0

    def log(runs):
        global started
        with open(counter, "a") as f:
            f.writelines(f"{tuple(subset)} {seed}\\n" for subset, seed in runs)
        if started == int(block_at):
            open(counter + ".blocked", "w").close()
            time.sleep(3600)  # the SIGKILL lands here
        started += 1

    if int(batch_runs) == 1:  # one run per job: the hook wraps the function each job calls
        compute = finetune.finetune_subset

        def counted(family_name, init_state, subset, cfg, seed, *rest):
            log([(subset, seed)])
            return compute(family_name, init_state, subset, cfg, seed, *rest)

        finetune.finetune_subset = counted
    else:  # batches: the hook wraps the function each batch job calls; block_at counts batches
        compute = finetune._finetune_batch

        def counted(family_name, init_state, runs, *rest):
            log(runs)
            return compute(family_name, init_state, runs, *rest)

        finetune._finetune_batch = counted
    runs = finetune.finetune_subsets("cartpole", torch.load(init), SUBSETS, CFG, SEED, SNAPSHOTS, n_jobs=1,
                                     replicates=REPLICATES, store=store, batch_runs=int(batch_runs))
    torch.save(runs, out)
""")


def _init_state() -> tuple[dict, dict]:
    """A seeded θ* stand-in (how good it plays does not matter here)."""
    family = make_family("cartpole")
    with torch.random.fork_rng():
        torch.manual_seed(0)
        agent = ActorCritic(family.obs_dim, family.action_space, CFG.policy)
    return agent.actor.state_dict(), agent.critic.state_dict()


def _same_run(a, b) -> bool:
    def same(x, y):
        return x.keys() == y.keys() and all(torch.equal(x[k], y[k]) and x[k].dtype == y[k].dtype for k in x)

    return (a.subset == b.subset and a.flops == b.flops and same(a.actor_state, b.actor_state)
            and same(a.critic_state, b.critic_state) and a.snapshots.keys() == b.snapshots.keys()
            and all(same(a.snapshots[s], b.snapshots[s]) for s in a.snapshots))


def _counted(counter: Path) -> list[str]:
    return counter.read_text().splitlines() if counter.exists() else []


def _kill_once_blocked(process: subprocess.Popen, marker: Path) -> None:
    """SIGKILL ``process`` (no handler, no cleanup) once its hook has written ``marker`` and sleeps;
    killed on any failure too, so no blocked child outlives the test."""
    deadline = time.monotonic() + 120
    try:
        while not marker.exists():
            assert process.poll() is None, f"the call ended before it blocked:\n{process.stdout.read().decode()}"
            assert time.monotonic() < deadline, f"no {marker.name} within 120 s"
            time.sleep(0.02)
    finally:
        process.kill()
        process.wait()
        process.stdout.close()
    assert process.returncode == -signal.SIGKILL


@pytest.mark.parametrize("batch_runs", [1, 2], ids=["one run per job", "batches of two"])
def test_a_killed_call_resumes_without_recomputing_its_finished_runs(tmp_path, batch_runs):
    store, init = tmp_path / "store", tmp_path / "init.pt"
    torch.save(_init_state(), init)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1", "PGX_CACHE": str(tmp_path / "cache"),
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}

    def command(name: str, block_at: int = -1) -> list[str]:
        return [sys.executable, "-c", SCRIPT, str(store), str(tmp_path / f"{name}.pt"), str(tmp_path / f"{name}.log"),
                str(init), str(block_at), str(batch_runs)]

    # 1. Kill the call (SIGKILL: no handler, no cleanup) as its third run (or second batch of two)
    # starts: two runs are on disk.
    first = subprocess.Popen(command("first", block_at=2 if batch_runs == 1 else 1), cwd=ROOT, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    _kill_once_blocked(first, tmp_path / "first.log.blocked")
    saved = {p: (p.stat().st_mtime_ns, p.stat().st_ino) for p in store.glob("*.pt")}
    total = len(SUBSETS) * REPLICATES
    assert len(saved) == 2 and not (tmp_path / "first.pt").exists()
    jobs = [f"{subset} {SEED + j}" for j in range(REPLICATES) for subset in SUBSETS]  # n_jobs=1: in this order
    assert _counted(tmp_path / "first.log") == jobs[:2 + batch_runs]

    # 2. The same call again: it loads the finished runs and computes the others, once each.
    second = subprocess.run(command("second"), cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert second.returncode == 0, second.stderr
    assert _counted(tmp_path / "second.log") == jobs[len(saved):]
    assert f"({len(saved)} of {total} runs loaded from {store}): {total - len(saved)} runs to compute" in second.stderr
    assert {p: (p.stat().st_mtime_ns, p.stat().st_ino) for p in saved} == saved  # finished files left untouched
    assert len(list(store.glob("*.pt"))) == total

    # 3. Bit for bit the runs of an uninterrupted call (here, in this process, without a store, in
    # one batch: the other way of computing them than the killed call's).
    resumed = torch.load(tmp_path / "second.pt", weights_only=False)
    uninterrupted = finetune_subsets("cartpole", _init_state(), SUBSETS, CFG, SEED, SNAPSHOTS, n_jobs=1,
                                     replicates=REPLICATES, batch_runs=None if batch_runs == 1 else 1)
    assert [len(r) for r in resumed] == [len(SUBSETS)] * REPLICATES
    assert [run.from_store for replicate in resumed for run in replicate] == [True] * 2 + [False] * (total - 2)
    assert not any(run.from_store for replicate in uninterrupted for run in replicate)
    for a, b in zip(sum(resumed, []), sum(uninterrupted, [])):
        assert _same_run(a, b)
    assert not _same_run(resumed[0][0], resumed[1][0])  # the replicates differ (the check can fail)


def test_a_truncated_or_corrupt_run_file_is_named_and_recomputed(tmp_path, caplog):
    store = tmp_path / "store"
    runs = finetune_subsets("cartpole", _init_state(), SUBSETS[:3], TINY, SEED, n_jobs=1, store=store)[0]
    truncated, flipped, intact = sorted(store.glob("*.pt"), key=lambda p: p.stat().st_mtime_ns)  # saved in order
    truncated.write_bytes(truncated.read_bytes()[: truncated.stat().st_size // 2])
    data = bytearray(flipped.read_bytes())
    data[len(data) // 2] ^= 0x01  # one bit in the tensors' bytes: torch.load alone would not notice
    flipped.write_bytes(bytes(data))

    with caplog.at_level(logging.INFO, logger="pgx.truth.finetune"):
        again = finetune_subsets("cartpole", _init_state(), SUBSETS[:3], TINY, SEED, n_jobs=1, store=store)[0]
    assert [r.getMessage() for r in caplog.records] == [
        f"fine-tuning run {truncated} is truncated or corrupt (checksum mismatch); recomputing it",
        f"fine-tuning run {flipped} is truncated or corrupt (checksum mismatch); recomputing it",
        f"fine-tuning cartpole (1 of 3 runs loaded from {store}): 2 runs to compute",
    ]
    assert all(_same_run(a, b) for a, b in zip(runs, again))

    # Each file was rewritten whole: a third call loads all three without a word.
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="pgx.truth.finetune"):
        third = finetune_subsets("cartpole", _init_state(), SUBSETS[:3], TINY, SEED, n_jobs=1, store=store)[0]
    assert [r.getMessage() for r in caplog.records] == [
        f"fine-tuning cartpole (3 of 3 runs loaded from {store}): 0 runs to compute"]
    assert all(_same_run(a, b) for a, b in zip(runs, third))


def test_a_run_file_under_another_runs_name_is_not_trusted(tmp_path, caplog):
    store = tmp_path / "store"
    runs = finetune_subsets("cartpole", _init_state(), SUBSETS[:2], TINY, SEED, n_jobs=1, store=store)[0]
    first, second = sorted(store.glob("*.pt"), key=lambda p: p.stat().st_mtime_ns)
    second.write_bytes(first.read_bytes())  # a valid file of subset 0 where subset 1's belongs
    with caplog.at_level(logging.WARNING, logger="pgx.truth.finetune"):
        again = finetune_subsets("cartpole", _init_state(), SUBSETS[:2], TINY, SEED, n_jobs=1, store=store)[0]
    assert [r.getMessage() for r in caplog.records] == [
        f"fine-tuning run {second} holds another run than its name says; recomputing it"]
    assert again[1].subset == SUBSETS[1] and _same_run(runs[1], again[1])


def test_runs_that_differ_in_anything_are_kept_apart(tmp_path, monkeypatch):
    monkeypatch.setenv("PGX_CACHE", str(tmp_path / "cache"))
    store = tmp_path / "store"
    finetune_subsets("cartpole", _init_state(), SUBSETS[:1], TINY, SEED, n_jobs=1)
    assert not (tmp_path / "cache").exists() and not store.exists()  # without a store: nothing written
    finetune_subsets("cartpole", _init_state(), SUBSETS[:1], TINY, SEED, n_jobs=1, store=store)
    actor, critic = _init_state()
    nudged = ({**actor, "net.0.bias": actor["net.0.bias"] + 1e-6}, critic)
    variants = [
        dict(seed=SEED + 1), dict(init_state=nudged), dict(init_state=None), dict(subsets=[SUBSETS[0][::-1]]),
        dict(cfg=replace(TINY, learning_rate=1e-3)), dict(snapshot_steps=(128,)),
        dict(family_name="cartpole:observe_task=false", init_state=None),  # vs init_state=None alone: the family
    ]
    base = dict(family_name="cartpole", init_state=_init_state(), subsets=SUBSETS[:1], cfg=TINY, seed=SEED,
                snapshot_steps=(), n_jobs=1, store=store)
    for i, change in enumerate(variants, start=2):
        finetune_subsets(**{**base, **change})
        assert len(list(store.glob("*.pt"))) == i, change
    # the same call again adds nothing; replicate 1 of SEED is replicate 0 of SEED + 1, the same run
    finetune_subsets(**{**base, "seed": SEED, "replicates": 2})
    assert len(list(store.glob("*.pt"))) == len(variants) + 1
    # a FLOP-counting run is kept apart from the timed one, and loads with its count
    counted = finetune_subset("cartpole", _init_state(), SUBSETS[0], TINY, SEED, count_flops=True, store=store)
    assert counted.flops > 0 and len(list(store.glob("*.pt"))) == len(variants) + 2
    assert finetune_subset("cartpole", _init_state(), SUBSETS[0], TINY, SEED, count_flops=True,
                           store=store).flops == counted.flops
    # the library versions are in the key: a run made under another numpy is kept apart too
    other = tuple((name, "0.0+other" if name == "numpy" else v) for name, v in keys.library_versions())
    monkeypatch.setattr(keys, "library_versions", lambda: other)
    finetune_subsets(**base)
    assert len(list(store.glob("*.pt"))) == len(variants) + 3


def _payload(path: Path) -> dict:
    """What a store file holds after its checksum line: the key, the environment and the run."""
    return torch.load(io.BytesIO(path.read_bytes().partition(b"\n")[2]), weights_only=False)


def test_a_stored_run_is_reused_only_where_it_would_be_computed_again(tmp_path, monkeypatch, caplog):
    """A run records the device and libraries of the process that computed it (a worker's, not the
    caller's), and is loaded only where a run computed now would get the same ones."""
    store, real = tmp_path / "store", finetune._environment()
    # This process now sees another numpy; the loky workers, processes of their own, do not.
    elsewhere = tuple((name, "0.0+elsewhere" if name == "numpy" else v) for name, v in keys.library_versions())
    monkeypatch.setattr(keys, "library_versions", lambda: elsewhere)
    assert finetune._environment() == {**real, "numpy": "0.0+elsewhere"}
    computed = finetune_subsets("cartpole", _init_state(), SUBSETS[:2], TINY, SEED, n_jobs=2, store=store)[0]
    files = sorted(store.glob("*.pt"))
    assert len(files) == 2 and all(_payload(path)["environment"] == real for path in files)

    def messages(n_jobs: int) -> tuple[list[str], list]:
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="pgx.truth.finetune"):
            runs = finetune_subsets("cartpole", _init_state(), SUBSETS[:2], TINY, SEED, n_jobs=n_jobs, store=store)[0]
        return [r.getMessage() for r in caplog.records], runs

    # The workers would compute the runs where they were computed: loaded.
    logged, loaded = messages(n_jobs=2)
    assert logged == [f"fine-tuning cartpole (2 of 2 runs loaded from {store}): 0 runs to compute"]
    assert all(run.from_store and _same_run(run, c) for run, c in zip(loaded, computed))
    # This process would compute them under another numpy: recomputed, saying why.
    logged, here = messages(n_jobs=1)
    assert sorted(logged[:2]) == [f"fine-tuning run {path} was computed elsewhere than a run now would be "
                                  f"(numpy: {real['numpy']} -> 0.0+elsewhere); recomputing it" for path in files]
    assert logged[2:] == [f"fine-tuning cartpole (0 of 2 runs loaded from {store}): 2 runs to compute"]
    assert not any(run.from_store for run in here) and all(_same_run(a, b) for a, b in zip(here, computed))
    assert all(_payload(path)["environment"] == {**real, "numpy": "0.0+elsewhere"} for path in files)


def _cube(family_name: str, x: int) -> int:
    return x**3


def test_the_stages_store_lies_inside_the_stage_cache(tmp_path, monkeypatch):
    """Forgetting one stage's results keeps the finished runs; forgetting the stage cache forgets them too."""
    from pgx.stages import cache, graph

    monkeypatch.setenv("PGX_CACHE", str(tmp_path))
    assert default_store() == tmp_path / "stages" / "finetune_runs"
    finetune_subsets("cartpole", _init_state(), SUBSETS[:1], TINY, SEED, n_jobs=1, store=default_store())
    cube = graph.stage()(_cube)
    assert cube("cartpole", 3) == 27 and (cube.folder("cartpole", 3) / "output.pkl").is_file()
    cube.clear()  # deletes every result of the stage, and no run
    assert not cube.folder("cartpole", 3).exists() and len(list(default_store().glob("*.pt"))) == 1
    cache.forget(cache.stages_dir())
    assert not default_store().exists()


def test_the_ground_truth_records_no_elapsed_time_when_it_loaded_runs(tmp_path, caplog):
    """A resumed ground truth's wall clock covers only the runs it computed: its finetune_elapsed is
    NaN, while finetune_time, the runs' own seconds, is what the first call measured."""
    # Imported here: the killed children import this module, and need no stage.
    from pgx.stages import truth

    computed = finetune_subsets("cartpole", _init_state(), SUBSETS[:2], TINY, SEED, n_jobs=1, replicates=2,
                                store=tmp_path)
    assert truth._finetune_elapsed("cartpole", computed, 12.5) == 12.5
    min(tmp_path.glob("*.pt"), key=lambda p: p.stat().st_mtime_ns).unlink()  # killed after three runs
    resumed = finetune_subsets("cartpole", _init_state(), SUBSETS[:2], TINY, SEED, n_jobs=1, replicates=2,
                               store=tmp_path)
    with caplog.at_level(logging.INFO, logger="pgx.stages.truth"):
        assert math.isnan(truth._finetune_elapsed("cartpole", resumed, 0.5))
    assert [r.getMessage() for r in caplog.records] == [
        ("cartpole ground truth: 3 of 4 fine-tuning runs were loaded from the store, so finetune_elapsed is not "
         "recorded (NaN); finetune_time sums each run's own seconds")]
    seconds = [[run.wall_time for replicate in runs for run in replicate] for runs in (resumed, computed)]
    assert seconds[0][1:] == seconds[1][1:]


def test_a_run_of_many_with_loky_workers_saves_and_places_each_run(tmp_path):
    """Runs arrive in the order they end; each is saved under its own key and put in its own place."""
    sequential = finetune_subsets("cartpole", _init_state(), SUBSETS, TINY, SEED, n_jobs=1)[0]
    parallel = finetune_subsets("cartpole", _init_state(), SUBSETS, TINY, SEED, n_jobs=2, store=tmp_path)[0]
    loaded = finetune_subsets("cartpole", _init_state(), SUBSETS, TINY, SEED, n_jobs=2, store=tmp_path)[0]
    assert len(list(tmp_path.glob("*.pt"))) == len(SUBSETS)
    assert all(_same_run(a, b) and _same_run(a, c) for a, b, c in zip(sequential, parallel, loaded))


# --- MAML: its checkpoint, after a SIGKILL between two of them --------------------------------------

MAML_SCRIPT = textwrap.dedent("""
    import sys, time
    import torch
    from pgx.algos.maml import train
    from pgx.envs import make_family
    from tests.test_interrupt import MAML

    checkpoint, out, counter, block_after = sys.argv[1:]

    def logged(iteration):  # after each iteration and its checkpoint
        with open(counter, "a") as f:
            f.write(f"{iteration}\\n")
        if iteration == int(block_after):
            open(counter + ".blocked", "w").close()
            time.sleep(3600)  # the SIGKILL lands here

    result = train(make_family("cartpole:observe_task=false"), [0, 1], MAML, seed=5, checkpoint_path=checkpoint,
                   progress=False, on_iteration=logged)
    torch.save(result, out)
""")


MAML = MAMLConfig(meta_iterations=8, meta_batch_size=3, episodes=2, horizon=30,
                  policy=PolicyConfig(hidden=5, layers=2), checkpoint_every=4)


def test_a_killed_maml_run_resumes_from_its_last_checkpoint(tmp_path):
    checkpoint = tmp_path / "maml.pt"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1", "PGX_CACHE": str(tmp_path / "cache"),
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}

    def command(name: str, block_after: int = -1) -> list[str]:
        return [sys.executable, "-c", MAML_SCRIPT, str(checkpoint), str(tmp_path / f"{name}.pt"),
                str(tmp_path / f"{name}.log"), str(block_after)]

    # Killed after 5 iterations: past the checkpoint at 4, before the one at 8.
    first = subprocess.Popen(command("first", block_after=4), cwd=ROOT, env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT)
    _kill_once_blocked(first, tmp_path / "first.log.blocked")
    done = [int(i) for i in _counted(tmp_path / "first.log")]
    assert done == [0, 1, 2, 3, 4]
    last_checkpoint = len(done) // MAML.checkpoint_every * MAML.checkpoint_every
    assert torch.load(checkpoint, weights_only=False)["iteration"] == last_checkpoint == 4  # some work lost, not all

    second = subprocess.run(command("second"), cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert second.returncode == 0, second.stderr
    assert [int(i) for i in _counted(tmp_path / "second.log")] == list(range(last_checkpoint, MAML.meta_iterations))
    resumed = torch.load(tmp_path / "second.pt", weights_only=False)
    full = maml_train(make_family("cartpole:observe_task=false"), [0, 1], MAML, seed=5, progress=False)
    assert all(torch.equal(resumed.actor_state[k], full.actor_state[k]) for k in full.actor_state)
    assert np.array_equal(resumed.returns_after, full.returns_after)
    assert np.array_equal(resumed.env_steps, full.env_steps)
