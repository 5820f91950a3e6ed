"""Ground truth: fine-tune θ* for real on task subsets, in parallel.

Each subset's fine-tuning is an independent PPO run from θ*, so they run through
``joblib.Parallel``: loky processes by default, and any backend a user registers — Dask or Ray on
a cluster — through ``joblib.parallel_config(backend=...)``, with no change here. Every run pins
torch to one thread and draws from its own seed, so the result is the same whichever backend or
process runs it.

Given a ``store`` directory, each finished run is saved there the moment it ends (atomically), keyed
by everything that determines it, and loaded instead of recomputed by a later call: a ground truth
killed halfway loses only the runs in progress. The stages' store, :func:`default_store`, lies
inside the stage cache, so deleting the stage cache deletes the finished runs with it.
"""

from __future__ import annotations

import hashlib
import io
import logging
import time
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Iterator, Sequence

import joblib
import torch
from joblib import Parallel, delayed
from torch.utils.flop_counter import FlopCounterMode
from tqdm.auto import tqdm

from pgx.algos.ppo import PPOConfig
from pgx.envs import make_family
from pgx.runtime import atomic_write, is_damage, pick_device

logger = logging.getLogger(__name__)

__all__ = ["FinetuneResult", "default_store", "finetune_subset", "finetune_subsets", "single_thread"]


@dataclass
class FinetuneResult:
    subset: tuple[int, ...]
    actor_state: dict[str, torch.Tensor]
    critic_state: dict[str, torch.Tensor]
    snapshots: dict[int, dict[str, torch.Tensor]]
    """Environment steps → actor weights at that point of the run (for the distance sweep)."""
    wall_time: float
    flops: int
    """Floating-point operations of the torch work (rollout forwards and updates; not the env)."""
    from_store: bool = False
    """True when loaded from a store instead of computed by this call: its ``wall_time`` is that of
    the call that computed it, and no part of this call's wall clock."""


