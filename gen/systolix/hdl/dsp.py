"""FPGA DSP primitives behind platform hooks.

Generic gateware does not name vendor cells. It asks the ``platform`` it is elaborated for,
the way :class:`amaranth.lib.memory.Memory` asks ``platform.get_memory()``: a platform that
defines a hook may return a primitive, and when it does not (``None`` in simulation and for
plain Verilog, or a hook that returns ``None``) the caller builds its generic RTL, which
behaves the same cycle for cycle.

Platform hooks
--------------
``get_multiplier(a, b, *, input_register)``
    A multiplier of the operands ``a`` and ``b`` (their shapes give widths and signedness)
    with a product register, and operand registers too when ``input_register``; its latency
    is ``1 + input_register`` cycles. Returns ``(elaboratable, product)``, where ``product``
    is a value of the shape of ``a * b``, or ``None``.
``get_multiplier_pair(shape, *, input_register)``
    Two such multipliers of ``shape`` operands in one primitive. Returns ``None`` or a
    callable ``pair(low, high)`` taking two ``(a, b, p)`` triples (``p`` is driven with the
    product, ``1 + input_register`` cycles late) and returning the elaboratable. Without it,
    every multiplier stands alone.
``get_lut_multiplier(a, b, *, latency)``
    A multiplier of ``a`` and ``b`` built from logic, not from a DSP block, with ``latency``
    (0, 1 or 2) register stages. Returns ``(elaboratable, product)`` or ``None``; without it
    (or with ``None``) the portable :class:`~systolix.hdl.lutmult.LUTMultiplier` is used.
``get_buffer_memory(memory)``
    An elaboratable implementing the ports of ``memory``, a
    :class:`~systolix.hdl.buffer.BufferMemory` (a block RAM whose read data passes the RAM's
    own output register), or ``None``.
``dsp_blocks``
    An attribute: DSP blocks the systolic array may use (the device's count less those of the
    design's other parts, such as an engine's requantizer), or ``None`` when unknown. An array
    with ``mult="auto"`` fills that many with multipliers and builds the rest from LUTs
    (:func:`systolix.config.multiplier_plan`).

:class:`ECP5DSP` and :class:`ICE40DSP` implement the hooks for the two FPGA families; they are
mixins for Amaranth platforms (``class Board(ICE40DSP, ICEBreakerPlatform)``, see
:func:`with_dsp`), and :class:`systolix.synth.flow.SynthPlatform` delegates to them.
"""

from amaranth.hdl import (Cat, ClockSignal, Const, Elaboratable, Instance, Module, Shape, Signal,
                          Value, signed, unsigned)

from .chainmult import CarryChainMultiplier
from .lutmult import LUTMultiplier

__all__ = ["multiplier", "multiplier_pair", "lut_multiplier", "dsp_blocks", "DSPMapping",
           "ECP5DSP", "ICE40DSP", "dsp_mapping", "with_dsp", "pe_input_register",
           "multiplier_latency", "check_multiplier_choice"]


def pe_input_register(pipeline_stages):
    """Whether a PE with ``pipeline_stages`` register stages before its adder (output- or
    weight-stationary) asks for a multiplier with operand registers (``input_register``): from
    two stages on, the first stage is the multiplier's operand register, the next its product
    register."""
    return pipeline_stages >= 2


def check_multiplier_choice(multiplier, shared_multiplier, pipeline_stages):
    """Validate a PE's multiplier arguments (both dataflows): ``multiplier`` ``"dsp"`` or
    ``"lut"``, ``shared_multiplier`` a bool that needs a registered DSP product."""
    if not isinstance(shared_multiplier, bool):
        raise TypeError(f"shared_multiplier must be a bool, not {shared_multiplier!r}")
    if shared_multiplier and not pipeline_stages:
        raise ValueError("shared_multiplier needs pipeline_stages >= 1 (the shared "
                         "multiplier registers its product)")
    if multiplier not in ("dsp", "lut"):
        raise ValueError(f"multiplier must be 'dsp' or 'lut', not {multiplier!r}")
    if shared_multiplier and multiplier == "lut":
        raise ValueError("shared_multiplier takes the product of a DSP primitive: it cannot "
                         "be used with multiplier='lut'")


def multiplier_latency(pipeline_stages):
    """Cycles the registered multiplier of a PE with ``pipeline_stages`` register stages takes:
    2 (operand and product registers, see :func:`pe_input_register`) from two stages on, else
    1 (product register)."""
    return 1 + pe_input_register(pipeline_stages)


