"""Tool processes (simulators, compilers, synthesis tools) that never outlive their run.

Every command started through :func:`run_command` runs in its own process group and, on Linux, with
``PR_SET_PDEATHSIG``: if the Python process is killed outright (SIGKILL), the kernel kills the
simulator too. Within :func:`stop_on_signals`, SIGTERM and SIGHUP raise :class:`Interrupted` in
the main thread; every exception while a command runs (that one, ``KeyboardInterrupt``, ...)
kills the command's whole process group before it propagates, so ``finally`` blocks clean up
and no ``vvp`` or Verilator model is left running.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import signal
import subprocess
import sys
import threading

__all__ = ["Interrupted", "die_with_parent", "run_command", "stop_on_signals",
           "patch_cocotb_runner"]

_PR_SET_PDEATHSIG = 1


class Interrupted(BaseException):
    """SIGTERM or SIGHUP arrived while a simulation ran (a ``BaseException``, like
    ``KeyboardInterrupt``, so that nothing catches it by accident)."""

    def __init__(self, signum):
        super().__init__(f"interrupted by {signal.Signals(signum).name}")
        self.signum = signum


def _load_prctl():
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        return libc.prctl
    except (OSError, AttributeError):  # pragma: no cover
        return None


_prctl = _load_prctl()  # loaded before any fork: the child must not import or allocate much


def die_with_parent(parent):
    """Make this process die (SIGKILL) when ``parent`` does; call it first thing in a child
    (between fork and exec, or in a worker process's initializer)."""
    if _prctl is not None:
        _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)


def _kill_group(proc):
    """Kill ``proc`` and everything in its process group, and reap it."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    with contextlib.suppress(Exception):
        proc.wait(timeout=10)


def run_command(cmd, *, cwd=None, env=None, stdout=None, stderr=None):
    """Run ``cmd`` to completion in a new process group; returns its exit code. On any
    exception while waiting (an interrupt), the whole group is killed first."""
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=stdout, stderr=stderr,
                            stdin=subprocess.DEVNULL, start_new_session=True,
                            preexec_fn=lambda parent=os.getpid(): die_with_parent(parent))
    try:
        return proc.wait()
    except BaseException:
        _kill_group(proc)
        raise


def _raise_interrupted(signum, frame):
    raise Interrupted(signum)


@contextlib.contextmanager
def stop_on_signals():
    """Turn SIGTERM and SIGHUP into :class:`Interrupted` inside the block (main thread only;
    elsewhere a no-op). When the block ends by such a signal, after every ``finally`` inside
    it has run, the previous handlers are restored and the signal is raised again, so the
    process ends the way it would have without this block."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {}
    for sig in (signal.SIGTERM, signal.SIGHUP):
        if signal.getsignal(sig) is not signal.SIG_IGN:  # e.g. SIGHUP under nohup stays ignored
            previous[sig] = signal.signal(sig, _raise_interrupted)
    try:
        yield
    except Interrupted as e:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        previous = {}
        signal.raise_signal(e.signum)
        raise  # the previous handler returned: keep unwinding
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def patch_cocotb_runner(runner):
    """Make a ``cocotb_tools.runner`` instance start its commands through
    :func:`run_command` (it otherwise calls :func:`subprocess.run`, whose child outlives a
    killed parent)."""

    def _execute_cmds(cmds, cwd, stdout=None):
        for cmd in cmds:
            runner.log.info("Running command %s in directory %s", " ".join(map(str, cmd)), cwd)
            code = run_command(cmd, cwd=cwd, env=runner.env, stdout=stdout,
                               stderr=None if stdout is None else subprocess.STDOUT)
            if code != 0:
                raise RuntimeError(f"Command failed with return code: {code}")

    if not callable(getattr(runner, "_execute_cmds", None)):  # pragma: no cover
        raise RuntimeError("cocotb_tools.runner changed: no _execute_cmds to hook")
    runner._execute_cmds = _execute_cmds
    return runner
