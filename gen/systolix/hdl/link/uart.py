"""UART receiver and transmitter: 8 data bits, no parity, 1 stop bit (8N1), LSB first.

Both count a fixed ``divisor`` = round(clk_hz / baud) clock cycles per bit.

Receiver error tolerance: the line is synchronised by two flip-flops, the start bit is seen at
most one cycle late, and every bit is sampled ``divisor // 2`` cycles after its nominal start. The
stop bit, the last sample, is taken 9.5 bit times after the start edge, so a byte is received
correctly while the two ends' bit times differ by less than about (0.5 - 1/divisor) / 9.5 of a
bit, i.e. +-4.2 % at divisor 217, +-2.6 % at divisor 4. :func:`uart_divisor` refuses a clock and
baud rate whose own rounding error exceeds :data:`MAX_BAUD_ERROR` (2 %), leaving the rest for
the other end's clock.
"""

from amaranth.hdl import Cat, Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.cdc import FFSynchronizer
from amaranth.lib.wiring import In, Out

__all__ = ["uart_divisor", "MAX_BAUD_ERROR", "MIN_DIVISOR", "UartRx", "UartTx"]

#: Largest accepted relative error between the requested and the generated baud rate.
MAX_BAUD_ERROR = 0.02
#: Fewest clock cycles per bit (mid-bit sampling needs a few).
MIN_DIVISOR = 4


def uart_divisor(clk_hz, baud):
    """Clock cycles per bit for ``baud`` at ``clk_hz``.

    Raises
    ------
    TypeError
        If either is not an integer.
    ValueError
        If either is not positive, the divisor is below :data:`MIN_DIVISOR`, or the baud rate
        it gives is off by more than :data:`MAX_BAUD_ERROR`.
    """
    for name, v in (("clk_hz", clk_hz), ("baud", baud)):
        if not isinstance(v, int) or isinstance(v, bool):
            raise TypeError(f"{name} must be an integer, not {v!r}")
        if v <= 0:
            raise ValueError(f"{name} must be positive, not {v}")
    divisor = round(clk_hz / baud)
    if divisor < MIN_DIVISOR:
        raise ValueError(f"baud {baud} is too fast for a {clk_hz} Hz clock: needs at least "
                         f"{MIN_DIVISOR} cycles per bit (at most {clk_hz // MIN_DIVISOR} baud)")
    error = abs(clk_hz / divisor - baud) / baud
    if error > MAX_BAUD_ERROR:
        raise ValueError(f"baud {baud} at {clk_hz} Hz: divisor {divisor} gives "
                         f"{clk_hz / divisor:.0f} baud, {error:.1%} off (limit "
                         f"{MAX_BAUD_ERROR:.0%})")
    return divisor


def _check_divisor(divisor):
    if not isinstance(divisor, int) or isinstance(divisor, bool):
        raise TypeError(f"divisor must be an integer, not {divisor!r}")
    if divisor < MIN_DIVISOR:
        raise ValueError(f"divisor must be at least {MIN_DIVISOR}, not {divisor}")


