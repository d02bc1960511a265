"""The hand-off between a host process and a cocotb simulation: a job directory.

The host writes ``job.json`` (the kind of job, the config and every scalar field) and
``operands.npz`` (every array); the cocotb test, running inside the simulator's embedded Python,
reads them with :func:`read_job` and writes its outcome back with :func:`write_outcome`
(``result.json`` and ``result.npz``). Files, not pickles, so a failed run can be replayed by hand
(``SYSTOLIX_JOB=dir/job.json``).

There is one writer and one reader for each side; the kinds of job (:class:`SimJob` for GEMMs on
an array or engine, :class:`StreamJob`, :class:`MMAJob`, and the board scenarios of
:mod:`systolix.board.sim`) differ only in their fields. A field's value may be a number, string,
``None``, a numpy array, a list, tuple or string-keyed dict of those, or a
:class:`~systolix.model.quant.RequantParams`; arrays go to the ``.npz`` file, everything else to
the JSON file. Each file is written atomically and ``result.json`` last, so a result that exists
is complete.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import numpy as np

from ..config import EngineConfig, TensorCoreConfig
from ..fileio import atomic_open
from ..kinds import config_from_dict

__all__ = ["JOB_ENV", "Job", "Outcome", "SimJob", "JobOutcome", "StreamJob", "StreamOutcome",
           "MMAJob", "MMAOutcome", "is_reject", "write_job", "read_job", "write_outcome",
           "read_outcome"]

#: Environment variable through which the cocotb test finds its job file.
JOB_ENV = "SYSTOLIX_JOB"

JOB_FILE, OPERANDS_FILE = "job.json", "operands.npz"
RESULT_FILE, RESULT_ARRAYS_FILE = "result.json", "result.npz"

_JOBS = {}      # kind -> Job subclass
_OUTCOMES = {}  # kind -> Outcome subclass


def is_reject(entry):
    """An operand-list entry that is a bare (m, k, n) command the engine must reject."""
    return isinstance(entry[0], (int, np.integer))


@dataclass
class Outcome:
    """What a simulation produced. ``failures`` lists the mismatches and protocol errors found
    inside the simulation; an outcome with none passed."""

    failures: list = field(default_factory=list)

    kind: ClassVar[str] = ""

    def __init_subclass__(cls, kind=None, **kwargs):
        super().__init_subclass__(**kwargs)
        if kind is not None:
            cls.kind = kind
            _OUTCOMES[kind] = cls

    @property
    def passed(self):
        return not self.failures


class Job:
    """Base of every job kind: a dataclass with a ``config`` field (and any others).

    Subclasses name their kind (``class X(Job, kind="x", outcome=XOutcome)``) and the cocotb
    test module that runs them (:attr:`test_module`).
    """

    kind: ClassVar[str] = ""
    outcome_type: ClassVar[type] = Outcome
    test_module: ClassVar[str] = ""

    def __init_subclass__(cls, kind=None, outcome=None, **kwargs):
        super().__init_subclass__(**kwargs)
        if kind is not None:
            cls.kind = kind
            _JOBS[kind] = cls
        if outcome is not None:
            cls.outcome_type = outcome

    @staticmethod
    def config_from_dict(data):
        """Rebuild this kind's config from ``job.json`` (override for other config types)."""
        return config_from_dict(data)

    @staticmethod
    def write_verilog(config, out_dir):
        """Write the design's Verilog into ``out_dir`` (leaving an identical file alone, so a
        simulator build stays fresh); returns its path."""
        from ..emit import write_design
        return write_design(config, out_dir, only_if_changed=True)[0]


# --- the one encoding -----------------------------------------------------------------------

def _requant_params():
    from ..model.quant import PARAM_TYPES
    return PARAM_TYPES


