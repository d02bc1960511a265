"""Per-lane delay lines: the skew in front of a systolic array and the de-skew behind it."""

from amaranth.hdl import Cat, Module, Shape, Signal
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["DelayLanes", "skew_delays", "deskew_delays"]


def skew_delays(lanes):
    """Lane ``i`` delayed by ``i`` cycles: the wavefront a systolic array needs at its edge."""
    return tuple(range(lanes))


def deskew_delays(lanes, extra=0):
    """Lane ``i`` delayed by ``lanes - 1 - i + extra`` cycles: undoes :func:`skew_delays`."""
    return tuple(lanes - 1 - i + extra for i in range(lanes))


class DelayLanes(wiring.Component):
    """Parallel lanes of registers, lane ``i`` delaying its value by ``delays[i]`` cycles.

    Gemmini calls this "shifted"; used with :func:`skew_delays` it turns a vector presented in one
    cycle into a diagonal wavefront, and with :func:`deskew_delays` it straightens one out.

    Parameters
    ----------
    shape : ShapeLike
        Shape of one lane's value (any Amaranth shape or layout, e.g. a struct with flags).
    delays : sequence of int
        Delay of each lane in cycles, each >= 0. A lane with delay 0 is a wire.
    reset_less : bool
        Data lanes need no reset; lanes carrying control (valid flags) do.

    Attributes
    ----------
    i : In(ArrayLayout(shape, len(delays)))
    o : Out(ArrayLayout(shape, len(delays)))
    """

    def __init__(self, shape, delays, *, reset_less=True):
        Shape.cast(shape)
        delays = tuple(delays)
        if not delays:
            raise ValueError("DelayLanes needs at least one lane")
        for d in delays:
            if not isinstance(d, int) or isinstance(d, bool) or d < 0:
                raise ValueError(f"Lane delays must be non-negative integers, not {d!r}")
        self._shape = shape
        self._delays = delays
        self._reset_less = bool(reset_less)
        layout = data.ArrayLayout(shape, len(delays))
        super().__init__({"i": In(layout), "o": Out(layout)})

    @property
    def delays(self):
        """Delay of each lane, in cycles."""
        return self._delays

    def elaborate(self, platform):
        m = Module()
        width = Shape.cast(self._shape).width
        for lane, delay in enumerate(self._delays):
            if delay == 0:
                m.d.comb += self.o[lane].eq(self.i[lane])
                continue
            # one shift register per lane (newest value in the low bits): the same registers
            # as `delay` separate ones, in one statement, so a 256-lane skew stays small
            reg = Signal(delay * width, name=f"lane{lane}", reset_less=self._reset_less)
            if delay == 1:
                m.d.sync += reg.eq(self.i[lane])
            else:
                m.d.sync += reg.eq(Cat(self.i[lane], reg[:(delay - 1) * width]))
            m.d.comb += self.o[lane].eq(reg[(delay - 1) * width:])
        return m
