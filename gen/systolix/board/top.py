"""The board top-level: UART receiver and transmitter, the host link and its matrix engine.

:class:`BoardTop` has plain ports (``uart_rx``, ``uart_tx``, ``leds``) so that it can be emitted
and simulated as is; :class:`BoardPlatformTop` requests the ``uart`` and ``led`` resources of an
amaranth-boards platform and wires them to a :class:`BoardTop` for ``systolix build --board``.
"""

from __future__ import annotations

from dataclasses import dataclass

from amaranth.hdl import Cat, Elaboratable, Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ..config import EngineConfig
from ..hdl.link.hostlink import HostLink
from ..hdl.link.uart import UartRx, UartTx, uart_divisor
from . import protocol as P

__all__ = ["BoardConfig", "BoardTop", "BoardPlatformTop", "LINK_RATES", "DEFAULT_BAUD"]

DEFAULT_BAUD = 115200

#: The link's rates per board: the board clock and a fast baud rate its USB-serial chip and
#: divisor allow (FT231X on the ULX3S: up to 3 Mbaud, 25 clocks per bit at 1 Mbaud; FT2232H on
#: the iCEBreaker: 4 clocks per bit at 3 Mbaud). The platforms themselves are the synthesis
#: flow's (``systolix build --board``).
LINK_RATES = {
    "ulx3s-85f": {"clk_hz": 25_000_000, "fast_baud": 1_000_000},
    "icebreaker": {"clk_hz": 12_000_000, "fast_baud": 3_000_000},
}


@dataclass(frozen=True)
class BoardConfig:
    """An engine behind a UART link at a given clock and baud rate.

    Parameters
    ----------
    engine : EngineConfig
    clk_hz : int
        The board clock (25 MHz on the ULX3S, 12 MHz on the iCEBreaker).
    baud : int
        UART baud rate; ``clk_hz / baud`` must be at least 4 and within 2 % of an integer.
    timeout_ms : float
        Inter-byte timeout that abandons a truncated request (default 20 ms).
    """

    engine: EngineConfig
    clk_hz: int
    baud: int = DEFAULT_BAUD
    timeout_ms: float = 20.0

    def __post_init__(self):
        if not isinstance(self.engine, EngineConfig):
            raise TypeError(f"engine must be an EngineConfig, not {self.engine!r}")
        if self.engine.requant is not None:
            raise ValueError("the board link does not support requantized engines yet")
        uart_divisor(self.clk_hz, self.baud)  # their types and the divisor
        P.check_link_rates(self.clk_hz, self.baud)
        if not isinstance(self.timeout_ms, (int, float)) or isinstance(self.timeout_ms, bool):
            raise TypeError(f"timeout_ms must be a number, not {self.timeout_ms!r}")
        if not 0 < self.timeout_ms <= P.MAX_TIMEOUT_S * 1e3:  # (also refuses nan)
            raise ValueError(f"timeout_ms must be in (0, {P.MAX_TIMEOUT_S * 1e3:g}], not "
                             f"{self.timeout_ms}")
        if self.timeout_cycles < 16 * self.divisor:
            raise ValueError(f"timeout_ms {self.timeout_ms} is shorter than two bytes on the "
                             f"line at {self.baud} baud")
        P.check_link_rates(self.clk_hz, self.baud, self.timeout_cycles)

    @property
    def divisor(self):
        """Clock cycles per UART bit."""
        return uart_divisor(self.clk_hz, self.baud)

    @property
    def timeout_cycles(self):
        return max(1, round(self.timeout_ms * 1e-3 * self.clk_hz))

    @property
    def info(self):
        """The INFO reply's payload."""
        return P.info_payload(self.engine, self.clk_hz, self.baud, self.timeout_cycles)

    @property
    def name(self):
        return (f"board_{self.engine.name}_{self.clk_hz // 1000}khz_{self.baud}bd"
                f"_to{self.timeout_cycles}")

    def to_dict(self):
        return {"kind": "board", "name": self.name, "engine": self.engine.to_dict(),
                "clk_hz": self.clk_hz, "baud": self.baud, "timeout_ms": self.timeout_ms,
                "divisor": self.divisor, "timeout_cycles": self.timeout_cycles}

    @classmethod
    def from_dict(cls, d):
        return cls(EngineConfig.from_dict(d["engine"]), d["clk_hz"], d["baud"], d["timeout_ms"])


