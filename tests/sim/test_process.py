"""Nothing outlives an interrupted ``systolix run``: not the simulator (SIGTERM: the run kills
its process group; SIGKILL: the kernel, through PR_SET_PDEATHSIG) and not the job directory
(removed at once on SIGTERM, by the next run after SIGKILL). Only a failing job's directory
stays, for replay."""

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from helpers import WORK_DIR
from systolix.config import RequantConfig, SystolicConfig
from systolix.fileio import remove_abandoned
from systolix.sim import runner
from systolix.sim.job import StreamJob, read_job

pytestmark = pytest.mark.rtl

CONFIG = SystolicConfig(2, 2)
PROCESS_WORK_DIR = WORK_DIR / "process"


def _children(pid):
    """``{pid: comm}`` of the live (not zombie) child processes of ``pid``."""
    found = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        comm = text[text.index("(") + 1:text.rindex(")")]
        state, ppid = text[text.rindex(")") + 2:].split()[:2]
        if int(ppid) == pid and state != "Z":
            found[int(stat.parent.name)] = comm
    return found


def _gone(pid, timeout=5.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            return True
        if state == "Z":  # dead; only its parent's reaping is left
            return True
        time.sleep(0.02)
    return False


@pytest.fixture
def long_run(tmp_path):
    """Start ``systolix run`` on a GEMM that keeps Icarus busy for minutes; returns the
    process, the simulator's pid and the build's jobs directory once it simulates."""
    runner.build(CONFIG, "icarus", PROCESS_WORK_DIR)  # cached: the run starts simulating at once
    rng = np.random.default_rng(0)
    np.save(tmp_path / "a.npy", rng.integers(-128, 128, (96, 96)))
    np.save(tmp_path / "b.npy", rng.integers(-128, 128, (96, 96)))
    proc = subprocess.Popen(
        [sys.executable, "-m", "systolix", "run", "--a", str(tmp_path / "a.npy"),
         "--b", str(tmp_path / "b.npy"), "-o", str(tmp_path / "c.npy"), "--rows", "2",
         "--cols", "2", "--work-dir", str(PROCESS_WORK_DIR)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    jobs = PROCESS_WORK_DIR / CONFIG.name / "icarus" / "jobs"
    try:
        deadline = time.monotonic() + 60
        while not (sims := [p for p, comm in _children(proc.pid).items() if comm == "vvp"]):
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.monotonic() < deadline, "vvp never started"
            time.sleep(0.05)
        yield proc, sims[0], jobs
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _running_jobs(jobs, pid):
    """The job directories of process ``pid`` that are still marked as running."""
    return sorted(p.name for p in jobs.glob(f"{runner.RUNNING_PREFIX}{pid}.*"))


def test_sigterm_stops_the_simulator_and_removes_the_job(long_run):
    proc, sim, jobs = long_run
    assert _running_jobs(jobs, proc.pid)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=20) == -signal.SIGTERM  # cleaned up, then ended by the signal
    assert _gone(sim), f"vvp {sim} still running after SIGTERM"
    assert _running_jobs(jobs, proc.pid) == []
    assert not [p for p in jobs.iterdir() if str(proc.pid) in p.name]


def test_sigkill_takes_the_simulator_along(long_run):
    proc, sim, jobs = long_run
    left = _running_jobs(jobs, proc.pid)
    assert left
    proc.kill()
    proc.wait(timeout=20)
    assert _gone(sim), f"vvp {sim} outlived its SIGKILLed parent"
    # what SIGKILL leaves behind, the next run of the design removes (its owner is gone)
    removed = {p.name for p in remove_abandoned(jobs, runner.RUNNING_PREFIX)}
    assert set(left) <= removed and _running_jobs(jobs, proc.pid) == []


def test_an_exception_kills_the_whole_process_group(tmp_path):
    """A KeyboardInterrupt (or any exception) while a command runs kills its process group,
    grandchildren included, before it propagates."""
    from systolix.process import run_command
    pids = tmp_path / "pids"
    script = (f"sh -c 'echo $$ > {pids}; sleep 60' & "
              f"while [ ! -s {pids} ]; do sleep 0.01; done; kill -INT {os.getpid()}; wait")
    # a shell's background job starts with SIGINT ignored: make it raise KeyboardInterrupt
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt):
            run_command(["sh", "-c", script])
    finally:
        signal.signal(signal.SIGINT, previous)
    assert _gone(int(pids.read_text())), "a grandchild survived"


def test_a_failing_job_is_kept_for_replay_and_a_passing_one_removed():
    config = RequantConfig(3, True)
    job = StreamJob(config, [0] * 4, [-1] * 4, seed=1)  # no payload is -1: must fail
    failed = runner.run(job, "icarus", WORK_DIR)
    try:
        assert failed.failures and failed.job_dir.name.startswith("stream-")
        assert (failed.job_dir / "sim.log").is_file()
        assert read_job(failed.job_dir / "job.json").inputs == job.inputs  # replayable
    finally:
        shutil.rmtree(failed.job_dir, ignore_errors=True)
    jobs = failed.job_dir.parent
    before = set(jobs.iterdir())
    passed = runner.run(StreamJob(config, [0] * 4, failed.outputs, seed=1), "icarus", WORK_DIR)
    assert passed.passed and passed.job_dir is None and set(jobs.iterdir()) <= before


def _descendants(pid):
    """``{pid: comm}`` of every live process below ``pid``."""
    found, todo = {}, [pid]
    while todo:
        for child, comm in _children(todo.pop()).items():
            found[child] = comm
            todo.append(child)
    return found


@pytest.mark.toolchain
def test_sigterm_stops_a_board_builds_tools(tmp_path):
    """``systolix build`` runs yosys and nextpnr from a shell script: grandchildren, which the
    kernel's parent-death signal does not reach. SIGTERM must still take them all along, and
    leave no bitstream and no half-built directory."""
    out = tmp_path / "bits"
    proc = subprocess.Popen(
        [sys.executable, "-m", "systolix", "build", "engine", "--rows", "2", "--cols", "2",
         "--max-m", "4", "--max-k", "4", "--max-n", "4", "--board", "icebreaker",
         "-o", str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while len(tools := _descendants(proc.pid)) < 2:  # the script's shell and a tool under it
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.monotonic() < deadline, "the build script never started a tool"
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == -signal.SIGTERM
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    left = {pid: comm for pid, comm in tools.items() if not _gone(pid)}
    assert not left, f"still running after SIGTERM: {left}"
    assert not out.exists() or list(out.iterdir()) == []
