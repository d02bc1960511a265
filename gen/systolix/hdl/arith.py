"""Shapes and accumulate logic shared by every generator, so all engines obey one numerics spec."""

from amaranth.hdl import Mux, Shape, signed, unsigned

from ..config import Numerics

__all__ = ["operand_shape", "acc_shape", "product_range", "chunk_sum_shape", "accumulate"]


def operand_shape(numerics: Numerics):
    """Amaranth shape of one operand."""
    return (signed if numerics.signed else unsigned)(numerics.in_width)


def acc_shape(numerics: Numerics):
    """Amaranth shape of the accumulator (always signed, see :class:`~systolix.config.Numerics`)."""
    return signed(numerics.acc_width)


def product_range(numerics: Numerics):
    """``(lo, hi)``: the smallest and largest value of one operand product."""
    corners = [x * y for x in (numerics.in_min, numerics.in_max)
               for y in (numerics.in_min, numerics.in_max)]
    return min(corners), max(corners)


def chunk_sum_shape(numerics: Numerics, terms):
    """Narrowest shape that holds the exact sum of any ``terms`` products (``terms >= 1``).

    A column of a weight-stationary array and a dot-product tree sum their products in this
    shape, so a chunk sum is never truncated before it meets the accumulator.
    """
    lo, hi = product_range(numerics)
    return Shape.cast(range(terms * lo, terms * hi + 1))


def accumulate(acc, addend, numerics: Numerics):
    """Expression for ``acc + addend`` reduced to the accumulator as ``numerics`` prescribes.

    ``acc`` must be an accumulator-shaped value; ``addend`` is any exact integer (one product or
    an exact chunk sum, possibly wider than the accumulator). Amaranth widens the sum, so it is
    exact; wrapping keeps its low ``acc_width`` bits and saturation compares it with the bounds.
    """
    total = acc + addend  # Amaranth widens: the exact sum, never truncated
    if not numerics.saturate:
        return total.as_signed()[:numerics.acc_width].as_signed()
    return Mux(total > numerics.acc_max, numerics.acc_max,
               Mux(total < numerics.acc_min, numerics.acc_min,
                   total[:numerics.acc_width].as_signed()))