def _encode(value, arrays, name, cast):
    """``value`` as JSON data; arrays are put into ``arrays`` under ``name`` (integer arrays
    cast to ``cast`` if given) and replaced by a reference."""
    if isinstance(value, np.ndarray):
        if value.dtype == object:
            raise TypeError(f"{name}: an object array cannot be stored in a job file")
        if cast is not None and value.dtype.kind in "iub":
            value = value.astype(cast)
        arrays[name] = value
        return {"$array": name}
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value)
    if isinstance(value, (list, tuple)):
        items = [_encode(v, arrays, f"{name}.{i}", cast) for i, v in enumerate(value)]
        return {"$tuple": items} if isinstance(value, tuple) else items
    if isinstance(value, dict):
        if any(not isinstance(k, str) or k.startswith("$") for k in value):
            raise TypeError(f"{name}: dict keys must be strings not starting with '$'")
        return {k: _encode(v, arrays, f"{name}.{k}", cast) for k, v in value.items()}
    if isinstance(value, _requant_params()):
        return {"$requant": value.to_dict()}
    raise TypeError(f"{name}: {type(value).__name__} cannot be stored in a job file")


def _decode(data, arrays):
    if isinstance(data, list):
        return [_decode(v, arrays) for v in data]
    if isinstance(data, dict):
        if "$array" in data:
            return arrays[data["$array"]]
        if "$tuple" in data:
            return tuple(_decode(v, arrays) for v in data["$tuple"])
        if "$requant" in data:
            from ..model.quant import params_from_dict
            return params_from_dict(data["$requant"])
        return {k: _decode(v, arrays) for k, v in data.items()}
    return data


def _write_pair(obj, directory, json_name, npz_name, cast, extra):
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    arrays = {}
    meta = {"kind": obj.kind, **extra}
    for f in dataclasses.fields(obj):
        if f.name == "config":
            meta["config"] = obj.config.to_dict()
        else:
            meta[f.name] = _encode(getattr(obj, f.name), arrays, f.name, cast)
    with atomic_open(directory / npz_name, "wb") as out:
        np.savez(out, **arrays)
    with atomic_open(directory / json_name) as out:  # last: its presence means complete
        json.dump(meta, out, indent=1)
    return directory / json_name


def _read_pair(cls_of_kind, json_path, npz_path, what, config_from):
    meta = json.loads(Path(json_path).read_text())
    cls = cls_of_kind.get(meta.get("kind"))
    if cls is None:
        raise ValueError(f"{json_path}: unknown {what} kind {meta.get('kind')!r}")
    with np.load(npz_path) as f:
        arrays = {k: f[k] for k in f.files}
    values = {}
    for fld in dataclasses.fields(cls):
        if fld.name not in meta:
            continue
        if fld.name == "config":
            values["config"] = (config_from or cls.config_from_dict)(meta["config"])
        else:
            values[fld.name] = _decode(meta[fld.name], arrays)
    return cls(**values)


def write_job(job: Job, directory):
    """Write ``job`` into ``directory`` (created if needed); returns the path of ``job.json``.
    Integer operands are stored as int64."""
    if not isinstance(job, Job) or not job.kind:
        raise TypeError(f"job must be a registered Job, not {job!r}")
    return _write_pair(job, directory, JOB_FILE, OPERANDS_FILE, np.int64, {})


def read_job(path) -> Job:
    """The job written by :func:`write_job` (``path`` is its ``job.json``)."""
    path = Path(path)
    return _read_pair(_JOBS, path, path.parent / OPERANDS_FILE, "job", None)


def write_outcome(outcome: Outcome, directory):
    """Write ``outcome`` beside its job (arrays keep their dtype)."""
    if not isinstance(outcome, Outcome) or not outcome.kind:
        raise TypeError(f"outcome must be a registered Outcome, not {outcome!r}")
    return _write_pair(outcome, directory, RESULT_FILE, RESULT_ARRAYS_FILE, None, {})


def read_outcome(directory) -> Outcome | None:
    """The outcome in ``directory``, or None if the simulation wrote none."""
    directory = Path(directory)
    if not (directory / RESULT_FILE).is_file():
        return None
    return _read_pair(_OUTCOMES, directory / RESULT_FILE, directory / RESULT_ARRAYS_FILE,
                      "outcome", lambda d: d)


# --- the kinds of job -----------------------------------------------------------------------

