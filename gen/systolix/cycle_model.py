"""Exact cycle model of the generated arrays, and SCALE-Sim's textbook formula for comparison.

The model counts cycles the way the testbench measures them: from the cycle in which the first
input beat of a stream of tiles is accepted to the cycle in which the final output row is valid,
both inclusive, with the input offered every cycle (no stalls from the source).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .config import Dataflow, SystolicConfig

__all__ = ["GemmCycles", "tile_grid", "result_latency", "stream_cycles", "gemm_cycles", "scalesim_cycles"]


def tile_grid(config: SystolicConfig, m, n):
    """Number of output tiles (row tiles, column tiles) for an M x N result."""
    return math.ceil(m / config.rows), math.ceil(n / config.cols)


def result_latency(config: SystolicConfig):
    """Cycles from accepting a tile's ``last`` beat to its first output row: the skew/de-skew
    wavefront (R + C - 1) plus the PE pipeline stages. The array's ``result_latency`` property
    returns this same value (a test keeps them equal)."""
    return config.rows + config.cols - 1 + config.pipeline_stages


def stream_cycles(config: SystolicConfig, tile_ks):
    """Cycles to push tiles with the given K's back to back through an output-stationary array.

    Tile ``t``'s ``last`` beat is accepted ``K_t`` cycles after the previous one, but never
    sooner than ``rows`` cycles after it (the array's drain spacing, enforced by ``ready``).
    The final output row then follows ``result_latency + rows - 1`` cycles later, where
    ``result_latency = rows + cols - 1 + pipeline_stages`` (see
    :attr:`~systolix.hdl.systolic.OutputStationaryArray.result_latency`).

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
        raise ValueError("stream_cycles needs at least one tile")
    R, C = config.rows, config.cols
    last_cycles = []
    for t, k in enumerate(tile_ks):
        if k < 1:
            raise ValueError(f"tile K must be at least 1, not {k}")
        last_cycles.append(k - 1 if t == 0 else last_cycles[-1] + max(k, R))
    completion = last_cycles[-1] + result_latency(config) + (R - 1)
    return completion + 1, last_cycles


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
    cycles, _ = stream_cycles(config, [k] * tiles)
    return GemmCycles(m=m, k=k, n=n, tiles=tiles, cycles=cycles, macs=m * k * n,
                      peak_macs=config.macs)


def scalesim_cycles(config: SystolicConfig, m, k, n):
    """SCALE-Sim v2's output-stationary estimate: folds x (R + C + K - 2), folds not overlapped."""
    tm, tn = tile_grid(config, m, n)
    return tm * tn * (config.rows + config.cols + k - 2)
