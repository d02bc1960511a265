"""A LUT multiplier for Lattice ECP5 whose partial products live inside the carry chain.

An ECP5 carry cell (CCU2C) holds two adder bits. Each bit is a LUT4 (inputs A, B, C, D) that
computes the *propagate* signal, and its *generate* signal is a LUT2 of A and B alone, taken
from the low quarter of the same truth table (``INIT[3:0]``: the LUT4's value at C = D = 0;
see yosys' ``lattice/ccu2c_sim.vh``). Such a bit therefore adds ``x(A, B) + z(C, D)`` for any
two-input ``x`` and any two-input ``z`` with ``z(0, 0) = 0``: the generate (``x`` wherever
``x == z``) is then exactly the LUT2. Two partial-product bits ``a[j] & b[i]`` and
``a[j - 1] & b[i + 1]`` fit in one adder bit, with no LUT before it (the trick of Xilinx'
MULT_AND, here through the CCU2C's own LUTs).

:class:`CarryChainMultiplier` sums the rows ``a * b[i]`` of a plain array multiplier in pairs
this way (``a * b[i] + 2 * a * b[i + 1]``; for a signed ``b`` the top row is subtracted:
its bits inverted, on the A/B side, and a carry-in of 1), then adds the pair sums with a
balanced tree of ordinary adders (which yosys maps to CCU2C chains), each only as wide as its
sum's range and the product's width need. For int8 x int8: four 10-bit chains, then 10-, 10-
and 12-bit adders: 36 CCU2C, no other LUT.

Same ports and latencies as :class:`~systolix.hdl.lutmult.LUTMultiplier` (latency 2:
registers after the first level of adders behind the pair chains, and on the product), so the
two are interchangeable cycle for cycle; ``tests/hdl/test_chainmult.py`` runs this one on yosys'
CCU2C simulation model in Icarus for every int8 operand pair.
"""

from amaranth.hdl import Cat, Const, Instance, Module, Mux, Signal, signed

from .lutmult import FabricMultiplier, _register

__all__ = ["CarryChainMultiplier", "ccu2c_init"]


def ccu2c_init(x, z):
    """Truth table (``INIT``) of one CCU2C bit adding ``x(A, B) + z(C, D)``.

    ``x`` and ``z`` are functions of two bits returning a bit; ``z(0, 0)`` must be 0 (the
    generate LUT2 reads the table at C = D = 0, where the bit must propagate ``x`` alone)."""
    if z(0, 0):
        raise ValueError("z(0, 0) must be 0: the carry generate is the table at C = D = 0")
    init = 0
    for idx in range(16):
        a, b, c, d = idx & 1, (idx >> 1) & 1, (idx >> 2) & 1, (idx >> 3) & 1
        init |= (x(a, b) ^ z(c, d)) << idx
    return init


def _and(p, q):
    return p & q


def _nand(p, q):
    return 1 - (p & q)


def _zero(p, q):
    return 0


def _one(p, q):
    return 1


class _ChainBit:
    """One adder bit: ``x`` of (A, B) plus ``z`` of (C, D)."""

    def __init__(self, x, ab, z, cd):
        self.x, self.ab, self.z, self.cd = x, ab, z, cd


_ZERO_BIT = _ChainBit(_zero, (0, 0), _zero, (0, 0))


def _chain(m, name, bits, carry_in):
    """A carry chain of CCU2C cells, one :class:`_ChainBit` per sum bit: the sum's bits."""
    bits = list(bits) + [_ZERO_BIT] * (len(bits) % 2)
    total = Signal(len(bits), name=f"{name}_sum")
    carry = Const(carry_in, 1)
    for k in range(0, len(bits), 2):
        ports = {}
        for h in (0, 1):
            bit = bits[k + h]
            ports[f"p_INIT{h}"] = Const(ccu2c_init(bit.x, bit.z), 16)
            ports[f"p_INJECT1_{h}"] = "NO"
            for port, value in zip("ABCD", bit.ab + bit.cd):
                ports[f"i_{port}{h}"] = value
            ports[f"o_S{h}"] = total[k + h]
        cout = Signal(name=f"{name}_c{k // 2}")
        m.submodules[f"{name}_{k // 2}"] = Instance("CCU2C", i_CIN=carry, o_COUT=cout, **ports)
        carry = cout
    return total


def _signed_width(lo, hi):
    """Bits of the narrowest signed number holding every integer in ``lo..hi``."""
    width = 1
    while not -(1 << (width - 1)) <= lo <= hi < 1 << (width - 1):
        width += 1
    return width


