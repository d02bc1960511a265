"""Frozen, validated configuration of a generated engine.

One :class:`SystolicConfig` describes one generator run. It is validated once, here, and the same
object then feeds the Amaranth generator, the numpy golden model, the cycle model, the testbench
and the manifest written beside the RTL, so those can never disagree about a parameter.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

__all__ = ["Dataflow", "Numerics", "SystolicConfig", "RequantConfig", "EngineConfig",
           "config_from_dict", "MAX_ARRAY_DIM", "MAX_CORES", "DIM_WIDTH", "PIPELINES"]

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
        if self.pipeline != "none" and self.dataflow is not Dataflow.OUTPUT_STATIONARY:
            raise ValueError("pipeline options exist for the output-stationary PE only, not yet "
                             "for the weight-stationary one")

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


@dataclass(frozen=True)
class RequantConfig:
    """A requantization unit: ``lanes`` int32 accumulators -> 8-bit outputs per beat.

    Implements :func:`systolix.quant.requantize` (gemmlowp's integer-only scheme) per lane, with
    per-lane parameters travelling beside the data.

    Parameters
    ----------
    lanes : int
        Values per beat, 1..:data:`MAX_ARRAY_DIM`.
    out_signed : bool
        int8 (default) or uint8 outputs.
    """

    lanes: int
    out_signed: bool = True

    def __post_init__(self):
        _check_int("lanes", self.lanes, 1, MAX_ARRAY_DIM)
        _check_bool("out_signed", self.out_signed)

    @property
    def out_type(self):
        return "int8" if self.out_signed else "uint8"

    @property
    def latency(self):
        """Pipeline stages of the unit: bias add, multiply, doubling high part, shift + clamp."""
        return 4

    @property
    def name(self):
        return f"requant_{self.lanes}x_{self.out_type}"

    def to_dict(self):
        return {"kind": "requant", "name": self.name, "lanes": self.lanes,
                "out_signed": self.out_signed, "out_type": self.out_type}

    @classmethod
    def from_dict(cls, d):
        return cls(lanes=d["lanes"], out_signed=d["out_signed"])


#: Bits of one lane's requantization parameters: bias 32, multiplier 32, shift 5, and the
#: output zero point and clamp bounds, 8 each.
REQUANT_PARAM_BITS = 32 + 32 + 5 + 3 * 8

#: Width of each dimension field of the engine's command port: dimensions up to 65535 can be
#: *requested*, so a request beyond the buffers is representable and can be rejected.
DIM_WIDTH = 16


def _ceil_div(a, b):
    return -(-a // b)


@dataclass(frozen=True)
class EngineConfig:
    """A matrix engine: a compute core plus on-chip buffers for A, B and C and a tiling controller.

    The engine computes C = A x B for any M x K x N with ``1 <= M <= max_m``, ``1 <= K <=
    max_k`` and ``1 <= N <= max_n``; the buffers are sized for exactly those limits. The compute
    core is either a systolic array (``array``) or ``cores`` tensor-core MMA units (``core``),
    exactly one of the two.

    Parameters
    ----------
    array : SystolicConfig or None
        The systolic array (size, dataflow, numerics).
    max_m, max_k, max_n : int
        Largest GEMM dimensions the buffers hold, 1..65535 each. Default 64.
    requant : RequantConfig or None
        Requantize C on its way out (int32 -> 8 bits, per-column parameters loaded with each
        job); needs a 32-bit accumulator and ``requant.lanes == cols``. Default: off.
    core : TensorCoreConfig or None
        The MMA unit of a tensor-core engine (m x n x k, pipeline, numerics).
    cores : int
        MMA units side by side along N (they share each A fragment), 1..:data:`MAX_CORES`.
        Only with ``core``. Default 1.
    """

    array: SystolicConfig | None = None
    max_m: int = 64
    max_k: int = 64
    max_n: int = 64
    requant: RequantConfig | None = None
    core: TensorCoreConfig | None = None
    cores: int = 1

    def __post_init__(self):
        if self.array is None and self.core is None:
            raise TypeError("EngineConfig needs a compute core: array= (SystolicConfig) or "
                            "core= (TensorCoreConfig)")
        if self.array is not None and self.core is not None:
            raise ValueError("EngineConfig takes array= or core=, not both")
        if self.array is not None and not isinstance(self.array, SystolicConfig):
            raise TypeError(f"array must be a SystolicConfig, not {self.array!r}")
        if self.core is not None and not isinstance(self.core, TensorCoreConfig):
            raise TypeError(f"core must be a TensorCoreConfig, not {self.core!r}")
        _check_int("cores", self.cores, 1, MAX_CORES)
        if self.array is not None and self.cores != 1:
            raise ValueError(f"cores counts tensor-core MMA units: it must be 1 with a systolic "
                             f"array, not {self.cores}")
        for name in ("max_m", "max_k", "max_n"):
            _check_int(name, getattr(self, name), 1, (1 << DIM_WIDTH) - 1)
        if self.requant is not None:
            if not isinstance(self.requant, RequantConfig):
                raise TypeError(f"requant must be a RequantConfig or None, not {self.requant!r}")
            if self.requant.lanes != self.cols:
                raise ValueError(f"requant lanes must equal the engine's cols ({self.cols})"
                                 f", not {self.requant.lanes}")
            if self.numerics.acc_width != 32:
                raise ValueError("requantization takes int32 accumulators: acc_width must be "
                                 f"32, not {self.numerics.acc_width}")

    @property
    def arch(self):
        """``"systolic"`` or ``"tensorcore"``: which compute core the engine has."""
        return "systolic" if self.core is None else "tensorcore"

    @property
    def tensorcore(self):
        """True for a tensor-core engine."""
        return self.core is not None

    @property
    def rows(self):
        """Rows of C produced per tile: the array's rows, or the MMA unit's m."""
        return self.array.rows if self.core is None else self.core.m

    @property
    def cols(self):
        """Accumulators per C word: the array's cols, or n x cores for a tensor-core engine."""
        return self.array.cols if self.core is None else self.core.n * self.cores

    @property
    def dataflow(self):
        """The array's dataflow (None for a tensor-core engine)."""
        return self.array.dataflow if self.core is None else None

    @property
    def numerics(self):
        return self.array.numerics if self.core is None else self.core.numerics

    @property
    def macs(self):
        return self.array.macs if self.core is None else self.core.macs * self.cores

    @property
    def accumulation_chunk(self):
        return (self.array.accumulation_chunk if self.core is None
                else self.core.accumulation_chunk)

    @property
    def k_steps_max(self):
        """Tensor core: k-steps (MMAs per output tile) of the largest K, ceil(max_k / k)."""
        return _ceil_div(self.max_k, self.core.k if self.core else 1)

    @property
    def a_depth(self):
        """Words in the A buffer (each word holds ``rows`` operands; a tensor-core engine's
        word is one m x k fragment)."""
        if self.core is not None:
            return _ceil_div(self.max_m, self.core.m) * self.k_steps_max
        if self.dataflow is Dataflow.OUTPUT_STATIONARY:
            return _ceil_div(self.max_m, self.rows) * self.max_k
        return _ceil_div(self.max_k, self.rows) * self.max_m

    @property
    def b_depth(self):
        """Words in the B buffer (each word holds ``cols`` operands; a tensor-core engine's
        word is one k x cols fragment)."""
        if self.core is not None:
            return _ceil_div(self.max_n, self.cols) * self.k_steps_max
        return _ceil_div(self.max_n, self.cols) * self.max_k

    @property
    def m_stride(self):
        """C buffer words reserved per column tile, rounded up to a power of two so that a C
        address is just (column tile, row) side by side: ``max_m`` rows of a systolic engine,
        ``ceil(max_m / m)`` m x cols fragments of a tensor-core engine."""
        rows = self.max_m if self.core is None else _ceil_div(self.max_m, self.core.m)
        return 1 << (rows - 1).bit_length()

    @property
    def c_depth(self):
        """Words in the C buffer (each word holds ``cols`` accumulators, or an m x cols
        fragment of them in a tensor-core engine)."""
        return _ceil_div(self.max_n, self.cols) * self.m_stride

    @property
    def q_depth(self):
        """Words in the requantization parameter buffer (one per column tile), 0 without it."""
        return _ceil_div(self.max_n, self.cols) if self.requant else 0

    @property
    def buffer_bits(self):
        """Total bits of the buffers (A, B, C and the requantization parameters)."""
        n = self.numerics
        a_lanes, b_lanes, c_lanes = self.rows, self.cols, self.cols
        if self.core is not None:
            k = self.core.k
            a_lanes, b_lanes, c_lanes = self.rows * k, k * self.cols, self.rows * self.cols
        return (self.a_depth * a_lanes * n.in_width + self.b_depth * b_lanes * n.in_width
                + self.c_depth * c_lanes * n.acc_width
                + self.q_depth * self.cols * REQUANT_PARAM_BITS)

    @property
    def name(self):
        """e.g. ``engine_ws_16x16_int8_acc32_wrap_256x256x256`` (max M x K x N last), or
        ``engine_tc_4x4x4_int8_acc32_wrap_64x64x64_4cores`` for four 4x4x4 MMA units."""
        core = self.array.name.replace("systolic_", "engine_", 1) if self.core is None else \
            self.core.name.replace("tensorcore_", "engine_tc_", 1)
        return (core + f"_{self.max_m}x{self.max_k}x{self.max_n}"
                + (f"_{self.cores}cores" if self.cores > 1 else "")
                + (f"_rq{self.requant.out_type}" if self.requant else ""))

    def to_dict(self):
        d = {
            "kind": "engine",
            "name": self.name,
            "array": self.array.to_dict() if self.array is not None else None,
        }
        if self.core is not None:  # (a systolic engine's dict is unchanged: rtl/ manifests)
            d.update({"arch": self.arch, "core": self.core.to_dict(), "cores": self.cores})
        d.update({
            "max_m": self.max_m, "max_k": self.max_k, "max_n": self.max_n,
            "requant": self.requant.to_dict() if self.requant else None,
            "buffers": {
                "a_words": self.a_depth, "b_words": self.b_depth, "c_words": self.c_depth,
                "bits": self.buffer_bits,
            },
        })
        return d

    @classmethod
    def from_dict(cls, d):
        rq = d.get("requant")
        core = d.get("core")
        return cls(array=SystolicConfig.from_dict(d["array"]) if d.get("array") else None,
                   max_m=d["max_m"], max_k=d["max_k"], max_n=d["max_n"],
                   requant=RequantConfig.from_dict(rq) if rq else None,
                   core=TensorCoreConfig.from_dict(core) if core else None,
                   cores=d.get("cores", 1))


#: Most MMA units a tensor-core engine may have.
MAX_CORES = 64


def config_from_dict(d):
    """Rebuild any config from its :meth:`to_dict` form (dispatching on ``kind``)."""
    kinds = {"systolic": SystolicConfig, "engine": EngineConfig, "requant": RequantConfig,
             "tensorcore": TensorCoreConfig}
    try:
        cls = kinds[d["kind"]]
    except KeyError:
        raise ValueError(f"unknown config kind {d.get('kind')!r}") from None
    return cls.from_dict(d)

#: Largest m, n or k of a tensor-core MMA unit. A 64 x 64 x 64 unit already has 262,144
#: multipliers; the cap stops a typo from starting an hour-long elaboration.
MAX_MMA_DIM = 64

#: Default register stages inside each dot-product unit (see :class:`TensorCoreConfig`).
DEFAULT_MMA_PIPELINE = 1


@dataclass(frozen=True)
class TensorCoreConfig:
    """A tensor-core-style MMA unit: ``D = A x B + C`` for A (m x k), B (k x n), C (m x n).

    The unit is m x n dot-product units; each multiplies one row of A with one column of B
    (k multipliers), sums the k products in an exact pairwise adder tree of
    :attr:`tree_levels` = ceil(log2 k) levels, and adds the sum to its element of C with the
    accumulate rule of :class:`Numerics` (one wrap or saturation per MMA, so the accumulation
    chunk is ``k``). It accepts a new (A, B, C) every cycle and delivers D :attr:`latency`
    cycles later.

    Datapath levels, in order: the multipliers (level 0), adder-tree levels 1 .. T, and the final
    accumulate with C, whose result is always registered (the output register). Between these
    levels there are T + 1 *cut points*: cut 0 between the multipliers and tree level 1
    (registering the products), cut t between tree levels t and t + 1, and cut T between the last
    tree level and the accumulate. ``pipeline`` registers are placed at the cuts listed in
    :attr:`register_cuts`, spread evenly over the T + 2 levels: register j (j = 0 .. P - 1) sits at
    cut ``floor((j + 1) * (T + 2) / (P + 1)) - 1``. C is delayed by the same P cycles.

    Parameters
    ----------
    m, n, k : int
        Unit shape, 1..:data:`MAX_MMA_DIM` each. Default 4 x 4 x 4 (one NVIDIA V100 tensor core).
    pipeline : int
        Register stages before the accumulate, 0 .. ceil(log2 k) + 1. Default
        :data:`DEFAULT_MMA_PIPELINE`. The latency is ``pipeline + 1`` cycles.
    numerics : Numerics
        Operand and accumulator arithmetic (the accumulator is C / D).
    """

    m: int = 4
    n: int = 4
    k: int = 4
    pipeline: int = DEFAULT_MMA_PIPELINE
    numerics: Numerics = field(default_factory=Numerics)

    def __post_init__(self):
        _check_int("m", self.m, 1, MAX_MMA_DIM)
        _check_int("n", self.n, 1, MAX_MMA_DIM)
        _check_int("k", self.k, 1, MAX_MMA_DIM)
        _check_int("pipeline", self.pipeline, -1 << 62)  # the type; the range depends on k
        if not 0 <= self.pipeline <= self.max_pipeline:
            raise ValueError(f"pipeline must be in range 0..{self.max_pipeline} for k = {self.k} "
                             f"(ceil(log2 k) + 1), not {self.pipeline}")
        if not isinstance(self.numerics, Numerics):
            raise TypeError(f"numerics must be a Numerics, not {self.numerics!r}")

    @property
    def tree_levels(self):
        """Levels of the pairwise adder tree, T = ceil(log2 k) (0 for k = 1)."""
        return (self.k - 1).bit_length()

    @property
    def max_pipeline(self):
        """Most register stages there are cut points for: T + 1."""
        return self.tree_levels + 1

    @property
    def register_cuts(self):
        """Cut points holding a pipeline register (see the class docstring), increasing."""
        levels, p = self.tree_levels + 2, self.pipeline
        return tuple((j + 1) * levels // (p + 1) - 1 for j in range(p))

    @property
    def latency(self):
        """Cycles from an accepted input beat to its D on the output: ``pipeline + 1``."""
        return self.pipeline + 1

    @property
    def macs(self):
        """Multipliers in the unit, m * n * k (all busy every cycle when fed every cycle)."""
        return self.m * self.n * self.k

    @property
    def accumulation_chunk(self):
        """Products summed exactly before the one accumulator addition of an MMA: ``k``."""
        return self.k

    @property
    def sum_width(self):
        """Bits of the exact adder-tree result: product width + ceil(log2 k)."""
        return self.numerics.product_width + self.tree_levels

    @property
    def name(self):
        """Module and file name, e.g. ``tensorcore_4x4x4_int8_acc32_wrap`` (``_p2`` appended when
        ``pipeline`` is not the default)."""
        nm = self.numerics
        p = "" if self.pipeline == DEFAULT_MMA_PIPELINE else f"_p{self.pipeline}"
        return (f"tensorcore_{self.m}x{self.n}x{self.k}_{nm.operand_type}_acc{nm.acc_width}_"
                f"{nm.overflow}{p}")

    def to_dict(self):
        return {
            "kind": "tensorcore",
            "name": self.name,
            "m": self.m,
            "n": self.n,
            "k": self.k,
            "pipeline": self.pipeline,
            "register_cuts": list(self.register_cuts),
            "tree_levels": self.tree_levels,
            "latency": self.latency,
            "macs": self.macs,
            "numerics": {**self.numerics.to_dict(self.accumulation_chunk), "spec": self._spec()},
        }

    def _spec(self):
        nm = self.numerics
        return (f"D = A x B + C: the {self.k} {nm.operand_type} x {nm.operand_type} products of "
                f"each element are exact and summed exactly; the sum is added once to C, a signed "
                f"{nm.acc_width}-bit accumulator value, and the result is "
                + ("clamped to the accumulator range." if nm.saturate else
                   f"wrapped modulo 2^{nm.acc_width} (two's complement).")
                + f" A GEMM over K as a chain of MMAs (D -> C) follows the accumulation rule with "
                  f"chunk {self.k}.")

    @classmethod
    def from_dict(cls, d):
        """Inverse of :meth:`to_dict` (derived fields are ignored)."""
        n = d["numerics"]
        return cls(m=d["m"], n=d["n"], k=d["k"], pipeline=d["pipeline"],
                   numerics=Numerics(in_width=n["in_width"], acc_width=n["acc_width"],
                                     signed=n["signed"], saturate=n["saturate"]))


__all__ += ["TensorCoreConfig", "MAX_MMA_DIM", "DEFAULT_MMA_PIPELINE"]
