"""Configuration of a matrix engine: a compute core, buffers and a tiling controller."""

from __future__ import annotations

import math
from dataclasses import dataclass

from .array import SystolicConfig
from .checks import check_int
from .core import SystolicCore, TensorCore
from .requant import RequantConfig
from .tensorcore import TensorCoreConfig

__all__ = ["EngineConfig", "DIM_WIDTH", "MAX_CORES", "BUFFERING"]

#: Width of each dimension field of the engine's command port: dimensions up to 65535 can be
#: *requested*, so a request beyond the buffers is representable and can be rejected.
DIM_WIDTH = 16


#: Buffering schemes of an engine: ``"single"`` (one bank per buffer: load, compute and drain
#: of a job one after the other) or ``"double"`` (two banks per buffer, ping-pong: the load of
#: the next job and the drain of the previous one run during a job's compute).
BUFFERING = ("single", "double")

#: Most MMA units a tensor-core engine may have.
MAX_CORES = 64


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
    buffering : str
        ``"single"`` (default) or ``"double"`` (:data:`BUFFERING`). Double buffering hides a
        job's load and drain behind its neighbours' compute but doubles every buffer; single is
        the default because it fits twice the matrix sizes in the same block RAM (a 256^3 16x16
        engine's double buffers, 6 Mibit, exceed the ECP5-85F) and an isolated job takes the
        same cycles on both.

    Attributes
    ----------
    compute : ComputeCore
        The compute core built from ``array`` or from ``core`` and ``cores``: everything the
        buffers, controller, cycle model and packers need to know about it.
    """

    array: SystolicConfig | None = None
    max_m: int = 64
    max_k: int = 64
    max_n: int = 64
    requant: RequantConfig | None = None
    core: TensorCoreConfig | None = None
    cores: int = 1
    buffering: str = "single"

    def __post_init__(self):
        if self.buffering not in BUFFERING:
            raise ValueError(f"buffering must be one of {', '.join(map(repr, BUFFERING))}, "
                             f"not {self.buffering!r}")
        if self.array is None and self.core is None:
            raise TypeError("EngineConfig needs a compute core: array= (SystolicConfig) or "
                            "core= (TensorCoreConfig)")
        if self.array is not None and self.core is not None:
            raise ValueError("EngineConfig takes array= or core=, not both")
        if self.array is not None and not isinstance(self.array, SystolicConfig):
            raise TypeError(f"array must be a SystolicConfig, not {self.array!r}")
        if self.core is not None and not isinstance(self.core, TensorCoreConfig):
            raise TypeError(f"core must be a TensorCoreConfig, not {self.core!r}")
        check_int("cores", self.cores, 1, MAX_CORES)
        if self.array is not None and self.cores != 1:
            raise ValueError(f"cores counts tensor-core MMA units: it must be 1 with a systolic "
                             f"array, not {self.cores}")
        # (a derived attribute, not a field: equality, hash, repr and the dict stay the two
        # optional fields')
        object.__setattr__(self, "compute", SystolicCore.of(self.array) if self.core is None
                           else TensorCore(self.core, self.cores))
        for name in ("max_m", "max_k", "max_n"):
            check_int(name, getattr(self, name), 1, (1 << DIM_WIDTH) - 1)
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
        return self.compute.arch

    @property
    def rows(self):
        """Rows of C produced per tile: the array's rows, or the MMA unit's m."""
        return self.compute.rows

    @property
    def cols(self):
        """Accumulators per C word: the array's cols, or n x cores for a tensor-core engine."""
        return self.compute.cols

    @property
    def dataflow(self):
        """The array's dataflow (None for a tensor-core engine)."""
        return self.compute.dataflow

    @property
    def numerics(self):
        return self.compute.numerics

    @property
    def macs(self):
        return self.compute.macs

    @property
    def accumulation_chunk(self):
        return self.compute.accumulation_chunk

    @property
    def output_latency(self):
        """Register stages between the C buffer's read register and the ``c`` stream: one with
        a pipelined core (``compute.buffer_read_latency`` 2 or more: the C word passes the
        block RAM's output register), one more for a core's output register
        (``compute.output_register``, without requantizer), and the requantizer's."""
        if self.requant is not None:
            return min(self.compute.buffer_read_latency, 2) - 1 + self.requant.latency
        return (min(self.compute.buffer_read_latency, 2) - 1
                + int(self.compute.output_register))

    @property
    def k_steps_max(self):
        """B words per column tile of the largest K (tensor core: ceil(max_k / k) k-steps)."""
        return self.compute.k_steps(self.max_k)

    @property
    def a_depth(self):
        """Words in the A buffer (each word holds ``rows`` operands; a tensor-core engine's
        word is one m x k fragment)."""
        return self.compute.a_words(self.max_m, self.max_k)

    @property
    def b_depth(self):
        """Words in the B buffer (each word holds ``cols`` operands; a tensor-core engine's
        word is one k x cols fragment)."""
        return self.compute.b_words(self.max_k, self.max_n)

    @property
    def m_stride(self):
        """C buffer words reserved per column tile, rounded up to a power of two so that a C
        address is just (column tile, row) side by side: ``max_m`` rows of a systolic engine,
        ``ceil(max_m / m)`` m x cols fragments of a tensor-core engine."""
        return 1 << (self.compute.c_rows(self.max_m) - 1).bit_length()

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
    def banks(self):
        """Banks per buffer: 1 single-buffered, 2 double-buffered."""
        return 2 if self.buffering == "double" else 1

    @property
    def buffer_bits(self):
        """Total bits of the buffers (A, B, C and the requantization parameters, every bank)."""
        n, cc = self.numerics, self.compute
        a_lanes, b_lanes, c_lanes = (math.prod(block) for block in (cc.a_block, cc.b_block,
                                                                    cc.c_block))
        return self.banks * (
                self.a_depth * a_lanes * n.in_width + self.b_depth * b_lanes * n.in_width
                + self.c_depth * c_lanes * n.acc_width
                + (self.q_depth * self.cols * self.requant.param_bits if self.requant else 0))

    @property
    def name(self):
        """e.g. ``engine_ws_16x16_int8_acc32_wrap_256x256x256`` (max M x K x N last), or
        ``engine_tc_4x4x4_int8_acc32_wrap_64x64x64_4cores`` for four 4x4x4 MMA units."""
        return (self.compute.engine_name(self.max_m, self.max_k, self.max_n)
                + (f"_rq{self.requant.tag}" if self.requant else "")
                + ("_db" if self.buffering == "double" else ""))

    def to_dict(self):
        return {
            "kind": "engine",
            "name": self.name,
            **self.compute.to_dict(),
            "max_m": self.max_m, "max_k": self.max_k, "max_n": self.max_n,
            "requant": self.requant.to_dict() if self.requant else None,
            "buffering": self.buffering,
            "buffers": {
                "a_words": self.a_depth, "b_words": self.b_depth, "c_words": self.c_depth,
                "bits": self.buffer_bits,
            },
        }

    @classmethod
    def from_dict(cls, d):
        rq = d.get("requant")
        core = d.get("core")
        return cls(array=SystolicConfig.from_dict(d["array"]) if d.get("array") else None,
                   max_m=d["max_m"], max_k=d["max_k"], max_n=d["max_n"],
                   requant=RequantConfig.from_dict(rq) if rq else None,
                   core=TensorCoreConfig.from_dict(core) if core else None,
                   cores=d.get("cores", 1), buffering=d.get("buffering", "single"))