def _sum_level(m, terms, width, level):
    """One level of :func:`_sum_tree`: the terms added in pairs (an odd last one passes)."""
    out = []
    for i in range(0, len(terms) - 1, 2):
        (xv, xs, xlo, xhi), (yv, ys, ylo, yhi) = sorted(terms[i:i + 2], key=lambda t: t[1])
        gap = ys - xs
        lo, hi = xlo + (ylo << gap), xhi + (yhi << gap)
        keep = min(_signed_width(lo, hi), width - xs)
        total = Signal(signed(keep), name=f"sum_{level}_{i // 2}")
        if gap:
            if len(xv) <= gap:  # x lies below y's shift: sign-extend it past the gap
                ext = Signal(signed(gap + 1), name=f"ext_{level}_{i // 2}")
                m.d.comb += ext.eq(xv)
                xv = ext
            # (x >> gap is arithmetic: it keeps x's sign above its own width)
            m.d.comb += total.eq(Cat(xv[:gap], (xv >> gap) + yv).as_signed())
        else:
            m.d.comb += total.eq(xv + yv)
        out.append((total, xs, lo, hi))
    if len(terms) % 2:
        out.append(terms[-1])
    return out


def _sum_tree(m, terms, width, *, first_level=0):
    """``sum(value << shift)`` of ``(value, shift, lo, hi)`` terms (``lo..hi``: the value's
    range), modulo ``2 ** width``: a balanced tree of two-input adders, each exactly as wide as
    its sum's range or the bits below ``width`` need; bits below the larger shift of two
    terms come from the other one alone, without an adder."""
    level = first_level
    while len(terms) > 1:
        terms = _sum_level(m, terms, width, level)
        level += 1
    return terms[0]


class CarryChainMultiplier(FabricMultiplier):
    """Pipelined multiplier of two integers in ECP5 carry chains (see the module's description).

    Parameters
    ----------
    a_shape, b_shape : ShapeLike
        Operand shapes (signed or unsigned, 1..32 bits).
    latency : int
        0, 1 or 2 register stages, as :class:`~systolix.hdl.lutmult.LUTMultiplier`.

    Attributes
    ----------
    a, b, p : as :class:`~systolix.hdl.lutmult.FabricMultiplier`
    """

    def elaborate(self, platform):
        m = Module()
        a, b = self.a, self.b
        a_ext = a.as_signed() if a.shape().signed else Cat(a, Const(0, 1)).as_signed()
        wa = len(a_ext)

        def abit(j):  # a_ext sign-extended to any position
            return a_ext[min(j, wa - 1)]

        n = len(b)
        p_width = len(self.p)
        negative = [b.shape().signed and i == n - 1 for i in range(n)]
        a_lo = -(1 << (wa - 1)) if a.shape().signed else 0
        a_hi = (1 << (wa - 1)) - 1 if a.shape().signed else (1 << len(a)) - 1
        terms = []  # (value, shift, lo, hi): value << shift, value in lo..hi
        for i in range(0, n - 1, 2):
            # a * b[i] + 2 * a * b[i + 1] (minus, for the sign bit of a signed b): wa + 2 bits,
            # or fewer where they reach beyond the product (the sum is exact modulo its width)
            digits = (-2, 1) if negative[i + 1] else (0, 3)
            lo, hi = (min(d * x for d in digits for x in (a_lo, a_hi)),
                      max(d * x for d in digits for x in (a_lo, a_hi)))
            width = min(wa + 2, p_width - i)
            if negative[i + 1]:
                # the subtracted row inverted on the A/B side, +1 as the carry-in
                bits = [_ChainBit(_one, (0, 0), _and, (abit(0), b[i]))] + [
                    _ChainBit(_nand, (abit(j - 1), b[i + 1]), _and, (abit(j), b[i]))
                    for j in range(1, width)]
                carry_in = 1
            else:
                bits = [_ChainBit(_and, (abit(0), b[i]), _zero, (0, 0))] + [
                    _ChainBit(_and, (abit(j), b[i]), _and, (abit(j - 1), b[i + 1]))
                    for j in range(1, width)]
                carry_in = 0
            total = _chain(m, f"pp_{i}", bits, carry_in)
            value = Signal(signed(width), name=f"pair_{i}")
            m.d.comb += value.eq(total[:width])
            terms.append((value, i, lo, hi))
        if n % 2:  # an odd row left over: a plain partial product
            i = n - 1
            row = Signal(signed(wa + 1), name=f"row_{i}")
            m.d.comb += row.eq(Mux(b[i], -a_ext if negative[i] else a_ext, 0))
            digits = (-1, 0) if negative[i] else (0, 1)
            terms.append((row, i, min(d * x for d in digits for x in (a_lo, a_hi)),
                          max(d * x for d in digits for x in (a_lo, a_hi))))
        level = 0
        if self._latency == 2:
            # the register after the first level of adders, where the terms are fewer bits in
            # all than the pair sums (int8: 24 flip-flops, not 40), not right after the chains
            if len(terms) > 2:
                terms = _sum_level(m, terms, p_width, 0)
                level = 1
            regs = _register(m, [(v, s) for v, s, _, _ in terms], "pp_sum")
            terms = [(v, s, lo, hi) for (v, s), (_, _, lo, hi) in zip(regs, terms)]
        value, shift, _, _ = _sum_tree(m, terms, p_width, first_level=level)
        product = Signal(self.p.shape(), name="product_value")
        m.d.comb += product.eq(value << shift if shift else value)
        if self._latency >= 1:
            reg = Signal(self.p.shape(), name="product", reset_less=True)
            m.d.sync += reg.eq(product)
            product = reg
        m.d.comb += self.p.eq(product)
        return m
