"""The compute core of a matrix engine: what its buffers, controller, cycle model and packers
need to know about the array or MMA units that do the multiplying.

An :class:`~systolix.config.EngineConfig` holds one :class:`ComputeCore` (``config.compute``):
an :class:`OutputStationaryCore` or a :class:`WeightStationaryCore` around a
:class:`~systolix.config.SystolicConfig`, or a :class:`TensorCore` of ``cores`` MMA units
around a :class:`~systolix.config.TensorCoreConfig`. Everything core-specific that is plain
arithmetic lives here:

* the *blocks* of A, B and C one buffer word holds and the word shapes (the lanes, row-major),
  from which the buffer depths, the load counts and the packers follow;
* :meth:`ComputeCore.schedule`, the compute phase's exact cycle count, and its formula for the
  manifest;
* the engine's name and the core's part of its dict.

The engine's controller drives each core through a sequencer of its own
(:mod:`systolix.hdl.engine`), looked up by the core's type.
"""

from __future__ import annotations

import math

from .array import Dataflow, SystolicConfig
from .tensorcore import TensorCoreConfig

__all__ = ["ComputeCore", "SystolicCore", "OutputStationaryCore", "WeightStationaryCore",
           "TensorCore"]


class ComputeCore:
    """A matrix engine's compute core (abstract; see the module docstring).

    Buffer words hold *blocks*: an A word holds an ``a_block = (rows of A, columns of A)``
    block, laid out as ``a_word`` lanes (row-major over the block, lane 0 in the least
    significant bits); likewise ``b_block = (rows of B, cols)`` and ``c_block = (rows of C,
    cols)``. B words go column tile by column tile, the k-blocks of each in order; A words
    follow ``a_order``: ``"mk"`` (each row block's k-blocks in order) or ``"km"`` (each
    k-block's row blocks in order). C words go row block by row block within a column tile.

    Attributes
    ----------
    arch : str
        ``"systolic"`` or ``"tensorcore"`` (:attr:`EngineConfig.arch`, the dict's ``arch``).
    rows, cols : int
        Rows of C per output tile; accumulators per C word (lanes of a C stream word).
    dataflow : Dataflow or None
        The systolic array's dataflow; None for MMA units.
    """

    arch: str
    a_order: str

    @property
    def numerics(self):
        raise NotImplementedError

    @property
    def macs(self):
        raise NotImplementedError

    @property
    def accumulation_chunk(self):
        raise NotImplementedError

    @property
    def dataflow(self):
        return None

    @property
    def buffer_read_latency(self):
        """Cycles from an A or B buffer address to the word at the core's inputs: the block
        RAM's own read (1), plus a register on its read data when the core is pipelined
        (:attr:`SystolicCore.buffer_read_latency`). The one place the engine's controller and
        the cycle models take it from."""
        return 1

    @property
    def output_register(self):
        """The ``c`` port of an engine without requantizer is driven from a register of its
        own, one more cycle of output latency (a tensor core's pipelined drain: the row select
        out of the C fragment then has a cycle to itself)."""
        return False

    # -- word geometry

    @property
    def a_block(self):
        raise NotImplementedError

    @property
    def b_block(self):
        raise NotImplementedError

    @property
    def c_block(self):
        raise NotImplementedError

    @property
    def a_word(self):
        """Shape of an A word: ``(lanes,)`` or ``(rows, cols)`` of a fragment."""
        raise NotImplementedError

    @property
    def b_word(self):
        raise NotImplementedError

    @property
    def c_word(self):
        raise NotImplementedError

    def a_words(self, m, k):
        """Words of A (M x K) in the A buffer: the job's load count."""
        bm, bk = self.a_block
        return math.ceil(m / bm) * math.ceil(k / bk)

    def b_words(self, k, n):
        """Words of B (K x N) in the B buffer: the job's load count."""
        bk, bn = self.b_block
        return math.ceil(n / bn) * math.ceil(k / bk)

    def k_steps(self, k):
        """B words per column tile: ``ceil(K / b_block[0])``."""
        return math.ceil(k / self.b_block[0])

    def c_rows(self, m):
        """C words of one column tile: ``ceil(M / c_block[0])``."""
        return math.ceil(m / self.c_block[0])

    # -- compute schedule

    def schedule(self, m, k, n):
        """``(tiles, span, compute)`` of C = A(M x K) x B(K x N): the tiles pushed through the
        core, the cycles per tile (or group of tiles) and the compute phase's exact cycles
        (what the engine's ``cycles`` output reports)."""
        raise NotImplementedError

    #: :meth:`schedule`'s compute formula, for the manifest.
    compute_formula: str

    # -- naming and serialisation

    def engine_name(self, max_m, max_k, max_n):
        """The engine's name up to the requantizer suffix."""
        raise NotImplementedError

    def to_dict(self):
        """The core's entries of the engine's dict."""
        raise NotImplementedError


