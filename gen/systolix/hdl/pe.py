"""Processing element of the output-stationary systolic array."""

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ..config import Numerics
from .arith import acc_shape, accumulate, operand_shape
from . import dsp

__all__ = ["OutputStationaryPE", "NOMERGE"]

#: Attributes of a control register that every PE on one anti-diagonal holds with the same
#: value. Synthesis would merge those registers into one, whose output then crosses the die to
#: every PE of the diagonal; the synthesis flows keep each flip-flop so marked next to its PE
#: (``setattr -set keep``, :data:`systolix.synth.flow.KEEP_REPLICAS`).
NOMERGE = {"systolix_nomerge": 1}


class OutputStationaryPE(wiring.Component):
    """One multiply-accumulate cell that owns one output element.

    Every cycle the PE forwards ``a`` (with its ``valid``/``last`` flags) to its right neighbour and
    ``b`` to the neighbour below, each through one register. On a ``valid`` beat it adds ``a * b``
    to its accumulator (wrapping or saturating per :class:`~systolix.config.Numerics`). On a beat
    that is both ``valid`` and ``last`` the finished sum is copied into the drain register and the
    accumulator restarts from 0, so the next tile may follow with no gap.

    How a column drains its results (:attr:`~systolix.config.SystolicConfig.drain_tree`):

    * shift chain (default): the drain registers of one column form a shift chain
      (``drain_in`` from the PE above, ``drain_out`` to the PE below) that carries finished
      results out of the bottom of the array. The ``last`` wavefront reaches row ``r`` one
      cycle after row ``r - 1``, so results appear staggered down the column; each PE therefore
      *holds* its result for ``hold_cycles`` cycles (``rows - 1 - r`` in an R-row array) and
      otherwise shifts. All results of a column are then in place in the same cycle, and the
      column shifts them out, bottom row first, one per cycle. Nothing collides as long as
      consecutive ``last`` beats are at least ``rows`` cycles apart. The drain register's
      load-or-shift choice costs one LUT per bit.
    * OR tree (``drain_tree``): the drain register shows the finished sum for exactly one cycle
      and is 0 in every other: it is loaded with the sum when a tile finishes and cleared
      otherwise, which the flip-flops' synchronous reset does (no LUT per bit). The results of
      a column are never on their ``drain_out`` in the same cycle, and the column ORs them into
      one output, top row first (:class:`~systolix.hdl.os_array.OutputStationaryArray`).

    Parameters
    ----------
    numerics : Numerics
    hold_cycles : int
        Shift chain: cycles to hold a finished result before shifting, ``>= 0``; 0 with
        ``drain_tree``.
    pipeline_stages : int
        Register stages between the operands and the accumulator: 0 (none), 1 (the product is
        registered), 2 (the multiplier's operands and its product are registered) or 3 (as 2,
        plus a second product register). The
        operand stage reuses the forwarding registers ``a_out``/``b_out``/``valid_out``/
        ``last_out``. With 1 or more stages the PE asks the platform for a registered
        multiplier (:func:`systolix.hdl.dsp.multiplier`); a DSP primitive whose own input and
        output registers are these stages lets the PE reach the fabric's speed. The behaviour
        is cycle-for-cycle the same either way.
    shared_multiplier : bool
        Take the product from outside (see :attr:`shared_multiplier`); needs 1 or more stages.
    multiplier : str
        ``"dsp"`` (default): the platform's DSP multiplier as above, or ``a * b``; ``"lut"``: a
        multiplier built from logic (:func:`systolix.hdl.dsp.lut_multiplier`) whose register
        stages are the PE's, so the PE behaves the same cycle for cycle.

    Attributes
    ----------
    a, b : In(operand)
        Operands of this cycle's beat.
    valid, last : In(1)
        The beat carries data; it is the final beat (k = K - 1) of its tile. With
        ``drain_tree``, ``last`` must be 0 whenever ``valid`` is (the array's input skew sees to
        it), so that it alone marks a tile's end.
    a_out, b_out, valid_out, last_out : Out
        The same values, one cycle later, for the neighbours.
    drain_in : In(signed(acc_width))
        Shift chain: from the PE above (0 for the top row); absent with ``drain_tree``.
    drain_out : Out(signed(acc_width))
        Shift chain: to the PE below. ``drain_tree``: the finished sum,
        :attr:`result_latency` cycles after its ``last`` beat, for one cycle; 0 in every other
        cycle. Driven by a register.
    mul_a, mul_b : Out(operand)
        Operands for the shared multiplier (only with ``shared_multiplier``).
    mul_p : In(product)
        Their product from the shared multiplier (only with ``shared_multiplier``).
    """

    def __init__(self, numerics: Numerics, *, hold_cycles=0, pipeline_stages=0,
                 shared_multiplier=False, multiplier="dsp", drain_tree=False):
        if not isinstance(numerics, Numerics):
            raise TypeError(f"numerics must be a Numerics, not {numerics!r}")
        if not isinstance(hold_cycles, int) or isinstance(hold_cycles, bool) or hold_cycles < 0:
            raise ValueError(f"hold_cycles must be a non-negative integer, not {hold_cycles!r}")
        if not isinstance(drain_tree, bool):
            raise TypeError(f"drain_tree must be a bool, not {drain_tree!r}")
        if drain_tree and hold_cycles:
            raise ValueError(f"hold_cycles must be 0 with drain_tree, not {hold_cycles!r}")
        if pipeline_stages not in (0, 1, 2, 3) or isinstance(pipeline_stages, bool):
            raise ValueError(f"pipeline_stages must be 0, 1, 2 or 3, not {pipeline_stages!r}")
        dsp.check_multiplier_choice(multiplier, shared_multiplier, pipeline_stages)
        self._multiplier = multiplier
        self._numerics = numerics
        self._hold_cycles = hold_cycles
        self._drain_tree = drain_tree
        self._pipeline_stages = pipeline_stages
        self._shared = shared_multiplier
        op, acc = operand_shape(numerics), acc_shape(numerics)
        members = {
            "a": In(op), "b": In(op), "valid": In(1), "last": In(1),
            "a_out": Out(op), "b_out": Out(op), "valid_out": Out(1), "last_out": Out(1),
            "drain_out": Out(acc),
        }
        if not drain_tree:
            members["drain_in"] = In(acc)
        if shared_multiplier:
            p = (Signal(op) * Signal(op)).shape()
            members.update({"mul_a": Out(op), "mul_b": Out(op), "mul_p": In(p)})
        super().__init__(members)

    @property
    def numerics(self):
        return self._numerics

    @property
    def hold_cycles(self):
        return self._hold_cycles

    @property
    def drain_tree(self):
        return self._drain_tree

    @property
    def pipeline_stages(self):
        return self._pipeline_stages

    @property
    def shared_multiplier(self):
        """The product comes from outside (``mul_a``/``mul_b`` out, ``mul_p`` in), e.g. from
        one half of a DSP primitive shared with a neighbour
        (:func:`systolix.hdl.dsp.multiplier_pair`); ``mul_p`` must be
        :attr:`multiplier_latency` cycles behind ``mul_a``/``mul_b``."""
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
    def result_latency(self):
        """Cycles from the ``last`` beat to its sum on ``drain_out``."""
        return 1 + self._pipeline_stages

    def elaborate(self, platform):
        # (Statement order matters for Amaranth's signal names, hence for the emitted Verilog.)
        m = Module()
        # (a pipelined PE clears its accumulator itself after a reset: see below)
        acc = Signal(acc_shape(self._numerics), reset_less=self._pipeline_stages > 0)
        total = Signal(acc_shape(self._numerics))
        # pure data: no reset needed (a drain tree's is 0 one cycle after any reset, see below)
        drain = Signal(acc_shape(self._numerics), reset_less=True)

        stages = self._pipeline_stages
        a, b, valid, last = self.a, self.b, self.valid, self.last
        if stages >= 2:
            # operand stage: the forwarding registers (below) feed the multiplier
            a_reg = Signal.like(self.a, reset_less=True)
            b_reg = Signal.like(self.b, reset_less=True)
            a, b, valid, last = a_reg, b_reg, self.valid_out, self.last_out
        product_regs = stages - 1 if stages >= 2 else stages  # product stages after that
        # the platform's registered multiplier (with its own operand registers when stages >= 2)
        mult = None
        if self._multiplier == "lut":
            if stages:
                mult = dsp.lut_multiplier(platform, self.a, self.b,
                                          latency=self.multiplier_latency)
            else:
                mult = dsp.lut_multiplier(platform, a, b, latency=0)
        elif stages and not self._shared:
            mult = dsp.multiplier(platform, self.a, self.b,
                                  input_register=dsp.pe_input_register(stages))
        if self._shared:
            m.d.comb += [self.mul_a.eq(self.a), self.mul_b.eq(self.b)]
            product = self.mul_p
            extra = product_regs - 1  # the shared multiplier's product register is the first
        elif mult is not None:
            cell, value = mult
            product = Signal((self.a * self.b).shape(), name="product")
            m.submodules.mult = cell
            m.d.comb += product.eq(value)
            # the primitive's product register is the first
            extra = product_regs - 1 if stages else 0
        else:
            product = a * b
            extra = product_regs
        for i in range(extra):
            reg = Signal((self.a * self.b).shape(), name=f"product_{i}", reset_less=True)
            m.d.sync += reg.eq(product)
            product = reg
        if self._drain_tree:
            for i in range(product_regs):
                p_valid = Signal(name=f"p_valid_{i}", attrs=NOMERGE)
                m.d.sync += p_valid.eq(valid)
                valid = p_valid
                if i < product_regs - 1:  # (the final stage's `last` is never needed, see below)
                    p_last = Signal(name=f"p_last_{i}", attrs=NOMERGE)
                    m.d.sync += p_last.eq(last)
                    last = p_last

            m.d.comb += total.eq(accumulate(acc, product, self._numerics))
            if stages:
                # Pipelined PE: the accumulator restarts from 0 through a synchronous reset, which
                # the flip-flops implement (no LUT per bit): after a tile's last beat, and in the
                # first cycle after any reset of this domain (also one a ResetInserter adds). Both
                # come from a register loaded a cycle ahead with `last` (which implies `valid`),
                # whose reset value is 1. The drain register is cleared in every other cycle, by a
                # register of the opposite sense (also 1 after a reset), so neither reset net starts
                # at logic.
                clear = Signal(init=1, name="acc_clear", attrs=NOMERGE)
                drain_idle = Signal(init=1, name="drain_idle", attrs=NOMERGE)
                m.d.sync += [clear.eq(last), drain_idle.eq(~last)]
                with m.If(clear):
                    m.d.sync += acc.eq(0)
                with m.Elif(valid):
                    m.d.sync += acc.eq(total)
            else:
                drain_idle = ~last
                with m.If(valid):
                    m.d.sync += acc.eq(Mux(last, 0, total))
            # the finished sum for one cycle, else 0: a synchronous reset of the drain flip-flops
            m.d.sync += drain.eq(Mux(drain_idle, 0, total))
        else:
            for i in range(product_regs):
                p_valid = Signal(name=f"p_valid_{i}", attrs=NOMERGE)
                p_last = Signal(name=f"p_last_{i}", attrs=NOMERGE)
                m.d.sync += [p_valid.eq(valid), p_last.eq(last)]
                pre_finish = valid & last  # what `finish` will be in the next cycle
                valid, last = p_valid, p_last
            finish = valid & last

            m.d.comb += total.eq(accumulate(acc, product, self._numerics))
            if stages:
                # Pipelined PE: the accumulator restarts from 0 through a synchronous reset, which
                # the flip-flops implement (no LUT per bit): after a tile's last beat, and in the
                # first cycle after any reset of this domain (also one a ResetInserter adds), in
                # which `valid`, a register reset with it, is still low.
                after_reset = Signal(init=1, name="after_reset", attrs=NOMERGE)
                clear = Signal(name="acc_clear")
                m.d.sync += after_reset.eq(0)
                m.d.comb += clear.eq(after_reset | (valid & last))
                with m.If(clear):
                    m.d.sync += acc.eq(0)
                with m.Elif(valid):
                    m.d.sync += acc.eq(total)
            else:
                with m.If(valid):
                    m.d.sync += acc.eq(Mux(last, 0, total))

            if self._hold_cycles and stages:
                # Pipelined PE: the drain register's enable and select are registers themselves,
                # computed a cycle ahead, so the enable net (fanning out to every drain bit, which
                # sit wherever the placer put the accumulator) starts at a flip-flop, not at logic.
                hold = Signal(range(self._hold_cycles + 1), attrs=NOMERGE)
                hold_next = Signal(range(self._hold_cycles + 1))
                drain_en = Signal(name="drain_en", attrs=NOMERGE)
                drain_load = Signal(name="drain_load", attrs=NOMERGE)
                with m.If(finish):
                    m.d.comb += hold_next.eq(self._hold_cycles)
                with m.Elif(hold != 0):
                    m.d.comb += hold_next.eq(hold - 1)
                with m.Else():
                    m.d.comb += hold_next.eq(0)
                m.d.sync += [
                    hold.eq(hold_next),
                    drain_load.eq(pre_finish),
                    drain_en.eq(pre_finish | ~hold_next.any()),
                ]
                with m.If(drain_en):
                    m.d.sync += drain.eq(Mux(drain_load, total, self.drain_in))
            elif self._hold_cycles:
                hold = Signal(range(self._hold_cycles + 1), attrs=NOMERGE)
                with m.If(finish):
                    m.d.sync += [drain.eq(total), hold.eq(self._hold_cycles)]
                with m.Elif(hold != 0):
                    m.d.sync += hold.eq(hold - 1)
                with m.Else():
                    m.d.sync += drain.eq(self.drain_in)
            else:
                m.d.sync += drain.eq(Mux(finish, total, self.drain_in))
        m.d.comb += self.drain_out.eq(drain)

        valid_reg = Signal(name="valid_reg", attrs=NOMERGE)
        last_reg = Signal(name="last_reg", attrs=NOMERGE)
        m.d.sync += [valid_reg.eq(self.valid), last_reg.eq(self.last)]
        m.d.comb += [self.valid_out.eq(valid_reg), self.last_out.eq(last_reg)]
        # Operands are pure data (only `valid` gives them meaning): no reset, fewer LUTs.
        if stages < 2:
            a_reg = Signal.like(self.a, reset_less=True)
            b_reg = Signal.like(self.b, reset_less=True)
        m.d.sync += [a_reg.eq(self.a), b_reg.eq(self.b)]
        m.d.comb += [self.a_out.eq(a_reg), self.b_out.eq(b_reg)]
        return m
