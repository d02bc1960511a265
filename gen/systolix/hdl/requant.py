"""Requantization unit: int32 accumulators -> int8/uint8, in one of two exact integer rules:
gemmlowp's fixed-point arithmetic or onnxruntime's float32 arithmetic."""

from amaranth.hdl import Cat, Const, Module, Mux, Signal, Value, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.wiring import In, Out

from ..config import RequantConfig
from . import dsp

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


class _Pipe:
    """Register stages of one lane: every stage is a plain register (the pipe never stalls);
    ``at`` counts the stages so far, and :meth:`align` delays a value to the current stage.
    The first stage (:meth:`inputs`) registers the lane's input as it is, so that the source's
    routing (e.g. a block RAM's output) ends in a register."""

    def __init__(self, m, platform, prefix):
        self.m, self.platform, self.prefix, self.at = m, platform, prefix, 0
        self._born = {}
        self._inputs_born = 0  # the stage of a value the pipe did not make: a parameter field

    def reg(self, value, name):
        value = Value.cast(value)
        r = Signal(value.shape(), name=f"{self.prefix}{name}", reset_less=True)
        self.m.d.sync += r.eq(value)
        return r

    def inputs(self, acc, params, load):
        """Stage 1: the lane's accumulator and parameters (a view of the parameter layout),
        registered; they load only with ``load``, so that nothing in the pipe changes while no
        beat enters (every later stage is a function of these)."""
        assert self.at == 0
        self.at = 1
        acc_r = Signal(Value.cast(acc).shape(), name=f"{self.prefix}acc_s1", reset_less=True)
        params_r = Signal(params.shape(), name=f"{self.prefix}params_s1", reset_less=True)
        with self.m.If(load):
            self.m.d.sync += [acc_r.eq(acc), params_r.eq(params)]
        self._born[id(acc_r)] = 1
        self._inputs_born = 1  # the parameters' fields (slices of params_r)
        return acc_r, params_r

    def stage(self, **values):
        """Register every value of this stage; returns them in order (one value: itself)."""
        self.at += 1
        out = []
        for name, value in values.items():
            r = self.reg(value, f"{name}_s{self.at}")
            self._born[id(r)] = self.at
            out.append(r)
        return out[0] if len(out) == 1 else out

    def align(self, sig):
        """``sig`` (from an earlier stage, or a parameter field) delayed to the current
        stage."""
        born = self._born.get(id(sig), self._inputs_born)
        for s in range(born, self.at):
            sig = self.reg(sig, f"{sig.name.removeprefix(self.prefix)}_d{s + 1}"
                           if isinstance(sig, Signal) else f"in_d{s + 1}")
        self._born[id(sig)] = self.at
        return sig

    def mul_parts(self, a, b, name):
        """The four partial products of ``a * b`` (operands split at bit 17, so that each
        fits an 18 x 18 DSP multiplier), two stages later: ``(ll, lh, hl, hh)``."""
        parts = []
        al, bl = a[:17], b[:17]
        ah = a[17:].as_signed() if a.shape().signed else a[17:]
        bh = b[17:].as_signed() if b.shape().signed else b[17:]
        for tag, x, y in (("ll", al, bl), ("lh", al, bh), ("hl", ah, bl), ("hh", ah, bh)):
            hook = dsp.multiplier(self.platform, x, y, input_register=True)
            if hook is not None:
                cell, p = hook
                self.m.submodules[f"{self.prefix}{name}_{tag}"] = cell
                p = p.as_signed() if (x * y).shape().signed else p
            else:  # the same two registers in the fabric
                p = self.reg(self.reg(x, f"{name}_{tag}_a") * self.reg(y, f"{name}_{tag}_b"),
                             f"{name}_{tag}")
            parts.append(p)
        self.at += 2
        for p in parts:
            self._born[id(p)] = self.at
        return parts

    def multiply(self, a, b, name):
        """``a * b`` exactly (operands up to 34 bits), four stages later."""
        ll, lh, hl, hh = self.mul_parts(a, b, name)
        signed_ = a.shape().signed or b.shape().signed
        top = Cat(ll[:34], hh)
        low, mid = self.stage(**{f"{name}_low": top.as_signed() if signed_ else top,
                                 f"{name}_mid": lh + hl})
        return self.stage(**{name: low + (mid << 17)})


