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

from ..config import config_from_dict

__all__ = ["JOB_ENV", "SimJob", "JobOutcome", "StreamJob", "write_job", "read_job",
           "write_outcome", "write_stream_job", "read_stream_job", "write_stream_outcome",
           "read_stream_outcome",
           "read_outcome"]

#: Environment variable through which the cocotb test finds its job file.
JOB_ENV = "SYSTOLIX_JOB"


def is_reject(entry):
    """An operand-list entry that is a bare (m, k, n) command the engine must reject."""
    return isinstance(entry[0], (int, np.integer))


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
    arrays, rejects, params = {}, {}, {}
    for i, entry in enumerate(job.operands):
        if is_reject(entry):
            rejects[str(i)] = [int(d) for d in entry]
            continue
        a, b = entry[:2]
        arrays[f"a{i}"] = np.asarray(a, dtype=np.int64)
        arrays[f"b{i}"] = np.asarray(b, dtype=np.int64)
        if len(entry) == 3:  # requantization parameters for an engine with a requantizer
            params[str(i)] = entry[2].to_dict()  # a systolix.model.quant.RequantParams
    np.savez(directory / "operands.npz", **arrays)
    meta = {"config": job.config.to_dict(), "count": len(job.operands), "rejects": rejects,
            "params": params,
            "back_to_back": job.back_to_back, "stall_prob": job.stall_prob, "seed": job.seed}
    (directory / "job.json").write_text(json.dumps(meta, indent=2))
    return directory / "job.json"


def read_job(path) -> SimJob:
    path = Path(path)
    meta = json.loads(path.read_text())
    rejects, params = meta.get("rejects", {}), meta.get("params", {})
    operands = []
    with np.load(path.parent / "operands.npz") as f:
        for i in range(meta["count"]):
            if str(i) in rejects:
                operands.append(tuple(rejects[str(i)]))
            elif str(i) in params:
                from ..model.quant import RequantParams
                operands.append((f[f"a{i}"], f[f"b{i}"],
                                 RequantParams.from_dict(params[str(i)])))
            else:
                operands.append((f[f"a{i}"], f[f"b{i}"]))
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


@dataclass
class StreamJob:
    """Feed ``inputs`` (payload integers) into a stream pipeline's ``i`` and expect exactly
    ``expected`` on its ``o``, in order, with random stalls on both sides."""

    config: object
    inputs: list
    expected: list
    stall_prob: float = 0.0
    seed: int = 0


def write_stream_job(job: StreamJob, directory):
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "job.json").write_text(json.dumps({
        "kind": "stream", "config": job.config.to_dict(),
        "inputs": [hex(x) for x in job.inputs], "expected": [hex(x) for x in job.expected],
        "stall_prob": job.stall_prob, "seed": job.seed}))
    return directory / "job.json"


def read_stream_job(path) -> StreamJob:
    meta = json.loads(Path(path).read_text())
    return StreamJob(config=config_from_dict(meta["config"]),
                     inputs=[int(x, 16) for x in meta["inputs"]],
                     expected=[int(x, 16) for x in meta["expected"]],
                     stall_prob=meta["stall_prob"], seed=meta["seed"])


def write_stream_outcome(outputs, failures, directory):
    (Path(directory) / "result.json").write_text(json.dumps(
        {"outputs": [hex(x) for x in outputs], "failures": failures}))


def read_stream_outcome(directory):
    path = Path(directory) / "result.json"
    if not path.is_file():
        return None
    meta = json.loads(path.read_text())
    return [int(x, 16) for x in meta["outputs"]], meta["failures"]