def multiplier(platform, a, b, *, input_register):
    """The platform's registered multiplier for ``a * b``, or ``None`` (see the module's
    description of ``get_multiplier``)."""
    _check_input_register(input_register)
    hook = getattr(platform, "get_multiplier", None)
    return None if hook is None else hook(a, b, input_register=input_register)


def multiplier_pair(platform, shape, *, input_register):
    """The platform's builder of two registered multipliers in one primitive, or ``None``
    (see the module's description of ``get_multiplier_pair``)."""
    _check_input_register(input_register)
    hook = getattr(platform, "get_multiplier_pair", None)
    return None if hook is None else hook(shape, input_register=input_register)


def lut_multiplier(platform, a, b, *, latency):
    """A multiplier of ``a * b`` built from logic with ``latency`` register stages:
    ``(elaboratable, product)``, from the platform's ``get_lut_multiplier`` hook if it offers
    one, else a portable :class:`~systolix.hdl.lutmult.LUTMultiplier` (never ``None``)."""
    hook = getattr(platform, "get_lut_multiplier", None)
    found = None if hook is None else hook(a, b, latency=latency)
    if found is not None:
        return found
    mult = LUTMultiplier(a.shape(), b.shape(), latency=latency)
    return _Wired(mult, a, b), mult.p


class _Wired(Elaboratable):
    """An elaboratable that connects a multiplier's operand ports to the given values."""

    def __init__(self, mult, a, b):
        self._mult, self._a, self._b = mult, a, b

    def elaborate(self, platform):
        m = Module()
        m.submodules.mult = self._mult
        m.d.comb += [self._mult.a.eq(self._a), self._mult.b.eq(self._b)]
        return m


def dsp_blocks(platform):
    """DSP blocks the design may use on ``platform`` (its ``dsp_blocks`` attribute), or
    ``None`` when unknown."""
    blocks = getattr(platform, "dsp_blocks", None)
    if blocks is not None and (isinstance(blocks, bool) or not isinstance(blocks, int)
                               or blocks < 0):
        raise TypeError(f"platform.dsp_blocks must be a non-negative integer or None, "
                        f"not {blocks!r}")
    return blocks


def _check_input_register(input_register):
    if not isinstance(input_register, bool):
        raise TypeError(f"input_register must be a bool, not {input_register!r}")


class DSPMapping:
    """Platform hooks that offer no primitive: every multiplier is generic RTL."""

    def get_multiplier(self, a, b, *, input_register):
        return None

    def get_multiplier_pair(self, shape, *, input_register):
        return None

    def get_lut_multiplier(self, a, b, *, latency):
        return None

    def get_buffer_memory(self, memory):
        return None


class ECP5DSP(DSPMapping):
    """Lattice ECP5: every registered multiplier is a MULT18X18D (operands up to 18 bits), and
    every LUT multiplier a :class:`~systolix.hdl.chainmult.CarryChainMultiplier` (partial
    products inside CCU2C carry chains).

    Yosys infers MULT18X18D for a bare ``*`` but never packs registers into it, so a pipelined
    multiplier would leave its registers in the fabric; this instantiates the cell with its own
    input and output registers (REG_INPUTA_CLK, REG_INPUTB_CLK, REG_OUTPUT_CLK on CLK0; Lattice,
    "ECP5 and ECP5-5G sysDSP Usage Guide").
    """

    def get_multiplier(self, a, b, *, input_register):
        sa, sb = a.shape(), b.shape()
        if sa.width > 18 or sb.width > 18:
            return None
        P = Signal(36)
        ports = {}
        for k in range(18):  # sign- or zero-extend the operands to 18 bits
            ports[f"i_A{k}"] = a[min(k, sa.width - 1)] if sa.signed or k < sa.width else 0
            ports[f"i_B{k}"] = b[min(k, sb.width - 1)] if sb.signed or k < sb.width else 0
            ports[f"i_C{k}"] = 0
        for k in range(36):
            ports[f"o_P{k}"] = P[k]
        reg_in = "CLK0" if input_register else "NONE"
        cell = Instance(
            "MULT18X18D",
            p_REG_INPUTA_CLK=reg_in, p_REG_INPUTB_CLK=reg_in, p_REG_OUTPUT_CLK="CLK0",
            p_GSR="DISABLED", p_RESETMODE="SYNC",
            i_SIGNEDA=int(sa.signed), i_SIGNEDB=int(sb.signed), i_SOURCEA=0, i_SOURCEB=0,
            i_CLK0=ClockSignal(), i_CLK1=0, i_CLK2=0, i_CLK3=0,
            i_CE0=1, i_CE1=0, i_CE2=0, i_CE3=0, i_RST0=0, i_RST1=0, i_RST2=0, i_RST3=0,
            **ports)
        return cell, P[:len(a * b)]

    def get_lut_multiplier(self, a, b, *, latency):
        mult = CarryChainMultiplier(a.shape(), b.shape(), latency=latency)
        return _Wired(mult, a, b), mult.p

    def get_buffer_memory(self, memory):
        """DP16KD blocks side by side, port A writing, port B reading through its output
        register (``REGMODE_B = "OUTREG"``: CEB loads the read register, OCEB the output
        register). Each block is as wide as the depth allows (18 bits up to 1024 words, 9 up to
        2048, ..., 1 up to 16384); deeper memories are left to the generic RTL (a cascade
        would put a multiplexer behind the output registers)."""
        return _dp16kd_buffer(memory)


