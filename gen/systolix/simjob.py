"""The hand-off between a host process and a cocotb simulation: a job directory.

The host writes ``job.json`` plus the operand matrices; the cocotb test (running inside the
simulator's embedded Python) reads them, and writes ``result.json`` and ``result.npz`` back.
Files, not pickles, so a failed run can be replayed by hand (``SYSTOLIX_JOB=dir/job.json``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .config import config_from_dict

__all__ = ["JOB_ENV", "SimJob", "JobOutcome", "write_job", "read_job", "write_outcome",
           "read_outcome"]

#: Environment variable through which the cocotb test finds its job file.
JOB_ENV = "SYSTOLIX_JOB"


@dataclass
class SimJob:
    """What one simulation run must do."""

    config: object  # SystolicConfig or EngineConfig
    #: [(A, B), ...]; for an engine an entry may instead be a dimension triple (m, k, n): a
    #: command the engine must reject (its result and cycles are then None)
    operands: list
    back_to_back: bool = True
    stall_prob: float = 0.0
    seed: int = 0


@dataclass
class JobOutcome:
    """What the simulation produced, per GEMM."""

    results: list = field(default_factory=list)     # C matrices (None where not produced)
    cycles: list = field(default_factory=list)      # measured cycles per GEMM (engine: compute)
    total_cycles: int = 0                           # first accepted beat to last output row
    job_cycles: list = field(default_factory=list)  # engine: command handshake to `done`
    errors: list = field(default_factory=list)      # engine: the `error` flag after each job
    failures: list = field(default_factory=list)    # scoreboard / protocol messages


def write_job(job: SimJob, directory):
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    arrays, rejects = {}, {}
    for i, entry in enumerate(job.operands):
        if len(entry) == 3:
            rejects[str(i)] = [int(d) for d in entry]
            continue
        a, b = entry
        arrays[f"a{i}"] = np.asarray(a, dtype=np.int64)
        arrays[f"b{i}"] = np.asarray(b, dtype=np.int64)
    np.savez(directory / "operands.npz", **arrays)
    meta = {"config": job.config.to_dict(), "count": len(job.operands), "rejects": rejects,
            "back_to_back": job.back_to_back, "stall_prob": job.stall_prob, "seed": job.seed}
    (directory / "job.json").write_text(json.dumps(meta, indent=2))
    return directory / "job.json"


def read_job(path) -> SimJob:
    path = Path(path)
    meta = json.loads(path.read_text())
    rejects = meta.get("rejects", {})
    with np.load(path.parent / "operands.npz") as f:
        operands = [tuple(rejects[str(i)]) if str(i) in rejects else (f[f"a{i}"], f[f"b{i}"])
                    for i in range(meta["count"])]
    return SimJob(config=config_from_dict(meta["config"]), operands=operands,
                  back_to_back=meta["back_to_back"], stall_prob=meta["stall_prob"],
                  seed=meta["seed"])


def write_outcome(outcome: JobOutcome, directory):
    directory = Path(directory)
    np.savez(directory / "result.npz",
             **{f"c{i}": c for i, c in enumerate(outcome.results) if c is not None})
    (directory / "result.json").write_text(json.dumps({
        "cycles": outcome.cycles, "total_cycles": outcome.total_cycles,
        "job_cycles": outcome.job_cycles, "errors": outcome.errors,
        "failures": outcome.failures, "count": len(outcome.results)}, indent=2))


def read_outcome(directory) -> JobOutcome | None:
    directory = Path(directory)
    if not (directory / "result.json").is_file():
        return None
    meta = json.loads((directory / "result.json").read_text())
    with np.load(directory / "result.npz") as f:
        results = [f[f"c{i}"] if f"c{i}" in f else None for i in range(meta["count"])]
    return JobOutcome(results=results, cycles=meta["cycles"], total_cycles=meta["total_cycles"],
                      job_cycles=meta["job_cycles"], errors=meta["errors"],
                      failures=meta["failures"])