def _clz32(a):
    """Leading zeros of the 32-bit ``a`` (32 for 0), as a tree of five levels."""
    def count(v):  # (all zero, leading zeros below len(v)) for a power-of-two width
        if len(v) == 2:
            return ~v[1] & ~v[0], ~v[1]
        half = len(v) // 2
        zh, ch = count(v[half:])
        zl, cl = count(v[:half])
        return zh & zl, Mux(zh, Cat(cl, Const(1, 1)), Cat(ch, Const(0, 1)))
    zero, n = count(a)
    return Mux(zero, 32, n)


class Requantizer(wiring.Component):
    """int32 accumulators -> int8/uint8, ``lanes`` per beat, each lane with its own parameters.

    ``mode="gemmlowp"``: bit-exact with :func:`systolix.model.quant.requantize`:

    1. ``x = acc + bias``, saturated to int32;
    2. ``p = x * multiplier`` (exact, 64 bits, from four 17/15-bit partial products);
    3. SaturatingRoundingDoublingHighMul: ``INT32_MAX`` if both were ``INT32_MIN``, else
       ``floor((p + 2**30) / 2**31)``, which is gemmlowp's nudge-and-truncate (ties towards
       +infinity);
    4. RoundingDivideByPOT by ``shift``: arithmetic shift, plus one when the remainder exceeds
       ``(mask >> 1) + (x < 0)`` (ties away from zero);
    5. ``+ zero_point`` exactly, then clamped to ``[clamp_min, clamp_max]``.

    ``mode="float32"``: bit-exact with :func:`systolix.model.quant.requantize_float32`
    (onnxruntime's rule), in integers as :func:`systolix.model.quant.requantize_float32_int`
    describes: wrapping bias add; ``|x|`` normalised (leading-zero count, left shift) and
    rounded to a 24-bit mantissa (int -> float32); the 24 x 24-bit mantissa product rounded to
    24 bits (float32 product); the shift by the combined exponent, rounding half to even; the
    sign, the zero point and the clamp.

    The datapath is a pipeline of plain registers that never stalls (so the multipliers can use
    the DSP blocks' own registers) followed by an output FIFO; ``i.ready`` grants an input beat
    only while the FIFO has room for every beat in flight (a credit counter), so backpressure on
    ``o`` never drops or duplicates a beat; ``i.ready`` is a register (set from the credits the
    next cycle will have). Unstalled, ``i.ready`` stays high and every beat comes out
    :attr:`latency` cycles after it went in. The pipe's first registers load only with
    ``i.valid``, so that nothing in it toggles between beats.

    Parameters
    ----------
    config : RequantConfig
    slack : int
        Room for this many beats more in the output FIFO (:attr:`capacity`). A producer that
        keeps its own credits, counting from ``slack`` cycles before it offers a beat on ``i``
        (e.g. through registers that never stall), then may ignore ``i.ready``.

    Attributes
    ----------
    i : In(stream.Signature(requant_input_layout(config)))
    o : Out(stream.Signature(requant_output_layout(config)))
    """

    def __init__(self, config: RequantConfig, *, slack=0):
        if not isinstance(config, RequantConfig):
            raise TypeError(f"config must be a RequantConfig, not {config!r}")
        if not isinstance(slack, int) or isinstance(slack, bool) or slack < 0:
            raise TypeError(f"slack must be a non-negative integer, not {slack!r}")
        self._config = config
        self._slack = slack
        super().__init__({
            "i": In(stream.Signature(requant_input_layout(config))),
            "o": Out(stream.Signature(requant_output_layout(config))),
        })

    @property
    def config(self):
        return self._config

    @property
    def latency(self):
        """Cycles from an accepted input beat to its output beat (with no stall)."""
        return self._config.latency

    @property
    def capacity(self):
        """Beats the requantizer holds (in its pipe and output FIFO): ``i.ready`` is high while
        fewer have been accepted and not yet delivered. :attr:`latency` + 1 (room for every
        beat in flight at full rate) + ``slack``."""
        return self._config.latency + 1 + self._slack

    def elaborate(self, platform):
        m = Module()
        cfg = self._config
        stages = cfg.latency - 1  # the FIFO adds one
        depth = self.capacity
        fifo = m.submodules.fifo = SyncFIFO(width=8 * cfg.lanes + 1, depth=depth)

        # credits: beats accepted and not yet delivered; i.ready := outstanding < depth, a
        # register set from the next cycle's count (it moves by at most one a cycle)
        outstanding = Signal(range(depth + 1))
        ready = Signal(init=1, name="ready")
        # o_valid equals the FIFO's r_rdy (below) but is a flip-flop: a delivered beat is
        # known without the level's zero test
        o_valid = Signal(name="o_valid")
        take = self.i.valid & ready
        give = fifo.r_en & o_valid
        m.d.comb += self.i.ready.eq(ready)
        with m.If(take & ~give):
            m.d.sync += [outstanding.eq(outstanding + 1), ready.eq(outstanding < depth - 1)]
        with m.Elif(give & ~take):
            m.d.sync += [outstanding.eq(outstanding - 1), ready.eq(1)]

        valid, last = take, self.i.payload.last
        for s in range(stages):
            v, l = Signal(name=f"valid_s{s + 1}"), Signal(name=f"last_s{s + 1}", reset_less=True)
            m.d.sync += [v.eq(valid), l.eq(last)]
            valid, last = v, l

        lane_rule = self._gemmlowp_lane if cfg.mode == "gemmlowp" else self._float32_lane
        results = []
        for lane in range(cfg.lanes):
            pipe = _Pipe(m, platform, f"l{lane}_")
            acc, params = pipe.inputs(self.i.payload.acc[lane], self.i.payload.params[lane],
                                      self.i.valid)
            out = lane_rule(pipe, acc, params)
            assert pipe.at == stages, (pipe.at, stages)
            results.append(out)

        # o.valid is the FIFO's r_rdy (level != 0) as a register of the next cycle's level,
        # which is not 0 when a beat goes in, when two or more are there, or one that stays
        # (no adder or comparison: LUTs)
        level = fifo.level
        m.d.sync += o_valid.eq((fifo.w_en & fifo.w_rdy) | level[1:].any()
                               | (level[0] & ~self.o.ready))
        m.d.comb += [
            fifo.w_en.eq(valid),
            fifo.w_data.eq(Cat(*results, last)),
            self.o.valid.eq(o_valid),
            self.o.payload.as_value().eq(fifo.r_data),
            fifo.r_en.eq(self.o.ready),
        ]
        return m

    def _bounds(self, pipe, p):
        """The clamp bounds less the zero point (in -383..383), computed on the parameters'
        way: ``y + zero_point < clamp_min`` is ``y < clamp_min - zero_point``."""
        wide = (lambda v: v) if p.zero_point.shape().signed else (
            lambda v: Cat(v, Const(0, 1)).as_signed())
        return (_named(pipe, wide(p.clamp_min) - wide(p.zero_point), "lo_z", born=1),
                _named(pipe, wide(p.clamp_max) - wide(p.zero_point), "hi_z", born=1))

    def _choose(self, pipe, lt, gt, y, p):
        """The clamp's choice, one stage."""
        lo, hi = pipe.align(p.clamp_min), pipe.align(p.clamp_max)
        return pipe.stage(out=Mux(lt, lo, Mux(gt, hi, y))[:8])

    def _clamp(self, pipe, y, p):
        """``clamp(y + zero_point, clamp_min, clamp_max)`` of a ``y`` of at most 12 bits in two
        stages: the sum (of the low 8 bits only: the clamp keeps no other) beside the
        comparisons with the bounds less the zero point; the choice."""
        lo_z, hi_z = self._bounds(pipe, p)
        lt, gt, y = pipe.stage(lt=y < pipe.align(lo_z), gt=y > pipe.align(hi_z),
                               y=(y[:8] + pipe.align(p.zero_point))[:8])
        return self._choose(pipe, lt, gt, y, p)

    def _clamp_wide(self, pipe, y12, fits, neg, p):
        """The clamp of a wide ``y`` given as its low 12 bits ``y12``, whether it ``fits`` 12
        bits (may say no for any ``y`` beyond -384..384: such a ``y`` lies beyond both bounds)
        and its sign ``neg``, in three stages, each a LUT or two deep (no carry chain, so that
        a long route into a stage still fits the clock): the comparisons of ``y12`` with each
        bound less the zero point, in 3-bit pieces (less and equal); the pieces combined, and
        the zero point added to ``y``'s low 8 bits; the choice."""
        lo_z, hi_z = self._bounds(pipe, p)

        def biased(v):  # a signed value of up to 12 bits as an unsigned 12-bit one of the
            v = Cat(v, *[v[-1]] * (12 - len(v)))  # same order
            return Cat(v[:11], ~v[11])

        lo_u = _named(pipe, biased(lo_z), "lo_u", born=1)
        hi_u = _named(pipe, biased(hi_z), "hi_u", born=1)
        lo_u, hi_u, yu = pipe.align(lo_u), pipe.align(hi_u), biased(y12)
        pieces = {}
        for i in range(0, 12, 3):
            yp, lp, hp = yu[i:i + 3], lo_u[i:i + 3], hi_u[i:i + 3]
            pieces.update({f"lo_lt{i}": _less(yp, lp), f"lo_eq{i}": ~(yp ^ lp).any(),
                           f"hi_gt{i}": _less(hp, yp), f"hi_eq{i}": ~(yp ^ hp).any()})
        regs = pipe.stage(**pieces, fits=fits, neg=neg, y8=y12[:8])
        r = dict(zip([*pieces, "fits", "neg", "y8"], regs))

        def combine(kind, eq):  # the 12-bit comparison from its pieces, most significant first
            out = Const(0, 1)
            for i in range(0, 12, 3):
                out = r[f"{kind}{i}"] | (r[f"{eq}{i}"] & out)
            return out
        lt, gt, y = pipe.stage(lt=Mux(r["fits"], combine("lo_lt", "lo_eq"), r["neg"]),
                               gt=Mux(r["fits"], combine("hi_gt", "hi_eq"), ~r["neg"]),
                               y=(r["y8"] + pipe.align(p.zero_point))[:8])
        return self._choose(pipe, lt, gt, y, p)

    def _gemmlowp_lane(self, pipe, acc, p):
        total = acc + p.bias                       # 33 bits; overflow iff its top bits differ
        x = pipe.stage(x=Mux(total[32] == total[31], total[:32].as_signed(),
                             Mux(total[32], INT32_MIN, INT32_MAX)))
        mult = pipe.align(p.multiplier)
        both_min = _named(pipe, (x == INT32_MIN) & (mult == INT32_MIN), "both_min")
        prod = pipe.multiply(x, mult, "prod")
        both_min = pipe.align(both_min)
        # SRDHM: floor((p + 2**30) / 2**31) == (floor(p / 2**30) + 1) >> 1
        high = ((prod[30:64].as_signed() + 1) >> 1)[:32].as_signed()
        # beside h, from the shift (a parameter, static per beat): below[j] = j < shift, the
        # mask of the bits RoundingDivideByPOT shifts out, so that the next stage reduces h
        # under a mask rather than shifting the bits out (a 32-bit variable shift in one stage
        # was too deep for the clock)
        shift = pipe.align(p.shift)
        h, below = pipe.stage(srdhm=Mux(both_min, INT32_MAX, high),
                              below=Cat(*[shift > j for j in range(31)]))
        shift = pipe.align(shift)
        # RoundingDivideByPOT in two stages: h shifted by the shift's multiple of 4 (the bits
        # the rest of the shift keeps), beside the rounding bit h[shift - 1] (0 for shift 0),
        # the sticky bit (any set below it) and whether keep = h >> shift fits 12 bits (h's
        # bits from 11 + shift up all equal its sign)
        sign = h[31]
        t, rbit, sticky, kfits, sign = pipe.stage(
            t=(h >> Cat(Const(0, 2), shift[2:]))[:15],
            rbit=Cat(Const(0, 1), h[:31]).bit_select(shift, 1),
            sticky=(h[:30] & below[1:31]).any(),
            kfits=~((h[11:31] ^ sign.replicate(20)) & ~below[:20]).any(),
            sign=sign)
        # the rest of the shift: keep's low 12 bits; beside them the rounding up (ties away
        # from zero), whether keep fits 12 bits, and is 2047; then y = keep + up as its low 12
        # bits, whether it fits them (no when keep + up is 2048, and when keep is -2049:
        # y = -2048 lies beyond the bounds too) and its sign (keep's, where y does not fit)
        keep = (t >> pipe.align(shift)[:2])[:12]
        keep, up, kfits, kmax, neg = pipe.stage(
            keep=keep, up=rbit & (~sign | sticky), kfits=kfits,
            kmax=(keep[:11].all() & ~keep[11]), neg=sign)
        y12, fits, neg = pipe.stage(y12=(keep + up)[:12], fits=kfits & ~(kmax & up), neg=neg)
        return self._clamp_wide(pipe, y12, fits, neg, p)

    def _float32_lane(self, pipe, acc, p):
        bits = p.scale_bits
        x, e, ms = pipe.stage(x=(acc + p.bias)[:32].as_signed(),    # wraps, as onnxruntime
                              e=bits[23:31], ms=Cat(bits[:23], Const(1, 1)))
        neg, a = pipe.stage(neg=x < 0, a=Mux(x < 0, -x, x)[:32])
        lz = pipe.stage(lz=_clz32(a))
        zero_e = pipe.align(_named(pipe, e == 0, "zero_e", born=pipe._born[id(e)]))
        # int -> float32: normalise to 24 bits, round to nearest even
        n, zero = pipe.stage(n=(pipe.align(a) << lz)[:32], zero=zero_e | (lz == 32))
        # k = 150 - lead - e - P[47] with lead = 31 - lz + carry: the product's shift to an
        # integer, one term per stage
        n, up, pre = pipe.stage(n=n, up=n[7] & (n[8] | (n[:7] != 0)),
                                pre=119 + pipe.align(lz) - pipe.align(e))
        mf25 = n[8:32] + up
        carry = mf25[24]
        mf, carry = pipe.stage(mf=Mux(carry, 1 << 23, mf25[:24]), carry=carry)
        base = _named(pipe, pipe.align(pre) - carry, "base")
        prod = pipe.multiply(mf, pipe.align(ms), "prod")
        base = pipe.align(base)
        # float32 product: the top 24 bits of the 48-bit mantissa product, rounded half to even
        t = prod[47]
        keep24, rbit, sticky, t = pipe.stage(
            keep24=Mux(t, prod[24:48], prod[23:47]), rbit=Mux(t, prod[23], prod[22]),
            sticky=Mux(t, prod[:23] != 0, prod[:22] != 0), t=t)
        mq, k = pipe.stage(mq=keep24 + (rbit & (sticky | keep24[0])), k=pipe.align(base) - t)
        # integer rounding of mq / 2**k: k <= 13 is beyond every clamp, k >= 25 rounds to 0
        kk, big = pipe.stage(kk=Mux(k >= 25, 11, Mux(k <= 13, 0, (k - 14)[:4])), big=k <= 13)
        v = pipe.stage(v=Cat(Const(0, 11), pipe.align(mq)) >> kk)
        keep, rbit, sticky = pipe.stage(keep=v[25:36], rbit=v[24], sticky=v[:24] != 0)
        r = pipe.stage(r=keep + (rbit & (sticky | keep[0])))
        mag = Mux(pipe.align(big), 1 << 10, r[:11])  # r <= 2**10; 2**10 is beyond any clamp
        neg, zero = pipe.align(neg), pipe.align(zero)
        y = pipe.stage(y=Mux(zero, 0, Mux(neg, -mag, mag)))
        return self._clamp(pipe, y, p)


def _less(a, b):
    """``a < b`` of two unsigned bit vectors of the same width, as and/or logic (a carry
    chain, which a comparison would become, is slow to reach and to leave)."""
    lt = Const(0, 1)
    for i in range(len(a)):
        lt = (~a[i] & b[i]) | (~(a[i] ^ b[i]) & lt)
    return lt


def _named(pipe, value, name, born=None):
    """A comb signal for ``value`` (so it can be aligned), counted as born at stage ``born``
    (default: the current one)."""
    s = Signal(Value.cast(value).shape(), name=f"{pipe.prefix}{name}")
    pipe.m.d.comb += s.eq(value)
    pipe._born[id(s)] = pipe.at if born is None else born
    return s