#: DP16KD data width -> (words, lowest address bit).
_DP16KD_MODES = ((18, 1024, 4), (9, 2048, 3), (4, 4096, 2), (2, 8192, 1), (1, 16384, 0))


def _dp16kd_buffer(memory):
    """A :class:`~systolix.hdl.buffer.BufferMemory` as DP16KD blocks (Lattice, "ECP5 and
    ECP5-5G Memory Usage Guide", TN1264), or ``None`` when it is deeper than one block."""
    for width, words, low in _DP16KD_MODES:
        if memory.depth <= words:
            break
    else:
        return None
    m = Module()
    bits = memory.width
    w_data, r_data = Signal(bits), Signal(bits)
    m.d.comb += [w_data.eq(Value.cast(memory.w_data)), memory.r_data.eq(r_data)]
    abits = max(1, (memory.depth - 1).bit_length())
    for n, lo in enumerate(range(0, bits, width)):
        ports = {}
        for k in range(14):  # x18: AD[1:0] are the write port's byte enables
            i = k - low
            ports[f"i_ADA{k}"] = (memory.w_addr[i] if 0 <= i < abits
                                  else (1 if width == 18 and k < 2 else 0))
            ports[f"i_ADB{k}"] = memory.r_addr[i] if 0 <= i < abits else 0
        for k in range(18):
            ports[f"i_DIA{k}"] = w_data[lo + k] if k < width and lo + k < bits else 0
            ports[f"i_DIB{k}"] = 0
            if k < width and lo + k < bits:
                ports[f"o_DOB{k}"] = r_data[lo + k]
        m.submodules[f"bram_{n}"] = Instance(
            "DP16KD",
            p_DATA_WIDTH_A=width, p_DATA_WIDTH_B=width,
            p_REGMODE_A="NOREG", p_REGMODE_B="OUTREG",
            p_RESETMODE="SYNC", p_ASYNC_RESET_RELEASE="SYNC",
            p_CSDECODE_A="0b000", p_CSDECODE_B="0b000",
            p_WRITEMODE_A="NORMAL", p_WRITEMODE_B="NORMAL", p_GSR="DISABLED",
            i_CLKA=ClockSignal(), i_CEA=1, i_OCEA=1, i_WEA=memory.w_en, i_RSTA=0,
            i_CSA0=0, i_CSA1=0, i_CSA2=0,
            i_CLKB=ClockSignal(), i_CEB=memory.r_en, i_OCEB=memory.r_oe, i_WEB=0, i_RSTB=0,
            i_CSB0=0, i_CSB1=0, i_CSB2=0,
            **ports)
    return m


class ICE40DSP(DSPMapping):
    """Lattice iCE40 UltraPlus: two registered multipliers of up to 8-bit operands share one
    SB_MAC16 in MODE_8x8 (its two 8x8 multipliers, each with its own output register; Lattice,
    "DSP Function Usage Guide for iCE40 Devices"). Yosys only infers the 16x16 mode.

    A buffer memory of at most 256 words is SB_RAM40_4K blocks in 256 x 16 mode side by side,
    their read data followed by a register in the fabric (the block has no output register).
    Yosys would map it too, but it guards the read of an address written in the same cycle
    with a copy of the write data and address in flip-flops, which the buffers never need.
    """

    def get_buffer_memory(self, memory):
        return _sb_ram40_buffer(memory)

    def get_multiplier_pair(self, shape, *, input_register):
        shape = Shape.cast(shape)
        if shape.width > 8:
            return None

        def pair(low, high):
            return _sb_mac16_8x8(shape.signed, input_register, low, high)
        return pair


