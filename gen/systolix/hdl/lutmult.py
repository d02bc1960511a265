"""A multiplier built from logic (LUTs and carry chains), written in portable Amaranth.

On an FPGA whose DSP blocks are used up, a processing element can still multiply in the fabric.
:class:`LUTMultiplier` is such a multiplier with an explicit structure, so that the tools map
exactly this circuit (never a DSP block, never their own inference):

* ``"booth"``: radix-4 Booth recoding of ``b``. Each pair of ``b``'s bits selects one of
  0, +-a, +-2a as a partial product (``ceil((width_b + 1) / 2)`` of them, 4 for int8); a negative
  one is the bitwise complement of the magnitude plus a 1 slotted into the two free low bits of
  the next partial product. The partial products are summed by a balanced tree of two-input
  carry-chain adders; bits below a term's shift pass through without an adder.
* ``"array"``: one partial product ``a & b[i]`` per bit of ``b`` (the top one subtracted for
  a signed ``b``), summed by the same adder tree.

``"booth"`` is the default: on ECP5 it takes fewer LUT4s (see ``bench/results/mult.md``).

The result is exactly ``a * b`` (Amaranth's product shape), ``latency`` cycles late:

* 0: combinational;
* 1: the product is registered;
* 2: registers after the first adder level (the partial products are recoded and summed in
  pairs before them) and on the product. A DSP multiplier with operand and product registers
  has the same latency: as the registers hold no reset value that matters (pure data), the two
  behave the same cycle for cycle once operands have flowed through.
"""

from amaranth.hdl import Cat, Const, Module, Mux, Shape, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["FabricMultiplier", "LUTMultiplier", "ALGORITHMS"]

#: The partial-product schemes of :class:`LUTMultiplier`.
ALGORITHMS = ("booth", "array")


class FabricMultiplier(wiring.Component):
    """What the fabric multipliers share: operand shapes, latency and ports (``elaborate`` is
    each one's own).

    Parameters
    ----------
    a_shape, b_shape : ShapeLike
        Operand shapes (signed or unsigned, 1..32 bits).
    latency : int
        0, 1 or 2 register stages (see the module's description).

    Attributes
    ----------
    a : In(a_shape)
    b : In(b_shape)
    p : Out(shape of a * b)
        The product, ``latency`` cycles after its operands.
    """

    def __init__(self, a_shape, b_shape, *, latency=1):
        a_shape, b_shape = Shape.cast(a_shape), Shape.cast(b_shape)
        for name, s in (("a_shape", a_shape), ("b_shape", b_shape)):
            if not 1 <= s.width <= 32:
                raise ValueError(f"{name} must be 1..32 bits wide, not {s.width}")
        if latency not in (0, 1, 2) or isinstance(latency, bool):
            raise ValueError(f"latency must be 0, 1 or 2, not {latency!r}")
        self._latency = latency
        p_shape = (Signal(a_shape) * Signal(b_shape)).shape()
        super().__init__({"a": In(a_shape), "b": In(b_shape), "p": Out(p_shape)})

    @property
    def latency(self):
        """Cycles from operands to product."""
        return self._latency


class LUTMultiplier(FabricMultiplier):
    """Pipelined multiplier of two integers made of fabric logic.

    Parameters
    ----------
    a_shape, b_shape : ShapeLike
        Operand shapes (signed or unsigned, 1..32 bits).
    latency : int
        0, 1 or 2 register stages (see the module's description).
    algorithm : str
        ``"booth"`` (default) or ``"array"``.

    Attributes
    ----------
    a, b, p : as :class:`FabricMultiplier`
    """

    def __init__(self, a_shape, b_shape, *, latency=1, algorithm="booth"):
        super().__init__(a_shape, b_shape, latency=latency)
        if algorithm not in ALGORITHMS:
            raise ValueError(f"algorithm must be one of {', '.join(ALGORITHMS)}, "
                             f"not {algorithm!r}")
        self._algorithm = algorithm

    @property
    def algorithm(self):
        return self._algorithm

    def elaborate(self, platform):
        m = Module()
        if self._algorithm == "booth":
            terms = _booth_terms(m, self.a, self.b)
        else:
            terms = _array_terms(m, self.a, self.b)
        level = 0
        while len(terms) > 1:
            terms = _add_level(terms)
            level += 1
            if level == 1 and self._latency == 2:
                terms = _register(m, terms, "pp_sum")
        if self._latency == 2 and level == 0:  # a one-term product: nothing to split
            terms = _register(m, terms, "pp_sum")
        value, shift = terms[0]
        product = Signal(self.p.shape(), name="product_value")
        m.d.comb += product.eq(value << shift if shift else value)
        if self._latency >= 1:
            reg = Signal(self.p.shape(), name="product", reset_less=True)
            m.d.sync += reg.eq(product)
            product = reg
        m.d.comb += self.p.eq(product)
        return m