class UartRx(wiring.Component):
    """UART receiver with a start-bit check and mid-bit sampling.

    A falling edge on the (synchronised) line starts a byte; half a bit later the line must still
    be low (else it was a glitch and is ignored). Data bits are sampled in the middle of each
    bit; a stop bit that reads 0 drops the byte and pulses ``frame_error``.

    Parameters
    ----------
    divisor : int
        Clock cycles per bit, at least :data:`MIN_DIVISOR` (see :func:`uart_divisor`).

    Attributes
    ----------
    rx : In(1)
        The serial line (idle high); asynchronous, synchronised inside.
    data : Out(8)
        The last byte received.
    valid : Out(1)
        One-cycle pulse: ``data`` holds a new byte. There is no backpressure.
    frame_error : Out(1)
        One-cycle pulse: a byte was dropped because its stop bit was 0.
    """

    def __init__(self, divisor):
        _check_divisor(divisor)
        self._divisor = divisor
        super().__init__({"rx": In(1, init=1), "data": Out(8), "valid": Out(1),
                          "frame_error": Out(1)})

    @property
    def divisor(self):
        return self._divisor

    @property
    def latency(self):
        """Cycles from the middle of the stop bit to the ``valid`` pulse, at most."""
        return 3

    def elaborate(self, platform):
        m = Module()
        d = self._divisor
        line = Signal(init=1)
        m.submodules.sync = FFSynchronizer(self.rx, line, init=1)
        timer = Signal(range(d))
        bit = Signal(range(10))
        shift = Signal(8)
        m.d.sync += [self.valid.eq(0), self.frame_error.eq(0)]
        with m.FSM(name="uart_rx"):
            with m.State("IDLE"):
                with m.If(~line):
                    m.d.sync += timer.eq(d // 2 - 1)
                    m.next = "START"
            with m.State("START"):
                with m.If(timer != 0):
                    m.d.sync += timer.eq(timer - 1)
                with m.Elif(line):   # glitch: not a start bit
                    m.next = "IDLE"
                with m.Else():
                    m.d.sync += [timer.eq(d - 1), bit.eq(0)]
                    m.next = "DATA"
            with m.State("DATA"):
                with m.If(timer != 0):
                    m.d.sync += timer.eq(timer - 1)
                with m.Else():
                    m.d.sync += [timer.eq(d - 1), shift.eq(Cat(shift[1:], line)),
                                 bit.eq(bit + 1)]
                    with m.If(bit == 7):
                        m.next = "STOP"
            with m.State("STOP"):
                with m.If(timer != 0):
                    m.d.sync += timer.eq(timer - 1)
                with m.Else():
                    with m.If(line):
                        m.d.sync += [self.data.eq(shift), self.valid.eq(1)]
                    with m.Else():
                        m.d.sync += self.frame_error.eq(1)
                    m.next = "WAIT_IDLE"
            with m.State("WAIT_IDLE"):  # after a framing error, wait for the line to go high
                with m.If(line):
                    m.next = "IDLE"
        return m


class UartTx(wiring.Component):
    """UART transmitter: takes one byte from stream ``i`` whenever idle and sends it 8N1.

    Parameters
    ----------
    divisor : int
        Clock cycles per bit.

    Attributes
    ----------
    i : In(stream.Signature(8))
        Bytes to send; ``ready`` is high while the transmitter is idle.
    tx : Out(1)
        The serial line (idle high).
    """

    def __init__(self, divisor):
        _check_divisor(divisor)
        self._divisor = divisor
        super().__init__({"i": In(stream.Signature(8)), "tx": Out(1, init=1)})

    @property
    def divisor(self):
        return self._divisor

    @property
    def byte_cycles(self):
        """Clock cycles one byte takes on the line (start, 8 data, stop)."""
        return 10 * self._divisor

    def elaborate(self, platform):
        m = Module()
        d = self._divisor
        timer = Signal(range(d))
        bits = Signal(10, init=0x3FF)   # start, data LSB first, stop; shifted out LSB first
        left = Signal(range(11))
        idle = Signal(init=1)           # left == 0, registered with it: ``ready`` is a flip-flop
        m.d.comb += [self.i.ready.eq(idle), self.tx.eq(bits[0])]
        with m.If(idle):
            with m.If(self.i.valid):
                m.d.sync += [bits.eq(Cat(0, self.i.payload, 1)), left.eq(10), timer.eq(d - 1),
                             idle.eq(0)]
        with m.Elif(timer != 0):
            m.d.sync += timer.eq(timer - 1)
        with m.Else():
            m.d.sync += [bits.eq(Cat(bits[1:], 1)), left.eq(left - 1), timer.eq(d - 1),
                         idle.eq(left == 1)]
        return m
