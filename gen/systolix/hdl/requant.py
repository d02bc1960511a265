"""Requantization unit: int32 accumulators -> int8/uint8, gemmlowp's integer-only arithmetic."""

from amaranth.hdl import Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from ..config import RequantConfig

__all__ = ["Requantizer", "param_layout", "requant_input_layout", "requant_output_layout",
           "out_shape"]

INT32_MIN, INT32_MAX = -(1 << 31), (1 << 31) - 1


def out_shape(config: RequantConfig):
    return signed(8) if config.out_signed else unsigned(8)


def param_layout(config: RequantConfig):
    """One lane's parameters in the config's mode (:func:`systolix.config.requant_fields`)."""
    out = out_shape(config)
    return data.StructLayout({
        name: out if sign == "out" else signed(width) if sign else unsigned(width)
        for name, width, sign in config.fields})


def requant_input_layout(config: RequantConfig):
    return data.StructLayout({
        "acc": data.ArrayLayout(signed(32), config.lanes),
        "params": data.ArrayLayout(param_layout(config), config.lanes),
        "last": 1,
    })


def requant_output_layout(config: RequantConfig):
    return data.StructLayout({
        "data": data.ArrayLayout(out_shape(config), config.lanes),
        "last": 1,
    })


class Requantizer(wiring.Component):
    """Per lane: ``clamp(zero_point + RDBPOT(SRDHM(sat32(acc + bias), multiplier), shift))``.

    Bit-exact with :func:`systolix.model.quant.requantize`:

    1. ``x = acc + bias``, saturated to int32;
    2. ``p = x * multiplier`` (exact, 64 bits);
    3. SaturatingRoundingDoublingHighMul: ``INT32_MAX`` if both were ``INT32_MIN``, else
       ``(p + nudge) / 2**31`` truncated toward zero, ``nudge = 2**30`` for ``p >= 0`` and
       ``1 - 2**30`` otherwise;
    4. RoundingDivideByPOT by ``shift``: arithmetic shift, plus one when the remainder exceeds
       ``(mask >> 1) + (x < 0)`` (ties away from zero);
    5. ``+ zero_point`` exactly, then clamped to ``[clamp_min, clamp_max]`` (which lie inside the
       output type, so the result is saturated to it).

    A pipeline of :attr:`latency` register stages with one global stall: every stage advances
    when the output is taken or empty (``i.ready = ~o.valid | o.ready``), so backpressure holds
    the whole pipe and nothing is dropped or duplicated.

    Parameters
    ----------
    config : RequantConfig

    Attributes
    ----------
    i : In(stream.Signature(requant_input_layout(config)))
    o : Out(stream.Signature(requant_output_layout(config)))
    """

    def __init__(self, config: RequantConfig):
        if not isinstance(config, RequantConfig):
            raise TypeError(f"config must be a RequantConfig, not {config!r}")
        if config.mode != "gemmlowp":
            raise NotImplementedError(f"the {config.mode} requantizer is not built yet")
        self._config = config
        super().__init__({
            "i": In(stream.Signature(requant_input_layout(config))),
            "o": Out(stream.Signature(requant_output_layout(config))),
        })

    @property
    def config(self):
        return self._config

    @property
    def latency(self):
        """Register stages from an accepted input beat to its output beat (with no stall)."""
        return self._config.latency

    def elaborate(self, platform):
        m = Module()
        L = self._config.lanes
        en = Signal()
        m.d.comb += [en.eq(~self.o.valid | self.o.ready), self.i.ready.eq(en)]

        def stage(value, name, *, reset_less=True):
            reg = Signal.like(value, name=name, reset_less=reset_less) \
                if isinstance(value, Signal) else Signal(value.shape(), name=name,
                                                         reset_less=reset_less)
            with m.If(en):
                m.d.sync += reg.eq(value)
            return reg

        valid = self.i.valid
        last = self.i.payload.last
        for s in range(self.latency):
            valid = stage(valid, f"valid_s{s + 1}", reset_less=False)
            last = stage(last, f"last_s{s + 1}")
        m.d.comb += [self.o.valid.eq(valid), self.o.payload.last.eq(last)]

        for lane in range(L):
            acc = self.i.payload.acc[lane]
            p = self.i.payload.params[lane]
            # 1: bias add, saturated to int32
            total = acc + p.bias
            x = stage(Mux(total > INT32_MAX, INT32_MAX,
                          Mux(total < INT32_MIN, INT32_MIN, total[:32].as_signed())),
                      f"x{lane}")
            mult = stage(p.multiplier, f"mult{lane}")
            shift1 = stage(p.shift, f"shift{lane}_s1")
            zp1, lo1, hi1 = (stage(p.zero_point, f"zp{lane}_s1"),
                             stage(p.clamp_min, f"lo{lane}_s1"), stage(p.clamp_max, f"hi{lane}_s1"))
            # 2: the 64-bit product
            prod = stage(x * mult, f"prod{lane}")
            both_min = stage((x == INT32_MIN) & (mult == INT32_MIN), f"both_min{lane}")
            shift2, zp2, lo2, hi2 = (stage(v, f"{n}{lane}_s2") for v, n in
                                     ((shift1, "shift"), (zp1, "zp"), (lo1, "lo"), (hi1, "hi")))
            # 3: SaturatingRoundingDoublingHighMul (truncating division by 2^31)
            nudged = prod + Mux(prod >= 0, 1 << 30, 1 - (1 << 30))
            high = (nudged + Mux(nudged < 0, (1 << 31) - 1, 0)) >> 31
            srdhm = stage(Mux(both_min, INT32_MAX, high[:32].as_signed()), f"srdhm{lane}")
            shift3, zp3, lo3, hi3 = (stage(v, f"{n}{lane}_s3") for v, n in
                                     ((shift2, "shift"), (zp2, "zp"), (lo2, "lo"), (hi2, "hi")))
            # 4: RoundingDivideByPOT, zero point, clamp
            mask = (Const(1, 33) << shift3) - 1
            rem = (srdhm & mask)[:32]
            threshold = (mask >> 1) + (srdhm < 0)
            rounded = (srdhm >> shift3) + (rem > threshold)
            y = rounded + zp3
            clamped = Mux(y < lo3, lo3, Mux(y > hi3, hi3, y))
            result = stage(clamped[:8].as_signed() if self._config.out_signed else clamped[:8],
                           f"out{lane}")
            m.d.comb += self.o.payload.data[lane].eq(result)
        return m