def _register(m, terms, name):
    out = []
    for i, (value, shift) in enumerate(terms):
        reg = Signal(value.shape(), name=f"{name}_{i}", reset_less=True)
        m.d.sync += reg.eq(value)
        out.append((reg, shift))
    return out


def _add(x, y):
    """``x + y`` of two ``(value, shift)`` terms (``value << shift``); the bits below the larger
    shift come from the other term alone, so the carry chain starts there."""
    (xv, xs), (yv, ys) = sorted([x, y], key=lambda t: t[1])
    gap = ys - xs
    if gap == 0:
        return xv + yv, xs
    if gap >= len(xv):
        # no overlap below: the low part of x is all of x's low bits; keep x's sign above
        low = xv.as_unsigned()
        high = (xv >> gap) + yv if len(xv) > gap else yv
        return Cat(low[:gap], high).as_signed(), xs
    high = (xv >> gap) + yv  # arithmetic shift keeps x's sign
    return Cat(xv[:gap], high).as_signed(), xs


def _add_level(terms):
    """One level of the adder tree: neighbours summed in pairs (the odd one out carried)."""
    out = [_add(terms[i], terms[i + 1]) for i in range(0, len(terms) - 1, 2)]
    if len(terms) % 2:
        out.append(terms[-1])
    return out


def _booth_terms(m, a, b):
    """Radix-4 Booth partial products of ``a * b`` as ``(signed value, shift)`` terms."""
    wa = len(a)
    a_ext = a.as_signed() if a.shape().signed else Cat(a, Const(0, 1)).as_signed()
    # b as a signed number with an even number of bits >= its width + 1 (unsigned: a 0 on top)
    bw = len(b) + (0 if b.shape().signed else 1)
    bw += bw % 2
    b_ext = Signal(signed(bw), name="b_booth")
    m.d.comb += b_ext.eq(b)
    digits = bw // 2
    width = len(a_ext) + 1  # holds 2 * a for any a
    pps, negs = [], []
    for i in range(digits):
        lo = b_ext[2 * i - 1] if i else Const(0, 1)
        mid, hi = b_ext[2 * i], b_ext[2 * i + 1]
        one = Signal(name=f"one_{i}")
        two = Signal(name=f"two_{i}")
        neg = Signal(name=f"neg_{i}")
        m.d.comb += [one.eq(mid ^ lo), two.eq((hi & ~mid & ~lo) | (~hi & mid & lo)), neg.eq(hi)]
        mag = Signal(signed(width), name=f"mag_{i}")
        m.d.comb += mag.eq(Mux(two, a_ext << 1, Mux(one, a_ext, 0)))
        pp = Signal(signed(width), name=f"pp_{i}")
        m.d.comb += pp.eq(Mux(neg, ~mag, mag))
        pps.append(pp)
        negs.append(neg)
    terms = []
    for i, pp in enumerate(pps):
        if i == 0:
            terms.append((pp, 0))
        else:
            # the previous digit's +1 of its negation, in this term's two free low bits
            terms.append((Cat(negs[i - 1], Const(0, 1), pp).as_signed(), 2 * i - 2))
    # the last digit's +1: a 1-bit term (yosys turns it into the final adder's carry-in)
    terms.append((Cat(negs[-1], Const(0, 1)).as_signed(), 2 * (digits - 1)))
    del wa
    return terms


def _array_terms(m, a, b):
    """One partial product ``a & b[i]`` per bit of ``b`` as ``(signed value, shift)`` terms."""
    a_ext = a.as_signed() if a.shape().signed else Cat(a, Const(0, 1)).as_signed()
    terms = []
    for i in range(len(b)):
        pp = Signal(signed(len(a_ext) + 1), name=f"pp_{i}")
        if b.shape().signed and i == len(b) - 1:
            m.d.comb += pp.eq(Mux(b[i], -a_ext, 0))
        else:
            m.d.comb += pp.eq(Mux(b[i], a_ext, 0))
        terms.append((pp, i))
    return terms
