"""Host side of the tensor-core MMA unit: cycle model, beat packing and simulation jobs.

The bit layouts follow :func:`systolix.hdl.tensorcore.mma_input_layout` / ``mma_output_layout``:
fields ``a``, ``b``, ``c`` (then ``d`` on the output) in that order from bit 0, each a row-major
matrix with element 0 at the least significant bits. Packing is vectorised so a testbench does
no per-element Python work while the simulator runs.

A simulation job is a directory with ``job.json`` and ``operands.npz`` (A, B, C stacked over the
beats); the cocotb test :mod:`systolix_tb.mma_test` writes ``result.json`` and ``result.npz``
(D per beat, issue and result cycles) back. A failing job directory is kept under
``sim_out/<name>/<sim>/jobs/``; replay it with ``SYSTOLIX_JOB=<dir>/job.json``.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..config import TensorCoreConfig
from ..errors import SystolixError
from .job import JOB_ENV
from ..model.tiling import _bits_to_ints, _to_bits

__all__ = ["stream_cycles", "pack_input_beats", "unpack_output_beats", "MMAJob", "MMAOutcome",
           "write_job", "read_job", "write_outcome", "read_outcome", "run_job", "TEST_MODULE"]

TEST_MODULE = "systolix_tb.mma_test"


def stream_cycles(config: TensorCoreConfig, beats):
    """Cycles for ``beats`` MMAs issued back to back, first accepted beat to last result,
    both inclusive: ``beats + latency`` (the unit's initiation interval is 1)."""
    if not isinstance(beats, int) or beats < 1:
        raise ValueError(f"beats must be a positive integer, not {beats!r}")
    return beats + config.latency


def _check_shapes(config, a, b, c):
    m, n, k = config.m, config.n, config.k
    if a.ndim != 3 or b.ndim != 3 or c.ndim != 3:
        raise ValueError("a, b, c must be stacks of matrices: (beats, rows, cols)")
    want = {"a": (m, k), "b": (k, n), "c": (m, n)}
    for name, arr in (("a", a), ("b", b), ("c", c)):
        if arr.shape[1:] != want[name] or arr.shape[0] != a.shape[0]:
            raise ValueError(f"{name} has shape {arr.shape}, expected ({a.shape[0]}, "
                             f"{want[name][0]}, {want[name][1]})")


def pack_input_beats(config: TensorCoreConfig, a, b, c):
    """Stacks A (N, m, k), B (N, k, n), C (N, m, n) -> N ``i__payload`` integers."""
    a, b, c = (np.asarray(x, dtype=np.int64) for x in (a, b, c))
    _check_shapes(config, a, b, c)
    nb, w, acc = a.shape[0], config.numerics.in_width, config.numerics.acc_width
    bits = np.concatenate([_to_bits(a.reshape(nb, -1), w), _to_bits(b.reshape(nb, -1), w),
                           _to_bits(c.reshape(nb, -1), acc)], axis=-1)
    return _bits_to_ints(bits)


def unpack_output_beats(config: TensorCoreConfig, payloads):
    """``o__payload`` integers -> D stack (N, m, n), int64."""
    m, n, acc = config.m, config.n, config.numerics.acc_width
    count = m * n
    nbytes = (count * acc + 7) // 8
    raw = np.frombuffer(b"".join(p.to_bytes(nbytes, "little") for p in payloads),
                        dtype=np.uint8).reshape(len(payloads), nbytes)
    bits = np.unpackbits(raw, axis=1, bitorder="little")[:, :count * acc]
    weights = np.left_shift(np.uint64(1), np.arange(acc, dtype=np.uint64))
    d = (bits.reshape(-1, count, acc).astype(np.uint64) * weights).sum(axis=-1).astype(np.int64)
    if acc < 64:
        sign = np.int64(1 << (acc - 1))
        d = (d ^ sign) - sign
    return d.reshape(len(payloads), m, n)


@dataclass
class MMAJob:
    """What one simulation must do: issue beat i = (a[i], b[i], c[i]) in order."""

    config: TensorCoreConfig
    a: np.ndarray  # (N, m, k)
    b: np.ndarray  # (N, k, n)
    c: np.ndarray  # (N, m, n)
    stall_prob: float = 0.0  # chance of holding i__valid low in a cycle
    seed: int = 0


@dataclass
class MMAOutcome:
    """What the simulation produced."""

    d: np.ndarray | None = None                     # (N, m, n) results in output order
    issue_cycles: list = field(default_factory=list)   # cycle each beat was accepted
    result_cycles: list = field(default_factory=list)  # cycle each result was valid
    failures: list = field(default_factory=list)


def write_job(job: MMAJob, directory):
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    np.savez(directory / "operands.npz", a=np.asarray(job.a, np.int64),
             b=np.asarray(job.b, np.int64), c=np.asarray(job.c, np.int64))
    (directory / "job.json").write_text(json.dumps(
        {"config": job.config.to_dict(), "stall_prob": job.stall_prob, "seed": job.seed},
        indent=2))
    return directory / "job.json"


def read_job(path) -> MMAJob:
    path = Path(path)
    meta = json.loads(path.read_text())
    with np.load(path.parent / "operands.npz") as f:
        a, b, c = f["a"], f["b"], f["c"]
    return MMAJob(TensorCoreConfig.from_dict(meta["config"]), a, b, c,
                  stall_prob=meta["stall_prob"], seed=meta["seed"])


def write_outcome(outcome: MMAOutcome, directory):
    directory = Path(directory)
    arrays = {} if outcome.d is None else {"d": outcome.d}
    np.savez(directory / "result.npz", **arrays)
    (directory / "result.json").write_text(json.dumps({
        "issue_cycles": outcome.issue_cycles, "result_cycles": outcome.result_cycles,
        "failures": outcome.failures}, indent=2))


def read_outcome(directory) -> MMAOutcome | None:
    directory = Path(directory)
    if not (directory / "result.json").is_file():
        return None
    meta = json.loads((directory / "result.json").read_text())
    with np.load(directory / "result.npz") as f:
        d = f["d"] if "d" in f else None
    return MMAOutcome(d=d, issue_cycles=meta["issue_cycles"],
                      result_cycles=meta["result_cycles"], failures=meta["failures"])


def run_job(job: MMAJob, simulator="icarus", work_dir="sim_out", *, waves=False):
    """Simulate ``job`` on the emitted RTL; returns the :class:`MMAOutcome`.

    Builds (or reuses) the design with :func:`systolix.sim.runner.build`. Mismatches found inside
    the simulation are listed in ``outcome.failures``; callers decide what they mean.
    """
    from . import runner as simulate

    build_dir = simulate.build(job.config, simulator, work_dir)
    jobs_dir = build_dir / "jobs"
    jobs_dir.mkdir(exist_ok=True)
    job_dir = Path(tempfile.mkdtemp(prefix="mma-", dir=jobs_dir))
    job_file = write_job(job, job_dir)
    log = job_dir / "sim.log"
    with simulate._tool_environment(simulator):
        try:
            simulate._runner(simulator).test(
                test_module=TEST_MODULE, hdl_toplevel=job.config.name,
                hdl_toplevel_lang="verilog", build_dir=build_dir / "sim", test_dir=job_dir,
                results_xml=str(job_dir / "results.xml"),
                extra_env={JOB_ENV: str(job_file)}, log_file=log, waves=waves, seed=job.seed)
        except (RuntimeError, SystemExit):
            pass  # a failing cocotb test still leaves its outcome; judged by the caller
    outcome = read_outcome(job_dir)
    if outcome is None:
        raise SystolixError(f"simulation produced no result; see {log}")
    if not outcome.failures and not waves:
        shutil.rmtree(job_dir, ignore_errors=True)
    return outcome
