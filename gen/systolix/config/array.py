"""Configuration of a bare systolic array (output- or weight-stationary)."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from .checks import check_int
from .numerics import Numerics

__all__ = ["Dataflow", "PEPipeline", "SystolicConfig", "MAX_ARRAY_DIM", "PIPELINES",
           "MULTIPLIERS", "multiplier_plan"]

#: Largest supported array side (TPU v1 is 256 x 256). Emitting a flattened 64 x 64 array already
#: takes ~25 s; the cap stops a typo from starting an hour-long elaboration.
MAX_ARRAY_DIM = 256

class PEPipeline(str, enum.Enum):
    """Pipeline option of a processing element: which registers sit in front of its accumulator
    (output-stationary) or of the adder that passes its partial sum down (weight-stationary).

    A *named register structure*, not a count (compare :attr:`TensorCoreConfig.pipeline
    <systolix.config.TensorCoreConfig.pipeline>`, which counts register stages):
    :attr:`stages` gives the count. A ``str`` enum: a member equals its value (``PEPipeline.FULL
    == "full"``), the spelling used in config dicts, names and on the command line, so strings
    are accepted wherever a member is.
    """

    #: no register: the product goes straight into the accumulator.
    NONE = "none"
    #: the product is registered.
    PRODUCT = "product"
    #: the multiplier's operands and its product are registered (on ECP5: the MULT18X18D's own
    #: input and output registers; a weight-stationary PE's weight operand is a copy of its
    #: active weight).
    FULL = "full"
    #: ``full`` plus one more product register in the fabric, so the long route from a DSP
    #: block to its accumulator gets a cycle of its own.
    DEEP = "deep"

    def __str__(self):
        return self.value

    def __repr__(self):  # as the string it equals: config reprs read (and eval) as before
        return repr(self.value)

    @property
    def stages(self):
        """Register stages the option adds between operands and accumulator (0..3)."""
        return list(PEPipeline).index(self)


#: PE pipeline option names and the register stages each adds (:class:`PEPipeline`).
PIPELINES = {p.value: p.stages for p in PEPipeline}


#: Multiplier options of an array (:attr:`SystolicConfig.mult`).
MULTIPLIERS = ("dsp", "lut", "auto")


def multiplier_plan(config, dsp_blocks, *, pairs=False):
    """Which multiplier each PE of ``config`` gets: an R x C tuple of ``"dsp"`` / ``"lut"``.

    ``mult="dsp"`` gives every PE a DSP multiplier (a vendor primitive where the platform
    offers one, else ``a * b``), ``"lut"`` every PE a :class:`~systolix.hdl.lutmult.LUTMultiplier`.
    ``"auto"`` fills ``dsp_blocks`` DSP blocks first, in row-major order, and gives the
    remaining PEs LUT multipliers; ``dsp_blocks=None`` (no device known, e.g. plain Verilog)
    means DSP multipliers everywhere. With ``pairs`` (iCE40's SB_MAC16 holds two multipliers)
    the PEs of columns ``2j`` and ``2j + 1`` share one block and are assigned together; the PE of
    an odd last column takes a block of its own.
    """
    R, C = config.rows, config.cols
    if config.mult != "auto" or dsp_blocks is None:
        kind = "lut" if config.mult == "lut" else "dsp"
        return tuple((kind,) * C for _ in range(R))
    if isinstance(dsp_blocks, bool) or not isinstance(dsp_blocks, int) or dsp_blocks < 0:
        raise ValueError(f"dsp_blocks must be a non-negative integer, not {dsp_blocks!r}")
    plan = [["lut"] * C for _ in range(R)]
    left = dsp_blocks
    for r in range(R):
        c = 0
        while c < C and left:
            width = 2 if pairs and c < C - C % 2 else 1
            for i in range(width):
                plan[r][c + i] = "dsp"
            left -= 1
            c += width
    return tuple(tuple(row) for row in plan)


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
    pipeline : PEPipeline or str
        The PE's register structure (:class:`PEPipeline`; its value as a string is accepted and
        converted): ``"none"`` (default), ``"product"``, ``"full"`` or ``"deep"``. More
        stages raise Fmax and delay every result by :attr:`pipeline_stages` cycles; nothing
        else changes (same ports, same ``ready`` behaviour, same weight schedule, same results).
        Both dataflows.
    mult : str
        The PEs' multipliers (:data:`MULTIPLIERS`, see :func:`multiplier_plan`): ``"dsp"``
        (default: the FPGA's DSP blocks), ``"lut"`` (built from LUTs and carry chains) or
        ``"auto"`` (every DSP block of the target first, LUTs for the remaining PEs).
        Both dataflows; the results and cycles are the same for all three.
    """

    rows: int
    cols: int
    dataflow: Dataflow = Dataflow.OUTPUT_STATIONARY
    numerics: Numerics = field(default_factory=Numerics)
    pipeline: PEPipeline = PEPipeline.NONE
    mult: str = "dsp"

    def __post_init__(self):
        check_int("rows", self.rows, 1, MAX_ARRAY_DIM)
        check_int("cols", self.cols, 1, MAX_ARRAY_DIM)
        if not isinstance(self.dataflow, Dataflow):
            raise TypeError(f"dataflow must be a Dataflow, not {self.dataflow!r}")
        if not isinstance(self.numerics, Numerics):
            raise TypeError(f"numerics must be a Numerics, not {self.numerics!r}")
        if not isinstance(self.pipeline, str):
            raise TypeError(f"pipeline must be a string, not {self.pipeline!r}")
        if self.pipeline not in PIPELINES:
            raise ValueError(f"pipeline must be one of {', '.join(PIPELINES)}, "
                             f"not {self.pipeline!r}")
        object.__setattr__(self, "pipeline", PEPipeline(self.pipeline))
        if not isinstance(self.mult, str):
            raise TypeError(f"mult must be a string, not {self.mult!r}")
        if self.mult not in MULTIPLIERS:
            raise ValueError(f"mult must be one of {', '.join(MULTIPLIERS)}, not {self.mult!r}")

    @property
    def pipeline_stages(self):
        """Register stages the pipeline option adds between operands and accumulator."""
        return self.pipeline.stages

    @property
    def macs(self):
        """Multiply-accumulate units in the array."""
        return self.rows * self.cols

    @property
    def drain_tree(self):
        """How an output-stationary array drains its results (``False`` for weight-stationary).
        ``True`` with LUT multipliers only (``mult="lut"``), where LUTs are what runs out: each
        PE shows its sum for one cycle, and each column ORs them, rows leaving **top row first**
        (no LUT per accumulator bit in the PE; about acc bits x (R - 1) / R more flip-flops per
        PE in the de-skew lanes). ``False`` otherwise (``"dsp"``, ``"auto"``), where flip-flops
        are the scarcer resource (an iCE40 logic cell has one of each): the PEs' drain registers
        form a shift chain, rows leaving **bottom row first** (one LUT per accumulator bit in the
        PE for its load-or-shift choice). The timing is the same
        (:class:`~systolix.hdl.os_array.OutputStationaryArray`)."""
        return self.dataflow is Dataflow.OUTPUT_STATIONARY and self.mult == "lut"

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
                + (f"_pipe_{self.pipeline.value}" if self.pipeline != "none" else "")
                + (f"_mult_{self.mult}" if self.mult != "dsp" else ""))

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
            d["pipeline"] = self.pipeline.value
        if self.mult != "dsp":  # likewise
            d["mult"] = self.mult
        return d

    @classmethod
    def from_dict(cls, d):
        """Inverse of :meth:`to_dict` (derived fields are ignored)."""
        n = d["numerics"]
        return cls(rows=d["rows"], cols=d["cols"], dataflow=Dataflow(d["dataflow"]),
                   numerics=Numerics(in_width=n["in_width"], acc_width=n["acc_width"],
                                     signed=n["signed"], saturate=n["saturate"]),
                   pipeline=d.get("pipeline", "none"), mult=d.get("mult", "dsp"))
