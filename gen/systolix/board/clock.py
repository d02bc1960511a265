"""A board design's clock from a PLL: the iCE40's ``SB_PLL40_PAD`` multiplies the board's
oscillator up to the frequency the engine runs at.

:class:`ICE40PLL` is the divider setting (``DIVR``, ``DIVF``, ``DIVQ``, ``FILTER_RANGE``) for a
wanted frequency, chosen within the ranges of Lattice's iCE40 sysCLOCK PLL guide (as ``icepll``
does); :class:`PLLClock` instantiates it on a platform and drives the ``sync`` domain from its
output, held in reset until the PLL has locked and a power-on delay has passed (iCE40 block RAM
reads as zero for about 3 us after configuration).
"""

from __future__ import annotations

from dataclasses import dataclass

from amaranth.hdl import ClockDomain, ClockSignal, Const, Elaboratable, Instance, Module, \
    ResetSignal, Signal
from amaranth.lib.cdc import FFSynchronizer

__all__ = ["ICE40PLL", "PLLClock"]

# Lattice iCE40 sysCLOCK PLL (TN1251), SIMPLE feedback
_F_IN = (10e6, 133e6)       # reference clock, and the phase detector's input
_F_VCO = (533e6, 1066e6)
_F_OUT = (16e6, 275e6)
_DIVR = range(16)
_DIVF = range(128)
_DIVQ = range(1, 7)


@dataclass(frozen=True)
class ICE40PLL:
    """An iCE40 PLL setting in SIMPLE feedback mode:
    ``f_out = f_in * (divf + 1) / ((divr + 1) * 2 ** divq)``.

    Parameters
    ----------
    f_in_hz : int
        The reference clock (the board's oscillator).
    divr, divf, divq : int
        The reference divider (0..15), feedback divider (0..127) and output divider
        exponent (1..6).
    """

    f_in_hz: int
    divr: int
    divf: int
    divq: int

    def __post_init__(self):
        for name, value, allowed in (("divr", self.divr, _DIVR), ("divf", self.divf, _DIVF),
                                     ("divq", self.divq, _DIVQ)):
            if not isinstance(value, int) or isinstance(value, bool):
                raise TypeError(f"{name} must be an integer, not {value!r}")
            if value not in allowed:
                raise ValueError(f"{name} must be in {allowed.start}..{allowed.stop - 1}, not "
                                 f"{value}")
        if not isinstance(self.f_in_hz, int) or isinstance(self.f_in_hz, bool):
            raise TypeError(f"f_in_hz must be an integer, not {self.f_in_hz!r}")
        for what, value, (lo, hi) in (("reference clock", self.f_in_hz, _F_IN),
                                      ("phase detector input", self.f_pfd_hz, _F_IN),
                                      ("VCO", self.f_vco_hz, _F_VCO),
                                      ("output", self.f_out_hz, _F_OUT)):
            if not lo <= value <= hi:
                raise ValueError(f"the PLL's {what} must be in {lo / 1e6:g}..{hi / 1e6:g} MHz, "
                                 f"not {value / 1e6:g} MHz")

    @property
    def f_pfd_hz(self):
        return self.f_in_hz / (self.divr + 1)

    @property
    def f_vco_hz(self):
        return self.f_pfd_hz * (self.divf + 1)

    @property
    def f_out_hz(self):
        """The output frequency (a float: it need not be a whole number of Hz)."""
        return self.f_vco_hz / 2 ** self.divq

    @property
    def filter_range(self):
        """The loop filter setting for the phase detector's frequency (as ``icepll`` picks it)."""
        f = self.f_pfd_hz
        for limit, value in ((17e6, 1), (26e6, 2), (44e6, 3), (66e6, 4), (101e6, 5)):
            if f < limit:
                return value
        return 6

    @classmethod
    def best(cls, f_in_hz, f_out_hz):
        """The setting with the highest output frequency not above ``f_out_hz`` (ties: the
        lowest VCO, then the smallest dividers).

        Raises
        ------
        ValueError
            If no setting reaches a frequency in the PLL's output range at or below
            ``f_out_hz``.
        """
        if not isinstance(f_in_hz, int) or isinstance(f_in_hz, bool):
            raise TypeError(f"f_in_hz must be an integer, not {f_in_hz!r}")
        if not isinstance(f_out_hz, (int, float)) or isinstance(f_out_hz, bool):
            raise TypeError(f"f_out_hz must be a number, not {f_out_hz!r}")
        best = None
        for divr in _DIVR:
            pfd = f_in_hz / (divr + 1)
            if not _F_IN[0] <= pfd <= _F_IN[1]:
                continue
            for divq in _DIVQ:
                for divf in _DIVF:
                    vco = pfd * (divf + 1)
                    out = vco / 2 ** divq
                    if not (_F_VCO[0] <= vco <= _F_VCO[1] and _F_OUT[0] <= out <= _F_OUT[1]):
                        continue
                    if out > f_out_hz * (1 + 1e-12):
                        continue
                    key = (out, -vco, -divr, -divq)
                    if best is None or key > best[0]:
                        best = (key, (divr, divf, divq))
        if best is None:
            raise ValueError(f"an iCE40 PLL fed {f_in_hz / 1e6:g} MHz makes "
                             f"{_F_OUT[0] / 1e6:g}..{_F_OUT[1] / 1e6:g} MHz, not "
                             f"{f_out_hz / 1e6:g} MHz")
        return cls(f_in_hz, *best[1])


