"""The arithmetic contract shared by every engine: operands, products, accumulator."""

from __future__ import annotations

from dataclasses import dataclass

from .checks import check_bool, check_int

__all__ = ["Numerics", "MIN_IN_WIDTH", "MAX_IN_WIDTH", "MAX_ACC_WIDTH"]

MIN_IN_WIDTH, MAX_IN_WIDTH = 2, 16
MAX_ACC_WIDTH = 64


@dataclass(frozen=True)
class Numerics:
    """The arithmetic contract of an engine, shared by RTL and golden model.

    Operands are ``in_width``-bit two's-complement integers (or unsigned integers when
    ``signed`` is false). Each product is exact. The accumulator is always a **signed**
    two's-complement ``acc_width``-bit register, starting at 0 for every output element.
    Products are grouped into *chunks* of consecutive ``k`` (k = 0..g-1, g..2g-1, ...; the chunk
    size ``g`` is a property of the architecture, see ``accumulation_chunk`` of the configs: 1 for
    an output-stationary array, the array's rows for a weight-stationary one). Each chunk is summed
    exactly, and the chunk sums are added to the accumulator in increasing ``k`` order; after every
    addition the accumulator either

    * wraps: keeps the low ``acc_width`` bits (arithmetic modulo ``2**acc_width``), or
    * saturates (``saturate=True``): is clamped to ``[-2**(acc_width-1), 2**(acc_width-1) - 1]``.
      Saturation is sticky only in the sense that later chunks are added to the clamped value,
      exactly as a hardware accumulator would.

    With wrapping the chunk size cannot change any result (addition modulo ``2**acc_width`` is
    associative); with saturation it can, and only when an intermediate sum overflows.

    Parameters
    ----------
    in_width : int
        Operand width in bits, 2..16. Default 8 (int8).
    acc_width : int
        Accumulator width in bits. At least wide enough for one product (``2*in_width`` signed,
        ``2*in_width + 1`` unsigned), at most 64. Default 32.
    signed : bool
        Operands are two's complement (default) or unsigned.
    saturate : bool
        Saturate instead of wrap on accumulator overflow. Default ``False`` (wrap).
    """

    in_width: int = 8
    acc_width: int = 32
    signed: bool = True
    saturate: bool = False

    def __post_init__(self):
        check_int("in_width", self.in_width, MIN_IN_WIDTH, MAX_IN_WIDTH)
        check_bool("signed", self.signed)
        check_bool("saturate", self.saturate)
        check_int("acc_width", self.acc_width, 1)
        if self.acc_width > MAX_ACC_WIDTH:
            raise ValueError(f"acc_width must be in range {self.product_width}..{MAX_ACC_WIDTH}, "
                             f"not {self.acc_width}")
        if self.acc_width < self.product_width:
            raise ValueError(
                f"acc_width must be at least {self.product_width} to hold one "
                f"{'signed' if self.signed else 'unsigned'} {self.in_width}-bit product, "
                f"not {self.acc_width}")

    @property
    def product_width(self):
        """Bits a signed accumulator needs to hold any single product exactly."""
        return 2 * self.in_width if self.signed else 2 * self.in_width + 1

    @property
    def in_min(self):
        return -(1 << (self.in_width - 1)) if self.signed else 0

    @property
    def in_max(self):
        return (1 << (self.in_width - 1)) - 1 if self.signed else (1 << self.in_width) - 1

    @property
    def acc_min(self):
        return -(1 << (self.acc_width - 1))

    @property
    def acc_max(self):
        return (1 << (self.acc_width - 1)) - 1

    @property
    def overflow(self):
        """``"saturate"`` or ``"wrap"``."""
        return "saturate" if self.saturate else "wrap"

    @property
    def operand_type(self):
        """Short operand type name, e.g. ``int8`` or ``uint8``."""
        return f"{'int' if self.signed else 'uint'}{self.in_width}"

    @property
    def output_dtype(self):
        """numpy dtype name of result matrices: int32 up to 32-bit accumulators, else int64."""
        return "int32" if self.acc_width <= 32 else "int64"

    def to_dict(self, chunk=1):
        """JSON-ready description; ``chunk`` is the architecture's accumulation chunk."""
        step = ("each product is added" if chunk == 1 else
                f"products are summed exactly in chunks of {chunk} consecutive k and each chunk "
                f"sum is added")
        return {
            "in_width": self.in_width,
            "acc_width": self.acc_width,
            "signed": self.signed,
            "saturate": self.saturate,
            "operand_range": [self.in_min, self.in_max],
            "accumulator_range": [self.acc_min, self.acc_max],
            "overflow": self.overflow,
            "output_dtype": self.output_dtype,
            "accumulation_chunk": chunk,
            "spec": (
                f"{self.operand_type} x {self.operand_type} products are exact; {step} in "
                f"increasing k order to a signed {self.acc_width}-bit accumulator that starts at 0 "
                + ("and is clamped to its range after every addition."
                   if self.saturate else
                   f"and wraps modulo 2^{self.acc_width} (two's complement).")),
        }
