"""What an engine delivers at its Fmax: sustained GOPS on a named job stream.

Peak GOPS (2 x MACs x Fmax) is what the array could do; an engine also loads A and B and drains
C, and a double-buffered one hides part of that behind compute. The sustained figure takes the
exact cycle model of a whole job stream (:func:`systolix.model.cycles.stream_cycles`)::

    sustained GOPS = 2 x MACs x Fmax x end-to-end utilization

where the end-to-end utilization is useful MACs / (MACs per cycle x cycles from the first
command to the last C word). A stream has a name (``"8 x 256^3"``) that the reports print next
to the figure, so that two numbers are only compared on the same stream.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from ..config import EngineConfig
from ..model.cycles import stream_cycles

__all__ = ["JobStream", "cube_stream", "mlp_stream", "parse_stream", "default_stream",
           "sustained", "STREAM_JOBS", "STREAM_SYNTAX"]

#: Jobs in a default or ``--stream JxS`` stream.
STREAM_JOBS = 8
#: Largest cube of a default stream: the engine's buffers may be bigger, the stream stays short.
_MAX_DEFAULT_SIZE = 256
#: The digits MLP (``systolix.apps.mlp``: 64 inputs, 64 hidden, 10 classes) in batches of 64.
_MLP_LAYERS = ((64, 64), (64, 10))
_MLP_BATCH = 64
_MLP_BATCHES = 4

STREAM_SYNTAX = ("JxS (J back-to-back jobs of S x S x S), JxMxKxN (J jobs of M x K x N) or "
                 "mlp (the digits MLP 64-64-10, 4 batches of 64 images, weights kept across "
                 "a layer's batches)")


@dataclass(frozen=True)
class JobStream:
    """A named stream of engine jobs, each ``(M, K, N, keep_weights)``; ``items`` counts what
    the stream processes (images for the MLP), for a per-item cycle figure, or 0."""

    name: str
    jobs: tuple
    items: int = 0

    def to_dict(self):
        return {"name": self.name, "jobs": len(self.jobs),
                "shapes": sorted({tuple(j[:3]) for j in self.jobs})}


def cube_stream(size, jobs=STREAM_JOBS):
    """``jobs`` back-to-back GEMMs of ``size`` x ``size`` x ``size``, named ``"8 x 256^3"``."""
    return JobStream(f"{jobs} x {size}^3", ((size, size, size, False),) * jobs)


def mlp_stream():
    """The digits MLP's layers over 4 batches of 64 images: every batch of layer 1 (the first
    one loads the weights, the others keep them), then every batch of layer 2."""
    jobs = tuple((_MLP_BATCH, k, n, b > 0) for k, n in _MLP_LAYERS for b in range(_MLP_BATCHES))
    return JobStream(f"digits MLP 64-64-10, {_MLP_BATCHES} x {_MLP_BATCH} images", jobs,
                     items=_MLP_BATCHES * _MLP_BATCH)


def parse_stream(text):
    """The stream a ``--stream`` value names (see :data:`STREAM_SYNTAX`); ``ValueError``
    otherwise."""
    if not isinstance(text, str):
        raise TypeError(f"stream must be a string, not {text!r}")
    t = text.strip().lower()
    if t == "mlp":
        return mlp_stream()
    match = re.fullmatch(r"(\d+)x(\d+)(?:x(\d+)x(\d+))?", t.replace(" ", ""))
    if not match or match.group(1).startswith("0"):
        raise ValueError(f"stream must be {STREAM_SYNTAX}, not {text!r}")
    dims = [int(g) for g in match.groups() if g is not None]
    if any(d < 1 for d in dims):
        raise ValueError(f"stream dimensions must be at least 1, not {text!r}")
    jobs, shape = dims[0], dims[1:]
    if jobs > 4096:
        raise ValueError(f"a stream has at most 4096 jobs, not {jobs}")
    if len(shape) == 1:
        return cube_stream(shape[0], jobs)
    m, k, n = shape
    return JobStream(f"{jobs} x {m}x{k}x{n}", ((m, k, n, False),) * jobs)


def default_stream(config: EngineConfig):
    """:data:`STREAM_JOBS` jobs of the largest cube the engine's buffers hold (at most 256)."""
    size = min(config.max_m, config.max_k, config.max_n, _MAX_DEFAULT_SIZE)
    return cube_stream(size)


def sustained(config: EngineConfig, stream: JobStream, fmax_mhz):
    """The engine's sustained throughput on ``stream`` at ``fmax_mhz``: a dict with the
    stream's name, its exact cycles (``total``, ``compute``), useful ``macs``,
    ``end_to_end_utilization``, ``sustained_gops`` and, for a stream of items, ``cycles_per_item``
    and ``items_per_second``. Raises ``ValueError`` when a job does not fit the buffers."""
    if not isinstance(config, EngineConfig):
        raise TypeError(f"config must be an EngineConfig, not {config!r}")
    for j, (m, k, n, _) in enumerate(stream.jobs):
        for d, v, lim in (("M", m, config.max_m), ("K", k, config.max_k), ("N", n, config.max_n)):
            if v > lim:
                raise ValueError(f"stream {stream.name!r}: job {j} has {d} = {v}, beyond the "
                                 f"engine's buffers (max {d} = {lim})")
    c = stream_cycles(config, stream.jobs)
    util = c["end_to_end_utilization"]
    out = {"stream": stream.name, "jobs": c["jobs"], "total_cycles": c["total"],
           "compute_cycles": c["compute"], "macs": c["macs"], "end_to_end_utilization": util,
           "sustained_gops": None}
    if fmax_mhz is not None and math.isfinite(fmax_mhz):
        out["sustained_gops"] = 2 * config.macs * fmax_mhz * 1e6 * util / 1e9
    if stream.items:
        out["cycles_per_item"] = c["total"] / stream.items
        out["items_per_second"] = (fmax_mhz * 1e6 * stream.items / c["total"]
                                   if out["sustained_gops"] is not None else None)
    return out
