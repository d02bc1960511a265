"""A board design's clock from a PLL: the iCE40's ``SB_PLL40_PAD`` or the ECP5's ``EHXPLLL``
multiplies the board's oscillator up to the frequency the engine runs at.

:class:`ICE40PLL` is the iCE40 divider setting (``DIVR``, ``DIVF``, ``DIVQ``, ``FILTER_RANGE``)
for a wanted frequency, chosen within the ranges of Lattice's iCE40 sysCLOCK PLL guide (as
``icepll`` does); :class:`ECP5PLL` is the ECP5 one (``CLKI_DIV``, ``CLKFB_DIV``, ``CLKOP_DIV``),
chosen within the ranges of Lattice's ECP5 sysCLOCK PLL guide (FPGA-TN-02200) and data sheet
as prjtrellis' ``ecppll`` does. :class:`PLLClock` instantiates either on a platform and drives
the ``sync`` domain from its output, held in reset until the PLL has locked (and on iCE40 a
power-on delay more: its block RAM reads as zero for about 3 us after configuration).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

from amaranth.hdl import ClockDomain, ClockSignal, Const, Elaboratable, Instance, Module, \
    ResetSignal, Signal
from amaranth.lib import io
from amaranth.lib.cdc import FFSynchronizer

__all__ = ["ECP5PLL", "ICE40PLL", "PLLClock"]

# Lattice iCE40 sysCLOCK PLL (TN1251), SIMPLE feedback
_F_IN = (10e6, 133e6)       # reference clock, and the phase detector's input
_F_VCO = (533e6, 1066e6)
_F_OUT = (16e6, 275e6)
_DIVR = range(16)
_DIVF = range(128)
_DIVQ = range(1, 7)


def _check_setting(pll, dividers, ranges):
    """Validate a PLL setting: each ``(name, allowed range)`` of ``dividers`` an integer in its
    range, ``f_in_hz`` an integer, and the reference clock, phase detector input, VCO and
    output each within its ``(lo, hi)`` of ``ranges`` (in that order)."""
    for name, allowed in dividers:
        value = getattr(pll, name)
        if not isinstance(value, int) or isinstance(value, bool):
            raise TypeError(f"{name} must be an integer, not {value!r}")
        if value not in allowed:
            raise ValueError(f"{name} must be in {allowed.start}..{allowed.stop - 1}, not "
                             f"{value}")
    if not isinstance(pll.f_in_hz, int) or isinstance(pll.f_in_hz, bool):
        raise TypeError(f"f_in_hz must be an integer, not {pll.f_in_hz!r}")
    for what, value, (lo, hi) in zip(("reference clock", "phase detector input", "VCO",
                                      "output"),
                                     (pll.f_in_hz, pll.f_pfd_hz, pll.f_vco_hz, pll.f_out_hz),
                                     ranges):
        if not lo <= value <= hi:
            raise ValueError(f"the PLL's {what} must be in {lo / 1e6:g}..{hi / 1e6:g} MHz, "
                             f"not {value / 1e6:g} MHz")


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
        _check_setting(self, (("divr", _DIVR), ("divf", _DIVF), ("divq", _DIVQ)),
                       (_F_IN, _F_IN, _F_VCO, _F_OUT))

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

    def to_dict(self):
        """JSON-ready: the dividers and what they make."""
        return {"f_in_hz": self.f_in_hz, "divr": self.divr, "divf": self.divf,
                "divq": self.divq, "filter_range": self.filter_range,
                "f_vco_mhz": self.f_vco_hz / 1e6}

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


# Lattice ECP5 sysCLOCK PLL (FPGA-TN-02200; ECP5 family data sheet FPGA-DS-02012, EHXPLLL), CLKOP
# fed back to CLKFB: f_pfd = f_in / CLKI_DIV, f_out = f_pfd * CLKFB_DIV, f_vco = f_out * CLKOP_DIV
_ECP5_F_IN = (8e6, 400e6)
_ECP5_F_PFD = (3.125e6, 400e6)
_ECP5_F_VCO = (400e6, 800e6)
_ECP5_F_OUT = (3.125e6, 400e6)
_ECP5_F_VCO_AIM = 600_000_000  # ecppll prefers the VCO nearest the middle of its range
_CLKI_DIV = range(1, 129)
_CLKFB_DIV = range(1, 81)
_CLKOP_DIV = range(1, 129)


@dataclass(frozen=True)
class ECP5PLL:
    """An ECP5 ``EHXPLLL`` setting with ``CLKOP`` as its feedback (``FEEDBK_PATH="CLKOP"``):
    ``f_out = f_in * clkfb_div / clki_div``, the VCO at ``f_out * clkop_div``.

    Parameters
    ----------
    f_in_hz : int
        The reference clock (the board's oscillator), 8..400 MHz.
    clki_div, clkfb_div, clkop_div : int
        The reference divider (1..128), feedback divider (1..80) and ``CLKOP`` output divider
        (1..128).
    """

    f_in_hz: int
    clki_div: int
    clkfb_div: int
    clkop_div: int

    def __post_init__(self):
        _check_setting(self, (("clki_div", _CLKI_DIV), ("clkfb_div", _CLKFB_DIV),
                              ("clkop_div", _CLKOP_DIV)),
                       (_ECP5_F_IN, _ECP5_F_PFD, _ECP5_F_VCO, _ECP5_F_OUT))

    @property
    def f_pfd_hz(self):
        return self.f_in_hz / self.clki_div

    @property
    def f_out_hz(self):
        """The output frequency (a float: it need not be a whole number of Hz)."""
        return self.f_in_hz * self.clkfb_div / self.clki_div

    @property
    def f_vco_hz(self):
        return self.f_in_hz * self.clkfb_div * self.clkop_div / self.clki_div

    @property
    def clkop_cphase(self):
        """The coarse phase of ``CLKOP`` in VCO cycles: ``clkop_div - 1`` is 0 degrees, as
        Lattice's tools set it. (``CLKOP`` is the feedback, so the PLL aligns it with the
        reference whatever its phase; ``ecppll`` writes about half the divider, 180 degrees.)"""
        return self.clkop_div - 1

    @property
    def clkop_fphase(self):
        """The fine phase of ``CLKOP`` in eighths of a VCO cycle."""
        return 0

    def to_dict(self):
        """JSON-ready: the dividers and what they make."""
        return {"f_in_hz": self.f_in_hz, "clki_div": self.clki_div,
                "clkfb_div": self.clkfb_div, "clkop_div": self.clkop_div,
                "clkop_cphase": self.clkop_cphase, "f_vco_mhz": self.f_vco_hz / 1e6}

    @classmethod
    def best(cls, f_in_hz, f_out_hz):
        """The setting with the output frequency nearest ``f_out_hz``, found as prjtrellis'
        ``ecppll`` searches (ties: the VCO nearest 600 MHz, then the smallest ``clki_div``,
        ``clkfb_div``, ``clkop_div`` in that order), in exact arithmetic.

        Raises
        ------
        ValueError
            If ``f_out_hz`` is outside the PLL's output range, or the reference clock is
            outside its input range.
        """
        if not isinstance(f_in_hz, int) or isinstance(f_in_hz, bool):
            raise TypeError(f"f_in_hz must be an integer, not {f_in_hz!r}")
        if not isinstance(f_out_hz, (int, float)) or isinstance(f_out_hz, bool):
            raise TypeError(f"f_out_hz must be a number, not {f_out_hz!r}")
        if not _ECP5_F_IN[0] <= f_in_hz <= _ECP5_F_IN[1]:
            raise ValueError(f"an ECP5 PLL takes a {_ECP5_F_IN[0] / 1e6:g}.."
                             f"{_ECP5_F_IN[1] / 1e6:g} MHz reference clock, not "
                             f"{f_in_hz / 1e6:g} MHz")
        if not _ECP5_F_OUT[0] <= f_out_hz <= _ECP5_F_OUT[1]:  # (also refuses nan)
            raise ValueError(f"an ECP5 PLL fed {f_in_hz / 1e6:g} MHz makes "
                             f"{_ECP5_F_OUT[0] / 1e6:g}..{_ECP5_F_OUT[1] / 1e6:g} MHz, not "
                             f"{f_out_hz / 1e6:g} MHz")
        want = Fraction(f_out_hz)
        vco_lo, vco_hi = Fraction(_ECP5_F_VCO[0]), Fraction(_ECP5_F_VCO[1])
        best = None
        for clki_div in _CLKI_DIV:
            pfd = Fraction(f_in_hz, clki_div)
            if not _ECP5_F_PFD[0] <= pfd <= _ECP5_F_PFD[1]:
                continue
            for clkfb_div in _CLKFB_DIV:
                out = pfd * clkfb_div
                if not _ECP5_F_OUT[0] <= out <= _ECP5_F_OUT[1]:
                    continue
                # of the output dividers that put the VCO in range, the one nearest the aim
                # (the smaller of two equally near: the first in ecppll's search)
                lo = max(_CLKOP_DIV.start, math.ceil(vco_lo / out))
                hi = min(_CLKOP_DIV.stop - 1, math.floor(vco_hi / out))
                if lo > hi:
                    continue
                aim = math.floor(_ECP5_F_VCO_AIM / out)
                clkop_div = min((d for d in (aim, aim + 1) if lo <= d <= hi), default=None,
                                key=lambda d: abs(out * d - _ECP5_F_VCO_AIM))
                if clkop_div is None:  # the aim is outside [lo, hi]: the nearer end
                    clkop_div = lo if aim < lo else hi
                key = (abs(out - want), abs(out * clkop_div - _ECP5_F_VCO_AIM))
                if best is None or key < best[0]:  # the first of equals stays
                    best = (key, (clki_div, clkfb_div, clkop_div))
        if best is None:  # pragma: no cover - every reference clock in range reaches some
            raise ValueError(f"an ECP5 PLL fed {f_in_hz / 1e6:g} MHz cannot make "
                             f"{f_out_hz / 1e6:g} MHz")
        return cls(f_in_hz, *best[1])


class PLLClock(Elaboratable):
    """The ``sync`` domain from a PLL on the platform's default clock pin.

    An :class:`ICE40PLL` becomes an ``SB_PLL40_PAD``, which takes the oscillator straight from
    its pad; ``sync`` is held in reset until the PLL reports lock, then for ``15 us`` more (iCE40
    block RAM reads as zero for about 3 us after configuration). An :class:`ECP5PLL` becomes an
    ``EHXPLLL`` behind the pin's input buffer, ``CLKOP`` fed back to ``CLKFB``; ``sync`` is
    held in reset until it reports lock, with no delay more: ECP5 block RAM holds its contents
    from configuration on, and the power-up reset has been released before the PLL can lock
    (as Amaranth's own ECP5 clock domain assumes). nextpnr derives the output's clock
    constraint from the oscillator's through the PLL's dividers, so it times the design at
    the clock it runs at.

    Parameters
    ----------
    setting : ICE40PLL or ECP5PLL
    """

    def __init__(self, setting):
        if not isinstance(setting, (ICE40PLL, ECP5PLL)):
            raise TypeError(f"setting must be an ICE40PLL or an ECP5PLL, not {setting!r}")
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
        if isinstance(s, ICE40PLL):
            m.submodules.pll = Instance(
                "SB_PLL40_PAD",
                p_FEEDBACK_PATH="SIMPLE",
                p_DIVR=Const(s.divr, 4), p_DIVF=Const(s.divf, 7), p_DIVQ=Const(s.divq, 3),
                p_FILTER_RANGE=Const(s.filter_range, 3),
                i_PACKAGEPIN=pad.io, i_RESETB=Const(1), i_BYPASS=Const(0),
                o_PLLOUTGLOBAL=clk, o_LOCK=lock)
            delay_s = 15e-6
        else:
            m.submodules.clk_buf = clk_buf = io.Buffer("i", pad)
            m.submodules.pll = Instance(
                "EHXPLLL",
                # the loop filter and charge pump as ecppll and Lattice's tools set them
                # (nextpnr writes 0 for any of them left out)
                a_ICP_CURRENT="12", a_LPF_RESISTOR="8", a_MFG_ENABLE_FILTEROPAMP="1",
                a_MFG_GMCREF_SEL="2",
                p_PLLRST_ENA="DISABLED", p_INTFB_WAKE="DISABLED", p_STDBY_ENABLE="DISABLED",
                p_DPHASE_SOURCE="DISABLED", p_OUTDIVIDER_MUXA="DIVA",
                p_CLKI_DIV=s.clki_div, p_CLKFB_DIV=s.clkfb_div, p_FEEDBK_PATH="CLKOP",
                p_CLKOP_ENABLE="ENABLED", p_CLKOP_DIV=s.clkop_div,
                p_CLKOP_CPHASE=s.clkop_cphase, p_CLKOP_FPHASE=s.clkop_fphase,
                i_CLKI=clk_buf.i, i_CLKFB=clk, i_RST=Const(0), i_STDBY=Const(0),
                i_PHASESEL0=Const(0), i_PHASESEL1=Const(0), i_PHASEDIR=Const(1),
                i_PHASESTEP=Const(1), i_PHASELOADREG=Const(1), i_PLLWAKESYNC=Const(0),
                i_ENCLKOP=Const(0),
                o_CLKOP=clk, o_LOCK=lock)
            delay_s = 0

        # reset until lock (and the power-on delay), restarted if lock is lost
        m.domains.por = ClockDomain("por", reset_less=True, local=True)
        m.d.comb += ClockSignal("por").eq(clk)
        locked = Signal()
        m.submodules.lock_sync = FFSynchronizer(lock, locked, o_domain="por")
        delay = max(1, int(delay_s * s.f_out_hz))
        timer = Signal(range(delay + 1))
        ready = Signal()
        with m.If(~locked):
            m.d.por += [timer.eq(0), ready.eq(0)]
        with m.Elif(timer == delay):
            m.d.por += ready.eq(1)
        with m.Else():
            m.d.por += timer.eq(timer + 1)

        # (the reset leaves a flip-flop, not an inverter: it reaches every flip-flop)
        rst = Signal(init=1)
        m.d.por += rst.eq(~ready)
        m.domains.sync = ClockDomain("sync")
        m.d.comb += [ClockSignal("sync").eq(clk), ResetSignal("sync").eq(rst)]
        return m
