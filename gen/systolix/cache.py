"""Cache keys: one way to digest everything a cached result depends on.

The simulation build cache (:func:`systolix.sim.runner.build`) keys a design *before* emitting
it, on its config, :func:`tool_versions` and :func:`source_digest` of the whole package (emitting
a 16x16 engine takes 10 s, so it is worth skipping); the synthesis cache
(:func:`systolix.synth.flow.cache_key`) keys a result on the digest of the RTLIL it synthesizes,
the target, the flow options and the tool versions, so nothing that changes the netlist can be
missed.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
from pathlib import Path

__all__ = ["digest", "tool_versions", "source_digest"]

PACKAGE = Path(__file__).resolve().parent


def digest(*parts):
    """SHA-256 hex digest of ``parts``: ``bytes`` are hashed as they are, anything else as
    canonical JSON (sorted keys). Each part is length-prefixed, so parts cannot run together."""
    h = hashlib.sha256()
    for part in parts:
        data = part if isinstance(part, bytes) else json.dumps(
            part, sort_keys=True, separators=(",", ":")).encode()
        h.update(b"%d:" % len(data))
        h.update(data)
    return h.hexdigest()


def tool_versions(distributions):
    """``{distribution: version or None}`` of installed PyPI distributions."""
    versions = {}
    for dist in distributions:
        try:
            versions[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            versions[dist] = None
    return versions


def source_digest(paths=None):
    """Digest of systolix source files: ``paths`` (relative to the package, e.g.
    ``"synth/flow.py"``) or, by default, every ``.py`` file of the package."""
    files = (sorted(PACKAGE.rglob("*.py")) if paths is None else
             sorted(PACKAGE / p for p in paths))
    parts = []
    for f in files:
        parts += [f.relative_to(PACKAGE).as_posix().encode(), f.read_bytes()]
    return digest(*parts)