class SystolicCore(ComputeCore):
    """An R x C systolic array (:class:`OutputStationaryCore` or :class:`WeightStationaryCore`,
    by the array's dataflow: :meth:`of` picks)."""

    arch = "systolic"

    def __init__(self, array: SystolicConfig):
        self.array = array

    @staticmethod
    def of(array: SystolicConfig):
        return {Dataflow.OUTPUT_STATIONARY: OutputStationaryCore,
                Dataflow.WEIGHT_STATIONARY: WeightStationaryCore}[array.dataflow](array)

    rows = property(lambda self: self.array.rows)
    cols = property(lambda self: self.array.cols)
    numerics = property(lambda self: self.array.numerics)
    macs = property(lambda self: self.array.macs)
    accumulation_chunk = property(lambda self: self.array.accumulation_chunk)
    dataflow = property(lambda self: self.array.dataflow)

    @property
    def b_block(self):
        """One row of B over a column tile."""
        return (1, self.cols)

    @property
    def c_block(self):
        """One row of C over a column tile."""
        return (1, self.cols)

    @property
    def a_word(self):
        return (self.rows,)

    @property
    def b_word(self):
        return (self.cols,)

    @property
    def c_word(self):
        return (self.cols,)

    def engine_name(self, max_m, max_k, max_n):
        return (self.array.name.replace("systolic_", "engine_", 1)
                + f"_{max_m}x{max_k}x{max_n}")

    def to_dict(self):
        return {"array": self.array.to_dict()}

    @property
    def buffer_read_latency(self):
        """2 with a pipelined PE (``--pipeline`` other than ``none``): the A and B words are
        registered between the block RAMs and the array, so that the RAM's clock-to-out and the
        route to the array's edge are not one path; 1 otherwise."""
        return 2 if self.array.pipeline_stages else 1


class OutputStationaryCore(SystolicCore):
    """An output-stationary array: each R x C output tile takes its K beats (an A column and
    a B row each), tiles at least R cycles apart."""

    a_order = "mk"

    @property
    def a_block(self):
        """One column of A over a row tile."""
        return (self.rows, 1)

    def schedule(self, m, k, n):
        """``tiles = ceil(M/R) * ceil(N/C)`` output tiles, each ``span = max(K, R)`` cycles
        apart (the array's drain needs R per tile); compute = ``(tiles - 1) * span + K + B +
        result_latency + R - 1`` (the last tile's K beats, B = :attr:`buffer_read_latency`
        cycles of buffer latency, the array's result latency - R + C - 1 plus any PE pipeline
        stages, as :func:`systolix.model.cycles.result_latency` - and R - 1 more for its last
        row)."""
        R, C = self.rows, self.cols
        tiles, span = math.ceil(m / R) * math.ceil(n / C), max(k, R)
        result_latency = R + C - 1 + self.array.pipeline_stages
        return tiles, span, ((tiles - 1) * span + k + self.buffer_read_latency + result_latency
                             + R - 1)

    @property
    def compute_formula(self):
        stages, extra = self.array.pipeline_stages, self.buffer_read_latency - 1
        return (f"(tiles - 1) * max(K, R) + K + 2R + C - 1"
                f"{f' + {stages} (PE pipeline)' if stages else ''}"
                f"{f' + {extra} (buffer read register)' if extra else ''}, "
                f"tiles = ceil(M/R) * ceil(N/C)")


class WeightStationaryCore(SystolicCore):
    """A weight-stationary array: each (column tile, k-tile) pair's R x C weights go into the
    PEs while the previous pair computes, then the M rows of A stream through."""

    a_order = "km"

    @property
    def a_block(self):
        """One row of A over a k-tile."""
        return (1, self.rows)

    def schedule(self, m, k, n):
        """``tiles = ceil(K/R) * ceil(N/C)`` weight tiles, each ``span = max(M, R + 1)`` cycles
        (the M rows of A; the next tile's R weight rows are pushed meanwhile, and need R + 1
        cycles between swaps); compute = ``R + 1 + (tiles - 1) * span + M + B + R + C - 1 + P``
        (loading the first weights, then the last tile's M beats, B =
        :attr:`buffer_read_latency` cycles of buffer latency and the array's result latency
        R + C - 1 + P, P its PE pipeline stages, as
        :func:`systolix.model.cycles.result_latency`, whose result is accumulated into C in the
        same cycle)."""
        R, C = self.rows, self.cols
        tiles, span = math.ceil(k / R) * math.ceil(n / C), max(m, R + 1)
        return tiles, span, (R + 1 + (tiles - 1) * span + m + self.buffer_read_latency + R + C - 1
                             + self.array.pipeline_stages + self.accumulate_latency)

    @property
    def accumulate_latency(self):
        """Register stages of the C read-modify-write between the array's column sums and the
        C write: 1 with a pipelined PE and R >= 4 (the old C row is registered after the block
        RAM, the sum before the write, so that neither route from and to the block RAM shares
        a cycle with the adder; the row's next read-modify-write, R + 1 or more cycles later,
        still reads after this write), 0 otherwise."""
        return 1 if self.array.pipeline_stages and self.rows >= 4 else 0

    @property
    def compute_formula(self):
        stages, extra = self.array.pipeline_stages, self.buffer_read_latency - 1
        acc = self.accumulate_latency
        return (f"R + 1 + (tiles - 1) * max(M, R + 1) + M + R + C"
                f"{f' + {stages} (PE pipeline)' if stages else ''}"
                f"{f' + {extra} (buffer read register)' if extra else ''}"
                f"{f' + {acc} (accumulate register)' if acc else ''}, "
                f"tiles = ceil(K/R) * ceil(N/C)")


