"""A buffer memory with a registered read: one write port, one read port whose data passes a
second register (the block RAM's output register where the FPGA has one).

Like :class:`amaranth.lib.memory.Memory` asking ``platform.get_memory()``, the memory asks the
platform it is elaborated for through the hook ``get_buffer_memory(memory)``: a platform may
return an elaboratable that implements ``memory``'s ports with a vendor primitive (on ECP5:
DP16KD blocks with ``REGMODE_B = "OUTREG"``, :class:`systolix.hdl.dsp.ECP5DSP`). With no hook,
or a hook that returns ``None`` (simulation, Verilog emission), the memory is an
:class:`~amaranth.lib.memory.Memory` and one register on its read data, cycle for cycle the
same.

Why: Yosys maps an ECP5 block RAM without its output register (``REGMODE NOREG``), and a
DP16KD's clock-to-out without it is 5.83 ns, most of a 150 MHz cycle; with the output register
the data leaves the block RAM from a register.
"""

from amaranth.hdl import Shape, Signal, Module
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

__all__ = ["BufferMemory"]


class BufferMemory(wiring.Component):
    """``depth`` words of ``shape`` with one write port and one read port of latency 2.

    A word written in cycle t (``w_en``) is readable from cycle t + 1 on. A read of
    ``r_addr`` in a cycle with ``r_en`` loads the word into the read register; in a cycle with
    ``r_oe`` the read register's word moves into the output register, ``r_data``. With both
    enables high, ``r_data`` is the word addressed two cycles before. A read of the address
    being written in the same cycle returns an undefined word (the block RAM's ports collide):
    callers do not do that.

    Parameters
    ----------
    shape : shape-castable
        A word's shape (a layout, too: ``r_data`` and ``w_data`` are then views).
    depth : int
        Words, at least 2.

    Attributes
    ----------
    w_addr : In(range(depth))
    w_data : In(shape)
    w_en : In(1)
    r_addr : In(range(depth))
    r_en : In(1), init 1
        The read register takes the addressed word.
    r_oe : In(1), init 1
        The output register takes the read register's word.
    r_data : Out(shape)
        The output register.
    """

    def __init__(self, shape, depth):
        if not isinstance(depth, int) or isinstance(depth, bool) or depth < 2:
            raise ValueError(f"depth must be an integer of at least 2, not {depth!r}")
        self._shape = shape
        self._depth = depth
        super().__init__({
            "w_addr": In(range(depth)),
            "w_data": In(shape),
            "w_en": In(1),
            "r_addr": In(range(depth)),
            "r_en": In(1, init=1),
            "r_oe": In(1, init=1),
            "r_data": Out(shape),
        })

    @property
    def shape(self):
        return self._shape

    @property
    def depth(self):
        return self._depth

    @property
    def width(self):
        """Bits per word."""
        return Shape.cast(self._shape).width

    @property
    def read_latency(self):
        return 2

    def elaborate(self, platform):
        hook = getattr(platform, "get_buffer_memory", None)
        found = None if hook is None else hook(self)
        if found is not None:
            return found
        m = Module()
        m.submodules.mem = mem = Memory(shape=self._shape, depth=self._depth, init=[])
        wr, rd = mem.write_port(), mem.read_port()
        out = Signal(self._shape, name="r_out", reset_less=True)
        m.d.comb += [wr.addr.eq(self.w_addr), wr.data.eq(self.w_data), wr.en.eq(self.w_en),
                     rd.addr.eq(self.r_addr), rd.en.eq(self.r_en), self.r_data.eq(out)]
        with m.If(self.r_oe):
            m.d.sync += out.eq(rd.data)
        return m
