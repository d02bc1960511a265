"""``systolix regress``: random GEMM jobs through the RTL, one per seed, checked against the
models.

Each seed draws one job (:func:`draw_job`): a design (a bare output-stationary array, or a
matrix engine around an output-stationary or weight-stationary array or tensor-core MMA
units), its numerics (operand width, signedness, accumulator width, wrap or saturate, for an
engine sometimes the requantizer), a few GEMM shapes with random operands (for an engine also
a command it must reject) and a probability of stream stalls. :func:`run_seed` runs it through
the one runner (:func:`systolix.sim.runner.run`) and the one check
(:func:`systolix.sim.verify.verify`); :func:`run_regress` spreads the seeds over local
processes or a Dask cluster (:func:`systolix.cluster.run_tasks`). A seed draws the same job
whatever else runs, so ``systolix regress --seeds 1 --first-seed S`` replays seed ``S``.
"""

from __future__ import annotations

import contextlib
import fcntl
import shlex
import time
from pathlib import Path

import numpy as np

from .. import cache
from ..cluster import Progress, run_tasks
from ..config import Dataflow, EngineConfig, Numerics, RequantConfig, SystolicConfig, TensorCoreConfig
from ..errors import SystolixError
from .job import SimJob
from .runner import build, check_simulator, run
from .verify import verify

__all__ = ["draw_job", "replay_command", "run_seed", "run_regress"]


def _numerics(rng, *, requant):
    if requant:  # the requantizer takes int32 accumulators of 8-bit operands
        return Numerics(8, 32, signed=bool(rng.random() < 0.7), saturate=bool(rng.random() < 0.5))
    in_width = int(rng.choice([8, 8, 8, 4, 6, 12]))
    signed = bool(rng.random() < 0.7)
    product = 2 * in_width + (0 if signed else 1)
    # narrow accumulators overflow within a few products: the wrap/saturate rule gets exercised
    acc = int(rng.choice([32, product, product + 2, product + 5, min(64, product + 20)]))
    return Numerics(in_width, max(acc, product), signed=signed,
                    saturate=bool(rng.random() < 0.5))


def _operands(rng, numerics, m, k, n):
    # half of the jobs use the full range (overflow), half small values (exact sums)
    lo, hi = numerics.in_min, numerics.in_max
    if rng.random() < 0.5:
        lo, hi = max(lo, -3), min(hi, 3)
    return (rng.integers(lo, hi + 1, (m, k), dtype=np.int64),
            rng.integers(lo, hi + 1, (k, n), dtype=np.int64))


def draw_job(seed):
    """The job of ``seed``: a :class:`~systolix.sim.job.SimJob` on a small random design."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, not {seed!r}")
    rng = np.random.default_rng([int(seed), 0x5157])  # a stream of its own per seed
    kind = str(rng.choice(["array", "os", "ws", "tensorcore"]))
    if kind == "array":
        numerics = _numerics(rng, requant=False)
        pipeline = str(rng.choice(["none", "none", "product", "full"]))
        config = SystolicConfig(int(rng.integers(1, 5)), int(rng.integers(1, 5)),
                                numerics=numerics, pipeline=pipeline)
        limits = None
    else:
        limits = tuple(int(x) for x in rng.integers(4, 13, 3))
        if kind == "tensorcore":
            numerics = _numerics(rng, requant=False)
            m, n, k = (int(x) for x in rng.integers(1, 4, 3))
            core = TensorCoreConfig(m, n, k, pipeline=int(rng.integers(0, 2)),
                                    numerics=numerics)
            config = EngineConfig(max_m=limits[0], max_k=limits[1], max_n=limits[2], core=core,
                                  cores=int(rng.integers(1, 3)))
        else:
            requant = bool(rng.random() < 0.3)
            numerics = _numerics(rng, requant=requant)
            rows, cols = int(rng.integers(1, 5)), int(rng.integers(1, 5))
            array = SystolicConfig(rows, cols, Dataflow(kind), numerics)
            config = EngineConfig(array, *limits,
                                  requant=RequantConfig(cols, bool(rng.random() < 0.5))
                                  if requant else None)
    gemms = int(rng.integers(1, 4))
    operands = []
    for _ in range(gemms):
        if limits is None:
            m, k, n = (int(x) for x in rng.integers(1, 10, 3))
        else:
            m, k, n = (int(rng.integers(1, lim + 1)) for lim in limits)
        a, b = _operands(rng, config.numerics, m, k, n)
        if getattr(config, "requant", None) is not None:
            from ..model import golden, quant
            acc = golden.gemm(a, b, config.numerics, config.accumulation_chunk)
            operands.append((a, b, quant.spanning_params(rng, acc,
                                                         config.requant.out_signed)))
        else:
            operands.append((a, b))
    if limits is not None and rng.random() < 0.25:
        dims = list(limits)
        dims[int(rng.integers(0, 3))] += 1  # one past the buffers: must be rejected
        operands.insert(int(rng.integers(0, len(operands) + 1)), tuple(dims))
    stall_prob = float(rng.choice([0.0, 0.0, 0.2, 0.5]))
    return SimJob(config, operands, back_to_back=bool(rng.random() < 0.5),
                  stall_prob=stall_prob, seed=int(seed))


def replay_command(seed, simulator):
    """The command line that runs seed ``seed`` alone."""
    return shlex.join(["systolix", "regress", "--seeds", "1", "--first-seed", str(seed),
                       "--sim", simulator])


@contextlib.contextmanager
def _locked(path):
    """An exclusive lock on ``path`` (a file), between processes: workers that draw the same
    design build it once, one after the other, never both at once into one directory."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _shape(entry):
    if isinstance(entry[0], (int, np.integer)):
        return "reject " + "x".join(str(int(d)) for d in entry)
    a, b = entry[:2]
    return f"{a.shape[0]}x{a.shape[1]}x{b.shape[1]}"