class TensorCore(ComputeCore):
    """``cores`` m x n x k tensor-core MMA units side by side along N (they share each A
    fragment): rows = m, cols = n * cores; words are fragments."""

    arch = "tensorcore"
    a_order = "mk"

    def __init__(self, core: TensorCoreConfig, cores: int):
        self.core = core
        self.cores = cores

    rows = property(lambda self: self.core.m)
    cols = property(lambda self: self.core.n * self.cores)
    numerics = property(lambda self: self.core.numerics)
    macs = property(lambda self: self.core.macs * self.cores)
    accumulation_chunk = property(lambda self: self.core.accumulation_chunk)

    @property
    def a_block(self):
        """An m x k fragment of A."""
        return (self.core.m, self.core.k)

    @property
    def b_block(self):
        """A k x cols fragment of B (unit u takes columns u*n .. u*n + n - 1)."""
        return (self.core.k, self.cols)

    @property
    def c_block(self):
        """An m x cols fragment of C (one write per MMA)."""
        return (self.core.m, self.cols)

    a_word = property(lambda self: self.a_block)
    b_word = property(lambda self: self.b_block)
    c_word = property(lambda self: self.c_block)

    @property
    def buffer_read_latency(self):
        """3 when the MMA unit is pipelined beyond the default (``pipeline`` >= 2): the A and
        B fragments pass the block RAM's output register, then (A masked past K) one more
        register on their way to the units, and each C word passes the output register on its
        way out; 1 otherwise."""
        return 3 if self.core.pipeline >= 2 else 1

    @property
    def output_register(self):
        """With ``pipeline`` >= 2: the drain's row select (one row of the C fragment from the
        block RAM's output register) and the ``c`` port are a register apart."""
        return self.core.pipeline >= 2

    def schedule(self, m, k, n):
        """Latency L = pipeline + 1: ``tiles = ceil(M/m) * ceil(N/(n*cores))`` output tiles,
        taken in groups of L; a group issues its L tiles' k-step 0, then k-step 1, ..
        (``ks = ceil(K/k)`` k-steps), one MMA per cycle, so ``span = L * ks`` cycles per group
        (slots past the last tile are bubbles); compute = ``(groups - 1) * span + (ks - 1) * L
        + (tiles - 1) mod L + L + B + 1`` with ``groups = ceil(tiles / L)`` (up to the last
        tile's final issue, B = :attr:`buffer_read_latency` cycles of buffer latency, L
        through the unit, and the cycle writing it to C)."""
        ks, lat = math.ceil(k / self.core.k), self.core.latency
        tiles = math.ceil(m / self.rows) * math.ceil(n / self.cols)
        groups, span = math.ceil(tiles / lat), lat * ks
        return tiles, span, ((groups - 1) * span + (ks - 1) * lat + (tiles - 1) % lat + lat
                             + self.buffer_read_latency + 1)

    @property
    def compute_formula(self):
        extra = self.buffer_read_latency - 1
        return ("(groups - 1) * L * ks + (ks - 1) * L + (tiles - 1) mod L + L + 2"
                f"{f' + {extra} (buffer read register)' if extra else ''}, "
                "L = MMA latency, ks = ceil(K/k), tiles = ceil(M/m) * ceil(N/(n*cores)), "
                "groups = ceil(tiles/L)")

    def engine_name(self, max_m, max_k, max_n):
        return (self.core.name.replace("tensorcore_", "engine_tc_", 1)
                + f"_{max_m}x{max_k}x{max_n}"
                + (f"_{self.cores}cores" if self.cores > 1 else ""))

    def to_dict(self):
        return {"array": None, "arch": self.arch, "core": self.core.to_dict(),
                "cores": self.cores}