@contextmanager
def single_thread() -> Iterator[None]:
    """Run torch on one thread, then restore: parallel jobs do not oversubscribe the cores, and a
    run's float reductions do not depend on how many threads the host process had."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def finetune_subset(
    family_name: str,
    init_state: tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]] | None,
    subset: Sequence[int],
    cfg: PPOConfig,
    seed: int,
    snapshot_steps: Sequence[int] = (),
    count_flops: bool = False,
    store: str | Path | None = None,
) -> FinetuneResult:
    """PPO on the tasks of ``subset``, starting from ``init_state`` (θ* and its critic), or from a
    fresh seeded initialisation when it is None (single-task policies of the transfer matrix).

    Computed as a batch of one (:func:`_finetune_batch`): the very bits the run gets in any batch
    of :func:`finetune_subsets`, so the store holds one result per run however it was computed.

    :param snapshot_steps: environment-step counts at which to keep a copy of the actor weights;
        each is taken at the end of the first iteration reaching it.
    :param count_flops: count the torch FLOPs of the run (``flops`` is 0 otherwise). Counting slows
        every op down, so timed runs leave it off and a separate run counts.
    :param store: a directory of finished runs (see :func:`finetune_subsets`): the run is loaded
        from it when there, else computed and saved there.
    """
    if store is not None:
        stored = _StoredRun.at(store, family_name, _weights_fingerprint(init_state), subset, cfg, seed,
                               snapshot_steps, count_flops, _key_versions(family_name))
        run = stored.load(_environment())  # computed here if not loaded: this process's environment is the one
        if run is None:
            run = finetune_subset(family_name, init_state, subset, cfg, seed, snapshot_steps, count_flops)
            stored.save(run, _environment())
        return run
    subset = tuple(int(t) for t in make_family(family_name).check_tasks(subset))
    if len(set(subset)) != len(subset):
        raise ValueError(f"subset {subset} repeats a task")
    counter = FlopCounterMode(display=False)
    with counter if count_flops else nullcontext():
        (run,) = _finetune_batch(family_name, init_state, [(subset, seed)], cfg, snapshot_steps)
    if count_flops:
        run.flops = int(counter.get_total_flops())
    return run


def finetune_subsets(
    family_name: str,
    init_state: tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]] | None,
    subsets: Sequence[Sequence[int]],
    cfg: PPOConfig,
    seed: int,
    snapshot_steps: Sequence[int] = (),
    n_jobs: int = -1,
    replicates: int = 1,
    store: str | Path | None = None,
    batch_runs: int | None = None,
) -> list[list[FinetuneResult]]:
    """:func:`finetune_subset` for every subset, ``replicates`` times, in parallel:
    ``result[j][s]`` is replicate j of subset s.

    Runs go to the workers in batches of ``batch_runs`` trained together in one process
    (:func:`_finetune_batch`: each run's bits are its own whatever its batch; a batch is the unit
    a worker gets, and each of its runs is stored as the batch ends). None: as many as fill the
    workers evenly, at most :data:`MAX_BATCH_RUNS`; 1: one :func:`finetune_subset` per job, as
    before batching. A run's ``wall_time`` is then its batch's divided by the batch's runs.

    Common random numbers: replicate j of *every* subset runs with seed ``seed + j``, so that two
    subsets' results differ by their tasks, not by the luck of their seeds, and the replicates
    measure how much a result moves when only the seed changes.

    The backend is whatever ``joblib.parallel_config`` says (loky processes by default); on a
    cluster, ``with parallel_config(backend="dask"): finetune_subsets(...)`` runs the same jobs on
    the Dask workers. ``n_jobs=-1`` uses every core (or worker) the backend has.

    :param store: a directory where each run (one subset, one replicate) is saved the moment it
        ends, keyed by all that determines it: family spec, the bytes of ``init_state``, subset,
        config, the run's seed, snapshot steps, FLOP counting, the versions of torch, numpy,
        gymnasium and the env packages, and the code versions of this module and of the family's
        own. Each file also holds the device and library versions of the process that computed the
        run (a Dask or Ray worker, not this process); a run is reused only where a run computed now
        would get the same ones, which a job of the backend reports (on a heterogeneous cluster, one
        worker's answer).
        Runs found there are loaded (the very object that was computed, with ``from_store`` set),
        so a call killed halfway and made again computes only the runs that had not finished; a
        file that is truncated, corrupt, of another run or of another device or library is reported
        and recomputed. None (the default) reads and writes nothing: a caller that times
        fine-tuning must not be handed old runs. The stages pass :func:`default_store`.
    """
    if len(subsets) == 0:
        raise ValueError("subsets is empty")
    if not isinstance(replicates, int) or replicates < 1:
        raise ValueError(f"replicates must be an integer >= 1, got {replicates!r}")
    runs = [(subset, seed + j) for j in range(replicates) for subset in subsets]
    if store is None:
        stored: list[_StoredRun | None] = [None] * len(runs)
        flat: list[FinetuneResult | None] = [None] * len(runs)
    else:
        fingerprint, versions = _weights_fingerprint(init_state), _key_versions(family_name)
        stored = [_StoredRun.at(store, family_name, fingerprint, subset, cfg, run_seed, snapshot_steps, False, versions)
                  for subset, run_seed in runs]
        # Where a run computed now would run (asked only when there is a file to check it against).
        expected = _backend_environment(n_jobs) if any(entry.path.exists() for entry in stored) else {}
        flat = [entry.load(expected) for entry in stored]
    todo = [i for i, run in enumerate(flat) if run is None]
    for subset in {tuple(runs[i][0]) for i in todo}:
        if len(set(subset)) != len(subset):
            raise ValueError(f"subset {subset} repeats a task")
    desc = f"fine-tuning {family_name}"
    if store is not None:
        desc += f" ({len(runs) - len(todo)} of {len(runs)} runs loaded from {store})"
        logger.info("%s: %d runs to compute", desc, len(todo))
    if batch_runs == 1:
        jobs = (delayed(_numbered_run)(i, family_name, init_state, runs[i][0], cfg, runs[i][1], snapshot_steps)
                for i in todo)
    else:
        jobs = (delayed(_numbered_batch)(batch, family_name, init_state, [runs[i] for i in batch], cfg, snapshot_steps)
                for batch in _batches(todo, runs, batch_runs, n_jobs))
    # Runs arrive in the order their jobs end, and are saved here as each job's arrive: only this
    # process writes the store, so remote workers (Dask, Ray) need no access to it.
    with tqdm(total=len(runs), initial=len(runs) - len(todo), desc=desc) as bar:
        for done in Parallel(n_jobs=n_jobs, batch_size=1, return_as="generator_unordered")(jobs):
            for i, run, environment in (done if batch_runs != 1 else [done]):
                if stored[i] is not None:
                    stored[i].save(run, environment)
                flat[i] = run
                bar.update(1)
    return [flat[j * len(subsets):(j + 1) * len(subsets)] for j in range(replicates)]


def _snapshot_iterations(batch: int, snapshot_steps: Sequence[int]) -> list[int]:
    """The iterations (counted from 1) at whose end a run's actor is kept: the first to reach each
    of ``snapshot_steps`` env steps, ``batch`` steps an iteration."""
    return sorted({max(1, -(-int(s) // batch)) for s in snapshot_steps})


MAX_BATCH_RUNS = 32
"""Most runs one worker trains together: past a few dozen, a batch gains little more per run
(``benchmarks/bench_finetune_batch.py``) and a killed batch loses more finished work."""


def _batches(todo: list[int], runs: list[tuple[Sequence[int], int]], batch_runs: int | None,
             n_jobs: int) -> list[list[int]]:
    """``todo`` in batches of runs of one subset size (a batch shares one shape), in order; sized to
    spread the runs evenly over the workers when ``batch_runs`` is None."""
    if batch_runs is not None and (not isinstance(batch_runs, int) or batch_runs < 1):
        raise ValueError(f"batch_runs must be None or an integer >= 1, got {batch_runs!r}")
    by_size: dict[int, list[int]] = {}
    for i in todo:
        by_size.setdefault(len(runs[i][0]), []).append(i)
    batches = []
    for group in by_size.values():
        size = batch_runs or max(1, min(MAX_BATCH_RUNS, -(-len(group) // joblib.effective_n_jobs(n_jobs))))
        batches += [group[k:k + size] for k in range(0, len(group), size)]
    return batches


def _numbered_batch(indices: list[int], family_name: str, init_state, runs: list[tuple[Sequence[int], int]],
                    cfg: PPOConfig, snapshot_steps: Sequence[int]) -> list[tuple[int, FinetuneResult, dict[str, str]]]:
    """One job: the ``runs`` trained together (:func:`_finetune_batch`), each returned with its place in
    the call and the environment of the process that ran it."""
    environment = _environment()
    return [(i, run, environment) for i, run in zip(indices, _finetune_batch(family_name, init_state, runs, cfg,
                                                                              snapshot_steps))]


def _finetune_batch(family_name: str, init_state, runs: list[tuple[Sequence[int], int]], cfg: PPOConfig,
                    snapshot_steps: Sequence[int]) -> list[FinetuneResult]:
    """PPO fine-tuning of each ``(subset, seed)`` of ``runs``, trained together by ``train_many``
    with padded minibatches (``exact=False``): 2.4-2.7x the runs per core-hour of ``train`` one
    by one on CartPole and navigation, 2x on highway (``benchmarks/bench_finetune_batch.py``),
    every run within float tolerance of ``train``'s over a short run and statistically equal over
    a long one (``tests/test_ppo_batch.py``), and each run's bits the same whichever runs share
    its batch (alone included). Snapshots are taken at the end of the iterations reaching
    ``snapshot_steps``."""
    from pgx.algos.ppo_batch import train_many

    family = make_family(family_name)
    subsets = [tuple(int(t) for t in family.check_tasks(subset)) for subset, _ in runs]
    batch = cfg.batch_size(len(subsets[0]))
    wanted = _snapshot_iterations(batch, snapshot_steps)
    snapshots: list[dict[int, dict[str, torch.Tensor]]] = [{} for _ in runs]

    def snapshot(iteration: int, r: int, agent: torch.nn.Module) -> None:
        if iteration + 1 in wanted:
            snapshots[r][(iteration + 1) * batch] = {k: v.detach().cpu().clone()
                                                     for k, v in agent.actor.state_dict().items()}

    with single_thread():
        start = time.perf_counter()
        results = train_many(family, [(subset, seed) for subset, (_, seed) in zip(subsets, runs)], cfg,
                             init_state=init_state, on_iteration=snapshot if wanted else None, exact=False)
        seconds = (time.perf_counter() - start) / len(runs)
    return [FinetuneResult(subset=subset, actor_state=result.actor_state, critic_state=result.critic_state,
                           snapshots=snapshots[r], wall_time=seconds, flops=0)
            for r, (subset, result) in enumerate(zip(subsets, results))]


# --- the store of finished runs ---------------------------------------------------------------

def default_store() -> Path:
    """The store the stages keep finished runs in: inside the stage cache directory, beside the
    stages' own result folders (``stages/<module>.<function>/``), so that deleting it to force a
    recompute deletes the runs too, while forgetting one stage's results keeps them."""
    from pgx.keys import cache_dir

    return cache_dir() / "stages" / "finetune_runs"


def _numbered_run(i: int, *args) -> tuple[int, FinetuneResult, dict[str, str]]:
    """One job: :func:`finetune_subset` on ``args``, returned with its place ``i`` in the call and the
    environment of the process that ran it (a remote worker's, not the caller's)."""
    return i, finetune_subset(*args), _environment()


def _weights_fingerprint(init_state: tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]] | None) -> str:
    """sha256 of the names, shapes, dtypes and bytes of the actor and critic weights a run starts from."""
    if init_state is None:
        return "fresh"
    digest = hashlib.sha256()
    for part, state in zip(("actor", "critic"), init_state):
        for name in sorted(state):
            t = state[name].detach().cpu().contiguous()
            digest.update(f"{part}.{name}:{tuple(t.shape)}:{t.dtype};".encode())
            digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def _key_versions(family_name: str) -> dict[str, str]:
    """What else a run's numbers depend on, in the key: the code of this module with all it imports
    and of the family's own module (``pgx.keys.trainer_version``; not the calling stage's,
    so an edit to the surrogate or the affinity reuses every run), and the library versions.
    (Imported here, where it is needed, so that workers importing this module do not import every
    stage.)"""
    from pgx.keys import trainer_version

    return {"code": trainer_version("finetune", family_name), **_library_versions()}


