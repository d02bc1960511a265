# amaranth: UnusedElaboratable=no
"""Weight-stationary systolic array with double-buffered (shadow) weights, TPU v1 style."""

from amaranth.hdl import Module, Signal
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from ..config import Dataflow, Numerics, SystolicConfig
from .arith import chunk_sum_shape, operand_shape
from .skew import DelayLanes, deskew_delays, skew_delays
from . import dsp
from .os_array import _column_groups, _wire_pairs
from .units import add_unit

__all__ = ["WeightStationaryPE", "WeightStationaryArray"]


class WeightStationaryPE(wiring.Component):
    """One multiply-add cell holding one weight, with a shadow register for the next one.

    Every cycle the PE adds ``a * weight`` to the partial sum from the PE above and passes the
    exact sum down (``psum_out``, one register); ``a`` and ``swap`` go right and the weight pipe
    ``w`` goes down, each through one register. ``capture`` loads ``w`` into the shadow register;
    a ``swap`` beat uses the active weight and then makes the shadow weight active, so the next
    tile's weights are loaded while the current tile computes (TPU v1's double buffering).

    With ``pipeline_stages`` the product passes through that many registers before the adder,
    so ``psum_out`` is :attr:`psum_latency` cycles behind ``a``. Every PE of a column has the
    same stages, so the partial sum from above arrives exactly with this PE's product: the
    column's sums are merely late by the stages, and the weight schedule does not change.

    Parameters
    ----------
    numerics : Numerics
    row : int
        Row of this PE, ``>= 0``: the partial sum it passes down covers ``row + 1`` products and
        is exactly as wide as that needs (see :func:`~systolix.hdl.arith.chunk_sum_shape`).
    pipeline_stages : int
        Register stages between the operands and the adder, as the output-stationary PE's
        (:class:`~systolix.config.PEPipeline`): 0, 1 (the product is registered), 2 (the
        multiplier's operands, i.e. ``a`` and a copy of the active weight, and its product) or
        3 (as 2, plus a second product register). With 1 or more stages the PE asks the
        platform for a registered multiplier (:func:`systolix.hdl.dsp.multiplier`), whose own
        registers are these stages; the behaviour is cycle-for-cycle the same either way.
    shared_multiplier : bool
        Take the product from outside (``mul_a``/``mul_b`` out, ``mul_p`` in, ``mul_p``
        :attr:`multiplier_latency` cycles behind), e.g. from one half of a DSP primitive
        shared with a neighbour (:func:`systolix.hdl.dsp.multiplier_pair`); needs 1 or more
        stages.
    multiplier : str
        ``"dsp"`` (default): the platform's DSP multiplier as above, or ``a * weight``;
        ``"lut"``: a multiplier built from logic (:func:`systolix.hdl.dsp.lut_multiplier`)
        whose register stages are the PE's, so the PE behaves the same cycle for cycle.

    Attributes
    ----------
    a, swap : In
        Activation and swap flag from the left. ``a_out``/``swap_out``: the same one cycle later.
    w : In(operand)
        Weight pipe from above; ``w_out``: the same one cycle later.
    capture : In(1)
        Load ``w`` into the shadow register at the end of this cycle.
    psum_in : In(chunk_sum_shape(numerics, row)), absent in row 0
    psum_out : Out(chunk_sum_shape(numerics, row + 1))
    mul_a, mul_b : Out(operand); mul_p : In(product)
        Only with ``shared_multiplier``.
    """

    def __init__(self, numerics: Numerics, *, row=0, pipeline_stages=0, shared_multiplier=False,
                 multiplier="dsp"):
        if not isinstance(numerics, Numerics):
            raise TypeError(f"numerics must be a Numerics, not {numerics!r}")
        if not isinstance(row, int) or isinstance(row, bool) or row < 0:
            raise ValueError(f"row must be a non-negative integer, not {row!r}")
        if pipeline_stages not in (0, 1, 2, 3) or isinstance(pipeline_stages, bool):
            raise ValueError(f"pipeline_stages must be 0, 1, 2 or 3, not {pipeline_stages!r}")
        dsp.check_multiplier_choice(multiplier, shared_multiplier, pipeline_stages)
        self._multiplier = multiplier
        self._numerics = numerics
        self._row = row
        self._pipeline_stages = pipeline_stages
        self._shared = shared_multiplier
        op = operand_shape(numerics)
        members = {
            "a": In(op), "swap": In(1), "w": In(op), "capture": In(1),
            "a_out": Out(op), "swap_out": Out(1), "w_out": Out(op),
            "psum_out": Out(chunk_sum_shape(numerics, row + 1)),
        }
        if row:
            members["psum_in"] = In(chunk_sum_shape(numerics, row))
        if shared_multiplier:
            members.update({"mul_a": Out(op), "mul_b": Out(op),
                            "mul_p": In((Signal(op) * Signal(op)).shape())})
        super().__init__(members)

    @property
    def numerics(self):
        return self._numerics

    @property
    def row(self):
        return self._row

    @property
    def pipeline_stages(self):
        return self._pipeline_stages

    @property
    def shared_multiplier(self):
        return self._shared

    @property
    def multiplier(self):
        """``"dsp"`` or ``"lut"``: the kind of multiplier."""
        return self._multiplier

    @property
    def multiplier_latency(self):
        """Cycles the registered multiplier takes (:func:`systolix.hdl.dsp.multiplier_latency`):
        2 (input and product registers) when ``pipeline_stages >= 2``, else 1."""
        return dsp.multiplier_latency(self._pipeline_stages)

    @property
    def latency(self):
        """Cycles from inputs to ``a_out``/``swap_out``/``w_out``."""
        return 1

    @property
    def psum_latency(self):
        """Cycles from ``a`` (and ``psum_in``'s partner ``a`` of the row above, one cycle
        earlier) to ``psum_out``: 1 + :attr:`pipeline_stages`."""
        return 1 + self._pipeline_stages

    def elaborate(self, platform):
        m = Module()
        op = operand_shape(self._numerics)
        stages = self._pipeline_stages
        # Pure data registers: meaning comes from the controller's schedule, so no reset.
        weight = Signal(op, reset_less=True)
        shadow = Signal(op, reset_less=True)
        a_reg = Signal(op, reset_less=True)
        w_reg = Signal(op, reset_less=True)
        psum = Signal(self.psum_out.shape(), reset_less=True)
        swap_reg = Signal()
        p_shape = (self.a * weight).shape()

        mult = None
        if self._multiplier == "lut":
            # (its registers are the PE's stages: latency 0 without any)
            mult = dsp.lut_multiplier(platform, self.a, weight,
                                      latency=self.multiplier_latency if stages else 0)
        elif stages and not self._shared:
            mult = dsp.multiplier(platform, self.a, weight,
                                  input_register=dsp.pe_input_register(stages))
        if self._shared:
            m.d.comb += [self.mul_a.eq(self.a), self.mul_b.eq(weight)]
            product, extra = self.mul_p, stages - self.multiplier_latency
        elif mult is not None:
            cell, value = mult
            product = Signal(p_shape, name="product")
            m.submodules.mult = cell
            m.d.comb += product.eq(value)
            extra = stages - self.multiplier_latency if stages else 0
        elif stages >= 2:
            # operand stage: the forwarding register for `a`, a copy of the active weight
            # (a beat's product uses the weight of the cycle it arrived in)
            w_op = Signal(op, name="w_op", reset_less=True)
            m.d.sync += w_op.eq(weight)
            product, extra = a_reg * w_op, stages - 1
        else:
            product, extra = self.a * weight, stages
        for i in range(extra):
            reg = Signal(p_shape, name=f"product_{i}", reset_less=True)
            m.d.sync += reg.eq(product)
            product = reg

        m.d.sync += psum.eq(self.psum_in + product if self._row else product)
        with m.If(self.capture):
            m.d.sync += shadow.eq(self.w)
        with m.If(self.swap):
            m.d.sync += weight.eq(shadow)
        m.d.sync += [a_reg.eq(self.a), w_reg.eq(self.w), swap_reg.eq(self.swap)]
        m.d.comb += [
            self.psum_out.eq(psum),
            self.a_out.eq(a_reg),
            self.w_out.eq(w_reg),
            self.swap_out.eq(swap_reg),
        ]
        return m


