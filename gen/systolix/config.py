"""Frozen, validated configuration of a generated engine.

One :class:`SystolicConfig` describes one generator run. It is validated once, here, and the same
object then feeds the Amaranth generator, the numpy golden model, the cycle model, the testbench
and the manifest written beside the RTL, so those can never disagree about a parameter.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

__all__ = ["Dataflow", "Numerics", "SystolicConfig", "MAX_ARRAY_DIM", "PIPELINES"]

#: Largest supported array side (TPU v1 is 256 x 256). Emitting a flattened 64 x 64 array already
#: takes ~25 s; the cap stops a typo from starting an hour-long elaboration.
MAX_ARRAY_DIM = 256

MIN_IN_WIDTH, MAX_IN_WIDTH = 2, 16

#: Pipeline options of a processing element and the register stages each adds in front of the
#: accumulator: ``none`` (today's PE), ``product`` (the product is registered), ``full``
#: (the multiplier's operands and its product are registered; on ECP5 these are the
#: MULT18X18D's own input and output registers) and ``deep`` (``full`` plus one more product
#: register in the fabric, so the long route from a DSP block to its accumulator gets a
#: cycle of its own).
PIPELINES = {"none": 0, "product": 1, "full": 2, "deep": 3}
MAX_ACC_WIDTH = 64


def _check_int(name, value, lo, hi=None):
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{name} must be an integer, not {value!r}")
    if value < lo or (hi is not None and value > hi):
        span = f"at least {lo}" if hi is None else f"in range {lo}..{hi}"
        raise ValueError(f"{name} must be {span}, not {value}")


def _check_bool(name, value):
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be a bool, not {value!r}")


class Dataflow(enum.Enum):
    """Which operand stays in the processing elements.

    Chosen at elaboration time: a generated array implements exactly one dataflow.
    """

    #: Each PE owns one output element and accumulates it over K (C stays, A and B move).
    OUTPUT_STATIONARY = "os"
    #: Each PE holds one weight B[k, n] (double-buffered); A moves right, partial sums move down
    #: and leave the bottom of the array once per row of A, to be accumulated outside it.
    WEIGHT_STATIONARY = "ws"


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
        _check_int("in_width", self.in_width, MIN_IN_WIDTH, MAX_IN_WIDTH)
        _check_bool("signed", self.signed)
        _check_bool("saturate", self.saturate)
        _check_int("acc_width", self.acc_width, 1)
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


@dataclass(frozen=True)
class SystolicConfig:
    """An R x C systolic array.

    Parameters
    ----------
    rows, cols : int
        Array size, 1..:data:`MAX_ARRAY_DIM` each; non-square arrays are fine.
    dataflow : Dataflow
        Which operand is stationary: output-stationary (default) or weight-stationary.
    numerics : Numerics
        Operand and accumulator arithmetic.
    pipeline : str
        Register stages between the operands and the accumulator, one of :data:`PIPELINES`:
        ``"none"`` (default), ``"product"``, ``"full"`` or ``"deep"``. More stages raise Fmax and delay every
        result by :attr:`pipeline_stages` cycles; nothing else changes (same ports, same ``ready``
        behaviour, same results).
    """

    rows: int
    cols: int
    dataflow: Dataflow = Dataflow.OUTPUT_STATIONARY
    numerics: Numerics = field(default_factory=Numerics)
    pipeline: str = "none"

    def __post_init__(self):
        _check_int("rows", self.rows, 1, MAX_ARRAY_DIM)
        _check_int("cols", self.cols, 1, MAX_ARRAY_DIM)
        if not isinstance(self.dataflow, Dataflow):
            raise TypeError(f"dataflow must be a Dataflow, not {self.dataflow!r}")
        if not isinstance(self.numerics, Numerics):
            raise TypeError(f"numerics must be a Numerics, not {self.numerics!r}")
        if not isinstance(self.pipeline, str):
            raise TypeError(f"pipeline must be a string, not {self.pipeline!r}")
        if self.pipeline not in PIPELINES:
            raise ValueError(f"pipeline must be one of {', '.join(PIPELINES)}, "
                             f"not {self.pipeline!r}")

    @property
    def pipeline_stages(self):
        """Register stages the pipeline option adds between operands and accumulator."""
        return PIPELINES[self.pipeline]

    @property
    def macs(self):
        """Multiply-accumulate units in the array."""
        return self.rows * self.cols

    @property
    def accumulation_chunk(self):
        """Products summed exactly before each accumulator addition (see :class:`Numerics`):
        1 for output-stationary (every product meets the accumulator), ``rows`` for
        weight-stationary (a column of ``rows`` PEs sums one k-tile exactly)."""
        return 1 if self.dataflow is Dataflow.OUTPUT_STATIONARY else self.rows

    @property
    def name(self):
        """Module and file name, unique per configuration, e.g.
        ``systolic_os_8x8_int8_acc32_wrap``."""
        n = self.numerics
        return (f"systolic_{self.dataflow.value}_{self.rows}x{self.cols}_"
                f"{n.operand_type}_acc{n.acc_width}_{n.overflow}"
                + (f"_pipe_{self.pipeline}" if self.pipeline != "none" else ""))

    def to_dict(self):
        d = {
            "kind": "systolic",
            "name": self.name,
            "rows": self.rows,
            "cols": self.cols,
            "dataflow": self.dataflow.value,
            "numerics": self.numerics.to_dict(self.accumulation_chunk),
        }
        if self.pipeline != "none":  # absent = default, so existing manifests stay identical
            d["pipeline"] = self.pipeline
        return d

    @classmethod
    def from_dict(cls, d):
        """Inverse of :meth:`to_dict` (derived fields are ignored)."""
        n = d["numerics"]
        return cls(rows=d["rows"], cols=d["cols"], dataflow=Dataflow(d["dataflow"]),
                   numerics=Numerics(in_width=n["in_width"], acc_width=n["acc_width"],
                                     signed=n["signed"], saturate=n["saturate"]),
                   pipeline=d.get("pipeline", "none"))