def _library_versions() -> dict[str, str]:
    from pgx.keys import library_versions

    return dict(library_versions())


def _environment() -> dict[str, str]:
    """Where a run is computed, measured in the process computing it: the device (the GPU's model:
    kernels differ) and the library versions."""
    device = pick_device()
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else device.type
    return {"device": name, **_library_versions()}


def _backend_environment(n_jobs: int) -> dict[str, str]:
    """:func:`_environment` as a job of the current joblib backend sees it: where a run computed now
    would run (a worker of a Dask or Ray cluster; this process itself when ``n_jobs=1``)."""
    (environment,) = Parallel(n_jobs=n_jobs)([delayed(_environment)()])
    return environment


@dataclass(frozen=True)
class _StoredRun:
    """Where one run is saved in a store, and the key the file must hold to be reused.

    The file is a sha256 line of the payload, then the payload (``torch.save`` of the key, the
    environment that computed the run and the :class:`FinetuneResult`): a truncated or altered file
    fails the checksum instead of being read.
    """

    path: Path
    key: dict

    @classmethod
    def at(cls, store: str | Path, family_name: str, fingerprint: str, subset: Sequence[int], cfg: PPOConfig,
           seed: int, snapshot_steps: Sequence[int], count_flops: bool, versions: dict[str, str]) -> _StoredRun:
        # Keyed by the run's own seed, not (base seed, replicate): both name the same computation.
        key = {"family": family_name, "init": fingerprint, "subset": tuple(int(t) for t in subset), "config": cfg,
               "seed": int(seed), "snapshot_steps": tuple(int(s) for s in snapshot_steps),
               "count_flops": bool(count_flops), **versions}
        return cls(Path(store) / f"{joblib.hash(key)}.pt", key)

    def save(self, run: FinetuneResult, environment: dict[str, str]) -> None:
        buffer = io.BytesIO()
        torch.save({"key": self.key, "environment": environment, "run": run}, buffer)
        payload = buffer.getvalue()
        checksum = hashlib.sha256(payload).hexdigest().encode()
        atomic_write(self.path, lambda tmp: tmp.write_bytes(checksum + b"\n" + payload))

    def load(self, expected: dict[str, str]) -> FinetuneResult | None:
        """The saved run, or None when there is none, the file cannot be trusted or the run was
        computed in another environment than ``expected`` (then a warning names it, and the run is
        recomputed and the file replaced)."""
        if not self.path.exists():
            return None
        checksum, _, payload = self.path.read_bytes().partition(b"\n")
        if hashlib.sha256(payload).hexdigest().encode() != checksum:
            logger.warning("fine-tuning run %s is truncated or corrupt (checksum mismatch); recomputing it", self.path)
            return None
        try:
            saved = torch.load(io.BytesIO(payload), map_location="cpu", weights_only=False)
        except Exception as e:  # checksummed yet unreadable: written by another torch or pgx (a class moved)
            if not (is_damage(e) or isinstance(e, ImportError)):
                raise
            logger.warning("fine-tuning run %s cannot be loaded (%s: %s); recomputing it", self.path,
                           type(e).__name__, e)
            return None
        if not (isinstance(saved, dict) and saved.get("key") == self.key
                and isinstance(saved.get("run"), FinetuneResult)):
            logger.warning("fine-tuning run %s holds another run than its name says; recomputing it", self.path)
            return None
        computed_on = saved.get("environment")
        if computed_on != expected:
            changes = {name: f"{(computed_on or {}).get(name)} -> {expected.get(name)}"
                       for name in sorted({*(computed_on or {}), *expected})
                       if (computed_on or {}).get(name) != expected.get(name)}
            logger.warning("fine-tuning run %s was computed elsewhere than a run now would be (%s); recomputing it",
                           self.path, ", ".join(f"{k}: {v}" for k, v in changes.items()))
            return None
        return replace(saved["run"], from_store=True)
