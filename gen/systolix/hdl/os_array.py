# amaranth: UnusedElaboratable=no
"""R x C output-stationary systolic array with built-in input skew and output de-skew."""

from amaranth.hdl import ClockDomain, ClockSignal, Module, ResetSignal, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from ..config import Dataflow, SystolicConfig, multiplier_plan
from ..model.cycles import result_latency
from .arith import acc_shape, operand_shape
from . import dsp
from .pe import NOMERGE, OutputStationaryPE
from .skew import DelayLanes, deskew_delays, skew_delays
from .units import add_unit

__all__ = ["OutputStationaryArray", "input_layout", "output_layout", "drain_tree_levels"]


def _row_shape(rows):
    return unsigned(max(1, (rows - 1).bit_length()))


def input_layout(config: SystolicConfig):
    """Payload of the input stream: one column of an A tile, one row of a B tile, and ``last``."""
    op = operand_shape(config.numerics)
    return data.StructLayout({
        "a": data.ArrayLayout(op, config.rows),
        "b": data.ArrayLayout(op, config.cols),
        "last": 1,
    })


def output_layout(config: SystolicConfig):
    """Payload of the output stream: one row of a finished C tile and its row index."""
    return data.StructLayout({
        "data": data.ArrayLayout(acc_shape(config.numerics), config.cols),
        "row": _row_shape(config.rows),
    })


