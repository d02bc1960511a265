"""The FPGA devices ``systolix synth`` can target, with their capacities and tool arguments.

Capacities are the figures of Lattice's data sheets ("ECP5 and ECP5-5G Family Data Sheet",
FPGA-DS-02012; "iCE40 UltraPlus Family Data Sheet", FPGA-DS-02008); the placed utilization
reported by nextpnr uses nextpnr's own per-device counts.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import SystolixError

__all__ = ["Target", "TARGETS", "get_target"]


@dataclass(frozen=True)
class Target:
    """One device in one package, as the open toolchain sees it.

    Attributes
    ----------
    name : str
        Command-line name, e.g. ``ecp5-85f``.
    family : str
        ``ecp5`` or ``ice40``: selects ``synth_<family>`` and ``nextpnr-<family>``.
    device : str
        Vendor part name, for reports.
    nextpnr_args : tuple of str
        Device and package arguments of ``nextpnr-<family>``.
    lut4, ff, dsp, bram : int
        Capacities: 4-input LUTs, flip-flops, DSP blocks, block RAMs.
    io : int
        User I/O pins of the package (decides whether the I/O harness is needed).
    dsp_cell, bram_cell : str
        Yosys / nextpnr cell type of the DSP and block RAM primitive.
    default_freq : float
        Clock target (MHz) given to nextpnr unless ``--freq`` is used.
    """

    name: str
    family: str
    device: str
    nextpnr_args: tuple
    lut4: int
    ff: int
    dsp: int
    bram: int
    io: int
    dsp_cell: str
    bram_cell: str
    default_freq: float

    @property
    def macs_per_dsp(self):
        """int8 MACs one DSP block can hold: 2 for an iCE40 SB_MAC16 in MODE_8x8 (used by the
        pipelined PEs), 1 for an ECP5 MULT18X18D (nextpnr supports no 9x9 split)."""
        return 2 if self.family == "ice40" else 1

    @property
    def synth_command(self):
        """The yosys synthesis command for this family (DSP inference enabled)."""
        return "synth_ecp5" if self.family == "ecp5" else "synth_ice40 -dsp"

    @property
    def nextpnr_tool(self):
        return f"yowasp-nextpnr-{self.family}"

    def to_dict(self):
        return {"name": self.name, "family": self.family, "device": self.device,
                "lut4": self.lut4, "ff": self.ff, "dsp": self.dsp, "dsp_cell": self.dsp_cell,
                "bram": self.bram, "bram_cell": self.bram_cell, "io": self.io}


def _ecp5(size, lut4, dsp, bram, io):
    return Target(
        name=f"ecp5-{size}f", family="ecp5", device=f"LFE5U-{size}F-6BG381C",
        nextpnr_args=(f"--{size}k", "--package", "CABGA381", "--speed", "6"),
        lut4=lut4, ff=lut4, dsp=dsp, bram=bram, io=io,
        dsp_cell="MULT18X18D", bram_cell="DP16KD", default_freq=150.0)


TARGETS = {t.name: t for t in [
    _ecp5(85, 83640, 156, 208, 197),
    _ecp5(45, 43848, 72, 108, 197),
    _ecp5(25, 24288, 28, 56, 197),
    Target(name="ice40-up5k", family="ice40", device="iCE40UP5K-SG48",
           nextpnr_args=("--up5k", "--package", "sg48"),
           lut4=5280, ff=5280, dsp=8, bram=30, io=39,
           dsp_cell="SB_MAC16", bram_cell="SB_RAM40_4K", default_freq=50.0),
]}


def get_target(name):
    """The :class:`Target` called ``name``; a :class:`SystolixError` naming the choices if none."""
    try:
        return TARGETS[name]
    except KeyError:
        raise SystolixError(f"unknown target {name!r}; choose one of "
                            f"{', '.join(TARGETS)}") from None
