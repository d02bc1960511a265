"""All-or-nothing file writes: a failure never leaves a half-written result behind."""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import socket
import tempfile
import uuid
from pathlib import Path

from .errors import SystolixError

__all__ = ["atomic_open", "atomic_write_all", "owned_tempdir", "remove_abandoned",
           "publish_dir"]


def _temp_beside(path):
    """``(fd, name)`` of a new temporary file beside ``path`` with the usual permissions
    (0666 minus the umask), not ``mkstemp``'s 0600."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    return fd, tmp


@contextlib.contextmanager
def atomic_open(path, mode="w"):
    """Open a temporary file beside ``path``; on success it replaces ``path`` in one step.
    On any exception the temporary file is removed and ``path`` is untouched."""
    path = Path(path)
    fd, tmp = _temp_beside(path)
    try:
        with os.fdopen(fd, mode) as f:
            yield f
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_all(texts):
    """Write ``{path: text}`` all or nothing: every text goes to a temporary file beside its
    path first, and only when all are written do they replace their paths. On failure nothing
    is replaced and a :class:`~systolix.errors.SystolixError` names the file."""
    pending = []
    try:
        for path in texts:
            path = Path(path)
            if path.is_dir():
                raise SystolixError(f"cannot write {path}: is a directory")
        for path, text in texts.items():
            path = Path(path)
            try:
                fd, tmp = _temp_beside(path)
                pending.append((tmp, path))
                with os.fdopen(fd, "w") as f:
                    f.write(text)
            except OSError as e:
                raise SystolixError(f"cannot write {path}: {e.strerror}") from None
        for tmp, path in pending:
            try:
                os.replace(tmp, path)
            except OSError as e:
                raise SystolixError(f"cannot write {path}: {e.strerror}") from None
    finally:
        for tmp, _ in pending:
            Path(tmp).unlink(missing_ok=True)


def _host():
    """This machine's name as it appears in :func:`owned_tempdir` names."""
    return "".join(c if c.isalnum() or c in "-_" else "-" for c in socket.gethostname())


def owned_tempdir(parent, prefix):
    """A new directory ``<parent>/<prefix><pid>.<host>~<random>``: the name records which
    process on which machine owns it, so :func:`remove_abandoned` can tell a live run's
    directory from one left by a killed process, also in a directory that several machines
    share (a cache on a network file system)."""
    return Path(tempfile.mkdtemp(prefix=f"{prefix}{os.getpid()}.{_host()}~", dir=parent))


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def remove_abandoned(parent, prefix):
    """Remove the :func:`owned_tempdir` directories (and files) ``<prefix><pid>.*`` in
    ``parent`` whose owner process is gone; returns the paths removed. Those of another
    machine are left alone: whether their process lives cannot be known here."""
    removed = []
    try:
        entries = list(Path(parent).iterdir())
    except OSError:
        return removed
    for path in entries:
        rest = path.name[len(prefix):] if path.name.startswith(prefix) else ""
        pid, dot, tail = rest.partition(".")
        if not dot or not pid.isdigit() or _alive(int(pid)):
            continue
        host, tilde, _ = tail.partition("~")
        if tilde and host != _host():
            continue
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
        removed.append(path)
    return removed


#: How often :func:`publish_dir` moves an unusable entry aside before it gives up.
_PUBLISH_TRIES = 8


def publish_dir(work, final, *, complete, prefix, replace=False):
    """Publish the finished directory ``work`` as ``final`` (a content-addressed cache entry)
    in one ``rename``, so a reader sees either no entry or a complete one.

    Several processes (cluster workers sharing a cache directory) may finish the same entry at
    once; the entry's name is the digest of what it holds, so any complete one will do. When
    ``final`` already exists and ``complete(final)`` says it is complete, that one is kept and
    ``work`` removed. Otherwise (an unusable entry, or any existing entry when ``replace``) the
    existing entry is first renamed aside, to a name of :func:`owned_tempdir`'s form with
    ``prefix`` (so :func:`remove_abandoned` clears it should this process die), then removed.
    With ``replace`` only the entry found first is displaced: one another process publishes
    meanwhile is as fresh as ours and is kept.

    Returns
    -------
    bool
        True if ``work`` became ``final``, False if an existing complete entry was kept.
    """
    work, final = Path(work), Path(final)
    displaced = False
    for _ in range(_PUBLISH_TRIES):
        try:
            os.rename(work, final)
            return True
        except OSError as e:
            if e.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                raise
        if (displaced or not replace) and complete(final):
            shutil.rmtree(work, ignore_errors=True)
            return False
        aside = final.parent / f"{prefix}{os.getpid()}.{_host()}~{uuid.uuid4().hex}"
        try:
            os.rename(final, aside)
        except FileNotFoundError:  # another process moved it first
            continue
        displaced = True
        shutil.rmtree(aside, ignore_errors=True)
    raise OSError(errno.EEXIST, f"{final} keeps being replaced by unusable entries")