class PLLClock(Elaboratable):
    """The ``sync`` domain from an iCE40 PLL on the platform's default clock pin.

    The PLL (``SB_PLL40_PAD``) takes the oscillator straight from its pad; ``sync`` is held in
    reset until the PLL reports lock, then for ``15 us`` more (iCE40 block RAM reads as zero for
    about 3 us after configuration). nextpnr derives the output's clock constraint from the
    oscillator's through the PLL's dividers, so it times the design at the clock it runs at.

    Parameters
    ----------
    setting : ICE40PLL
    """

    def __init__(self, setting):
        if not isinstance(setting, ICE40PLL):
            raise TypeError(f"setting must be an ICE40PLL, not {setting!r}")
        self._setting = setting

    @property
    def setting(self):
        return self._setting

    @property
    def frequency(self):
        """The ``sync`` clock in Hz."""
        return self._setting.f_out_hz

    def elaborate(self, platform):
        s = self._setting
        clk_hz = int(platform.default_clk_frequency)
        if clk_hz != s.f_in_hz:
            raise ValueError(f"the platform clock is {clk_hz} Hz, the PLL was set up for "
                             f"{s.f_in_hz} Hz")
        m = Module()
        pad = platform.request(platform.default_clk, 0, dir="-")
        clk, lock = Signal(name="pll_clk"), Signal(name="pll_lock")
        m.submodules.pll = Instance(
            "SB_PLL40_PAD",
            p_FEEDBACK_PATH="SIMPLE",
            p_DIVR=Const(s.divr, 4), p_DIVF=Const(s.divf, 7), p_DIVQ=Const(s.divq, 3),
            p_FILTER_RANGE=Const(s.filter_range, 3),
            i_PACKAGEPIN=pad.io, i_RESETB=Const(1), i_BYPASS=Const(0),
            o_PLLOUTGLOBAL=clk, o_LOCK=lock)

        # power-on reset: counts from lock, restarts if lock is lost
        m.domains.por = ClockDomain("por", reset_less=True, local=True)
        m.d.comb += ClockSignal("por").eq(clk)
        locked = Signal()
        m.submodules.lock_sync = FFSynchronizer(lock, locked, o_domain="por")
        delay = max(1, int(15e-6 * s.f_out_hz))
        timer = Signal(range(delay + 1))
        ready = Signal()
        with m.If(~locked):
            m.d.por += [timer.eq(0), ready.eq(0)]
        with m.Elif(timer == delay):
            m.d.por += ready.eq(1)
        with m.Else():
            m.d.por += timer.eq(timer + 1)

        m.domains.sync = ClockDomain("sync")
        m.d.comb += [ClockSignal("sync").eq(clk), ResetSignal("sync").eq(~ready)]
        return m