class OutputStationaryArray(wiring.Component):
    """An R x C grid of :class:`OutputStationaryPE` computing one R x C tile of C = A x B.

    **Input** (stream ``i``, valid/ready). One beat per k: ``a[r] = A[r, k]`` for the R rows of
    the tile and ``b[c] = B[k, c]`` for its C columns; ``last`` marks k = K - 1. A tile may have any
    K >= 1 and the next tile may start in the very next cycle. The skew that turns each beat into a
    diagonal wavefront is inside the array. ``ready`` is low only for a ``last`` beat that would
    arrive fewer than ``rows`` cycles after the previous accepted ``last`` beat (the drain needs
    ``rows`` cycles per tile), so tiles with K >= R stream with no stall at all.

    **Output** (stream ``o``, always ready: the drain never stops). Each finished tile comes out
    as R consecutive beats, one row of C per beat: **bottom row first** (``row`` counts down
    from R - 1 to 0), or **top row first** (``row`` counts up from 0 to R - 1) when the array
    drains through OR trees (``config.drain_tree``: ``mult="lut"``). The first row is
    valid :attr:`result_latency` cycles after the cycle in which the tile's ``last`` beat was
    accepted.

    **Drain.** By default the PEs' drain registers of a column form a shift chain: row r holds
    its result for R - 1 - r cycles, then the column shifts them out (one LUT per accumulator
    bit per PE, for the load-or-shift choice). With ``config.drain_tree`` a PE shows its
    finished sum on ``drain_out`` for one cycle and 0 otherwise, and the ``last`` wavefront
    reaches row r one cycle after row r - 1, so each column ORs its PEs' outputs (a tree of
    fan-in 4 with a register after each level, :func:`drain_tree_levels`) into one stream of
    rows, top row first, with no multiplexer per PE. The rows then wait in the de-skew lanes
    for the R - 1 cycles that keep the chain's output timing, so the latencies are the same.

    Parameters
    ----------
    config : SystolicConfig
        Must be output-stationary.

    Attributes
    ----------
    i : In(stream.Signature(input_layout(config)))
    o : Out(stream.Signature(output_layout(config), always_ready=True))
    """

    def __init__(self, config: SystolicConfig):
        if not isinstance(config, SystolicConfig):
            raise TypeError(f"config must be a SystolicConfig, not {config!r}")
        if config.dataflow is not Dataflow.OUTPUT_STATIONARY:
            raise ValueError(f"OutputStationaryArray cannot implement dataflow {config.dataflow}")
        self._config = config
        super().__init__({
            "i": In(stream.Signature(input_layout(config))),
            "o": Out(stream.Signature(output_layout(config), always_ready=True)),
        })

    @property
    def config(self):
        return self._config

    @property
    def result_latency(self):
        """Cycles from accepting a tile's ``last`` beat to its first output row (row R - 1):
        R + C - 1 for the skew and de-skew wavefront, plus :attr:`pipeline_stages`."""
        return result_latency(self._config)

    @property
    def pipeline_stages(self):
        """Register stages of each PE between operands and accumulator (``config.pipeline``)."""
        return self._config.pipeline_stages

    @property
    def drain_cycles(self):
        """Output beats per tile (one per row), which is also the minimum spacing of ``last``."""
        return self._config.rows

    @property
    def completion_latency(self):
        """Cycles from accepting a tile's ``last`` beat to its final output row (row 0)."""
        return self.result_latency + self.drain_cycles - 1

    def elaborate(self, platform):
        m = Module()
        R, C, num = self._config.rows, self._config.cols, self._config.numerics
        op = operand_shape(num)

        # --- input handshake: space `last` beats >= R cycles apart so drains never collide
        since_last = Signal(range(R + 1), init=R)
        # Never ready in reset, nor in the cycle after it, in which the PEs are still reset
        # (see _Column): a beat offered then would look accepted but be lost.
        after_reset = Signal(reset_less=True)
        m.d.sync += after_reset.eq(ResetSignal())
        m.d.comb += self.i.ready.eq(~ResetSignal() & ~after_reset
                                    & (~self.i.payload.last | (since_last == R)))
        accept = self.i.valid & self.i.ready
        with m.If(accept & self.i.payload.last):
            m.d.sync += since_last.eq(1 if R > 1 else R)
        with m.Elif(since_last != R):
            m.d.sync += since_last.eq(since_last + 1)

        # --- input skew: row r and column c enter r and c cycles late
        m.submodules.a_skew = a_skew = DelayLanes(op, skew_delays(R))
        m.submodules.flag_skew = flag_skew = DelayLanes(
            data.StructLayout({"valid": 1, "last": 1}), skew_delays(R), reset_less=False)
        m.submodules.b_skew = b_skew = DelayLanes(op, skew_delays(C))
        m.d.comb += [
            a_skew.i.eq(self.i.payload.a),
            b_skew.i.eq(self.i.payload.b),
        ]
        for r in range(R):
            m.d.comb += [
                flag_skew.i[r].valid.eq(accept),
                # (a drain-tree PE takes `last` alone as a tile's end: only an accepted beat's
                # counts; a chain PE takes `valid & last`)
                flag_skew.i[r].last.eq((accept & self.i.payload.last)
                                       if self._config.drain_tree else self.i.payload.last),
            ]

        # --- the mesh: operands and flags move right, b moves down, results drain down
        stages = self._config.pipeline_stages
        pair, groups, units = _column_groups(platform, self._config, op, stages, _Group)
        for g, group in enumerate(groups):
            add_unit(m, f"group_{g}", group, ("group", self._config, group.units), units)
            if g == 0:
                m.d.comb += group.a.eq(a_skew.o)
                for r in range(R):
                    m.d.comb += [group.valid[r].eq(flag_skew.o[r].valid),
                                 group.last[r].eq(flag_skew.o[r].last)]
            else:
                prev = groups[g - 1]
                m.d.comb += [group.a.eq(prev.a_out), group.valid.eq(prev.valid_out),
                             group.last.eq(prev.last_out)]
        width = groups[0].width  # columns per group (the last group may have fewer)
        for c in range(C):
            m.d.comb += groups[c // width].b[c % width].eq(b_skew.o[c])

        _wire_pairs(m, pair, groups, R, C)

        # --- output: column c leaves the bottom row c cycles late; re-align the columns and
        # delay all by what the drain trees do not (row r is out of its tree r + levels + 1
        # cycles after row 0's `last`, and leaves the array R + r cycles after it)
        wait = R - 1 - drain_tree_levels(R) if self._config.drain_tree else 0
        m.submodules.deskew = deskew = DelayLanes(acc_shape(num),
                                                  [d + wait for d in deskew_delays(C)])
        for c in range(C):
            m.d.comb += deskew.i[c].eq(groups[c // width].drain_out[c % width])
        m.d.comb += self.o.payload.data.eq(deskew.o)

        # A tile's first row is valid result_latency cycles after its `last` beat was accepted:
        # delay that event by result_latency - 1 cycles, then the registers below add one more.
        m.submodules.done_delay = done_delay = DelayLanes(
            1, [self.result_latency - 1], reset_less=False)
        m.d.comb += done_delay.i[0].eq(accept & self.i.payload.last)
        tree = self._config.drain_tree  # top row first; else bottom row first
        first, final = (0, R - 1) if tree else (R - 1, 0)
        row = Signal(_row_shape(R), init=final)
        with m.If(done_delay.o[0]):
            m.d.sync += [self.o.valid.eq(1), row.eq(first)]
        with m.Elif(row != final):
            m.d.sync += row.eq(row + 1 if tree else row - 1)
        with m.Else():
            m.d.sync += self.o.valid.eq(0)
        m.d.comb += self.o.payload.row.eq(row)
        return m


class _Column(wiring.Component):
    """Column c of an :class:`OutputStationaryArray`: its R PEs, top to bottom.

    ``a``/``valid``/``last`` enter each row from the left and leave one cycle later on
    ``a_out``/``valid_out``/``last_out``; ``b`` enters the top PE and moves down; the PEs'
    results leave on ``drain_out``: from the bottom PE of the drain chain, or through the
    column's drain tree (``config.drain_tree``), row r ``drain_tree_levels(R)`` cycles after
    it is on its PE's ``drain_out``. ``shared`` and ``plan`` give each row's PE
    its ``shared_multiplier`` and ``multiplier``. Columns with equal ones are alike (with the
    default plan, every column), so emission writes one module per distinct column and per
    distinct (row, shared, multiplier) PE.
    """

    def __init__(self, config, shared, plan):
        R, num = config.rows, config.numerics
        op = operand_shape(num)
        self._config = config
        self._shared = tuple(shared)
        self._plan = tuple(plan)
        self._pes = None
        super().__init__({
            "a": In(data.ArrayLayout(op, R)), "valid": In(R), "last": In(R),
            "a_out": Out(data.ArrayLayout(op, R)), "valid_out": Out(R), "last_out": Out(R),
            "b": In(op), "drain_out": Out(acc_shape(num)),
        })

    @property
    def pes(self):
        """The column's PEs, top row first (made on first use: an emitted column that is an
        instance of another's module never makes them)."""
        if self._pes is None:
            cfg = self._config
            tree = cfg.drain_tree
            self._pes = [OutputStationaryPE(cfg.numerics,
                                            hold_cycles=0 if tree else cfg.rows - 1 - r,
                                            drain_tree=tree,
                                            pipeline_stages=cfg.pipeline_stages,
                                            shared_multiplier=self._shared[r],
                                            multiplier=self._plan[r])
                         for r in range(cfg.rows)]
        return self._pes

    def elaborate(self, platform):
        m = Module()
        pes = self.pes
        # The column's PEs are reset by a flip-flop of the column's own, one cycle behind the
        # array's reset: the reset net of a big array then reaches C flip-flops, each of which
        # resets the R PEs beside it, instead of every PE flip-flop across the die. (The array
        # is not ready in that cycle; each column keeps its flip-flop: NOMERGE.)
        pe_rst = Signal(reset_less=True, name="pe_rst", attrs=NOMERGE)
        m.d.sync += pe_rst.eq(ResetSignal())
        m.domains.pe = ClockDomain("pe", local=True)
        m.d.comb += [ClockSignal("pe").eq(ClockSignal()), ResetSignal("pe").eq(pe_rst)]
        for r, pe in enumerate(pes):
            # (a shared multiplier outside the column is wired to the PE: keep it plain)
            add_unit(m, f"pe_{r}", pe, ("pe", self._config, r, self._shared[r], self._plan[r]),
                     None if self._shared[r] else platform, domain="pe")
            m.d.comb += [
                pe.a.eq(self.a[r]), pe.valid.eq(self.valid[r]), pe.last.eq(self.last[r]),
                self.a_out[r].eq(pe.a_out), self.valid_out[r].eq(pe.valid_out),
                self.last_out[r].eq(pe.last_out),
            ]
            m.d.comb += pe.b.eq(self.b if r == 0 else pes[r - 1].b_out)
            if not pe.drain_tree:
                m.d.comb += pe.drain_in.eq(0 if r == 0 else pes[r - 1].drain_out)
        if self._config.drain_tree:
            m.d.comb += self.drain_out.eq(_drain_tree(m, [pe.drain_out for pe in pes]))
        else:
            m.d.comb += self.drain_out.eq(pes[-1].drain_out)
        return m


#: Inputs of one OR gate of a column's drain tree (one LUT4).
DRAIN_TREE_FAN_IN = 4


def drain_tree_levels(rows):
    """Register levels of the drain tree of a column of ``rows`` PEs: one per level of
    OR gates of fan-in :data:`DRAIN_TREE_FAN_IN` (0 for a single row)."""
    levels = 0
    while rows > 1:
        rows = -(-rows // DRAIN_TREE_FAN_IN)
        levels += 1
    return levels


def _drain_tree(m, values):
    """OR of ``values`` (at most one of them non-zero in any cycle) through
    :func:`drain_tree_levels` levels of OR gates, each followed by a register; adjacent rows
    share a gate, so the wires of the first level stay within a few PEs."""
    level = 0
    while len(values) > 1:
        out = []
        for i in range(0, len(values), DRAIN_TREE_FAN_IN):
            reg = Signal.like(values[0], name=f"drain_or_{level}_{i // DRAIN_TREE_FAN_IN}",
                              reset_less=True)  # pure data, 0 once the PEs' drains are
            group = values[i:i + DRAIN_TREE_FAN_IN]
            total = group[0]
            for v in group[1:]:
                total = total | v
            m.d.sync += reg.eq(total)
            out.append(reg)
        values = out
        level += 1
    return values[0]


def _group_sizes(cols):
    """``[(first column, columns), ...]``: the array's columns in groups of ceil(sqrt(C))."""
    size = max(1, round(cols ** 0.5))
    return [(c, min(size, cols - c)) for c in range(0, cols, size)]

def _column_groups(platform, config, op, stages, group):
    """An array's columns, planned and grouped; returns ``(pair, groups, units)``.

    ``pair`` is the platform's shared multiplier pair (or ``None``), ``groups`` the column
    groups built by ``group(config, units)`` and ``units`` the platform to emit them as one
    module per distinct unit (``None``: plain submodules)."""
    R, C = config.rows, config.cols
    # Neighbouring PEs of a row share one primitive when the platform offers pairs of
    # registered multipliers; the PEs of an odd last column ask for their own.
    pair = (dsp.multiplier_pair(platform, op, input_register=dsp.pe_input_register(stages))
            if stages else None)
    # which PEs get a DSP multiplier and which one built from LUTs (config.mult)
    plan = multiplier_plan(config, dsp.dsp_blocks(platform), pairs=pair is not None)
    shared = [[pair is not None and c < C - C % 2 and plan[r][c] == "dsp" for c in range(C)]
              for r in range(R)]
    # column c's (shared, multiplier) per row, top first
    col_units = [(tuple(shared[r][c] for r in range(R)), tuple(plan[r][c] for r in range(R)))
                 for c in range(C)]
    # Columns come in groups of about sqrt(C): emitted, the array is then sqrt(C) group
    # instances of sqrt(C) column instances each, which keeps the wiring that Amaranth
    # elaborates (bit by bit) near R * 2 sqrt(C) nets instead of R * C.
    groups = [group(config, col_units[c:c + size]) for c, size in _group_sizes(C)]
    # A shared primitive is wired to PEs inside the columns: those stay plain submodules.
    units = None if any(map(any, shared)) else platform
    return pair, groups, units


def _wire_pairs(m, pair, groups, rows, cols):
    """Wire each shared multiplier pair to the two PEs of a row that share it."""
    if pair is None:
        return
    columns = [col for group in groups for col in group.columns]
    for r in range(rows):
        for c in range(0, cols - 1, 2):
            low, high = columns[c].pes[r], columns[c + 1].pes[r]
            if low.shared_multiplier:
                m.submodules[f"mac_{r}_{c}"] = pair((low.mul_a, low.mul_b, low.mul_p),
                                                    (high.mul_a, high.mul_b, high.mul_p))


class _Group(wiring.Component):
    """Adjacent columns of an :class:`OutputStationaryArray` (``len(units)`` of them, each a
    ``(shared, plan)`` pair of per-row tuples, see :class:`_Column`): rows pass through from
    left to right, each column has its own ``b`` input and ``drain_out`` output."""

    def __init__(self, config, units):
        R, num = config.rows, config.numerics
        op = operand_shape(num)
        self._config = config
        self.units = tuple((tuple(shared), tuple(plan)) for shared, plan in units)
        self.width = len(self.units)
        self._columns = None
        super().__init__({
            "a": In(data.ArrayLayout(op, R)), "valid": In(R), "last": In(R),
            "a_out": Out(data.ArrayLayout(op, R)), "valid_out": Out(R), "last_out": Out(R),
            "b": In(data.ArrayLayout(op, self.width)),
            "drain_out": Out(data.ArrayLayout(acc_shape(num), self.width)),
        })

    @property
    def columns(self):
        """The group's columns, left first (made on first use, see :attr:`_Column.pes`)."""
        if self._columns is None:
            self._columns = [_Column(self._config, shared, plan) for shared, plan in self.units]
        return self._columns

    def elaborate(self, platform):
        m = Module()
        cols = self.columns
        for j, col in enumerate(cols):
            add_unit(m, f"col_{j}", col, ("column", self._config) + self.units[j],
                     None if any(self.units[j][0]) else platform)
            if j == 0:
                m.d.comb += [col.a.eq(self.a), col.valid.eq(self.valid), col.last.eq(self.last)]
            else:
                m.d.comb += [col.a.eq(cols[j - 1].a_out), col.valid.eq(cols[j - 1].valid_out),
                             col.last.eq(cols[j - 1].last_out)]
            m.d.comb += [col.b.eq(self.b[j]), self.drain_out[j].eq(col.drain_out)]
        m.d.comb += [self.a_out.eq(cols[-1].a_out), self.valid_out.eq(cols[-1].valid_out),
                     self.last_out.eq(cols[-1].last_out)]
        return m