@dataclass
class JobOutcome(Outcome, kind="gemm"):
    """What the simulation of a :class:`SimJob` produced, per GEMM."""

    results: list = field(default_factory=list)     # C matrices (None where not produced)
    cycles: list = field(default_factory=list)      # measured cycles per GEMM (engine: compute)
    total_cycles: int = 0                           # first accepted beat to last output row
    job_cycles: list = field(default_factory=list)  # engine: command handshake to `done`
    errors: list = field(default_factory=list)      # engine: the `error` flag after each job
    #: engine stream: each ``done`` pulse's cycle counted from the first command handshake
    done_cycles: list = field(default_factory=list)
    #: engine stream: per stream cut by a reset (:attr:`SimJob.resets`), ``{"cycle", "done",
    #: "words"}``: the reset's cycle, the jobs done and the C words taken before it
    resets: list = field(default_factory=list)


@dataclass
class SimJob(Job, kind="gemm", outcome=JobOutcome):
    """GEMMs through a systolic array (:mod:`systolix_tb.gemm_test`) or a matrix engine
    (:mod:`systolix_tb.engine_test`)."""

    config: object  # SystolicConfig or EngineConfig
    #: [(A, B), ...]; for an engine an entry may also carry requantization parameters
    #: (A, B, RequantParams), or be a dimension triple (m, k, n): a command the engine must
    #: reject (its result and cycles are then None)
    operands: list
    back_to_back: bool = True
    stall_prob: float = 0.0
    seed: int = 0
    #: engine: run the entries as one stream (each command offered as soon as the previous one
    #: is taken, every stream's words offered continuously) instead of job by job
    stream: bool = False
    #: engine: per entry, reuse the weights (B and parameters) already in the engine; such an
    #: entry's B is not sent (empty: no entry keeps weights)
    keep: list = field(default_factory=list)
    #: engine stream: streams cut short by a reset before this job's own stream, in order; each
    #: a dict with ``entries`` and ``keep`` (as :attr:`operands` and :attr:`keep`),
    #: ``stall_prob`` (on every stream) and ``cycle``: ``rst`` rises that many cycles after the
    #: stream's first command handshake. The testbench checks the reset's documented reaction
    #: (no C word of a cancelled job, outputs 0, a keep-weights command rejected) and the jobs
    #: done before it; the stream that follows is checked as any stream.
    resets: list = field(default_factory=list)

    def keeps(self, i):
        """Whether entry ``i`` keeps the weights in the engine."""
        return bool(self.keep[i]) if i < len(self.keep) else False

    @property
    def test_module(self):
        if isinstance(self.config, EngineConfig):
            return "systolix_tb.engine_test"
        return "systolix_tb.gemm_test"


@dataclass
class StreamOutcome(Outcome, kind="stream"):
    outputs: list = field(default_factory=list)  # payload integers in output order


@dataclass
class StreamJob(Job, kind="stream", outcome=StreamOutcome):
    """Feed ``inputs`` (payload integers) into a stream pipeline's ``i`` and expect exactly
    ``expected`` on its ``o``, in order, with random stalls on both sides."""

    config: object
    inputs: list
    expected: list
    stall_prob: float = 0.0
    seed: int = 0

    test_module: ClassVar[str] = "systolix_tb.stream_test"


@dataclass
class MMAOutcome(Outcome, kind="mma"):
    """What the simulation of an :class:`MMAJob` produced."""

    d: np.ndarray | None = None                        # (N, m, n) results in output order
    issue_cycles: list = field(default_factory=list)   # cycle each beat was accepted
    result_cycles: list = field(default_factory=list)  # cycle each result was valid


@dataclass
class MMAJob(Job, kind="mma", outcome=MMAOutcome):
    """Issue beat i = (a[i], b[i], c[i]) of a tensor-core MMA unit in order
    (:mod:`systolix_tb.mma_test`)."""

    config: TensorCoreConfig
    a: np.ndarray  # (N, m, k)
    b: np.ndarray  # (N, k, n)
    c: np.ndarray  # (N, m, n)
    stall_prob: float = 0.0  # chance of holding i__valid low in a cycle
    seed: int = 0

    test_module: ClassVar[str] = "systolix_tb.mma_test"
