"""Exact cycle model of the generated arrays, and SCALE-Sim's textbook formula for comparison.

The model counts cycles the way the testbench measures them: from the cycle in which the first
input beat of a stream of tiles is accepted to the cycle in which the final output row is valid,
both inclusive, with the input offered every cycle (no stalls from the source).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..config import Dataflow, EngineConfig, SystolicConfig, TensorCoreConfig

__all__ = ["GemmCycles", "EngineCycles", "tile_grid", "result_latency", "os_stream_cycles",
           "mma_stream_cycles", "gemm_cycles", "ws_array_cycles", "engine_cycles",
           "scalesim_cycles"]


def tile_grid(config: SystolicConfig, m, n):
    """Number of output tiles (row tiles, column tiles) for an M x N result."""
    return math.ceil(m / config.rows), math.ceil(n / config.cols)


def result_latency(config: SystolicConfig):
    """Cycles from accepting a tile's ``last`` beat to its first output row: the skew/de-skew
    wavefront (R + C - 1) plus the PE pipeline stages. The array's ``result_latency`` property
    returns this same value (a test keeps them equal)."""
    return config.rows + config.cols - 1 + config.pipeline_stages


def os_stream_cycles(config: SystolicConfig, tile_ks):
    """Cycles to push tiles with the given K's back to back through an output-stationary array.

    Tile ``t``'s ``last`` beat is accepted ``K_t`` cycles after the previous one, but never
    sooner than ``rows`` cycles after it (the array's drain spacing, enforced by ``ready``).
    The final output row then follows ``result_latency + rows - 1`` cycles later, where
    ``result_latency = rows + cols - 1 + pipeline_stages`` (see
    :attr:`~systolix.hdl.os_array.OutputStationaryArray.result_latency`).

    Returns
    -------
    (cycles, last_cycles) : (int, list of int)
        Total cycles and, per tile, the cycle (counted from 0) in which its ``last`` beat is
        accepted.
    """
    if config.dataflow is not Dataflow.OUTPUT_STATIONARY:
        raise ValueError(f"no cycle model for dataflow {config.dataflow}")
    tile_ks = list(tile_ks)
    if not tile_ks:
        raise ValueError("os_stream_cycles needs at least one tile")
    R = config.rows
    last_cycles = []
    for t, k in enumerate(tile_ks):
        if k < 1:
            raise ValueError(f"tile K must be at least 1, not {k}")
        last_cycles.append(k - 1 if t == 0 else last_cycles[-1] + max(k, R))
    completion = last_cycles[-1] + result_latency(config) + (R - 1)
    return completion + 1, last_cycles


def mma_stream_cycles(config: TensorCoreConfig, beats):
    """Cycles for ``beats`` MMAs issued back to back into a tensor-core MMA unit, first
    accepted beat to last result, both inclusive: ``beats + latency`` (the unit's initiation
    interval is 1)."""
    if not isinstance(beats, int) or beats < 1:
        raise ValueError(f"beats must be a positive integer, not {beats!r}")
    return beats + config.latency


@dataclass(frozen=True)
class GemmCycles:
    """Predicted cost of one GEMM (M x K) x (K x N) on an array."""

    m: int
    k: int
    n: int
    tiles: int
    cycles: int
    macs: int
    peak_macs: int

    @property
    def utilization(self):
        """Useful MACs / (array MACs x cycles)."""
        return self.macs / (self.peak_macs * self.cycles)

    def to_dict(self):
        return {"m": self.m, "k": self.k, "n": self.n, "tiles": self.tiles,
                "cycles": self.cycles, "macs": self.macs, "utilization": self.utilization}


def gemm_cycles(config: SystolicConfig, m, k, n):
    """Exact cycles for C = A(M x K) x B(K x N) tiled over the array, tiles streamed back to back
    in row-major tile order (each tile takes the full K in one pass)."""
    for name, v in (("M", m), ("K", k), ("N", n)):
        if v < 1:
            raise ValueError(f"{name} must be at least 1, not {v}")
    tm, tn = tile_grid(config, m, n)
    tiles = tm * tn
    cycles, _ = os_stream_cycles(config, [k] * tiles)
    return GemmCycles(m=m, k=k, n=n, tiles=tiles, cycles=cycles, macs=m * k * n,
                      peak_macs=config.macs)


def ws_array_cycles(config: SystolicConfig, m, k, n):
    """Exact cycles of C = A(M x K) x B(K x N) on a bare weight-stationary array at its tightest
    legal schedule, from the first weight push to the last ``psum`` beat, both inclusive:
    ``tiles = ceil(K/R) * ceil(N/C)`` weight tiles, each streaming the M rows of A; the first
    tile's R pushes and its activating swap (a bubble) come first, every later tile's weights
    are pushed during the previous tile's beats, whose last beat carries the swap, so tiles
    are ``max(M, R)`` cycles apart: ``2R + C + M + (tiles - 1) * max(M, R) + P``, where P
    is the PE pipeline's stages (``config.pipeline_stages``, part of :func:`result_latency`).
    The partial sums of the K tiles are accumulated outside the array."""
    if config.dataflow is not Dataflow.WEIGHT_STATIONARY:
        raise ValueError(f"ws_array_cycles needs a weight-stationary array, not {config.dataflow}")
    for name, v in (("M", m), ("K", k), ("N", n)):
        if v < 1:
            raise ValueError(f"{name} must be at least 1, not {v}")
    R, C = config.rows, config.cols
    tiles = math.ceil(k / R) * math.ceil(n / C)
    cycles = 2 * R + C + m + (tiles - 1) * max(m, R) + config.pipeline_stages
    return GemmCycles(m=m, k=k, n=n, tiles=tiles, cycles=cycles, macs=m * k * n,
                      peak_macs=config.macs)


def scalesim_cycles(config, m, k, n):
    """SCALE-Sim v2's per-fold estimate, folds not overlapped (Samajdar et al., "A Systematic
    Methodology for Characterizing Scalability of DNN Accelerators using SCALE-Sim",
    ISPASS 2020):

    * output-stationary: ceil(M/R) * ceil(N/C) folds of R + C + K - 2 cycles;
    * weight-stationary: ceil(K/R) * ceil(N/C) folds of 2R + C + M - 2 cycles.
    """
    R, C = config.rows, config.cols
    if config.dataflow is Dataflow.OUTPUT_STATIONARY:
        return math.ceil(m / R) * math.ceil(n / C) * (R + C + k - 2)
    return math.ceil(k / R) * math.ceil(n / C) * (2 * R + C + m - 2)


@dataclass(frozen=True)
class EngineCycles:
    """Predicted cycles of one job on a :class:`~systolix.hdl.engine.MatrixEngine`, per phase,
    with every stream at full rate (source always valid, sink always ready).

    ``total`` counts from the command handshake to the ``done`` pulse:
    ``load + compute + drain + 3 + output_latency`` (one cycle each to enter compute, to start
    the drain's first read and to raise ``done``, plus the requantizer's pipeline if any).
    """

    m: int
    k: int
    n: int
    tiles: int          # (row or k) tiles x column tiles pushed through the array / MMA units
    span: int           # cycles per tile (tensor core: per group of `latency` output tiles)
    a_words: int
    b_words: int
    c_words: int
    compute: int        # what the engine's `cycles` output reports
    macs: int
    peak_macs: int
    q_words: int = 0           # requantization parameter words
    output_latency: int = 0    # requantizer stages between the C buffer and the c stream

    @property
    def load(self):
        """Cycles of the load phase: A, B (and parameter) words arrive concurrently."""
        return max(self.a_words, self.b_words, self.q_words)

    @property
    def drain(self):
        return self.c_words

    @property
    def total(self):
        return self.load + self.compute + self.drain + 3 + self.output_latency

    @property
    def utilization(self):
        """Useful MACs / (array MACs x compute cycles): how busy the array is while computing."""
        return self.macs / (self.peak_macs * self.compute)

    @property
    def end_to_end_utilization(self):
        """The same over the whole job, loading and draining included."""
        return self.macs / (self.peak_macs * self.total)

    def to_dict(self):
        return {"m": self.m, "k": self.k, "n": self.n, "tiles": self.tiles, "span": self.span,
                "a_words": self.a_words, "b_words": self.b_words, "c_words": self.c_words,
                "load": self.load, "compute": self.compute, "drain": self.drain,
                "total": self.total, "macs": self.macs, "utilization": self.utilization,
                "end_to_end_utilization": self.end_to_end_utilization}


def engine_cycles(config: EngineConfig, m, k, n):
    """Exact cycles of C = A(M x K) x B(K x N) on a matrix engine.

    The compute phase follows the core's schedule (:meth:`ComputeCore.schedule
    <systolix.config.core.ComputeCore.schedule>` of ``config.compute``, which states each
    core's formula); loading takes the core's A and B word counts (and one parameter word per
    column tile with requantization), draining ``M * ceil(N / cols)`` C words.
    """
    for name, v, hi in (("M", m, config.max_m), ("K", k, config.max_k), ("N", n, config.max_n)):
        if not 1 <= v <= hi:
            raise ValueError(f"{name} must be in range 1..{hi}, not {v}")
    cc = config.compute
    tiles, span, compute = cc.schedule(m, k, n)
    col_tiles = math.ceil(n / config.cols)
    rq = config.requant is not None
    return EngineCycles(m=m, k=k, n=n, tiles=tiles, span=span, a_words=cc.a_words(m, k),
                        b_words=cc.b_words(k, n), c_words=m * col_tiles, compute=compute,
                        macs=m * k * n, peak_macs=config.macs,
                        q_words=col_tiles if rq else 0,
                        output_latency=config.requant.latency if rq else 0)
