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
           "stream_cycles", "stream_jobs", "scalesim_cycles"]


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


def stream_jobs(jobs):
    """Normalize a job stream: each job ``(M, K, N)`` or ``(M, K, N, keep_weights)`` becomes
    ``(M, K, N, bool)``. A keep-weights job needs an earlier job's weights of the same K and N
    (the last job that loaded B); anything else raises ``ValueError`` naming the job."""
    out = []
    weights = None
    for j, job in enumerate(jobs):
        job = tuple(job)
        if len(job) not in (3, 4):
            raise ValueError(f"job {j} must be (M, K, N) or (M, K, N, keep_weights), not {job!r}")
        m, k, n = (int(v) for v in job[:3])
        keep = bool(job[3]) if len(job) == 4 else False
        if keep and weights is None:
            raise ValueError(f"job {j} keeps weights, but no earlier job loaded any")
        if keep and weights != (k, n):
            raise ValueError(f"job {j} keeps weights of K x N = {weights[0]} x {weights[1]}, "
                             f"not {k} x {n}")
        if not keep:
            weights = (k, n)
        out.append((m, k, n, keep))
    if not out:
        raise ValueError("a job stream needs at least one job")
    return out


def stream_cycles(config: EngineConfig, jobs):
    """Exact cycles of a stream of jobs run back to back on a matrix engine.

    ``jobs`` is a sequence of ``(M, K, N)`` or ``(M, K, N, keep_weights)``. The stream is
    unstalled: every command is offered from the first cycle on until it is taken, the load
    streams are always valid and the C sink always ready. ``total`` counts from the first
    command handshake to the last job's last C word, both inclusive, which is also the cycle of
    the last ``done`` pulse minus the cycle of the first handshake; for one job it is
    :func:`engine_cycles`' ``total``.

    The single-buffered engine runs the jobs one after the other: it takes the next command in
    the cycle of the previous job's ``done`` pulse, so ``total`` is the sum of the jobs' totals.
    The double-buffered one overlaps them (see :func:`_double_buffered_done`).

    Returns
    -------
    dict
        ``total``, ``compute`` (the jobs' compute phases summed), ``macs`` (useful MACs),
        ``peak_macs`` (MACs per cycle), ``jobs`` (number of jobs), ``done`` (per job, the cycle
        of its ``done`` pulse counted from the first handshake), ``utilization`` (MACs over the
        compute phases) and ``end_to_end_utilization`` (``macs / (peak_macs * total)``).
    """
    jobs = stream_jobs(jobs)
    per_job = [engine_cycles(config, m, k, n, keep) for m, k, n, keep in jobs]
    if getattr(config, "buffering", "single") == "double":
        done = _double_buffered_done(config, per_job, [j[3] for j in jobs])
    else:
        done = []
        t = 0
        for e in per_job:
            t += e.total
            done.append(t)
    total = done[-1]
    compute = sum(e.compute for e in per_job)
    macs = sum(e.macs for e in per_job)
    return {"jobs": len(jobs), "total": total, "compute": compute, "macs": macs,
            "peak_macs": config.macs, "done": done,
            "utilization": macs / (config.macs * compute),
            "end_to_end_utilization": macs / (config.macs * total)}


def _double_buffered_done(config, per_job, keeps):
    """``done`` cycles of a double-buffered engine's unstalled stream, counted from the first
    command handshake (cycle 0). Per job j, in cycles:

    * ``h``: command handshake, the cycle after the previous job's compute started (the load
      stage is free again);
    * A and B words in ``h+1 ..`` (none for B with keep-weights); requantization parameters
      from ``h+1`` too, or, if their bank still serves the drain of an earlier job, from the
      cycle after that drain's last C word;
    * ``r``: the cycle after the last load word;
    * ``s = max(r, e[j-1] + 1 + tail, t[j-2] + 1)``: compute start, once the array is free
      (``tail``: the output-stationary array writes its last tile's rows 1..R-1 after the
      final write) and the job's C bank has been drained;
    * ``e = s + compute``: the final write into C;
    * drain start ``d = max(e, t[j-1] + 1)``; first C word in ``d + 2 + output latency``,
      last ``t`` = that + C words - 1; ``done`` in ``t + 1``.
    """
    tail = config.rows - 1 if config.dataflow is Dataflow.OUTPUT_STATIONARY else 0
    rq = config.requant is not None
    h = 0
    e_prev = None
    t = []                 # last C word per job
    q_user = {0: None, 1: None}  # parameter bank -> last job that used it
    lb = 0                 # parameter bank of the last job that loaded weights (next: 1 - lb)
    starts = []
    for j, (e, keep) in enumerate(zip(per_job, keeps)):
        if j:
            h = starts[-1] + 1
        last = h + max(e.a_words, e.b_words)
        if not keep:
            lb = 1 - lb
        if rq and e.q_words:
            u = q_user[lb]
            q0 = h + 1 if u is None or u == j else max(h + 1, t[u] + 1)
            last = max(last, q0 + e.q_words - 1)
        q_user[lb] = j
        r = last + 1
        s = r
        if e_prev is not None:
            s = max(s, e_prev + 1 + tail)
        if j >= 2:
            s = max(s, t[j - 2] + 1)
        starts.append(s)
        e_prev = s + e.compute
        d = e_prev if j == 0 else max(e_prev, t[j - 1] + 1)
        first = d + 2 + e.output_latency
        t.append(first + e.c_words - 1)
    return [x + 1 for x in t]


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
    output_latency: int = 0    # register stages between the C buffer and the c stream

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


def engine_cycles(config: EngineConfig, m, k, n, keep_weights=False):
    """Exact cycles of C = A(M x K) x B(K x N) on a matrix engine.

    The compute phase follows the core's schedule (:meth:`ComputeCore.schedule
    <systolix.config.core.ComputeCore.schedule>` of ``config.compute``, which states each
    core's formula); loading takes the core's A and B word counts (and one parameter word per
    column tile with requantization), draining ``M * ceil(N / cols)`` C words. A
    ``keep_weights`` job reuses the B (and parameter) words already in the engine: it loads
    only A.
    """
    for name, v, hi in (("M", m, config.max_m), ("K", k, config.max_k), ("N", n, config.max_n)):
        if not 1 <= v <= hi:
            raise ValueError(f"{name} must be in range 1..{hi}, not {v}")
    cc = config.compute
    tiles, span, compute = cc.schedule(m, k, n)
    col_tiles = math.ceil(n / config.cols)
    rq = config.requant is not None
    return EngineCycles(m=m, k=k, n=n, tiles=tiles, span=span, a_words=cc.a_words(m, k),
                        b_words=0 if keep_weights else cc.b_words(k, n),
                        c_words=m * col_tiles, compute=compute,
                        macs=m * k * n, peak_macs=config.macs,
                        q_words=col_tiles if rq and not keep_weights else 0,
                        output_latency=config.output_latency)