class WeightStationaryArray(wiring.Component):
    """An R x C grid of :class:`WeightStationaryPE`: PE (r, c) holds weight ``B[k0 + r, n0 + c]``.

    The array is a fixed-latency pipeline with no handshake; the engine's controller schedules
    it. Everything below is in cycles at the array's ports; skew and de-skew are inside.

    **Activations.** A beat is one row of A restricted to the k-tile: ``a[r] = A[m, k0 + r]``,
    with ``a_valid``. Its column sums leave the bottom, de-skewed, as ``psum[c] =
    sum_r a[r] * weight(r, c)`` (exact) with ``psum_valid``, :attr:`result_latency` cycles later.

    **Weights.** A weight tile is pushed one row per cycle on ``w``, **last row first**
    (``w = B[k0 + R - 1, n0 ..]`` first, ``B[k0, n0 ..]`` last), with ``w_capture`` high on the
    last push; the rows travel down the columns and all land in the shadow registers together.
    A beat with ``swap`` high is still computed with the old weights; every later beat uses the
    captured ones. ``swap`` may ride on a beat with ``a_valid`` low (to activate the first tile).

    **Schedule rule** (what makes double buffering safe). With the capture in cycle ``Q`` and
    swaps in cycles ``S0 < S1``: a tile's weights may be captured only once the previous tile's
    swap has reached every row, and must be captured before their own swap::

        S0 + R - 1 <= Q < S1        (hence swaps at least R cycles apart)

    Parameters
    ----------
    config : SystolicConfig
        Must be weight-stationary.

    Attributes
    ----------
    a : In(ArrayLayout(operand, R)); a_valid, swap : In(1)
    w : In(ArrayLayout(operand, C)); w_capture : In(1)
    psum : Out(ArrayLayout(chunk_sum_shape(numerics, R), C)); psum_valid : Out(1)
    """

    def __init__(self, config: SystolicConfig):
        if not isinstance(config, SystolicConfig):
            raise TypeError(f"config must be a SystolicConfig, not {config!r}")
        if config.dataflow is not Dataflow.WEIGHT_STATIONARY:
            raise ValueError(f"WeightStationaryArray cannot implement dataflow {config.dataflow}")
        self._config = config
        op = operand_shape(config.numerics)
        super().__init__({
            "a": In(data.ArrayLayout(op, config.rows)),
            "a_valid": In(1),
            "swap": In(1),
            "w": In(data.ArrayLayout(op, config.cols)),
            "w_capture": In(1),
            "psum": Out(data.ArrayLayout(self.psum_shape, config.cols)),
            "psum_valid": Out(1),
        })

    @property
    def config(self):
        return self._config

    @property
    def psum_shape(self):
        """Shape of one column sum: exact for any R products."""
        return chunk_sum_shape(self._config.numerics, self._config.rows)

    @property
    def pipeline_stages(self):
        """Register stages of each PE between its multiplier's operands and its adder
        (``config.pipeline``)."""
        return self._config.pipeline_stages

    @property
    def result_latency(self):
        """Cycles from a beat at ``a`` to its column sums at ``psum``: R + C - 1 for the skew
        and de-skew wavefront, plus :attr:`pipeline_stages` (the same value as
        :func:`systolix.model.cycles.result_latency`)."""
        return self._config.rows + self._config.cols - 1 + self.pipeline_stages

    @property
    def min_swap_spacing(self):
        """Fewest cycles between two ``swap`` beats (the weight pipe is R deep)."""
        return self._config.rows

    def elaborate(self, platform):
        m = Module()
        R, C, num = self._config.rows, self._config.cols, self._config.numerics
        op = operand_shape(num)

        # Row r's activations enter r cycles late (with their swap flag), column c's weights and
        # capture strobe c cycles late: both wavefronts then sweep the array diagonally.
        m.submodules.a_skew = a_skew = DelayLanes(op, skew_delays(R))
        m.submodules.swap_skew = swap_skew = DelayLanes(1, skew_delays(R), reset_less=False)
        m.submodules.w_skew = w_skew = DelayLanes(op, skew_delays(C))
        m.submodules.capture_skew = capture_skew = DelayLanes(1, skew_delays(C), reset_less=False)
        m.d.comb += [a_skew.i.eq(self.a), w_skew.i.eq(self.w)]
        for r in range(R):
            m.d.comb += swap_skew.i[r].eq(self.swap)
        for c in range(C):
            m.d.comb += capture_skew.i[c].eq(self.w_capture)

        stages = self.pipeline_stages
        pair, groups, units = _column_groups(platform, self._config, op, stages, _Group)
        for g, group in enumerate(groups):
            add_unit(m, f"group_{g}", group, ("group", self._config, group.units), units)
            if g == 0:
                m.d.comb += [group.a.eq(a_skew.o), group.swap.eq(swap_skew.o)]
            else:
                m.d.comb += [group.a.eq(groups[g - 1].a_out),
                             group.swap.eq(groups[g - 1].swap_out)]
        width = groups[0].width  # columns per group (the last group may have fewer)
        for c in range(C):
            group, j = groups[c // width], c % width
            m.d.comb += [group.capture[j].eq(capture_skew.o[c]), group.w[j].eq(w_skew.o[c])]

        _wire_pairs(m, pair, groups, R, C)

        # Column c's sums leave the bottom c cycles after column 0's: re-align them.
        m.submodules.deskew = deskew = DelayLanes(self.psum_shape, deskew_delays(C))
        for c in range(C):
            m.d.comb += deskew.i[c].eq(groups[c // width].psum_out[c % width])
        m.d.comb += self.psum.eq(deskew.o)
        m.submodules.valid_delay = valid_delay = DelayLanes(
            1, [self.result_latency], reset_less=False)
        m.d.comb += [valid_delay.i[0].eq(self.a_valid), self.psum_valid.eq(valid_delay.o[0])]
        return m


class _Column(wiring.Component):
    """Column c of a :class:`WeightStationaryArray`: its R PEs, top to bottom.

    ``a``/``swap`` enter each row from the left and leave one cycle later on ``a_out``/
    ``swap_out``; the weight pipe ``w`` and the partial sums move down, ``capture`` reaches
    every row at once, and the column's sum leaves the bottom PE on ``psum_out``. ``shared``
    and ``plan`` give each row's PE its ``shared_multiplier`` and ``multiplier``. Columns with
    equal ones are alike, so emission writes one module per such column and one per distinct
    (row, shared, multiplier) PE.
    """

    def __init__(self, config, shared, plan):
        R, num = config.rows, config.numerics
        op = operand_shape(num)
        self._config = config
        self._shared = tuple(shared)
        self._plan = tuple(plan)
        self._pes = None
        super().__init__({
            "a": In(data.ArrayLayout(op, R)), "swap": In(R),
            "a_out": Out(data.ArrayLayout(op, R)), "swap_out": Out(R),
            "w": In(op), "capture": In(1), "psum_out": Out(chunk_sum_shape(num, R)),
        })

    @property
    def pes(self):
        """The column's PEs, top row first (made on first use: an emitted column that is an
        instance of another's module never makes them)."""
        if self._pes is None:
            cfg = self._config
            # PE r's partial sum covers r + 1 products: the rows differ, the columns do not
            self._pes = [WeightStationaryPE(cfg.numerics, row=r,
                                            pipeline_stages=cfg.pipeline_stages,
                                            shared_multiplier=self._shared[r],
                                            multiplier=self._plan[r])
                         for r in range(cfg.rows)]
        return self._pes

    def elaborate(self, platform):
        m = Module()
        cfg = self._config
        pes = self.pes
        for r, pe in enumerate(pes):
            # (a shared multiplier outside the column is wired to the PE: keep it plain)
            add_unit(m, f"pe_{r}", pe, ("pe", cfg, r, self._shared[r], self._plan[r]),
                     None if self._shared[r] else platform)
            # Row r's pushed weight reaches it after r hops, as the capture strobe reaches
            # the whole column: one strobe per column, shared by all rows.
            m.d.comb += [
                pe.capture.eq(self.capture), pe.a.eq(self.a[r]), pe.swap.eq(self.swap[r]),
                self.a_out[r].eq(pe.a_out), self.swap_out[r].eq(pe.swap_out),
            ]
            if r == 0:
                m.d.comb += pe.w.eq(self.w)
            else:
                m.d.comb += [pe.w.eq(pes[r - 1].w_out), pe.psum_in.eq(pes[r - 1].psum_out)]
        m.d.comb += self.psum_out.eq(pes[-1].psum_out)
        return m


class _Group(wiring.Component):
    """Adjacent columns of a :class:`WeightStationaryArray` (``len(units)`` of them, each a
    ``(shared, plan)`` pair of per-row tuples, see :class:`_Column`): rows pass through from
    left to right, each column has its own ``w``, ``capture`` and ``psum_out``."""

    def __init__(self, config, units):
        R, num = config.rows, config.numerics
        op = operand_shape(num)
        self._config = config
        self.units = tuple((tuple(shared), tuple(plan)) for shared, plan in units)
        self.width = width = len(self.units)
        self._columns = None
        super().__init__({
            "a": In(data.ArrayLayout(op, R)), "swap": In(R),
            "a_out": Out(data.ArrayLayout(op, R)), "swap_out": Out(R),
            "w": In(data.ArrayLayout(op, width)), "capture": In(width),
            "psum_out": Out(data.ArrayLayout(chunk_sum_shape(num, R), width)),
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
            m.d.comb += [col.a.eq(self.a if j == 0 else cols[j - 1].a_out),
                         col.swap.eq(self.swap if j == 0 else cols[j - 1].swap_out),
                         col.w.eq(self.w[j]), col.capture.eq(self.capture[j]),
                         self.psum_out[j].eq(col.psum_out)]
        m.d.comb += [self.a_out.eq(cols[-1].a_out), self.swap_out.eq(cols[-1].swap_out)]
        return m