def run_seed(seed, simulator="icarus", work_dir="sim_out/regress"):
    """Run and verify the job of ``seed``; returns a dict: ``seed``, ``design``, ``gemms``
    (shapes), ``stall_prob``, ``ok``, ``problems``, ``job_dir`` (a failing job's directory,
    kept for replay), ``seconds`` and ``command`` (the replay command).

    A missing simulator raises :class:`SystolixError` (nothing can run here); anything that
    goes wrong with the design or its simulation is a failing seed."""
    check_simulator(simulator)
    t0 = time.monotonic()
    job = draw_job(seed)
    config = job.config
    record = {"seed": int(seed), "design": config.name, "kind": type(config).__name__,
              "gemms": [_shape(e) for e in job.operands], "stall_prob": job.stall_prob,
              "command": replay_command(seed, simulator), "job_dir": None}
    try:
        with _locked(Path(work_dir) / ".locks" / f"{config.name}.{simulator}"):
            build(config, simulator, work_dir, write_verilog=job.write_verilog)
        outcome = run(job, simulator, work_dir)
        report = verify(job, outcome)
        record["problems"] = report.problems
        record["job_dir"] = str(outcome.job_dir) if outcome.job_dir else None
    except SystolixError as e:
        record["problems"] = [str(e)]
    record["ok"] = not record["problems"]
    record["seconds"] = round(time.monotonic() - t0, 2)
    return record


def run_regress(seeds, first_seed=1, simulator="icarus", work_dir="sim_out/regress", *,
                jobs=1, scheduler=None, progress=True, seed_function=run_seed,
                connect_timeout=None):
    """Run seeds ``first_seed .. first_seed + seeds - 1`` (``jobs`` local processes, or the
    workers of the Dask cluster at ``scheduler``); returns the summary dict: ``seeds``,
    ``first_seed``, ``simulator``, ``passed``, ``failed`` (the failing seeds' records) and
    ``results`` (every seed's record, in seed order)."""
    if seeds < 1:
        raise SystolixError(f"--seeds must be at least 1, not {seeds}")
    if scheduler is None:  # on a cluster, the workers need the simulator, not this machine
        check_simulator(simulator)
    numbers = list(range(first_seed, first_seed + seeds))
    bar = Progress(len(numbers), "regress") if progress else None
    results = [None] * len(numbers)
    args = [(s, simulator, str(work_dir)) for s in numbers]
    keys = [f"systolix-regress-{seed_function.__name__}-" + cache.digest(list(a))[:24]
            for a in args]
    for i, record in run_tasks(seed_function, args, labels=[f"seed {s}" for s in numbers],
                               scheduler=scheduler, jobs=jobs, keys=keys,
                               connect_timeout=connect_timeout):
        results[i] = record
        if bar:
            bar.step(f"seed {record['seed']} {record['design']}: "
                     + ("ok" if record["ok"] else "FAILED"))
    failed = [r for r in results if not r["ok"]]
    return {"seeds": seeds, "first_seed": first_seed, "simulator": simulator,
            "passed": len(results) - len(failed), "failed": failed, "results": results}
