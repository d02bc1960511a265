"""An I/O-light wrapper that lets any design be placed and routed on a small package.

A 16 x 16 array has thousands of port bits, far more than any FPGA package has pins. For
synthesis reports the design is wrapped in :class:`IOHarness`: every input port bit comes from
a serial-in shift chain fed by one pin, and every output port bit goes into a pipelined XOR
reduction tree that ends in one registered pin. Every output bit therefore influences a pin and
no logic of the design can be optimised away, while the harness itself stays small; the flow
keeps the design in its own hierarchy level so that yosys reports the two costs separately.
"""

from __future__ import annotations

from amaranth.hdl import Cat, ClockDomain, Const, Module, Signal, Value, ValueCastable
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["IOHarness", "port_bits", "DUT_NAME"]

#: Submodule name of the wrapped design inside the harness.
DUT_NAME = "dut"


def _port_values(top):
    """``(inputs, outputs)``: lists of ``(path, value)`` for every non-constant port of ``top``."""
    if not isinstance(top, wiring.Component):
        raise TypeError(f"design must be an amaranth.lib.wiring.Component, not {top!r}")
    inputs, outputs = [], []
    for path, member, value in top.signature.flatten(top):
        if isinstance(value, ValueCastable):
            value = value.as_value()
        if isinstance(value, Const) or not isinstance(value, Value):
            continue  # e.g. an always-ready stream's constant ready
        (inputs if member.flow == In else outputs).append(("__".join(map(str, path)), value))
    return inputs, outputs


def port_bits(top):
    """``(input_bits, output_bits)`` of a component's signature (constants excluded)."""
    inputs, outputs = _port_values(top)
    return sum(len(v) for _, v in inputs), sum(len(v) for _, v in outputs)


class IOHarness(wiring.Component):
    """Wrap ``design`` so that it needs four pins: ``clk``, ``reset``, ``sin`` and ``sout``.

    The design is found by walking its signature, so any :class:`~amaranth.lib.wiring.Component`
    whose logic runs in the ``sync`` domain works, whatever its ports are called.

    Parameters
    ----------
    design : wiring.Component
        The design under test; it becomes the submodule :data:`DUT_NAME`.
    fan_in : int
        Inputs of each XOR node of the output reduction, 2..6 (4 matches a LUT4). Each tree level
        is registered, so the harness never sets the critical path.

    The harness defines the ``sync`` domain: ``clk`` is its clock and ``reset`` reaches the
    design through one register, so the reset fan-out is a timed register-to-register path
    (as behind a reset synchronizer on a board) rather than an untimed pin.

    Attributes
    ----------
    clk : In(1)
        The clock of the ``sync`` domain.
    reset : In(1)
        Synchronous reset request, active high.
    sin : In(1)
        Serial input; shifted into a chain that drives every input bit of the design.
    sout : Out(1)
        Registered XOR of every output bit of the design (through the pipelined tree).
    """

    def __init__(self, design, *, fan_in=4):
        inputs, outputs = _port_values(design)  # raises TypeError for non-components
        if not isinstance(fan_in, int) or isinstance(fan_in, bool) or not 2 <= fan_in <= 6:
            raise ValueError(f"fan_in must be an integer in range 2..6, not {fan_in!r}")
        if not outputs:
            raise ValueError("design has no output ports: nothing would survive synthesis")
        self._design = design
        self._inputs = inputs
        self._outputs = outputs
        self._fan_in = fan_in
        super().__init__({"clk": In(1), "reset": In(1), "sin": In(1), "sout": Out(1)})

    @property
    def design(self):
        return self._design

    @property
    def input_bits(self):
        """Length of the input shift chain (input bits of the design)."""
        return sum(len(v) for _, v in self._inputs)

    @property
    def output_bits(self):
        """Output bits of the design folded into ``sout``."""
        return sum(len(v) for _, v in self._outputs)

    @property
    def tree_levels(self):
        """Registered levels of the XOR tree (its latency from a design output to ``sout``)."""
        n, levels = self.output_bits, 1
        while n > self._fan_in:
            n = -(-n // self._fan_in)
            levels += 1
        return levels

    def elaborate(self, platform):
        m = Module()
        m.submodules[DUT_NAME] = self._design
        m.domains.sync = cd_sync = ClockDomain("sync")
        reset_q = Signal(reset_less=True)
        m.d.sync += reset_q.eq(self.reset)
        m.d.comb += [cd_sync.clk.eq(self.clk), cd_sync.rst.eq(reset_q)]

        # Input: one shift chain; reset_less so it costs plain flip-flops.
        if self.input_bits:
            chain = Signal(self.input_bits, reset_less=True)
            m.d.sync += chain.eq(Cat(self.sin, chain[:-1]))
            offset = 0
            for _, value in self._inputs:
                m.d.comb += value.eq(chain[offset:offset + len(value)])
                offset += len(value)

        # Output: a registered XOR tree, fan_in bits per node and level.
        level = [bit for _, value in self._outputs for bit in value]
        depth = 0
        while True:
            nodes = [level[i:i + self._fan_in] for i in range(0, len(level), self._fan_in)]
            regs = []
            for j, node in enumerate(nodes):
                reg = Signal(name=f"xor_l{depth}_{j}", reset_less=True)
                x = node[0]
                for bit in node[1:]:
                    x = x ^ bit
                m.d.sync += reg.eq(x)
                regs.append(reg)
            level, depth = regs, depth + 1
            if len(level) == 1:
                break
        m.d.comb += self.sout.eq(level[0])
        return m
