"""Which FPGA family a design is being elaborated for, from Amaranth's ``platform`` argument."""

__all__ = ["fpga_family"]


def fpga_family(platform):
    """``"ecp5"``, ``"ice40"`` or ``None`` (simulation, plain Verilog, or another family).

    Works with Amaranth's build platforms (``LatticeECP5Platform.family == "ecp5"``, the iCE40
    platforms say ``"iCE40"``) and with :class:`systolix.synth.flow.SynthPlatform`.
    """
    family = str(getattr(platform, "family", "") or "").lower()
    return family if family in ("ecp5", "ice40") else None
