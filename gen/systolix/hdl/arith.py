"""Shapes and accumulate logic shared by every generator, so all engines obey one numerics spec."""

from amaranth.hdl import Mux, signed, unsigned

from ..config import Numerics

__all__ = ["operand_shape", "acc_shape", "accumulate"]


def operand_shape(numerics: Numerics):
    """Amaranth shape of one operand."""
    return (signed if numerics.signed else unsigned)(numerics.in_width)


def acc_shape(numerics: Numerics):
    """Amaranth shape of the accumulator (always signed, see :class:`~systolix.config.Numerics`)."""
    return signed(numerics.acc_width)


def accumulate(acc, addend, numerics: Numerics):
    """Expression for ``acc + addend`` reduced to the accumulator as ``numerics`` prescribes.

    ``acc`` must be an accumulator-shaped value and ``addend`` must fit in the accumulator's range
    (one product always does, by the ``acc_width`` rule), so the exact sum needs at most one
    extra bit and saturation reduces to two comparisons against the bounds.
    """
    total = acc + addend  # Amaranth widens: the exact sum, never truncated
    if not numerics.saturate:
        return total.as_signed()[:numerics.acc_width].as_signed()
    return Mux(total > numerics.acc_max, numerics.acc_max,
               Mux(total < numerics.acc_min, numerics.acc_min,
                   total[:numerics.acc_width].as_signed()))
