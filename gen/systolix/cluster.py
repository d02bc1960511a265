"""Independent tasks on local worker processes or on an existing Dask cluster.

:func:`run_tasks` is the one way ``systolix sweep`` (design points) and ``systolix regress``
(random simulation jobs) spread their work: in this process (``jobs=1``), on ``jobs`` local
worker processes, or, given a ``scheduler`` address (``tcp://HOST:PORT``), as Dask tasks on
the workers of a cluster started with ``dask scheduler`` / ``dask worker``. It yields each
task's value as it completes; the caller keeps the results in submission order.

What goes wrong becomes one :class:`~systolix.errors.SystolixError`:

- a scheduler that cannot be reached (:func:`connect`) or that goes away mid-run;
- a worker that cannot run the task (systolix not installed there, a tool missing: the task
  raises, the error names the task);
- a task whose workers keep dying: Dask reschedules a task whose worker died on another worker
  (``distributed.scheduler.allowed-failures`` times, 3 by default), then gives up.

A worker killed mid-task loses nothing: the scheduler runs the task again elsewhere, and the
caller still receives exactly one value per task. Local worker processes die with this
process (``PR_SET_PDEATHSIG``), and so do the tools they started.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool

from .errors import SystolixError
from .process import die_with_parent

__all__ = ["CONNECT_TIMEOUT", "connect", "run_tasks", "check_scheduler_address",
           "Progress"]

#: Seconds to wait for a scheduler to answer before giving up.
CONNECT_TIMEOUT = 10.0

_PROTOCOLS = ("tcp", "tls", "inproc", "ucx", "ws", "wss")


def check_scheduler_address(address):
    """``address`` if it has the form ``PROTOCOL://HOST:PORT`` (or ``HOST:PORT``, meaning tcp),
    else a :class:`SystolixError` saying what is wrong with it."""
    if not isinstance(address, str) or not address.strip():
        raise SystolixError("the scheduler address is empty: give tcp://HOST:PORT")
    rest = address
    if "://" in address:
        protocol, rest = address.split("://", 1)
        if protocol not in _PROTOCOLS:
            raise SystolixError(f"scheduler address {address!r}: unknown protocol "
                                f"{protocol!r} (use tcp://HOST:PORT)")
    host, colon, port = rest.rpartition(":")
    if not colon or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise SystolixError(f"scheduler address {address!r} is not tcp://HOST:PORT")
    return address


@contextlib.contextmanager
def _quiet_distributed():
    """Keep Dask's own logging (reconnect tracebacks, worker warnings) off the terminal while a
    run goes on in this process: what matters reaches the user as one error line."""
    logger = logging.getLogger("distributed")
    level = logger.level
    logger.setLevel(logging.CRITICAL + 1)
    try:
        yield
    finally:
        logger.setLevel(level)


def connect(address, *, timeout=None):
    """A ``distributed.Client`` on the scheduler at ``address``; a one-line
    :class:`SystolixError` if it cannot be reached within ``timeout`` seconds (default
    :data:`CONNECT_TIMEOUT`) or if Dask is not installed."""
    check_scheduler_address(address)
    try:
        from distributed import Client
    except ImportError:
        raise SystolixError("--scheduler needs Dask: pip install 'dask[distributed]'") from None
    timeout = CONNECT_TIMEOUT if timeout is None else timeout
    with _quiet_distributed():
        try:
            return Client(address, timeout=timeout, set_as_default=False)
        except (OSError, TimeoutError) as e:
            raise SystolixError(f"cannot reach the Dask scheduler at {address}: "
                                f"{_one_line(e)}") from None


def _one_line(e):
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__


def run_tasks(function, arguments, *, labels, scheduler=None, jobs=1, keys=None,
              connect_timeout=None):
    """Run ``function(*args)`` for every ``args`` in ``arguments``; yield ``(index, value)`` as
    each task completes, exactly once per task.

    Parameters
    ----------
    function : callable
        A module-level function (workers import it by name), returning a picklable value.
    arguments : list of tuple
    labels : list of str
        What each task is, for error messages (``"point systolic_os_2x2_..."``).
    scheduler : str or None
        Dask scheduler address: run on that cluster. ``None``: run locally.
    jobs : int
        Local worker processes (without ``scheduler``); 1 runs the tasks in this process.
    keys : list of str or None
        Dask task keys (without ``scheduler`` unused). Equal keys are one task, so equal work
        submitted twice (by this run or by another client of the same cluster) runs once.
    connect_timeout : float or None
        See :func:`connect`.
    """
    if len(labels) != len(arguments):
        raise ValueError(f"{len(arguments)} tasks but {len(labels)} labels")
    if not arguments:
        return
    if scheduler is not None:
        yield from _run_distributed(function, arguments, labels, scheduler, keys,
                                    connect_timeout)
    elif jobs == 1 or len(arguments) <= 1:
        for i, args in enumerate(arguments):
            yield i, function(*args)
    else:
        yield from _run_pool(function, arguments, labels, jobs)


def _run_pool(function, arguments, labels, jobs):
    pool = ProcessPoolExecutor(max_workers=min(jobs, len(arguments)),
                               initializer=die_with_parent, initargs=(os.getpid(),))
    clean = False
    try:
        futures = {pool.submit(function, *args): i for i, args in enumerate(arguments)}
        for fut in as_completed(futures):
            i = futures[fut]
            try:
                value = fut.result()
            except BrokenProcessPool:
                raise SystolixError(f"a worker process died while running {labels[i]}; "
                                    f"rerun to resume") from None
            yield i, value
        clean = True
    finally:
        if clean:
            pool.shutdown(wait=True)
        else:
            # interrupted or failed: the other tasks' results are not wanted; their workers
            # are stopped rather than waited for (the tools they run die with them)
            processes = list((getattr(pool, "_processes", None) or {}).values())
            pool.shutdown(wait=False, cancel_futures=True)
            for p in processes:
                with contextlib.suppress(Exception):
                    p.kill()
            for p in processes:
                with contextlib.suppress(Exception):
                    p.join(timeout=10)


def _run_distributed(function, arguments, labels, scheduler, keys, connect_timeout):
    from distributed import as_completed as dask_completed
    from distributed.client import FutureCancelledError

    total = len(arguments)
    with _quiet_distributed():
        client = connect(scheduler, timeout=connect_timeout)
        futures = []
        try:
            indices = {}
            for i, args in enumerate(arguments):
                key = keys[i] if keys is not None else None
                fut = client.submit(function, *args, key=key, pure=False)
                indices.setdefault(fut.key, []).append(i)
                if len(indices[fut.key]) == 1:
                    futures.append(fut)
            done = 0
            for fut in dask_completed(futures, loop=client.loop):
                where = indices[fut.key]
                label = labels[where[0]]
                if fut.status == "cancelled" or client.status not in ("running", "connecting"):
                    raise SystolixError(f"lost the Dask scheduler at {scheduler} after {done} "
                                        f"of {total} tasks; rerun to resume")
                try:
                    value = fut.result()
                except FutureCancelledError:
                    raise SystolixError(f"lost the Dask scheduler at {scheduler} after {done} "
                                        f"of {total} tasks; rerun to resume") from None
                except OSError as e:
                    if fut.status == "error":  # the task itself raised it
                        raise _worker_error(e, label) from None
                    # the task finished, but fetching its value failed: the connection went
                    raise SystolixError(f"lost the Dask scheduler at {scheduler} after {done} "
                                        f"of {total} tasks; rerun to resume") from None
                except SystolixError as e:
                    raise SystolixError(f"{label} failed on a Dask worker: {e}") from None
                except Exception as e:  # noqa: BLE001: whatever a worker raised, as one line
                    raise _worker_error(e, label) from None
                fut.release()  # a result in hand must not be recomputed if its worker dies
                for i in where:
                    done += 1
                    yield i, value
        finally:
            with contextlib.suppress(Exception):
                client.cancel([f for f in futures if not f.done()])
            with contextlib.suppress(Exception):
                client.close(timeout=5)


def _worker_error(e, label):
    name = type(e).__name__
    if name == "KilledWorker":
        return SystolixError(f"{label}: every worker that ran it died (Dask gave up after "
                             f"{getattr(e, 'allowed_failures', '?')} retries); rerun to resume")
    if isinstance(e, ImportError):
        return SystolixError(f"{label}: a Dask worker cannot import systolix ({_one_line(e)}): "
                             f"install the same systolix on every worker")
    cause = e.__cause__ or e.__context__
    if cause is not None:  # e.g. the task could not be unpacked: say why
        e, name = cause, type(cause).__name__
        if isinstance(e, ImportError):
            return SystolixError(f"{label}: the Dask cluster cannot import what the task needs "
                                 f"({_one_line(e)}): install the same systolix on the "
                                 f"scheduler and every worker")
    return SystolixError(f"{label} failed on a Dask worker: {name}: {_one_line(e)}")


class Progress:
    """A one-line progress bar on stderr (plain lines when stderr is not a terminal), for
    ``total`` tasks, each line starting with ``[name]``."""

    def __init__(self, total, name, stream=None):
        self.total, self.done, self.name = total, 0, name
        self.stream = sys.stderr if stream is None else stream
        self.tty = self.stream.isatty()
        self.t0 = time.monotonic()

    def step(self, text):
        self.done += 1
        width = 24
        filled = width * self.done // self.total
        bar = "#" * filled + "." * (width - filled)
        line = (f"[{self.name}] [{bar}] {self.done}/{self.total} "
                f"{time.monotonic() - self.t0:6.0f} s {text}")
        if self.tty:
            self.stream.write("\r\033[K" + line)
            if self.done == self.total:
                self.stream.write("\n")
        else:
            self.stream.write(line + "\n")
        self.stream.flush()