def _sb_mac16_8x8(is_signed, input_register, low, high):
    """One SB_MAC16 in MODE_8x8 computing ``low`` in the bottom 8x8 multiplier and ``high`` in
    the top one (each an ``(a, b, p)`` triple): operands registered when ``input_register``,
    the 8x8 products always."""
    m = Module()
    shape = (signed if is_signed else unsigned)(8)
    ext = {}
    for name, (a, b, _) in (("al", low), ("ah", high)):
        ext[name] = Signal(shape, name=f"{name}_8")
        ext["b" + name[1]] = Signal(shape, name=f"b{name[1]}_8")
        m.d.comb += [ext[name].eq(a), ext["b" + name[1]].eq(b)]
    product = Signal(32)
    reg_in = int(input_register)
    m.submodules.mac = Instance(
        "SB_MAC16",
        p_MODE_8x8=1, p_A_SIGNED=int(is_signed), p_B_SIGNED=int(is_signed),
        p_A_REG=reg_in, p_B_REG=reg_in, p_TOP_8x8_MULT_REG=1, p_BOT_8x8_MULT_REG=1,
        p_TOPOUTPUT_SELECT=2, p_BOTOUTPUT_SELECT=2,
        i_CLK=ClockSignal(), i_CE=1,
        i_A=Cat(ext["al"], ext["ah"]), i_B=Cat(ext["bl"], ext["bh"]),
        i_C=Const(0, 16), i_D=Const(0, 16),
        i_AHOLD=0, i_BHOLD=0, i_CHOLD=0, i_DHOLD=0,
        i_IRSTTOP=0, i_IRSTBOT=0, i_ORSTTOP=0, i_ORSTBOT=0,
        i_OLOADTOP=0, i_OLOADBOT=0, i_ADDSUBTOP=0, i_ADDSUBBOT=0,
        i_OHOLDTOP=0, i_OHOLDBOT=0, i_CI=0, i_ACCUMCI=0, i_SIGNEXTIN=0,
        o_O=product)
    low_p, high_p = low[2], high[2]
    m.d.comb += [low_p.eq(product[:len(low_p)]),
                 high_p.eq(product[16:16 + len(high_p)])]
    return m


def _sb_ram40_buffer(memory):
    """A :class:`~systolix.hdl.buffer.BufferMemory` of at most 256 words as SB_RAM40_4K
    blocks in 256 x 16 mode (READ_MODE = WRITE_MODE = 0; Lattice, "Memory Usage Guide for
    iCE40 Devices": RE with RCLKE loads the read data, WE with WCLKE writes, MASK bits low
    write), then a fabric register loaded with ``r_oe``; ``None`` for deeper memories."""
    if memory.depth > 256:
        return None
    m = Module()
    bits = memory.width
    w_data, r_data = Signal(bits), Signal(bits)
    m.d.comb += w_data.eq(Value.cast(memory.w_data))
    out = Signal(bits, name="r_out", reset_less=True)
    with m.If(memory.r_oe):
        m.d.sync += out.eq(r_data)
    m.d.comb += memory.r_data.eq(out)
    abits = max(1, (memory.depth - 1).bit_length())
    for n, lo in enumerate(range(0, bits, 16)):
        width = min(16, bits - lo)
        rd = Signal(16, name=f"bram_{n}_rdata")
        m.d.comb += r_data[lo:lo + width].eq(rd[:width])
        m.submodules[f"bram_{n}"] = Instance(
            "SB_RAM40_4K",
            p_READ_MODE=0, p_WRITE_MODE=0,
            i_RCLK=ClockSignal(), i_RCLKE=memory.r_en, i_RE=1,
            i_RADDR=Cat(memory.r_addr[:abits], Const(0, 11 - abits)),
            i_WCLK=ClockSignal(), i_WCLKE=memory.w_en, i_WE=1,
            i_WADDR=Cat(memory.w_addr[:abits], Const(0, 11 - abits)),
            i_MASK=Const(0, 16),
            i_WDATA=Cat(w_data[lo:lo + width], Const(0, 16 - width)),
            o_RDATA=rd)
    return m


_MAPPINGS = {"ecp5": ECP5DSP, "ice40": ICE40DSP}


def dsp_mapping(family):
    """The mapping class of an FPGA family (``"ecp5"``, ``"ice40"``, case-insensitive), or
    :class:`DSPMapping` (no primitives) for any other family."""
    if not isinstance(family, str):
        raise TypeError(f"family must be a string, not {family!r}")
    return _MAPPINGS.get(family.lower(), DSPMapping)


def with_dsp(platform_class, family):
    """``platform_class`` (an Amaranth platform) extended with the DSP mapping of ``family``."""
    if not isinstance(platform_class, type):
        raise TypeError(f"platform_class must be a class, not {platform_class!r}")
    mapping = dsp_mapping(family)
    return type(platform_class.__name__, (mapping, platform_class),
                {"__module__": platform_class.__module__})