class BoardTop(wiring.Component):
    """UART <-> host link <-> matrix engine, with status LEDs.

    Parameters
    ----------
    config : BoardConfig

    Attributes
    ----------
    uart_rx : In(1)
        Serial data from the host (idle high).
    uart_tx : Out(1)
        Serial data to the host (idle high).
    leds : Out(3)
        0: idle (waiting for a request, engine idle); 1: busy (a job is open or the engine
        works); 2: error (the last reply was an error; cleared by the next good one).
    """

    def __init__(self, config: BoardConfig):
        if not isinstance(config, BoardConfig):
            raise TypeError(f"config must be a BoardConfig, not {config!r}")
        self._config = config
        super().__init__({"uart_rx": In(1, init=1), "uart_tx": Out(1, init=1),
                          "leds": Out(3)})

    @property
    def config(self):
        return self._config

    @property
    def timeout_cycles(self):
        return self._config.timeout_cycles

    def elaborate(self, platform):
        m = Module()
        cfg = self._config
        m.submodules.rx = rx = UartRx(cfg.divisor)
        m.submodules.tx = tx = UartTx(cfg.divisor)
        m.submodules.link = link = HostLink(cfg.engine, cfg.info, cfg.timeout_cycles)
        m.d.comb += [
            rx.rx.eq(self.uart_rx), self.uart_tx.eq(tx.tx),
            link.rx_data.eq(rx.data), link.rx_valid.eq(rx.valid),
            self.leds.eq(Cat(link.idle, link.busy, link.error)),
        ]
        wiring.connect(m, link.tx, tx.i)
        return m




class BoardPlatformTop(Elaboratable):
    """:class:`BoardTop` on an amaranth-boards platform: requests ``uart`` 0 and ``led`` 0..2.

    Parameters
    ----------
    config : BoardConfig
        Its ``clk_hz`` must be the frequency of ``clock``, or without one the platform's
        default clock frequency.
    clock : Elaboratable or None
        What makes the ``sync`` domain and its ``frequency`` in Hz, e.g. a
        :class:`~systolix.board.clock.PLLClock`; ``None`` (default): the platform's default
        clock as is.
    """

    #: Resources standing in for ``led`` 0..2 where a board has fewer (the iCEBreaker's own
    #: LEDs are ``led_g`` and ``led_r``): idle -> green, busy -> none, error -> red.
    LED_FALLBACK = ("led_g", None, "led_r")

    def __init__(self, config: BoardConfig, clock=None):
        if not isinstance(config, BoardConfig):
            raise TypeError(f"config must be a BoardConfig, not {config!r}")
        if clock is not None and not (isinstance(clock, Elaboratable)
                                      and hasattr(clock, "frequency")):
            raise TypeError(f"clock must be an Elaboratable with a frequency, or None, not "
                            f"{clock!r}")
        if clock is not None and round(clock.frequency) != config.clk_hz:
            raise ValueError(f"the clock runs at {clock.frequency:g} Hz, the design was "
                             f"configured for {config.clk_hz} Hz")
        self._config = config
        self._clock = clock

    def elaborate(self, platform):
        if self._clock is None:
            clk_hz = int(platform.default_clk_frequency)
            if clk_hz != self._config.clk_hz:
                raise ValueError(f"the platform clock is {clk_hz} Hz, the design was "
                                 f"configured for {self._config.clk_hz} Hz")
        m = Module()
        if self._clock is not None:
            m.submodules.clock = self._clock
        m.submodules.top = top = BoardTop(self._config)
        uart = platform.request("uart", 0)
        m.d.comb += [top.uart_rx.eq(uart.rx.i), uart.tx.o.eq(top.uart_tx)]
        for i, fallback in enumerate(self.LED_FALLBACK):
            led = _request_optional(platform, ("led", i)) or (
                fallback and _request_optional(platform, (fallback, 0)))
            if led:
                m.d.comb += led.o.eq(top.leds[i])
        return m


def _request_optional(platform, resource):
    from amaranth.build.res import ResourceError
    try:
        return platform.request(*resource)
    except (ResourceError, LookupError):
        return None
